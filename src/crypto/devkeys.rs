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
    "abf329f16bbf30fcc3956a4e1a3c5f55264bd9cb1fb5d07be27e2669f724c911",
    "cad959a5eff31d9dfc87759d42d191d4f66a7aa411424d75e54d16bb415a2e62",
    "fc86872483621852c43d5a80a62afd2ee943ae40df0c005dec1e5ccb70a141b1",
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
        let secret: [u8; 32] = hex::decode(std::fs::read_to_string(dir.join("commitment.key")).unwrap().trim())
            .unwrap()
            .try_into()
            .unwrap();
        v.push(hex::encode(crate::crypto::Committer::new(secret).fingerprint()));
        v.sort();
        v
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
