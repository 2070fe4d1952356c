//! The command line, as an operator runs it.

use std::process::Command;

use base64::{engine::general_purpose::STANDARD as B64, Engine};

use crate::common::*;

fn licvault(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_licvault")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn clients_add_and_list() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    let common = [
        "--data",
        data.path().to_str().unwrap(),
        "--keys",
        keys.path().to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
    ];
    let add = |id: &str, role: &str, uscc: Option<&str>| {
        let mut args = vec!["clients", "add"];
        args.extend(common);
        args.extend(["--id", id, "--name", "测试系统", "--role", role]);
        if let Some(u) = uscc {
            args.extend(["--uscc", u]);
        }
        licvault(&args)
    };
    let (ok, out) = add("counter-7", "issuer", Some("11440300mb2000100x"));
    assert!(ok, "{out}");
    let token = out.lines().last().unwrap();
    assert!(token.starts_with("lv_") && token.len() > 40, "{out}");
    let (ok, out) = add("counter-7", "admin", None);
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = add("counter-8", "issuer", None);
    assert!(!ok && out.contains("USCC"), "{out}");
    let (ok, out) = add("counter-9", "boss", None);
    assert!(!ok && out.contains("unknown role"), "{out}");
    let mut args = vec!["clients", "list"];
    args.extend(common);
    let (ok, out) = licvault(&args);
    assert!(ok && out.contains("counter-7") && out.contains("11440300MB2000100X"), "{out}");
    assert!(!out.contains(token), "tokens are never listed");
}

#[test]
fn keys_init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("k");
    let departments = root().join("fixtures/departments.json");
    let (ok, out) =
        licvault(&["keys", "init", target.to_str().unwrap(), "--departments", departments.to_str().unwrap()]);
    assert!(ok && out.contains("licvault.example.gov.cn/log+"), "{out}");
    let (ok, out) =
        licvault(&["keys", "init", target.to_str().unwrap(), "--departments", departments.to_str().unwrap()]);
    assert!(!ok && out.contains("never overwrites"), "{out}");
}

#[tokio::test]
async fn offline_verify_checks_signature_and_chain() {
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("licence.b64");
    std::fs::write(&doc, issued["document"].as_str().unwrap()).unwrap();
    let trust = s.keys.path().to_str().unwrap().to_string();
    let (ok, out) = licvault(&["verify", doc.to_str().unwrap(), "--trust", &trust]);
    assert!(ok && out.contains("signature: valid") && out.contains("cannot know"), "{out}");
    let (ok, out) = licvault(&["verify", &s.qr_of(&issued).await, "--trust", &trust]);
    assert!(ok, "{out}");
    let mut bytes = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&doc, B64.encode(&bytes)).unwrap();
    let (ok, out) = licvault(&["verify", doc.to_str().unwrap(), "--trust", &trust]);
    assert!(!ok && out.contains("InvalidSignature"), "{out}");
}
