//! Shared by the API tests and the benchmark (included with `#[path]`): a copy of a key
//! directory with private files at 0600, since git does not keep permission bits and licvault
//! refuses keys that group or others can read.

use std::path::Path;

pub fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_keys(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".key.pem") || name == "commitment.key" {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
}
