//! Fetching a manifest with a bounded read: a registry is untrusted, and a
//! manifest that never ends (or claims gigabytes) must not exhaust memory.
//! oci-client reads a manifest's whole body at once, so manifests are
//! fetched here with reqwest, with the credentials the connection already
//! negotiated, and refused past [`MAX_MANIFEST_BYTES`] (Docker's limit).

use oci_client::secrets::RegistryAuth;
use oci_client::Reference;

use crate::connect::{reference_registry, Connection, RegistryError};

/// The largest manifest or index accepted (Docker's and containerd's limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// How much of an error response's body is read for the message.
const MAX_ERROR_BODY: usize = 4096;

/// GETs the manifest `reference` names, reading at most
/// [`MAX_MANIFEST_BYTES`]; returns its bytes and the digest the registry
/// claims for it (`Docker-Content-Digest`, empty when absent).
pub async fn fetch(
    conn: &Connection,
    reference: &Reference,
    accepted: &[&str],
) -> Result<(Vec<u8>, String), RegistryError> {
    let what = format!("pull manifest {}", reference.whole());
    let http_err = |source: reqwest::Error| RegistryError::Http {
        what: what.clone(),
        source,
    };
    let scheme = if conn.plain_http { "http" } else { "https" };
    let host = reference_registry(&conn.registry);
    let target = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    let url = format!(
        "{scheme}://{host}/v2/{}/manifests/{target}",
        reference.repository()
    );
    let mut req = conn
        .http
        .get(&url)
        .header(reqwest::header::ACCEPT, accepted.join(", "));
    match (conn.bearer(), &conn.auth) {
        (Some(token), _) => req = req.bearer_auth(token),
        (None, RegistryAuth::Basic(u, p)) => req = req.basic_auth(u, Some(p)),
        _ => {}
    }
    let mut res = req.send().await.map_err(http_err)?;
    let status = res.status();
    if !status.is_success() {
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match res.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        return Err(match status.as_u16() {
            401 | 403 => RegistryError::unauthorized(&conn.registry),
            404 => RegistryError::NotFound {
                reference: reference.whole(),
            },
            _ => RegistryError::Content {
                what,
                reason: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            },
        });
    }
    let too_large = || RegistryError::Content {
        what: what.clone(),
        reason: format!("the manifest is larger than the limit of {MAX_MANIFEST_BYTES} bytes"),
    };
    if res.content_length().is_some_and(|l| l > MAX_MANIFEST_BYTES) {
        return Err(too_large());
    }
    let claimed = res
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(http_err)? {
        if (body.len() + chunk.len()) as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, claimed))
}
