//! The gateway endpoint, as a pipeline of small stages: `admit` (who calls, which API, the body
//! scanned once, the model resolved) → candidates (the order targets are tried,
//! `policy::candidates`) → `prepare` (each target's plan and body, once) → `attempt` (the retry
//! and fallback loop, through the `Upstream` that `send` implements with awc) → `answer` (streamed,
//! converted or translated whole, guarded).
//!
//! Seams: admission control (limits, budgets) goes between `admit::resolve` and the first
//! attempt; usage metering taps the answer in `answer::deliver` (its body, whole or streamed).

mod admit;
pub(crate) mod answer;
pub mod attempt;
pub mod guard;
mod images;
pub mod limit;
pub mod models;
pub mod prepare;
mod present;
pub(crate) mod send;

/// A worker's parsed upstream URLs (also the benchmark's floor proxy's, so that it saves what a
/// replica saves).
pub use send::Uris;
pub mod transform;

use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, RequestHead, Response};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use to11_shared::body::Scan;
use to11_shared::policy::{candidates, RoutePolicy, TargetView};
use to11_shared::upstream::Surface;
use to11_shared::ErrorCode;

use crate::budget::Charge;
use crate::error::{Dialect, GatewayError};
use crate::health_book::now_ms;
use crate::metering::Draft;
use crate::metrics::{labels, Key, Tally};
use crate::{Ctx, Worker};
use admit::Call;
use attempt::{Attempts, Delivery};
use prepare::{Preparer, Request};

/// `POST /v1/{chat/completions,completions,embeddings,responses,messages}`, Gemini's and
/// Bedrock's paths (`crate::front` sends them here, past actix-web's `App`). The answer carries
/// the CORS headers when the replica allows browsers and the request came from one.
pub async fn forward(
    mut req: actix_http::Request,
    ctx: web::Data<Ctx>,
    worker: web::Data<Worker>,
) -> Result<Response<BoxBody>, actix_web::Error> {
    let payload = req.take_payload();
    let req = req.head();
    let uuid = new_request_uuid();
    // The id's text lives in this future, not in an allocation of its own.
    let mut text = uuid::Uuid::encode_buffer();
    let arrived = Arrival {
        id: uuid.hyphenated().encode_lower(&mut text),
        uuid,
        at: chrono::Utc::now(),
        started: Instant::now(),
    };
    let mut tally = ctx.metrics.start(arrived.started);
    let mut draft = None;
    let mut rate = None;
    let served = serve(
        req,
        payload,
        &ctx,
        &worker,
        &arrived,
        Taps {
            draft: &mut draft,
            tally: &mut tally,
            rate: &mut rate,
        },
    )
    .await;
    let mut response = match served {
        Ok(r) => {
            // Still here: the answer is complete (an upstream's error, or translated whole).
            if let Some(t) = tally {
                t.end(r.status().as_u16());
            }
            r
        }
        Err(e) => {
            ctx.metrics.error(e.code);
            if let Some(mut t) = tally {
                if !t.labelled() {
                    t.label(ctx.metrics.series(&worker.series, &unresolved(t.surface)));
                }
                t.head(e.code.status(), false);
                t.end(e.code.status());
            }
            if let Some(d) = draft {
                d.fail(e.code.status(), e.code.name());
            }
            e.with_request_id(arrived.id)
                .render(Dialect::of_path(req.uri.path()))
        }
    };
    if let Some(h) = rate {
        h.apply(response.headers_mut(), arrived.at.timestamp_millis());
    }
    if crate::cors::cross_origin(ctx.settings.cors, &req.headers) {
        crate::cors::allow(response.headers_mut());
    }
    Ok(response.into())
}

/// What a request's stages report to besides its answer: its record, its metrics, and the
/// `x-ratelimit-*` values of the limits it met.
struct Taps<'a> {
    draft: &'a mut Option<Draft>,
    tally: &'a mut Option<Tally>,
    rate: &'a mut Option<crate::limits::RateHeaders>,
}

/// When and as what a request arrived.
struct Arrival<'a> {
    /// The request id, and its text (`x-to11-request-id`).
    uuid: uuid::Uuid,
    id: &'a str,
    at: chrono::DateTime<chrono::Utc>,
    started: Instant,
}

/// The labels of a request that ended before its model resolved.
fn unresolved(surface: &'static str) -> Key<'static> {
    Key {
        surface,
        provider: labels::NONE,
        model: labels::NONE,
        layer: labels::NONE,
        project: labels::NONE,
    }
}

async fn serve(
    req: &RequestHead,
    payload: Payload,
    ctx: &Ctx,
    worker: &Worker,
    arrived: &Arrival<'_>,
    taps: Taps<'_>,
) -> Result<HttpResponse, GatewayError> {
    let Taps { draft, tally, rate } = taps;
    let request_id = arrived.id;
    let caller = admit::caller_backed_off(ctx, worker, req, arrived.started)?;
    let byok = caller.byok(req.headers())?;
    let (surface, path_model) = admit::surface(req)?;
    if let Some(t) = tally.as_mut() {
        t.surface = surface.api().name();
    }
    let (tags, user) = admit::labels(req)?;
    let limited = limit::limited(&caller);
    let header_user = if limited { user.clone() } else { None };
    let traced = worker
        .traces
        .as_ref()
        .and_then(|t| t.begin(req.headers(), surface, crate::otel::unix_ns(arrived.at)));
    *draft = open_draft(
        worker,
        arrived,
        &caller,
        surface,
        tags,
        user,
        limited || traced.is_some(),
    );
    if let (Some(d), Some(mut t)) = (draft.as_mut(), traced) {
        crate::otel::identify(&mut t.trace, &caller.project.id, arrived.id);
        d.trace(t);
    }
    let mut charge = Charge::default();
    let reading = tally.as_ref().map(|_| Instant::now());
    let body = read_body(req, payload, ctx, arrived.started, &mut charge).await?;
    if let (Some(t), Some(at)) = (tally.as_mut(), reading) {
        t.outside(at.elapsed());
    }
    let scan = admit::scan(&body)?;
    let call = admit::resolve(&caller, surface, path_model.as_deref(), &scan)?;
    if let Some(d) = draft.as_mut() {
        note_call(d, &body, &call, &scan);
    }
    // Admission control (limits and budgets) decides here, before any attempt.
    if limited {
        let now_ms = arrived.at.timestamp_millis();
        let admitted = limit::reserve(
            worker,
            &caller,
            &call,
            &scan,
            body.len(),
            header_user,
            now_ms,
        )
        .await;
        limit::hand_over(admitted, draft, rate)?;
    }
    let project = &caller.project;
    let r = &call.resolution;
    let health = r
        .route
        .map(|name| project.health.route(name))
        .unwrap_or(&[]);
    let order = order(&call, health);
    let (first_byte, idle, deadline) = timeouts(r.policy, &ctx.settings);
    let attempts = Attempts {
        request_id,
        project,
        layer: r.layer,
        function: r.function,
        route: r.route,
        targets: r.targets,
        policy: r.policy,
        health,
        first_byte,
        deadline,
        byok,
        max_attempts: ctx.settings.max_attempts,
        budget: crate::retry_budget::RetryGate::new(
            ctx.settings.retry_budget_percent,
            ctx.settings.retry_budget_min_per_second,
            ctx.settings.workers,
            &worker.retries,
        ),
        metrics: &ctx.metrics,
        tally: Default::default(),
        failed: Default::default(),
        trace: std::cell::RefCell::new(draft.as_mut().and_then(Draft::take_trace)),
    };
    let mut prep = Preparer::new(
        project,
        request(&call, surface, req, &body, &scan),
        &ctx.settings,
    )
    .with_budget(&ctx.budget);
    let upstream = send::AwcUpstream {
        client: &worker.client,
        uris: &worker.uris,
        method: &req.method,
        headers: &req.headers,
        ctx,
    };
    let how = answer::Answering {
        idle,
        dialect: Dialect::of_path(req.uri.path()),
        end: end_markers(surface),
        streaming: call.streaming,
        drain: Some(ctx.drain.clone()),
    };
    let delivery = attempts.run(&upstream, &mut prep, &order, idle).await;
    if let (Some(d), Some(t)) = (draft.as_mut(), attempts.trace.take()) {
        d.trace(t);
    }
    if let Some(t) = tally.as_mut() {
        let provider = match &delivery {
            Delivery::Answer { served, .. } | Delivery::Failed(_, served, _) => {
                served.provider.kind.as_str()
            }
            Delivery::Error(_) => labels::NONE,
        };
        let key = Key {
            surface: surface.api().name(),
            provider,
            model: call.model,
            layer: r.layer.as_str(),
            project: &project.slug,
        };
        t.label(ctx.metrics.series(&worker.series, &key));
        t.attempts(&attempts.tally);
    }
    let failed = attempts.failed.take();
    if let Some(r) = estimated_count(surface, &delivery, &body, request_id, draft) {
        return Ok(r);
    }
    conclude(delivery, failed, draft, &how, tally, worker).await
}

/// `count_tokens` for a target with no such API: an estimate of the request's input tokens
/// (about four bytes of request per token, as metering estimates), marked
/// `x-to11-token-count: estimated`, instead of a refusal. No tokens were used.
fn estimated_count<B>(
    surface: Surface,
    delivery: &Delivery<'_, B>,
    body: &Bytes,
    request_id: &str,
    draft: &mut Option<Draft>,
) -> Option<HttpResponse> {
    let unsupported =
        matches!(delivery, Delivery::Error(e) if e.code == ErrorCode::UnsupportedByTarget);
    if surface != Surface::CountTokens || !unsupported {
        return None;
    }
    let tokens = to11_shared::usage::estimate(body.len() as u64, 0, 0).input;
    if let Some(d) = draft.take() {
        d.finish(
            200,
            crate::metering::Outcome {
                reported: Some(Default::default()),
                ..Default::default()
            },
        );
    }
    Some(
        HttpResponse::Ok()
            .insert_header(("x-to11-request-id", request_id))
            .insert_header(("x-to11-token-count", "estimated"))
            .json(serde_json::json!({ "input_tokens": tokens })),
    )
}

/// The answer to the client, or the error, with the record told how the attempts went.
async fn conclude<B>(
    delivery: Delivery<'_, B>,
    failed: Vec<to11_shared::record::FailedAttempt>,
    draft: &mut Option<Draft>,
    how: &answer::Answering,
    tally: &mut Option<Tally>,
    worker: &Worker,
) -> Result<HttpResponse, GatewayError>
where
    B: futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin + 'static,
{
    match delivery {
        Delivery::Answer {
            answered,
            prepared,
            served,
        } => {
            // One clock read for the record's and the metrics' time to first byte.
            let ttfb = draft.as_ref().map(Draft::elapsed);
            if let Some(t) = tally.as_mut() {
                t.head_after(answered.status.as_u16(), true, ttfb);
            }
            let d = served_draft(draft.take(), &served, failed).map(|mut d| {
                d.first_byte(ttfb.unwrap_or_default());
                d.metrics(tally.as_ref().and_then(Tally::series), &worker.limits);
                d
            });
            let t = tally.take();
            Ok(answer::deliver(answered, &prepared, &served, how, d, t).await)
        }
        Delivery::Failed(f, served, prepared) => {
            if let Some(t) = tally.as_mut() {
                match &f {
                    attempt::Failure::Answered { status, .. } => t.head(*status, true),
                    attempt::Failure::Error(e) => t.head(e.code.status(), false),
                }
            }
            let d = served_draft(draft.take(), &served, failed);
            answer::failed(f, &served, prepared.as_deref(), d)
        }
        Delivery::Error(e) => {
            if let Some(d) = draft.as_mut() {
                d.attempts(failed);
            }
            Err(e)
        }
    }
}

/// The request's record, when metering is on (or `needed`: it settles the request's limits, or
/// carries its trace): opened once the caller is known, so that every authenticated request
/// leaves one.
fn open_draft(
    worker: &Worker,
    arrived: &Arrival<'_>,
    caller: &crate::auth::Caller,
    surface: Surface,
    tags: std::collections::BTreeMap<String, String>,
    user: Option<String>,
    needed: bool,
) -> Option<Draft> {
    if !worker.records.enabled() && !needed {
        return None;
    }
    let mut d = Draft::new(
        worker.records.clone(),
        arrived.uuid,
        arrived.at,
        arrived.started,
        caller.project.id,
        caller.key.key_id,
        surface.api().name(),
        tags,
    );
    d.user(user);
    Some(d)
}

/// What the body and its resolution tell the record.
fn note_call(d: &mut Draft, body: &Bytes, call: &Call<'_>, scan: &Scan<'_>) {
    let r = &call.resolution;
    let user = scan
        .user
        .as_deref()
        .and_then(to11_shared::record::clean_user);
    d.body(body.len(), Some(call.model), user, call.streaming);
    d.resolved(r.layer.as_str(), r.function, r.route);
    if let Some(t) = d.traced_mut() {
        let resolved = to11_shared::otel::genai::Resolved {
            surface: t.surface,
            model: call.model,
            layer: r.layer.as_str(),
            route: r.route,
            function: r.function,
            max_tokens: scan.max_output,
            stream: call.streaming,
        };
        to11_shared::otel::genai::resolved(&mut t.trace, &resolved);
    }
}

/// The record, told who answered (or failed last) and which targets failed before.
fn served_draft(
    draft: Option<Draft>,
    served: &answer::Served<'_>,
    failed: Vec<to11_shared::record::FailedAttempt>,
) -> Option<Draft> {
    draft.map(|mut d| {
        d.served(served, failed);
        d
    })
}

/// What every target's preparation shares.
fn request<'a>(
    call: &Call<'a>,
    surface: Surface,
    req: &'a RequestHead,
    body: &'a Bytes,
    scan: &'a Scan<'a>,
) -> Request<'a> {
    Request {
        surface,
        model: call.model,
        streaming: call.streaming,
        query: req.uri.query(),
        body,
        scan,
        defaults: call.resolution.defaults,
        strict: call.resolution.policy.is_some_and(|p| p.strict),
    }
}

/// The order the targets are tried: the route's strategy, cooled-down targets last.
fn order(
    call: &Call<'_>,
    health: &[std::sync::Arc<crate::health_book::TargetHealth>],
) -> std::borrow::Cow<'static, [usize]> {
    let r = &call.resolution;
    if r.targets.len() == 1 {
        return std::borrow::Cow::Borrowed(&[0]);
    }
    let now = now_ms();
    let views: Vec<TargetView> = (0..r.targets.len())
        .map(|i| TargetView {
            weight: r.targets[i].weight,
            latency_ms: health.get(i).and_then(|h| h.latency_ms(now)),
            cooling: health.get(i).is_some_and(|h| h.cooling(now)),
        })
        .collect();
    candidates(r.policy.and(r.strategy), &views, rand::random()).into()
}

/// First-byte timeout, idle gap and deadline: the route's policy, else the gateway's settings.
fn timeouts(
    policy: Option<&RoutePolicy>,
    settings: &crate::Settings,
) -> (Duration, Duration, Option<Instant>) {
    let ms = |f: fn(&RoutePolicy) -> u64| {
        policy
            .map(f)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    };
    (
        ms(|p| p.first_byte_ms).unwrap_or(settings.upstream_timeout),
        ms(|p| p.idle_ms).unwrap_or(settings.upstream_idle_timeout),
        ms(|p| p.total_ms).map(|d| Instant::now() + d),
    )
}

/// How a complete stream of the called API ends: OpenAI chat and completions with `[DONE]`,
/// Anthropic Messages with `message_stop`, the Responses API with `response.completed` (or
/// `.incomplete`, `.failed`; or their own error events); others are not checked.
fn end_markers(surface: Surface) -> Option<&'static guard::EndMarkers> {
    match surface {
        Surface::Chat | Surface::Completions => Some(&guard::OPENAI_END),
        Surface::Messages => Some(&guard::ANTHROPIC_END),
        Surface::Responses => Some(&guard::RESPONSES_END),
        _ => None,
    }
}

/// A v4 UUID from the thread-local generator (no syscall per request).
pub fn new_request_id() -> String {
    request_id_text(new_request_uuid())
}

/// A request id's text (hyphenated, lower case), written without `core::fmt`.
fn request_id_text(id: uuid::Uuid) -> String {
    let mut text = uuid::Uuid::encode_buffer();
    String::from(&*id.hyphenated().encode_lower(&mut text))
}

thread_local! {
    /// Request ids' randomness: xoshiro256++ (`SmallRng`), seeded once per thread from the OS.
    /// An id must be unique, not secret (it is echoed to the client and names the request's
    /// record; nothing is authorised by knowing one), and 122 random bits from a generator with
    /// a 2^256 period seeded from the OS do not repeat. `rand::random` (ChaCha12, made to be
    /// unpredictable) cost ~330 instructions per request; this costs a tenth of that.
    static IDS: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_os_rng());
}

fn new_request_uuid() -> uuid::Uuid {
    use rand::RngCore;
    let bits = IDS.with(|r| {
        let mut r = r.borrow_mut();
        (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())
    });
    uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
}

/// Reads a request body: refused with 413 as soon as it exceeds the limit (a declared
/// Content-Length over it before reading anything), with 408 when it stalls longer than the idle
/// timeout between chunks or takes longer than the read timeout in all, and charged to the
/// replica's memory budget before it is kept (503 `overloaded` when the budget stays full).
pub async fn read_body<'b>(
    req: &RequestHead,
    mut payload: Payload,
    ctx: &'b Ctx,
    started: Instant,
    charge: &mut Charge<'b>,
) -> Result<Bytes, GatewayError> {
    use futures_util::FutureExt;
    let s = &ctx.settings;
    let limit = s.max_body_bytes;
    let too_large = || {
        GatewayError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than the {limit} byte limit"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let first = declared.unwrap_or(BODY_STEP).min(limit);
    ctx.budget.charge(charge, first).await?;
    // A body that arrives as one chunk (nearly all: it came with its head) is that chunk, a
    // slice of the connection's read buffer, neither copied nor allocated for; a second chunk
    // starts a buffer of them all.
    let mut only: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::from_std(started + s.body_read_timeout);
    loop {
        // A chunk already received is taken without a timer (most bodies arrive with their
        // head); only a wait is bounded, by the idle timeout and the whole body's deadline.
        let next = match payload.next().now_or_never() {
            Some(next) => next,
            None => {
                let until = deadline.min(tokio::time::Instant::now() + s.body_idle_timeout);
                match tokio::time::timeout_at(until, payload.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(body_timeout(s, until == deadline)),
                }
            }
        };
        let chunk = match next {
            None => break,
            Some(chunk) => chunk.map_err(|e| {
                GatewayError::new(ErrorCode::BadRequest, format!("reading request body: {e}"))
            })?,
        };
        let had = only.as_ref().map_or(buf.len(), Bytes::len);
        let len = had + chunk.len();
        if len > limit {
            return Err(too_large());
        }
        if len > charge.bytes() {
            // A body longer than declared (or chunked): the charge doubles, up to the limit.
            let target = len.max((2 * charge.bytes()).min(limit));
            ctx.budget.charge(charge, target - charge.bytes()).await?;
        }
        if only.is_none() && buf.is_empty() {
            only = Some(chunk);
            continue;
        }
        if let Some(first) = only.take() {
            buf.reserve(len.max(declared.unwrap_or(0)));
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(only.unwrap_or_else(|| buf.freeze()))
}

/// A body that stalled (`total`: took too long in all).
fn body_timeout(s: &crate::config::Settings, total: bool) -> GatewayError {
    let what = if total {
        format!(
            "took longer than {} s to arrive",
            s.body_read_timeout.as_secs()
        )
    } else {
        format!("stalled for {} s", s.body_idle_timeout.as_secs())
    };
    GatewayError::new(
        ErrorCode::RequestTimeout,
        format!("the request body {what}; send it without pauses"),
    )
}

/// The first charge of a body of unknown length.
const BODY_STEP: usize = 64 * 1024;

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids_written_as_uuid_writes_them_and_never_repeat() {
        let per_thread = |n: usize| {
            std::thread::spawn(move || {
                (0..n)
                    .map(|_| {
                        let id = new_request_uuid();
                        assert_eq!(id.get_version_num(), 4, "{id}");
                        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
                        assert_eq!(request_id_text(id), id.to_string());
                        id
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (a, b) = (per_thread(50_000), per_thread(50_000));
        let mut all: Vec<uuid::Uuid> = a.join().unwrap();
        all.extend(b.join().unwrap());
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "two threads' ids collided");
        assert_eq!(new_request_id().len(), 36);
    }
}
