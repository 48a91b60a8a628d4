//! The API's errors: each a status code and the `{"message": …}` body
//! dockerd gives, mapped from the engine's typed errors.

use hyper::StatusCode;

use engine::EngineError;

/// A request that failed: what the client is told.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message (`{"message": …}`).
    pub message: String,
}

impl ApiError {
    /// 400: the request is not valid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such endpoint or object.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 501: a Docker endpoint berth does not serve yet.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not there yet in berth serve (docs/api.md lists what is)"),
        )
    }

    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use EngineError as E;
        let status = match &e {
            E::NoSuchContainer(_)
            | E::NoSuchImage(_)
            | E::NoSuchVolume(_)
            | E::NoSuchNetwork(_) => StatusCode::NOT_FOUND,
            E::NameInUse(_)
            | E::Running(_)
            | E::Paused(_)
            | E::NetworkExists(_)
            | E::NetworkInUse { .. }
            | E::VolumeInUse { .. }
            | E::PortInUse { .. } => StatusCode::CONFLICT,
            E::NotRunning(_) => StatusCode::CONFLICT,
            E::InvalidOption { .. }
            | E::Ambiguous(_)
            | E::NoCommand
            | E::SubnetOverlap { .. }
            | E::Address { .. }
            | E::NotFound(_)
            | E::NotExecutable(_)
            | E::CopyRefused { .. }
            | E::ImageImport(image::import::ImportError::Change(_)) => StatusCode::BAD_REQUEST,
            E::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // dockerd's wording for what clients match on.
        let message = match &e {
            E::NoSuchContainer(k) => format!("No such container: {k}"),
            E::NoSuchImage(k) => format!("No such image: {k}"),
            E::NoSuchVolume(k) => format!("get {k}: no such volume"),
            E::NoSuchNetwork(k) => format!("network {k} not found"),
            other => other.to_string(),
        };
        ApiError { status, message }
    }
}
