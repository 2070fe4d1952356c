//! Citizens show what they choose (issue: citizens' QR): salted disclosures in the signed
//! document, checked one by one against its digests by `POST /v1/verify`.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use licvault::crypto::cose;
use serde_json::{json, Value};

use crate::common::*;

const CITIZEN: &str = "11010519491231002X";

async fn verify(s: &Server, payload: &str) -> Value {
    let (status, body) = s.post(None, "/v1/verify", &json!({ "payload": payload })).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The disclosures of an issuance answer whose key is in `keys`, as bytes.
fn pick(issued: &Value, keys: &[&str]) -> Vec<Vec<u8>> {
    issued["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| keys.contains(&d["key"].as_str().unwrap()))
        .map(|d| B64.decode(d["disclosure"].as_str().unwrap()).unwrap())
        .collect()
}

/// The issued document with `disclosures` in its unprotected header, as an `LV1:` QR payload.
fn presented(issued: &Value, disclosures: &[Vec<u8>]) -> String {
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let refs: Vec<&[u8]> = disclosures.iter().map(Vec::as_slice).collect();
    licvault::qr::encode(&cose::with_disclosures(&doc, &refs).unwrap())
}

#[tokio::test]
async fn personal_values_are_digests_until_the_holder_discloses_them() {
    let s = Server::start().await;
    let (status, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    assert_eq!(status, 201, "{issued}");
    // The issuer gets every disclosure; the document itself has none of the values.
    let mut keys: Vec<&str> =
        issued["disclosures"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["holder.id", "女方出生日期", "女方身份证件号", "男方出生日期", "男方身份证件号"]);
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    for value in [CITIZEN, "1949-12-31", "440524188001010014", "1880-01-01"] {
        assert!(!doc.windows(value.len()).any(|w| w == value.as_bytes()), "{value} is in clear in the document");
    }

    // The holder shows the number and the husband's birth date: both verify, the rest stays hidden.
    let shown = pick(&issued, &["holder.id", "男方出生日期"]);
    let v = verify(&s, &presented(&issued, &shown)).await;
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["licence"]["holder"]["id"], CITIZEN);
    assert_eq!(v["licence"]["fields"]["男方出生日期"], "1949-12-31");
    assert!(v["licence"]["fields"].get("女方身份证件号").is_none(), "{v}");
    assert_eq!(v["licence"]["withheld"], 3);
    assert_eq!(v["licence"]["disclosed"], json!(["holder.id", "男方出生日期"]));
    assert_eq!(v["log"]["index"], issued["log"]["index"], "recognised as the logged document: {v}");

    // The wallet and the issuer's read give the holder channel and the issuer the disclosures.
    let (status, wallet) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/wallet", &json!({"holder": {"type": "111", "id": CITIZEN}})).await;
    assert_eq!(status, 200, "{wallet}");
    assert_eq!(wallet["licences"][0]["disclosures"], issued["disclosures"]);
    let id = issued["licence"]["id"].as_str().unwrap();
    let (status, read) = s.get(Some(OTHER_ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!((status, &read["disclosures"]), (200, &issued["disclosures"]));
    assert_eq!(read["licence"]["holder"]["id"], CITIZEN, "the issuer sees the whole licence");
}

#[tokio::test]
async fn disclosures_that_do_not_belong_are_malformed() {
    let s = Server::start().await;
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    let (_, other) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("440524188001010014")).await;
    let number = pick(&issued, &["holder.id"]);
    let foreign = pick(&other, &["holder.id"]);
    let mut altered = number[0].clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let cases: [(&str, Vec<Vec<u8>>); 4] = [
        ("another licence's disclosure", foreign),
        ("the same disclosure twice", vec![number[0].clone(), number[0].clone()]),
        ("an altered disclosure", vec![altered]),
        ("bytes that are no disclosure", vec![vec![0xff, 0x00]]),
    ];
    for (what, disclosures) in cases {
        let v = verify(&s, &presented(&issued, &disclosures)).await;
        assert_eq!(v["verdict"], "malformed", "{what}: {v}");
        assert!(v["licence"].is_null(), "{what}: nothing of the licence is shown: {v}");
    }
}

/// The status list entry of an issued licence, read from `GET /v1/status-lists/{n}` and checked
/// under the current platform key from `GET /v1/trust`; also the raw list token.
async fn listed_status(s: &Server, licence: &Value) -> (u8, Vec<u8>) {
    let (_, trust) = s.get(None, "/v1/trust").await;
    let current = trust["platform_keys"].as_array().unwrap().iter().find(|k| k["current"] == true).unwrap();
    let kid: [u8; 8] = hex::decode(current["kid"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key_bytes: [u8; 32] = B64.decode(current["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let uri = licence["status_list"]["uri"].as_str().unwrap();
    let n = uri.strip_prefix(trust["status_lists"]["uri_prefix"].as_str().unwrap()).unwrap();
    let res = s.http.get(s.url(&format!("/v1/status-lists/{n}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/statuslist+cwt");
    let token = res.bytes().await.unwrap().to_vec();
    let list = licvault::status_list::read(&token, |k| (*k == kid).then_some(key), uri).unwrap();
    assert!(list.ttl.is_some() && list.expires_at > Some(list.issued_at));
    let idx = licence["status_list"]["idx"].as_u64().unwrap() as u32;
    (list.status(idx).unwrap(), token)
}

#[tokio::test]
async fn status_lists_follow_every_change_while_the_qr_stays_the_same() {
    use licvault::status_list::{INVALID, SUPERSEDED, SUSPENDED, VALID};
    let s = Server::start().await;
    let uscc = |n: u32| licvault::domain::holder::complete_uscc(&format!("91440300MA5E{n:04}")).unwrap();
    let a = s.issue_company(&uscc(1)).await;
    let b = s.issue_company(&uscc(2)).await;
    let c = s.issue_company(&uscc(3)).await;
    assert_ne!(a["licence"]["status_list"]["idx"], b["licence"]["status_list"]["idx"]);
    for l in [&a, &b, &c] {
        assert_eq!(listed_status(&s, &l["licence"]).await.0, VALID);
    }
    let id = |v: &Value| v["licence"]["id"].as_str().unwrap().to_string();
    let qr = s.qr_of(&a).await;
    let change = |id: String, action: &'static str| {
        let s = &s;
        async move {
            let (st, v) =
                s.post(Some(ISSUER), &format!("/v1/licences/{id}/{action}"), &json!({"reason": "测试"})).await;
            assert_eq!(st, 200, "{v}");
        }
    };
    change(id(&a), "revoke").await;
    change(id(&b), "suspend").await;
    let (st, new_c) = s
        .post(
            Some(ISSUER),
            &format!("/v1/licences/{}/versions", id(&c)),
            &json!({"reason": "变更", "fields": business_licence(&uscc(3))["fields"].clone()}),
        )
        .await;
    assert_eq!(st, 201, "{new_c}");
    assert_eq!(listed_status(&s, &a["licence"]).await.0, INVALID);
    assert_eq!(listed_status(&s, &b["licence"]).await.0, SUSPENDED);
    assert_eq!(listed_status(&s, &c["licence"]).await.0, SUPERSEDED);
    assert_eq!(listed_status(&s, &new_c["licence"]).await.0, VALID);
    change(id(&b), "reinstate").await;
    assert_eq!(listed_status(&s, &b["licence"]).await.0, VALID);
    // The holder's QR is the same document: only the list changed.
    assert_eq!(s.qr_of(&a).await, qr);

    // A list that does not exist, or a number written oddly, is 404.
    for n in ["1", "01", "-0", "x"] {
        let res = s.http.get(s.url(&format!("/v1/status-lists/{n}"))).send().await.unwrap();
        assert_eq!(res.status(), 404, "{n}");
    }
}

#[tokio::test]
async fn trust_names_every_key_with_a_digest_to_pin() {
    let s = Server::start().await;
    let (st, trust) = s.get(None, "/v1/trust").await;
    assert_eq!(st, 200, "{trust}");
    assert_eq!(trust["departments"].as_array().unwrap().len(), 7, "{trust}");
    assert!(trust["root"]["certificate"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(trust["log"]["verifier_key"], s.vault.log_verifier_key());
    assert_eq!(trust["status_lists"]["entries"], 131072);
    assert_eq!(trust["digest"].as_str().unwrap().len(), 64);
    // The same material gives the same digest.
    assert_eq!(s.get(None, "/v1/trust").await.1["digest"], trust["digest"]);
}
