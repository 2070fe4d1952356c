//! Trust across platforms (issue 10, scope 1), as operators run it with `licvault federation`: a
//! licence issued on one city platform verifies offline in another city's trust directory
//! through the federation (national root → province → cross-certified city root), until the
//! national root revokes the issuing province; without a current revocation list nothing from
//! another platform is vouched for.

use std::path::Path;

use licvault::crypto::keygen::{self, DepartmentSpec};

use crate::common::*;

fn cli(args: &[&str]) -> String {
    let (ok, out) = run_licvault(args, None);
    assert!(ok, "licvault {args:?}: {out}");
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_licence_from_another_platform_verifies_offline_until_its_province_is_revoked() {
    // Platform A (the development keys) issues; platform B (another city, its own root) checks.
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("licence.b64");
    std::fs::write(&doc, issued["document"].as_str().unwrap()).unwrap();
    let b = dir.path().join("b");
    let catalogue: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/departments.json")).unwrap()).unwrap();
    // B's own department (another city's; a seal of A's that named it would be refused).
    let mut dept: DepartmentSpec = serde_json::from_value(catalogue["departments"][0].clone()).unwrap();
    dept.uscc = licvault::domain::holder::complete_uscc("1133010000000001").unwrap();
    dept.name = "另一市市场监督管理局".into();
    keygen::init(&b, &dir.path().join("b-root-ca"), "另一市政务服务平台", "licvault.test/b", &[dept], false).unwrap();
    let verify = || run_licvault(&["verify", p(&doc), "--trust", p(&b)], None);
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer"), "B alone knows nothing of A: {out}");

    // The federation: the nation certifies two provinces, each cross-certifies its city's root.
    let ca = |name: &str| dir.path().join(name);
    let fed = b.join("federation");
    for sub in ["cas", "crls", "peers"] {
        std::fs::create_dir_all(fed.join(sub)).unwrap();
    }
    cli(&["federation", "ca", p(&ca("nation")), "--name", "国家政务服务平台"]);
    cli(&["federation", "ca", p(&ca("gd")), "--name", "广东省政务服务平台", "--issuer", p(&ca("nation"))]);
    cli(&["federation", "ca", p(&ca("zj")), "--name", "浙江省政务服务平台", "--issuer", p(&ca("nation"))]);
    let a_root = s.keys.path().join("root.crt.pem");
    cli(&["federation", "cross-certify", p(&a_root), "--issuer", p(&ca("gd")), "--out", p(&fed.join("cas/a.crt.pem"))]);
    let b_root = b.join("root.crt.pem");
    cli(&["federation", "cross-certify", p(&b_root), "--issuer", p(&ca("zj")), "--out", p(&fed.join("cas/b.crt.pem"))]);
    std::fs::copy(ca("nation").join("ca.crt.pem"), fed.join("anchor.crt.pem")).unwrap();
    std::fs::copy(ca("gd").join("ca.crt.pem"), fed.join("cas/guangdong.crt.pem")).unwrap();
    std::fs::copy(ca("zj").join("ca.crt.pem"), fed.join("cas/zhejiang.crt.pem")).unwrap();
    let crl = |issuer: &str, number: &str, extra: &[&str]| {
        let (out, issuer) = (fed.join(format!("crls/{issuer}.crl.pem")), ca(issuer));
        let mut args = vec!["federation", "crl", "--issuer", p(&issuer), "--number", number, "--out", p(&out)];
        args.extend_from_slice(extra);
        cli(&args);
    };
    crl("nation", "1", &[]);
    crl("gd", "1", &[]);
    crl("zj", "1", &[]);
    // A's departments' seal certificates, as A's GET /v1/trust publishes them.
    for e in std::fs::read_dir(s.keys.path().join("departments")).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".crt.pem") {
            std::fs::copy(&path, fed.join("peers").join(path.file_name().unwrap())).unwrap();
        }
    }
    let (ok, out) = verify();
    assert!(ok && out.contains("signature: valid") && out.contains("示例市市场监督管理局"), "{out}");
    assert!(out.contains("国家政务服务平台 根证书 → 广东省政务服务平台 根证书 → 示例市电子证照库平台 根证书"), "{out}");
    assert!(out.contains("issued on another platform"), "{out}");

    // B's node serves the federation: its trust list carries it, its verify vouches for A's
    // licence (status unknown there: B mirrors no log of A's), and a pull of B's trust list
    // verifies the licence offline as B's own directory does.
    let b_keys = tempfile::tempdir().unwrap();
    crate::support_keys::copy_keys(&b, b_keys.path());
    let node_b = Server::start_with_keys(b_keys).await;
    let document = issued["document"].as_str().unwrap();
    let (status, v) = node_b.post(None, "/v1/verify", &serde_json::json!({"payload": document})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["verdict"].as_str(), &v["valid"]), (Some("not_mirrored"), &serde_json::json!(false)), "{v}");
    let path = v["elsewhere"]["federation_path"].as_array().unwrap();
    assert_eq!(path.len(), 3, "{v}");
    assert_eq!(v["signed_by"], "示例市市场监督管理局");
    let (_, trust) = node_b.get(None, "/v1/trust").await;
    assert_eq!(trust["federation"]["cas"].as_array().unwrap().len(), 4, "{trust}");
    assert_eq!(trust["federation"]["crls"].as_array().unwrap().len(), 3, "{trust}");
    let pulled = dir.path().join("pulled");
    let digest = trust["digest"].as_str().unwrap();
    cli(&["trust", "pull", &node_b.base, p(&pulled), "--pin", digest]);
    let (ok, out) = run_licvault(&["verify", p(&doc), "--trust", p(&pulled)], None);
    assert!(ok && out.contains("issued on another platform"), "a pulled federation vouches too: {out}");
    // A file in federation/ that is not read would hide a revocation: refused.
    std::fs::write(fed.join("crls/nation.crl"), "not read").unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("is not a .crl.pem file"), "{out}");
    std::fs::remove_file(fed.join("crls/nation.crl")).unwrap();
    std::fs::write(fed.join("notes.txt"), "not read either").unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("is not one of anchor.crt.pem"), "{out}");
    std::fs::remove_file(fed.join("notes.txt")).unwrap();
    // The anchor must be one certificate, and a federation/ without one is not silently ignored.
    let anchor = std::fs::read_to_string(fed.join("anchor.crt.pem")).unwrap();
    std::fs::write(fed.join("anchor.crt.pem"), format!("{anchor}{anchor}")).unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("must hold exactly one PEM block"), "{out}");
    std::fs::remove_file(fed.join("anchor.crt.pem")).unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("has no anchor.crt.pem"), "{out}");
    std::fs::write(fed.join("anchor.crt.pem"), anchor).unwrap();

    // Without the province's revocation list, its status is unknown: fail closed.
    std::fs::rename(fed.join("crls/gd.crl.pem"), dir.path().join("gd.crl.pem")).unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer") && out.contains("no revocation list"), "{out}");
    std::fs::rename(dir.path().join("gd.crl.pem"), fed.join("crls/gd.crl.pem")).unwrap();
    // A revocation list past its nextUpdate is as good as none.
    let nation = keygen::FederationCa::read(&ca("nation")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let stale = keygen::revocation_list(&nation, 2, now - time::Duration::days(9), now - time::Duration::days(2), &[]);
    std::fs::write(fed.join("crls/nation.crl.pem"), licvault::crypto::pem("X509 CRL", &stale.unwrap())).unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("not current"), "{out}");

    // The nation revokes Guangdong's certificate (its key was compromised): A's licence is no
    // longer vouched for, offline, whenever it was signed.
    let gd_cert = ca("gd").join("ca.crt.pem");
    crl("nation", "3", &["--revoke", p(&gd_cert)]);
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer") && out.contains("is revoked by 国家政务服务平台"), "{out}");
    // B's node takes the new list on a key reload (its trust digest changes, the change is
    // logged) and no longer vouches for A's licence either.
    for crl in ["nation", "gd", "zj"] {
        let from = fed.join(format!("crls/{crl}.crl.pem"));
        std::fs::copy(&from, node_b.keys.path().join(format!("federation/crls/{crl}.crl.pem"))).unwrap();
    }
    let (status, v) = node_b.post(Some(ADMIN), "/v1/admin/keys/reload", &serde_json::json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(node_b.get(None, "/v1/trust").await.1["digest"].as_str(), Some(digest));
    let (_, v) = node_b.post(None, "/v1/verify", &serde_json::json!({"payload": document})).await;
    assert_eq!(v["verdict"], "unknown_issuer", "{v}");
    assert!(v["reasons"][0].as_str().unwrap().contains("is revoked by 国家政务服务平台"), "{v}");
    // A list past its nextUpdate is said in /readyz and /metrics before anything else tells.
    let metrics =
        node_b.http.get(node_b.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("licvault_federation_crl_next_update_seconds "), "{metrics}");
    let stale = keygen::revocation_list(&nation, 5, now - time::Duration::days(9), now - time::Duration::days(2), &[]);
    let path = node_b.keys.path().join("federation/crls/nation.crl.pem");
    std::fs::write(path, licvault::crypto::pem("X509 CRL", &stale.unwrap())).unwrap();
    let (status, v) = node_b.post(Some(ADMIN), "/v1/admin/keys/reload", &serde_json::json!({})).await;
    assert_eq!(status, 200, "{v}");
    let ready = node_b.http.get(node_b.url("/readyz")).send().await.unwrap().text().await.unwrap();
    assert!(ready.contains("the revocation list of 国家政务服务平台") && ready.contains("went stale"), "{ready}");
    let (ok, out) = run_licvault(
        &[
            "federation",
            "crl",
            "--issuer",
            p(&ca("nation")),
            "--number",
            "4",
            "--reason",
            "whim",
            "--out",
            p(&fed.join("x.pem")),
        ],
        None,
    );
    assert!(!ok && out.contains("--reason whim"), "{out}");
}
