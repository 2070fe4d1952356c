//! Verifying departments and the holder channel: one-number lookups, one-window checks, the
//! sharing rules, usage records before data, and the citizen's view of who looked.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::*;

const DISABILITY: &str = "11100000MB0000609M001";
const PROPERTY: &str = "11100000MB0000705Y001";
const PROPERTY_ISSUER: &str = "dev-token-zrzy-issuer-0001";
const DISABILITY_ISSUER: &str = "dev-token-cl-issuer-0001";
/// Synthetic citizen numbers (valid check digits, nobody's).
pub const CITIZEN: &str = "44030519900101123X";
pub const SPOUSE: &str = "440305199202022349";
const STRANGER: &str = "440305198503033450";

pub fn property(owner: &str, co_owner: Option<&str>) -> Value {
    let mut b = json!({
        "type_code": PROPERTY,
        "holder": {"type": "111", "id": owner, "name": "陈一"},
        "fields": {
            "证号": "粤(2024)示例市不动产权第0001234号", "权利人": "陈一", "共有情况": "单独所有",
            "坐落": "示例市示例区科技路1号101室", "不动产单元号": "440305001001GB00001F00010001",
            "权利类型": "国有建设用地使用权/房屋所有权", "权利性质": "出让/市场化商品房", "用途": "商业/商业服务",
            "面积": "共有宗地面积1200㎡/房屋建筑面积86.5㎡", "使用期限": "2010年01月01日起2050年12月31日止"
        }
    });
    if let Some(co) = co_owner {
        b["co_holders"] = json!([{"type": "111", "id": co, "name": "林二"}]);
        b["fields"]["共有情况"] = json!("共同共有");
        b["fields"]["权利人"] = json!("陈一、林二");
    }
    b
}

fn disability(holder: &str) -> Value {
    json!({
        "type_code": DISABILITY,
        "holder": {"type": "111", "id": holder, "name": "陈一"},
        "fields": {"姓名": "陈一", "性别": "男", "残疾类别": "肢体", "残疾等级": "三级", "证号": format!("{holder}43")}
    })
}

pub async fn issue(s: &Server, token: &str, body: &Value) -> Value {
    let (st, v) = s.post(Some(token), "/v1/licences", body).await;
    assert_eq!(st, 201, "{v}");
    v
}

fn ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["licences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["licence"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

pub fn lookup_body(holder_type: &str, holder: &str) -> Value {
    json!({"holder": {"type": holder_type, "id": holder}, "use_reason": "办理公共租赁住房申请，核验申请人证照",
           "biz_num": "GZF-2026-000123", "officer": {"name": "周敏", "staff_no": "ZW0419"}})
}

fn used_leaves(s: &Server) -> usize {
    let size = s.vault.head().size;
    (0..size).filter(|i| s.vault.leaf(*i).unwrap().unwrap().event.kind == "licence.used").count()
}

#[tokio::test]
async fn lookups_show_what_the_sharing_class_allows() {
    let s = Server::start().await;
    let marriage_l = issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    let home = issue(&s, PROPERTY_ISSUER, &property(CITIZEN, Some(SPOUSE))).await;
    let card = issue(&s, DISABILITY_ISSUER, &disability(CITIZEN)).await;
    let id = |v: &Value| v["licence"]["id"].as_str().unwrap().to_string();
    let (marriage_id, home_id, card_id) = (id(&marriage_l), id(&home), id(&card));

    // The unrestricted counter: unconditional and conditional types; never a `none` type.
    let (st, all) = s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!(st, 200, "{all}");
    let mut want = vec![marriage_id.clone(), home_id.clone()];
    want.sort();
    assert_eq!(ids(&all), want, "{all}");
    let first = &all["licences"][0];
    assert_eq!(first["status"], "valid");
    assert_eq!(first["status_words"], "有效");
    assert!(first["log"]["usage_index"].as_u64().is_some());
    assert_eq!(all["usage"]["records"], 2);

    // Personal fields of other persons are not shown; the typed number is; the co-owner's is masked.
    let m = all["licences"].as_array().unwrap().iter().find(|l| l["licence"]["id"] == marriage_id.as_str()).unwrap();
    assert!(m["licence"]["fields"].get("女方身份证件号").is_none(), "{m}");
    assert_eq!(m["licence"]["holder"]["id"], CITIZEN);
    let h = all["licences"].as_array().unwrap().iter().find(|l| l["licence"]["id"] == home_id.as_str()).unwrap();
    assert_eq!(h["licence"]["co_holders"][0]["id"], "4403**********2349", "{h}");
    assert!(m.get("document").is_none(), "a verifier gets the face, not the signed document");

    // A verifier whose scope lists only 不动产权证书: the conditional 结婚证 is absent.
    let property_only = s.new_client(json!({"id": "bdc-window", "name": "不动产窗口", "role": "verifier", "uscc": "11440300MB2000901E", "types": [PROPERTY]}),
    )
    .await;
    let (st, v) = s.post(Some(&property_only), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), vec![home_id.clone()]);

    // `none`: only a verifier of the issuing department sees it.
    let cl_verifier = s
        .new_client(json!({"id": "cl-window", "name": "残联窗口", "role": "verifier", "uscc": "11440300MB2000602G"}))
        .await;
    let (_, v) = s.post(Some(&cl_verifier), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert!(ids(&v).contains(&card_id), "{v}");

    // The co-owner finds the shared licence by their own number; their number shows, the owner's not.
    let (_, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", SPOUSE)).await;
    assert_eq!(ids(&v), vec![home_id.clone()]);
    assert_eq!(v["licences"][0]["licence"]["holder"]["id"], "4403**********123X");
    assert_eq!(v["licences"][0]["licence"]["co_holders"][0]["id"], SPOUSE);

    // Nobody: an empty list, not 404; the look is still recorded and the holder sees it.
    let (st, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", STRANGER)).await;
    assert_eq!((st, v["licences"].as_array().unwrap().len()), (200, 0), "{v}");
    assert_eq!(v["next_cursor"], Value::Null);
    let (_, u) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/usage", &json!({"holder": {"type": "111", "id": STRANGER}})).await;
    assert_eq!(u["uses"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!((u["uses"][0]["action"].as_str(), u["uses"][0]["licence_id"].clone()), (Some("lookup"), Value::Null));

    // Filters: type and status.
    let mut b = lookup_body("111", CITIZEN);
    b["types"] = json!([MARRIAGE]);
    let (_, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &b).await;
    assert_eq!(ids(&v), vec![marriage_id.clone()]);
    let (st, v) =
        s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{marriage_id}/suspend"), &json!({"reason": "核查"})).await;
    assert_eq!(st, 200, "{v}");
    let mut b = lookup_body("111", CITIZEN);
    b["status"] = json!(["suspended"]);
    let (_, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &b).await;
    assert_eq!(ids(&v), vec![marriage_id.clone()]);
    assert_eq!(v["licences"][0]["status_words"], "已暂扣");
}

#[tokio::test]
async fn lookups_page_with_a_cursor() {
    let s = Server::start().await;
    let mut issued = Vec::new();
    for i in 0..5 {
        let mut b = property(CITIZEN, None);
        b["fields"]["不动产单元号"] = json!(format!("440305001001GB00001F0001000{i}"));
        issued.push(issue(&s, PROPERTY_ISSUER, &b).await["licence"]["id"].as_str().unwrap().to_string());
    }
    issued.sort();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let mut b = lookup_body("111", CITIZEN);
        b["limit"] = json!(2);
        b["cursor"] = cursor.clone();
        let (st, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &b).await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        seen.extend(ids(&v));
        cursor = v["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!((pages, seen), (3, issued));
    // Every disclosed licence has its usage record: 5 licences, 5 leaves.
    assert_eq!(used_leaves(&s), 5);
    let mut b = lookup_body("111", CITIZEN);
    b["cursor"] = json!("%%%");
    let (st, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &b).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_cursor")), "{v}");
}

#[tokio::test]
async fn one_window_check_then_the_citizen_sees_it() {
    let s = Server::start().await;
    let company = "91440300MA5E00017K";
    let company = licvault::domain::holder::complete_uscc(&company[..16]).unwrap();
    let bl = s.issue_company(&company).await;
    let bl_id = bl["licence"]["id"].as_str().unwrap().to_string();
    let body = json!({"applicant": {"type": "001", "id": company}, "use_reason": "食品经营许可（新办）受理审查",
                      "biz_num": "SPJY-2026-0042", "officer": {"name": "周敏", "staff_no": "ZW0419"}});
    let (st, v) = s.post(Some(VERIFIER), "/v1/service-items/440300-XK-0001/check", &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["satisfied"], false, "{v}");
    assert_eq!(v["requirements"][0]["outcome"], "present");
    assert_eq!(v["requirements"][0]["licence_id"], bl_id.as_str());
    assert_eq!(v["requirements"][1]["outcome"], "missing");
    assert_eq!(v["requirements"][1]["alternatives"][1]["holder"], "premises_owner");
    assert!(v["requirements"][1]["alternatives"][1]["detail"].as_str().unwrap().contains("premises_owner"));
    assert_eq!(ids(&v), vec![bl_id.clone()]);

    // The premises owner's 不动产权证书 meets the second requirement.
    let home = issue(&s, PROPERTY_ISSUER, &property(CITIZEN, None)).await;
    let mut with_owner = body.clone();
    with_owner["other_holders"] = json!({"premises_owner": {"type": "111", "id": CITIZEN}});
    let (st, v) = s.post(Some(VERIFIER), "/v1/service-items/440300-XK-0001/check", &with_owner).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["satisfied"], true, "{v}");
    assert_eq!(v["requirements"][1]["licence_id"], home["licence"]["id"]);
    assert_eq!(v["usage"]["records"], 2);

    // A verifier whose scope does not list 不动产权证书 gets not_shared, whatever exists.
    let bl_only = s.new_client(json!({"id": "food-window", "name": "食品许可窗口", "role": "verifier", "uscc": "11440300MB2000901E", "types": [MARRIAGE]}),
    )
    .await;
    let (_, v) = s.post(Some(&bl_only), "/v1/service-items/440300-XK-0001/check", &with_owner).await;
    assert_eq!(v["requirements"][1]["outcome"], "not_shared", "{v}");
    assert_eq!(ids(&v), vec![bl_id.clone()]);

    // A revoked 营业执照 is reported as such.
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{bl_id}/revoke"), &json!({"reason": "吊销"})).await;
    assert_eq!(st, 200);
    let (_, v) = s.post(Some(VERIFIER), "/v1/service-items/440300-XK-0001/check", &body).await;
    assert_eq!(v["requirements"][0]["outcome"], "revoked", "{v}");

    // The premises owner (a citizen) sees, through the holder channel, who looked and why.
    let (st, u) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/usage", &json!({"holder": {"type": "111", "id": CITIZEN}})).await;
    assert_eq!(st, 200, "{u}");
    let uses = u["uses"].as_array().unwrap();
    // The food window's check got not_shared and disclosed nothing of theirs, but it did look:
    // a query without a licence, newest first; then the counter's check that used the 不动产权证书.
    assert_eq!(uses.len(), 2, "{u}");
    assert_eq!((uses[0]["client"]["id"].as_str(), uses[0]["licence_id"].clone()), (Some("food-window"), Value::Null));
    assert_eq!(uses[1]["service_item"]["name"], "食品经营许可（新办）");
    assert_eq!(uses[1]["client"]["id"], "zwfw-counter");
    assert_eq!(uses[1]["officer"]["staff_no"], "ZW0419");
    assert_eq!(uses[1]["biz_num"], "SPJY-2026-0042");
    assert_eq!(uses[1]["use_reason"], "食品经营许可（新办）受理审查");
    assert_eq!(uses[1]["action"], "check");
    assert_eq!(uses[1]["type_name"], "不动产权证书");
    // The company's usage: four checks disclosed its 营业执照, newest first.
    let (_, u) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/usage", &json!({"holder": {"type": "001", "id": company}})).await;
    let uses = u["uses"].as_array().unwrap();
    assert_eq!(uses.len(), 4, "{u}");
    assert_eq!(uses[1]["client"]["id"], "food-window", "newest first: {u}");
    assert!(uses.windows(2).all(|w| w[0]["log_index"].as_u64() > w[1]["log_index"].as_u64()));
}

#[tokio::test]
async fn usage_pages_newest_first() {
    let s = Server::start().await;
    issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    for _ in 0..7 {
        let (st, _) = s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
        assert_eq!(st, 200);
    }
    let mut indices = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let (st, u) = s
            .post(
                Some(HOLDER_CHANNEL),
                "/v1/holders/usage",
                &json!({"holder": {"type": "111", "id": CITIZEN}, "limit": 3, "cursor": cursor}),
            )
            .await;
        assert_eq!(st, 200, "{u}");
        indices.extend(u["uses"].as_array().unwrap().iter().map(|x| x["log_index"].as_u64().unwrap()));
        cursor = u["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(indices.len(), 7);
    assert!(indices.windows(2).all(|w| w[0] > w[1]), "{indices:?}");
    // The wallet shows the holder's own licences in full, with the document and QR payload.
    let (st, w) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/wallet", &json!({"holder": {"type": "111", "id": CITIZEN}})).await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["licences"][0]["licence"]["fields"]["女方身份证件号"], "440524188001010014");
    assert!(w["licences"][0]["qr_payload"].as_str().unwrap().starts_with("LV2:"));
    // Reading the wallet is the holder's own read: no usage record.
    assert_eq!(used_leaves(&s), 7);
}

/// Every licence any read disclosed has exactly one `licence.used` leaf; a read whose usage
/// records cannot be written discloses nothing.
#[tokio::test]
async fn disclosures_equal_usage_leaves_and_a_failed_write_discloses_nothing() {
    let store = Arc::new(licvault::store::MemoryStore::new());
    let s = Server::start_on(store.clone(), tempfile::tempdir().unwrap()).await;
    issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    issue(&s, PROPERTY_ISSUER, &property(CITIZEN, Some(SPOUSE))).await;
    let company = licvault::domain::holder::complete_uscc("91440300MA5E0002").unwrap();
    s.issue_company(&company).await;
    let mut disclosed = 0;
    for (token, path, body) in [
        (VERIFIER, "/v1/holders/licences", lookup_body("111", CITIZEN)),
        (HOUSING_VERIFIER, "/v1/holders/licences", lookup_body("111", SPOUSE)),
        (VERIFIER, "/v1/holders/licences", lookup_body("001", &company)),
        (VERIFIER, "/v1/holders/licences", lookup_body("111", STRANGER)),
        (
            VERIFIER,
            "/v1/service-items/440300-GG-0001/check",
            json!({"applicant": {"type": "111", "id": CITIZEN}, "other_holders": {"spouse": {"type": "111", "id": SPOUSE}},
                   "use_reason": "公共租赁住房申请资格审查"}),
        ),
        (
            HOUSING_VERIFIER,
            "/v1/service-items/440300-XK-0001/check",
            json!({"applicant": {"type": "001", "id": company}, "use_reason": "食品经营许可受理"}),
        ),
    ] {
        let (st, v) = s.post(Some(token), path, &body).await;
        assert_eq!(st, 200, "{path}: {v}");
        disclosed += v["licences"].as_array().unwrap().len();
    }
    // 2 + 1 + 1 + 0, then 结婚证 and the co-owned home once (both alternatives find it), then 营业执照.
    assert_eq!(disclosed, 7);
    assert_eq!(used_leaves(&s), disclosed);

    let size = s.vault.head().size;
    store.fail_write(0);
    let (st, v) = s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!(st, 503, "{v}");
    assert!(v.get("licences").is_none() && !v.to_string().contains(CITIZEN), "{v}");
    store.set_read_only(true);
    let (st, v) = s
        .post(
            Some(VERIFIER),
            "/v1/service-items/440300-GG-0001/check",
            &json!({"applicant": {"type": "111", "id": CITIZEN}, "use_reason": "公共租赁住房申请资格审查"}),
        )
        .await;
    assert_eq!(st, 503, "{v}");
    assert!(v.get("licences").is_none() && !v.to_string().contains("J440300"), "{v}");
    store.set_read_only(false);
    assert_eq!(s.vault.head().size, size);
    assert_eq!(used_leaves(&s), disclosed);
}

#[tokio::test]
async fn bad_requests_from_verifiers() {
    let s = Server::start().await;
    issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    let size = s.vault.head().size;
    let holder = json!({"type": "111", "id": CITIZEN});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/v1/holders/licences", json!({"holder": holder}), 400, "use_reason_required"),
        ("/v1/holders/licences", json!({"holder": holder, "use_reason": "   "}), 400, "use_reason_required"),
        ("/v1/holders/licences", json!({"holder": holder, "use_reason": "查".repeat(201)}), 400, "use_reason_too_long"),
        ("/v1/holders/licences", json!({"holder": holder, "use_reason": "核验\u{202e}证照"}), 400, "invalid_text"),
        (
            "/v1/holders/licences",
            json!({"holder": {"type": "111", "id": "440305199001011231"}, "use_reason": "核验"}),
            400,
            "invalid_holder_id",
        ),
        ("/v1/holders/licences", json!({"holder": holder, "use_reason": "核验", "limit": 0}), 400, "invalid_limit"),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验", "service_item_code": "440300-XX-9999"}),
            404,
            "service_item_not_found",
        ),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验", "types": ["11100000MB0000999X001"]}),
            400,
            "unknown_licence_type",
        ),
        (
            "/v1/service-items/440300-XX-9999/check",
            json!({"applicant": holder, "use_reason": "核验"}),
            404,
            "service_item_not_found",
        ),
        (
            "/v1/service-items/440300-XK-0001/check",
            json!({"applicant": holder, "use_reason": "核验"}),
            400,
            "applicant_type_mismatch",
        ),
        (
            "/v1/service-items/440300-XK-0003/check",
            json!({"applicant": holder, "use_reason": "核验", "other_holders": {"spouse": holder}}),
            400,
            "unknown_holder_role",
        ),
        ("/v1/service-items/440300-XK-0003/check", json!({"applicant": holder}), 400, "use_reason_required"),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": format!("核验{SPOUSE}的婚姻状况")}),
            400,
            "personal_number_in_text",
        ),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验", "biz_num": SPOUSE}),
            400,
            "personal_number_in_text",
        ),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验", "status": vec!["valid"; 51]}),
            400,
            "invalid_request",
        ),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验",
                   "on_behalf_of": {"platform": "a.example/log", "client_id": "c", "client_name": SPOUSE}}),
            400,
            "personal_number_in_text",
        ),
        (
            "/v1/service-items/440300-XK-0003/check",
            json!({"applicant": holder, "use_reason": "核验",
                   "on_behalf_of": {"platform": "a.example/log", "client_id": "c\u{0}", "client_name": "窗口"}}),
            400,
            "invalid_text",
        ),
        (
            "/v1/holders/licences",
            json!({"holder": holder, "use_reason": "核验", "on_behalf_of": {"platform": "a.example/log", "client_id": "c"}}),
            400,
            "invalid_body",
        ),
    ];
    for (path, body, status, code) in cases {
        let (st, v) = s.post(Some(VERIFIER), path, &body).await;
        assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{path} {body}: {v}");
    }
    // Nothing was disclosed or recorded by any of them.
    assert_eq!(s.vault.head().size, size);
    let (st, v) = s.post(Some(HOLDER_CHANNEL), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")));
    let (st, _) = s.post(Some(VERIFIER), "/v1/holders/usage", &json!({"holder": holder})).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn annotated_copies_verify_and_expire() {
    let s = Server::start().await;
    let company = licvault::domain::holder::complete_uscc("91440300MA5E0003").unwrap();
    let bl = s.issue_company(&company).await;
    let id = bl["licence"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/licences/{id}/annotated-copies");
    let body = json!({"purpose": "仅供办理食品经营许可使用", "valid_days": 30, "use_reason": "食品经营许可受理，留存营业执照加注件",
                      "service_item_code": "440300-XK-0001", "biz_num": "SPJY-2026-0042"});
    let (st, copy) = s.post(Some(VERIFIER), &path, &body).await;
    assert_eq!(st, 201, "{copy}");
    assert_eq!(copy["original_id"], id.as_str());
    let doc = copy["document"].as_str().unwrap().to_string();

    let (st, v) = s.post(None, "/v1/verify", &json!({"payload": doc})).await;
    assert_eq!(st, 200);
    assert_eq!((v["verdict"].as_str(), v["valid"].as_bool()), (Some("annotated_copy"), Some(true)), "{v}");
    assert_eq!(v["annotated_copy"]["purpose"], "仅供办理食品经营许可使用");
    assert_eq!(v["annotated_copy"]["maker"]["uscc"], "11440300MB20008055");
    assert_eq!(v["annotated_copy"]["original_status"], "valid");
    assert_eq!(v["licence"]["id"], id.as_str());
    // The QR payload of the copy verifies the same way.
    let (_, q) = s.post(None, "/v1/verify", &json!({"payload": copy["qr_payload"]})).await;
    assert_eq!(q["verdict"], "annotated_copy", "{q}");

    // After its validity: expired.
    let later = licvault::vault::unix_now() + 31 * 86_400;
    let verdict = s.vault.verify_presented_at(&doc, later).unwrap();
    assert_eq!(verdict.kind, licvault::vault::VerdictKind::Expired);
    // ...and then it tells nothing more about the original.
    assert!(verdict.licence.is_none() && verdict.copy.as_ref().unwrap().original_status.is_none());
    // A flipped signature byte: invalid_signature.
    use base64::Engine;
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(&doc).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let (_, v) =
        s.post(None, "/v1/verify", &json!({"payload": base64::engine::general_purpose::STANDARD.encode(&bytes)})).await;
    assert_eq!(v["verdict"], "invalid_signature", "{v}");
    // A copy made by another vault (same development keys, another log): not in this log.
    let other = Server::start().await;
    other.issue_company(&company).await;
    let other_bl = other.issue_company(&licvault::domain::holder::complete_uscc("91440300MA5E0004").unwrap()).await;
    let (st, c2) = other
        .post(
            Some(VERIFIER),
            &format!("/v1/licences/{}/annotated-copies", other_bl["licence"]["id"].as_str().unwrap()),
            &body,
        )
        .await;
    assert_eq!(st, 201, "{c2}");
    let (_, v) = s.post(None, "/v1/verify", &json!({"payload": c2["document"]})).await;
    assert_eq!(v["verdict"], "not_in_log", "{v}");

    // Revoking the original shows on the copy.
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &json!({"reason": "吊销"})).await;
    assert_eq!(st, 200);
    let (_, v) = s.post(None, "/v1/verify", &json!({"payload": doc})).await;
    assert_eq!((v["verdict"].as_str(), v["valid"].as_bool()), (Some("annotated_copy"), Some(false)), "{v}");
    assert_eq!(v["annotated_copy"]["original_status_words"], "已吊销");
    // No new copy of a revoked licence (the refusal tells the status, so it is recorded too); a
    // licence the verifier may not see is not found.
    let size = s.vault.head().size;
    let (st, v) = s.post(Some(VERIFIER), &path, &body).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("licence_not_valid")), "{v}");
    assert_eq!(s.vault.head().size, size + 1);
    let card = issue(&s, DISABILITY_ISSUER, &disability(CITIZEN)).await;
    let (st, v) = s
        .post(
            Some(VERIFIER),
            &format!("/v1/licences/{}/annotated-copies", card["licence"]["id"].as_str().unwrap()),
            &body,
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("licence_not_found")), "{v}");
    let mut long = body.clone();
    long["valid_days"] = json!(91);
    let (st, _) = s.post(Some(VERIFIER), &path, &long).await;
    assert_eq!(st, 400);

    // The company sees the copy, and the refused one, in its usage.
    let (_, u) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/usage", &json!({"holder": {"type": "001", "id": company}})).await;
    assert_eq!(u["uses"][0]["action"], "annotated_copy_refused", "{u}");
    assert_eq!(u["uses"][1]["action"], "annotated_copy", "{u}");
    assert_eq!(u["uses"][1]["annotated_copy"]["sha256"], copy["sha256"]);

    // A copy shows no more than a lookup: a 结婚证's copy has the holder's number masked and
    // neither spouse's ID number.
    let m = issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    let (st, c) = s
        .post(Some(VERIFIER), &format!("/v1/licences/{}/annotated-copies", m["licence"]["id"].as_str().unwrap()), &body)
        .await;
    assert_eq!(st, 201, "{c}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(c["document"].as_str().unwrap()).unwrap();
    let env = licvault::crypto::cose::Envelope::parse(&bytes).unwrap();
    let a = licvault::domain::annotation::Annotation::from_payload(env.payload()).unwrap();
    assert_eq!(a.face.holder_id, "4403**********123X");
    assert!(a.face.fields.iter().all(|(k, v)| !k.contains("身份证件号") && !v.contains("440524188001010014")));
    assert!(!String::from_utf8_lossy(&bytes).contains(CITIZEN));
}

#[tokio::test]
async fn catalogue_changes_while_running_and_after_a_restart() {
    let store = Arc::new(licvault::store::MemoryStore::new());
    let s = Server::start_on(store.clone(), tempfile::tempdir().unwrap()).await;
    let (_, t) = s.get(None, &format!("/v1/licence-types/{MARRIAGE}")).await;
    let mut marriage_type = t.clone();
    // Refused like the file: an item requiring a type nobody may be shown.
    let item = json!({"code": "440300-GG-0002", "name": "残疾人两项补贴申请", "applicant": "111",
                      "requirements": [{"type_code": DISABILITY, "required": true}]});
    let (st, v) = s.put(Some(ADMIN), "/v1/admin/service-items/440300-GG-0002", &item).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_catalogue")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("sharing class is none"), "{v}");
    let (st, _) = s.put(Some(VERIFIER), "/v1/admin/service-items/440300-GG-0002", &item).await;
    assert_eq!(st, 403);
    let (st, v) = s.put(Some(ADMIN), "/v1/admin/service-items/440300-GG-0003", &item).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_catalogue")), "{v}");

    // A new item takes effect at once.
    let item = json!({"code": "440300-GG-0002", "name": "婚育登记", "applicant": "111",
                      "requirements": [{"type_code": MARRIAGE, "required": true}]});
    let (st, v) = s.put(Some(ADMIN), "/v1/admin/service-items/440300-GG-0002", &item).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["log_index"].as_u64().is_some());
    let (st, got) = s.get(None, "/v1/service-items/440300-GG-0002").await;
    assert_eq!((st, got["name"].as_str()), (200, Some("婚育登记")), "{got}");
    issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    let check = json!({"applicant": {"type": "111", "id": CITIZEN}, "use_reason": "婚育登记"});
    let (_, v) = s.post(Some(VERIFIER), "/v1/service-items/440300-GG-0002/check", &check).await;
    assert_eq!(v["satisfied"], true, "{v}");

    // 结婚证 made unconditional: a verifier whose scope does not list it now sees it.
    let scoped = s.new_client(json!({"id": "bdc-window", "name": "不动产窗口", "role": "verifier", "uscc": "11440300MB2000901E", "types": [PROPERTY]}),
    )
    .await;
    let (_, v) = s.post(Some(&scoped), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!(v["licences"].as_array().unwrap().len(), 0, "{v}");
    marriage_type["sharing"] = json!("unconditional");
    let (st, v) = s.put(Some(ADMIN), &format!("/v1/admin/licence-types/{MARRIAGE}"), &marriage_type).await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s.post(Some(&scoped), "/v1/holders/licences", &lookup_body("111", CITIZEN)).await;
    assert_eq!(v["licences"].as_array().unwrap().len(), 1, "{v}");
    // The same definition again changes nothing and logs nothing.
    let size = s.vault.head().size;
    let (st, v) = s.put(Some(ADMIN), &format!("/v1/admin/licence-types/{MARRIAGE}"), &marriage_type).await;
    assert_eq!((st, v["log_index"].clone()), (200, Value::Null), "{v}");
    assert_eq!(s.vault.head().size, size);
    let kinds: Vec<String> = (0..size).map(|i| s.vault.leaf(i).unwrap().unwrap().event.kind).collect();
    assert!(kinds.iter().any(|k| k == "catalogue.type") && kinds.iter().any(|k| k == "catalogue.item"));

    // 残疾人证 made conditional, an item that requires it, then 残疾人证 edited again: the replay at
    // start-up must follow that order (the item fits only after the first change).
    let (_, mut card_type) = s.get(None, &format!("/v1/licence-types/{DISABILITY}")).await;
    card_type["sharing"] = json!("conditional");
    let (st, v) = s.put(Some(ADMIN), &format!("/v1/admin/licence-types/{DISABILITY}"), &card_type).await;
    assert_eq!(st, 200, "{v}");
    let subsidy = json!({"code": "440300-GG-0003", "name": "残疾人两项补贴申请", "applicant": "111",
                         "requirements": [{"type_code": DISABILITY, "required": true}]});
    let (st, v) = s.put(Some(ADMIN), "/v1/admin/service-items/440300-GG-0003", &subsidy).await;
    assert_eq!(st, 200, "{v}");
    card_type["validity_years"] = json!(5);
    card_type["name"] = json!(" 残疾人证 ");
    let (st, v) = s.put(Some(ADMIN), &format!("/v1/admin/licence-types/{DISABILITY}"), &card_type).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["licence_type"]["name"], "残疾人证", "kept as the text rule leaves it: {v}");

    // After a restart on the same store, every change is still in force.
    s.vault.close();
    drop(s);
    let s = Server::start_on(store, tempfile::tempdir().unwrap()).await;
    let (st, _) = s.get(None, "/v1/service-items/440300-GG-0002").await;
    assert_eq!(st, 200);
    let (_, t) = s.get(None, &format!("/v1/licence-types/{MARRIAGE}")).await;
    assert_eq!(t["sharing"], "unconditional");
    let (_, t) = s.get(None, &format!("/v1/licence-types/{DISABILITY}")).await;
    assert_eq!((t["sharing"].as_str(), t["validity_years"].as_u64()), (Some("conditional"), Some(5)), "{t}");
    let (st, _) = s.get(None, "/v1/service-items/440300-GG-0003").await;
    assert_eq!(st, 200);
}

/// `licvault check` re-derives the holder and usage indexes, the copy rows and the catalogue
/// pointers from the leaves and finds a row added to or changed in any of them.
#[tokio::test]
async fn check_rebuilds_the_indexes_from_the_log() {
    use licvault::store::{Batch, Cf, Store};
    let data = tempfile::tempdir().unwrap();
    let path = data.path().to_path_buf();
    let store = Arc::new(licvault::store::RocksStore::open(&path).unwrap());
    let s = Server::start_on(store.clone(), data).await;
    let home = issue(&s, PROPERTY_ISSUER, &property(CITIZEN, Some(SPOUSE))).await;
    let married = issue(&s, OTHER_ISSUER, &marriage(CITIZEN)).await;
    s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", SPOUSE)).await;
    s.post(Some(VERIFIER), "/v1/holders/licences", &lookup_body("111", STRANGER)).await;
    // A presentation made and redeemed: a usage row each.
    let (st, made) = s
        .post(
            Some(HOLDER_CHANNEL),
            &format!("/v1/licences/{}/presentations", married["licence"]["id"].as_str().unwrap()),
            &json!({"holder": {"type": "111", "id": CITIZEN}}),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let (st, r) = s
        .post(Some(VERIFIER), "/v1/presentations/redeem", &json!({"payload": made["payload"], "use_reason": "核验"}))
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, _) = s
        .post(
            Some(VERIFIER),
            &format!("/v1/licences/{}/annotated-copies", home["licence"]["id"].as_str().unwrap()),
            &json!({"purpose": "仅供核验住房情况使用", "use_reason": "公共租赁住房资格审查"}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, item) = s.get(None, "/v1/service-items/440300-XK-0002").await;
    let mut item = item.clone();
    item["name"] = json!("道路旅客运输经营许可（新办）");
    let (st, _) = s.put(Some(ADMIN), "/v1/admin/service-items/440300-XK-0002", &item).await;
    assert_eq!(st, 200);

    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_licvault"))
            .args(["check", "--data", path.to_str().unwrap(), "--keys", s.keys.path().to_str().unwrap()])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // The home has two holders: two rows each for its issuance, the co-owner's lookup and the
    // copy; the stranger's empty lookup one; the presentation and its redemption one each.
    let (ok, text) = check();
    assert!(
        ok && text.contains("indexes ok: 3 holder rows, 7 usage rows, 1 annotated-copy rows, 1 catalogue"),
        "{text}"
    );

    // A forged use shown to a holder: found.
    let mut b = Batch::default();
    b.put(Cf::Usage, [[9u8; 32].as_slice(), &(!5u64).to_be_bytes()].concat(), Vec::new());
    store.write(b).unwrap();
    let (ok, text) = check();
    assert!(!ok && text.contains("usage index"), "{text}");
    // A copy row pointed at another leaf: found too.
    let (k, _) = store.scan_prefix(Cf::Docs, b"c/", 1).unwrap().remove(0);
    let mut b = Batch::default();
    b.put(Cf::Docs, k, 1u64.to_be_bytes().to_vec());
    store.write(b).unwrap();
    let (ok, text) = check();
    assert!(!ok && text.contains("NOT ok"), "{text}");
}

/// Rotating the annotation key does not invalidate the copies the old one signed: every key the
/// log recorded (an `annotation.key` leaf each) still verifies its copies.
#[tokio::test]
async fn copies_outlive_an_annotation_key_rotation() {
    use base64::Engine;
    use licvault::vault::usage::UseInput;
    let store: Arc<dyn licvault::store::Store> = Arc::new(licvault::store::MemoryStore::new());
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    let start = || async {
        let parts = licvault::vault::Parts::load(store.clone(), keys.path(), &fixtures).unwrap();
        let v = licvault::vault::Vault::start(parts).await.unwrap();
        licvault::cli::seed_demo(&v, &fixtures).await.unwrap();
        v
    };
    let v = start().await;
    let issuer = v.client("mzj-issuer").unwrap();
    let req: licvault::vault::IssueRequest = serde_json::from_value(marriage(CITIZEN)).unwrap();
    let issued = v.issue(&issuer, req, None).await.unwrap();
    let counter = v.client("zwfw-counter").unwrap();
    let ctx =
        v.use_context(&counter, UseInput { use_reason: Some("公共租赁住房资格审查"), ..Default::default() }).unwrap();
    let copy = v.annotated_copy(&counter, &ctx, &issued.licence.id, "仅供公租房审核使用", 30).await.unwrap();
    let payload = base64::engine::general_purpose::STANDARD.encode(&copy.document);
    assert_eq!(v.verify_presented(&payload).unwrap().kind, licvault::vault::VerdictKind::AnnotatedCopy);
    v.close();
    drop(v);

    // A new annotation key (here: another Ed25519 key of the set).
    std::fs::copy(keys.path().join("log.key.pem"), keys.path().join("annotation.key.pem")).unwrap();
    let v = start().await;
    let kinds: Vec<String> =
        (0..v.head().size).map(|i| v.leaf(i).unwrap().unwrap().event.kind).filter(|k| k == "annotation.key").collect();
    assert_eq!(kinds.len(), 2, "both keys are in the log");
    assert_eq!(v.verify_presented(&payload).unwrap().kind, licvault::vault::VerdictKind::AnnotatedCopy);
    let counter = v.client("zwfw-counter").unwrap();
    let fresh = v.annotated_copy(&counter, &ctx, &issued.licence.id, "仅供公租房审核使用", 30).await.unwrap();
    assert_ne!(fresh.document[..20], copy.document[..20], "signed under the new kid");
    let fresh = base64::engine::general_purpose::STANDARD.encode(&fresh.document);
    assert_eq!(v.verify_presented(&fresh).unwrap().kind, licvault::vault::VerdictKind::AnnotatedCopy);
    v.close();
}
