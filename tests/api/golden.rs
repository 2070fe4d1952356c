//! The golden licence document (spec/formats.md §7): decoded and re-encoded byte for byte.
//! `LICVAULT_WRITE_GOLDEN=1 cargo test --test api golden` rewrites it after a deliberate format
//! change.

use ed25519_dalek::SigningKey;
use licvault::crypto::cose::{self, Envelope};
use licvault::crypto::Ed25519Signer;
use licvault::domain::{HolderId, Licence, LicenceId};

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
        valid_from: 1_717_171_200,
        valid_until: Some(1_874_937_600),
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
