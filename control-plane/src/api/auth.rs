//! Who is calling the API: the operator (token from `TO11_ADMIN_TOKEN`), or a project's
//! management key. Both come as `Authorization: Bearer`, or once to sign in to the dashboard,
//! whose session cookie then stands for them (`session`). Another project's objects answer 404,
//! exactly like objects that do not exist. `guard::admit` authenticates every request before its
//! body is read and keeps the principal in the request's extensions; handlers find it there.

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use to11_shared::crypto::{secret_eq, KeyHash};
use to11_shared::keys::strip_bearer;
use to11_shared::model::ProjectState;
use to11_shared::ErrorCode;
use uuid::Uuid;

use super::Api;
use crate::error::ApiError;

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "send the operator token or a management key as 'Authorization: Bearer <token>'",
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Project(Uuid),
}

impl Principal {
    /// The caller of an API request, as `guard::admit` found it before the body was read (or,
    /// for a request it let through unauthenticated, found now).
    pub fn from_request(req: &HttpRequest, api: &Api) -> Result<Principal, ApiError> {
        if let Some(p) = req.extensions().get::<Principal>() {
            return Ok(*p);
        }
        Self::authenticate(req, api)
    }

    /// Checks a request's credentials: `Authorization: Bearer`, or else a dashboard session
    /// cookie (with its CSRF checks).
    pub fn authenticate(req: &HttpRequest, api: &Api) -> Result<Principal, ApiError> {
        match req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            Some(raw) => Self::from_token(strip_bearer(raw), api),
            None => match api.sessions.authenticate(req)? {
                Some(hash) => Self::from_hash(hash, api),
                None => Err(unauthorized()),
            },
        }
    }

    /// The principal a token (operator token or management key) authenticates.
    pub fn from_token(token: &str, api: &Api) -> Result<Principal, ApiError> {
        if token.is_empty() || token.len() > 512 {
            return Err(unauthorized());
        }
        Self::from_hash(api.keyring.key_hash(token), api)
    }

    /// The principal of a token's keyed hash (a management key: one hash-map hit in the
    /// published model).
    pub fn from_hash(hash: KeyHash, api: &Api) -> Result<Principal, ApiError> {
        if secret_eq(&hash.0, &api.admin_token_hash.0) {
            return Ok(Principal::Operator);
        }
        match api.model.authenticate(&hash) {
            Some(p) => Ok(Principal::Project(p)),
            None => Err(unauthorized()),
        }
    }

    pub fn require_operator(self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Project(_) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "only the operator may do this",
            )),
        }
    }
}

/// Authenticates and finds the project named in the path (id or slug) in the published model,
/// or 404.
pub fn project(
    req: &HttpRequest,
    api: &Api,
    key: &str,
) -> Result<(Principal, Arc<ProjectState>), ApiError> {
    let who = Principal::from_request(req, api)?;
    let state = api
        .model
        .project(key)
        .ok_or_else(|| ApiError::not_found("project"))?;
    match who {
        Principal::Project(p) if p != state.project.id => Err(ApiError::not_found("project")),
        _ => Ok((who, state)),
    }
}
