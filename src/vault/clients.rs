//! Client systems and their bearer tokens. Tokens are stored only as SHA-256; adding a client is a
//! log leaf (without the token).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};

use super::{Client, Role, Vault, VaultError};
use crate::crypto::keygen::random32;
use crate::crypto::sha256;
use crate::domain::Uscc;
use crate::log::leaf::Event;
use crate::store::Cf;

/// Shortest token accepted for a client: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

impl Vault {
    /// The client whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<Client> {
        let hash = sha256(token.as_bytes());
        self.clients.read().ok()?.get(&hash).cloned()
    }

    pub fn clients(&self) -> Vec<Client> {
        let mut v: Vec<Client> = self.clients.read().map(|c| c.values().cloned().collect()).unwrap_or_default();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Registers a client. With `token: None` a random token is made. Returns the token: the only
    /// time it is ever shown.
    pub async fn add_client(&self, client: Client, token: Option<String>) -> Result<String, VaultError> {
        let mut tokens = self.add_clients(vec![(client, token)]).await?;
        tokens.pop().ok_or_else(|| VaultError::Internal("no token made".into()))
    }

    /// Registers several clients in one commit: all of them or none (the demo seed uses this, so
    /// a crash mid-seed cannot leave half the demo clients).
    pub async fn add_clients(&self, clients: Vec<(Client, Option<String>)>) -> Result<Vec<String>, VaultError> {
        let mut rows = Vec::with_capacity(clients.len());
        let mut tokens = Vec::with_capacity(clients.len());
        let existing = self.clients();
        for (client, token) in clients {
            let client = self.check_client(client)?;
            if existing.iter().chain(rows.iter().map(|(_, c, _)| c)).any(|c: &Client| c.id == client.id) {
                return Err(VaultError::Conflict(format!("client {} exists already", client.id)));
            }
            let token = match token {
                Some(t) if t.len() >= MIN_TOKEN_LEN => t,
                Some(_) => return Err(VaultError::Invalid(format!("tokens have at least {MIN_TOKEN_LEN} characters"))),
                None => format!("lv_{}", B64URL.encode(random32().map_err(|e| VaultError::Internal(e.to_string()))?)),
            };
            let record = serde_json::to_vec(&client).map_err(|e| VaultError::Internal(e.to_string()))?;
            rows.push((sha256(token.as_bytes()), client, record));
            tokens.push(token);
        }
        let job_rows: Vec<_> = rows.iter().map(|(h, c, r)| (*h, c.clone(), r.clone())).collect();
        let (r, _) = self
            .seq
            .submit(move |tx| {
                for (hash, c, record) in job_rows {
                    if tx.get(Cf::Clients, &hash)?.is_some() {
                        return Err(VaultError::Conflict(format!("the token of {} is taken", c.id)));
                    }
                    let mut ev = Event::new("client.added")
                        .text("client", c.id.as_str())
                        .text("name", c.name.as_str())
                        .text("role", c.role.as_str());
                    if let Some(u) = &c.uscc {
                        ev = ev.text("uscc", u.as_str());
                    }
                    tx.append(ev);
                    tx.put(Cf::Clients, hash.to_vec(), record);
                }
                Ok(())
            })
            .await?;
        r?;
        if let Ok(mut map) = self.clients.write() {
            map.extend(rows.into_iter().map(|(h, c, _)| (h, c)));
        }
        Ok(tokens)
    }

    fn check_client(&self, mut client: Client) -> Result<Client, VaultError> {
        if client.id.is_empty()
            || client.id.len() > 64
            || !client.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(VaultError::Invalid("client id must be 1–64 characters of A-Z, a-z, 0-9, - and _".into()));
        }
        if let Some(u) = &client.uscc {
            client.uscc = Some(Uscc::parse(u)?.as_str().to_string());
        }
        if matches!(client.role, Role::Issuer | Role::Verifier) && client.uscc.is_none() {
            return Err(VaultError::Invalid("issuer and verifier clients need their department's USCC".into()));
        }
        if client.role == Role::Issuer {
            let uscc = client.uscc.as_deref().unwrap_or_default();
            for t in &client.types {
                let ty = self.catalogue.licence_type(t).ok_or_else(|| VaultError::UnknownType(t.clone()))?;
                if !ty.may_issue(uscc) {
                    return Err(VaultError::Invalid(format!("{uscc} may not issue {t} ({})", ty.name)));
                }
            }
        }
        Ok(client)
    }
}
