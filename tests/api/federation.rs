//! Trust across platforms (issue 10, scope 1): a licence issued on one city platform verifies
//! offline on another city's trust directory through the federation (national root → province
//! → cross-certified city root), until the national root revokes the issuing province; without a
//! current revocation list nothing from another platform is vouched for.

use std::path::Path;

use licvault::crypto::keygen::{self, DepartmentSpec, FederationCa, Revocation};
use time::{Duration, OffsetDateTime};

use crate::common::*;

fn der_of(pem_file: &Path) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(&std::fs::read(pem_file).unwrap()).unwrap().1.contents
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn serial(der: &[u8]) -> Vec<u8> {
    x509_parser::parse_x509_certificate(der).unwrap().1.serial.to_bytes_be()
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
    let dept: DepartmentSpec = serde_json::from_value(catalogue["departments"][0].clone()).unwrap();
    keygen::init(&b, &dir.path().join("b-root-ca"), "另一市政务服务平台", "licvault.test/b", &[dept], false).unwrap();
    let verify = || run_licvault(&["verify", doc.to_str().unwrap(), "--trust", b.to_str().unwrap()], None);
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer"), "B alone knows nothing of A: {out}");

    // The federation: the nation certifies two provinces, each cross-certifies its city's root.
    let now = OffsetDateTime::now_utc();
    let (from, to) = (now - Duration::days(1), now + Duration::days(365));
    let nation = FederationCa::national("国家政务服务平台", from, to).unwrap();
    let gd = FederationCa::provincial(&nation, "广东省政务服务平台", from, to).unwrap();
    let zj = FederationCa::provincial(&nation, "浙江省政务服务平台", from, to).unwrap();
    let cross_a = keygen::cross_certify(&gd, &der_of(&s.keys.path().join("root.crt.pem")), from, to).unwrap();
    let cross_b = keygen::cross_certify(&zj, &der_of(&b.join("root.crt.pem")), from, to).unwrap();
    let fed = b.join("federation");
    write(&fed.join("anchor.crt.pem"), &nation.cert_pem);
    write(&fed.join("cas/guangdong.crt.pem"), &gd.cert_pem);
    write(&fed.join("cas/zhejiang.crt.pem"), &zj.cert_pem);
    write(&fed.join("cas/city-a.crt.pem"), &licvault::crypto::pem("CERTIFICATE", &cross_a));
    write(&fed.join("cas/city-b.crt.pem"), &licvault::crypto::pem("CERTIFICATE", &cross_b));
    let crl = |ca: &FederationCa, n: u64, this: OffsetDateTime, next: OffsetDateTime, revoked: &[Revocation]| {
        licvault::crypto::pem("X509 CRL", &keygen::revocation_list(ca, n, this, next, revoked).unwrap())
    };
    let week = now + Duration::days(7);
    write(&fed.join("crls/nation.crl.pem"), &crl(&nation, 1, from, week, &[]));
    write(&fed.join("crls/guangdong.crl.pem"), &crl(&gd, 1, from, week, &[]));
    write(&fed.join("crls/zhejiang.crl.pem"), &crl(&zj, 1, from, week, &[]));
    // A's departments' seal certificates, as A's GET /v1/trust publishes them.
    std::fs::create_dir_all(fed.join("peers")).unwrap();
    for e in std::fs::read_dir(s.keys.path().join("departments")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".crt.pem") {
            std::fs::copy(&p, fed.join("peers").join(p.file_name().unwrap())).unwrap();
        }
    }
    let (ok, out) = verify();
    assert!(ok && out.contains("signature: valid") && out.contains("示例市市场监督管理局"), "{out}");

    // Without the province's revocation list, its status is unknown: fail closed.
    std::fs::rename(fed.join("crls/guangdong.crl.pem"), dir.path().join("guangdong.crl.pem")).unwrap();
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer") && out.contains("no revocation list"), "{out}");
    std::fs::rename(dir.path().join("guangdong.crl.pem"), fed.join("crls/guangdong.crl.pem")).unwrap();
    // A revocation list past its nextUpdate is as good as none.
    write(&fed.join("crls/nation.crl.pem"), &crl(&nation, 2, now - Duration::days(9), now - Duration::days(2), &[]));
    let (ok, out) = verify();
    assert!(!ok && out.contains("not current"), "{out}");

    // The nation revokes Guangdong's certificate (its key was compromised): A's licence is no
    // longer vouched for, offline, whenever it was signed.
    let revoked = [Revocation {
        serial: serial(&gd.cert_der),
        at: now - Duration::minutes(1),
        reason: Some(rcgen::RevocationReason::KeyCompromise),
    }];
    write(&fed.join("crls/nation.crl.pem"), &crl(&nation, 3, now - Duration::minutes(1), week, &revoked));
    let (ok, out) = verify();
    assert!(!ok && out.contains("UnknownIssuer") && out.contains("is revoked by 国家政务服务平台"), "{out}");
}
