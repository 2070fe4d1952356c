//! A licence issued by the server verifies with an independent COSE implementation (Python
//! pycose + cryptography, scripts/verify_cose.py) using only the department certificate; its
//! salted disclosures are recomputed by scripts/check_disclosures.py; an annotated copy verifies
//! with scripts/verify_copy.py using only the annotation key. `make test`
//! prepares a virtualenv with pycose and sets LICVAULT_PYTHON.

use std::path::Path;
use std::process::Command;

use base64::{engine::general_purpose::STANDARD as B64, Engine};

use crate::common::*;

/// The test virtualenv's Python, and a place for the documents it checks.
struct Pycose {
    python: String,
    dir: tempfile::TempDir,
}

impl Pycose {
    /// `None` (the test is skipped) when LICVAULT_PYTHON is not set.
    fn new() -> Option<Self> {
        let Ok(python) = std::env::var("LICVAULT_PYTHON") else {
            eprintln!("interop test skipped: LICVAULT_PYTHON is not set (make test sets it up with pycose)");
            return None;
        };
        Some(Self { python, dir: tempfile::tempdir().unwrap() })
    }

    /// Runs `script` (in scripts/) on the base64 document `doc` and `key`: whether it accepted
    /// it, and what it printed.
    fn run(&self, script: &str, doc: &serde_json::Value, key: &Path) -> (bool, String) {
        self.run_on(script, &B64.decode(doc.as_str().unwrap()).unwrap(), key)
    }

    /// Runs `script` on a file holding `content`.
    fn run_on(&self, script: &str, content: &[u8], key: &Path) -> (bool, String) {
        let file = self.dir.path().join("doc.cose");
        std::fs::write(&file, content).unwrap();
        let out = Command::new(&self.python)
            .arg(root().join("scripts").join(script))
            .arg(&file)
            .arg(key)
            .output()
            .expect("run python");
        let text = format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

#[tokio::test]
async fn pycose_verifies_an_issued_licence() {
    let Some(py) = Pycose::new() else { return };
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let cert = root().join("keys/departments/11440300MB2000100X.crt.pem");
    let (ok, out) = py.run("verify_cose.py", &issued["document"], &cert);
    assert!(ok, "pycose refused the document: {out}");
    assert!(out.starts_with("OK: 1.2.156.3005.2."), "{out}");

    // And it refuses the same document under another department's certificate.
    let other = root().join("keys/departments/11440300MB20005067.crt.pem");
    assert!(!py.run("verify_cose.py", &issued["document"], &other).0);

    // The QR payload, LV2: (CPython's zlib with the dictionary file) and LV1: alike, inflates to
    // the same document.
    let lv2 = s.qr_of(&issued).await;
    assert!(lv2.starts_with("LV2:"), "{lv2}");
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let lv1 = licvault::qr::encode_as(&doc, licvault::qr::Format::Lv1);
    for payload in [&lv2, &lv1] {
        let (ok, out) = py.run_on("verify_cose.py", payload.as_bytes(), &cert);
        assert!(ok && out.starts_with("OK: 1.2.156.3005.2."), "{}: {out}", &payload[..4]);
    }
    assert!(lv2.len() < lv1.len());
}

/// An annotated copy verifies with pycose too: the annotation signature under the platform's
/// annotation key, and what it names and shows.
#[tokio::test]
async fn pycose_verifies_an_annotated_copy() {
    let Some(py) = Pycose::new() else { return };
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
    let (ok, out) = py.run("verify_copy.py", &copy["document"], &s.keys.path().join("annotation.key.pem"));
    assert!(ok, "pycose refused the copy: {out}");
    assert!(out.contains("OK copy: 1.2.156.3005.2."), "{out}");
    // A copy checked under another key fails.
    assert!(!py.run("verify_copy.py", &copy["document"], &s.keys.path().join("log.key.pem")).0);
}

/// A presented document's disclosures: Python recomputes each digest and finds it among the
/// signed ones; a disclosure of another licence is refused.
#[tokio::test]
async fn python_recomputes_the_disclosures() {
    let Some(py) = Pycose::new() else { return };
    let s = Server::start().await;
    let citizen = "11010519491231002X";
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(citizen)).await;
    let (_, other) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("440524188001010014")).await;
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let disclosure = |v: &serde_json::Value, key: &str| {
        let d = v["disclosures"].as_array().unwrap().iter().find(|d| d["key"] == key).unwrap();
        B64.decode(d["disclosure"].as_str().unwrap()).unwrap()
    };
    let cert = root().join("keys/departments/11440300MB20005067.crt.pem");
    let shown = [disclosure(&issued, "holder.id"), disclosure(&issued, "男方出生日期")];
    let refs: Vec<&[u8]> = shown.iter().map(Vec::as_slice).collect();
    let presented = serde_json::json!(B64.encode(licvault::crypto::cose::with_disclosures(&doc, &refs).unwrap()));
    let (ok, out) = py.run("check_disclosures.py", &presented, &cert);
    assert!(ok, "python refused the disclosures: {out}");
    assert!(
        out.contains(&format!("disclosed holder.id={citizen}")) && out.contains("disclosed 男方出生日期=1949-12-31")
    );
    assert!(out.contains("with 2 of 5 values disclosed"), "{out}");

    let foreign = disclosure(&other, "holder.id");
    let bad = serde_json::json!(B64.encode(licvault::crypto::cose::with_disclosures(&doc, &[&foreign]).unwrap()));
    let (ok, out) = py.run("check_disclosures.py", &bad, &cert);
    assert!(!ok && out.contains("matches no digest"), "{out}");
}

/// The trust digest and a status list, checked by Python (pycose, zlib, cbor2): a revoked
/// licence reads 1 (invalid), a valid one 0, under the platform key the trust list names.
#[tokio::test]
async fn python_reads_the_trust_list_and_a_status_list() {
    let Some(py) = Pycose::new() else { return };
    let s = Server::start().await;
    let revoked = s.issue_company("91440300MA5E000256").await;
    let valid = s.issue_company(&licvault::domain::holder::complete_uscc("91440300MA5E0007").unwrap()).await;
    let id = revoked["licence"]["id"].as_str().unwrap();
    let (st, v) =
        s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &serde_json::json!({"reason": "测试"})).await;
    assert_eq!(st, 200, "{v}");
    let trust = s.http.get(s.url("/v1/trust")).send().await.unwrap().bytes().await.unwrap();
    std::fs::write(py.dir.path().join("trust.json"), &trust).unwrap();
    for (licence, want) in [(&revoked, 1), (&valid, 0)] {
        let uri = licence["licence"]["status_list"]["uri"].as_str().unwrap();
        let n = uri.rsplit('/').next().unwrap();
        let list = s.http.get(s.url(&format!("/v1/status-lists/{n}"))).send().await.unwrap().bytes().await.unwrap();
        let list_path = py.dir.path().join("list.cwt");
        std::fs::write(&list_path, &list).unwrap();
        let out = Command::new(&py.python)
            .arg(root().join("scripts/check_status.py"))
            .arg(py.dir.path().join("trust.json"))
            .arg(&list_path)
            .arg(uri)
            .arg(licence["licence"]["status_list"]["idx"].to_string())
            .output()
            .unwrap();
        let text = format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("trust digest OK") && text.contains(&format!("status {want} at index")), "{text}");
    }
}

/// Every QR profile's PNG read back by zbarimg (ZBar, from Debian): a decoder with nothing in
/// common with the encoder, giving back exactly the payload.
#[tokio::test]
async fn zbarimg_reads_every_qr_profile() {
    let Some(py) = Pycose::new() else { return };
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let id = issued["licence"]["id"].as_str().unwrap();
    for (profile, ecc) in [("full", "M"), ("full", "Q"), ("compact", "M"), ("link", "M")] {
        let (_, _, png) =
            s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.png?profile={profile}&ecc={ecc}")).await;
        let file = py.dir.path().join(format!("{profile}-{ecc}.png"));
        std::fs::write(&file, &png).unwrap();
        let out = Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&file)
            .output()
            .expect("zbarimg (make test installs zbar-tools)");
        assert!(
            out.status.success(),
            "zbarimg found no code in the {profile} QR: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim_end_matches('\n'), licvault::qr::read_image(&png).unwrap(), "{profile} {ecc}");
    }
}
