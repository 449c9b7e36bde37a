//! Control-plane API errors: one code from the shared table, a message a user can act on, and
//! optional details (e.g. every compile problem). Rendered as
//! `{"error":{"code","message","details"?}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use to11_shared::ErrorCode;

use crate::domain::DomainError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(m) => {
                ApiError::new(ErrorCode::Internal, format!("stored data is corrupt: {m}"))
            }
            StoreError::EpochLost => ApiError::new(
                ErrorCode::StoreReset,
                "the configuration store was flushed or replaced; the control plane is restoring it from memory. Nothing was changed: retry in a moment",
            ),
            other => ApiError::new(
                ErrorCode::StoreUnavailable,
                format!("the configuration store is unavailable; nothing was changed ({other})"),
            ),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            DomainError::Invalid(_) => ApiError::new(ErrorCode::BadRequest, message),
            DomainError::UnknownModels(unknown) => ApiError::new(ErrorCode::Validation, message)
                .with_details(serde_json::json!({ "unknown_models": unknown })),
            DomainError::SlugTaken(_)
            | DomainError::ProviderConnected(_)
            | DomainError::CredentialExists { .. }
            | DomainError::DefaultCredential { .. }
            | DomainError::AlreadyExists { .. } => ApiError::new(ErrorCode::Conflict, message),
            DomainError::CredentialInUse { routes, .. } => {
                ApiError::new(ErrorCode::Conflict, message)
                    .with_details(serde_json::json!({ "used_by": routes }))
            }
            DomainError::UnreadableCredential(_) => ApiError::new(ErrorCode::Internal, message),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::new(
            ErrorCode::Internal,
            format!("internal actor unavailable: {e}"),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut err = serde_json::json!({"code": self.code.name(), "message": self.message});
        if let Some(d) = &self.details {
            err["details"] = d.clone();
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": err }))
    }
}
