//! A licence issued by the server verifies with an independent COSE implementation (Python
//! pycose + cryptography, scripts/verify_cose.py) using only the department certificate.
//! `make test` prepares a virtualenv with pycose and sets LICVAULT_PYTHON.

use std::process::Command;

use base64::{engine::general_purpose::STANDARD as B64, Engine};

use crate::common::*;

#[tokio::test]
async fn pycose_verifies_an_issued_licence() {
    let Ok(python) = std::env::var("LICVAULT_PYTHON") else {
        eprintln!("interop test skipped: LICVAULT_PYTHON is not set (make test sets it up with pycose)");
        return;
    };
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("licence.cose");
    std::fs::write(&doc, B64.decode(issued["document"].as_str().unwrap()).unwrap()).unwrap();
    let cert = root().join("keys/departments/11440300MB2000100X.crt.pem");
    let script = root().join("scripts/verify_cose.py");
    let out = Command::new(&python).arg(&script).arg(&doc).arg(&cert).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pycose refused the document: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("OK: 1.2.156.3005.2."), "{stdout}");

    // And it refuses the same document under another department's certificate.
    let other = root().join("keys/departments/11440300MB20005067.crt.pem");
    let out = Command::new(&python).arg(&script).arg(&doc).arg(&other).output().unwrap();
    assert!(!out.status.success());
}

/// An annotated copy verifies with pycose too: the annotation signature under the platform's
/// annotation key, and what it names and shows.
#[tokio::test]
async fn pycose_verifies_an_annotated_copy() {
    let Ok(python) = std::env::var("LICVAULT_PYTHON") else {
        eprintln!("interop test skipped: LICVAULT_PYTHON is not set (make test sets it up with pycose)");
        return;
    };
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let id = issued["licence"]["id"].as_str().unwrap();
    let (st, copy) = s
        .post(
            Some(VERIFIER),
            &format!("/v1/licences/{id}/annotated-copies"),
            &serde_json::json!({"purpose": "仅供办理食品经营许可使用", "use_reason": "受理留存"}),
        )
        .await;
    assert_eq!(st, 201, "{copy}");
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("copy.cose");
    std::fs::write(&doc, B64.decode(copy["document"].as_str().unwrap()).unwrap()).unwrap();
    let key = s.keys.path().join("annotation.key.pem");
    let script = root().join("scripts/verify_copy.py");
    let out = Command::new(&python).arg(&script).arg(&doc).arg(&key).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pycose refused the copy: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK copy: 1.2.156.3005.2."), "{stdout}");
    // A copy checked under another key fails.
    let other = root().join("keys/log.key.pem");
    let tmp = dir.path().join("other.pem");
    std::fs::copy(&other, &tmp).unwrap();
    let out = Command::new(&python).arg(&script).arg(&doc).arg(&tmp).output().unwrap();
    assert!(!out.status.success());
}
