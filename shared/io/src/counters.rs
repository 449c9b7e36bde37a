//! Where usage limits are counted across replicas (`CounterStore`): Redis in a multi-replica
//! deployment (`RedisCounters`), an in-process table in embedded mode (`LocalCounters`, kept in
//! a file of the data directory). Replicas do not count each request here: they lease slices of
//! a limit (`grant`, `acquire`) and report what was used in batches (`add`); the control plane
//! reads the counters to show them.
//!
//! Keys are `to11_shared::limits::CounterId::key`s. A windowed limit has two counters: what was
//! granted (the key itself; admission is checked against it, atomically) and what was used (the
//! key with `:u`, settled after answers; what the API shows). A concurrency limit is a hash of
//! slots held per holder (a gateway worker), where holders that stopped sending heartbeats no
//! longer count.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

#[derive(Debug, thiserror::Error)]
#[error("counter store: {0}")]
pub struct CounterError(pub String);

/// What a grant gave, and the counter after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    /// Everything granted in the window (or slots held by every live holder), this grant
    /// included.
    pub used: u64,
}

/// One settled amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub key: String,
    pub delta: i64,
    pub ttl_secs: Option<u64>,
}

/// A holder not heard from for this long holds nothing.
pub const HOLDER_STALE: Duration = Duration::from_secs(10);
/// Events kept (budget alerts), oldest dropped first.
pub const MAX_EVENTS: usize = 10_000;

pub trait CounterStore: Send + Sync + 'static {
    /// What every key of this store starts with (`CounterId::key`'s prefix).
    fn prefix(&self) -> &str;

    /// Grants at most `want` of what `limit` leaves on `key` this window, and at least `min` or
    /// nothing. Near the limit a grant is at most a quarter of what is left (but never less
    /// than `min`), so slices held by many replicas shrink as a limit runs out.
    fn grant<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        ttl_secs: Option<u64>,
    ) -> BoxFuture<'a, Result<Grant, CounterError>>;

    /// Takes slots of a concurrency limit for `holder`: at most `want`, at least `min` or none.
    /// (`now_ms`, here and in `heartbeat` and `held`, is the caller's clock; Redis judges which
    /// holders are alive by its own, so the gateways' clocks need not agree.)
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Grant, CounterError>>;

    /// Gives back `n` slots `holder` held.
    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        n: u64,
    ) -> BoxFuture<'a, Result<(), CounterError>>;

    /// Sets the slots `holder` holds on each concurrency key (0 removes its entry): what the
    /// holder knows it holds wins over what the store recorded (a release that failed, an
    /// acquisition whose answer was lost, slots admitted while the store was down).
    fn set_held<'a>(
        &'a self,
        holder: &'a str,
        held: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<(), CounterError>>;

    /// Adds each amount; answers each counter after its addition, in order.
    fn add<'a>(&'a self, adds: &'a [Add]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>>;

    /// `holder` is alive at `now_ms`; answers how many holders are.
    fn heartbeat<'a>(
        &'a self,
        holder: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, CounterError>>;

    /// The counters' values (0 for a missing one).
    fn read<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>>;

    /// The slots held on each concurrency key by live holders.
    fn held<'a>(
        &'a self,
        keys: &'a [String],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<u64>, CounterError>>;

    /// Records an event (a JSON object).
    fn push_event<'a>(&'a self, event: String) -> BoxFuture<'a, Result<(), CounterError>>;

    /// The newest events first, at most `limit`.
    fn events(&self, limit: usize) -> BoxFuture<'_, Result<Vec<String>, CounterError>>;

    /// Events not yet delivered, oldest first, at most `count`, each with its id, for
    /// `consumer` (one of the control planes delivering them): new ones, and those another
    /// consumer took over two minutes ago without acknowledging them. Waits up to `wait` for one.
    fn claim_events<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, CounterError>>;

    /// Marks events delivered (or given up on).
    fn ack_events<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), CounterError>>;
}

/// What a grant gives, as pure arithmetic (both stores use it; Redis runs the same rule in Lua).
pub fn grant_size(limit: u64, used: u64, min: u64, want: u64) -> u64 {
    let free = limit.saturating_sub(used);
    if free < min || free == 0 {
        return 0;
    }
    want.min(min.max(free / 4)).min(free).max(min)
}

// ---------------------------------------------------------------------------------------------
// In-process

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

fn now_ms() -> i64 {
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

// ---------------------------------------------------------------------------------------------
// Redis

/// `grant_size` in Lua, atomic with the counter's increment.
const GRANT: &str = r#"
local limit, min, want, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local free = limit - used
if free < min or free <= 0 then return {0, used} end
local g = math.min(want, math.max(min, math.floor(free / 4)), free)
if g < min then g = min end
local after = redis.call('INCRBY', KEYS[1], g)
if ttl > 0 and redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return {g, after}
"#;

/// Slots held by live holders (heartbeat within the stale time), stale holders' slots dropped,
/// then what this holder may take.
const ACQUIRE: &str = r#"
local holder, limit, min, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now, stale = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], 'GT', now, holder)
local fields = redis.call('HGETALL', KEYS[1])
local used = 0
for i = 1, #fields, 2 do
  local seen = redis.call('ZSCORE', KEYS[2], fields[i])
  if seen and now - tonumber(seen) < stale then
    used = used + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
local free = limit - used
if free < min or free <= 0 then return {0, used} end
local g = math.min(want, free)
redis.call('HINCRBY', KEYS[1], holder, g)
return {g, used + g}
"#;

/// A holder's heartbeat, by Redis's clock (the holders' clocks need not agree); long-gone
/// holders dropped; answers the holders alive.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now, stale = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'GT', now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * stale)
return redis.call('ZCOUNT', KEYS[1], now - stale, '+inf')
"#;

const RELEASE: &str = r#"
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"#;

const HELD: &str = r#"
local t = redis.call('TIME')
local now, stale = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(ARGV[2])
local out = {}
for k = 1, #KEYS - 1 do
  local fields = redis.call('HGETALL', KEYS[k])
  local used = 0
  for i = 1, #fields, 2 do
    local seen = redis.call('ZSCORE', KEYS[#KEYS], fields[i])
    if seen and now - tonumber(seen) < stale then used = used + tonumber(fields[i + 1]) end
  end
  out[k] = used
end
return out
"#;

/// Counters in Redis, shared by every replica. Each call is bounded by `timeout`; a broken
/// connection is made again on the next call.
pub struct RedisCounters {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    grant: redis::Script,
    acquire: redis::Script,
    release: redis::Script,
    held: redis::Script,
    heartbeat: redis::Script,
}

impl RedisCounters {
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, CounterError> {
        Ok(RedisCounters {
            client: redis::Client::open(url).map_err(|e| CounterError(e.to_string()))?,
            prefix: prefix.to_string(),
            timeout,
            conn: tokio::sync::Mutex::new(None),
            grant: redis::Script::new(GRANT),
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
            held: redis::Script::new(HELD),
            heartbeat: redis::Script::new(HEARTBEAT),
        })
    }

    fn holders_key(&self) -> String {
        format!("{}lim:holders", self.prefix)
    }

    fn events_key(&self) -> String {
        format!("{}lim:events", self.prefix)
    }

    async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, CounterError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` on a connection within the timeout; on any failure the connection is dropped.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, CounterError>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.conn().await?;
            f(conn).await.map_err(|e| CounterError(e.to_string()))
        };
        let out = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(CounterError(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        if out.is_err() {
            *self.conn.lock().await = None;
        }
        out
    }
}

/// Entries of the events stream, as XAUTOCLAIM and XREADGROUP answer them.
type Entries = Vec<(String, Vec<(String, String)>)>;

/// An entry's id and its event.
fn event((id, fields): (String, Vec<(String, String)>)) -> (String, String) {
    let e = fields
        .into_iter()
        .find(|(k, _)| k == "e")
        .map(|(_, v)| v)
        .unwrap_or_default();
    (id, e)
}

impl RedisCounters {
    /// The delivering control planes' group, made once. It starts at the stream's end: events
    /// recorded before the first control plane delivering them are listed, not sent.
    async fn create_group(&self) {
        let key = self.events_key();
        let _: Result<(), _> = self
            .run(|mut c| async move {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&key)
                    .arg(EVENTS_GROUP)
                    .arg("$")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut c)
                    .await
                    .or_else(|e| match e.code() {
                        Some("BUSYGROUP") => Ok(()),
                        _ => Err(e),
                    })
            })
            .await;
    }

    /// Entries another consumer took two minutes ago and never acknowledged, now `consumer`'s.
    async fn take_over(
        &self,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<(String, String)>, CounterError> {
        let key = self.events_key();
        let (_, stale, _): (String, Entries, Vec<String>) = self
            .run(|mut c| async move {
                redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(EVENTS_GROUP)
                    .arg(consumer)
                    .arg(RECLAIM_AFTER_MS)
                    .arg("0")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(stale.into_iter().map(event).collect())
    }

    /// New entries, waiting up to `wait` for one. XREADGROUP blocks on the server: it gets a
    /// connection of its own, so the shared one is not held up, and a timeout longer than the
    /// wait.
    async fn read_new(
        &self,
        consumer: &str,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<(String, String)>, CounterError> {
        let key = self.events_key();
        let read = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| CounterError(e.to_string()))?;
            let v: Option<Vec<(String, Entries)>> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(EVENTS_GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(wait.as_millis() as u64)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async(&mut conn)
                .await
                .map_err(|e| CounterError(e.to_string()))?;
            Ok::<_, CounterError>(v)
        };
        let v = tokio::time::timeout(wait + self.timeout, read)
            .await
            .map_err(|_| CounterError("no answer to XREADGROUP".into()))??;
        Ok(v.unwrap_or_default()
            .into_iter()
            .flat_map(|(_, entries)| entries.into_iter().map(event))
            .collect())
    }
}

fn pair(v: Vec<i64>) -> Grant {
    Grant {
        granted: v.first().copied().unwrap_or(0).max(0) as u64,
        used: v.get(1).copied().unwrap_or(0).max(0) as u64,
    }
}

impl CounterStore for RedisCounters {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn grant<'a>(
        &'a self,
        key: &'a str,
        limit: u64,
        min: u64,
        want: u64,
        ttl_secs: Option<u64>,
    ) -> BoxFuture<'a, Result<Grant, CounterError>> {
        async move {
            let v: Vec<i64> = self
                .run(|mut c| async move {
                    self.grant
                        .key(key)
                        .arg(limit)
                        .arg(min)
                        .arg(want)
                        .arg(ttl_secs.unwrap_or(0))
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(pair(v))
        }
        .boxed()
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
        async move {
            let holders = self.holders_key();
            let v: Vec<i64> = self
                .run(|mut c| async move {
                    self.acquire
                        .key(key)
                        .key(holders)
                        .arg(holder)
                        .arg(limit)
                        .arg(min)
                        .arg(want)
                        .arg(now_ms)
                        .arg(HOLDER_STALE.as_millis() as i64)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(pair(v))
        }
        .boxed()
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        n: u64,
    ) -> BoxFuture<'a, Result<(), CounterError>> {
        async move {
            let _: i64 = self
                .run(|mut c| async move {
                    self.release
                        .key(key)
                        .arg(holder)
                        .arg(n)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn set_held<'a>(
        &'a self,
        holder: &'a str,
        held: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<(), CounterError>> {
        async move {
            if held.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for (key, n) in held {
                if *n == 0 {
                    pipe.cmd("HDEL").arg(key).arg(holder).ignore();
                } else {
                    pipe.cmd("HSET").arg(key).arg(holder).arg(*n).ignore();
                }
            }
            self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
        }
        .boxed()
    }

    fn add<'a>(&'a self, adds: &'a [Add]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        async move {
            if adds.is_empty() {
                return Ok(vec![]);
            }
            let mut pipe = redis::pipe();
            for a in adds {
                pipe.cmd("INCRBY").arg(&a.key).arg(a.delta);
                if let Some(ttl) = a.ttl_secs {
                    // Only a counter without an expiry gets one (the window's first addition).
                    pipe.cmd("EXPIRE").arg(&a.key).arg(ttl).arg("NX").ignore();
                }
            }
            self.run(|mut c| async move { pipe.query_async(&mut c).await })
                .await
        }
        .boxed()
    }

    fn heartbeat<'a>(
        &'a self,
        holder: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, CounterError>> {
        async move {
            let key = self.holders_key();
            let _ = now_ms; // Redis's own clock decides who is alive
            let live: u64 = self
                .run(|mut c| async move {
                    self.heartbeat
                        .key(key)
                        .arg(holder)
                        .arg(HOLDER_STALE.as_millis() as i64)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(live)
        }
        .boxed()
    }

    fn read<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<i64>, CounterError>> {
        async move {
            if keys.is_empty() {
                return Ok(vec![]);
            }
            let v: Vec<Option<i64>> = self
                .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
                .await?;
            Ok(v.into_iter().map(|n| n.unwrap_or(0)).collect())
        }
        .boxed()
    }

    fn held<'a>(
        &'a self,
        keys: &'a [String],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<u64>, CounterError>> {
        async move {
            if keys.is_empty() {
                return Ok(vec![]);
            }
            let holders = self.holders_key();
            let v: Vec<i64> = self
                .run(|mut c| async move {
                    let mut inv = self.held.prepare_invoke();
                    for k in keys {
                        inv.key(k);
                    }
                    inv.key(holders)
                        .arg(now_ms)
                        .arg(HOLDER_STALE.as_millis() as i64);
                    inv.invoke_async(&mut c).await
                })
                .await?;
            Ok(v.into_iter().map(|n| n.max(0) as u64).collect())
        }
        .boxed()
    }

    fn push_event<'a>(&'a self, event: String) -> BoxFuture<'a, Result<(), CounterError>> {
        async move {
            let key = self.events_key();
            let _: String = self
                .run(|mut c| async move {
                    redis::cmd("XADD")
                        .arg(&key)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(MAX_EVENTS)
                        .arg("*")
                        .arg("e")
                        .arg(event)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn events(&self, limit: usize) -> BoxFuture<'_, Result<Vec<String>, CounterError>> {
        async move {
            let key = self.events_key();
            let entries: Vec<(String, Vec<(String, String)>)> = self
                .run(|mut c| async move {
                    redis::cmd("XREVRANGE")
                        .arg(&key)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(limit)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(entries
                .into_iter()
                .filter_map(|(_, fields)| {
                    fields.into_iter().find(|(k, _)| k == "e").map(|(_, v)| v)
                })
                .collect())
        }
        .boxed()
    }
    fn claim_events<'a>(
        &'a self,
        consumer: &'a str,
        count: usize,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, CounterError>> {
        async move {
            self.create_group().await;
            let stale = self.take_over(consumer, count).await?;
            if !stale.is_empty() {
                return Ok(stale);
            }
            self.read_new(consumer, count, wait).await
        }
        .boxed()
    }

    fn ack_events<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<(), CounterError>> {
        async move {
            if ids.is_empty() {
                return Ok(());
            }
            let key = self.events_key();
            let _: i64 = self
                .run(|mut c| async move {
                    redis::cmd("XACK")
                        .arg(&key)
                        .arg(EVENTS_GROUP)
                        .arg(ids)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        }
        .boxed()
    }
}

/// An event taken by a consumer and not acknowledged for this long is taken over by another:
/// longer than the longest delivery (five attempts of up to 10 s and 15 s of waits).
const RECLAIM_AFTER_MS: u64 = 120_000;

/// The consumer group of the control planes that deliver events (budget alerts to webhooks).
const EVENTS_GROUP: &str = "alerts";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_shrink_near_the_limit_and_never_pass_it() {
        assert_eq!(grant_size(600, 0, 1, 20), 20);
        assert_eq!(grant_size(600, 560, 1, 20), 10, "a quarter of the 40 left");
        assert_eq!(grant_size(600, 598, 1, 20), 1);
        assert_eq!(grant_size(600, 600, 1, 20), 0);
        assert_eq!(grant_size(600, 590, 30, 40), 0, "all of min or nothing");
        assert_eq!(grant_size(600, 500, 30, 40), 30, "min even above a quarter");
        for used in 0..=600 {
            for min in 1..5 {
                let g = grant_size(600, used, min, 50);
                assert!(used + g <= 600);
                assert!(g == 0 || g >= min);
            }
        }
    }

    #[actix_rt::test]
    async fn local_counters_grant_slots_expire_holders_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("to11-counters-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("limits.json");
        let c = LocalCounters::open(file.clone()).unwrap();
        let mut total = 0;
        loop {
            let g = c.grant("k", 100, 1, 30, Some(60)).await.unwrap();
            if g.granted == 0 {
                break;
            }
            total += g.granted;
            assert_eq!(g.used, total);
        }
        assert_eq!(total, 100);
        c.add(&[Add {
            key: "k:u".into(),
            delta: 42,
            ttl_secs: Some(60),
        }])
        .await
        .unwrap();
        let now = now_ms();
        assert_eq!(c.acquire("c", "a", 3, 1, 2, now).await.unwrap().granted, 2);
        assert_eq!(c.acquire("c", "b", 3, 1, 2, now).await.unwrap().granted, 1);
        assert_eq!(c.acquire("c", "b", 3, 1, 1, now).await.unwrap().granted, 0);
        let later = now + HOLDER_STALE.as_millis() as i64 + 1;
        c.heartbeat("b", later).await.unwrap();
        assert_eq!(
            c.acquire("c", "b", 3, 1, 2, later).await.unwrap().granted,
            2,
            "a's slots no longer count once a stopped"
        );
        c.release("c", "b", 3).await.unwrap();
        assert_eq!(c.held(&["c".into()], later).await.unwrap(), vec![0]);
        c.persist().unwrap();
        let again = LocalCounters::open(file).unwrap();
        assert_eq!(
            again.read(&["k".into(), "k:u".into()]).await.unwrap(),
            vec![100, 42]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
