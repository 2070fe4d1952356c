//! Cross-region use (issue 10, scope 3; spec/formats.md §16): the other nodes a verifier's
//! one-number lookup and one-window check, and a holder's usage view, also ask (`--peers FILE`). A node cannot look a
//! holder up in another platform's log (the holder index is keyed by each platform's own
//! commitment key), so it asks the platform: it sends the clerk's request, with the same use
//! reason, case number and officer, as this node's own verifier client of that platform, which
//! records the use in its own log (durable before it answers, as for any lookup there) and
//! answers what that client may see, with the log size its records are under. The holder's usage
//! view asks the same way, as this node's holder-channel client: a use made anywhere is recorded
//! where the licence's data was, and shown wherever the holder looks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest answer read from a peer.
const MAX_ANSWER: usize = 4 << 20;

/// `--peers FILE` (JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    pub peers: Vec<PeerConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// 1–32 of `a-z`, `0-9`, `-`: how answers name the peer.
    pub name: String,
    /// `https://`, or `http://` only to this machine (loopback).
    pub url: String,
    /// A bearer token of this node's `verifier` client at the peer.
    pub verifier_token_file: PathBuf,
    /// A bearer token of this node's `holder_channel` client at the peer (the usage view).
    #[serde(default)]
    pub holder_channel_token_file: Option<PathBuf>,
}

pub struct Peer {
    pub name: String,
    url: String,
    verifier_token: String,
    holder_channel_token: Option<String>,
}

/// What one peer answered, or why it did not.
#[derive(Debug, Clone, Serialize)]
pub struct PeerAnswer {
    pub platform: String,
    /// The peer's answer as it gave it (its own schema: `LookupAnswer`, `CheckAnswer` or
    /// `UsageAnswer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
    /// Why there is no answer: the peer did not answer, or refused (its problem's code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Peers {
    pub list: Vec<Peer>,
    http: reqwest::Client,
}

/// Which of a node's clients at the peer asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Verifier,
    HolderChannel,
}

impl Peers {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: PeersConfig = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut list: Vec<Peer> = Vec::new();
        for p in cfg.peers {
            crate::mirror::check_source(&p.name, &p.url, list.iter().map(|o| o.name.as_str()))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            list.push(Peer {
                verifier_token: crate::fetch::read_token(&p.verifier_token_file)?,
                holder_channel_token: p
                    .holder_channel_token_file
                    .as_deref()
                    .map(crate::fetch::read_token)
                    .transpose()?,
                url: p.url.trim_end_matches('/').to_string(),
                name: p.name,
            });
        }
        let http = crate::fetch::client()?;
        Ok(Self { list, http })
    }

    /// Sends `body` to `path` at every peer (or only `only`), all at once, as `who`; every
    /// peer's answer or why there is none, in the order of the configuration.
    pub async fn ask(&self, path: &str, body: &impl Serialize, who: As, only: Option<&str>) -> Vec<PeerAnswer> {
        let asks = self.list.iter().filter(|p| only.is_none_or(|o| o == p.name)).map(|p| async move {
            let (answer, error) = match self.ask_one(p, path, body, who).await {
                Ok(v) => (Some(v), None),
                Err((shown, detail)) => {
                    tracing::warn!(peer = %p.name, error = %detail, "a peer did not answer");
                    (None, Some(shown))
                }
            };
            PeerAnswer { platform: p.name.clone(), answer, error }
        });
        futures_util::future::join_all(asks).await
    }

    /// A peer's answer, or why there is none: what the clerk is shown, and the detail for the
    /// log (the same, but for a connection that failed: its addresses are not the clerk's).
    async fn ask_one(
        &self,
        p: &Peer,
        path: &str,
        body: &impl Serialize,
        who: As,
    ) -> Result<serde_json::Value, (String, String)> {
        let same = |e: String| (e.clone(), e);
        let token = match who {
            As::Verifier => &p.verifier_token,
            As::HolderChannel => {
                p.holder_channel_token.as_ref().ok_or_else(|| same("no holder-channel client at this peer".into()))?
            }
        };
        let res = self
            .http
            .post(format!("{}{path}", p.url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| ("unreachable".to_string(), e.to_string()))?;
        let status = res.status();
        let bytes = crate::fetch::read_limited(res, MAX_ANSWER).await.map_err(|e| same(format!("unreachable: {e}")))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| same(format!("answered {status}, not JSON")))?;
        if !status.is_success() {
            return Err(same(format!("answered {status} {}", v["code"].as_str().unwrap_or(""))));
        }
        Ok(v)
    }
}
