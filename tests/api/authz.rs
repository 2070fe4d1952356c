//! One table: every route × every kind of caller (no token, each role, an issuer out of its type
//! scope, another department, a disabled client) → allowed (2xx) or refused (401/403). A route
//! missing from the table fails the test, so every new endpoint has to join it.

use serde_json::{json, Value};

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// 市场监管局's issuer, all its types.
    Issuer,
    /// 市场监管局's issuer limited to 食品经营许可证: the business licences here are out of scope.
    IssuerOutOfScope,
    /// 民政局's issuer: another department.
    OtherDepartment,
    Verifier,
    /// 住房和城乡建设局's counter: a verifier whose scope lists two licence types.
    ScopedVerifier,
    HolderChannel,
    Auditor,
    Admin,
    /// An issuer of 市场监管局 that an administrator disabled.
    Disabled,
}

const EVERYONE: [Who; 10] = [
    Who::Anonymous,
    Who::Issuer,
    Who::IssuerOutOfScope,
    Who::OtherDepartment,
    Who::Verifier,
    Who::ScopedVerifier,
    Who::HolderChannel,
    Who::Auditor,
    Who::Admin,
    Who::Disabled,
];

/// Who may call a route: everyone (public), or only these.
enum Allowed {
    Public,
    Only(&'static [Who]),
}

/// (method, route template, who may call it).
fn table() -> Vec<(&'static str, &'static str, Allowed)> {
    use Allowed::*;
    use Who::*;
    vec![
        ("GET", "/v1/licence-types", Public),
        ("GET", "/v1/licence-types/{code}", Public),
        ("GET", "/v1/service-items", Public),
        ("GET", "/v1/service-items/{code}", Public),
        ("POST", "/v1/licences", Only(&[Issuer])),
        // Each issuer lists its own department's licences of its types.
        ("GET", "/v1/licences", Only(&[Issuer, IssuerOutOfScope, OtherDepartment, Admin])),
        // An issuer's batch is answered item by item: one out of its types is refused alone.
        ("POST", "/v1/licences/batch", Only(&[Issuer, IssuerOutOfScope, OtherDepartment])),
        ("GET", "/v1/changes", Only(&[Issuer, IssuerOutOfScope, Admin])),
        ("GET", "/v1/licences/{id}", Only(&[Issuer, Admin])),
        ("POST", "/v1/licences/{id}/suspend", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/reinstate", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/withdraw", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/annul", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/revoke", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/cancel", Only(&[Issuer])),
        ("POST", "/v1/licences/{id}/versions", Only(&[Issuer])),
        ("GET", "/v1/licences/{id}/history", Only(&[Issuer, Admin])),
        ("POST", "/v1/verify", Public),
        ("GET", "/v1/trust", Public),
        ("GET", "/v1/status-lists/{n}", Public),
        ("GET", "/v1/qr-dictionaries/{n}", Public),
        ("GET", "/v1/log/checkpoint", Public),
        ("GET", "/v1/log/checkpoints/{size}", Public),
        ("GET", "/v1/log/proofs/inclusion", Public),
        ("GET", "/v1/log/proofs/consistency", Public),
        ("GET", "/v1/log/tile/{level}/{*n}", Public),
        ("GET", "/v1/log/tile/entries/{*n}", Only(&[Auditor])),
        ("GET", "/v1/audit/export", Only(&[Auditor])),
        ("GET", "/v1/mirrors", Public),
        ("GET", "/v1/mirrors/{name}/checkpoint", Public),
        ("POST", "/v1/admin/transfers", Only(&[Admin])),
        ("GET", "/v1/admin/transfers", Only(&[Admin])),
        ("GET", "/healthz", Public),
        ("GET", "/readyz", Public),
        ("GET", "/metrics", Only(&[Admin])),
        ("POST", "/v1/admin/clients", Only(&[Admin])),
        ("GET", "/v1/admin/clients", Only(&[Admin])),
        ("POST", "/v1/admin/clients/{id}/disable", Only(&[Admin])),
        ("POST", "/v1/admin/clients/{id}/rotate", Only(&[Admin])),
        ("POST", "/v1/admin/keys/reload", Only(&[Admin])),
        ("POST", "/v1/holders/licences", Only(&[Verifier, ScopedVerifier])),
        ("POST", "/v1/service-items/{code}/check", Only(&[Verifier, ScopedVerifier])),
        ("POST", "/v1/licences/{id}/annotated-copies", Only(&[Verifier, ScopedVerifier])),
        ("POST", "/v1/holders/wallet", Only(&[HolderChannel])),
        ("POST", "/v1/holders/usage", Only(&[HolderChannel])),
        ("GET", "/v1/licences/{id}/qr.svg", Only(&[Issuer, HolderChannel])),
        ("GET", "/v1/licences/{id}/qr.png", Only(&[Issuer, HolderChannel])),
        ("POST", "/v1/licences/{id}/links/withdraw", Only(&[Issuer, HolderChannel])),
        ("POST", "/v1/licences/{id}/presentations", Only(&[HolderChannel])),
        ("POST", "/v1/presentations/redeem", Only(&[Verifier, ScopedVerifier])),
        ("GET", "/v/", Public),
        ("POST", "/v/", Public),
        ("GET", "/v/{ref}", Public),
        ("PUT", "/v1/admin/licence-types/{code}", Only(&[Admin])),
        ("PUT", "/v1/admin/service-items/{code}", Only(&[Admin])),
    ]
}

struct Tokens {
    scoped: String,
    disabled: String,
}

impl Tokens {
    fn of(&self, who: Who) -> Option<&str> {
        match who {
            Who::Anonymous => None,
            Who::Issuer => Some(ISSUER),
            Who::IssuerOutOfScope => Some(&self.scoped),
            Who::OtherDepartment => Some(OTHER_ISSUER),
            Who::Verifier => Some(VERIFIER),
            Who::ScopedVerifier => Some(HOUSING_VERIFIER),
            Who::HolderChannel => Some(HOLDER_CHANNEL),
            Who::Auditor => Some(AUDITOR),
            Who::Admin => Some(ADMIN),
            Who::Disabled => Some(&self.disabled),
        }
    }
}

/// A fresh licence, and the concrete path and body for one call of `route`.
/// Also the `Licvault-Holder` header a holder channel sends with it (the licence's holder).
async fn request(s: &Server, n: usize, route: &str) -> (String, Option<Value>, String) {
    let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA5E{:04}", n % 10_000)).unwrap();
    let needs_licence = route.starts_with("/v1/licences/{id}");
    let id = if needs_licence {
        let issued = s.issue_company(&holder).await;
        issued["licence"]["id"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    if route.ends_with("/links/withdraw") {
        let res = s.http.get(s.url(&format!("/v1/licences/{id}/qr.svg?profile=link"))).bearer_auth(ISSUER).send().await;
        assert_eq!(res.unwrap().status(), 200);
    }
    let reference = if route == "/v/{ref}" {
        let issued = s.issue_company(&holder).await;
        let id = issued["licence"]["id"].as_str().unwrap();
        let res = s.http.get(s.url(&format!("/v1/licences/{id}/qr.png?profile=link"))).bearer_auth(ISSUER).send().await;
        let url = licvault::qr::read_image(&res.unwrap().bytes().await.unwrap()).unwrap();
        url.rsplit('/').next().unwrap().to_string()
    } else {
        String::new()
    };
    if route.ends_with("/reinstate") {
        let (st, v) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/suspend"), &json!({"reason": "准备"})).await;
        assert_eq!(st, 200, "{v}");
    }
    let client_id = format!("throwaway-{n}");
    if route.starts_with("/v1/admin/clients/{id}") {
        s.new_client(json!({"id": client_id, "name": "临时", "role": "auditor"})).await;
    }
    let path = route
        .replace("/licence-types/{code}", &format!("/licence-types/{BUSINESS_LICENCE}"))
        .replace("/service-items/{code}", "/service-items/440300-XK-0001")
        .replace("/v1/admin/clients/{id}", &format!("/v1/admin/clients/{client_id}"))
        .replace("/status-lists/{n}", "/status-lists/0")
        .replace("/qr-dictionaries/{n}", "/qr-dictionaries/1")
        .replace("/checkpoints/{size}", "/checkpoints/1")
        .replace("/proofs/inclusion", "/proofs/inclusion?index=0")
        .replace("/proofs/consistency", "/proofs/consistency?from=1")
        .replace("/tile/{level}/{*n}", "/tile/0/000.p/1")
        .replace("/tile/entries/{*n}", "/tile/entries/000.p/1")
        .replace("/audit/export", "/audit/export?from=0")
        .replace("/mirrors/{name}", "/mirrors/a")
        .replace("/v1/changes", "/v1/changes?issuer=11440300MB2000100X")
        .replace("{ref}", &reference)
        .replace("{id}", &id);
    let body = match route {
        "/v1/licences" => Some(business_licence(&holder)),
        "/v1/licences/batch" => {
            Some(json!({"items": [{"key": format!("authz-{n}"), "licence": business_licence(&holder)}]}))
        }
        "/v1/licences/{id}/versions" => Some(json!({"kind": "exchange", "reason": "换发新版证照"})),
        "/v1/licences/{id}/links/withdraw" => Some(json!({"reason": "测试", "holder": {"type": "001", "id": holder}})),
        "/v1/licences/{id}/presentations" => Some(json!({"holder": {"type": "001", "id": holder}})),
        "/v1/presentations/redeem" => {
            let issued = s.issue_company(&holder).await;
            let id = issued["licence"]["id"].as_str().unwrap();
            let (st, made) = s
                .post(
                    Some(HOLDER_CHANNEL),
                    &format!("/v1/licences/{id}/presentations"),
                    &json!({"holder": {"type": "001", "id": holder}}),
                )
                .await;
            assert_eq!(st, 201, "{made}");
            Some(json!({"payload": made["payload"], "use_reason": "权限测试"}))
        }
        r if r.starts_with("/v1/licences/{id}/")
            && r != "/v1/licences/{id}/annotated-copies"
            && !r.contains("/qr.") =>
        {
            Some(json!({"reason": "测试"}))
        }
        "/v1/verify" => Some(json!({"payload": "LV1:not-a-licence"})),
        "/v1/admin/transfers" => {
            // One fresh licence each time, so that no other route's licence changes hands.
            let issued = s.issue_company(&holder).await;
            let id = issued["licence"]["id"].as_str().unwrap();
            Some(json!({"from": "11440300MB2000100X", "to": "11440300MB20002079", "licence": id, "reason": "权限测试"}))
        }
        "/v1/admin/clients" => Some(json!({"id": format!("new-{n}"), "name": "新系统", "role": "auditor"})),
        "/v1/admin/clients/{id}/disable" | "/v1/admin/clients/{id}/rotate" => Some(json!({"reason": "测试"})),
        "/v1/holders/licences" => Some(json!({"holder": {"type": "001", "id": holder}, "use_reason": "权限测试"})),
        "/v1/service-items/{code}/check" => {
            Some(json!({"applicant": {"type": "001", "id": holder}, "use_reason": "权限测试"}))
        }
        "/v1/licences/{id}/annotated-copies" => Some(json!({"purpose": "权限测试", "use_reason": "权限测试"})),
        "/v1/holders/wallet" | "/v1/holders/usage" => Some(json!({"holder": {"type": "001", "id": holder}})),
        "/v1/admin/licence-types/{code}" => Some(s.get(None, &format!("/v1/licence-types/{BUSINESS_LICENCE}")).await.1),
        "/v1/admin/service-items/{code}" => Some(s.get(None, "/v1/service-items/440300-XK-0001").await.1),
        _ => None,
    };
    (path, body, format!("001:{holder}"))
}

#[tokio::test]
async fn every_route_every_role() {
    let s = Server::start().await;
    let (_, items) = s.get(None, "/v1/service-items").await;
    assert!(items["service_items"].as_array().unwrap().iter().any(|i| i["code"] == "440300-XK-0001"), "{items}");
    let tokens = Tokens {
        scoped: s
            .new_client(
                json!({"id": "scjg-food", "name": "食品许可系统", "role": "issuer", "uscc": "11440300MB2000100X",
                   "types": ["11100000MB00001073003"]}),
            )
            .await,
        disabled: s
            .new_client(json!({"id": "scjg-old", "name": "旧系统", "role": "issuer", "uscc": "11440300MB2000100X"}))
            .await,
    };
    // The node mirrors its own log (source `a`), so that the mirror's routes answer.
    let _mirror = s.mirror_itself().await;
    let (st, v) = s.post(Some(ADMIN), "/v1/admin/clients/scjg-old/disable", &json!({"reason": "下线"})).await;
    assert_eq!(st, 200, "{v}");

    let table = table();
    let routes: Vec<(String, String)> =
        licvault::http::routes().into_iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    for (m, p) in &routes {
        assert!(table.iter().any(|(tm, tp, _)| tm == m && tp == p), "{m} {p} is not in the authorisation table");
    }
    assert_eq!(table.len(), routes.len(), "the table names a route the router does not have");

    let mut n = 0;
    for (method, route, allowed) in &table {
        for who in EVERYONE {
            n += 1;
            let (path, body, holder) = request(&s, n, route).await;
            let mut req = match *method {
                "GET" => s.http.get(s.url(&path)),
                "PUT" => s.http.put(s.url(&path)),
                _ => s.http.post(s.url(&path)),
            };
            if let Some(t) = tokens.of(who) {
                req = req.bearer_auth(t);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            if *route == "/v/" && *method == "POST" {
                req = req.form(&[("payload", "LV1:not-a-licence")]);
            }
            if who == Who::HolderChannel {
                req = req.header("Licvault-Holder", &holder);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            let ok = match allowed {
                Allowed::Public => true,
                Allowed::Only(list) => list.contains(&who),
            };
            let want = if ok {
                "2xx"
            } else if matches!(who, Who::Anonymous | Who::Disabled) {
                "401"
            } else {
                "403"
            };
            let got = match status {
                200..=299 => "2xx",
                401 => "401",
                403 => "403",
                _ => "other",
            };
            assert_eq!(got, want, "{method} {route} as {who:?}: {status} {text}");
        }
    }
}
