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

/// The issued document with `disclosures` in its unprotected header, as an `LV2:` QR payload.
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
            &json!({"kind": "replacement", "reason": "遗失补证"}),
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

    // The dictionary of LV2: payloads: its bytes are the ones its SHA-256 and DICTID name.
    let d = &trust["qr_dictionaries"][0];
    assert_eq!((d["prefix"].as_str(), d["dictid"].as_str()), (Some("LV2:"), Some("76d5c43d")), "{trust}");
    let res = s.http.get(s.url(d["path"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert_eq!(hex::encode(licvault::crypto::sha256(&bytes)), d["sha256"].as_str().unwrap());
    let mut z = flate2::Compress::new(flate2::Compression::best(), true);
    assert_eq!(format!("{:08x}", z.set_dictionary(&bytes).unwrap()), d["dictid"].as_str().unwrap());
    for n in ["2", "0", "01", "x"] {
        let res = s.http.get(s.url(&format!("/v1/qr-dictionaries/{n}"))).send().await.unwrap();
        assert_eq!(res.status(), 404, "{n}");
    }
}

/// A 营业执照 whose 经营范围 has 200 characters, as many real ones do.
fn long_scope_licence(holder: &str) -> Value {
    let scope = "一般项目：软件开发；信息技术咨询服务；数据处理和存储支持服务；集成电路设计；人工智能应用软件开发；\
                 网络技术服务；计算机系统服务；信息系统集成服务；物联网技术研发；电子产品销售；通讯设备销售；\
                 技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广；广告设计、代理；会议及展览服务；\
                 企业管理咨询；市场营销策划；办公用品销售；日用百货销售；五金产品零售。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）";
    let scope: String = scope.chars().filter(|c| !c.is_whitespace()).take(200).collect();
    assert_eq!(scope.chars().count(), 200);
    let mut body = business_licence(holder);
    body["fields"]["经营范围"] = json!(scope);
    body
}

#[tokio::test]
async fn qr_images_fit_and_decode_back_with_an_independent_decoder() {
    let s = Server::start().await;
    let holder = licvault::domain::holder::complete_uscc("91440300MA5E0009").unwrap();
    let (st, issued) = s.post(Some(ISSUER), "/v1/licences", &long_scope_licence(&holder)).await;
    assert_eq!(st, 201, "{issued}");
    let id = issued["licence"]["id"].as_str().unwrap();
    let qr = s.qr_of(&issued).await;

    // Full, ECC M: the document as issued, version 23 at most.
    let (st, version, png) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.png")).await;
    assert_eq!(st, 200);
    assert_eq!(licvault::qr::read_image(&png).unwrap(), qr, "rqrr reads back exactly the payload");
    let full_version = version.unwrap();
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    eprintln!("document {} bytes, payload {} characters", doc.len(), qr.len());
    // Version 23 holds 829 bytes of zlib. With plain zlib (LV1:) this document compresses to
    // about 965 bytes (version 25 or 26); with the preset dictionary (LV2:) to about 480:
    // spec/formats.md §1.1 says where the bytes go.
    assert!(qr.starts_with("LV2:"), "{qr}");
    assert!(full_version <= 23, "full QR is version {full_version}");
    let plain = licvault::qr::encode_as(&doc, licvault::qr::Format::Lv1);
    let plain_version = licvault::qr::png(&plain, licvault::qr::Ecc::M).unwrap().1 as u32;
    assert!(plain_version > full_version, "LV1: version {plain_version}, LV2: {full_version}");
    let (st, svg_version, svg) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.svg")).await;
    assert_eq!((st, svg_version), (200, Some(full_version)));
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));

    // Compact: version 14 at most; it verifies, names the licence and its holder, and leaves the
    // face (经营范围 and the rest) to the full document.
    let (st, version, png) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.png?profile=compact")).await;
    assert_eq!(st, 200);
    let compact_version = version.unwrap();
    assert!(compact_version <= 14, "compact QR is version {compact_version}");
    let compact = licvault::qr::read_image(&png).unwrap();
    let v = verify(&s, &compact).await;
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["licence"]["fields"], json!({}), "{v}");
    assert_eq!(v["licence"]["type_name"], "营业执照");
    assert_eq!(v["licence"]["holder"]["name"], "示例科技有限公司");
    assert_eq!(v["licence"]["number"], issued["licence"]["number"]);
    assert_eq!(v["log"]["index"], issued["log"]["index"]);
    eprintln!(
        "营业执照 with a 200-character 经营范围: full QR version {full_version} (LV1: {plain_version}), compact {compact_version}"
    );

    // A server started with --qr-format lv1 makes LV1: payloads, which verify as well.
    s.vault.set_qr_format(licvault::qr::Format::Lv1);
    let lv1 = s.qr_of(&issued).await;
    assert_eq!(lv1, plain);
    let (st, version, _) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.png")).await;
    assert_eq!((st, version), (200, Some(plain_version)));
    assert_eq!(verify(&s, &lv1).await["verdict"], "valid");
    assert_eq!(verify(&s, &qr).await["verdict"], "valid");
    s.vault.set_qr_format(licvault::qr::Format::Lv2);

    // ECC Q is bigger; anything else is refused.
    let (st, q_version, _) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.png?ecc=Q")).await;
    assert!(st == 200 && q_version.unwrap() >= full_version);
    for bad in ["ecc=L", "profile=tiny", "what=1", "profile=compact&disclose=holder.id", "disclose=nope"] {
        let (st, _, body) = s.qr_image(ISSUER, None, &format!("/v1/licences/{id}/qr.svg?{bad}")).await;
        assert_eq!(st, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
    // Another department's issuer and a verifier may not.
    assert_eq!(s.qr_image(OTHER_ISSUER, None, &format!("/v1/licences/{id}/qr.png")).await.0, 403);
    assert_eq!(s.qr_image(VERIFIER, None, &format!("/v1/licences/{id}/qr.png")).await.0, 403);
}

#[tokio::test]
async fn the_holder_chooses_what_a_qr_discloses() {
    let s = Server::start().await;
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    let id = issued["licence"]["id"].as_str().unwrap();
    let me = format!("111:{CITIZEN}");
    let path =
        format!("/v1/licences/{id}/qr.png?disclose=holder.id,%E7%94%B7%E6%96%B9%E5%87%BA%E7%94%9F%E6%97%A5%E6%9C%9F");
    let (st, _, png) = s.qr_image(HOLDER_CHANNEL, Some(&me), &path).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&png));
    let v = verify(&s, &licvault::qr::read_image(&png).unwrap()).await;
    assert_eq!((v["verdict"].as_str(), v["licence"]["holder"]["id"].as_str()), (Some("valid"), Some(CITIZEN)), "{v}");
    assert_eq!(v["licence"]["fields"]["男方出生日期"], "1949-12-31");
    assert_eq!(v["licence"]["withheld"], 3);
    // Without disclosures the QR has none of the personal values.
    let (_, _, png) = s.qr_image(HOLDER_CHANNEL, Some(&me), &format!("/v1/licences/{id}/qr.png")).await;
    let plain = licvault::qr::read_image(&png).unwrap();
    let doc = licvault::qr::decode(&plain).unwrap();
    assert!(!doc.windows(CITIZEN.len()).any(|w| w == CITIZEN.as_bytes()));
    // The holder channel names the holder; a holder who does not hold the licence gets 403.
    assert_eq!(s.qr_image(HOLDER_CHANNEL, None, &format!("/v1/licences/{id}/qr.png")).await.0, 400);
    let stranger = "111:440524188001010014";
    assert_eq!(s.qr_image(HOLDER_CHANNEL, Some(stranger), &format!("/v1/licences/{id}/qr.png")).await.0, 403);
    assert_eq!(s.qr_image(HOLDER_CHANNEL, Some("111:123"), &format!("/v1/licences/{id}/qr.png")).await.0, 400);
}

/// The link QR of a marriage licence held by [`CITIZEN`], read back.
async fn link(s: &Server, id: &str) -> String {
    let me = format!("111:{CITIZEN}");
    let (st, _, png) = s.qr_image(HOLDER_CHANNEL, Some(&me), &format!("/v1/licences/{id}/qr.png?profile=link")).await;
    assert_eq!(st, 200);
    licvault::qr::read_image(&png).unwrap()
}

#[tokio::test]
async fn a_link_opens_the_verification_page_until_it_is_withdrawn() {
    let s = Server::start().await;
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    let id = issued["licence"]["id"].as_str().unwrap();
    let url = link(&s, id).await;
    assert!(url.starts_with(&format!("{}/v/", s.base)), "{url}");
    assert!(!url.contains(id) && !url.contains(CITIZEN), "the link names neither the licence nor the holder");
    assert_eq!(link(&s, id).await, url, "the same link until it is withdrawn");
    let res = s.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let html = res.text().await.unwrap();
    assert!(html.contains("有效 VALID") && html.contains("结婚证") && html.contains("李*"), "{html}");
    assert!(!html.contains(CITIZEN) && !html.contains("1949-12-31") && !html.contains("李四"), "{html}");
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "no external assets");

    // Withdrawn: the page says so; the next link is a new one.
    let (st, v) = s
        .post(
            Some(HOLDER_CHANNEL),
            &format!("/v1/licences/{id}/links/withdraw"),
            &json!({"reason": "手机丢失", "holder": {"type": "111", "id": CITIZEN}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let res = s.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert!(res.text().await.unwrap().contains("已被撤回"));
    assert_ne!(link(&s, id).await, url);
    let (st, v) =
        s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{id}/links/withdraw"), &json!({"reason": "测试"})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) =
        s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{id}/links/withdraw"), &json!({"reason": "测试"})).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("no_link")));

    // A revoked licence's page says so; an unknown reference is 404; the form posts a payload.
    s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{id}/annul"), &json!({"reason": "撤销婚姻登记"})).await;
    let url = link(&s, id).await;
    assert!(s.http.get(&url).send().await.unwrap().text().await.unwrap().contains("已撤销 ANNULLED"));
    assert_eq!(s.http.get(s.url("/v/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).send().await.unwrap().status(), 404);
    let res = s.http.post(s.url("/v/")).form(&[("payload", "LV1:FORGED")]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("无效 INVALID"));
}

/// Makes a presentation of `id` for [`CITIZEN`] disclosing `keys`.
async fn present(s: &Server, id: &str, keys: &[&str], ttl: u64) -> (u16, Value) {
    s.post(
        Some(HOLDER_CHANNEL),
        &format!("/v1/licences/{id}/presentations"),
        &json!({"holder": {"type": "111", "id": CITIZEN}, "disclose": keys, "ttl": ttl}),
    )
    .await
}

async fn redeem(s: &Server, payload: &str) -> (u16, Value) {
    s.post(
        Some(VERIFIER),
        "/v1/presentations/redeem",
        &json!({"payload": payload, "use_reason": "核验婚姻状况", "biz_num": "BJ-2026-77"}),
    )
    .await
}

#[tokio::test]
async fn a_presentation_is_redeemed_once_and_shows_in_the_holders_usage() {
    let s = Server::start().await;
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    let id = issued["licence"]["id"].as_str().unwrap();
    let (st, made) = present(&s, id, &["holder.id", "男方出生日期"], 120).await;
    assert_eq!(st, 201, "{made}");
    let payload = made["payload"].as_str().unwrap();
    assert!(made["qr_svg"].as_str().unwrap().contains("<svg"));
    assert_eq!(made["disclosed"], json!(["holder.id", "男方出生日期"]));

    // Anyone can check it (POST /v1/verify): valid, with the disclosures, and the statement.
    let v = verify(&s, payload).await;
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["licence"]["holder"]["id"], CITIZEN);
    assert_eq!(v["presentation"]["stated_status"], "valid");

    // A verifier redeems it once and gets exactly the disclosed values.
    let (st, r) = redeem(&s, payload).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["disclosed"], json!({"holder.id": CITIZEN, "男方出生日期": "1949-12-31"}));
    assert_eq!((r["verdict"].as_str(), r["valid"].as_bool()), (Some("valid"), Some(true)));
    let (st, again) = redeem(&s, payload).await;
    assert_eq!((st, again["code"].as_str()), (409, Some("presentation_redeemed")), "{again}");

    // The holder sees both: the presentation made and the redemption, newest first.
    let (st, usage) =
        s.post(Some(HOLDER_CHANNEL), "/v1/holders/usage", &json!({"holder": {"type": "111", "id": CITIZEN}})).await;
    assert_eq!(st, 200, "{usage}");
    let actions: Vec<&str> = usage["uses"].as_array().unwrap().iter().map(|u| u["action"].as_str().unwrap()).collect();
    assert_eq!(&actions[..2], ["presentation_redeemed", "presentation_created"], "{usage}");
    assert_eq!(usage["uses"][0]["biz_num"], "BJ-2026-77");
    assert_eq!(usage["uses"][1]["disclosed"], json!(["holder.id", "男方出生日期"]));

    // Annulled since (撤销婚姻登记): a new presentation says so, and redeeming it tells the verifier.
    s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{id}/annul"), &json!({"reason": "撤销婚姻登记"})).await;
    let (_, made) = present(&s, id, &[], 60).await;
    assert_eq!(made["status"], "annulled");
    let (st, r) = redeem(&s, made["payload"].as_str().unwrap()).await;
    assert_eq!((st, r["verdict"].as_str(), r["valid"].as_bool()), (200, Some("annulled"), Some(false)), "{r}");
    assert_eq!(r["disclosed"], json!({}));
}

#[tokio::test]
async fn bad_presentations_are_refused() {
    let s = Server::start().await;
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(CITIZEN)).await;
    let id = issued["licence"]["id"].as_str().unwrap();
    // ttl over 300, an unknown disclosure: 400; a licence the holder does not hold: 403.
    assert_eq!(present(&s, id, &[], 301).await.0, 400);
    assert_eq!(present(&s, id, &[], 0).await.0, 400);
    assert_eq!(present(&s, id, &["名称"], 60).await.1["code"], "unknown_disclosure");
    let (_, other) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("440524188001010014")).await;
    let other_id = other["licence"]["id"].as_str().unwrap();
    assert_eq!(present(&s, other_id, &[], 60).await.0, 403);
    // A verifier may not make one; a holder channel may not redeem one.
    let (st, _) = s
        .post(
            Some(VERIFIER),
            &format!("/v1/licences/{id}/presentations"),
            &json!({"holder": {"type": "111", "id": CITIZEN}}),
        )
        .await;
    assert_eq!(st, 403);
    let (_, made) = present(&s, id, &[], 60).await;
    let payload = made["payload"].as_str().unwrap().to_string();
    let (st, _) =
        s.post(Some(HOLDER_CHANNEL), "/v1/presentations/redeem", &json!({"payload": payload, "use_reason": "x"})).await;
    assert_eq!(st, 403);
    // Without a use reason, with a licence document instead, with garbage: refused, nothing recorded.
    let size = s.vault.head().size;
    let (st, v) = s.post(Some(VERIFIER), "/v1/presentations/redeem", &json!({"payload": payload})).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("use_reason_required")));
    for junk in [s.qr_of(&issued).await, "LV1:GARBAGE".to_string(), payload[..payload.len() - 9].to_string()] {
        let (st, v) = redeem(&s, &junk).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("invalid_presentation")), "{v}");
    }
    assert_eq!(s.vault.head().size, size, "a refused redemption writes nothing");
    // Expired: 410, and POST /v1/verify says expired.
    let (_, short) = present(&s, id, &[], 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (st, v) = redeem(&s, short["payload"].as_str().unwrap()).await;
    assert_eq!((st, v["code"].as_str()), (410, Some("presentation_expired")), "{v}");
    assert_eq!(verify(&s, short["payload"].as_str().unwrap()).await["verdict"], "expired");
}

/// A citizen ID number with a correct check character (GB 11643: ISO 7064 MOD 11-2).
fn citizen_number(n: u32) -> String {
    let body = format!("440305{}{:03}", 19_800_101 + (n % 28), 100 + n);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(b, w)| (b - b'0') as u32 * w).sum();
    format!("{body}{}", ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"][(sum % 11) as usize])
}

/// Whether `payload` is an offline one (`LV1:` or `LV2:`) rather than a link.
fn offline(payload: &str) -> bool {
    payload.starts_with("LV1:") || payload.starts_with("LV2:")
}

/// The signed bytes behind a QR payload: the COSE document of an offline payload (for a
/// presentation, with the document inside it too), or the text of a link.
fn payload_bytes(payload: &str) -> Vec<u8> {
    if offline(payload) {
        licvault::qr::decode(payload).unwrap()
    } else {
        payload.as_bytes().to_vec()
    }
}

/// The face-field names in clear in a document's (or a presentation's document's) payload.
fn clear_field_names(doc: &[u8]) -> Vec<String> {
    let env = licvault::crypto::cose::Envelope::parse(doc).unwrap();
    if let Ok(p) = licvault::domain::presentation::Presentation::from_payload(env.payload()) {
        return clear_field_names(&p.document);
    }
    match licvault::domain::Presented::parse(env.payload(), &[]) {
        Ok(l) => l.fields.keys().cloned().collect(),
        Err(e) => panic!("{e}"),
    }
}

/// The acceptance scan: every QR payload the system produces for a licence of every type in
/// the catalogue, by every way there is to get one, carries no citizen ID number and no
/// personal field unless the holder's request disclosed it.
#[tokio::test]
async fn no_qr_payload_carries_personal_data_unless_disclosed() {
    let s = Server::start().await;
    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/demo-clients.json")).unwrap()).unwrap();
    let issuer_of = |uscc: &str| {
        demo["clients"].as_array().unwrap().iter().find(|c| c["role"] == "issuer" && c["uscc"] == uscc).unwrap()
            ["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, types) = s.get(None, "/v1/licence-types").await;
    let mut scanned = 0;
    for (n, t) in types["licence_types"].as_array().unwrap().iter().enumerate() {
        let (_, ty) = s.get(None, &format!("/v1/licence-types/{}", t["code"].as_str().unwrap())).await;
        let citizen = ty["holder_types"].as_array().unwrap().contains(&json!("111"));
        // As the catalogue says: a holder number with the type's prefix (个体工商户: 92).
        let holder = if citizen {
            citizen_number(n as u32)
        } else {
            let prefix = ty["holder_prefix"].as_str().unwrap_or("91");
            licvault::domain::holder::complete_uscc(&format!("{prefix}440300MA5F{n:04}")).unwrap()
        };
        // Every field filled; personal text and dates get values found nowhere else.
        let mut fields = serde_json::Map::new();
        let mut secrets = vec![];
        for (i, f) in ty["fields"].as_array().unwrap().iter().enumerate() {
            let name = f["name"].as_str().unwrap();
            let value = match f["kind"].as_str().unwrap() {
                "date" => format!("19{:02}-0{}-1{}", 40 + n, 1 + i % 9, i % 10),
                "number" => format!("{}{}", 7 + n, i),
                "enum" => f["options"][0].as_str().unwrap().to_string(),
                _ if f["equals_holder"] == true => holder.clone(),
                _ if f.get("format").is_some() => {
                    let digits = f["format"]["digits"].as_u64().unwrap() as usize;
                    format!("{}{:0>digits$}", f["format"]["prefix"].as_str().unwrap(), n * 100 + i)
                }
                _ => format!("值{n}项{i}"),
            };
            if f.get("personal").is_some() && f["kind"] != "enum" {
                secrets.push(value.clone());
            }
            fields.insert(name.to_string(), json!(value));
        }
        let kind = if citizen { "111" } else { "001" };
        let body = json!({"type_code": ty["code"], "holder": {"type": kind, "id": holder, "name": "持证人甲"}, "fields": fields});
        let token = issuer_of(ty["issuers"][0].as_str().unwrap());
        let (st, issued) = s.post(Some(&token), "/v1/licences", &body).await;
        assert_eq!(st, 201, "{}: {issued}", ty["name"]);
        let id = issued["licence"]["id"].as_str().unwrap();
        let personal: Vec<String> = ty["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f.get("personal").is_some())
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        let me = format!("{kind}:{holder}");

        // Every way to get a payload without disclosures.
        let mut payloads = vec![s.get(Some(&token), &format!("/v1/licences/{id}")).await.1["qr_payload"]
            .as_str()
            .unwrap()
            .to_string()];
        let (_, wallet) =
            s.post(Some(HOLDER_CHANNEL), "/v1/holders/wallet", &json!({"holder": {"type": kind, "id": holder}})).await;
        payloads.push(wallet["licences"][0]["qr_payload"].as_str().unwrap().to_string());
        for profile in ["full", "compact", "link"] {
            for (who, h) in [(token.as_str(), None), (HOLDER_CHANNEL, Some(me.as_str()))] {
                let (st, _, png) = s.qr_image(who, h, &format!("/v1/licences/{id}/qr.png?profile={profile}")).await;
                assert_eq!(st, 200);
                payloads.push(licvault::qr::read_image(&png).unwrap());
            }
        }
        let (st, made) = s
            .post(
                Some(HOLDER_CHANNEL),
                &format!("/v1/licences/{id}/presentations"),
                &json!({"holder": {"type": kind, "id": holder}}),
            )
            .await;
        assert_eq!(st, 201, "{made}");
        payloads.push(made["payload"].as_str().unwrap().to_string());
        for p in &payloads {
            let bytes = payload_bytes(p);
            let found = |v: &str| bytes.windows(v.len()).any(|w| w == v.as_bytes()) || p.contains(v);
            if citizen {
                assert!(!found(&holder), "{}: a payload carries the holder's number", ty["name"]);
            }
            for v in &secrets {
                assert!(!found(v), "{}: a payload carries the personal value {v}", ty["name"]);
            }
            if offline(p) {
                let clear = clear_field_names(&bytes);
                assert!(
                    personal.iter().all(|f| !clear.contains(f)),
                    "{}: a personal field in clear: {clear:?}",
                    ty["name"]
                );
            }
            scanned += 1;
        }

        // With a disclosure, that value and nothing else personal.
        if let Some(first) = personal.first() {
            let (st, made) = s
                .post(
                    Some(HOLDER_CHANNEL),
                    &format!("/v1/licences/{id}/presentations"),
                    &json!({"holder": {"type": kind, "id": holder}, "disclose": [first]}),
                )
                .await;
            assert_eq!(st, 201, "{made}");
            let bytes = payload_bytes(made["payload"].as_str().unwrap());
            let value = fields[first].as_str().unwrap();
            assert!(
                bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{}: the disclosed value is there",
                ty["name"]
            );
            if citizen {
                assert!(!bytes.windows(holder.len()).any(|w| w == holder.as_bytes()));
            }
            for v in secrets.iter().filter(|v| *v != value) {
                assert!(!bytes.windows(v.len()).any(|w| w == v.as_bytes()), "{}: {v} was not disclosed", ty["name"]);
            }
        }
    }
    assert!(scanned >= 10 * 9, "scanned {scanned} payloads");
}

/// A citizen ID number in the licence number or in a face field the catalogue does not mark
/// personal would be in clear on every QR code: refused, nothing issued.
#[tokio::test]
async fn a_citizen_number_in_clear_is_refused_at_issuance() {
    let s = Server::start().await;
    let size = s.vault.head().size;
    let mut body = marriage(CITIZEN);
    body["number"] = json!(CITIZEN);
    let (st, v) = s.post(Some(OTHER_ISSUER), "/v1/licences", &body).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("personal_number_in_text")), "{v}");
    let mut body = marriage(CITIZEN);
    body["fields"]["结婚证字号"] = json!(format!("J-{CITIZEN}"));
    let (st, v) = s.post(Some(OTHER_ISSUER), "/v1/licences", &body).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("personal_number_in_text")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("结婚证字号"), "{v}");
    assert_eq!(s.vault.head().size, size, "nothing was issued");
}
