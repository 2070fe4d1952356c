//! Shared by the API tests and the benchmark (included with `#[path]`): PostgreSQL servers from
//! Debian's postgresql-15 in a temp directory, listening only on a Unix socket; as root, run as
//! the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's server binaries: the newest /usr/lib/postgresql/N/bin.
pub fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    let dir =
        dirs.pop().expect("PostgreSQL's server is not installed: scripts/deps.sh --python installs postgresql-15");
    dir.join(name)
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (initdb refuses root).
pub fn pg(name: &str, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(name));
        c
    } else {
        Command::new(pg_bin(name))
    };
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A cluster directory, stopped (immediately) when dropped.
pub struct Cluster(pub PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(pg_bin("pg_ctl")).args(["-D", p(&self.0), "-m", "immediate", "stop"]).output();
        if is_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .args(["-D", p(&self.0), "-m", "immediate", "stop"])
                .output();
        }
    }
}

pub fn start_cluster(dir: &Path, socket: &Path) -> Cluster {
    std::fs::create_dir_all(socket).unwrap();
    let conf = format!(
        "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 4\n",
        p(socket)
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("postgresql.conf")).unwrap();
    std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
    if is_root() {
        Command::new("chown").args(["-R", "postgres:", p(dir), p(socket)]).status().unwrap();
    }
    pg("pg_ctl", &["-D", p(dir), "-l", p(&dir.with_extension("log")), "-w", "start"]);
    Cluster(dir.to_path_buf())
}
