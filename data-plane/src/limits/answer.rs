//! What a limited request's client sees: the `x-ratelimit-*` values of the limits closest to
//! running out, and a refusal naming the limit it would pass.

use to11_shared::limits::{format_amount, Check, Metric, Owner, Window};
use to11_shared::ErrorCode;

use crate::error::GatewayError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u64,
    pub remaining: u64,
    /// When the window ends (ms since the epoch).
    pub reset_ms: i64,
}

impl RateHeaders {
    pub(super) fn note(&mut self, check: &Check, used: u64, window: i64) {
        let slot = match check.counter.metric {
            Metric::Requests => &mut self.requests,
            Metric::Tokens => &mut self.tokens,
            _ => return,
        };
        let r = Remaining {
            limit: check.limit,
            remaining: check.limit.saturating_sub(used),
            reset_ms: check.counter.window.end_ms(window).unwrap_or(0),
        };
        if slot.is_none_or(|s| r.remaining < s.remaining) {
            *slot = Some(r);
        }
    }

    /// Writes the headers onto an answer.
    pub fn apply(&self, headers: &mut actix_web::http::header::HeaderMap, now_ms: i64) {
        use actix_web::http::header::{HeaderName, HeaderValue};
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
        ];
        for (names, r) in NAMES.iter().zip([&self.requests, &self.tokens]) {
            let Some(r) = r else { continue };
            let [limit, remaining, reset] = names;
            headers.insert(limit.clone(), HeaderValue::from(r.limit));
            headers.insert(remaining.clone(), HeaderValue::from(r.remaining));
            let after = to11_shared::limits::reset_after(now_ms, r.reset_ms);
            if let Ok(v) = HeaderValue::try_from(after) {
                headers.insert(reset.clone(), v);
            }
        }
    }
}

/// A request refused by a limit, with the headers its answer carries.
pub struct Refused {
    pub error: GatewayError,
    pub headers: RateHeaders,
}

pub(super) fn refusal(check: &Check, window: i64, now_ms: i64, store_down: bool) -> GatewayError {
    let c = &check.counter;
    let whose = match (c.owner, &c.user) {
        (Owner::Key, None) => "this key".to_string(),
        (Owner::Key, Some(_)) => "this end user of this key".to_string(),
        (Owner::Project, None) => "this project".to_string(),
        (Owner::Project, Some(_)) => "this end user of this project".to_string(),
        (Owner::Plan, None) => "this project's plan".to_string(),
        (Owner::Plan, Some(_)) => "this end user under this project's plan".to_string(),
    };
    let end = c.window.end_ms(window);
    let retry = end.map_or(3_600, |e| to11_shared::limits::retry_after_secs(now_ms, e));
    let (code, message) = match c.metric {
        Metric::Requests => (
            ErrorCode::RateLimited,
            format!("{whose} may make {} requests per minute", check.limit),
        ),
        Metric::Tokens | Metric::InputTokens | Metric::OutputTokens => (
            ErrorCode::RateLimited,
            format!(
                "{whose} may use {} {} per minute; this request reserves {} (its input estimated, its output up to max_tokens)",
                check.limit,
                match c.metric {
                    Metric::InputTokens => "input tokens",
                    Metric::OutputTokens => "output tokens",
                    _ => "tokens",
                },
                check.reserve
            ),
        ),
        Metric::Spend => (
            ErrorCode::BudgetExceeded,
            format!(
                "{whose} has spent its budget of {} per {}",
                format_amount(check.limit),
                match c.window {
                    Window::Day => "day",
                    Window::Week => "week",
                    Window::Month => "month",
                    _ => "all time",
                }
            ),
        ),
        Metric::Concurrent => (
            ErrorCode::ConcurrencyLimited,
            format!("{whose} may have {} requests in flight", check.limit),
        ),
    };
    let message = if store_down {
        format!("{message} (counted on this replica's share while the limits store is unreachable)")
    } else {
        message
    };
    let retry = if c.metric == Metric::Concurrent {
        1
    } else {
        retry
    };
    GatewayError::new(code, message).with_retry_after(retry)
}
