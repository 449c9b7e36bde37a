//! The usage API's queries, as pure code: parameters parsed and checked (every problem named),
//! the rollup table a query reads, rows merged into the requested interval and grouping, and
//! the answer as JSON or CSV.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::rollup::Sums;
use super::Row;

/// Which rollups a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Table {
    /// By project, key, model, provider and route, per minute.
    Minute,
    /// By project, key, model, provider and route, per hour (or day).
    Hour,
    /// By end user, per hour (or day).
    User,
    /// By the value of this tag, per hour (or day).
    Tag(String),
}

/// Rollup rows of one table in `[from, to)`, of one project or all.
///
/// A store may hand back fewer, bigger rows: summed into buckets of `interval` and over the
/// dimensions not in `keep` (which then read as the nil id or empty); `report` merges whatever
/// it gets into the same answer. PostgreSQL does, and reads whole days from its day rollups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowQuery {
    pub table: Table,
    pub project: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
    pub keep: Keep,
}

/// The dimensions of the main rollups a query groups by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    pub project: bool,
    pub key: bool,
    pub model: bool,
    pub provider: bool,
    pub route: bool,
}

/// Which statuses the request log shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    /// `2xx`, `4xx`, `5xx`: the hundred.
    Class(u16),
    /// Every status from 400.
    Errors,
}

/// A page of the request log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogQuery {
    pub project: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The cursor: records strictly older than this (time, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
    pub status: Option<StatusFilter>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub key: Option<Uuid>,
    pub user: Option<String>,
    pub tag: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    fn step(self) -> TimeDelta {
        match self {
            Interval::Minute => TimeDelta::minutes(1),
            Interval::Hour => TimeDelta::hours(1),
            Interval::Day => TimeDelta::days(1),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Project,
    Key,
    Model,
    Provider,
    Route,
    User,
    Tag(String),
}

impl GroupBy {
    fn name(&self) -> String {
        match self {
            GroupBy::Project => "project".into(),
            GroupBy::Key => "key".into(),
            GroupBy::Model => "model".into(),
            GroupBy::Provider => "provider".into(),
            GroupBy::Route => "route".into(),
            GroupBy::User => "user".into(),
            GroupBy::Tag(t) => format!("tag:{t}"),
        }
    }

    fn value(&self, r: &Row) -> String {
        match self {
            GroupBy::Project => r.project.to_string(),
            GroupBy::Key => r.key.to_string(),
            GroupBy::Model => r.model.clone(),
            GroupBy::Provider => r.provider.clone(),
            GroupBy::Route => r.route.clone(),
            GroupBy::User | GroupBy::Tag(_) => r.label.clone(),
        }
    }
}

/// A usage query, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageParams {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
    pub group_by: Vec<GroupBy>,
    /// Groups shown, by cost; the rest are summed into one `(other)` group.
    pub limit: usize,
    /// Whether the answer carries the series (`series=false`: totals and groups only, which is
    /// what a breakdown table needs over a long range).
    pub series: bool,
}

/// Groups a usage answer shows unless asked otherwise, and at most.
pub const GROUPS_DEFAULT: usize = 100;
pub const GROUPS_MAX: usize = 10_000;
/// The label of the group the groups past `limit` are summed into.
pub const OTHER: &str = "(other)";

/// Longest range of a per-minute query.
const MAX_MINUTE_RANGE: TimeDelta = TimeDelta::hours(48);
/// Longest range of any query.
const MAX_RANGE: TimeDelta = TimeDelta::days(400);

fn time(
    p: &HashMap<String, String>,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<DateTime<Utc>> {
    let v = p.get(name)?;
    match DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => match v
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
        {
            Some(t) => Some(t),
            None => {
                problems.push(format!(
                    "'{name}' must be an RFC 3339 time (2026-11-30T00:00:00Z) or Unix seconds"
                ));
                None
            }
        },
    }
}

/// Parses `from`, `to` (default: the last 24 hours), `interval` (`minute`, `hour` (default),
/// `day`), `group_by` (comma-separated: `model`, `key`, `provider`, `route`, `user`,
/// `tag:NAME`, and `project` for the operator's view), `limit` and `series` (`true` (default)
/// or `false`).
pub fn parse_usage(
    p: &HashMap<String, String>,
    now: DateTime<Utc>,
    operator_view: bool,
) -> Result<UsageParams, Vec<String>> {
    let mut problems = vec![];
    let to = time(p, "to", &mut problems).unwrap_or(now);
    let from = time(p, "from", &mut problems).unwrap_or(to - TimeDelta::hours(24));
    let interval = match p.get("interval").map(String::as_str) {
        None | Some("hour") => Interval::Hour,
        Some("minute") => Interval::Minute,
        Some("day") => Interval::Day,
        Some(other) => {
            problems.push(format!(
                "'interval' must be minute, hour or day, not '{other}'"
            ));
            Interval::Hour
        }
    };
    let mut group_by = vec![];
    for g in p
        .get("group_by")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        group_by.push(match g {
            "project" if operator_view => GroupBy::Project,
            "key" => GroupBy::Key,
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "route" => GroupBy::Route,
            "user" => GroupBy::User,
            t if t.starts_with("tag:") && t.len() > 4 => GroupBy::Tag(t[4..].to_string()),
            other => {
                problems.push(format!(
                    "cannot group by '{other}' (model, key, provider, route, user, tag:NAME{})",
                    if operator_view { ", project" } else { "" }
                ));
                continue;
            }
        });
    }
    let special = group_by
        .iter()
        .filter(|g| matches!(g, GroupBy::User | GroupBy::Tag(_)))
        .count();
    if special > 0 && group_by.len() > 1 + usize::from(group_by.contains(&GroupBy::Project)) {
        problems.push("'user' and 'tag:NAME' are grouped alone (or with 'project')".into());
    }
    if from >= to {
        problems.push("'from' must be before 'to'".into());
    } else if to - from > MAX_RANGE {
        problems.push("a usage query covers at most 400 days".into());
    } else if interval == Interval::Minute && to - from > MAX_MINUTE_RANGE {
        problems.push("per-minute usage covers at most 48 hours; use interval=hour".into());
    }
    if special > 0 && interval == Interval::Minute {
        problems.push("usage by user or tag is kept hourly: use interval=hour or day".into());
    }
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => GROUPS_DEFAULT,
        Some(Ok(n)) if (1..=GROUPS_MAX).contains(&n) => n,
        Some(_) => {
            problems.push(format!("'limit' must be 1 to {GROUPS_MAX}"));
            GROUPS_DEFAULT
        }
    };
    let series = match p.get("series").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            problems.push(format!("'series' must be true or false, not '{other}'"));
            true
        }
    };
    // By day, a query covers whole UTC days: its first and last points are whole days.
    let (from, to) = match interval {
        Interval::Day => (floor_day(from), ceil_day(to)),
        _ => (from, to),
    };
    if problems.is_empty() {
        Ok(UsageParams {
            from,
            to,
            interval,
            group_by,
            limit,
            series,
        })
    } else {
        Err(problems)
    }
}

fn floor_day(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::days(1)).unwrap_or(t)
}

fn ceil_day(t: DateTime<Utc>) -> DateTime<Utc> {
    let f = floor_day(t);
    if f < t {
        f + TimeDelta::days(1)
    } else {
        f
    }
}

impl UsageParams {
    /// The rollups this query reads.
    pub fn rows(&self, project: Option<Uuid>) -> RowQuery {
        let table = self
            .group_by
            .iter()
            .find_map(|g| match g {
                GroupBy::User => Some(Table::User),
                GroupBy::Tag(t) => Some(Table::Tag(t.clone())),
                _ => None,
            })
            .unwrap_or(match self.interval {
                Interval::Minute => Table::Minute,
                _ => Table::Hour,
            });
        let step = match table {
            Table::Minute => TimeDelta::minutes(1),
            _ => TimeDelta::hours(1),
        };
        let has = |g: GroupBy| self.group_by.contains(&g);
        RowQuery {
            table,
            project,
            from: self.from.duration_trunc(step).unwrap_or(self.from),
            to: self.to,
            interval: self.interval,
            keep: Keep {
                project: has(GroupBy::Project),
                key: has(GroupBy::Key),
                model: has(GroupBy::Model),
                provider: has(GroupBy::Provider),
                route: has(GroupBy::Route),
            },
        }
    }
}

/// What a group or a point in time adds up to, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub requests: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub tokens: Tokens,
    /// Decimal, in the currency; of the priced requests.
    pub cost: String,
    pub cost_micros: i64,
    /// Requests of models without a price (their cost is not in `cost`).
    pub unpriced_requests: i64,
    /// Requests whose usage the gateway estimated.
    pub estimated_requests: i64,
    pub latency_ms: Latency,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub total: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub avg: Option<f64>,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

/// Micro-units as a decimal amount: `1234567` → `"1.234567"`.
pub fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

impl Figures {
    pub fn of(s: &Sums) -> Figures {
        Figures {
            requests: s.requests,
            errors: s.errors,
            error_rate: if s.requests > 0 {
                s.errors as f64 / s.requests as f64
            } else {
                0.0
            },
            tokens: Tokens {
                input: s.input,
                output: s.output,
                cache_read: s.cache_read,
                cache_write: s.cache_write,
                reasoning: s.reasoning,
                total: s.input + s.output + s.cache_read + s.cache_write,
            },
            cost: money(s.cost),
            cost_micros: s.cost,
            unpriced_requests: s.unpriced,
            estimated_requests: s.estimated,
            latency_ms: Latency {
                avg: (s.requests > 0).then(|| s.latency_us as f64 / s.requests as f64 / 1000.0),
                p50: s.latency_quantile_ms(0.5),
                p95: s.latency_quantile_ms(0.95),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub time: String,
    pub group: BTreeMap<String, String>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub group: BTreeMap<String, String>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The answer to a usage query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub interval: &'static str,
    pub group_by: Vec<String>,
    pub currency: &'static str,
    pub totals: Figures,
    /// Every group's figures over the whole range, largest cost first: the first `limit`, then
    /// (when there are more) `(other)`, their sum.
    pub groups: Vec<Group>,
    /// How many groups were summed into `(other)`.
    pub other_groups: usize,
    /// Per interval and group, oldest first.
    pub series: Vec<Point>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Merges rollup rows into the query's interval and grouping.
pub fn report(params: &UsageParams, rows: &[Row]) -> Report {
    let mut totals = Sums::default();
    let mut groups: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let mut series: BTreeMap<(DateTime<Utc>, Vec<String>), Sums> = BTreeMap::new();
    let step = params.interval.step();
    let first = params.rows(None).from;
    let first = first.duration_trunc(step).unwrap_or(first);
    for r in rows {
        if r.bucket < first || r.bucket >= params.to {
            continue;
        }
        let key: Vec<String> = params.group_by.iter().map(|g| g.value(r)).collect();
        let t = r.bucket.duration_trunc(step).unwrap_or(r.bucket);
        totals.add(&r.sums);
        groups.entry(key.clone()).or_default().add(&r.sums);
        if params.series {
            series.entry((t, key)).or_default().add(&r.sums);
        }
    }
    let names: Vec<String> = params.group_by.iter().map(GroupBy::name).collect();
    let label = |key: &[String]| -> BTreeMap<String, String> {
        names.iter().cloned().zip(key.iter().cloned()).collect()
    };
    let mut ranked: Vec<(Vec<String>, Sums)> = groups.into_iter().collect();
    ranked.sort_by_key(|g| std::cmp::Reverse((g.1.cost, g.1.requests)));
    let other_groups = ranked.len().saturating_sub(params.limit);
    let other: Vec<String> = names.iter().map(|_| OTHER.to_string()).collect();
    let mut shown: Vec<(Vec<String>, Sums)> =
        ranked.drain(..ranked.len().min(params.limit)).collect();
    if other_groups > 0 {
        let mut rest = Sums::default();
        for (_, s) in &ranked {
            rest.add(s);
        }
        shown.push((other.clone(), rest));
        let kept: std::collections::HashSet<&Vec<String>> = shown.iter().map(|(k, _)| k).collect();
        let mut merged: BTreeMap<(DateTime<Utc>, Vec<String>), Sums> = BTreeMap::new();
        for ((t, k), s) in series {
            let k = if kept.contains(&k) { k } else { other.clone() };
            merged.entry((t, k)).or_default().add(&s);
        }
        series = merged;
    }
    Report {
        from: ts(params.from),
        to: ts(params.to),
        interval: params.interval.name(),
        group_by: names.clone(),
        currency: "USD",
        totals: Figures::of(&totals),
        groups: shown
            .iter()
            .map(|(k, s)| Group {
                group: label(k),
                figures: Figures::of(s),
            })
            .collect(),
        other_groups,
        series: series
            .into_iter()
            .map(|((t, k), s)| Point {
                time: ts(t),
                group: label(&k),
                figures: Figures::of(&s),
            })
            .collect(),
    }
}

/// A report's series as CSV.
pub fn report_csv(r: &Report) -> String {
    let mut out = String::from("time");
    for g in &r.group_by {
        out.push(',');
        out.push_str(&csv_cell(g));
    }
    out.push_str(",requests,errors,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,cost,unpriced_requests,estimated_requests,latency_p50_ms,latency_p95_ms\n");
    for p in &r.series {
        let f = &p.figures;
        out.push_str(&p.time);
        for g in &r.group_by {
            out.push(',');
            out.push_str(&csv_cell(p.group.get(g).map(String::as_str).unwrap_or("")));
        }
        out.push_str(&format!(
            ",{},{},{},{},{},{},{},{},{},{},{},{}\n",
            f.requests,
            f.errors,
            f.tokens.input,
            f.tokens.output,
            f.tokens.cache_read,
            f.tokens.cache_write,
            f.tokens.reasoning,
            f.cost,
            f.unpriced_requests,
            f.estimated_requests,
            f.latency_ms.p50.map(|v| v.to_string()).unwrap_or_default(),
            f.latency_ms.p95.map(|v| v.to_string()).unwrap_or_default(),
        ));
    }
    out
}

/// A CSV cell, quoted when it must be; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
pub fn csv_cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// Largest page of the request log.
pub const MAX_PAGE: u32 = 500;

/// A cursor: the (time, id) of the last record of a page.
pub fn cursor(time: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{id}", time.timestamp_micros()))
}

fn parse_cursor(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (t, id) = raw.split_once(':')?;
    Some((
        DateTime::from_timestamp_micros(t.parse().ok()?)?,
        id.parse().ok()?,
    ))
}

/// Parses the request log's parameters: `limit` (50, at most 500), `cursor`, `from`, `to`,
/// `status` (`200`, `5xx`, `error`), `model`, `provider`, `key`, `user`, `tag` (`NAME:VALUE`).
pub fn parse_log(
    p: &HashMap<String, String>,
    project: Option<Uuid>,
) -> Result<LogQuery, Vec<String>> {
    let mut problems = vec![];
    let limit = match p.get("limit").map(|l| l.parse::<u32>()) {
        None => 50,
        Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            problems.push(format!("'limit' must be 1 to {MAX_PAGE}"));
            50
        }
    };
    let before = match p.get("cursor") {
        None => None,
        Some(c) => match parse_cursor(c) {
            Some(b) => Some(b),
            None => {
                problems.push("'cursor' is not one this API gave".into());
                None
            }
        },
    };
    let status = match p.get("status").map(String::as_str) {
        None => None,
        Some("error" | "errors") => Some(StatusFilter::Errors),
        Some(s) if s.len() == 3 && s.ends_with("xx") => match s[..1].parse::<u16>() {
            Ok(c @ 1..=5) => Some(StatusFilter::Class(c * 100)),
            _ => {
                problems.push(format!("unknown status filter '{s}'"));
                None
            }
        },
        Some(s) => match s.parse::<u16>() {
            Ok(c @ 100..=599) => Some(StatusFilter::Exact(c)),
            _ => {
                problems.push(format!(
                    "'status' must be a status (200), a class (5xx) or 'error', not '{s}'"
                ));
                None
            }
        },
    };
    let key = match p.get("key").map(|k| k.parse::<Uuid>()) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(_)) => {
            problems.push("'key' must be a key id".into());
            None
        }
    };
    let tag = match p.get("tag") {
        None => None,
        Some(t) => match t.split_once(':') {
            Some((n, v)) if !n.is_empty() => Some((n.to_string(), v.to_string())),
            _ => {
                problems.push("'tag' must be NAME:VALUE".into());
                None
            }
        },
    };
    let q = LogQuery {
        project,
        from: time(p, "from", &mut problems),
        to: time(p, "to", &mut problems),
        before,
        limit,
        status,
        model: p.get("model").cloned(),
        provider: p.get("provider").cloned(),
        key,
        user: p.get("user").cloned(),
        tag,
    };
    if problems.is_empty() {
        Ok(q)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000, 0).expect("time")
    }

    #[test]
    fn usage_parameters_are_checked_all_at_once() {
        let ok = parse_usage(&params(&[("group_by", "model,key")]), now(), false).expect("ok");
        assert_eq!(ok.to - ok.from, TimeDelta::hours(24));
        assert_eq!(ok.group_by, vec![GroupBy::Model, GroupBy::Key]);
        assert_eq!(ok.rows(None).table, Table::Hour);
        let e = parse_usage(
            &params(&[
                ("interval", "week"),
                ("group_by", "model,colour,project"),
                ("from", "yesterday"),
            ]),
            now(),
            false,
        )
        .expect_err("problems");
        assert_eq!(e.len(), 4, "{e:?}");
        let e = parse_usage(
            &params(&[("interval", "minute"), ("from", "2026-11-01T00:00:00Z")]),
            now(),
            false,
        )
        .expect_err("too long for minutes");
        assert!(e[0].contains("48 hours"), "{e:?}");
        let e = parse_usage(&params(&[("group_by", "user,model")]), now(), false)
            .expect_err("user alone");
        assert!(e[0].contains("alone"), "{e:?}");
        let t = parse_usage(&params(&[("group_by", "tag:team")]), now(), false).expect("ok");
        assert_eq!(t.rows(None).table, Table::Tag("team".into()));
        assert!(parse_usage(&params(&[("group_by", "project")]), now(), true).is_ok());
    }

    #[test]
    fn rows_merge_into_days_and_groups() {
        let p = parse_usage(
            &params(&[
                ("from", "2026-11-28T00:00:00Z"),
                ("to", "2026-11-30T00:00:00Z"),
                ("interval", "day"),
                ("group_by", "model"),
            ]),
            now(),
            false,
        )
        .expect("ok");
        let row = |hour: i64, model: &str, cost: i64| Row {
            bucket: DateTime::from_timestamp(1_795_824_000 + hour * 3600, 0).expect("t"),
            project: Uuid::nil(),
            key: Uuid::nil(),
            model: model.into(),
            provider: "p".into(),
            route: String::new(),
            label: String::new(),
            sums: Sums {
                requests: 1,
                cost,
                ..Sums::default()
            },
        };
        let rows = vec![
            row(1, "a", 10),
            row(2, "a", 20),
            row(25, "a", 5),
            row(3, "b", 100),
        ];
        let r = report(&p, &rows);
        assert_eq!(r.totals.requests, 4);
        assert_eq!(r.totals.cost, "0.000135");
        assert_eq!(r.groups[0].group["model"], "b", "largest cost first");
        assert_eq!(r.series.len(), 3, "a on two days, b on one");
        assert_eq!(r.series[0].figures.cost_micros, 30);
        let csv = report_csv(&r);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.starts_with("time,model,requests"));
        assert_eq!(r.other_groups, 0);

        // Without the series: the same totals and groups.
        let mut bare = p.clone();
        bare.series = false;
        let b = report(&bare, &rows);
        assert!(b.series.is_empty());
        assert_eq!((b.totals, b.groups), (r.totals.clone(), r.groups.clone()));

        // Past `limit`, groups are summed into `(other)`, in the groups and in the series.
        let mut one = p.clone();
        one.limit = 1;
        let r = report(&one, &[rows.clone(), vec![row(4, "c", 1)]].concat());
        assert_eq!(r.other_groups, 2);
        let names: Vec<&str> = r.groups.iter().map(|g| g.group["model"].as_str()).collect();
        assert_eq!(names, ["b", OTHER]);
        assert_eq!(r.groups[1].figures.cost_micros, 36);
        assert_eq!(r.totals.requests, 5, "totals are whole");
        let other: i64 = r
            .series
            .iter()
            .filter(|pt| pt.group["model"] == OTHER)
            .map(|pt| pt.figures.requests)
            .sum();
        assert_eq!(other, 4);
    }

    #[test]
    fn a_query_by_day_covers_whole_days() {
        let p = parse_usage(
            &params(&[
                ("from", "2026-11-20T07:17:00Z"),
                ("to", "2026-11-24T13:40:00Z"),
                ("interval", "day"),
                ("limit", "7"),
            ]),
            now(),
            false,
        )
        .expect("ok");
        assert_eq!(ts(p.from), "2026-11-20T00:00:00Z");
        assert_eq!(ts(p.to), "2026-11-25T00:00:00Z");
        assert_eq!(p.limit, 7);
        assert!(p.series);
        let e = parse_usage(&params(&[("series", "no")]), now(), false).expect_err("bad");
        assert!(e[0].contains("'series'"), "{e:?}");
        for bad in ["0", "10001", "x"] {
            let e = parse_usage(&params(&[("limit", bad)]), now(), false).expect_err("bad");
            assert!(e[0].contains("'limit'"), "{e:?}");
        }
    }

    #[test]
    fn log_parameters_and_cursors() {
        let id = Uuid::from_u128(9);
        let c = cursor(now(), id);
        let q = parse_log(
            &params(&[
                ("cursor", &c),
                ("status", "5xx"),
                ("tag", "team:a:b"),
                ("limit", "10"),
            ]),
            None,
        )
        .expect("ok");
        assert_eq!(q.before, Some((now(), id)));
        assert_eq!(q.status, Some(StatusFilter::Class(500)));
        assert_eq!(q.tag, Some(("team".into(), "a:b".into())));
        let e = parse_log(
            &params(&[
                ("cursor", "zz"),
                ("status", "7xx"),
                ("limit", "0"),
                ("key", "k"),
            ]),
            None,
        )
        .expect_err("problems");
        assert_eq!(e.len(), 4, "{e:?}");
    }

    #[test]
    fn money_and_csv_cells() {
        assert_eq!(money(0), "0.000000");
        assert_eq!(money(12_345_678), "12.345678");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
    }
}
