//! Who is calling the API: the operator (token from `TO11_ADMIN_TOKEN`), or a project's
//! management key. Both come as `Authorization: Bearer`. Another project's objects answer 404,
//! exactly like objects that do not exist.

use actix_web::HttpRequest;
use to11_shared::crypto::secret_eq;
use to11_shared::keys::strip_bearer;
use to11_shared::model::ProjectState;
use to11_shared::ErrorCode;
use uuid::Uuid;

use super::Api;
use crate::actors::registry::{AuthenticateManagementKey, GetProject};
use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    Operator,
    Project(Uuid),
}

impl Principal {
    pub async fn from_request(req: &HttpRequest, api: &Api) -> Result<Principal, ApiError> {
        let unauthorized = || {
            ApiError::new(
                ErrorCode::Unauthorized,
                "send the operator token or a management key as 'Authorization: Bearer <token>'",
            )
        };
        let raw = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let token = strip_bearer(raw);
        if token.is_empty() || token.len() > 512 {
            return Err(unauthorized());
        }
        let hash = api.keyring.key_hash(token);
        if secret_eq(&hash.0, &api.admin_token_hash.0) {
            return Ok(Principal::Operator);
        }
        match api
            .registry
            .send(AuthenticateManagementKey { hash })
            .await?
        {
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

/// Authenticates and loads the project named in the path (id or slug), or 404.
pub async fn project(
    req: &HttpRequest,
    api: &Api,
    key: &str,
) -> Result<(Principal, ProjectState), ApiError> {
    let who = Principal::from_request(req, api).await?;
    let state = api
        .registry
        .send(GetProject {
            key: key.to_string(),
        })
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    match who {
        Principal::Project(p) if p != state.project.id => Err(ApiError::not_found("project")),
        _ => Ok((who, state)),
    }
}
