//! Witnesses against split views (issue 8): two `licvault witness` services cosign the vault's
//! checkpoints; a fork signed with the log's own key is cosigned once, and from then on the
//! vault's real tree is refused, and the vault keeps serving the last checkpoint the witness
//! cosigned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use licvault::log::cosign::{witness_vkey, AddCheckpoint, WitnessKey};
use licvault::log::merkle::{consistency_proof, leaf_hash, CompactRange, Hash, Nodes};
use licvault::log::note::{sign_note, Checkpoint};
use licvault::store::StoredNodes;

use crate::common::*;

/// A witness on 127.0.0.1:0 following the vault's log; its URL and verifier key.
async fn witness(s: &Server, name: &str, state: &std::path::Path) -> (String, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&licvault::crypto::keygen::random32().unwrap());
    let vkey = witness_vkey(name, &key.verifying_key().to_bytes());
    let log = licvault::log::note::Verifier::parse(&s.vault.log_verifier_key()).unwrap();
    let signer = Box::new(licvault::crypto::signer::LogSigner::new(key, name));
    let w = Arc::new(licvault::witness::Witness::new(signer, vec![log], state).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(licvault::http::witness::serve(listener, w));
    (url, vkey)
}

/// Waits until `f` holds (at most 20 s).
async fn until(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out");
}

/// Stored nodes of the real tree, with the nodes of a fork on top.
struct Fork<'a> {
    store: StoredNodes<'a>,
    extra: HashMap<(u32, u64), Hash>,
}

impl Nodes for Fork<'_> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.extra.get(&(level, index)).copied().or_else(|| self.store.node(level, index))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn witnesses_cosign_and_refuse_a_split_view() {
    let s = Server::start().await;
    let states = tempfile::tempdir().unwrap();
    let (url1, vkey1) = witness(&s, "witness-1.example", &states.path().join("w1")).await;
    let (url2, vkey2) = witness(&s, "witness-2.example", &states.path().join("w2")).await;
    let keys = [WitnessKey::parse(&vkey1).unwrap(), WitnessKey::parse(&vkey2).unwrap()];
    let targets = vec![format!("{url1}={vkey1}").parse().unwrap(), format!("{url2}={vkey2}").parse().unwrap()];
    let cosigner = Arc::new(licvault::witness::Cosigner::new(targets, 2, None).unwrap());
    tokio::spawn(licvault::witness::cosign_forever(s.vault.clone(), cosigner.clone(), Duration::from_millis(50)));
    // The served checkpoint, as a verifier fetches it.
    let state = licvault::http::AppState {
        cosigner: Some(cosigner.clone()),
        ..licvault::http::AppState::new(s.vault.clone(), Default::default())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served_base = format!("http://{}", listener.local_addr().unwrap());
    let served = format!("{served_base}/v1/log/checkpoint");
    tokio::spawn(licvault::http::serve(listener, state));
    let fetch = || async { reqwest::get(&served).await.unwrap().text().await.unwrap() };
    let log = licvault::log::note::Verifier::parse(&s.vault.log_verifier_key()).unwrap();

    // Both witnesses cosign the vault's checkpoints as it grows.
    let issued = s.issue_company("91440300MA5E000256").await;
    let size = s.vault.head().size;
    until(async || {
        let note = fetch().await;
        Checkpoint::open(&note, &log).unwrap().size == size && licvault::log::cosign::cosignatures(&note, &keys) == 2
    })
    .await;
    let cosigned_size = size;

    // Someone holding the log's key signs a fork: the real tree up to now, then other leaves.
    let signer = licvault::crypto::signer::LogSigner::new(
        licvault::crypto::signer::load_private_key(&s.keys.path().join("log.key.pem")).unwrap(),
        s.vault.log_origin(),
    );
    let store = s.vault.store().clone();
    let mut fork = Fork { store: StoredNodes(store.as_ref()), extra: HashMap::new() };
    let mut tree = CompactRange::from_nodes(&fork, cosigned_size).unwrap();
    for i in 0..3u8 {
        for (level, index, h) in tree.append(leaf_hash(&[b'f', i])) {
            fork.extra.insert((level, index), h);
        }
    }
    let forked = sign_note(
        &Checkpoint { origin: signer.name().to_string(), size: tree.size(), root: tree.root() }.to_text(),
        &signer,
    );
    let req = AddCheckpoint {
        old: cosigned_size,
        proof: consistency_proof(&fork, cosigned_size, tree.size()).unwrap(),
        checkpoint: forked.clone(),
    };
    let http = reqwest::Client::new();
    let res = http.post(format!("{url1}/add-checkpoint")).body(req.to_text()).send().await.unwrap();
    assert_eq!(res.status(), 200, "witness 1 cosigns the fork: it is consistent with what it saw");
    // The same fork with a proof that does not link is refused (422), as is a stale old size
    // (409, with the witness's size) and a checkpoint not signed by the log (403).
    let bad = AddCheckpoint { proof: vec![[0; 32]; req.proof.len()], ..req.clone() };
    let res = http.post(format!("{url2}/add-checkpoint")).body(bad.to_text()).send().await.unwrap();
    assert_eq!(res.status(), 422);
    let stale = AddCheckpoint { old: 1, ..req.clone() };
    let res = http.post(format!("{url2}/add-checkpoint")).body(stale.to_text()).send().await.unwrap();
    assert_eq!(res.status(), 409);
    assert_eq!(res.text().await.unwrap(), format!("{cosigned_size}\n"));
    let other_key =
        licvault::crypto::signer::LogSigner::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]), s.vault.log_origin());
    let unsigned = AddCheckpoint {
        checkpoint: sign_note(
            &Checkpoint::parse(&forked[..forked.find("\n\n").unwrap() + 1]).unwrap().to_text(),
            &other_key,
        ),
        ..req.clone()
    };
    let res = http.post(format!("{url2}/add-checkpoint")).body(unsigned.to_text()).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // The vault grows past the fork: its real tree is not consistent with the fork witness 1 now
    // holds, so witness 1 refuses it, the quorum of two is not met, and the vault keeps serving
    // the last checkpoint both cosigned.
    for n in 0..6 {
        s.issue_company(&licvault::domain::holder::complete_uscc(&format!("91440300MA7W{n:04}")).unwrap()).await;
    }
    assert!(s.vault.head().size > tree.size());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let note = fetch().await;
    assert_eq!(Checkpoint::open(&note, &log).unwrap().size, cosigned_size, "{note}");
    assert_eq!(licvault::log::cosign::cosignatures(&note, &keys), 2);
    // Witness 2, which never saw the fork, cosigned the real tree on its own (below quorum).
    let head = s.vault.head();
    let res = http
        .post(format!("{url2}/add-checkpoint"))
        .body(AddCheckpoint { old: head.size, proof: vec![], checkpoint: head.checkpoint.clone() }.to_text())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "witness 2 is at the vault's real head");

    // What a restarted vault serves: the cosigned checkpoint it kept.
    assert_eq!(s.vault.kept_cosigned().unwrap().as_deref(), Some(note.as_str()));

    // An auditor who requires both witnesses: the export ends at the cosigned checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let (bundle, cosigned, bare) = (dir.path().join("b"), dir.path().join("cosigned"), dir.path().join("bare"));
    std::fs::write(&cosigned, &note).unwrap();
    std::fs::write(&bare, s.vault.checkpoint_at(cosigned_size).unwrap()).unwrap();
    let (url, size, vkey) = (s.url(""), cosigned_size.to_string(), s.vault.log_verifier_key());
    let export = ["audit", "export", &url, "--from", "0", "--to", &size, bundle.to_str().unwrap()];
    let (ok, out) = run_licvault(&export, Some(("LICVAULT_AUDITOR_TOKEN", AUDITOR)));
    assert!(ok, "{out}");
    let verify = |previous: &std::path::Path| {
        let args = [
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--log-key",
            &vkey,
            "--previous",
            previous.to_str().unwrap(),
            "--witness",
            &vkey1,
            "--witness",
            &vkey2,
            "--quorum",
            "2",
        ];
        run_licvault(&args, None)
    };
    let (ok, out) = verify(&cosigned);
    assert!(ok, "{out}");
    let (ok, out) = verify(&bare);
    assert!(!ok && out.contains("cosigned by 2 of the 2 witnesses"), "{out}");
    let (ok, out) = run_licvault(
        &[
            "witness",
            "verify",
            cosigned.to_str().unwrap(),
            "--log-key",
            &vkey,
            "--witness",
            &vkey1,
            "--witness",
            &vkey1,
        ],
        None,
    );
    assert!(!ok && out.contains("given twice"), "{out}");

    // A verifier that requires k of n: the checkpoint pulled with the trust list must be
    // cosigned; a witness that never saw this log does not count.
    let trust = dir.path().join("trust");
    let (ok, out) = run_licvault(&["trust", "pull", &served_base, trust.to_str().unwrap()], None);
    assert!(ok, "{out}");
    let qr = s.qr_of(&issued).await;
    let unknown = witness_vkey("witness-3.example", &[9; 32]);
    let offline = |witnesses: &[&str], quorum: &str| {
        let mut args = vec!["verify", qr.as_str(), "--trust", trust.to_str().unwrap(), "--quorum", quorum];
        for w in witnesses {
            args.extend(["--witness", w]);
        }
        run_licvault(&args, None)
    };
    let (ok, out) = offline(&[&vkey1, &vkey2], "2");
    assert!(ok, "{out}");
    let (ok, out) = offline(&[&vkey1, &unknown], "2");
    assert!(!ok && out.contains("Unwitnessed") && out.contains("cosigned by 1 of 2"), "{out}");
}
