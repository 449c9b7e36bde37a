//! The attempt loop: a request's targets tried in order, each retried or passed over as the
//! route's policy decides (`RoutePolicy::decide`), within the first-byte timeout and the route's
//! deadline, with the targets' health updated on the way. It talks to upstreams through
//! `Upstream`, so the retry, fallback and timeout contract is tested with a fake one.
//!
//! Retries and fallback happen only here, on response heads: once an answer is delivered, it is
//! the client's.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use to11_shared::policy::{retry_after_ms, Decision, Outcome, RoutePolicy};
use to11_shared::record::FailedAttempt;
use to11_shared::redact::Scrubber;
use to11_shared::resolve::{CompiledTarget, Layer};
use to11_shared::ErrorCode;

use super::answer::Served;
use super::prepare::{Prepare, Prepared, Preparer};
use super::present::scrubber;
use crate::error::GatewayError;
use crate::health_book::{now_ms, TargetHealth};
use crate::metrics::AttemptTally;
use crate::retry_budget::RetryGate;
use crate::state::{key_header, ProjectLive, UpstreamAuth};
use crate::Metrics;

/// An upstream's answer: status, headers and the body still to read.
pub struct Answered<B> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: B,
}

/// Why an attempt got no answer.
#[derive(Debug)]
pub enum SendError {
    /// No response headers within the attempt's budget.
    Timeout,
    /// Could not connect.
    Connect(String),
    /// The connection failed before the headers.
    Broken(String),
    /// The credential could not be presented (a token that could not be minted).
    Credential(GatewayError),
}

/// One attempt, as the upstream receives it.
pub struct Attempt<'a> {
    pub prepared: &'a Prepared,
    /// The client's own key in the provider's form (BYOK), instead of the stored credential.
    pub byok: Option<&'a (HeaderName, HeaderValue)>,
    pub stored: Option<&'a UpstreamAuth>,
    /// Longest wait for the response headers.
    pub budget: Duration,
    /// The attempt span's `traceparent` (the request is traced), replacing the client's.
    pub traceparent: Option<HeaderValue>,
}

/// Where attempts go: awc in service (`send::AwcUpstream`), a fake in tests.
pub(crate) trait Upstream {
    type Body: Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin + 'static;
    async fn send(&self, attempt: &Attempt<'_>) -> Result<Answered<Self::Body>, SendError>;
}

/// The targets of one request and the rules for trying them.
pub struct Attempts<'a> {
    pub request_id: &'a str,
    pub project: &'a ProjectLive,
    pub layer: Layer,
    pub function: Option<&'a str>,
    pub route: Option<&'a str>,
    pub targets: &'a [CompiledTarget],
    /// `None`: passthrough — one attempt, delivered whatever it answers.
    pub policy: Option<&'a RoutePolicy>,
    /// Per target (same order as `targets`); empty outside routes.
    pub health: &'a [Arc<TargetHealth>],
    pub first_byte: Duration,
    pub deadline: Option<Instant>,
    /// The client's own upstream key (BYOK).
    pub byok: Option<&'a str>,
    /// Most attempts for the request, retries and fallbacks included (`TO11_MAX_ATTEMPTS`):
    /// however many targets a route has, one request never becomes more upstream calls.
    pub max_attempts: u32,
    /// The retry budget every attempt after the first draws on (`RetryGate::default()`: none).
    pub budget: RetryGate<'a>,
    pub metrics: &'a Metrics,
    /// Attempts, retries, fallbacks and the time spent waiting on upstreams (for `/metrics`).
    pub tally: AttemptTally,
    /// Every failed attempt, in order (for the request's record).
    pub failed: RefCell<Vec<FailedAttempt>>,
    /// The request's trace (sampled): a span per attempt.
    pub trace: RefCell<Option<Box<crate::otel::Traced>>>,
}

/// How a request ends.
pub enum Delivery<'a, B> {
    /// An answer to hand to the client as it is (or translated): a success, a passthrough
    /// answer, or an error the policy delivers.
    Answer {
        answered: Answered<B>,
        prepared: Rc<Prepared>,
        served: Served<'a>,
    },
    /// The last failure, once every target was tried (or the deadline passed), or a failure
    /// the policy delivers.
    Failed(Failure, Served<'a>, Option<Rc<Prepared>>),
    /// No target could be tried at all.
    Error(GatewayError),
}

/// A failed attempt: an upstream error answer (read whole, bounded) or a gateway error.
pub enum Failure {
    Answered {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    Error(GatewayError),
}

/// Error bodies are read (to find billing errors, and to deliver them after a decision) up to
/// this.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// What one send came to (`Attempts::classify`).
enum Sent<'a, B> {
    Failed(Outcome, Failure, Served<'a>),
    End(TargetEnd<'a, B>),
}

/// What one target came to.
enum TargetEnd<'a, B> {
    Deliver(Delivery<'a, B>),
    /// Move on, remembering this failure.
    Next(Failure, Served<'a>),
    /// The route's deadline passed.
    Deadline,
    /// The retry budget refused a retry: this failure is the request's answer.
    Spent(Failure, Served<'a>),
}

impl<'a> Attempts<'a> {
    /// Tries `order`'s targets until one answers for good.
    pub(crate) async fn run<U: Upstream>(
        &self,
        upstream: &U,
        prep: &mut Preparer<'a>,
        order: &[usize],
        idle: Duration,
    ) -> Delivery<'a, U::Body> {
        let mut attempts = 0u32;
        let mut last: Option<(Failure, Served<'a>, Rc<Prepared>)> = None;
        let mut unsupported: Vec<String> = Vec::new();
        self.budget.request(
            order
                .first()
                .and_then(|ti| self.health.get(*ti))
                .map(|h| &**h),
        );
        for &ti in order {
            if self.deadline.is_some_and(|d| Instant::now() >= d) || attempts >= self.max_attempts {
                break;
            }
            let target = &self.targets[ti];
            let prepared = match prep.prepare(target).await {
                Ok(Prepare::Ready(p)) => p,
                Ok(Prepare::Unsupported(why)) => {
                    unsupported.push(why);
                    continue;
                }
                Err(e) => return Delivery::Error(e),
            };
            let end = match self.byok_header(target) {
                Ok(byok) => {
                    if attempts > 0 && !self.spend(ti, "fallback") {
                        break;
                    }
                    if last.is_some() {
                        let f = &self.tally.fallbacks;
                        f.set(f.get() + 1);
                    }
                    self.target(upstream, ti, &prepared, byok.as_ref(), &mut attempts, idle)
                        .await
                }
                Err(e) => return Delivery::Error(e),
            };
            match end {
                TargetEnd::Deliver(d) => return d,
                TargetEnd::Next(f, served) => last = Some((f, served, prepared)),
                TargetEnd::Spent(f, served) => {
                    last = Some((f, served, prepared));
                    break;
                }
                TargetEnd::Deadline => break,
            }
        }
        match last {
            Some((f, served, prepared)) => Delivery::Failed(f, served, Some(prepared)),
            None => Delivery::Error(self.nothing_tried(unsupported)),
        }
    }

    /// Takes room in the retry budget for one more attempt on target `ti`; a refusal is counted.
    fn spend(&self, ti: usize, kind: &'static str) -> bool {
        match self.budget.spend(self.health.get(ti).map(|h| &**h)) {
            Ok(()) => true,
            Err(why) => {
                self.metrics.retry_refused(kind, why.as_str());
                false
            }
        }
    }

    fn nothing_tried(&self, unsupported: Vec<String>) -> GatewayError {
        if !unsupported.is_empty() {
            GatewayError::new(ErrorCode::UnsupportedByTarget, unsupported.join("; "))
        } else if self.deadline.is_some() {
            GatewayError::new(
                ErrorCode::UpstreamTimeout,
                "the route's total deadline passed before any target answered",
            )
        } else {
            GatewayError::new(ErrorCode::UpstreamFailure, "no target could be tried")
        }
    }

    /// The client's own key in this target's provider's form.
    fn byok_header(
        &self,
        target: &CompiledTarget,
    ) -> Result<Option<(HeaderName, HeaderValue)>, GatewayError> {
        self.byok
            .map(|k| {
                key_header(self.project.auth_forms[target.provider], k).map_err(|_| {
                    GatewayError::new(
                        ErrorCode::BadRequest,
                        "your upstream key is not a valid header value",
                    )
                })
            })
            .transpose()
    }

    fn served(&self, target: &'a CompiledTarget, attempts: u32) -> Served<'a> {
        Served {
            request_id: self.request_id,
            layer: self.layer,
            function: self.function,
            route: self.route,
            provider: &self.project.tables.providers[target.provider],
            model: &target.model,
            version: self.project.version,
            attempts,
        }
    }

    /// The attempts on one target: retried while the policy says so.
    async fn target<U: Upstream>(
        &self,
        upstream: &U,
        ti: usize,
        prepared: &Rc<Prepared>,
        byok: Option<&(HeaderName, HeaderValue)>,
        attempts: &mut u32,
        idle: Duration,
    ) -> TargetEnd<'a, U::Body> {
        let target = &self.targets[ti];
        let health = self.health.get(ti);
        let stored = self.project.credentials[target.provider].get(&target.credential);
        let mut retries_done = 0;
        loop {
            let Some(budget) = self.budget() else {
                return TargetEnd::Deadline;
            };
            *attempts += 1;
            self.tally.attempts.set(*attempts);
            let span = self.begin_span(target, prepared);
            let attempt = Attempt {
                prepared,
                byok,
                stored,
                budget,
                traceparent: span.as_ref().map(|s| s.1.clone()),
            };
            let started = Instant::now();
            let sent = upstream.send(&attempt).await;
            if let Some((i, _)) = span {
                self.end_span(i, &sent);
            }
            let ttfb_us = started.elapsed().as_micros() as u64;
            let served = self.served(target, *attempts);
            let (outcome, failure, served) = match self
                .classify(sent, served, prepared, health, ttfb_us, idle, || {
                    scrubber(byok, stored)
                })
                .await
            {
                Sent::Failed(outcome, failure, served) => (outcome, failure, served),
                Sent::End(end) => return end,
            };
            self.tally.waited(started.elapsed());
            match &failure {
                Failure::Answered { status, .. } => self.note(&served, Some(*status), None),
                Failure::Error(e) => self.note(&served, None, Some(e.code.name())),
            }
            if self.policy.is_none() {
                // Without a route's policy an answer is final, whatever its status.
                return TargetEnd::Deliver(Delivery::Failed(
                    failure,
                    served,
                    Some(prepared.clone()),
                ));
            }
            match self.decide(
                outcome,
                &failure,
                health,
                retries_done,
                ttfb_us,
                &served.provider.kind,
            ) {
                Decision::Deliver => {
                    return TargetEnd::Deliver(Delivery::Failed(
                        failure,
                        served,
                        Some(prepared.clone()),
                    ))
                }
                Decision::Retry { .. } if *attempts >= self.max_attempts => {
                    return TargetEnd::Next(failure, served)
                }
                Decision::Retry { after_ms } => {
                    let wait = Duration::from_millis(after_ms);
                    if self.deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        // The wait would pass the route's deadline: stop here.
                        return TargetEnd::Next(failure, served);
                    }
                    if !self.spend(ti, "retry") {
                        return TargetEnd::Spent(failure, served);
                    }
                    tokio::time::sleep(wait).await;
                    retries_done += 1;
                    self.tally.waited(wait);
                    let r = &self.tally.retries;
                    r.set(r.get() + 1);
                }
                Decision::Next => return TargetEnd::Next(failure, served),
            }
        }
    }

    /// What one send came to: an answer to deliver (a success), or a failure to decide on — an
    /// error answer read whole and scrubbed of the credential presented (`scrubber`) before
    /// anything of it reaches the client, a redirect (never followed nor passed on: a client
    /// could re-send its key there), or no answer.
    #[allow(clippy::too_many_arguments)]
    async fn classify<B>(
        &self,
        sent: Result<Answered<B>, SendError>,
        served: Served<'a>,
        prepared: &Rc<Prepared>,
        health: Option<&Arc<TargetHealth>>,
        ttfb_us: u64,
        idle: Duration,
        scrubber: impl FnOnce() -> Scrubber,
    ) -> Sent<'a, B>
    where
        B: Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    {
        let (outcome, failure) = match sent {
            Ok(answered) if answered.status.is_redirection() => upstream_error(
                SendError::Broken(format!(
                    "it answered with a redirect (HTTP {}), which the gateway does not follow",
                    answered.status.as_u16()
                )),
                &served.provider.slug,
            ),
            Ok(answered) if answered.status.as_u16() < 400 => {
                self.tally.waited(Duration::from_micros(ttfb_us));
                self.record_answer(health, &answered, ttfb_us);
                return Sent::End(TargetEnd::Deliver(Delivery::Answer {
                    answered,
                    prepared: prepared.clone(),
                    served,
                }));
            }
            Ok(answered) => {
                if self.policy.is_none() {
                    self.record_answer(health, &answered, ttfb_us);
                }
                read_failure(answered, idle, &scrubber()).await
            }
            Err(SendError::Credential(e)) => {
                self.note(&served, None, Some(e.code.name()));
                return Sent::End(TargetEnd::Next(Failure::Error(e), served));
            }
            Err(e) => upstream_error(e, &served.provider.slug),
        };
        Sent::Failed(outcome, failure, served)
    }

    /// Starts the attempt's span when the request is traced: its index and `traceparent`.
    fn begin_span(
        &self,
        target: &CompiledTarget,
        prepared: &Prepared,
    ) -> Option<(usize, HeaderValue)> {
        let mut trace = self.trace.try_borrow_mut().ok()?;
        let t = trace.as_mut()?;
        let provider = &self.project.tables.providers[target.provider];
        let target = to11_shared::otel::genai::Target {
            surface: t.surface,
            provider: provider.trace_attrs(),
            model: &target.model,
            address: provider.address_for(&prepared.url),
        };
        t.attempt(&target)
    }

    /// Ends attempt span `i` with what the send came to.
    fn end_span<B>(&self, i: usize, sent: &Result<Answered<B>, SendError>) {
        let Ok(mut trace) = self.trace.try_borrow_mut() else {
            return;
        };
        let Some(t) = trace.as_mut() else { return };
        let (status, error) = match sent {
            Ok(a) => (Some(a.status.as_u16()), None),
            Err(SendError::Timeout) => (None, Some("timeout")),
            Err(SendError::Connect(_)) => (None, Some("connect")),
            Err(SendError::Broken(_)) => (None, Some("broken")),
            Err(SendError::Credential(e)) => (None, Some(e.code.name())),
        };
        let now = crate::otel::now_ns();
        to11_shared::otel::genai::attempt_end(&mut t.trace, i, now, status, error);
    }

    /// Notes a failed attempt for the record.
    fn note(&self, served: &Served<'_>, status: Option<u16>, error: Option<&str>) {
        self.failed.borrow_mut().push(FailedAttempt {
            provider: served.provider.slug.clone(),
            model: served.model.to_string(),
            status,
            error: error.map(str::to_string),
        });
    }

    /// The wait allowed for the next attempt's headers; `None` once the deadline passed.
    fn budget(&self) -> Option<Duration> {
        match self.deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(self.first_byte.min(left)),
                _ => None,
            },
            None => Some(self.first_byte),
        }
    }

    fn record_answer<B>(&self, health: Option<&Arc<TargetHealth>>, a: &Answered<B>, ttfb_us: u64) {
        if a.status.as_u16() < 400 {
            if let Some(h) = health {
                h.success(ttfb_us, now_ms());
            }
        } else if a.status.is_server_error() {
            self.metrics.upstream_errors.inc();
        }
    }

    /// The policy's decision on a failed attempt, the target's health updated.
    fn decide(
        &self,
        outcome: Outcome,
        failure: &Failure,
        health: Option<&Arc<TargetHealth>>,
        retries_done: u32,
        ttfb_us: u64,
        kind: &str,
    ) -> Decision {
        let Some(p) = self.policy else {
            return Decision::Deliver;
        };
        if counts_against_target(outcome) {
            self.metrics.upstream_errors.inc();
            if let Some(h) = health {
                if h.failure(now_ms(), p.cooldown_failures, p.cooldown_ms, Some(ttfb_us)) {
                    self.metrics.cooldown(kind);
                }
            }
        }
        let retry_after = match failure {
            Failure::Answered { headers, .. } => retry_after_ms(
                headers.get("retry-after-ms").and_then(|v| v.to_str().ok()),
                headers.get("retry-after").and_then(|v| v.to_str().ok()),
            ),
            Failure::Error(_) => None,
        };
        p.decide(outcome, retries_done, retry_after, rand::random())
    }
}

/// An error answer read whole (bounded in size and time: a stalled error body must not hold the
/// request), classified, and scrubbed of every echo of the credential presented (body and
/// headers; a compressed body, which cannot be searched, is replaced by a message saying so).
async fn read_failure<B>(
    mut a: Answered<B>,
    idle: Duration,
    scrubber: &Scrubber,
) -> (Outcome, Failure)
where
    B: Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    use futures_util::StreamExt;
    let status = a.status.as_u16();
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(Ok(chunk)) = a.body.next().await {
            if buf.len() + chunk.len() > MAX_ERROR_BODY {
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        buf.freeze()
    };
    let body = tokio::time::timeout(idle, read).await.unwrap_or_default();
    let (headers, body) = scrubbed(a.headers, body, status, scrubber);
    let billing = status == 402 || (status == 429 && contains(&body, b"insufficient_quota"));
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
        },
    )
}

/// An error answer's headers and body without any echo of the credential presented.
fn scrubbed(
    mut headers: HeaderMap,
    body: Bytes,
    status: u16,
    scrubber: &Scrubber,
) -> (HeaderMap, Bytes) {
    let encoded = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.trim().eq_ignore_ascii_case("identity"))
        .map(str::to_string);
    let body = match encoded {
        Some(coding) => {
            headers.remove(CONTENT_ENCODING);
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let message = format!(
                "the provider answered HTTP {status} with a '{coding}'-encoded body, which the gateway does not pass on"
            );
            Bytes::from(
                serde_json::json!({"error": {"message": message, "type": "upstream_error"}})
                    .to_string(),
            )
        }
        None => match scrubber.scrub(&body) {
            std::borrow::Cow::Borrowed(_) => body,
            std::borrow::Cow::Owned(b) => Bytes::from(b),
        },
    };
    if !scrubber.is_empty() {
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names {
            let values: Vec<HeaderValue> = headers.get_all(&name).cloned().collect();
            if values.iter().any(|v| scrubber.finds(v.as_bytes())) {
                headers.remove(&name);
                for v in values {
                    let clean = scrubber.scrub(v.as_bytes());
                    if let Ok(v) = HeaderValue::from_bytes(&clean) {
                        headers.append(name.clone(), v);
                    }
                }
            }
        }
    }
    (headers, body)
}

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

/// A send that got no answer, as the outcome the policy decides on and the error a client sees.
fn upstream_error(e: SendError, provider: &str) -> (Outcome, Failure) {
    let (outcome, code, message) = match e {
        SendError::Timeout => (
            Outcome::Timeout,
            ErrorCode::UpstreamTimeout,
            format!("provider '{provider}' did not answer in time"),
        ),
        SendError::Connect(why) => (
            Outcome::Connect,
            ErrorCode::UpstreamFailure,
            format!("could not connect to provider '{provider}': {why}"),
        ),
        SendError::Broken(why) => (
            Outcome::Connect,
            ErrorCode::UpstreamFailure,
            format!("request to provider '{provider}' failed: {why}"),
        ),
        // A credential that cannot be presented is this target's failure: the route may move on.
        SendError::Credential(e) => (Outcome::Connect, e.code, e.message),
    };
    (outcome, Failure::Error(GatewayError::new(code, message)))
}

#[cfg(test)]
mod tests;
