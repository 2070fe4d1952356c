//! The life of a licence through the API.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use licvault::log::merkle::{leaf_hash, verify_inclusion};
use licvault::log::note::{parse_receipt, Checkpoint, Verifier};
use serde_json::{json, Value};

use crate::common::*;

const COMPANY: &str = "91440300MA5E000256";

fn verifier() -> Verifier {
    Verifier::parse(&std::fs::read_to_string(root().join("keys/log.vkey")).unwrap()).unwrap()
}

async fn verify(s: &Server, payload: &str) -> Value {
    let (status, body) = s.post(None, "/v1/verify", &json!({ "payload": payload })).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn id_of(v: &Value) -> String {
    v["licence"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn issue_verify_revoke_verify() {
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let id = id_of(&issued);
    assert!(id.starts_with("1.2.156.3005.2.11100000MB00001073001.11440300MB2000100X."), "{id}");
    assert_eq!(issued["status"], "valid");
    assert_eq!(issued["licence"]["holder"]["id"], COMPANY);

    // Both presentations verify: the base64 document and the LV1: QR payload.
    let doc = issued["document"].as_str().unwrap();
    let qr = &s.qr_of(&issued).await;
    assert!(qr.starts_with("LV2:"));
    for p in [doc, qr] {
        let v = verify(&s, p).await;
        assert_eq!(v["verdict"], "valid", "{v}");
        assert_eq!(v["valid"], true);
        assert_eq!(v["licence"]["id"], id.as_str());
    }

    let (status, body) =
        s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &json!({"reason": "以欺骗手段取得登记"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    let v = verify(&s, qr).await;
    assert_eq!(v["verdict"], "revoked");
    assert_eq!(v["valid"], false);
    assert!(v["log"]["status_as_of_size"].as_u64().unwrap() > body["log"]["index"].as_u64().unwrap());

    let (status, hist) = s.get(Some(ISSUER), &format!("/v1/licences/{id}/history")).await;
    assert_eq!(status, 200);
    let events: Vec<&str> = hist["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["licence.issued", "licence.status"]);
    assert_eq!(hist["events"][1]["reason"], "以欺骗手段取得登记");

    // Revoked is final.
    let (status, body) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/reinstate"), &json!({"reason": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
}

#[tokio::test]
async fn suspend_reinstate_cancel() {
    let s = Server::start().await;
    let id = id_of(&s.issue_company(COMPANY).await);
    let step = |action: &'static str| {
        let s = &s;
        let id = id.clone();
        async move { s.post(Some(ISSUER), &format!("/v1/licences/{id}/{action}"), &json!({"reason": "检查"})).await }
    };
    assert_eq!(step("reinstate").await.0, 409);
    assert_eq!(step("suspend").await.1["status"], "suspended");
    assert_eq!(step("suspend").await.0, 409);
    assert_eq!(step("reinstate").await.1["status"], "valid");
    assert_eq!(step("cancel").await.1["status"], "cancelled");
    let (status, body) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
}

#[tokio::test]
async fn renewal_supersedes_the_old_version() {
    let s = Server::start().await;
    let first = s.issue_company(COMPANY).await;
    let id = id_of(&first);
    let mut fields = first["licence"]["fields"].clone();
    fields["住所"] = json!("示例市示例区新址路8号");
    let (status, second) = s
        .post(
            Some(ISSUER),
            &format!("/v1/licences/{id}/versions"),
            &json!({"kind": "change", "reason": "住所变更", "fields": fields}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let new_id = id_of(&second);
    assert!(new_id.contains(".002."), "{new_id}");
    assert_eq!(second["licence"]["predecessor"], id.as_str());
    assert_eq!(second["licence"]["fields"]["住所"], "示例市示例区新址路8号");

    let old = verify(&s, first["document"].as_str().unwrap()).await;
    assert_eq!(old["verdict"], "superseded");
    assert_eq!(verify(&s, &s.qr_of(&second).await).await["verdict"], "valid");
    let (status, _) = s
        .post(
            Some(ISSUER),
            &format!("/v1/licences/{id}/versions"),
            &json!({"kind": "change", "reason": "再次变更", "fields": fields}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, hist) = s.get(Some(ISSUER), &format!("/v1/licences/{id}/history")).await;
    assert_eq!(hist["events"][1]["event"], "licence.superseded");
    assert_eq!(hist["events"][1]["related"], new_id.as_str());
}

#[tokio::test]
async fn idempotency_key_returns_the_first_answer() {
    let s = Server::start().await;
    let body = business_licence(COMPANY);
    let send = |key: &'static str, body: Value| {
        let s = &s;
        async move {
            let res = s
                .http
                .post(s.url("/v1/licences"))
                .bearer_auth(ISSUER)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
            (res.status().as_u16(), replayed, res.json::<Value>().await.unwrap())
        }
    };
    let (s1, r1, b1) = send("order-7781", body.clone()).await;
    let (s2, r2, b2) = send("order-7781", body.clone()).await;
    assert_eq!((s1, r1, s2, r2), (201, false, 200, true));
    assert_eq!(id_of(&b1), id_of(&b2));
    assert_eq!(b1["document"], b2["document"]);
    let mut other = body;
    other["fields"]["法定代表人"] = json!("另一个人");
    let (s3, _, b3) = send("order-7781", other).await;
    assert_eq!((s3, b3["code"].as_str()), (422, Some("idempotency_key_reused")));
    let size = s.vault.head().size;
    assert_eq!(send("order-7781", business_licence(COMPANY)).await.0, 200);
    assert_eq!(s.vault.head().size, size, "a replay writes nothing");
}

#[tokio::test]
async fn receipts_and_checkpoints_verify_against_the_log_key() {
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let res = s.http.get(s.url("/v1/log/checkpoint")).send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let note = res.text().await.unwrap();
    let cp = Checkpoint::open(&note, &verifier()).unwrap();
    assert_eq!(cp.size, s.vault.head().size);

    let (index, proof, cp_note) = parse_receipt(issued["log"]["receipt"].as_str().unwrap()).unwrap();
    let cp = Checkpoint::open(cp_note, &verifier()).unwrap();
    let leaf = s.vault.store().get(licvault::store::Cf::Leaves, &index.to_be_bytes()).unwrap().unwrap();
    verify_inclusion(&leaf_hash(&leaf), index, cp.size, &proof, &cp.root).unwrap();
    // The leaf binds the exact document and hides nothing it should not.
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let decoded = licvault::log::leaf::Leaf::decode(&leaf).unwrap();
    assert_eq!(decoded.event.get_bytes("doc_sha256").unwrap(), licvault::crypto::sha256(&doc));
}

#[tokio::test]
async fn citizen_numbers_stay_out_of_the_log_and_the_public_answer() {
    let s = Server::start().await;
    let citizen = "11010519491231002X";
    let (status, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(citizen)).await;
    assert_eq!(status, 201, "{issued}");
    let size = s.vault.head().size;
    for i in 0..size {
        let leaf = s.vault.store().get(licvault::store::Cf::Leaves, &i.to_be_bytes()).unwrap().unwrap();
        assert!(!leaf.windows(citizen.len()).any(|w| w == citizen.as_bytes()), "leaf {i} holds a citizen ID number");
    }
    // The QR payload holds the number and the personal fields only as salted digests.
    let v = verify(&s, &s.qr_of(&issued).await).await;
    assert_eq!(v["verdict"], "valid");
    assert_eq!(v["licence"]["holder"]["id"], serde_json::Value::Null, "{v}");
    assert!(v["licence"]["fields"].get("女方身份证件号").is_none(), "personal field hidden: {v}");
    assert!(v["licence"]["fields"].get("女方姓名").is_some());
    assert_eq!(v["licence"]["withheld"], 5, "the number, two ID numbers, two birth dates: {v}");
}

#[tokio::test]
async fn catalogue_and_ops() {
    let s = Server::start().await;
    let (status, types) = s.get(None, "/v1/licence-types").await;
    assert_eq!(status, 200);
    assert!(types["licence_types"].as_array().unwrap().len() >= 8);
    let (status, t) = s.get(None, &format!("/v1/licence-types/{BUSINESS_LICENCE}")).await;
    assert_eq!((status, t["name"].as_str()), (200, Some("营业执照")));
    let (status, items) = s.get(None, "/v1/service-items").await;
    assert_eq!(status, 200);
    let code = items["service_items"][0]["code"].as_str().unwrap().to_string();
    assert_eq!(s.get(None, &format!("/v1/service-items/{code}")).await.0, 200);
    assert_eq!(s.get(None, "/v1/service-items/NOPE").await.0, 404);
    assert_eq!(s.http.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(s.http.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(s.http.get(s.url("/metrics")).send().await.unwrap().status(), 401, "metrics are not public");
    assert_eq!(s.http.get(s.url("/metrics")).bearer_auth(ISSUER).send().await.unwrap().status(), 403);
    let metrics = s.http.get(s.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("licvault_log_size "), "{metrics}");
    // Where the store's bytes are: documents, and the write-ahead log.
    let docs = metrics.lines().find(|l| l.starts_with("licvault_store_bytes{part=\"docs\"} ")).expect("docs bytes");
    assert!(docs.rsplit(' ').next().unwrap().parse::<u64>().unwrap() > 0, "{docs}");
    assert!(metrics.contains("licvault_store_bytes{part=\"write-ahead log\"} "), "{metrics}");
    assert!(metrics.contains("route=\"/v1/licence-types\""), "{metrics}");
    assert!(metrics.contains("licvault_sequencer_batches_total "), "{metrics}");
}

#[tokio::test]
async fn pilot_codes_enter_only_through_a_logged_override() {
    let s = Server::start().await;
    let pilot = "12440305K12345677Y"; // only the GB 32100 check character is wrong
    let mut body = business_licence(pilot);
    let (status, problem) = s.post(Some(ISSUER), "/v1/licences", &body).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_holder_id")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("allow-pilot"), "{problem}");

    let index = s.vault.allow_pilot("001", pilot, "2014年统一代码试点期间赋码", "admin:张工").await.unwrap();
    let leaf = s.vault.leaf(index).unwrap().unwrap();
    assert_eq!(leaf.event.kind, "holder.override");
    assert_eq!(leaf.event.get_text("actor"), Some("admin:张工"));
    assert!(s.vault.allow_pilot("001", pilot, "again", "admin:张工").await.is_err(), "one override per number");
    assert!(s.vault.allow_pilot("001", COMPANY, "not needed", "admin:张工").await.is_err(), "valid numbers need none");
    assert!(s.vault.allow_pilot("001", "12440305K1234567IU", "bad alphabet", "admin:张工").await.is_err());

    body["holder"]["id"] = json!(pilot.to_lowercase());
    let (status, issued) = s.post(Some(ISSUER), "/v1/licences", &body).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(verify(&s, &s.qr_of(&issued).await).await["verdict"], "valid");

    // A citizen pilot number is logged only as its commitment.
    let citizen = "110105194912310021";
    let index = s.vault.allow_pilot("111", citizen, "户籍系统迁移前的旧号", "admin:张工").await.unwrap();
    let raw = s.vault.store().get(licvault::store::Cf::Leaves, &index.to_be_bytes()).unwrap().unwrap();
    assert!(!raw.windows(citizen.len()).any(|w| w == citizen.as_bytes()));
}

#[tokio::test]
async fn issuer_serials_and_allocated_serials_do_not_collide() {
    let s = Server::start().await;
    let year = licvault::domain::cst_date(licvault::vault::unix_now()).year();
    let mut own = business_licence(COMPANY);
    own["serial"] = json!(format!("{year}00000001"));
    own["number"] = json!("（示）登字〔2026〕第1号");
    let (status, first) = s.post(Some(ISSUER), "/v1/licences", &own).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["licence"]["number"], "（示）登字〔2026〕第1号");
    let (status, again) = s.post(Some(ISSUER), "/v1/licences", &own).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("conflict")), "an issuer's own serial is unique");
    // The vault's first allocation would be the same serial: it moves on to the next.
    let second = s.issue_company(COMPANY).await;
    assert!(second["licence"]["id"].as_str().unwrap().contains(&format!(".{year}00000002.001.")), "{second}");
}
