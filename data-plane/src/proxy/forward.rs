//! Forwarding one request: authenticate, resolve, order the targets, plan each one (native or
//! translated), and the attempt loop deciding retry, next target or delivery. The credential on
//! an attempt is `present`'s; the answer on its way back is `answer`'s.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use awc::error::SendRequestError;
use std::time::{Duration, Instant};

use to11_shared::body::{apply_defaults, peek, replace_model};
use to11_shared::policy::{order, retry_after_ms, Decision, Outcome};
use to11_shared::translate::{anthropic, bedrock, gemini, messages_in, TranslateError};
use to11_shared::upstream::{inbound, plan, vendor_body, BodyEdit, Surface};
use to11_shared::ErrorCode;

use super::answer::{
    error_translation, skip_response_header, stream, translate_whole, ErrorTranslation, Served,
};
use super::present::present;
use super::read_body;
use crate::auth::{authenticate, TO11_AUTH_HEADER};
use crate::error::GatewayError;
use crate::health_book::now_ms;
use crate::state::key_header;
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
            | "accept-encoding"
            | "authorization"
            | "x-api-key"
            | "x-goog-api-key"
            | "api-key"
            | "x-amz-date"
            | "x-amz-security-token"
            | "x-amz-content-sha256"
            | "cookie"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
            | TO11_AUTH_HEADER
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
            e.with_request_id(&request_id)
                .render(crate::error::Dialect::of_path(req.path()))
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
    let Some((surface, path_model)) = inbound(req.path()) else {
        return Err(GatewayError::new(
            ErrorCode::NotFound,
            format!("no API at {}", req.path()),
        ));
    };
    let body = read_body(req, payload, ctx.settings.max_body_bytes).await?;
    let peeked =
        peek(&body).map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?;
    let Some(model) = path_model.as_deref().or(peeked.model.as_deref()) else {
        return Err(GatewayError::new(
            ErrorCode::MissingModel,
            "the request body has no 'model'",
        ));
    };
    let streaming = peeked.stream || surface.streams_by_path();
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
    if resolution.targets.is_empty() {
        return Err(GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model '{model}' has no target"),
        ));
    }

    // Try targets in the strategy's order; cooled-down ones last (still tried if all else fails).
    let targets = resolution.targets;
    let health = resolution
        .route
        .map(|r| project.health.route(r))
        .unwrap_or(&[]);
    let mut order = match (resolution.strategy, resolution.policy) {
        (Some(strategy), Some(_)) if targets.len() > 1 => {
            let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
            let now = now_ms();
            let latency: Vec<Option<f64>> = (0..targets.len())
                .map(|i| health.get(i).and_then(|h| h.latency_ms(now)))
                .collect();
            order(
                strategy,
                &weights,
                &latency,
                rand::random(),
                LEAST_LATENCY_EXPLORE,
            )
        }
        _ => (0..targets.len()).collect(),
    };
    let now = now_ms();
    order.sort_by_key(|i| health.get(*i).is_some_and(|h| h.cooling(now)));

    let policy_ms = |f: fn(&to11_shared::policy::RoutePolicy) -> u64| {
        resolution
            .policy
            .map(f)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    };
    let first_byte = policy_ms(|p| p.first_byte_ms).unwrap_or(ctx.settings.upstream_timeout);
    let idle = policy_ms(|p| p.idle_ms).unwrap_or(ctx.settings.upstream_idle_timeout);
    let deadline = policy_ms(|p| p.total_ms).map(|d| Instant::now() + d);
    // OpenAI chat and completions streams end with `data: [DONE]`; the Responses API does not.
    // How a complete stream ends, and the shape of a terminal error event, for the called API.
    let end_markers: &'static [&'static [u8]] = match surface {
        Surface::OpenAi("/chat/completions" | "/completions") => super::guard::OPENAI_END,
        Surface::Messages => super::guard::ANTHROPIC_END,
        _ => &[],
    };
    let dialect = crate::error::Dialect::of_path(req.path());
    let mut attempts = 0u32;
    let mut last: Option<LastFailure> = None;
    // Targets that cannot serve this API natively are passed over; if none can, the client is
    // told why.
    let mut unsupported: Vec<String> = Vec::new();
    let mut images = super::images::Images::default();
    for ti in order {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let target = &targets[ti];
        let provider = &project.tables.providers[target.provider];
        let target_health = health.get(ti);
        let api = &project.apis[target.provider];
        let plan = match plan(api, &surface, &target.model, streaming, req.uri().query()) {
            Ok(p) => p,
            Err(why) => {
                unsupported.push(why);
                continue;
            }
        };
        let mut asked = anthropic::Asked::default();
        let mut upstream_body: bytes::Bytes = match plan.body {
            BodyEdit::SetModel if target.model != model => match peeked.model_span {
                Some(span) => replace_model(&body, span, &target.model).into(),
                None => {
                    return Err(GatewayError::new(
                        ErrorCode::InvalidJson,
                        "could not locate 'model' in the body",
                    ))
                }
            },
            BodyEdit::SetModel | BodyEdit::Keep => body.clone(),
            BodyEdit::AnthropicVendor {
                version,
                drop_stream,
            } => vendor_body(&body, version, drop_stream)
                .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e))?
                .into(),
            BodyEdit::OpenAiToAnthropic { .. }
            | BodyEdit::OpenAiToGemini
            | BodyEdit::OpenAiToConverse
            | BodyEdit::MessagesToOpenAi
            | BodyEdit::MessagesToGemini
            | BodyEdit::MessagesToConverse => {
                // A function's defaults are in the client's terms: applied before translating.
                let source = match resolution.defaults {
                    Some(d) => apply_defaults(&body, d)
                        .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?,
                    None => body.to_vec(),
                };
                let translated = translate(
                    plan.body,
                    source,
                    &target.model,
                    api.max_tokens_field,
                    &mut images,
                    &ctx.settings,
                )
                .await?;
                match translated {
                    Ok((b, a)) => {
                        asked = a;
                        match plan.body {
                            BodyEdit::OpenAiToAnthropic {
                                vendor: Some((version, drop_stream)),
                            } => vendor_body(&b, version, drop_stream)
                                .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e))?
                                .into(),
                            _ => b.into(),
                        }
                    }
                    Err(TranslateError::Unsupported(m)) => {
                        unsupported.push(format!("provider '{}': {m}", api.slug));
                        continue;
                    }
                    Err(TranslateError::Invalid(m)) => {
                        return Err(GatewayError::new(ErrorCode::BadRequest, m))
                    }
                }
            }
        };
        // Every translated body has a translated answer, errors included.
        let error_translation = error_translation(plan.response);
        let translated = error_translation.is_some();
        if let (Some(defaults), false) = (resolution.defaults, translated) {
            upstream_body = apply_defaults(&upstream_body, defaults)
                .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?
                .into();
        }
        let url = plan.url;
        let byok_header = match byok {
            Some(k) => Some(
                key_header(project.auth_forms[target.provider], k).map_err(|_| {
                    GatewayError::new(
                        ErrorCode::BadRequest,
                        "your upstream key is not a valid header value",
                    )
                })?,
            ),
            None => None,
        };
        let stored = project.credentials[target.provider].get(&target.credential);

        let mut retries_done = 0;
        loop {
            let budget = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => first_byte.min(left),
                    _ => break,
                },
                None => first_byte,
            };
            attempts += 1;
            let mut up = client.request(req.method().clone(), url.as_str());
            let h = up.headers_mut();
            for (name, value) in req.headers() {
                if !skip_request_header(name) {
                    h.append(name.clone(), value.clone());
                }
            }
            // Answers are read on the way (translation, and the usage in them): asked uncompressed.
            h.insert(
                actix_web::http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            for (name, value) in plan.default_headers {
                if !h.contains_key(*name) {
                    h.insert(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    );
                }
            }
            if let Err(e) = present(
                h,
                byok_header.as_ref(),
                stored,
                &url,
                &upstream_body,
                ctx,
                client,
            )
            .await
            {
                // A credential that cannot be presented (a token that could not be minted) is
                // this target's failure: the route may move on.
                last = Some(Failure::Error(e).with_meta(&Served {
                    request_id,
                    layer: resolution.layer,
                    function: resolution.function,
                    route: resolution.route,
                    provider: &provider.slug,
                    model: &target.model,
                    version: project.version,
                    attempts,
                }));
                break;
            }
            let started = Instant::now();
            let sent = up.timeout(budget).send_body(upstream_body.clone()).await;
            let ttfb_us = started.elapsed().as_micros() as u64;
            let meta = Served {
                request_id,
                layer: resolution.layer,
                function: resolution.function,
                route: resolution.route,
                provider: &provider.slug,
                model: &target.model,
                version: project.version,
                attempts,
            };
            // Passthrough (no policy) and successes stream straight through.
            let (outcome, failure) = match sent {
                Ok(resp) if resp.status().as_u16() < 400 || resolution.policy.is_none() => {
                    if resp.status().as_u16() < 400 {
                        if let Some(th) = target_health {
                            th.success(ttfb_us, now_ms());
                        }
                    } else if resp.status().is_server_error() {
                        ctx.metrics.upstream_errors.inc();
                    }
                    let whole = !streaming || resp.status().as_u16() >= 400;
                    if translated && whole {
                        return Ok(translate_whole(
                            resp,
                            &meta,
                            idle,
                            plan.response,
                            dialect,
                            asked,
                        )
                        .await);
                    }
                    return Ok(stream(
                        resp,
                        &meta,
                        idle,
                        end_markers,
                        dialect,
                        plan.response,
                        asked,
                    ));
                }
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    // Bounded in size and time: a stalled error body must not hold the request.
                    let body = tokio::time::timeout(idle, resp.body().limit(MAX_ERROR_BODY))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    let billing =
                        status == 402 || (status == 429 && contains(&body, b"insufficient_quota"));
                    let outcome = if billing {
                        Outcome::Billing
                    } else {
                        Outcome::Status(status)
                    };
                    (
                        outcome,
                        Failure::Answered {
                            status,
                            headers,
                            body,
                            translated: error_translation,
                        },
                    )
                }
                Err(SendRequestError::Timeout) => (
                    Outcome::Timeout,
                    Failure::Error(upstream_error(SendRequestError::Timeout, &provider.slug)),
                ),
                Err(e) => (
                    Outcome::Connect,
                    Failure::Error(upstream_error(e, &provider.slug)),
                ),
            };
            let retry_after = match &failure {
                Failure::Answered { headers, .. } => retry_after_ms(
                    headers.get("retry-after-ms").and_then(|v| v.to_str().ok()),
                    headers.get("retry-after").and_then(|v| v.to_str().ok()),
                ),
                Failure::Error(_) => None,
            };
            let decision = match resolution.policy {
                Some(p) => {
                    if counts_against_target(outcome) {
                        ctx.metrics.upstream_errors.inc();
                        if let Some(th) = target_health {
                            th.failure(now_ms(), p.cooldown_failures, p.cooldown_ms, Some(ttfb_us));
                        }
                    }
                    p.decide(outcome, retries_done, retry_after, rand::random())
                }
                None => Decision::Deliver,
            };
            match decision {
                Decision::Deliver => return failure.into_response(&meta),
                Decision::Retry { after_ms } => {
                    let wait = Duration::from_millis(after_ms);
                    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        // The wait would pass the route's deadline: stop here.
                        last = Some(failure.with_meta(&meta));
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    retries_done += 1;
                }
                Decision::Next => {
                    last = Some(failure.with_meta(&meta));
                    break;
                }
            }
        }
    }
    match last {
        Some(f) => f.into_owned_response(),
        None if !unsupported.is_empty() => Err(GatewayError::new(
            ErrorCode::UnsupportedByTarget,
            unsupported.join("; "),
        )),
        None if deadline.is_some() => Err(GatewayError::new(
            ErrorCode::UpstreamTimeout,
            "the route's total deadline passed before any target answered",
        )),
        None => Err(GatewayError::new(
            ErrorCode::UpstreamFailure,
            "no target could be tried",
        )),
    }
}

/// Exploration rate of least-latency: the share of requests sent to a target that is not the
/// fastest, to keep measuring the others.
const LEAST_LATENCY_EXPLORE: f64 = 0.05;

/// Error bodies are read (to find billing errors, and to deliver them after a decision) up to this.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// Whether an outcome is the target's fault (counts towards its cool-down).
fn counts_against_target(o: Outcome) -> bool {
    match o {
        Outcome::Status(s) => s >= 500 || matches!(s, 401 | 403 | 408 | 429),
        Outcome::Billing | Outcome::Connect | Outcome::Timeout => true,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The client's body in the target's format, for a `BodyEdit` that translates. Gemini and
/// Converse are reached from OpenAI chat (Messages in goes through chat first) and take images
/// only as bytes: http(s) ones are fetched (once per request) and inlined before translating.
async fn translate(
    edit: BodyEdit,
    source: Vec<u8>,
    model: &str,
    max_tokens_field: &str,
    images: &mut super::images::Images,
    settings: &crate::config::Settings,
) -> Result<Result<(Vec<u8>, anthropic::Asked), TranslateError>, GatewayError> {
    let chat = match edit {
        BodyEdit::MessagesToOpenAi => {
            return Ok(messages_in::request(&source, model, max_tokens_field)
                .map(|b| (b, anthropic::Asked::default())))
        }
        BodyEdit::OpenAiToAnthropic { .. } => return Ok(anthropic::request(&source, model)),
        BodyEdit::MessagesToGemini | BodyEdit::MessagesToConverse => {
            match messages_in::request(&source, model, "max_tokens") {
                Ok(chat) => chat,
                Err(e) => return Ok(Err(e)),
            }
        }
        _ => source,
    };
    let chat = images.inline(chat, settings).await?;
    Ok(match edit {
        BodyEdit::OpenAiToGemini | BodyEdit::MessagesToGemini => gemini::request(&chat),
        _ => bedrock::request(&chat),
    })
}

/// A failed attempt: an upstream answer (buffered, deliverable in the client's dialect as the
/// upstream gave it) or a gateway error.
enum Failure {
    Answered {
        status: u16,
        headers: awc::http::header::HeaderMap,
        body: bytes::Bytes,
        /// The body is in the target's format and is delivered in OpenAI's by this.
        translated: Option<ErrorTranslation>,
    },
    Error(GatewayError),
}

/// A failure kept while other targets are tried, with the headers describing where it came from.
struct LastFailure {
    failure: Failure,
    served: HeaderMap,
}

impl Failure {
    fn with_meta(self, meta: &Served<'_>) -> LastFailure {
        LastFailure {
            failure: self,
            served: meta.headers(),
        }
    }

    fn into_response(self, meta: &Served<'_>) -> Result<HttpResponse, GatewayError> {
        self.with_meta(meta).into_owned_response()
    }
}

impl LastFailure {
    fn into_owned_response(self) -> Result<HttpResponse, GatewayError> {
        match self.failure {
            Failure::Error(e) => Err(e),
            Failure::Answered {
                status,
                headers,
                body,
                translated,
            } => {
                let mut out = HttpResponse::build(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                );
                for (name, value) in &headers {
                    let replaced = translated.is_some() && name == CONTENT_TYPE;
                    if !skip_response_header(name) && !replaced {
                        out.append_header((name.clone(), value.clone()));
                    }
                }
                let body: bytes::Bytes = match translated {
                    Some(to_openai) => {
                        out.insert_header((CONTENT_TYPE, "application/json"));
                        to_openai(status, &body).into()
                    }
                    None => body,
                };
                for (name, value) in self.served {
                    out.insert_header((name, value));
                }
                Ok(out.body(body))
            }
        }
    }
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
