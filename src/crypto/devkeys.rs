//! The committed development key set (`keys/`) is public: anything it signs proves nothing. The
//! server refuses to start with any of these keys unless `--demo` is given. Listed here are the
//! public halves only (and the commitment secret's fingerprint), as hex; a test recomputes them
//! from `keys/`, so regenerating the development keys without updating this list fails the build.

/// Ed25519 public keys of the development root, seals and log key, and the development
/// commitment secret's fingerprint ([`super::Committer::fingerprint`]).
pub const DEVELOPMENT_KEYS: &[&str] = &[
    "19a5a350a881832488d8fa6fa5878786c46b7dc6a9cd6583bba19414dceea7ab",
    "53b8f02bcd6ee364dabdd62863e5ea592901e3796c602e20626405111591a282",
    "57e65112c4786c705e307284717f3333b887c834501eb3a8aa065204d5a3476d",
    "5fff77717416a840e549ee23fb43f5adb46fa79e4b795e2064d9cb6e88d8e016",
    "824fda452cba85065e15cdb08fa1cbeb15f283a2233f75e4372a08ab8736a92f",
    "9aa07c63c15e34da24ca19c45c975108c3cf0eefbb91f596fca313a7c7dc30f7",
    "a14d059d0ff32e78fba197c6e14066064bb32418c5f7acb79f8e1523404d19d5",
    "a33cd1845485efd7f863a2f43a5e040975329479cdafc59cbdd46063c35d42a7",
    "abf329f16bbf30fcc3956a4e1a3c5f55264bd9cb1fb5d07be27e2669f724c911",
    "cad959a5eff31d9dfc87759d42d191d4f66a7aa411424d75e54d16bb415a2e62",
    "fc86872483621852c43d5a80a62afd2ee943ae40df0c005dec1e5ccb70a141b1",
];

/// SHA-256 of the demo clients' bearer tokens (`fixtures/demo-clients.json`): public too. A
/// server started without `--demo` refuses a store in which any of them still works.
pub const DEMO_TOKEN_SHA256: &[&str] = &[
    "282db164ed8d3b91c66fe56670199aab9cf3030a32c644c13def16350040314e",
    "4849ae411d15df01908acce59f0344c43f9b23912fad7cfad35603fc7f03309d",
    "63c42524f0df8960db242d07069db02db020de0dc6bc1c8c5f1bae0a93c4eada",
    "685210b098bebcb26f3ac9fcc9819ab5d5a1239797869aaa8af0bab4f1322d22",
    "7b97a790e85e5639fa3a17604e87c31511d201f4f0294e2f950df643ba84d19b",
    "8bd8d43d2fce1d38ef8f6d7b63351e60f1d2a9ca936cd71864b83a8dcf91b131",
    "a0b1ea1d2a78e24d205794cc8c20fe9586f860375a0755fb6c6a487e03231d26",
    "e051677f7bc09260247409129c32bce9ff584db56a73d2984cb00ae9a782edf9",
    "ebbb9cee289c2beb017e06d604d4c5babbed15789101c15bb0666f77be06010c",
    "ef7f3bd0292eaa59b17f05f122bfcd9a839719d04a837e598205cd9c2121390c",
    "f3d27f35549c792de4b7af3b60196401e40dcde2215a1b0db0f9f038d9feb0c6",
    "fe6aacecab8ec6a0f3efe50712a95a8ace0c0c123a6eca48ca0b017c02acd3f9",
];

/// Whether `public` (a public key or a fingerprint) belongs to the development key set.
pub fn is_development_key(public: &[u8]) -> bool {
    let h = hex::encode(public);
    DEVELOPMENT_KEYS.iter().any(|k| *k == h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signer::load_private_key;

    /// The public halves of everything in `keys/`, as hex.
    fn from_keys_dir() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
        let trust = crate::crypto::TrustList::load(&dir).unwrap();
        let mut v = vec![hex::encode(trust.root_key().to_bytes())];
        v.extend(trust.departments().map(|d| hex::encode(d.key.to_bytes())));
        // git keeps no mode bits: read the private files without the mode check.
        let read_key = |p: &str| {
            let tmp = tempfile::tempdir().unwrap();
            let copy = tmp.path().join("k.pem");
            std::fs::copy(dir.join(p), &copy).unwrap();
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            load_private_key(&copy).unwrap()
        };
        v.push(hex::encode(read_key("log.key.pem").verifying_key().to_bytes()));
        v.push(hex::encode(read_key("annotation.key.pem").verifying_key().to_bytes()));
        let secret: [u8; 32] = hex::decode(std::fs::read_to_string(dir.join("commitment.key")).unwrap().trim())
            .unwrap()
            .try_into()
            .unwrap();
        v.push(hex::encode(crate::crypto::Committer::new(secret).fingerprint()));
        v.sort();
        v
    }

    #[test]
    fn the_demo_token_list_is_the_fixture() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-clients.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut hashes: Vec<String> = v["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| hex::encode(crate::crypto::sha256(c["token"].as_str().unwrap().as_bytes())))
            .collect();
        hashes.sort();
        assert_eq!(hashes, DEMO_TOKEN_SHA256.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn the_list_is_the_committed_development_keys() {
        let mut listed: Vec<String> = DEVELOPMENT_KEYS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(listed, from_keys_dir(), "update DEVELOPMENT_KEYS to: {:#?}", from_keys_dir());
        assert!(is_development_key(&hex::decode(&listed[0]).unwrap()));
        assert!(!is_development_key(&[0u8; 32]));
    }
}
