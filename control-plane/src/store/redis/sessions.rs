//! Dashboard sessions in Redis, so that any control plane answers a session another opened.
//! `session:{hash}` is a hash (the signed-in token's keyed hash, the principal, the CSRF token,
//! the creation time) expiring after the idle time, renewed on use up to the lifetime;
//! `sessions:{principal}` (and `sessions:projects` for every project's) are sorted sets of
//! session hashes by creation time, pruned of expired ones, that bound how many a principal (and
//! all projects together) hold.

use std::sync::LazyLock;

use redis::AsyncCommands;

use super::{unavailable, RedisStore};
use crate::store::StoreError;

/// KEYS: session, the principal's set, every project's set (or '' for the operator, who is not
/// counted). ARGV: session hash, token hash, principal, csrf, now ms, lifetime ms, idle ms,
/// per principal, max, prefix. Returns 0 when the table is full, 1 when opened.
static CREATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[5])
local life = tonumber(ARGV[6])
local function prune(z)
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now - life)
  for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
    if redis.call('EXISTS', ARGV[10] .. 'session:' .. m) == 0 then redis.call('ZREM', z, m) end
  end
end
prune(KEYS[2])
local own = redis.call('ZCARD', KEYS[2])
local per = tonumber(ARGV[8])
if own >= per then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, own - per)) do
    redis.call('DEL', ARGV[10] .. 'session:' .. m)
    redis.call('ZREM', KEYS[2], m)
    if KEYS[3] ~= '' then redis.call('ZREM', KEYS[3], m) end
  end
end
if KEYS[3] ~= '' then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[9]) then
    prune(KEYS[3])
    if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[9]) then return 0 end
  end
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], life)
end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'principal', ARGV[3], 'csrf', ARGV[4], 'created', now)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], life)
return 1
",
    )
});

/// KEYS: session. ARGV: now ms, lifetime ms, idle ms. The session's (token, principal, csrf),
/// its idle expiry renewed (never beyond its lifetime); nil when it is over.
static FIND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'token', 'principal', 'csrf', 'created')
if not h[1] or not h[4] then return nil end
local left = tonumber(h[4]) + tonumber(ARGV[2]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return nil
end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[3]), left))
return {h[1], h[2], h[3]}
",
    )
});

/// A session as stored.
pub struct StoredSession {
    pub token: String,
    pub principal: String,
    pub csrf: String,
}

/// How a session is opened.
pub struct NewSession<'a> {
    /// Hex of the SHA-256 of the session id (the id itself is never stored).
    pub id_hash: &'a str,
    /// Hex of the signed-in token's keyed hash.
    pub token: &'a str,
    /// `operator`, or the project's id.
    pub principal: &'a str,
    /// Whether it counts towards `max` (a project's session; the operator's does not).
    pub counted: bool,
    pub csrf: &'a str,
    pub now_ms: u64,
    pub lifetime_ms: u64,
    pub idle_ms: u64,
    pub per_principal: usize,
    pub max: usize,
}

impl RedisStore {
    fn session_key(&self, id_hash: &str) -> String {
        self.key(&format!("session:{id_hash}"))
    }

    /// Opens a session, making room among the principal's own; `false` when every project's
    /// sessions together fill the table.
    pub async fn session_create(&self, s: &NewSession<'_>) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let all = if s.counted {
            self.key("sessions:projects")
        } else {
            String::new()
        };
        let done: i64 = CREATE
            .key(self.session_key(s.id_hash))
            .key(self.key(&format!("sessions:{}", s.principal)))
            .key(all)
            .arg(s.id_hash)
            .arg(s.token)
            .arg(s.principal)
            .arg(s.csrf)
            .arg(s.now_ms)
            .arg(s.lifetime_ms)
            .arg(s.idle_ms)
            .arg(s.per_principal)
            .arg(s.max)
            .arg(&self.prefix)
            .invoke_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    /// The live session with this id hash, its idle expiry renewed.
    pub async fn session_find(
        &self,
        id_hash: &str,
        now_ms: u64,
        lifetime_ms: u64,
        idle_ms: u64,
    ) -> Result<Option<StoredSession>, StoreError> {
        let mut c = self.conn().await?;
        let found: Option<(String, String, String)> = FIND
            .key(self.session_key(id_hash))
            .arg(now_ms)
            .arg(lifetime_ms)
            .arg(idle_ms)
            .invoke_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(found.map(|(token, principal, csrf)| StoredSession {
            token,
            principal,
            csrf,
        }))
    }

    pub async fn session_remove(&self, id_hash: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = c
            .del(self.session_key(id_hash))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
