//! Client systems and their bearer tokens: register, list, disable, rotate, expire. Tokens are
//! stored only as SHA-256; every change is a log leaf (without the token) and takes effect on the
//! running server at once (the in-memory table is updated right after the commit).
//!
//! Rotation makes a new token; the old one stops working at once, or after a grace period the
//! administrator chooses (at most 7 days) so the client system can switch without downtime.
//!
//! Each change runs to its end in a task of its own, under one lock: a caller that goes away
//! (a closed connection) cannot leave a change committed to the log but not yet in force.

use std::future::Future;
use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};

use super::{unix_now, Client, Role, Vault, VaultError};
use crate::crypto::keygen::random32;
use crate::crypto::sha256;
use crate::domain::{text, Uscc};
use crate::log::leaf::Event;
use crate::log::merkle::Hash;
use crate::store::Cf;

/// Shortest token accepted for a client: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest grace period for a rotated-out token.
pub const MAX_ROTATION_GRACE: i64 = 7 * 86_400;

/// Why a bearer token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Disabled,
    Expired,
    RotatedOut,
}

impl Vault {
    /// The client whose token this is, if the token is in force now.
    pub fn authenticate(&self, token: &str) -> Result<Client, TokenRefusal> {
        let hash = sha256(token.as_bytes());
        let client = self.clients.read().ok().and_then(|m| m.get(&hash).cloned()).ok_or(TokenRefusal::Unknown)?;
        let now = unix_now();
        if client.disabled {
            return Err(TokenRefusal::Disabled);
        }
        if client.expires_at.is_some_and(|t| now >= t) {
            return Err(TokenRefusal::Expired);
        }
        if client.token_valid_until.is_some_and(|t| now >= t) {
            return Err(TokenRefusal::RotatedOut);
        }
        Ok(client)
    }

    /// Ids of the clients whose tokens in force include one of the public demo tokens.
    pub fn clients_with_demo_tokens(&self) -> Vec<String> {
        let now = unix_now();
        let mut ids: Vec<String> = self
            .clients
            .read()
            .map(|m| {
                m.iter()
                    .filter(|(h, c)| {
                        crate::crypto::devkeys::DEMO_TOKEN_SHA256.contains(&hex::encode(h).as_str())
                            && !c.disabled
                            && c.token_valid_until.is_none_or(|t| now < t)
                    })
                    .map(|(_, c)| c.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Every client, once each (the row of its current token), by id.
    pub fn clients(&self) -> Vec<Client> {
        let mut v: Vec<Client> = self
            .clients
            .read()
            .map(|c| c.values().filter(|c| c.token_valid_until.is_none()).cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The client `id` (the row of its current token).
    pub fn client(&self, id: &str) -> Option<Client> {
        let map = self.clients.read().ok()?;
        map.values().find(|c| c.id == id && c.token_valid_until.is_none()).cloned()
    }

    /// Runs `change` in its own task, holding the client lock: it completes even if the caller's
    /// future is dropped.
    async fn client_change<T, F, Fut>(self: &Arc<Self>, change: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, VaultError>> + Send + 'static,
    {
        self.serially(|v| &v.client_changes, "client change", change).await
    }

    /// Registers a client. With `token: None` a random token is made. Returns the token: the only
    /// time it is ever shown. `actor` is who registered it (logged).
    pub async fn add_client(
        self: &Arc<Self>,
        client: Client,
        token: Option<String>,
        actor: &str,
    ) -> Result<String, VaultError> {
        let mut tokens = self.add_clients(vec![(client, token)], actor).await?;
        tokens.pop().ok_or_else(|| VaultError::Internal("no token made".into()))
    }

    /// Registers several clients in one commit: all of them or none (the demo seed uses this, so
    /// a crash mid-seed cannot leave half the demo clients).
    pub async fn add_clients(
        self: &Arc<Self>,
        clients: Vec<(Client, Option<String>)>,
        actor: &str,
    ) -> Result<Vec<String>, VaultError> {
        let actor = actor.to_string();
        self.client_change(move |v| async move { v.add_clients_now(clients, &actor).await }).await
    }

    async fn add_clients_now(
        &self,
        clients: Vec<(Client, Option<String>)>,
        actor: &str,
    ) -> Result<Vec<String>, VaultError> {
        let mut rows = Vec::with_capacity(clients.len());
        let mut tokens = Vec::with_capacity(clients.len());
        let existing = self.clients();
        let now = unix_now();
        for (client, token) in clients {
            let mut client = self.check_client(client)?;
            if existing.iter().chain(rows.iter().map(|(_, c)| c)).any(|c: &Client| c.id == client.id) {
                return Err(VaultError::Conflict(format!("client {} exists already", client.id)));
            }
            client.created_at = Some(now);
            let token = match token {
                Some(t) if t.len() >= MIN_TOKEN_LEN => t,
                Some(_) => return Err(VaultError::Invalid(format!("tokens have at least {MIN_TOKEN_LEN} characters"))),
                None => new_token()?,
            };
            rows.push((sha256(token.as_bytes()), client));
            tokens.push(token);
        }
        let events = rows.iter().map(|(_, c)| client_event("client.added", c, None).text("by", actor)).collect();
        self.commit_clients(rows, events).await?;
        Ok(tokens)
    }

    /// Disables client `id`: every token of it is refused from now on. Logged with the reason.
    pub async fn disable_client(self: &Arc<Self>, id: &str, reason: &str, actor: &str) -> Result<Client, VaultError> {
        let reason = text::clean("reason", reason, super::issue::MAX_REASON)?;
        let (id, actor) = (id.to_string(), actor.to_string());
        self.client_change(move |v| async move { v.disable_client_now(&id, &reason, &actor).await }).await
    }

    async fn disable_client_now(&self, id: &str, reason: &str, actor: &str) -> Result<Client, VaultError> {
        let current = self.client(id).ok_or_else(|| VaultError::ClientNotFound(id.to_string()))?;
        if current.disabled {
            return Err(VaultError::Conflict(format!("client {id} is disabled already")));
        }
        let rows = self.client_rows(id, |c| c.disabled = true);
        let mut done = current;
        done.disabled = true;
        let ev = client_event("client.disabled", &done, Some(reason)).text("by", actor);
        self.commit_clients(rows, vec![ev]).await?;
        Ok(done)
    }

    /// Gives client `id` a new token. The old token stops working at once, or after
    /// `grace_seconds` (0..=[`MAX_ROTATION_GRACE`]). `expires_at`, when given, is the client's
    /// new expiry (so an expired client can be given a new token and time). Returns the client
    /// and the new token.
    pub async fn rotate_client(
        self: &Arc<Self>,
        id: &str,
        reason: &str,
        grace_seconds: i64,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(Client, String), VaultError> {
        let reason = text::clean("reason", reason, super::issue::MAX_REASON)?;
        if !(0..=MAX_ROTATION_GRACE).contains(&grace_seconds) {
            return Err(VaultError::Invalid(format!("old_token_valid_seconds must be 0 to {MAX_ROTATION_GRACE}")));
        }
        if expires_at.is_some_and(|t| t <= unix_now()) {
            return Err(VaultError::Invalid("expires_at is in the past".into()));
        }
        let (id, actor) = (id.to_string(), actor.to_string());
        self.client_change(move |v| async move {
            v.rotate_client_now(&id, &reason, grace_seconds, expires_at, &actor).await
        })
        .await
    }

    async fn rotate_client_now(
        &self,
        id: &str,
        reason: &str,
        grace_seconds: i64,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(Client, String), VaultError> {
        let current = self.client(id).ok_or_else(|| VaultError::ClientNotFound(id.to_string()))?;
        if current.disabled {
            return Err(VaultError::Conflict(format!("client {id} is disabled: register a new client instead")));
        }
        let now = unix_now();
        let until = now + grace_seconds;
        let mut rows =
            self.client_rows(id, |c| c.token_valid_until = Some(c.token_valid_until.map_or(until, |t| t.min(until))));
        let token = new_token()?;
        let mut fresh = current;
        fresh.rotated_at = Some(now);
        if expires_at.is_some() {
            fresh.expires_at = expires_at;
        }
        fresh.token_valid_until = None;
        rows.push((sha256(token.as_bytes()), fresh.clone()));
        let ev = client_event("client.rotated", &fresh, Some(reason))
            .text("by", actor)
            .uint("old_token_grace_s", grace_seconds as u64);
        self.commit_clients(rows, vec![ev]).await?;
        Ok((fresh, token))
    }

    /// Every stored row of client `id` (one per token ever given), each changed by `change`.
    fn client_rows(&self, id: &str, change: impl Fn(&mut Client)) -> Vec<(Hash, Client)> {
        self.clients
            .read()
            .map(|m| {
                m.iter()
                    .filter(|(_, c)| c.id == id)
                    .map(|(h, c)| {
                        let mut c = c.clone();
                        change(&mut c);
                        (*h, c)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes `rows` and `events` in one commit, then updates the in-memory table.
    async fn commit_clients(&self, rows: Vec<(Hash, Client)>, events: Vec<Event>) -> Result<(), VaultError> {
        let mut puts = Vec::with_capacity(rows.len());
        for (h, c) in &rows {
            puts.push((*h, serde_json::to_vec(c).map_err(|e| VaultError::Internal(e.to_string()))?));
        }
        let known: Vec<Hash> = rows.iter().map(|(h, _)| *h).collect();
        let existing: std::collections::HashSet<Hash> = self
            .clients
            .read()
            .map(|m| known.iter().filter(|h| m.contains_key(*h)).copied().collect())
            .unwrap_or_default();
        let (r, _) = self
            .seq
            .submit(move |tx| {
                for (hash, _) in &puts {
                    if !existing.contains(hash) && tx.get(Cf::Clients, hash)?.is_some() {
                        return Err(VaultError::Conflict("that token is taken".into()));
                    }
                }
                for ev in events {
                    tx.append(ev);
                }
                for (hash, record) in puts {
                    tx.put(Cf::Clients, hash.to_vec(), record);
                }
                Ok(())
            })
            .await?;
        r?;
        if let Ok(mut map) = self.clients.write() {
            map.extend(rows);
        }
        Ok(())
    }

    fn check_client(&self, mut client: Client) -> Result<Client, VaultError> {
        if client.id.is_empty()
            || client.id.len() > 64
            || !client.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(VaultError::Invalid("client id must be 1–64 characters of A-Z, a-z, 0-9, - and _".into()));
        }
        client.name = text::clean("name", &client.name, 100)?;
        if let Some(u) = &client.uscc {
            client.uscc = Some(Uscc::parse(u)?.as_str().to_string());
        }
        if matches!(client.role, Role::Issuer | Role::Verifier) && client.uscc.is_none() {
            return Err(VaultError::Invalid("issuer and verifier clients need their department's USCC".into()));
        }
        if client.expires_at.is_some_and(|t| t <= unix_now()) {
            return Err(VaultError::Invalid("expires_at is in the past".into()));
        }
        if client.sees_every_type() {
            if client.role != Role::Verifier || client.types.len() != 1 {
                return Err(VaultError::Invalid(
                    "types [\"*\"] (every licence type) is a verifier's scope, and alone".into(),
                ));
            }
            return Ok(client);
        }
        if !client.types.is_empty() && !matches!(client.role, Role::Issuer | Role::Verifier) {
            return Err(VaultError::Invalid(format!("a {} client has no licence types", client.role.as_str())));
        }
        for t in &client.types {
            let catalogue = self.catalogue();
            let ty = catalogue.licence_type(t).ok_or_else(|| VaultError::UnknownType(t.clone()))?;
            if client.role == Role::Issuer {
                let uscc = client.uscc.as_deref().unwrap_or_default();
                if !ty.may_issue(uscc) {
                    return Err(VaultError::Invalid(format!("{uscc} may not issue {t} ({})", ty.name)));
                }
            }
        }
        Ok(client)
    }
}

fn new_token() -> Result<String, VaultError> {
    Ok(format!("lv_{}", B64URL.encode(random32().map_err(|e| VaultError::Internal(e.to_string()))?)))
}

fn client_event(kind: &str, c: &Client, reason: Option<&str>) -> Event {
    let mut ev =
        Event::new(kind).text("client", c.id.as_str()).text("name", c.name.as_str()).text("role", c.role.as_str());
    if let Some(u) = &c.uscc {
        ev = ev.text("uscc", u.as_str());
    }
    if !c.types.is_empty() {
        ev = ev.text("types", c.types.join(","));
    }
    if let Some(t) = c.expires_at {
        ev = ev.uint("expires_at", t.max(0) as u64);
    }
    if let Some(r) = reason {
        ev = ev.text("reason", r);
    }
    ev
}
