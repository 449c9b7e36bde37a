//! Forwarding one request: resolve, pick the target, build the upstream request, stream the
//! response. Routes resolve to their first target until route strategies land.

use actix_web::body::SizedStream;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use awc::error::SendRequestError;
use to11_shared::body::{apply_defaults, peek, replace_model};
use to11_shared::resolve::Layer;
use to11_shared::ErrorCode;

use super::read_body;
use crate::auth::{authenticate, TO11_AUTH_HEADER};
use crate::error::GatewayError;
use crate::Ctx;

/// Request headers never forwarded upstream: hop-by-hop, framing, to11's own, the client's
/// credentials (re-added in the upstream's form), and cookies.
fn skip_request_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "expect"
            | "authorization"
            | "x-api-key"
            | "cookie"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
            | TO11_AUTH_HEADER
    )
}

fn skip_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-connection"
            | "set-cookie"
    )
}

/// `POST /v1/{chat/completions,completions,embeddings,responses}`.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    ctx: web::Data<Ctx>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let request_id = super::new_request_id();
    ctx.metrics.requests.inc();
    let resp = match forward_inner(&req, payload, &ctx, &client, &request_id).await {
        Ok(r) => r,
        Err(e) => {
            ctx.metrics.errors.inc();
            actix_web::ResponseError::error_response(&e.with_request_id(&request_id))
        }
    };
    resp
}

async fn forward_inner(
    req: &HttpRequest,
    payload: web::Payload,
    ctx: &Ctx,
    client: &awc::Client,
    request_id: &str,
) -> Result<HttpResponse, GatewayError> {
    let state = ctx.live.load();
    let caller = authenticate(&state, req.headers(), &ctx.keyring)?;
    drop(state);
    let byok = caller.byok(req.headers())?;
    let body = read_body(req, payload, ctx.settings.max_body_bytes).await?;
    let peeked =
        peek(&body).map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?;
    let Some(model) = peeked.model.as_deref() else {
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
    let project = &caller.project;
    let resolution = project.tables.resolve(model).ok_or_else(|| {
        GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model '{model}' is not known to this project: no function, route or connected provider serves it"),
        )
    })?;
    let target = resolution.targets.first().ok_or_else(|| {
        GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model '{model}' has no target"),
        )
    })?;
    let provider = &project.tables.providers[target.provider];

    let mut upstream_body = if target.model != model {
        match peeked.model_span {
            Some(span) => replace_model(&body, span, &target.model).into(),
            None => {
                return Err(GatewayError::new(
                    ErrorCode::InvalidJson,
                    "could not locate 'model' in the body",
                ))
            }
        }
    } else {
        body.clone()
    };
    if let Some(defaults) = resolution.defaults {
        upstream_body = apply_defaults(&upstream_body, defaults)
            .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?
            .into();
    }

    // `/v1/chat/completions` → `{base}/chat/completions`, query string kept.
    let suffix = req.path().strip_prefix("/v1").unwrap_or(req.path());
    let mut url = String::with_capacity(provider.base_url.len() + suffix.len() + 64);
    url.push_str(&provider.base_url);
    url.push_str(suffix);
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }

    let mut up = client.request(req.method().clone(), url.as_str());
    let h = up.headers_mut();
    for (name, value) in req.headers() {
        if !skip_request_header(name) {
            h.append(name.clone(), value.clone());
        }
    }
    match byok {
        Some(k) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                GatewayError::new(
                    ErrorCode::BadRequest,
                    "your upstream key is not a valid header value",
                )
            })?;
            v.set_sensitive(true);
            h.insert(actix_web::http::header::AUTHORIZATION, v);
        }
        None => {
            if let Some(auth) = project.credentials[target.provider]
                .get(&target.credential)
                .and_then(|c| c.authorization.as_ref())
            {
                h.insert(actix_web::http::header::AUTHORIZATION, auth.clone());
            }
        }
    }

    let upstream = up
        .timeout(ctx.settings.upstream_timeout)
        .send_body(upstream_body)
        .await
        .map_err(|e| upstream_error(e, &provider.slug))?;

    let status = upstream.status();
    let mut out = HttpResponse::build(
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    let length = upstream
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    for (name, value) in upstream.headers() {
        if !skip_response_header(name) {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let out_headers = out_headers(
        request_id,
        resolution.layer,
        resolution.function,
        resolution.route,
        &provider.slug,
        &target.model,
        project.version,
    );
    for (name, value) in out_headers {
        out.insert_header((name, value));
    }
    if status.is_server_error() {
        ctx.metrics.upstream_errors.inc();
    }
    Ok(match length {
        Some(n) => out.body(SizedStream::new(n, upstream)),
        None => out.streaming(upstream),
    })
}

fn out_headers(
    request_id: &str,
    layer: Layer,
    function: Option<&str>,
    route: Option<&str>,
    provider: &str,
    model: &str,
    version: u64,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-to11-request-id", request_id);
    put("x-to11-layer", layer.as_str());
    if let Some(f) = function {
        put("x-to11-function", f);
    }
    if let Some(r) = route {
        put("x-to11-route", r);
    }
    put("x-to11-provider", provider);
    put("x-to11-upstream-model", model);
    put("x-to11-attempts", "1");
    put("x-to11-config-version", &version.to_string());
    h
}

fn upstream_error(e: SendRequestError, provider: &str) -> GatewayError {
    match e {
        SendRequestError::Timeout => GatewayError::new(
            ErrorCode::UpstreamTimeout,
            format!("provider '{provider}' did not answer in time"),
        ),
        SendRequestError::Connect(c) => GatewayError::new(
            ErrorCode::UpstreamFailure,
            format!("could not connect to provider '{provider}': {c}"),
        ),
        other => GatewayError::new(
            ErrorCode::UpstreamFailure,
            format!("request to provider '{provider}' failed: {other}"),
        ),
    }
}
