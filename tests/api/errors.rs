//! Bad input: a specific problem `code`, nothing written, never a panic or a 500.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde_json::{json, Value};

use crate::common::*;

const COMPANY: &str = "91440300MA5E000256";

/// Sends a request and checks status, problem code, content type and that the log did not grow.
async fn refused(
    s: &Server,
    method: &str,
    token: Option<&str>,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) {
    let before = s.vault.head().size;
    let mut req = match method {
        "GET" => s.http.get(s.url(path)),
        _ => s.http.post(s.url(path)),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status().as_u16(), status, "{method} {path}");
    assert_eq!(res.headers()["content-type"], "application/problem+json", "{method} {path}");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], code, "{method} {path}: {problem}");
    assert_eq!(problem["status"], status);
    assert!(!problem["detail"].as_str().unwrap().is_empty());
    assert_eq!(s.vault.head().size, before, "{method} {path} wrote to the log");
}

fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    *body.pointer_mut(pointer).unwrap() = value;
    body
}

#[tokio::test]
async fn issuance_input_is_checked() {
    let s = Server::start().await;
    let ok = business_licence(COMPANY);
    let post = |body: Value, code: &'static str| {
        let s = &s;
        async move { refused(s, "POST", Some(ISSUER), "/v1/licences", Some(body), 400, code).await }
    };
    post(with(ok.clone(), "/holder/id", json!("91440300MA5E000257")), "invalid_holder_id").await;
    post(with(ok.clone(), "/holder/type", json!("111")), "invalid_holder_id").await;
    post(with(ok.clone(), "/type_code", json!("11100000MB0000107300")), "invalid_type_code").await;
    post(with(ok.clone(), "/type_code", json!("11100000MB00001073999")), "unknown_licence_type").await;
    post(with(ok.clone(), "/fields/成立日期", json!("2020-02-30")), "invalid_fields").await;
    post(with(ok.clone(), "/fields/类型", json!("无限公司")), "invalid_fields").await;
    post(with(ok.clone(), "/fields/经营范围", json!("长".repeat(2001))), "invalid_fields").await;
    let mut missing = ok.clone();
    missing["fields"].as_object_mut().unwrap().remove("名称");
    post(missing, "invalid_fields").await;
    let mut dates = ok.clone();
    dates["valid_from"] = json!("2026-05-01");
    dates["valid_until"] = json!("2026-04-30");
    post(dates, "invalid_dates").await;
    post(with(ok.clone(), "/holder/name", json!("")), "invalid_text").await;
    let mut extra = ok.clone();
    extra["colour"] = json!("red");
    post(extra, "invalid_body").await;
    // A person cannot hold a business licence.
    let person = with(with(ok.clone(), "/holder/type", json!("111")), "/holder/id", json!("11010519491231002X"));
    post(person, "holder_type_not_allowed").await;
}

#[tokio::test]
async fn auth_and_roles() {
    let s = Server::start().await;
    let body = business_licence(COMPANY);
    refused(&s, "POST", None, "/v1/licences", Some(body.clone()), 401, "unauthenticated").await;
    refused(&s, "POST", Some("not-a-real-token-at-all"), "/v1/licences", Some(body.clone()), 401, "invalid_token")
        .await;
    refused(&s, "POST", Some(AUDITOR), "/v1/licences", Some(body.clone()), 403, "forbidden").await;
    // 民政局 may not issue business licences.
    refused(&s, "POST", Some(OTHER_ISSUER), "/v1/licences", Some(body.clone()), 403, "forbidden").await;
    let id = s.issue_company(COMPANY).await["licence"]["id"].as_str().unwrap().to_string();
    let reason = json!({"reason": "越权"});
    refused(
        &s,
        "POST",
        Some(OTHER_ISSUER),
        &format!("/v1/licences/{id}/revoke"),
        Some(reason.clone()),
        403,
        "forbidden",
    )
    .await;
    refused(&s, "GET", Some(OTHER_ISSUER), &format!("/v1/licences/{id}"), None, 403, "forbidden").await;
    refused(&s, "GET", Some(OTHER_ISSUER), &format!("/v1/licences/{id}/history"), None, 403, "forbidden").await;
    refused(&s, "POST", None, &format!("/v1/licences/{id}/revoke"), Some(reason), 401, "unauthenticated").await;
    assert_eq!(s.get(Some(ADMIN), &format!("/v1/licences/{id}")).await.0, 200, "admins read any licence");
}

#[tokio::test]
async fn identifiers_and_unknown_licences() {
    let s = Server::start().await;
    let reason = Some(json!({"reason": "测试"}));
    let bad = "1.2.156.3005.2.11100000MB00001073001.11440300MB2000100X.202600000001.001.Z";
    refused(
        &s,
        "POST",
        Some(ISSUER),
        &format!("/v1/licences/{bad}/suspend"),
        reason.clone(),
        400,
        "invalid_licence_id",
    )
    .await;
    refused(&s, "GET", Some(ISSUER), "/v1/licences/not-an-id", None, 400, "invalid_licence_id").await;
    let id = licvault::domain::LicenceId::new(
        licvault::domain::TypeCode::parse(BUSINESS_LICENCE).unwrap(),
        licvault::domain::Uscc::parse("11440300MB2000100X").unwrap(),
        "999999",
        1,
    )
    .unwrap();
    refused(&s, "GET", Some(ISSUER), &format!("/v1/licences/{id}"), None, 404, "licence_not_found").await;
    refused(&s, "POST", Some(ISSUER), &format!("/v1/licences/{id}/revoke"), reason.clone(), 404, "licence_not_found")
        .await;
    refused(
        &s,
        "POST",
        Some(ISSUER),
        &format!("/v1/licences/{id}/revoke"),
        Some(json!({"reason": ""})),
        400,
        "invalid_text",
    )
    .await;
    refused(&s, "GET", None, "/v1/licence-types/11100000MB00001073999", None, 404, "licence_type_not_found").await;
    refused(&s, "GET", None, "/v1/licence-types/nope", None, 400, "invalid_type_code").await;
    refused(&s, "GET", None, "/v1/nothing-here", None, 404, "route_not_found").await;
}

#[tokio::test]
async fn bodies_are_bounded_and_parsed_strictly() {
    let s = Server::start().await;
    let huge = json!({"payload": "A".repeat(200 * 1024)});
    refused(&s, "POST", None, "/v1/verify", Some(huge), 413, "body_too_large").await;
    let res = s
        .http
        .post(s.url("/v1/licences"))
        .bearer_auth(ISSUER)
        .header("content-type", "application/json")
        .body("{\"type_code\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "malformed_json");
    let res = s.http.post(s.url("/v1/verify")).body("payload=x").send().await.unwrap();
    assert_eq!(res.status(), 415);
}

async fn verdict(s: &Server, payload: &str) -> Value {
    let before = s.vault.head().size;
    let (status, body) = s.post(None, "/v1/verify", &json!({ "payload": payload })).await;
    assert_eq!(status, 200, "{payload}: {body}");
    assert_eq!(s.vault.head().size, before);
    body
}

#[tokio::test]
async fn broken_documents_get_a_verdict_not_an_error() {
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();

    for payload in
        ["", "!!!", "LV1:", "LV1:GGW", "LV1:BB8", "oA==", "2IQ=", &B64.encode([0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40])]
    {
        assert_eq!(verdict(&s, payload).await["verdict"], "malformed", "{payload:?}");
    }
    // Every truncation is malformed or invalid, never a crash.
    for n in [1, 10, doc.len() / 2, doc.len() - 1] {
        let v = verdict(&s, &B64.encode(&doc[..n])).await;
        assert_ne!(v["verdict"], "valid");
    }
    // A flipped bit in the payload or the signature breaks the signature.
    let mut tampered = doc.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(verdict(&s, &B64.encode(&tampered)).await["verdict"], "invalid_signature");
    let text = String::from_utf8_lossy(&doc).into_owned();
    let at = text.find("示例科技").map(|i| i + 1).unwrap_or(doc.len() / 2);
    let mut tampered = doc.clone();
    tampered[at] ^= 0x01;
    let v = verdict(&s, &B64.encode(&tampered)).await;
    assert!(v["verdict"] == "invalid_signature" || v["verdict"] == "malformed", "{v}");

    // A document signed with a key nobody certified.
    let stranger = licvault::crypto::Ed25519Signer::new(
        ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
        b"self-made certificate",
        "11440300MB2000100X",
    );
    let env = licvault::crypto::cose::Envelope::parse(&doc).unwrap();
    let forged = licvault::crypto::cose::sign(&stranger, env.payload().to_vec());
    assert_eq!(verdict(&s, &B64.encode(&forged)).await["verdict"], "unknown_issuer");

    // Correctly signed by the department's real key, but never issued through the vault.
    let key = licvault::crypto::signer::load_private_key(&s.keys.path().join("departments/11440300MB2000100X.key.pem"))
        .unwrap();
    let pem = std::fs::read(s.keys.path().join("departments/11440300MB2000100X.crt.pem")).unwrap();
    let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
    let real = licvault::crypto::Ed25519Signer::new(key, &der, "11440300MB2000100X");
    let mut licence = licvault::domain::Licence::from_payload(env.payload()).unwrap();
    licence.number = "SHADOW-1".into();
    let shadow = licvault::crypto::cose::sign(&real, licence.to_payload());
    let v = verdict(&s, &B64.encode(&shadow)).await;
    assert_eq!(v["verdict"], "not_in_log", "{v}");
    assert_eq!(v["valid"], false);
}

#[tokio::test]
async fn a_failed_write_answers_503_and_changes_nothing() {
    let store = std::sync::Arc::new(licvault::store::MemoryStore::new());
    let s = Server::start_on(store.clone(), tempfile::tempdir().unwrap()).await;
    let before = s.vault.head();
    store.fail_write(0);
    let res = s
        .http
        .post(s.url("/v1/licences"))
        .bearer_auth(ISSUER)
        .header("X-Request-Id", "trace-77")
        .json(&business_licence(COMPANY))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-request-id"], "trace-77");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("X-Request-Id"), "{problem}");
    assert_eq!(s.vault.head().size, before.size, "nothing was committed");

    // The next write succeeds at the same index, and the whole log still verifies.
    let issued = s.issue_company(COMPANY).await;
    assert_eq!(issued["log"]["index"], before.size);
    let head = s.vault.head();
    let leaves: Vec<Vec<u8>> = (0..head.size)
        .map(|i| s.vault.store().get(licvault::store::Cf::Leaves, &i.to_be_bytes()).unwrap().unwrap())
        .collect();
    let tree = licvault::log::leaf::verify_chain(leaves).unwrap();
    assert_eq!((tree.size(), tree.root()), (head.size, head.root));
    let res = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert!(res.headers()["x-request-id"].to_str().unwrap().contains('-'), "a fresh id when none is sent");
}
