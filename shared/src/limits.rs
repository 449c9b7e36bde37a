//! Limits and budgets as pure code: what a project, a key or an end user may use (`Limits`), the
//! windows counters live in (`Window`), which counters a request touches and how much it
//! reserves (`checks`), and the `x-ratelimit-*` values an answer carries. The counting itself
//! (leases over a shared store) is the data plane's; nothing here does I/O.
//!
//! Counting model: every limit is a counter per window (a UTC minute, day, ISO week, month, or
//! ever), keyed by `CounterId` (whose limit: a project's own, its plan, a key; optionally one end
//! user within it; which metric). A request reserves an amount on each counter before its first
//! attempt (one request; its estimated input plus its allowed output tokens; their cost) and
//! settles to the exact usage after its answer.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

/// Micro-units of currency in one unit ("1.00").
pub const MICROS: u64 = 1_000_000;

/// What one scope (a project, its plan, a key) may use. Every field is optional; an absent one
/// does not limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Input and output tokens together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_minute: Option<u64>,
    /// Requests in flight at once (streams count until they end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// When set, the limits apply only to requests for these model names (as the client names
    /// them; `*` matches any run of characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Limits each end user (the request's `user`, or `x-to11-user`) has within this scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<Box<Limits>>,
}

/// An amount of spend per period, with an alert threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// In micro-units of the price table's currency; written as a decimal string ("25.00").
    #[serde(serialize_with = "amount_out", deserialize_with = "amount_in")]
    pub amount: u64,
    pub period: Period,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at_percent: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
    Total,
}

/// The windows counters are kept in: fixed, aligned to UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Minute,
    Day,
    Week,
    Month,
    Total,
}

impl From<Period> for Window {
    fn from(p: Period) -> Window {
        match p {
            Period::Day => Window::Day,
            Period::Week => Window::Week,
            Period::Month => Window::Month,
            Period::Total => Window::Total,
        }
    }
}

impl Window {
    /// The window holding the instant `now_ms` (milliseconds since the Unix epoch): an index
    /// that grows by one per window.
    pub fn index(self, now_ms: i64) -> i64 {
        const DAY: i64 = 86_400_000;
        match self {
            Window::Minute => now_ms.div_euclid(60_000),
            Window::Day => now_ms.div_euclid(DAY),
            // 1970-01-01 was a Thursday; weeks start on Monday (ISO).
            Window::Week => (now_ms.div_euclid(DAY) + 3).div_euclid(7),
            Window::Month => {
                let t = at(now_ms);
                t.year() as i64 * 12 + t.month0() as i64
            }
            Window::Total => 0,
        }
    }

    /// When window `index` ends (ms since the epoch); `None` for `Total`.
    pub fn end_ms(self, index: i64) -> Option<i64> {
        const DAY: i64 = 86_400_000;
        match self {
            Window::Minute => Some((index + 1) * 60_000),
            Window::Day => Some((index + 1) * DAY),
            Window::Week => Some(((index + 1) * 7 - 3) * DAY),
            Window::Month => {
                let next = index + 1;
                let (y, m) = (next.div_euclid(12) as i32, next.rem_euclid(12) as u32 + 1);
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .map(|t| t.timestamp_millis())
            }
            Window::Total => None,
        }
    }

    /// The short name used in counter keys.
    pub fn tag(self) -> &'static str {
        match self {
            Window::Minute => "m",
            Window::Day => "d",
            Window::Week => "w",
            Window::Month => "mo",
            Window::Total => "t",
        }
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    Tokens,
    InputTokens,
    OutputTokens,
    /// Micro-units of spend.
    Spend,
    /// Requests in flight (no window).
    Concurrent,
}

impl Metric {
    pub fn tag(self) -> &'static str {
        match self {
            Metric::Requests => "r",
            Metric::Tokens => "t",
            Metric::InputTokens => "ti",
            Metric::OutputTokens => "to",
            Metric::Spend => "s",
            Metric::Concurrent => "c",
        }
    }

    /// The limit's name in the API (`limits` fields; `usage` entries).
    pub fn field(self) -> &'static str {
        match self {
            Metric::Requests => "requests_per_minute",
            Metric::Tokens => "tokens_per_minute",
            Metric::InputTokens => "input_tokens_per_minute",
            Metric::OutputTokens => "output_tokens_per_minute",
            Metric::Spend => "budget",
            Metric::Concurrent => "concurrent",
        }
    }
}

/// Whose limits these are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The project's own limits (its management key may change them).
    Project,
    /// The operator's plan for the project (only the operator may change it).
    Plan,
    Key,
}

impl Owner {
    pub fn tag(self) -> &'static str {
        match self {
            Owner::Project => "p",
            Owner::Plan => "plan",
            Owner::Key => "k",
        }
    }
}

/// One counter, across every replica: whose, which end user (for `per_user`), what, and in
/// which kind of window. The window's index completes the store's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterId {
    pub owner: Owner,
    /// The project's id, or the key's.
    pub id: Uuid,
    pub user: Option<String>,
    pub metric: Metric,
    pub window: Window,
}

impl CounterId {
    /// The store's key for window `index` (under `prefix`).
    pub fn key(&self, prefix: &str, index: i64) -> String {
        let mut k = format!("{prefix}lim:{}:{}", self.owner.tag(), self.id);
        if let Some(u) = &self.user {
            k.push_str(":u:");
            k.push_str(u);
        }
        k.push(':');
        k.push_str(self.metric.tag());
        if self.metric != Metric::Concurrent {
            k.push(':');
            k.push_str(self.window.tag());
            k.push(':');
            k.push_str(&index.to_string());
        }
        k
    }

    /// How long a window's counter is kept after it began (its length and a margin), in
    /// seconds; `None`: kept.
    pub fn ttl_secs(&self) -> Option<u64> {
        match self.window {
            Window::Minute => Some(180),
            Window::Day => Some(2 * 86_400 + 3_600),
            Window::Week => Some(8 * 86_400),
            Window::Month => Some(32 * 86_400),
            Window::Total => None,
        }
    }
}

/// One limit a request meets: the counter, its limit, and what the request reserves on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Shared: a check is copied per request from a cached plan.
    pub counter: std::sync::Arc<CounterId>,
    pub limit: u64,
    pub reserve: u64,
    /// The alert threshold of a budget, in micro-units.
    pub alert_at: Option<u64>,
}

/// What a request is expected to use, reserved before its first attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None`: the model has no price (it counts 0 towards a budget).
    pub spend: Option<u64>,
}

impl Reservation {
    /// What the request reserves on a counter of `metric`.
    pub fn of(&self, metric: Metric) -> u64 {
        match metric {
            Metric::Requests | Metric::Concurrent => 1,
            Metric::Tokens => self.input_tokens + self.output_tokens,
            Metric::InputTokens => self.input_tokens,
            Metric::OutputTokens => self.output_tokens,
            Metric::Spend => self.spend.unwrap_or(0),
        }
    }
}

/// One set of limits and whose it is.
pub struct Scope<'a> {
    pub owner: Owner,
    pub id: Uuid,
    pub limits: &'a Limits,
}

/// The checks a request for `model` by `user` meets under `scopes`, each with the amount it
/// reserves. Limits narrowed to other models do not apply; `per_user` applies when the request
/// names an end user.
pub fn checks(
    scopes: &[Scope<'_>],
    model: &str,
    user: Option<&str>,
    need: &Reservation,
) -> Vec<Check> {
    let mut out = Vec::new();
    for s in scopes {
        if !s.limits.applies_to(model) {
            continue;
        }
        s.limits.push_checks(s.owner, s.id, None, need, &mut out);
        if let (Some(per_user), Some(u)) = (&s.limits.per_user, user) {
            if per_user.applies_to(model) {
                per_user.push_checks(s.owner, s.id, Some(u), need, &mut out);
            }
        }
    }
    out
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.tokens_per_minute.is_none()
            && self.input_tokens_per_minute.is_none()
            && self.output_tokens_per_minute.is_none()
            && self.concurrent.is_none()
            && self.budget.is_none()
            && self.per_user.as_ref().is_none_or(|u| u.is_empty())
    }

    /// Whether these limits count requests for `model`.
    pub fn applies_to(&self, model: &str) -> bool {
        match &self.models {
            None => true,
            Some(names) => names.iter().any(|p| matches(p, model)),
        }
    }

    /// Whether any limit needs tokens or spend reserved (and so the body's size and
    /// `max_tokens`, and a price).
    pub fn reserves_tokens(&self) -> bool {
        self.tokens_per_minute.is_some()
            || self.input_tokens_per_minute.is_some()
            || self.output_tokens_per_minute.is_some()
            || self.budget.is_some()
            || self.per_user.as_ref().is_some_and(|u| u.reserves_tokens())
    }

    /// Each limit set here (not `per_user`'s), with no reservation: its counter for `owner`'s
    /// `id` (and `user`), its limit, and a budget's alert threshold. What the API shows and what
    /// requests check.
    pub fn counters(&self, owner: Owner, id: Uuid, user: Option<&str>) -> Vec<Check> {
        let minute = [
            (Metric::Requests, self.requests_per_minute),
            (Metric::Tokens, self.tokens_per_minute),
            (Metric::InputTokens, self.input_tokens_per_minute),
            (Metric::OutputTokens, self.output_tokens_per_minute),
        ];
        let windowed = minute
            .into_iter()
            .filter_map(|(metric, limit)| Some((metric, Window::Minute, limit?, None)));
        let concurrent = self
            .concurrent
            .map(|l| (Metric::Concurrent, Window::Total, l, None));
        let budget = self.budget.as_ref().map(|b| {
            let alert = b
                .alert_at_percent
                .map(|p| (b.amount as u128 * p as u128 / 100) as u64);
            (Metric::Spend, b.period.into(), b.amount, alert)
        });
        windowed
            .chain(concurrent)
            .chain(budget)
            .map(|(metric, window, limit, alert_at)| Check {
                counter: std::sync::Arc::new(CounterId {
                    owner,
                    id,
                    user: user.map(str::to_string),
                    metric,
                    window,
                }),
                limit,
                reserve: 0,
                alert_at,
            })
            .collect()
    }

    fn push_checks(
        &self,
        owner: Owner,
        id: Uuid,
        user: Option<&str>,
        need: &Reservation,
        out: &mut Vec<Check>,
    ) {
        for mut c in self.counters(owner, id, user) {
            c.reserve = need.of(c.counter.metric);
            out.push(c);
        }
    }

    /// Reads a `limits` object as the API takes it, reporting every problem: unknown fields,
    /// amounts that are not positive whole numbers, a malformed budget, `per_user` inside
    /// `per_user`.
    pub fn parse(v: &Value) -> Result<Limits, Vec<String>> {
        let mut problems = Vec::new();
        let l = parse_at(v, "limits", true, &mut problems);
        if problems.is_empty() {
            Ok(l)
        } else {
            Err(problems)
        }
    }
}

const FIELDS: &[&str] = &[
    "requests_per_minute",
    "tokens_per_minute",
    "input_tokens_per_minute",
    "output_tokens_per_minute",
    "concurrent",
    "budget",
    "models",
    "per_user",
];

/// The largest count a limit may hold (kept well inside what a store's signed integers hold).
pub const MAX_COUNT: u64 = 1 << 50;

fn parse_at(v: &Value, at: &str, top: bool, problems: &mut Vec<String>) -> Limits {
    let mut l = Limits::default();
    let Some(obj) = v.as_object() else {
        problems.push(format!("{at} must be an object"));
        return l;
    };
    for k in obj.keys() {
        if !FIELDS.contains(&k.as_str()) {
            problems.push(format!(
                "{at}.{k} is not a limit (known: {})",
                FIELDS.join(", ")
            ));
        }
    }
    let mut count = |name: &str| -> Option<u64> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(c) if (1..=MAX_COUNT).contains(&c) => Some(c),
                _ => {
                    problems.push(format!(
                        "{at}.{name} must be a whole number from 1 to {MAX_COUNT}"
                    ));
                    None
                }
            },
            Some(_) => {
                problems.push(format!("{at}.{name} must be a number"));
                None
            }
        }
    };
    l.requests_per_minute = count("requests_per_minute");
    l.tokens_per_minute = count("tokens_per_minute");
    l.input_tokens_per_minute = count("input_tokens_per_minute");
    l.output_tokens_per_minute = count("output_tokens_per_minute");
    l.concurrent = count("concurrent");
    match obj.get("budget") {
        None | Some(Value::Null) => {}
        Some(b) => l.budget = parse_budget(b, &format!("{at}.budget"), problems),
    }
    match obj.get("models") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names))
            if !names.is_empty()
                && names.len() <= 100
                && names
                    .iter()
                    .all(|n| n.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 200)) =>
        {
            l.models = Some(
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
            )
        }
        Some(_) => problems.push(format!(
            "{at}.models must be a list of 1 to 100 model names (1 to 200 characters each)"
        )),
    }
    match obj.get("per_user") {
        None | Some(Value::Null) => {}
        Some(_) if !top => problems.push(format!("{at}.per_user cannot hold per_user")),
        Some(u) => {
            let per_user = parse_at(u, &format!("{at}.per_user"), false, problems);
            l.per_user = Some(Box::new(per_user));
        }
    }
    l
}

fn parse_budget(v: &Value, at: &str, problems: &mut Vec<String>) -> Option<Budget> {
    let Some(obj) = v.as_object() else {
        problems.push(format!("{at} must be an object"));
        return None;
    };
    for k in obj.keys() {
        if !["amount", "period", "alert_at_percent"].contains(&k.as_str()) {
            problems.push(format!(
                "{at}.{k} is not a budget field (known: amount, period, alert_at_percent)"
            ));
        }
    }
    let amount = match obj.get("amount") {
        Some(a) => match parse_amount(a) {
            Ok(0) => {
                problems.push(format!("{at}.amount must be more than 0"));
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(format!("{at}.amount {e}"));
                None
            }
        },
        None => {
            problems.push(format!("{at}.amount is required (e.g. \"25.00\")"));
            None
        }
    };
    let period = match obj.get("period").and_then(Value::as_str) {
        Some("day") => Some(Period::Day),
        Some("week") => Some(Period::Week),
        Some("month") => Some(Period::Month),
        Some("total") => Some(Period::Total),
        _ => {
            problems.push(format!(
                "{at}.period must be one of day, week, month, total"
            ));
            None
        }
    };
    let alert = match obj.get("alert_at_percent") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(p @ 1..=100) => Some(p as u8),
            _ => {
                problems.push(format!(
                    "{at}.alert_at_percent must be a whole number from 1 to 100"
                ));
                None
            }
        },
    };
    Some(Budget {
        amount: amount?,
        period: period?,
        alert_at_percent: alert,
    })
}

/// An amount of currency as a decimal string ("25.00", "0.5") or a number, in micro-units.
/// At most six decimals; at most 10^9 units.
pub fn parse_amount(v: &Value) -> Result<u64, String> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err("must be a decimal string such as \"25.00\"".into()),
    };
    let bad = || format!("must be a decimal amount such as \"25.00\" (got {text:?})");
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || whole.len() > 10
    {
        return Err(bad());
    }
    let units: u64 = whole.parse().map_err(|_| bad())?;
    if units > 1_000_000_000 {
        return Err("must be at most 1000000000".into());
    }
    let mut micros = 0u64;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .enumerate()
    {
        micros += (b - b'0') as u64 * 10u64.pow(5 - i as u32);
    }
    Ok(units * MICROS + micros)
}

/// Micro-units written as a decimal: at least two decimals, more only when they are not 0.
pub fn format_amount(micros: u64) -> String {
    let (units, frac) = (micros / MICROS, micros % MICROS);
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{units}.{f}")
}

fn amount_out<S: Serializer>(micros: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_amount(*micros))
}

fn amount_in<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    parse_amount(&v).map_err(serde::de::Error::custom)
}

/// The `x-to11-signature` of a webhook call made at `unix_secs` with `body`:
/// `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>" under the webhook's secret>`. A receiver
/// recomputes it and refuses a call whose `t` is too old (a replay).
pub fn webhook_signature(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut msg = format!("{unix_secs}.").into_bytes();
    msg.extend_from_slice(body);
    format!(
        "t={unix_secs},v1={}",
        crate::crypto::hmac_sha256_hex(secret.as_bytes(), &msg)
    )
}

/// Whether `pattern` (with `*` for any run of characters) matches `name` whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// The value of an `x-ratelimit-reset-*` header: the time until `end_ms`, as OpenAI writes it
/// ("250ms", "17s", "1m0s", "2h3m4s").
pub fn reset_after(now_ms: i64, end_ms: i64) -> String {
    let ms = (end_ms - now_ms).max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = (ms + 999) / 1_000;
    let (h, m, s) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// When a window ends, as a time (for the API).
pub fn resets_at(window: Window, now_ms: i64) -> Option<DateTime<Utc>> {
    window.end_ms(window.index(now_ms)).map(at)
}

/// Seconds until `end_ms`, at least 1 (a `retry-after` value).
pub fn retry_after_secs(now_ms: i64, end_ms: i64) -> u64 {
    (((end_ms - now_ms).max(0) + 999) / 1_000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn windows_are_aligned_to_utc_and_end_where_the_next_begins() {
        let cases = [
            (
                Window::Minute,
                ms(2026, 11, 30, 20, 15, 42),
                ms(2026, 11, 30, 20, 16, 0),
            ),
            (
                Window::Day,
                ms(2026, 11, 30, 20, 15, 42),
                ms(2026, 12, 1, 0, 0, 0),
            ),
            // 2026-11-30 is a Monday: its week ends on Monday 2026-12-07.
            (
                Window::Week,
                ms(2026, 11, 30, 0, 0, 0),
                ms(2026, 12, 7, 0, 0, 0),
            ),
            (
                Window::Week,
                ms(2026, 12, 6, 23, 59, 59),
                ms(2026, 12, 7, 0, 0, 0),
            ),
            (
                Window::Month,
                ms(2026, 12, 31, 23, 0, 0),
                ms(2027, 1, 1, 0, 0, 0),
            ),
            (
                Window::Month,
                ms(2028, 2, 10, 0, 0, 0),
                ms(2028, 3, 1, 0, 0, 0),
            ),
        ];
        for (w, now, end) in cases {
            let i = w.index(now);
            assert_eq!(w.end_ms(i), Some(end), "{w:?} at {now}");
            assert_eq!(
                w.index(end),
                i + 1,
                "{w:?}: the next window starts at the end"
            );
            assert_eq!(w.index(end - 1), i, "{w:?}: the last ms is still inside");
        }
        assert_eq!(Window::Total.end_ms(Window::Total.index(0)), None);
    }

    #[test]
    fn amounts_are_exact_micro_units() {
        for (text, micros) in [
            (json!("25.00"), 25_000_000),
            (json!("0.5"), 500_000),
            (json!("0.000001"), 1),
            (json!(3), 3_000_000),
            (json!("1000000000"), 1_000_000_000 * MICROS),
        ] {
            assert_eq!(parse_amount(&text), Ok(micros), "{text}");
        }
        for bad in [
            json!("-1"),
            json!("1e3"),
            json!("0.0000001"),
            json!("abc"),
            json!(""),
            json!(".5"),
            json!(true),
            json!("1000000001"),
            json!(1.5e300),
        ] {
            assert!(parse_amount(&bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(format_amount(25_000_000), "25.00");
        assert_eq!(format_amount(500_000), "0.50");
        assert_eq!(format_amount(1), "0.000001");
        assert_eq!(format_amount(1_230_000), "1.23");
    }

    #[test]
    fn the_contract_parses_and_round_trips() {
        let v = json!({"requests_per_minute": 600, "tokens_per_minute": 100000, "concurrent": 20,
            "budget": {"amount": "25.00", "period": "month", "alert_at_percent": 80},
            "per_user": {"requests_per_minute": 60, "budget": {"amount": "1.00", "period": "day"}}});
        let l = Limits::parse(&v).expect("parses");
        assert_eq!(l.requests_per_minute, Some(600));
        assert_eq!(l.budget.as_ref().unwrap().amount, 25 * MICROS);
        assert_eq!(l.per_user.as_ref().unwrap().requests_per_minute, Some(60));
        assert_eq!(serde_json::to_value(&l).unwrap(), v);
        let back: Limits = serde_json::from_value(v).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let v = json!({"request_per_minute": 5, "concurrent": 0, "tokens_per_minute": "many",
            "budget": {"amount": "-3", "period": "year", "alert_at_percent": 120},
            "models": [],
            "per_user": {"per_user": {}}});
        let problems = Limits::parse(&v).unwrap_err();
        for needle in [
            "limits.request_per_minute is not a limit",
            "limits.concurrent must be a whole number",
            "limits.tokens_per_minute must be a number",
            "limits.budget.amount must be a decimal",
            "limits.budget.period must be one of",
            "limits.budget.alert_at_percent",
            "limits.models must be a list",
            "limits.per_user.per_user cannot hold per_user",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle} missing from {problems:?}"
            );
        }
        assert!(Limits::parse(&json!([1])).is_err());
    }

    #[test]
    fn checks_follow_scopes_models_and_users() {
        let key = Limits {
            requests_per_minute: Some(10),
            models: Some(vec!["gpt-*".into()]),
            per_user: Some(Box::new(Limits {
                concurrent: Some(2),
                ..Default::default()
            })),
            ..Default::default()
        };
        let project = Limits {
            tokens_per_minute: Some(1000),
            budget: Some(Budget {
                amount: 10 * MICROS,
                period: Period::Day,
                alert_at_percent: Some(50),
            }),
            ..Default::default()
        };
        let (p, k) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let scopes = [
            Scope {
                owner: Owner::Key,
                id: k,
                limits: &key,
            },
            Scope {
                owner: Owner::Project,
                id: p,
                limits: &project,
            },
        ];
        let need = Reservation {
            input_tokens: 30,
            output_tokens: 70,
            spend: Some(1234),
        };
        let c = checks(&scopes, "gpt-4o", Some("ann"), &need);
        let summary: Vec<(Owner, Option<&str>, Metric, u64, u64)> = c
            .iter()
            .map(|c| {
                (
                    c.counter.owner,
                    c.counter.user.as_deref(),
                    c.counter.metric,
                    c.limit,
                    c.reserve,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Owner::Key, None, Metric::Requests, 10, 1),
                (Owner::Key, Some("ann"), Metric::Concurrent, 2, 1),
                (Owner::Project, None, Metric::Tokens, 1000, 100),
                (Owner::Project, None, Metric::Spend, 10 * MICROS, 1234),
            ]
        );
        assert_eq!(c[3].alert_at, Some(5 * MICROS));
        let other = checks(&scopes, "claude-3", None, &need);
        assert_eq!(other.len(), 2, "the key's limits are narrowed to gpt-*");
    }

    #[test]
    fn patterns_match_whole_names() {
        for (p, n, ok) in [
            ("gpt-*", "gpt-4o", true),
            ("gpt-*", "xgpt-4o", false),
            ("*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-mini", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("*", "anything", true),
        ] {
            assert_eq!(matches(p, n), ok, "{p} ~ {n}");
        }
    }

    #[test]
    fn webhook_signatures_follow_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            crate::crypto::hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = webhook_signature("whsec_x", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            format!(
                "t=1700000000,v1={}",
                crate::crypto::hmac_sha256_hex(b"whsec_x", b"1700000000.{}")
            )
        );
    }

    #[test]
    fn reset_values_read_like_openais() {
        assert_eq!(reset_after(0, 250), "250ms");
        assert_eq!(reset_after(0, 17_000), "17s");
        assert_eq!(reset_after(0, 60_000), "1m0s");
        assert_eq!(reset_after(0, 7_384_000), "2h3m4s");
        assert_eq!(reset_after(10, 0), "0ms");
        assert_eq!(retry_after_secs(0, 1), 1);
        assert_eq!(retry_after_secs(0, 59_001), 60);
    }

    #[test]
    fn counter_keys_name_owner_user_metric_and_window() {
        let c = CounterId {
            owner: Owner::Key,
            id: Uuid::nil(),
            user: Some("ann".into()),
            metric: Metric::Requests,
            window: Window::Minute,
        };
        assert_eq!(
            c.key("to11:", 7),
            "to11:lim:k:00000000-0000-0000-0000-000000000000:u:ann:r:m:7"
        );
        let conc = CounterId {
            metric: Metric::Concurrent,
            window: Window::Total,
            ..c
        };
        assert!(conc.key("", 7).ends_with(":u:ann:c"));
    }
}
