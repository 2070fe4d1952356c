#![allow(dead_code)] // each test or benchmark that includes this uses some of it
//! Shared by the API tests and the benchmarks (included with `#[path]`): the release or test
//! binary serving the demo as a separate process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `bin serve --demo` on `data` and `keys` with the repository's fixtures (more flags in
/// `args`); the child and its base URL, read from the first line it prints.
pub fn spawn_server(bin: &str, data: &Path, keys: &Path, args: &[&str]) -> (Child, String) {
    spawn_server_on(bin, "127.0.0.1:0", data, keys, args)
}

/// [`spawn_server`] on `listen` (a node that restarts on the address others know it by).
pub fn spawn_server_on(bin: &str, listen: &str, data: &Path, keys: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--demo", "--listen", listen])
        .arg("--data")
        .arg(data)
        .arg("--keys")
        .arg(keys)
        .arg("--fixtures")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start licvault");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr =
        line.trim().strip_prefix("licvault listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, format!("http://{addr}"))
}

/// A node: the binary under test serving the demo on `listen` as a separate process, killed when
/// dropped (the multi-node tests and the mirrors' benchmark).
pub struct Node {
    child: Child,
    pub base: String,
}

impl Node {
    pub fn start(listen: &str, data: &Path, keys: &Path, args: &[&str]) -> Self {
        let (child, base) = spawn_server_on(env!("CARGO_BIN_EXE_licvault"), listen, data, keys, args);
        Self { child, base }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
