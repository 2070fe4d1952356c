//! Reading from other servers (`licvault trust pull`, a mirror's sources, a node's peers): a
//! body is read only up to a bound, and a token file is read once, trimmed.

use std::path::Path;

/// The body of `res`, refused past `max` bytes (announced or read).
pub async fn read_limited(mut res: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let over = || format!("the answer is over {max} bytes");
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(over());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|_| "the answer broke off".to_string())? {
        if body.len() + chunk.len() > max {
            return Err(over());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The client a mirror or a node's peers use: 10 seconds a request, no redirect followed (the
/// token must not go to another server).
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A bearer token kept in a file (surrounding white space ignored).
pub fn read_token(path: &Path) -> Result<String, String> {
    Ok(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?.trim().to_string())
}
