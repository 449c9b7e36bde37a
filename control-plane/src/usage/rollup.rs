//! Rollups: what the usage queries read instead of raw records. A batch of newly stored records
//! becomes one row per (bucket, dimensions) to add to the stored rows — never an update per
//! request. Latency is kept as a histogram (`BOUNDS_MS`) so percentiles can be read from sums.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use to11_shared::record::RequestRecord;
use to11_shared::usage::UsageSource;
use uuid::Uuid;

/// Upper bounds (ms) of the latency histogram's buckets; the last bucket is everything above.
pub const BOUNDS_MS: [u64; 16] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 40_000, 60_000, 120_000,
    300_000,
];
/// Buckets of the latency histogram.
pub const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// What rollups add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    /// Micro-units of currency, of the priced requests.
    pub cost: i64,
    /// Requests whose model has no price.
    pub unpriced: i64,
    /// Requests whose usage was estimated.
    pub estimated: i64,
    pub latency_us: i64,
    pub hist: [i64; BUCKETS],
}

impl Sums {
    pub fn of(r: &RequestRecord) -> Sums {
        let u = r.usage.unwrap_or_default();
        let mut hist = [0; BUCKETS];
        let ms = r.latency_us / 1000;
        hist[BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS - 1)] = 1;
        let metered = r.usage.is_some();
        Sums {
            requests: 1,
            errors: i64::from(r.status >= 400),
            input: u.input as i64,
            output: u.output as i64,
            cache_read: u.cache_read as i64,
            cache_write: (u.cache_write + u.cache_write_1h) as i64,
            reasoning: u.reasoning as i64,
            cost: r.cost.unwrap_or(0) as i64,
            unpriced: i64::from(metered && r.cost.is_none()),
            estimated: i64::from(r.usage_source == Some(UsageSource::Estimated)),
            latency_us: r.latency_us as i64,
            hist,
        }
    }

    pub fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.reasoning += o.reasoning;
        self.cost += o.cost;
        self.unpriced += o.unpriced;
        self.estimated += o.estimated;
        self.latency_us += o.latency_us;
        for (a, b) in self.hist.iter_mut().zip(o.hist) {
            *a += b;
        }
    }

    /// The latency (ms) below which `q` of the requests fall, from the histogram (the upper
    /// bound of the bucket the quantile falls in; the last bucket reports its lower bound).
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let total: i64 = self.hist.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(*BOUNDS_MS.get(i).unwrap_or(&BOUNDS_MS[BUCKETS - 2]));
            }
        }
        None
    }
}

/// The dimensions of the main rollups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims {
    pub project: Uuid,
    pub key: Uuid,
    /// The upstream model (the requested one when no upstream answered).
    pub model: String,
    pub provider: String,
    pub route: String,
}

impl Dims {
    pub fn of(r: &RequestRecord) -> Dims {
        Dims {
            project: r.project,
            key: r.key,
            model: r.model.clone().unwrap_or_else(|| r.requested_model.clone()),
            provider: r.provider.clone().unwrap_or_default(),
            route: r.route.clone().unwrap_or_default(),
        }
    }
}

/// The rollup rows a batch adds.
#[derive(Debug, Default, PartialEq)]
pub struct Rollups {
    pub minute: Vec<(DateTime<Utc>, Dims, Sums)>,
    pub hour: Vec<(DateTime<Utc>, Dims, Sums)>,
    /// Per end user, hourly.
    pub user: Vec<(DateTime<Utc>, Uuid, String, Sums)>,
    /// Per tag name and value, hourly.
    pub tag: Vec<(DateTime<Utc>, Uuid, String, String, Sums)>,
    /// `hour`, `user` and `tag` by day (UTC), for the stores that keep day rollups: a query of
    /// many days reads a row per day instead of 24.
    pub day: Vec<(DateTime<Utc>, Dims, Sums)>,
    pub day_user: Vec<(DateTime<Utc>, Uuid, String, Sums)>,
    pub day_tag: Vec<(DateTime<Utc>, Uuid, String, String, Sums)>,
}

/// Rows summed by their key, in a stable order (so concurrent writers lock rows in the same
/// order).
fn summed<K: Ord + std::hash::Hash + Eq>(rows: impl Iterator<Item = (K, Sums)>) -> Vec<(K, Sums)> {
    let mut m: HashMap<K, Sums> = HashMap::new();
    for (k, s) in rows {
        m.entry(k).or_default().add(&s);
    }
    let mut out: Vec<(K, Sums)> = m.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn floor(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    t.duration_trunc(step).unwrap_or(t)
}

/// Aggregates `records` into rollup rows.
pub fn rollups(records: &[RequestRecord]) -> Rollups {
    let (hour_step, day_step) = (TimeDelta::hours(1), TimeDelta::days(1));
    let minute = summed(records.iter().map(|r| {
        let m = floor(r.time, TimeDelta::minutes(1));
        ((m, Dims::of(r)), Sums::of(r))
    }));
    let hour = summed(
        minute
            .iter()
            .map(|((t, d), s)| ((floor(*t, hour_step), d.clone()), *s)),
    );
    let user = summed(records.iter().filter_map(|r| {
        let u = r.user.clone()?;
        Some(((floor(r.time, hour_step), r.project, u), Sums::of(r)))
    }));
    let tag = summed(records.iter().flat_map(|r| {
        let h = floor(r.time, hour_step);
        r.tags
            .iter()
            .map(move |(k, v)| ((h, r.project, k.clone(), v.clone()), Sums::of(r)))
    }));
    let day = summed(
        hour.iter()
            .map(|((t, d), s)| ((floor(*t, day_step), d.clone()), *s)),
    );
    let day_user = summed(
        user.iter()
            .map(|((t, p, u), s)| ((floor(*t, day_step), *p, u.clone()), *s)),
    );
    let day_tag = summed(
        tag.iter()
            .map(|((t, p, k, v), s)| ((floor(*t, day_step), *p, k.clone(), v.clone()), *s)),
    );
    Rollups {
        minute: minute.into_iter().map(|((t, d), s)| (t, d, s)).collect(),
        hour: hour.into_iter().map(|((t, d), s)| (t, d, s)).collect(),
        user: user
            .into_iter()
            .map(|((t, p, u), s)| (t, p, u, s))
            .collect(),
        tag: tag
            .into_iter()
            .map(|((t, p, k, v), s)| (t, p, k, v, s))
            .collect(),
        day: day.into_iter().map(|((t, d), s)| (t, d, s)).collect(),
        day_user: day_user
            .into_iter()
            .map(|((t, p, u), s)| (t, p, u, s))
            .collect(),
        day_tag: day_tag
            .into_iter()
            .map(|((t, p, k, v), s)| (t, p, k, v, s))
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use to11_shared::usage::Usage;

    pub(crate) fn record(id: u128, secs: i64, model: &str, status: u16, ms: u64) -> RequestRecord {
        RequestRecord {
            id: Uuid::from_u128(id),
            time: DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time"),
            project: Uuid::from_u128(1),
            key: Uuid::from_u128(2),
            surface: "chat".into(),
            requested_model: model.into(),
            layer: "provider".into(),
            function: None,
            route: None,
            provider: Some("openai".into()),
            provider_kind: Some("openai".into()),
            model: Some(model.into()),
            stream: false,
            status,
            error: None,
            attempts: 1,
            failed: vec![],
            latency_us: ms * 1000,
            ttfb_us: None,
            usage: Some(Usage {
                input: 10,
                output: 5,
                cache_read: 2,
                ..Usage::default()
            }),
            usage_source: Some(UsageSource::Reported),
            cancelled: false,
            cost: Some(7),
            user: Some("u1".into()),
            tags: BTreeMap::from([("team".to_string(), "a".to_string())]),
        }
    }

    #[test]
    fn a_batch_sums_per_bucket_and_dimension() {
        let recs = vec![
            record(1, 0, "m1", 200, 40),
            record(2, 10, "m1", 500, 600),
            record(3, 70, "m1", 200, 3),
            record(4, 5, "m2", 200, 40),
        ];
        let r = rollups(&recs);
        assert_eq!(r.minute.len(), 3, "m1 in two minutes, m2 in one");
        assert_eq!(r.hour.len(), 2, "m1 and m2 in one hour");
        let m1 = r.hour.iter().find(|(_, d, _)| d.model == "m1").expect("m1");
        assert_eq!(
            (m1.2.requests, m1.2.errors, m1.2.input, m1.2.cost),
            (3, 1, 30, 21)
        );
        assert_eq!(m1.2.latency_quantile_ms(0.5), Some(50));
        assert_eq!(m1.2.latency_quantile_ms(0.95), Some(1000));
        let total: i64 = r.minute.iter().map(|(_, _, s)| s.requests).sum();
        assert_eq!(total, 4, "every record in exactly one minute row");
        assert_eq!(r.user.len(), 1);
        assert_eq!(r.tag[0].4.requests, 4);
        assert_eq!(r.day.len(), 2, "m1 and m2 in one day");
        assert_eq!(r.day_user[0].3.requests, 4);
        assert_eq!(r.day_tag[0].4.requests, 4);
        let late = record(5, 86_400, "m1", 200, 40);
        let two_days = rollups(&[recs[0].clone(), late]);
        assert_eq!(two_days.day.len(), 2, "a row per day");
    }
}
