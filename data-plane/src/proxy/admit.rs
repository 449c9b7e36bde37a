//! Admitting a request: who calls (the to11 key, BYOK), which API (`inbound`), the body scanned
//! once (model, stream flag, top-level keys), the model the key may call and what it resolves
//! to. Everything decided before the first attempt; admission control (limits and budgets)
//! plugs in right after `resolve`.

use actix_web::dev::RequestHead;
use actix_web::http::header::HeaderName;
use to11_shared::body::Scan;
use to11_shared::resolve::Resolution;
use to11_shared::upstream::{inbound, Surface};
use to11_shared::ErrorCode;

use crate::auth::{authenticate_with, Caller};
use crate::error::GatewayError;
use crate::strikes;
use crate::{Ctx, Worker};

/// The caller, from the live state loaded once, for a source not backed off for its bad keys
/// (`strikes`); a refused key counts against its source. Keys that authenticated before are
/// found by their remembered hash (`auth::KeyHashes`). `now` is the request's arrival (no clock
/// read of its own on the hot path).
pub fn caller_backed_off(
    ctx: &Ctx,
    worker: &Worker,
    req: &RequestHead,
    now: std::time::Instant,
) -> Result<Caller, GatewayError> {
    let header = ctx.settings.client_ip_header.as_deref();
    if let Some(wait) = worker.strikes.blocked(|| strikes::source(req, header), now) {
        let secs = wait.as_secs().max(1);
        return Err(GatewayError::new(
            ErrorCode::RateLimited,
            format!(
                "too many requests with invalid to11 keys from this address; retry in {secs} s"
            ),
        )
        .with_retry_after(secs));
    }
    let state = ctx.live.load();
    authenticate_with(
        &state,
        req.headers(),
        &ctx.keyring,
        Some(&worker.key_hashes),
    )
    .inspect_err(|e| {
        if matches!(e.code, ErrorCode::InvalidKey | ErrorCode::ExpiredKey) {
            worker.strikes.failed(strikes::source(req, header), now);
        }
    })
}

/// The API a path calls, and the model when the path names it.
pub fn surface(req: &RequestHead) -> Result<(Surface, Option<String>), GatewayError> {
    let path = req.uri.path();
    inbound(path).ok_or_else(|| GatewayError::new(ErrorCode::NotFound, format!("no API at {path}")))
}

/// The request's labels: its tags (`x-to11-tags`, refused with 400 when malformed) and its end
/// user (`x-to11-user`).
pub fn labels(
    req: &RequestHead,
) -> Result<(std::collections::BTreeMap<String, String>, Option<String>), GatewayError> {
    const TAGS: HeaderName = HeaderName::from_static("x-to11-tags");
    const USER: HeaderName = HeaderName::from_static("x-to11-user");
    let header = |name: &HeaderName| {
        req.headers().get(name).map(|v| {
            v.to_str().map_err(|_| {
                GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("{name} must be printable ASCII"),
                )
            })
        })
    };
    let tags = match header(&TAGS).transpose()? {
        Some(raw) => to11_shared::record::parse_tags(raw)
            .map_err(|m| GatewayError::new(ErrorCode::BadRequest, m))?,
        None => Default::default(),
    };
    let user = header(&USER)
        .transpose()?
        .and_then(to11_shared::record::clean_user);
    Ok((tags, user))
}

/// The body's top level, in one pass.
pub fn scan(body: &[u8]) -> Result<Scan<'_>, GatewayError> {
    to11_shared::body::scan(body)
        .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))
}

/// What the request asks for, resolved.
pub struct Call<'a> {
    pub model: &'a str,
    pub streaming: bool,
    pub resolution: Resolution<'a>,
}

/// The model (from the path, else the body), checked against the key, resolved top-down.
pub fn resolve<'a>(
    caller: &'a Caller,
    surface: Surface,
    path_model: Option<&'a str>,
    scan: &'a Scan<'a>,
) -> Result<Call<'a>, GatewayError> {
    let Some(model) = path_model.or(scan.model.as_deref()) else {
        return Err(GatewayError::new(
            ErrorCode::MissingModel,
            "the request body has no 'model'",
        ));
    };
    if !caller.model_allowed(model) {
        return Err(GatewayError::new(
            ErrorCode::ModelNotAllowed,
            format!("this key may not call model '{model}'"),
        ));
    }
    let resolution = caller.project.tables.resolve(model).ok_or_else(|| {
        GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model '{model}' is not known to this project: no function, route or connected provider serves it"),
        )
    })?;
    if resolution.targets.is_empty() {
        return Err(GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model '{model}' has no target"),
        ));
    }
    Ok(Call {
        model,
        streaming: scan.stream || surface.streams_by_path(),
        resolution,
    })
}
