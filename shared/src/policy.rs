//! Routing decisions as pure functions: which outcome of an attempt retries the same target,
//! falls through to the next one, or is delivered to the client; how long to wait; in which order
//! a strategy tries the targets. The data plane runs the I/O; the contract lives here, table-tested.

use serde::{Deserialize, Serialize};

pub mod budget;

/// What one attempt produced, before any byte reached the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// The upstream refused for billing reasons (e.g. OpenAI 429 `insufficient_quota`, 402):
    /// retrying the same account cannot help.
    Billing,
    /// Could not connect (refused, reset before headers, DNS, TLS).
    Connect,
    /// No response headers within the first-byte timeout.
    Timeout,
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hand this answer to the client (success, or an error no other target would fix).
    Deliver,
    /// Try the same target again after this many milliseconds.
    Retry { after_ms: u64 },
    /// Move on to the next target (another provider, account or credential).
    Next,
}

/// Outcome classes a policy names: `"429"`, `"5xx"`, `"4xx"`, an exact status such as `"408"`,
/// `"auth"` (401 and 403), `"billing"`, `"connect"`, `"timeout"`.
fn matches(class: &str, o: Outcome) -> bool {
    match (class, o) {
        ("connect", Outcome::Connect)
        | ("timeout", Outcome::Timeout)
        | ("billing", Outcome::Billing) => true,
        ("auth", Outcome::Status(401 | 403)) => true,
        ("5xx", Outcome::Status(s)) => (500..600).contains(&s),
        ("4xx", Outcome::Status(s)) => (400..500).contains(&s),
        (c, Outcome::Status(s)) => c.parse::<u16>().is_ok_and(|n| n == s),
        _ => false,
    }
}

/// Whether a class name is one a policy may use.
pub fn valid_class(class: &str) -> bool {
    matches!(
        class,
        "connect" | "timeout" | "billing" | "auth" | "5xx" | "4xx"
    ) || class.parse::<u16>().is_ok_and(|n| (400..600).contains(&n))
}

fn default_retry_on() -> Vec<String> {
    ["429", "5xx", "connect", "timeout"]
        .map(String::from)
        .to_vec()
}
fn default_fallback_on() -> Vec<String> {
    ["429", "5xx", "connect", "timeout", "auth", "billing", "408"]
        .map(String::from)
        .to_vec()
}
fn default_max_retries() -> u32 {
    1
}
fn default_backoff_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    4_000
}
fn default_retry_after_cap_ms() -> u64 {
    30_000
}
fn default_cooldown_failures() -> u32 {
    3
}
fn default_cooldown_ms() -> u64 {
    30_000
}

/// Per-route behaviour on failure. Every field has a default, so `{}` is a sensible policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePolicy {
    /// Outcomes retried on the same target (at most `max_retries` times).
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<String>,
    /// Outcomes that move on to the next target once retries are spent.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<String>,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Exponential backoff: base and cap; full jitter is applied.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// A `retry-after` longer than this is not waited for: the next target is tried instead.
    #[serde(default = "default_retry_after_cap_ms")]
    pub retry_after_cap_ms: u64,
    /// After this many consecutive failures a target cools down for `cooldown_ms`.
    #[serde(default = "default_cooldown_failures")]
    pub cooldown_failures: u32,
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
    /// Per attempt: no response headers within this → `timeout` (0 = the gateway's default).
    #[serde(default)]
    pub first_byte_ms: u64,
    /// Between two chunks of a streamed answer (0 = the gateway's default). A stall ends the
    /// stream with a terminal error event.
    #[serde(default)]
    pub idle_ms: u64,
    /// Deadline over all attempts and waits, until the answer starts (0 = none).
    #[serde(default)]
    pub total_ms: u64,
    /// Strict translation: a target that would drop a request hint it has no equivalent for
    /// (`x-to11-dropped`) is passed over instead, as if it could not express the request.
    #[serde(default)]
    pub strict: bool,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl RoutePolicy {
    /// Problems with the policy, for the compile step.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .retry_on
            .iter()
            .chain(&self.fallback_on)
            .filter(|c| !valid_class(c))
            .map(|c| format!("unknown outcome class '{c}' (use 429, 5xx, 4xx, a status 400-599, auth, billing, connect, timeout)"))
            .collect();
        if self.retry_on.iter().any(|c| c == "billing") {
            out.push("billing failures cannot be retried on the same target".into());
        }
        if self.max_retries > 10 {
            out.push("max_retries must be at most 10".into());
        }
        if self.backoff_ms > self.backoff_max_ms {
            out.push("backoff_ms must not exceed backoff_max_ms".into());
        }
        out
    }

    /// The decision after attempt number `retries_done` (0 for the first) on one target.
    /// `retry_after_ms` is the upstream's own hint, if it gave one; `jitter` is uniform in [0, 1).
    pub fn decide(
        &self,
        o: Outcome,
        retries_done: u32,
        retry_after_ms: Option<u64>,
        jitter: f64,
    ) -> Decision {
        if let Outcome::Status(s) = o {
            if s < 400 {
                return Decision::Deliver;
            }
        }
        let retryable = self.retry_on.iter().any(|c| matches(c, o));
        let falls = self.fallback_on.iter().any(|c| matches(c, o));
        if retryable && retries_done < self.max_retries {
            match retry_after_ms {
                Some(ms) if ms > self.retry_after_cap_ms => {}
                Some(ms) => return Decision::Retry { after_ms: ms },
                None => {
                    let exp = self
                        .backoff_ms
                        .saturating_mul(1u64 << retries_done.min(20))
                        .min(self.backoff_max_ms);
                    return Decision::Retry {
                        after_ms: (exp as f64 * jitter.clamp(0.0, 1.0)) as u64,
                    };
                }
            }
        }
        if falls || retryable {
            Decision::Next
        } else {
            Decision::Deliver
        }
    }
}

/// Parses `retry-after-ms` (milliseconds) or `retry-after` (seconds, fractional allowed). An HTTP
/// date is not honoured (treated as absent).
pub fn retry_after_ms(retry_after_ms: Option<&str>, retry_after: Option<&str>) -> Option<u64> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then_some(ms as u64);
    }
    let s = retry_after?.trim().parse::<f64>().ok()?;
    (s.is_finite() && s >= 0.0).then_some((s * 1000.0) as u64)
}

/// The order in which to try `weights.len()` targets.
/// - `fallback`: as configured.
/// - `loadbalance`: the first pick is weighted-random (`r` uniform in [0, 1)); the rest follow
///   in configured order, so a failure still falls through to every target.
/// - `least-latency`: by ascending `latency_ms` (unknown first, so new targets get measured);
///   with probability `explore` (from `r`), the first pick is another target, to keep measuring.
pub fn order(
    strategy: crate::model::Strategy,
    weights: &[u32],
    latency_ms: &[Option<f64>],
    r: f64,
    explore: f64,
) -> Vec<usize> {
    use crate::model::Strategy;
    let n = weights.len();
    let mut idx: Vec<usize> = (0..n).collect();
    if n < 2 {
        return idx;
    }
    let first = match strategy {
        Strategy::Fallback => return idx,
        Strategy::Loadbalance => {
            let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
            let mut point = (r.clamp(0.0, 0.999_999) * total as f64) as u64;
            let mut pick = 0;
            for (i, w) in weights.iter().enumerate() {
                if point < u64::from(*w) {
                    pick = i;
                    break;
                }
                point -= u64::from(*w);
            }
            pick
        }
        Strategy::LeastLatency => {
            idx.sort_by(|a, b| {
                let la = latency_ms[*a].unwrap_or(-1.0);
                let lb = latency_ms[*b].unwrap_or(-1.0);
                la.partial_cmp(&lb).unwrap_or(std::cmp::Ordering::Equal)
            });
            if r < explore {
                // Explore: promote a uniformly chosen other target (r/explore is uniform too).
                let k = 1 + ((r / explore) * (n - 1) as f64) as usize % (n - 1);
                idx.swap(0, k.min(n - 1));
            }
            return idx;
        }
    };
    idx.remove(first);
    idx.insert(0, first);
    idx
}

/// Exploration rate of least-latency: the share of requests sent to a target that is not the
/// fastest, to keep measuring the others.
pub const LEAST_LATENCY_EXPLORE: f64 = 0.05;

/// What the candidate ordering knows of one target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetView {
    pub weight: u32,
    /// Its latency estimate, if measured.
    pub latency_ms: Option<f64>,
    /// Whether it is cooling down after failures.
    pub cooling: bool,
}

/// The order a request tries its targets: the route's strategy (`order`, with `r` uniform in
/// [0, 1)), without the cooled-down targets — skipped, not tried last, so a failing target is
/// not sent a fallback per request during an outage — unless every target is cooling, when all
/// are tried in the strategy's order. Without a strategy (a provider's model, a function without
/// a route) the order is as given.
pub fn candidates(
    strategy: Option<crate::model::Strategy>,
    targets: &[TargetView],
    r: f64,
) -> Vec<usize> {
    let mut idx = match strategy {
        Some(s) if targets.len() > 1 => {
            let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
            let latency: Vec<Option<f64>> = targets.iter().map(|t| t.latency_ms).collect();
            order(s, &weights, &latency, r, LEAST_LATENCY_EXPLORE)
        }
        _ => (0..targets.len()).collect(),
    };
    if idx.iter().any(|i| !targets[*i].cooling) {
        idx.retain(|i| !targets[*i].cooling);
    }
    idx
}

#[cfg(test)]
mod tests;
