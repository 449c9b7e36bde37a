//! Counters in Redis, shared by every replica: the Lua scripts that grant and hold atomically,
//! and the events stream's consumer group.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{Add, CounterError, CounterStore, Grant, HOLDER_STALE, MAX_EVENTS};

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
    redis: crate::redis_conn::LazyRedis,
    prefix: String,
    timeout: Duration,
    grant: redis::Script,
    acquire: redis::Script,
    release: redis::Script,
    held: redis::Script,
    heartbeat: redis::Script,
}

impl RedisCounters {
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, CounterError> {
        Ok(RedisCounters {
            redis: crate::redis_conn::LazyRedis::open(url)
                .map_err(|e| CounterError(e.to_string()))?,
            prefix: prefix.to_string(),
            timeout,
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

    /// Runs `f` on a connection within the timeout; on any failure the connection is dropped.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, CounterError>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self
                .redis
                .get()
                .await
                .map_err(|e| CounterError(e.to_string()))?;
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
            self.redis.reset().await;
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
                .redis
                .client()
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
