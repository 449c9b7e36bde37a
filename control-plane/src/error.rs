//! Control-plane API errors: one code from the shared table, a message a user can act on, and
//! optional details (e.g. every compile problem). Rendered as
//! `{"error":{"code","message","details"?}}`. The registry's errors (and the domain's, which
//! handlers also meet when they check input against a project) become API errors here and
//! nowhere else.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use to11_shared::ErrorCode;

use crate::actors::registry::RegistryError;
use crate::domain::DomainError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds a client should wait before trying again (`retry-after`), for 429s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 429: too many failed attempts; try again after `secs`.
    pub fn too_many_failures(secs: u64) -> Self {
        let mut e = Self::new(
            ErrorCode::RateLimited,
            format!("too many failed authentication attempts from this source or with this token; retry after {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// 408: the request body did not arrive within `secs`.
    pub fn body_timeout(secs: f64) -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            format!("the request body was not received within {secs} s"),
        )
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

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::Domain(d) => d.into(),
            RegistryError::Invalid(problems) => ApiError::new(ErrorCode::Validation, message)
                .with_details(serde_json::json!({ "problems": problems })),
            RegistryError::Store(s) => store(s),
            RegistryError::NotFound => ApiError::not_found("project"),
            RegistryError::Conflict { .. } => ApiError::new(ErrorCode::Conflict, message),
            RegistryError::WrongMasterKey { .. } => ApiError::new(ErrorCode::Internal, message),
        }
    }
}

/// A store failure as the API reports it: nothing was changed, retry.
fn store(e: StoreError) -> ApiError {
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
            DomainError::Limit { setting, max, .. } => {
                ApiError::new(ErrorCode::Validation, message)
                    .with_details(serde_json::json!({ "limit": setting, "max": max }))
            }
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
        let mut r = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            r.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        // A body that did not arrive in time: the connection is not reused.
        if self.code == ErrorCode::RequestTimeout {
            r.insert_header((actix_web::http::header::CONNECTION, "close"));
        }
        r.json(serde_json::json!({ "error": err }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use to11_shared::resolve::Problem;

    use super::*;

    fn rendered(e: impl Into<ApiError>) -> (ErrorCode, String, Option<serde_json::Value>) {
        let e = e.into();
        (e.code, e.message, e.details)
    }

    #[test]
    fn domain_refusals() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (DomainError::NotFound("credential"), ErrorCode::NotFound, "credential not found", None),
            (DomainError::Invalid("bad".into()), ErrorCode::BadRequest, "bad", None),
            (
                DomainError::UnknownModels(s(&["x", "y"])),
                ErrorCode::Validation,
                "the provider does not offer: x, y",
                Some(json!({"unknown_models": ["x", "y"]})),
            ),
            (
                DomainError::SlugTaken("acme".into()),
                ErrorCode::Conflict,
                "a project with slug 'acme' already exists",
                None,
            ),
            (
                DomainError::ProviderConnected("openai".into()),
                ErrorCode::Conflict,
                "a provider with slug 'openai' is already connected; pass another 'slug' (e.g. 'openai-2') to connect a second one",
                None,
            ),
            (
                DomainError::CredentialExists { provider: "p".into(), id: "c".into() },
                ErrorCode::Conflict,
                "provider 'p' already has a credential 'c'; rotate it with PUT",
                None,
            ),
            (
                DomainError::DefaultCredential { provider: "p".into(), id: "c".into() },
                ErrorCode::Conflict,
                "'c' is the default credential of 'p'; make another one the default first",
                None,
            ),
            (
                DomainError::CredentialInUse { id: "c".into(), routes: s(&["r1", "r2"]) },
                ErrorCode::Conflict,
                "credential 'c' is used by route(s): r1, r2",
                Some(json!({"used_by": ["r1", "r2"]})),
            ),
            (
                DomainError::AlreadyExists { kind: "function", name: "f".into() },
                ErrorCode::Conflict,
                "a function named 'f' already exists; replace it with PUT",
                None,
            ),
            (
                DomainError::Limit { what: "routes", setting: "TO11_MAX_ROUTES", max: 3 },
                ErrorCode::Validation,
                "a project may hold at most 3 routes (the operator's TO11_MAX_ROUTES)",
                Some(json!({"limit": "TO11_MAX_ROUTES", "max": 3})),
            ),
            (
                DomainError::UnreadableCredential("broken".into()),
                ErrorCode::Internal,
                "stored credential: broken",
                None,
            ),
        ];
        for (e, code, message, details) in cases {
            let what = format!("{e:?}");
            // Directly, and through the registry: the same answer.
            let via_registry = rendered(RegistryError::Domain(e.clone()));
            let want = (code, message.to_string(), details);
            assert_eq!(rendered(e), want, "{what}");
            assert_eq!(via_registry, want, "{what} through the registry");
        }
    }

    #[test]
    fn registry_failures() {
        let problem = |at: &str| Problem {
            at: at.into(),
            message: "unknown provider".into(),
        };
        let cases = [
            (
                RegistryError::Invalid(vec![problem("routes[a]"), problem("routes[b]")]),
                ErrorCode::Validation,
                "the change leaves the configuration invalid (2 problem(s))",
                Some(json!({"problems": [
                    {"at": "routes[a]", "message": "unknown provider"},
                    {"at": "routes[b]", "message": "unknown provider"},
                ]})),
            ),
            (RegistryError::NotFound, ErrorCode::NotFound, "project not found", None),
            (
                RegistryError::WrongMasterKey {
                    project: "acme".into(),
                    provider: "openai".into(),
                    credential: "default".into(),
                },
                ErrorCode::Internal,
                "TO11_MASTER_KEY does not open the stored credential acme/openai/default: wrong master key",
                None,
            ),
            (
                RegistryError::Store(StoreError::Timeout),
                ErrorCode::StoreUnavailable,
                "the configuration store is unavailable; nothing was changed (store timed out)",
                None,
            ),
            (
                RegistryError::Store(StoreError::Unavailable("refused".into())),
                ErrorCode::StoreUnavailable,
                "the configuration store is unavailable; nothing was changed (store unavailable: refused)",
                None,
            ),
            (
                RegistryError::Store(StoreError::Corrupt("bad json".into())),
                ErrorCode::Internal,
                "stored data is corrupt: bad json",
                None,
            ),
            (
                RegistryError::Store(StoreError::EpochLost),
                ErrorCode::StoreReset,
                "the configuration store was flushed or replaced; the control plane is restoring it from memory. Nothing was changed: retry in a moment",
                None,
            ),
        ];
        for (e, code, message, details) in cases {
            let what = format!("{e:?}");
            assert_eq!(rendered(e), (code, message.to_string(), details), "{what}");
        }
    }
}
