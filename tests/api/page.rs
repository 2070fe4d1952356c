//! The verification page in a real browser: headless Chromium (Debian's, driven by Selenium
//! through chromedriver, scripts/page_check.py) opens a valid and a revoked licence's link and
//! posts a forged payload to the form, and checks what a phone shows. `make test` installs
//! Chromium and Selenium; `LICVAULT_WRITE_SCREENSHOTS=1` writes the screenshots to docs/.

use std::process::Command;

use serde_json::json;

use crate::common::*;

const CITIZEN: &str = "11010519491231002X";

/// The link of a licence, read back from its link QR.
async fn link(s: &Server, issuer: &str, id: &str) -> String {
    let (_, _, png) = s.qr_image(issuer, None, &format!("/v1/licences/{id}/qr.png?profile=link")).await;
    licvault::qr::read_image(&png).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_valid_revoked_and_forged() {
    let Ok(python) = std::env::var("LICVAULT_PYTHON") else {
        eprintln!("page test skipped: LICVAULT_PYTHON is not set (make test sets it up with Chromium and Selenium)");
        return;
    };
    let s = Server::start().await;
    let (_, valid) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    // 吊销营业执照: the classic penalty.
    let (_, revoked) = s.post(Some(ISSUER), "/v1/licences", &business_licence("91440300MA5E000256")).await;
    let revoked_id = revoked["licence"]["id"].as_str().unwrap();
    let (st, v) =
        s.post(Some(ISSUER), &format!("/v1/licences/{revoked_id}/revoke"), &json!({"reason": "吊销营业执照"})).await;
    assert_eq!(st, 200, "{v}");
    let valid_link = link(&s, OTHER_ISSUER, valid["licence"]["id"].as_str().unwrap()).await;
    let revoked_link = link(&s, ISSUER, revoked_id).await;
    // A forged licence: the valid one's document with one byte of its signature changed.
    let mut doc =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, valid["document"].as_str().unwrap())
            .unwrap();
    let last = doc.len() - 1;
    doc[last] ^= 0x01;
    let forged = licvault::qr::encode(&doc);
    let out = tempfile::tempdir().unwrap();
    let write = std::env::var("LICVAULT_WRITE_SCREENSHOTS").is_ok();
    let dir = if write { root().join("docs") } else { out.path().to_path_buf() };
    let (base, dir_s) = (s.base.clone(), dir.display().to_string());
    let result = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(root().join("scripts/page_check.py"))
            .args([&dir_s, &base, &valid_link, &revoked_link, &forged, CITIZEN, "440524188001010014", "李四"])
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "{text}");
    for page in ["valid", "revoked", "forged"] {
        assert!(text.contains(&format!("OK {page}")), "{text}");
        let png = std::fs::read(dir.join(format!("page-{page}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot of the {page} page");
    }
}
