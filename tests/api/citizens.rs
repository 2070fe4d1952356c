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
