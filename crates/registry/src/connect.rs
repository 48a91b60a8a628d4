//! Talking to one registry: parsing a reference (Docker's rules: no
//! registry means Docker Hub, no tag means `latest`), choosing plain HTTP
//! for loopback registries and `--insecure` (as Docker does), looking up
//! stored credentials, and the errors every registry operation shares.

use std::net::IpAddr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::auth::{AuthError, AuthFile};

/// Errors of pull, push and login, each naming the image, blob or registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    Reference {
        /// What was given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The registry refused the credentials (or wants some).
    #[error("{registry}: unauthorized{hint}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What to do about it.
        hint: String,
    },
    /// The registry has no such image.
    #[error("{reference}: manifest unknown (no such image or tag in the registry)")]
    NotFound {
        /// The image.
        reference: String,
    },
    /// A request failed.
    #[error("{what}: {source}")]
    Protocol {
        /// What was being done (`pull manifest 127.0.0.1:5000/x:latest`).
        what: String,
        /// The protocol error.
        source: OciDistributionError,
    },
    /// A manifest, index or config is not what berth can use.
    #[error("{what}: {reason}")]
    Content {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// No manifest for the requested platform.
    #[error("{reference}: no manifest for platform {platform} (the image has: {available})")]
    Platform {
        /// The image.
        reference: String,
        /// What was asked for.
        platform: String,
        /// What there is.
        available: String,
    },
    /// The content store refused a blob (digest or size mismatch, I/O).
    #[error(transparent)]
    Store(#[from] image::StoreError),
    /// A layer could not be unpacked.
    #[error(transparent)]
    Snapshot(#[from] image::snapshot::SnapshotError),
    /// The credentials file.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Local files (images.json, blob reads).
    /// An HTTP request of berth's own (not through oci-client) failed:
    /// connecting, a timeout, or a broken body.
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The error.
        source: reqwest::Error,
    },
    #[error("{op} {path}: {err}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: String,
        /// The error.
        err: std::io::Error,
    },
}

impl RegistryError {
    /// `registry` refused the credentials (or wants some).
    pub fn unauthorized(registry: &str) -> Self {
        RegistryError::Unauthorized {
            registry: registry.to_string(),
            hint: format!(" (log in with `berth login {registry}`)"),
        }
    }

    /// Wraps a protocol error from doing `what` against `registry`,
    /// turning 401s and unknown manifests into their own errors.
    pub fn protocol(what: String, registry: &str, e: OciDistributionError) -> Self {
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                RegistryError::unauthorized(registry)
            }
            OciDistributionError::RequestError(r)
                if r.status() == Some(reqwest::StatusCode::UNAUTHORIZED) =>
            {
                RegistryError::unauthorized(registry)
            }
            OciDistributionError::ServerError { code: 401, .. } => {
                RegistryError::unauthorized(registry)
            }
            OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                reference: what.rsplit(' ').next().unwrap_or(&what).to_string(),
            },
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| format!("{:?}", e.code).contains("ManifestUnknown")) =>
            {
                RegistryError::NotFound {
                    reference: what.rsplit(' ').next().unwrap_or(&what).to_string(),
                }
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| format!("{:?}", e.code).contains("Unauthorized")) =>
            {
                RegistryError::unauthorized(registry)
            }
            _ => RegistryError::Protocol { what, source: e },
        }
    }
}

/// Whether `registry` (`host[:port]`) is on loopback, where Docker uses
/// plain HTTP without being asked.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses `reference` with Docker's defaults.
pub fn parse_reference(reference: &str) -> Result<Reference, RegistryError> {
    reference
        .parse::<Reference>()
        .map_err(|e| RegistryError::Reference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
}

/// The `host[:port]` of a `login`/`logout` argument (a bare registry
/// name, possibly written as a URL).
pub fn registry_of_server(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        s => s.to_string(),
    }
}

/// A client set up for one registry.
pub struct Connection {
    /// The registry's `host[:port]` as the user wrote it.
    pub registry: String,
    /// Whether plain HTTP is used.
    pub plain_http: bool,
    /// Credentials for it.
    pub auth: RegistryAuth,
    /// Client that uploads blobs in chunks (PATCH per chunk).
    pub chunked: Client,
    /// Client that uploads blobs in one request.
    pub monolithic: Client,
    /// Client for the requests berth makes itself (bounded manifest reads).
    pub http: reqwest::Client,
    /// The Bearer token negotiated by [`Connection::authorize`], if any.
    bearer: std::sync::Mutex<Option<String>>,
}

/// How long a registry may stay silent (no byte of a response) before the
/// request fails: `BERTH_REGISTRY_IDLE_TIMEOUT` seconds, default 60.
pub fn idle_timeout() -> std::time::Duration {
    let secs = std::env::var("BERTH_REGISTRY_IDLE_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    std::time::Duration::from_secs(secs)
}

/// Installs the TLS crypto provider once per process.
fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Connection {
    /// A connection to the registry of `reference`, with credentials from
    /// `auth_file` when it has some; `insecure` allows plain HTTP.
    pub fn new(
        reference: &Reference,
        insecure: bool,
        auth_file: Option<&AuthFile>,
    ) -> Result<Self, RegistryError> {
        let registry = reference.registry().to_string();
        let auth = match auth_file {
            Some(f) => match f.get(&registry)? {
                Some((u, p)) => RegistryAuth::Basic(u, p),
                None => RegistryAuth::Anonymous,
            },
            None => RegistryAuth::Anonymous,
        };
        Ok(Self::with_auth(&registry, insecure, auth))
    }

    /// A connection to `registry` with the given credentials.
    pub fn with_auth(registry: &str, insecure: bool, auth: RegistryAuth) -> Self {
        tls_provider();
        let plain_http = insecure || is_loopback(registry);
        let config = |monolithic| ClientConfig {
            protocol: if plain_http {
                ClientProtocol::HttpsExcept(vec![
                    registry.to_string(),
                    reference_registry(registry),
                ])
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: monolithic,
            max_concurrent_download: 4,
            max_concurrent_upload: 4,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(idle_timeout()),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Connection {
            registry: registry.to_string(),
            plain_http,
            auth,
            chunked: Client::new(config(false)),
            monolithic: Client::new(config(true)),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(30))
                .read_timeout(idle_timeout())
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            bearer: std::sync::Mutex::new(None),
        }
    }

    /// The Bearer token negotiated for this connection, if any.
    pub fn bearer(&self) -> Option<String> {
        self.bearer.lock().ok().and_then(|b| b.clone())
    }

    /// Negotiates access (a Bearer token, or Basic credentials) for
    /// `operation` on `reference` on both clients.
    pub async fn authorize(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
    ) -> Result<(), RegistryError> {
        for client in [&self.chunked, &self.monolithic] {
            let token = client
                .auth(reference, &self.auth, operation)
                .await
                .map_err(|e| {
                    RegistryError::protocol(
                        format!("authorize {}", reference.whole()),
                        &self.registry,
                        e,
                    )
                })?;
            if let (Some(t), Ok(mut b)) = (token, self.bearer.lock()) {
                *b = Some(t);
            }
        }
        Ok(())
    }
}

/// How oci-client names a registry in its protocol exceptions (it
/// compares against `resolve_registry()`, which maps docker.io).
pub(crate) fn reference_registry(registry: &str) -> String {
    match registry {
        "docker.io" => "index.docker.io".into(),
        r => r.to_string(),
    }
}

/// Checks `user`/`password` against `server` the way `docker login`
/// does: the registry's `/v2/` endpoint must accept them (directly for
/// Basic auth, through its token service for Bearer auth).
pub async fn verify_login(
    server: &str,
    insecure: bool,
    user: &str,
    password: &str,
) -> Result<(), RegistryError> {
    let registry = registry_of_server(server);
    let conn = Connection::with_auth(
        &registry,
        insecure,
        RegistryAuth::Basic(user.to_string(), password.to_string()),
    );
    let scheme = if conn.plain_http { "http" } else { "https" };
    let host = reference_registry(&registry);
    let url = format!("{scheme}://{host}/v2/");
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| RegistryError::Protocol {
            what: format!("login {registry}"),
            source: e.into(),
        })?;
    let fail = |e: reqwest::Error| RegistryError::Protocol {
        what: format!("login {registry}"),
        source: e.into(),
    };
    let anon = http.get(&url).send().await.map_err(fail)?;
    if anon.status().is_success() {
        return Ok(());
    }
    let challenge = anon
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let unauthorized = || RegistryError::Unauthorized {
        registry: registry.clone(),
        hint: ": incorrect username or password".into(),
    };
    if challenge.to_ascii_lowercase().starts_with("bearer") {
        // The token service checks the credentials.
        let probe = parse_reference(&format!("{registry}/berth-login-probe:latest"))?;
        conn.chunked
            .auth(&probe, &conn.auth, RegistryOperation::Pull)
            .await
            .map_err(|_| unauthorized())?;
        return Ok(());
    }
    let res = http
        .get(&url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .map_err(fail)?;
    if res.status().is_success() {
        Ok(())
    } else if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        Err(unauthorized())
    } else {
        Err(RegistryError::Content {
            what: format!("login {registry}"),
            reason: format!("GET {url} answered {}", res.status()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.2.1"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.example.com:5000"));
    }

    #[test]
    fn references_follow_docker_defaults() {
        let r = parse_reference("busybox").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        let r = parse_reference("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert!(parse_reference("has space:1").is_err());
        assert!(parse_reference("x:").is_err());
    }

    #[test]
    fn login_servers_are_normalised() {
        assert_eq!(
            registry_of_server("https://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_of_server("index.docker.io"), "docker.io");
        assert_eq!(registry_of_server("localhost:5000"), "localhost:5000");
    }
}
