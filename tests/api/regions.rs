//! Cross-region use (issue 10, scope 3), with real processes: a clerk at node A looks up a
//! company whose licences were issued at nodes B and C, and checks a service item it needs them for. A asks B and C as its own verifier
//! client there, with the clerk's use reason, case number and officer; each records the use in
//! its own log before it answers, so the company sees at B who looked, and sees it too through
//! A's usage view, which asks B and C in turn. While C is down, A answers with B's licences and
//! says C did not answer.

use serde_json::{json, Value};

use crate::common::*;
use crate::mirrors::{post, Node};

const COMPANY: &str = "91440300MA5E000256";

#[tokio::test(flavor = "multi_thread")]
async fn a_lookup_at_one_node_finds_the_licences_of_the_others_and_each_records_its_use() {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let (keys_a, keys_b, keys_c) = (keys_copy(), keys_copy(), keys_copy());
    let b = Node::start("127.0.0.1:0", &dir.path().join("b"), keys_b.path(), &[]);
    let mut c = Node::start("127.0.0.1:0", &dir.path().join("c"), keys_c.path(), &[]);
    for node in [&b, &c] {
        let (status, v) =
            post(&http, format!("{}/v1/licences", node.base), Some(ISSUER), &business_licence(COMPANY)).await;
        assert_eq!(status, 201, "{v}");
    }
    // A's clients at B and C: the demo verifier and holder channel of each.
    std::fs::write(dir.path().join("verifier.token"), VERIFIER).unwrap();
    std::fs::write(dir.path().join("holder.token"), HOLDER_CHANNEL).unwrap();
    let peer = |name: &str, node: &Node| {
        json!({"name": name, "url": node.base, "verifier_token_file": dir.path().join("verifier.token"),
               "holder_channel_token_file": dir.path().join("holder.token")})
    };
    let config = dir.path().join("peers.json");
    std::fs::write(&config, json!({"peers": [peer("b", &b), peer("c", &c)]}).to_string()).unwrap();
    let a = Node::start("127.0.0.1:0", &dir.path().join("a"), keys_a.path(), &["--peers", config.to_str().unwrap()]);

    let lookup = json!({
        "holder": {"type": "001", "id": COMPANY}, "use_reason": "跨省通办：办理食品经营许可",
        "biz_num": "A-2026-0001", "officer": {"name": "王五", "staff_no": "A0042"}
    });
    let (status, v) = post(&http, format!("{}/v1/holders/licences", a.base), Some(VERIFIER), &lookup).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["licences"].as_array().unwrap().len(), 0, "A itself holds none: {v}");
    let others = v["other_platforms"].as_array().unwrap();
    assert_eq!(others.len(), 2, "{v}");
    for (other, name) in others.iter().zip(["b", "c"]) {
        assert_eq!(other["platform"], name);
        let answer = &other["answer"];
        assert_eq!(answer["licences"].as_array().unwrap().len(), 1, "{other}");
        assert_eq!(answer["usage"]["records"], 1, "recorded there before it answered: {other}");
        assert!(answer["usage"]["log_size"].as_u64().unwrap() > 0);
    }

    // B recorded the use: the company sees it there, with the clerk's statement.
    let usage = json!({"holder": {"type": "001", "id": COMPANY}});
    let (status, v) = post(&http, format!("{}/v1/holders/usage", b.base), Some(HOLDER_CHANNEL), &usage).await;
    assert_eq!(status, 200, "{v}");
    let used = &v["uses"][0];
    assert_eq!(
        (used["action"].as_str(), used["use_reason"].as_str(), used["biz_num"].as_str()),
        (Some("lookup"), Some("跨省通办：办理食品经营许可"), Some("A-2026-0001")),
        "{v}"
    );
    assert_eq!(used["officer"]["staff_no"], "A0042");
    // ... and whom A acted for: the clerk's client at A, under A's log origin.
    let trust: Value = http.get(format!("{}/v1/trust", a.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        used["on_behalf_of"],
        json!({"platform": trust["log"]["origin"], "client_id": "zwfw-counter", "client_name": "示例市政务服务中心 综合窗口",
               "department": "11440300MB20008055"}),
        "{v}"
    );
    // And through A's usage view, which asks B and C: A's own record of the query too.
    let (status, v) = post(&http, format!("{}/v1/holders/usage", a.base), Some(HOLDER_CHANNEL), &usage).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["uses"][0]["action"], "lookup", "A recorded that its clerk asked: {v}");
    for other in v["other_platforms"].as_array().unwrap() {
        assert_eq!(other["answer"]["uses"][0]["use_reason"], "跨省通办：办理食品经营许可", "{other}");
    }
    // A one-window check at A: the 营业执照 it needs is not at A but at B and C.
    let check = json!({"applicant": {"type": "001", "id": COMPANY}, "use_reason": "跨省通办：道路旅客运输经营许可"});
    let (status, v) =
        post(&http, format!("{}/v1/service-items/440300-XK-0002/check", a.base), Some(VERIFIER), &check).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["satisfied"].as_bool(), v["satisfied_across_platforms"].as_bool()), (Some(false), Some(true)), "{v}");
    assert_eq!(v["other_platforms"][0]["answer"]["requirements"][0]["outcome"], "present", "{v}");
    // A clerk whose scope is narrower than A's client at B and C (住建: 结婚证, 不动产权证书) is
    // shown there only what it may see here: no 营业执照.
    let (status, v) = post(&http, format!("{}/v1/holders/licences", a.base), Some(HOUSING_VERIFIER), &lookup).await;
    assert_eq!(status, 200, "{v}");
    for other in v["other_platforms"].as_array().unwrap() {
        assert_eq!(other["answer"]["licences"].as_array().unwrap().len(), 0, "{other}");
    }
    let (_, v) =
        post(&http, format!("{}/v1/service-items/440300-XK-0002/check", a.base), Some(HOUSING_VERIFIER), &check).await;
    assert!(v.get("other_platforms").is_none() && v.get("satisfied_across_platforms").is_none(), "{v}");
    // One node's answer alone, by name; a name A does not know is refused.
    let mut only_b = lookup.clone();
    only_b["platform"] = json!("b");
    let (_, v) = post(&http, format!("{}/v1/holders/licences", a.base), Some(VERIFIER), &only_b).await;
    assert_eq!(v["other_platforms"].as_array().unwrap().len(), 1, "{v}");
    // A recorded that its clerk asked, though it disclosed nothing of its own.
    let (_, uses) = post(&http, format!("{}/v1/holders/usage", a.base), Some(HOLDER_CHANNEL), &usage).await;
    let newest = &uses["uses"][0];
    assert_eq!(
        (newest["action"].as_str(), newest["client"]["id"].as_str()),
        (Some("lookup"), Some("zwfw-counter")),
        "{uses}"
    );
    assert!(newest["licence_id"].is_null(), "{uses}");
    only_b["platform"] = json!("x");
    let (status, v) = post(&http, format!("{}/v1/holders/licences", a.base), Some(VERIFIER), &only_b).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("unknown_platform")), "{v}");

    // C is down: A answers with what B gave, and says C did not answer.
    c.kill();
    let (status, v) = post(&http, format!("{}/v1/holders/licences", a.base), Some(VERIFIER), &lookup).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["other_platforms"][0]["answer"]["licences"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["other_platforms"][1]["error"].as_str().unwrap().starts_with("unreachable"), "{v}");
    assert!(v["other_platforms"][1].get("answer").is_none(), "{v}");
}
