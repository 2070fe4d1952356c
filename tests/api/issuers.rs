//! Issuing departments' daily work (issue 9): the status model over HTTP (撤回, 撤销, 吊销 and
//! 注销 after each, a suspension with an end), kinds of new version, and the idempotent retry of
//! every write.

use serde_json::{json, Value};

use crate::common::*;

const COMPANY: &str = "91440300MA5E000256";

fn id(v: &Value) -> String {
    v["licence"]["id"].as_str().unwrap().to_string()
}

/// POST with an Idempotency-Key: status, the `Idempotent-Replayed` header, body.
async fn post_idem(s: &Server, path: &str, key: &str, body: &Value) -> (u16, String, Value) {
    let res =
        s.http.post(s.url(path)).bearer_auth(ISSUER).header("Idempotency-Key", key).json(body).send().await.unwrap();
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_string());
    (status, replayed.unwrap_or_default(), res.json().await.unwrap())
}

async fn verdict(s: &Server, document: &Value) -> Value {
    let (st, v) = s.post(None, "/v1/verify", &json!({"payload": document})).await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn each_ending_has_its_status_and_words_and_cancel_closes_every_one() {
    let s = Server::start().await;
    for (action, status, words) in
        [("withdraw", "withdrawn", "已撤回"), ("annul", "annulled", "已撤销"), ("revoke", "revoked", "已吊销")]
    {
        let issued = s.issue_company(COMPANY).await;
        let l = id(&issued);
        let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/{action}"), &json!({"reason": "依法处理"})).await;
        assert_eq!((st, v["status"].as_str(), v["status_words"].as_str()), (200, Some(status), Some(words)), "{v}");
        let seen = verdict(&s, &issued["document"]).await;
        assert_eq!((seen["verdict"].as_str(), seen["status_words"].as_str()), (Some(status), Some(words)), "{seen}");
        // Nothing but 注销 after an ending; 注销 after each (行政许可法 art. 70).
        for again in ["suspend", "reinstate", "withdraw", "annul", "revoke"] {
            let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/{again}"), &json!({"reason": "再次"})).await;
            assert_eq!((st, v["code"].as_str()), (409, Some("conflict")), "{again} after {action}: {v}");
        }
        let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/cancel"), &json!({"reason": "注销"})).await;
        assert_eq!((st, v["status_words"].as_str()), (200, Some("已注销")), "{v}");
        let (_, hist) = s.get(Some(ISSUER), &format!("/v1/licences/{l}/history")).await;
        let actions: Vec<&str> =
            hist["events"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(actions, [action, "cancel"], "{hist}");
    }
}

#[tokio::test]
async fn a_suspension_can_have_an_end() {
    let s = Server::start().await;
    let l = id(&s.issue_company(COMPANY).await);
    let path = format!("/v1/licences/{l}/suspend");
    let (st, v) = s.post(Some(ISSUER), &path, &json!({"reason": "暂扣", "until": "2020-01-01"})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_dates")), "an end in the past: {v}");
    let (st, v) = s
        .post(Some(ISSUER), &format!("/v1/licences/{l}/revoke"), &json!({"reason": "吊销", "until": "2099-01-01"}))
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_request")), "only a suspension has an end: {v}");
    let (st, v) = s.post(Some(ISSUER), &path, &json!({"reason": "暂扣许可证件", "until": "2099-03-31"})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["suspended_until"].as_str()),
        (200, Some("suspended"), Some("2099-03-31")),
        "{v}"
    );
    let (_, hist) = s.get(Some(ISSUER), &format!("/v1/licences/{l}/history")).await;
    assert_eq!(hist["events"][1]["until"], "2099-03-31", "{hist}");
    // Reinstated before its end: valid, and the end is gone.
    let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/reinstate"), &json!({"reason": "提前恢复"})).await;
    assert_eq!((st, v["status"].as_str(), v.get("suspended_until")), (200, Some("valid"), None), "{v}");
}

#[tokio::test]
async fn kinds_of_new_version() {
    let s = Server::start().await;
    let first = s.issue_company(COMPANY).await;
    let l = id(&first);
    let versions = format!("/v1/licences/{l}/versions");
    // A replacement keeps the face: it takes nothing but kind and reason.
    let (st, v) = s
        .post(
            Some(ISSUER),
            &versions,
            &json!({"kind": "replacement", "reason": "遗失补证", "valid_until": "2099-01-01"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_request")), "{v}");
    let (st, v) = s.post(Some(ISSUER), &versions, &json!({"kind": "change", "reason": "无变化"})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_request")), "a change that changes nothing: {v}");
    let (st, v) = s.post(Some(ISSUER), &versions, &json!({"kind": "reissue", "reason": "?"})).await;
    assert_eq!(st, 400, "an unknown kind: {v}");
    let (st, second) = s.post(Some(ISSUER), &versions, &json!({"kind": "replacement", "reason": "遗失补证"})).await;
    assert_eq!(st, 201, "{second}");
    assert_eq!(second["licence"]["fields"], first["licence"]["fields"]);
    assert_eq!(second["licence"]["valid_until"], first["licence"]["valid_until"]);
    let old = verdict(&s, &first["document"]).await;
    assert_eq!(old["verdict"], "superseded");
    assert_eq!(old["status_words"], "已更新（有新版本）");
    assert_eq!(
        old["successor"],
        json!({"id": id(&second), "version": "002", "kind": "replacement", "kind_words": "补证"})
    );
    let (_, read) = s.get(Some(ISSUER), &format!("/v1/licences/{l}")).await;
    assert_eq!(read["successor"]["kind"], "replacement", "{read}");
    let (_, hist) = s.get(Some(ISSUER), &format!("/v1/licences/{}/history", id(&second))).await;
    assert_eq!(hist["events"][0]["kind"], "replacement", "{hist}");

    // 延续 only before expiry.
    let mut body = business_licence(&licvault::domain::holder::complete_uscc("91440300MA5E0009").unwrap());
    body["valid_from"] = json!("2015-01-01");
    body["valid_until"] = json!("2020-12-31");
    let (_, expired) = s.post(Some(ISSUER), "/v1/licences", &body).await;
    let (st, v) = s
        .post(
            Some(ISSUER),
            &format!("/v1/licences/{}/versions", id(&expired)),
            &json!({"kind": "renewal", "reason": "延续"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (409, Some("conflict")), "{v}");
}

/// Every write retried with its Idempotency-Key answers the first result and adds no leaf; the
/// key with another body is refused.
#[tokio::test]
async fn every_write_retried_answers_the_first_result() {
    let s = Server::start().await;
    let issue = business_licence(COMPANY);
    let (st, _, first) = post_idem(&s, "/v1/licences", "k-issue", &issue).await;
    assert_eq!(st, 201);
    let l = id(&first);
    let size = s.vault.head().size;
    let (st, replayed, again) = post_idem(&s, "/v1/licences", "k-issue", &issue).await;
    assert_eq!((st, replayed.as_str(), id(&again)), (200, "true", l.clone()));

    let versions = format!("/v1/licences/{l}/versions");
    let body = json!({"kind": "exchange", "reason": "换发新版"});
    let (st, _, second) = post_idem(&s, &versions, "k-version", &body).await;
    assert_eq!(st, 201, "{second}");
    let (st, replayed, again) = post_idem(&s, &versions, "k-version", &body).await;
    assert_eq!((st, replayed.as_str(), id(&again)), (200, "true", id(&second)), "{again}");
    assert_eq!(s.vault.head().size, size + 2, "one superseded and one issued leaf, once");

    let l2 = id(&second);
    for (action, key) in
        [("suspend", "k-suspend"), ("reinstate", "k-reinstate"), ("revoke", "k-revoke"), ("cancel", "k-cancel")]
    {
        let path = format!("/v1/licences/{l2}/{action}");
        let body = json!({"reason": format!("{action} 的理由")});
        let (st, replayed, done) = post_idem(&s, &path, key, &body).await;
        assert_eq!((st, replayed.as_str()), (200, "false"), "{done}");
        let size = s.vault.head().size;
        let (st, replayed, again) = post_idem(&s, &path, key, &body).await;
        assert_eq!((st, replayed.as_str()), (200, "true"), "a retried {action}: {again}");
        assert_eq!(again["log"]["index"], done["log"]["index"]);
        assert_eq!(s.vault.head().size, size, "a retried {action} adds no leaf");
        // Without the key the same request is a conflict (the status has moved on) …
        if action != "suspend" {
            let (st, _) = s.post(Some(ISSUER), &path, &body).await;
            assert_eq!(st, 409);
        }
        // … and the key with another body, or for another write, is refused.
        let (st, _, v) = post_idem(&s, &path, key, &json!({"reason": "另一个理由"})).await;
        assert_eq!((st, v["code"].as_str()), (422, Some("idempotency_key_reused")), "{v}");
    }
    let (st, _, v) = post_idem(&s, "/v1/licences", "k-revoke", &issue).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("idempotency_key_reused")), "{v}");
}

/// 机构改革: the administrator moves a department's licences of one type to another department;
/// the new department revokes one, the old one may no longer act, documents keep verifying, and
/// the transfer survives a restart (read back from its leaf).
#[tokio::test]
async fn a_transfer_then_the_new_department_revokes() {
    const TO: &str = "11440300MB20002079"; // 示例市交通运输局
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let l = id(&issued);
    let (_, new_client) = s
        .post(
            Some(ADMIN),
            "/v1/admin/clients",
            &json!({"id": "jtj-issuer", "name": "交通运输局业务系统", "role": "issuer", "uscc": TO}),
        )
        .await;
    let to_token = new_client["token"].as_str().unwrap().to_string();
    let body =
        json!({"from": "11440300MB2000100X", "to": TO, "type_code": BUSINESS_LICENCE, "reason": "机构改革，职责划转"});
    let (st, v) = s.post(Some(ISSUER), "/v1/admin/transfers", &body).await;
    assert_eq!(st, 403, "only an administrator transfers: {v}");
    let (st, t) = s
        .post(
            Some(ADMIN),
            "/v1/admin/transfers",
            &json!({"from": "11440300MB2000100X", "to": "11440300MB2000100X", "reason": "?"}),
        )
        .await;
    assert_eq!(st, 400, "to another department: {t}");
    let (st, t) = s.post(Some(ADMIN), "/v1/admin/transfers", &body).await;
    assert_eq!(st, 201, "{t}");
    // The old department may no longer act on it; the new one revokes it.
    let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/suspend"), &json!({"reason": "暂扣"})).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s.post(Some(&to_token), &format!("/v1/licences/{l}/revoke"), &json!({"reason": "依法吊销"})).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("revoked")), "{v}");
    let (_, hist) = s.get(Some(&to_token), &format!("/v1/licences/{l}/history")).await;
    assert_eq!(hist["events"][1]["actor"], "jtj-issuer", "{hist}");
    // The document, signed by the old department, verifies (as revoked).
    assert_eq!(verdict(&s, &issued["document"]).await["verdict"], "revoked");
    // A licence issued after the transfer stays with its issuer.
    let later = id(&s.issue_company(&licvault::domain::holder::complete_uscc("91440300MA5E0011").unwrap()).await);
    let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{later}/suspend"), &json!({"reason": "暂扣"})).await;
    assert_eq!(st, 200, "{v}");
    // The licence has left the old department's list; the new one's feed has its revoke.
    let (_, old_list) = s.get(Some(ISSUER), "/v1/licences").await;
    assert!(!old_list["licences"].as_array().unwrap().iter().any(|x| x["id"] == l.as_str()), "{old_list}");
    assert!(old_list["licences"].as_array().unwrap().iter().any(|x| x["id"] == later.as_str()), "{old_list}");
    // The new department lists it (whole, by type, by its number) and not what stayed behind.
    for query in [
        "",
        &format!("?type={BUSINESS_LICENCE}"),
        &format!("?type={BUSINESS_LICENCE}&number={}", issued["licence"]["number"].as_str().unwrap()),
    ] {
        let (st, new_list) = s.get(Some(&to_token), &format!("/v1/licences{query}")).await;
        let ids: Vec<&str> =
            new_list["licences"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
        assert_eq!((st, ids), (200, vec![l.as_str()]), "{query}: {new_list}");
    }
    let (_, new_list) = s.get(Some(&to_token), "/v1/licences?status=revoked").await;
    assert_eq!(new_list["licences"][0]["status"], "revoked", "{new_list}");
    // Its own licences and the ones it received, merged in issue order, a page at a time.
    let road = json!({"type_code": "11100000MB0000203C001",
        "holder": {"type": "001", "id": COMPANY, "name": "示例科技有限公司"},
        "fields": {"业户名称": "示例科技有限公司", "地址": "示例市示例区科技路1号", "经济类型": "有限责任公司",
                   "经营范围": "道路普通货物运输", "证号": "粤交运管许可深字440300000001号"}});
    let own = id(&crate::verifiers::issue(&s, "dev-token-jtys-issuer-0001", &road).await);
    let (mut seen, mut cursor) = (Vec::new(), String::new());
    loop {
        let (_, page) = s.get(Some(&to_token), &format!("/v1/licences?limit=1{cursor}")).await;
        seen.extend(page["licences"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [l.clone(), own]);
    let (st, feed) = s.get(Some(&to_token), "/v1/changes").await;
    assert_eq!(st, 200, "{feed}");
    assert!(
        feed["changes"].as_array().unwrap().iter().any(|c| c["licence"] == l.as_str() && c["to"] == "revoked"),
        "{feed}"
    );
    let (_, list) = s.get(Some(ADMIN), "/v1/admin/transfers").await;
    assert_eq!(list["transfers"][0]["log_index"], t["log_index"], "{list}");
    // After a restart the transfer is read back from its leaf.
    let transfers = s.vault.transfers();
    let again = licvault::vault::transfers::logged_transfers(s.vault.store().as_ref(), &s.vault.head()).unwrap();
    assert_eq!(again, transfers);
}

/// A department lists its licences a page at a time (by type, by number, by status), and keeps
/// its own database in step with the changes feed; another department sees none of it.
#[tokio::test]
async fn listing_and_the_changes_feed() {
    let s = Server::start().await;
    let uscc = |n: u32| licvault::domain::holder::complete_uscc(&format!("91440300MA5E{n:04}")).unwrap();
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(id(&s.issue_company(&uscc(n)).await));
    }
    let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{}/revoke", ids[2]), &json!({"reason": "吊销"})).await;
    assert_eq!(st, 200, "{v}");
    // Pages of 3, in issue order, to the end.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, page) = s.get(Some(ISSUER), &format!("/v1/licences?limit=3{cursor}")).await;
        assert_eq!(st, 200, "{page}");
        let got = page["licences"].as_array().unwrap();
        assert!(got.len() <= 3);
        seen.extend(got.iter().map(|l| l["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, revoked) = s.get(Some(ISSUER), "/v1/licences?status=revoked").await;
    assert_eq!(revoked["licences"].as_array().unwrap().len(), 1, "{revoked}");
    assert_eq!(revoked["licences"][0]["status_words"], "已吊销");
    // By the number printed on it, with its type.
    let (_, read) = s.get(Some(ISSUER), &format!("/v1/licences/{}", ids[4])).await;
    let number = read["licence"]["number"].as_str().unwrap();
    let (st, found) = s.get(Some(ISSUER), &format!("/v1/licences?type={BUSINESS_LICENCE}&number={number}")).await;
    assert_eq!((st, found["licences"].as_array().unwrap().len()), (200, 1), "{found}");
    assert_eq!(found["licences"][0]["id"], ids[4].as_str());
    assert_eq!(found["licences"][0]["number"], number);
    assert_eq!(found["licences"][0]["status"], "valid");
    // A new version: the old one is listed as superseded, the new one as valid.
    let (st, v) = s
        .post(
            Some(ISSUER),
            &format!("/v1/licences/{}/versions", ids[4]),
            &json!({"kind": "replacement", "reason": "遗失补证"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (_, found) = s.get(Some(ISSUER), &format!("/v1/licences?type={BUSINESS_LICENCE}&number={number}")).await;
    let statuses: Vec<(&str, &str)> = found["licences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(ids[4].as_str(), "superseded"), (id(&v).as_str(), "valid")], "{found}");
    let (st, v) = s.get(Some(ISSUER), &format!("/v1/licences?number={number}")).await;
    assert_eq!(st, 400, "a number needs its type: {v}");
    let (st, v) = s.get(Some(ISSUER), "/v1/licences?cursor=abc").await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_cursor")), "{v}");
    // Another department lists none of them, and may not ask for this one's.
    let (_, other) = s.get(Some(OTHER_ISSUER), "/v1/licences").await;
    assert!(other["licences"].as_array().unwrap().is_empty(), "{other}");
    let (st, _) = s.get(Some(OTHER_ISSUER), "/v1/licences?issuer=11440300MB2000100X").await;
    assert_eq!(st, 403);

    // The reconciliation loop: everything from the start, then only what is new.
    let (st, feed) = s.get(Some(ISSUER), "/v1/changes?limit=5").await;
    assert_eq!(st, 200, "{feed}");
    assert_eq!(feed["changes"].as_array().unwrap().len(), 5);
    assert_eq!(feed["more"], true);
    let mut after = feed["last"].as_u64().unwrap();
    let mut events: Vec<(String, String)> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["licence"].as_str().unwrap().into(), c["to"].as_str().unwrap().into()))
        .collect();
    loop {
        let (_, feed) = s.get(Some(ISSUER), &format!("/v1/changes?after={after}&limit=5")).await;
        events.extend(
            feed["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["licence"].as_str().unwrap().into(), c["to"].as_str().unwrap().into())),
        );
        after = feed["last"].as_u64().unwrap();
        if feed["more"] == false {
            break;
        }
    }
    assert_eq!(events.len(), 10, "seven issued, one revoked, one superseded by a new version: {events:?}");
    assert_eq!(events[7], (ids[2].clone(), "revoked".to_string()));
    assert_eq!(events[8], (ids[4].clone(), "superseded".to_string()));
    // Nothing new: an empty page that keeps `last`.
    let (_, feed) = s.get(Some(ISSUER), &format!("/v1/changes?after={after}")).await;
    assert_eq!((feed["changes"].as_array().unwrap().len(), feed["last"].as_u64()), (0, Some(after)));
    let (st, _) = s.get(Some(ADMIN), "/v1/changes").await;
    assert_eq!(st, 400, "an administrator names the department");
}

/// A store made before listings existed (no `listing` rows): start-up writes them once from its
/// leaves, and the listing and the feed then hold every licence.
#[tokio::test]
async fn listings_of_an_older_store_are_built_at_start() {
    use licvault::store::{Batch, Cf, MemoryStore, Store};
    use std::sync::Arc;
    let old = Arc::new(MemoryStore::new());
    let s = Server::start_on(old.clone(), tempfile::tempdir().unwrap()).await;
    let a = id(&s.issue_company(COMPANY).await);
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{a}/suspend"), &json!({"reason": "暂扣"})).await;
    assert_eq!(st, 200);
    s.vault.close();
    // The same store without its listing rows and the flag that says they were built.
    let copy = Arc::new(MemoryStore::new());
    let mut batch = Batch::default();
    for cf in Cf::ALL.into_iter().filter(|cf| *cf != Cf::Listing) {
        for (k, v) in old.scan_prefix(cf, b"", usize::MAX).unwrap() {
            if !(cf == Cf::Meta && k.starts_with(b"listing-v")) {
                batch.put(cf, k, v);
            }
        }
    }
    copy.write(batch).unwrap();
    assert!(copy.scan_prefix(Cf::Listing, b"", 1).unwrap().is_empty());
    let s = Server::start_on(copy.clone(), tempfile::tempdir().unwrap()).await;
    let (_, page) = s.get(Some(ISSUER), "/v1/licences").await;
    let listed: Vec<&str> = page["licences"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert!(listed.contains(&a.as_str()), "{page}");
    // The rows carry the status the record has.
    let (_, page) = s.get(Some(ISSUER), "/v1/licences?status=suspended").await;
    assert_eq!(page["licences"][0]["id"], a.as_str(), "{page}");
    assert_eq!(page["licences"][0]["status_words"], "已暂扣", "{page}");
    // A row of another form (a licence the build left out keeps its first-form rows) is not
    // listed, and does not stop the listing.
    let mut odd = Batch::default();
    odd.put(Cf::Listing, [b"i/".as_slice(), b"11440300MB2000100X", &u64::MAX.to_be_bytes()].concat(), b"\0\0".to_vec());
    copy.write(odd).unwrap();
    let (st, page) = s.get(Some(ISSUER), "/v1/licences").await;
    assert_eq!((st, page["licences"].as_array().unwrap().len()), (200, 1), "{page}");
    let (_, feed) = s.get(Some(ISSUER), "/v1/changes").await;
    let about_a: Vec<&str> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["licence"] == a.as_str())
        .map(|c| c["to"].as_str().unwrap())
        .collect();
    assert_eq!(about_a, ["valid", "suspended"], "{feed}");
}

/// Migration through the batch endpoint: the original 发证日期 and the legacy number are kept,
/// bad items are refused with their reasons while the others are issued, and the same batch sent
/// again issues nothing.
#[tokio::test]
async fn a_batch_migrates_existing_licences() {
    let s = Server::start().await;
    let uscc = |n: u32| licvault::domain::holder::complete_uscc(&format!("91440300MA5E{n:04}")).unwrap();
    let mut old = business_licence(&uscc(1));
    old["issue_date"] = json!("2012-03-15");
    old["number"] = json!("深工商4403012012031500");
    old["valid_from"] = json!("2012-03-15");
    let mut unknown_type = business_licence(&uscc(2));
    unknown_type["type_code"] = json!("11100000MB00001073999");
    let mut future = business_licence(&uscc(3));
    future["issue_date"] = json!("2999-01-01");
    let batch = json!({"items": [
        {"key": "legacy-1", "licence": old},
        {"key": "legacy-2", "licence": unknown_type},
        {"key": "legacy-3", "licence": future},
        {"key": "legacy-4", "licence": {"not": "a licence"}},
    ]});
    let (st, v) = s.post(Some(ISSUER), "/v1/licences/batch", &batch).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["issued"].as_u64(), v["refused"].as_u64()), (Some(1), Some(3)), "{v}");
    let codes: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap_or("-")).collect();
    assert_eq!(codes, ["-", "unknown_licence_type", "invalid_dates", "invalid_body"], "{v}");
    let id = v["results"][0]["id"].as_str().unwrap().to_string();
    let (_, read) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!(read["licence"]["issue_date"], "2012-03-15", "{read}");
    assert_eq!(read["licence"]["number"], "深工商4403012012031500");
    assert_ne!(&read["licence"]["issued_at"].as_str().unwrap()[..4], "2012", "iat is the signing time");
    let seen = verdict(&s, &read["document"]).await;
    assert_eq!(
        (seen["verdict"].as_str(), seen["licence"]["issue_date"].as_str()),
        (Some("valid"), Some("2012-03-15")),
        "{seen}"
    );
    // Found by its issue date.
    let (_, page) = s.get(Some(ISSUER), "/v1/licences?issued_from=2012-01-01&issued_to=2012-12-31").await;
    assert_eq!(page["licences"].as_array().unwrap().len(), 1, "{page}");
    // Sent again: replayed, nothing new in the log.
    let size = s.vault.head().size;
    let (_, again) = s.post(Some(ISSUER), "/v1/licences/batch", &batch).await;
    assert_eq!((again["replayed"].as_u64(), again["issued"].as_u64()), (Some(1), Some(0)), "{again}");
    assert_eq!(again["results"][0]["id"], id.as_str());
    assert_eq!(s.vault.head().size, size);
    let (st, v) = s.post(Some(ISSUER), "/v1/licences/batch", &json!({"items": []})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .post(
            Some(ISSUER),
            "/v1/licences/batch",
            &json!({"items": [{"key": "k", "licence": {}}, {"key": "k", "licence": {}}]}),
        )
        .await;
    assert_eq!(st, 400, "a key twice: {v}");
}

/// The catalogue's cross-field rules: the 统一社会信用代码 on a 营业执照 is the holder's; a
/// 个体工商户's number starts with 92; a 食品经营许可证编号 is JY and 14 digits; half-width
/// brackets in an enum value read as the register's full-width ones.
#[tokio::test]
async fn the_catalogue_checks_across_fields() {
    let s = Server::start().await;
    let mut wrong = business_licence(COMPANY);
    wrong["fields"]["统一社会信用代码"] = json!(licvault::domain::holder::complete_uscc("91440300MA5E0007").unwrap());
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &wrong).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_fields")), "{v}");
    let mut brackets = business_licence(COMPANY);
    brackets["fields"]["类型"] = json!("有限责任公司(自然人投资或控股)");
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &brackets).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["licence"]["fields"]["类型"], "有限责任公司（自然人投资或控股）");
    let sole_trader = |holder: &str| {
        json!({"type_code": "11100000MB00001073002", "holder": {"type": "001", "id": holder, "name": "示例小吃店"},
               "fields": {"统一社会信用代码": holder, "经营者": "王五", "组成形式": "个人经营", "注册日期": "2021-03-01",
                          "经营场所": "示例市示例区美食街3号", "经营范围": "小吃服务"}})
    };
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &sole_trader(COMPANY)).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_fields")), "a company is not a 个体工商户: {v}");
    let trader = licvault::domain::holder::complete_uscc("92440300MA5E0001").unwrap();
    let mut with_company = sole_trader(&trader);
    with_company["co_holders"] = json!([{"type": "001", "id": COMPANY, "name": "示例科技有限公司"}]);
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &with_company).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_fields")), "a co-holder too: {v}");
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &sole_trader(&trader)).await;
    assert_eq!(st, 201, "{v}");
    let food = |code: &str| {
        json!({"type_code": "11100000MB00001073003", "holder": {"type": "001", "id": COMPANY, "name": "示例科技有限公司"},
               "fields": {"经营者名称": "示例科技有限公司", "法定代表人（负责人）": "张三", "住所": "示例市示例区科技路1号",
                          "经营场所": "示例市示例区科技路1号", "主体业态": "单位食堂", "经营项目": "热食类食品制售",
                          "许可证编号": code, "日常监督管理机构": "示例区市场监督管理局"}})
    };
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &food("JY2440305001234")).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_fields")), "{v}");
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &food("JY24403050012345")).await;
    assert_eq!(st, 201, "{v}");
}

/// A suspended licence gets no new version (a valid successor would escape 暂扣); reinstated, it
/// does, and the whole store still agrees with its log (`licvault check`'s comparison).
#[tokio::test]
async fn a_suspension_is_not_escaped_by_a_new_version() {
    let s = Server::start().await;
    let l = id(&s.issue_company(COMPANY).await);
    let suspend = json!({"reason": "暂扣", "until": "2099-03-31"});
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/suspend"), &suspend).await;
    assert_eq!(st, 200);
    let versions = format!("/v1/licences/{l}/versions");
    let replacement = json!({"kind": "replacement", "reason": "遗失补证"});
    let (st, v) = s.post(Some(ISSUER), &versions, &replacement).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("conflict")), "{v}");
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{l}/reinstate"), &json!({"reason": "恢复"})).await;
    assert_eq!(st, 200);
    let (st, v) = s.post(Some(ISSUER), &versions, &replacement).await;
    assert_eq!(st, 201, "{v}");
    let key = licvault::log::note::Verifier::parse(&s.vault.log_verifier_key()).unwrap();
    let report = licvault::log::replay::replay(s.vault.store().as_ref(), &key, |_, _| {}).unwrap();
    licvault::vault::records::compare_records(s.vault.store().as_ref(), &report.licences).unwrap();
}

/// Scope 6: holders beyond mainland citizens and companies. A property with a Hong Kong owner
/// (by travel permit) and co-owners by passport, by the 2023 permanent-residence card and by a
/// foreign registration: each finds it by their own number, a renewed permit finds it too, and
/// every natural person's number stays out of the QR document.
#[tokio::test]
async fn holders_beyond_mainland_citizens_find_their_licences() {
    use licvault::domain::holder::complete_gb11643;
    let s = Server::start().await;
    let resident = complete_gb11643("91184019850615001").unwrap();
    let mut body = crate::verifiers::property("44030519900101123X", None);
    body["holder"] = json!({"type": "516", "id": "h1234567800", "name": "陈大文"});
    body["co_holders"] = json!([
        {"type": "414", "id": "usa:123456789", "name": "JOHN SMITH"},
        {"type": "553", "id": resident, "name": "MARIA GARCIA"},
        {"type": "099", "id": "DEU:HRB 12345", "name": "Beispiel GmbH"},
    ]);
    body["fields"]["共有情况"] = json!("按份共有");
    let issued = crate::verifiers::issue(&s, "dev-token-zrzy-issuer-0001", &body).await;
    let l = id(&issued);
    // The canonical forms: the permit without its renewal count, the passport as STATE:NUMBER.
    assert_eq!(issued["licence"]["holder"]["id"], "H12345678", "{issued}");
    let co: Vec<&str> =
        issued["licence"]["co_holders"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(co, ["USA:123456789", resident.as_str(), "DEU:HRB12345"]);

    // Each holder finds it by their own number; the owner also by a renewed permit (…01).
    for (kind, number) in [
        ("516", "H1234567801"),
        ("516", "H12345678"),
        ("414", "USA:123456789"),
        ("553", &resident),
        ("099", "deu:hrb-12345"),
    ] {
        let (st, v) =
            s.post(Some(VERIFIER), "/v1/holders/licences", &crate::verifiers::lookup_body(kind, number)).await;
        assert_eq!(st, 200, "{v}");
        let found: Vec<&str> =
            v["licences"].as_array().unwrap().iter().map(|x| x["licence"]["id"].as_str().unwrap()).collect();
        assert_eq!(found, [l.as_str()], "{kind} {number}: {v}");
    }
    // A verifier sees the other natural persons' numbers masked, the organisation's in full.
    let (_, v) =
        s.post(Some(VERIFIER), "/v1/holders/licences", &crate::verifiers::lookup_body("099", "DEU:HRB12345")).await;
    let shown = &v["licences"][0]["licence"];
    assert_eq!(shown["holder"]["id"], "H******78", "{shown}");
    assert_eq!(shown["co_holders"][0]["id"], "USA:******789");
    assert_eq!(shown["co_holders"][2]["id"], "DEU:HRB12345");
    // Someone else's passport number of the same digits, from another state, finds nothing.
    let (_, v) =
        s.post(Some(VERIFIER), "/v1/holders/licences", &crate::verifiers::lookup_body("414", "CAN:123456789")).await;
    assert_eq!(v["licences"], json!([]), "{v}");

    // The QR document withholds every natural person's number; the foreign company's is in clear.
    let seen = verdict(&s, &issued["document"]).await;
    assert_eq!(seen["licence"]["holder"]["id"], Value::Null, "{seen}");
    assert_eq!(seen["licence"]["co_holders"][0]["id"], Value::Null, "{seen}");
    assert_eq!(seen["licence"]["co_holders"][1]["id"], Value::Null, "{seen}");
    assert_eq!(seen["licence"]["co_holders"][2]["id"], "DEU:HRB12345", "{seen}");

    // A 港澳台居民居住证 number under 111 is refused with the type to use.
    let permit = complete_gb11643("81000019900101001").unwrap();
    let mut wrong = crate::verifiers::property(&permit, None);
    let (st, v) = s.post(Some("dev-token-zrzy-issuer-0001"), "/v1/licences", &wrong).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_holder_id")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("550"), "{v}");
    wrong["holder"]["type"] = json!("550");
    crate::verifiers::issue(&s, "dev-token-zrzy-issuer-0001", &wrong).await;

    // A foreign doctor with a permanent-residence card applies at the one window.
    let doctor = json!({
        "type_code": "11100000MB000030XJ001",
        "holder": {"type": "553", "id": resident, "name": "MARIA GARCIA"},
        "fields": {"姓名": "MARIA GARCIA", "性别": "女", "出生日期": "1985-06-15", "医师级别": "执业医师",
                   "执业类别": "临床", "执业范围": "内科专业", "执业地点": "广东省深圳市",
                   "主要执业机构": "示例市人民医院", "证书编码": "110440300012345"}
    });
    crate::verifiers::issue(&s, "dev-token-wjw-issuer-0001", &doctor).await;
    let (st, v) = s
        .post(
            Some(VERIFIER),
            "/v1/service-items/440300-XK-0003/check",
            &json!({"applicant": {"type": "553", "id": resident}, "use_reason": "医师执业注册（变更执业地点）受理审查"}),
        )
        .await;
    assert_eq!((st, v["satisfied"].as_bool()), (200, Some(true)), "{v}");
}

/// A department that received another's licences of one type lists them with its own, merged
/// in issue order across pages of every size, and only what it manages.
#[tokio::test]
async fn listing_merges_received_licences_in_issue_order() {
    const TO: &str = "11440300MB20002079"; // 示例市交通运输局
    const ROAD_ISSUER: &str = "dev-token-jtys-issuer-0001";
    let s = Server::start().await;
    let uscc = |n: u32| licvault::domain::holder::complete_uscc(&format!("91440300MA6M{n:04}")).unwrap();
    let road = |n: u32| {
        json!({"type_code": "11100000MB0000203C001",
            "holder": {"type": "001", "id": uscc(n), "name": "示例运输有限公司"},
            "fields": {"业户名称": "示例运输有限公司", "地址": "示例市示例区科技路1号", "经济类型": "有限责任公司",
                       "经营范围": "道路普通货物运输", "证号": format!("粤交运管许可深字4403{n:08}号")}})
    };
    // Interleaved: more than a scan's worth (64 rows) from each department.
    let mut expected = Vec::new();
    for n in 0..70 {
        expected.push(id(&s.issue_company(&uscc(n)).await));
        expected.push(id(&crate::verifiers::issue(&s, ROAD_ISSUER, &road(1000 + n)).await));
    }
    let (st, t) = s
        .post(
            Some(ADMIN),
            "/v1/admin/transfers",
            &json!({"from": "11440300MB2000100X", "to": TO, "type_code": BUSINESS_LICENCE, "reason": "职责划转"}),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    // Issued after the transfer: stays with its issuer.
    let stays = id(&s.issue_company(&uscc(500)).await);
    let token = {
        let (_, c) = s
            .post(
                Some(ADMIN),
                "/v1/admin/clients",
                &json!({"id": "jtj-reader", "name": "交通运输局对账", "role": "issuer", "uscc": TO}),
            )
            .await;
        c["token"].as_str().unwrap().to_string()
    };
    let pages = |limit: usize, query: &'static str| {
        let (s, token) = (&s, token.clone());
        async move {
            let (mut seen, mut cursor) = (Vec::new(), String::new());
            loop {
                let (st, page) = s.get(Some(&token), &format!("/v1/licences?limit={limit}{query}{cursor}")).await;
                assert_eq!(st, 200, "{page}");
                seen.extend(page["licences"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = format!("&cursor={c}"),
                    None => return seen,
                }
            }
        }
    };
    for limit in [1, 7, 64, 1000] {
        assert_eq!(pages(limit, "").await, expected, "limit {limit}");
    }
    let business: Vec<String> = expected.iter().step_by(2).cloned().collect();
    assert_eq!(pages(10, "&type=11100000MB00001073001").await, business);
    let (_, own) = s.get(Some(ISSUER), "/v1/licences").await;
    let own: Vec<&str> = own["licences"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(own, [stays.as_str()]);
}
