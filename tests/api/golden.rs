//! The golden licence document (spec/formats.md §7): decoded and re-encoded byte for byte.
//! `LICVAULT_WRITE_GOLDEN=1 cargo test --test api golden` rewrites it after a deliberate format
//! change.

use ed25519_dalek::SigningKey;
use licvault::crypto::cose::{self, Envelope};
use licvault::crypto::Ed25519Signer;
use licvault::domain::{Disclosure, HolderId, Licence, LicenceId, Presented, StatusRef, TypeCode, Uscc};

use crate::common::root;

fn golden_licence() -> Licence {
    Licence {
        id: LicenceId::parse("1.2.156.3005.2.12440305K12345677U001.91110108MA0ABCD1XL.2024000001.001.T").unwrap(),
        type_name: "营业执照".into(),
        number: "2024000001".into(),
        holder: HolderId::parse("001", "52310104MJ0123456M").unwrap(),
        holder_name: "示例科技有限公司".into(),
        issuer_name: "示例市市场监督管理局".into(),
        area_code: "440305".into(),
        fields: [
            ("名称", "示例科技有限公司"),
            ("成立日期", "2020-05-18"),
            ("营业期限", "长期"),
            ("经营范围", "软件开发；信息技术咨询服务。"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        predecessor: None,
        co_holders: Vec::new(),
        issued_at: 1_717_200_000,
        issue_date: None,
        valid_from: 1_717_171_200,
        valid_until: Some(1_874_937_600),
        status_ref: None,
    }
}

/// A licence of a natural person in the format with salted disclosures: the holder's number and
/// two personal fields become disclosures.
fn golden_sd_licence() -> Licence {
    Licence {
        id: LicenceId::new(
            TypeCode::parse("11100000MB000030XJ001").unwrap(),
            Uscc::parse("11440300MB2000303J").unwrap(),
            "2024000002",
            1,
        )
        .unwrap(),
        type_name: "医师执业证书".into(),
        number: "110440300000002".into(),
        holder: HolderId::parse("111", "11010519491231002X").unwrap(),
        holder_name: "李医生".into(),
        issuer_name: "示例市卫生健康委员会".into(),
        area_code: "440300".into(),
        fields: [("姓名", "李医生"), ("性别", "女"), ("出生日期", "1949-12-31"), ("执业类别", "临床")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        valid_until: None,
        status_ref: Some(StatusRef { uri: "https://licvault.example.gov.cn/v1/status-lists/0".into(), index: 98_765 }),
        ..golden_licence()
    }
}

#[test]
fn fixture_decodes_and_re_encodes() {
    let signer = Ed25519Signer::new(SigningKey::from_bytes(&[1; 32]), b"golden certificate", "91110108MA0ABCD1XL");
    let fresh = cose::sign(&signer, golden_licence().to_payload());
    let path = root().join("fixtures/golden/licence.cbor");
    if std::env::var("LICVAULT_WRITE_GOLDEN").is_ok() {
        std::fs::write(&path, &fresh).unwrap();
        std::fs::write(root().join("fixtures/golden/licence.hex"), format!("{}\n", hex::encode(&fresh))).unwrap();
    }
    let golden = std::fs::read(&path).unwrap();
    let hex_text = std::fs::read_to_string(root().join("fixtures/golden/licence.hex")).unwrap();
    assert_eq!(hex::decode(hex_text.trim()).unwrap(), golden, "licence.hex and licence.cbor disagree");
    // Ed25519 is deterministic: the same licence and key give the same bytes.
    assert_eq!(fresh, golden, "the encoding of a licence changed; see spec/formats.md §7");

    let env = Envelope::parse(&golden).unwrap();
    env.verify(&signer.verifying_key()).unwrap();
    assert_eq!(env.to_tagged_bytes(), golden);
    let licence = Licence::from_payload(env.payload()).unwrap();
    assert_eq!(licence, golden_licence());
    assert_eq!(licence.to_payload(), env.payload());
}

/// The format with salted disclosures: `licence-sd.cbor` is the document as issued and
/// `licence-sd.presented.cbor` the same document with every disclosure in its unprotected header.
/// Salts are fixed here (the vault draws them at random) so the bytes are stable.
#[test]
fn sd_fixture_decodes_and_re_encodes() {
    let signer = Ed25519Signer::new(SigningKey::from_bytes(&[2; 32]), b"golden certificate", "11440300MB2000303J");
    let mut n = 0u8;
    let mut salt = || {
        n += 1;
        [n; 16]
    };
    let sd = golden_sd_licence().to_sd_payload(|f| f == "性别" || f == "出生日期", &mut salt);
    let fresh = cose::sign(&signer, sd.payload.clone());
    let bytes: Vec<&[u8]> = sd.disclosures.iter().map(Disclosure::bytes).collect();
    let presented = cose::with_disclosures(&fresh, &bytes).unwrap();
    let dir = root().join("fixtures/golden");
    if std::env::var("LICVAULT_WRITE_GOLDEN").is_ok() {
        std::fs::write(dir.join("licence-sd.cbor"), &fresh).unwrap();
        std::fs::write(dir.join("licence-sd.presented.cbor"), &presented).unwrap();
    }
    assert_eq!(std::fs::read(dir.join("licence-sd.cbor")).unwrap(), fresh, "see spec/formats.md §7");
    assert_eq!(std::fs::read(dir.join("licence-sd.presented.cbor")).unwrap(), presented);

    // Three disclosures: the holder's number and the two personal fields; nothing personal in clear.
    assert_eq!(sd.disclosures.len(), 3);
    let env = Envelope::parse(&presented).unwrap();
    env.verify(&signer.verifying_key()).unwrap();
    assert_eq!(env.issued_bytes(), fresh, "stripping the disclosures gives the document as issued");
    let text = String::from_utf8_lossy(env.payload()).to_string();
    assert!(!text.contains("11010519491231002X") && !text.contains("1949-12-31"), "personal values in clear");
    let all: Vec<Disclosure> = env.disclosures().iter().map(|d| Disclosure::parse(d).unwrap()).collect();
    assert_eq!(Licence::from_signed(env.payload(), &all).unwrap(), golden_sd_licence());
    // With only the birth date disclosed: the number stays withheld.
    let some: Vec<Disclosure> = all.iter().filter(|d| d.value == "1949-12-31").cloned().collect();
    let p = Presented::parse(env.payload(), &some).unwrap();
    assert_eq!((p.holder.id.clone(), p.withheld, p.fields["出生日期"].as_str()), (None, 2, "1949-12-31"));
    assert!(Licence::from_signed(env.payload(), &some).is_err());
}
