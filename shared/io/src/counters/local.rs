//! Counters in this process (embedded mode), kept in a file of the data directory.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{grant_size, Add, CounterError, CounterStore, Grant, HOLDER_STALE, MAX_EVENTS};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Value {
    n: i64,
    /// Expiry, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

#[derive(Default)]
struct Table {
    values: HashMap<String, Value>,
    /// Concurrency keys: holder → slots.
    slots: HashMap<String, HashMap<String, u64>>,
    holders: HashMap<String, i64>,
    /// Events with their sequence numbers; those up to `acked` were delivered.
    events: VecDeque<(u64, String)>,
    acked: u64,
    /// The highest sequence number handed out by `claim_events`.
    claimed: u64,
    dirty: bool,
}

/// Counters in this process, for embedded mode (one gateway, so no lease is ever wasted on
/// another replica). Windowed counters are kept in a file (`persist`) so a restart does not
/// forget a month's spend; slots in flight are not (nothing is in flight after a restart).
pub struct LocalCounters {
    table: Mutex<Table>,
    file: Option<PathBuf>,
    now: fn() -> i64,
}

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Saved {
    values: HashMap<String, Value>,
    #[serde(default)]
    events: VecDeque<(u64, String)>,
    #[serde(default)]
    acked: u64,
}

impl LocalCounters {
    /// Counters kept only in memory.
    pub fn in_memory() -> Self {
        LocalCounters {
            table: Mutex::default(),
            file: None,
            now: now_ms,
        }
    }

    /// Counters kept in `file` (read now when it exists; written by `persist`).
    pub fn open(file: PathBuf) -> Result<Self, CounterError> {
        let saved: Saved = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| CounterError(format!("{}: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(CounterError(format!("{}: {e}", file.display()))),
        };
        Ok(LocalCounters {
            table: Mutex::new(Table {
                values: saved.values,
                events: saved.events,
                acked: saved.acked,
                claimed: saved.acked,
                ..Default::default()
            }),
            file: Some(file),
            now: now_ms,
        })
    }

    /// Writes the counters to their file when they changed (atomically: a new file renamed over
    /// the old one).
    pub fn persist(&self) -> Result<(), CounterError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let bytes = {
            let mut t = self.lock();
            if !t.dirty {
                return Ok(());
            }
            t.dirty = false;
            let now = (self.now)();
            t.values.retain(|_, v| v.until.is_none_or(|u| u > now));
            serde_json::to_vec(&Saved {
                values: t.values.clone(),
                events: t.events.clone(),
                acked: t.acked,
            })
            .unwrap_or_default()
        };
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, file))
            .map_err(|e| CounterError(format!("{}: {e}", file.display())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn value(t: &Table, key: &str, now: i64) -> i64 {
        t.values
            .get(key)
            .filter(|v| v.until.is_none_or(|u| u > now))
            .map_or(0, |v| v.n)
    }

    fn add_one(t: &mut Table, key: &str, delta: i64, ttl: Option<u64>, now: i64) -> i64 {
        let n = LocalCounters::value(t, key, now) + delta;
        let until = match t.values.get(key) {
            Some(v) if v.until.is_none_or(|u| u > now) => v.until,
            _ => ttl.map(|s| now + s as i64 * 1000),
        };
        t.values.insert(key.to_string(), Value { n, until });
        t.dirty = true;
        n
    }

    fn live_slots(t: &Table, key: &str, now: i64) -> u64 {
        let stale = HOLDER_STALE.as_millis() as i64;
        t.slots.get(key).map_or(0, |h| {
            h.iter()
                .filter(|(holder, _)| t.holders.get(*holder).is_some_and(|s| now - s < stale))
                .map(|(_, n)| *n)
                .sum()
        })
    }
}

impl CounterStore for LocalCounters {
    fn prefix(&self) -> &str {
        ""
    }

    fn grant<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        ttl_secs: Option<u64>,
    ) -> BoxFuture<'a, Result<Grant, CounterError>> {
        let mut t = self.lock();
        let now = (self.now)();
        let used = LocalCounters::value(&t, key, now).max(0) as u64;
        let granted = grant_size(limit, used, min, want);
        let used = if granted > 0 {
            LocalCounters::add_one(&mut t, key, granted as i64, ttl_secs, now) as u64
        } else {
            used
        };
        futures_util::future::ready(Ok(Grant { granted, used })).boxed()
    }

    fn acquire<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Grant, CounterError>> {
        let mut t = self.lock();
        t.holders.insert(holder.to_string(), now_ms);
        let used = LocalCounters::live_slots(&t, key, now_ms);
        let free = limit.saturating_sub(used);
        let granted = if free < min { 0 } else { want.min(free) };
        if granted > 0 {
            *t.slots
                .entry(key.to_string())
                .or_default()
                .entry(holder.to_string())
                .or_default() += granted;
        }
        futures_util::future::ready(Ok(Grant {
            granted,
            used: used + granted,
        }))
        .boxed()
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        n: u64,
    ) -> BoxFuture<'a, Result<(), CounterError>> {
        let mut t = self.lock();
        if let Some(h) = t.slots.get_mut(key) {
            if let Some(held) = h.get_mut(holder) {
                *held = held.saturating_sub(n);
                if *held == 0 {
                    h.remove(holder);
                }
            }
            if h.is_empty() {
                t.slots.remove(key);
            }
        }
        futures_util::future::ready(Ok(())).boxed()
    }

    fn set_held<'a>(
        &'a self,
        holder: &'a str,
        held: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<(), CounterError>> {
        let mut t = self.lock();
        for (key, n) in held {
            let slots = t.slots.entry(key.clone()).or_default();
            if *n == 0 {
                slots.remove(holder);
            } else {
                slots.insert(holder.to_string(), *n);
            }
        }
        futures_util::future::ready(Ok(())).boxed()
    }

    fn add<'a>(&'a self, adds: &'a [Add]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        let mut t = self.lock();
        let now = (self.now)();
        let out = adds
            .iter()
            .map(|a| LocalCounters::add_one(&mut t, &a.key, a.delta, a.ttl_secs, now))
            .collect();
        futures_util::future::ready(Ok(out)).boxed()
    }

    fn heartbeat<'a>(
        &'a self,
        holder: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, CounterError>> {
        let mut t = self.lock();
        t.holders.insert(holder.to_string(), now_ms);
        let stale = HOLDER_STALE.as_millis() as i64;
        t.holders.retain(|_, s| now_ms - *s < stale);
        futures_util::future::ready(Ok(t.holders.len() as u64)).boxed()
    }

    fn read<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        let t = self.lock();
        let now = (self.now)();
        let out = keys
            .iter()
            .map(|k| LocalCounters::value(&t, k, now))
            .collect();
        futures_util::future::ready(Ok(out)).boxed()
    }

    fn held<'a>(
        &'a self,
        keys: &'a [String],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<u64>, CounterError>> {
        let t = self.lock();
        let out = keys
            .iter()
            .map(|k| LocalCounters::live_slots(&t, k, now_ms))
            .collect();
        futures_util::future::ready(Ok(out)).boxed()
    }

    fn push_event<'a>(&'a self, event: String) -> BoxFuture<'a, Result<(), CounterError>> {
        let mut t = self.lock();
        let seq = t.events.back().map_or(t.acked, |(s, _)| *s) + 1;
        t.events.push_back((seq, event));
        while t.events.len() > MAX_EVENTS {
            t.events.pop_front();
        }
        t.dirty = true;
        futures_util::future::ready(Ok(())).boxed()
    }

    fn events(&self, limit: usize) -> BoxFuture<'_, Result<Vec<String>, CounterError>> {
        let t = self.lock();
        let out = t
            .events
            .iter()
            .rev()
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect();
        futures_util::future::ready(Ok(out)).boxed()
    }

    fn claim_events<'a>(
        &'a self,
        _: &'a str,
        count: usize,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, CounterError>> {
        async move {
            let take = || {
                let mut t = self.lock();
                let from = t.claimed;
                let out: Vec<(String, String)> = t
                    .events
                    .iter()
                    .filter(|(s, _)| *s > from)
                    .take(count)
                    .map(|(s, e)| (s.to_string(), e.clone()))
                    .collect();
                if let Some((last, _)) = out.last() {
                    t.claimed = last.parse().unwrap_or(from);
                }
                out
            };
            let out = take();
            if out.is_empty() {
                tokio::time::sleep(wait.min(Duration::from_millis(250))).await;
                return Ok(take());
            }
            Ok(out)
        }
        .boxed()
    }

    fn ack_events<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), CounterError>> {
        let mut t = self.lock();
        if let Some(max) = ids.iter().filter_map(|i| i.parse::<u64>().ok()).max() {
            t.acked = t.acked.max(max);
            t.dirty = true;
        }
        futures_util::future::ready(Ok(())).boxed()
    }
}
