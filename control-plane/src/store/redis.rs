//! Redis layout (all keys under a configurable prefix, default `to11:`):
//! - `version`: INCR counter of configuration versions (shared by every control plane, so
//!   versions are unique and increase across instances);
//! - `projects`: set of project ids;
//! - `state:{id}`: the project's full state (JSON; credentials sealed, keys hashed);
//! - `slugs`: hash of slug → project id, so a slug is unique across control planes;
//! - `snapshot:{id}` and `snapshot-index` (id → version): what replicas read (see `shared::bus`);
//!   the index's version is also what a commit compares and sets;
//! - channel `changes`: notifications (replicas and the other control planes follow them);
//! - `epoch`: a random id written when the store is initialised, re-seeded or restored;
//! - `session:{hash}`: a dashboard session (hash of fields, with a TTL), and
//!   `sessions:{principal}`: the principal's sessions (sorted set by creation time);
//! - `audit` and `audit:{id}`: the audit log, operator-wide and per project — capped streams
//!   (`XADD … MAXLEN ~`) of one field `e`, the entry as JSON.
//!
//! A commit is one Lua script that checks the epoch, the project's version (compare-and-set: the
//! version the change was applied to must still be the stored one) and the slug, so state,
//! snapshot, index and slug never disagree, two control planes never overwrite each other's
//! writes, and nothing is written into a store that was flushed or replaced under us.

mod sessions;

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};
use redis::AsyncCommands;
use to11_shared::bus::{changes_channel, epoch_key, snapshot_index_key, snapshot_key, Change};
use to11_shared::model::ProjectState;
use uuid::Uuid;

pub use self::sessions::{NewSession, StoredSession};
use super::{Base, Seed, StoreError};

/// KEYS: epoch, projects, state, snapshot, index, slugs. ARGV: epoch, id, state, snapshot,
/// version, expected version (0: a new project), slug, previous slug ('' for a new project).
const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('EPOCHLOST') end
local cur = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')
if cur ~= tonumber(ARGV[6]) or tonumber(ARGV[5]) <= cur then
  return redis.error_reply('CONFLICT')
end
local owner = redis.call('HGET', KEYS[6], ARGV[7])
if owner and owner ~= ARGV[2] then return redis.error_reply('SLUGTAKEN') end
if ARGV[8] ~= '' and ARGV[8] ~= ARGV[7] and redis.call('HGET', KEYS[6], ARGV[8]) == ARGV[2] then
  redis.call('HDEL', KEYS[6], ARGV[8])
end
redis.call('HSET', KEYS[6], ARGV[7], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
return 1
";

/// KEYS: epoch, projects, state, snapshot, index, slugs. ARGV: epoch, id, expected version, slug.
const DELETE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('EPOCHLOST') end
local cur = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')
if cur ~= tonumber(ARGV[3]) then return redis.error_reply('CONFLICT') end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[2])
if redis.call('HGET', KEYS[6], ARGV[4]) == ARGV[2] then redis.call('HDEL', KEYS[6], ARGV[4]) end
return 1
";

/// Writes a whole configuration under a new epoch. KEYS: epoch, projects, index, slugs, version.
/// ARGV: mode, new epoch, version floor, key prefix, the empty epoch to replace (or ''), then
/// (id, version, slug, state, snapshot) per project. Mode `reseed`: only while the store has no
/// epoch, or still has the given epoch with no project (one a control plane that remembered
/// nothing created over a flushed store): the first control plane to notice re-seeds, the others
/// find the new epoch and reload. Mode `restore`: only while the store holds no project.
const INSTALL: &str = r"
if ARGV[1] == 'reseed' then
  local cur = redis.call('GET', KEYS[1])
  if cur and (cur ~= ARGV[5] or redis.call('SCARD', KEYS[2]) > 0) then return 0 end
end
if ARGV[1] == 'restore' and redis.call('SCARD', KEYS[2]) > 0 then
  return redis.error_reply('NOTEMPTY')
end
local old = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(old) do
  redis.call('DEL', ARGV[4] .. 'state:' .. id, ARGV[4] .. 'snapshot:' .. id)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for i = 6, #ARGV, 5 do
  local id = ARGV[i]
  redis.call('SADD', KEYS[2], id)
  redis.call('HSET', KEYS[3], id, ARGV[i + 1])
  redis.call('HSET', KEYS[4], ARGV[i + 2], id)
  redis.call('SET', ARGV[4] .. 'state:' .. id, ARGV[i + 3])
  redis.call('SET', ARGV[4] .. 'snapshot:' .. id, ARGV[i + 4])
end
local v = tonumber(redis.call('GET', KEYS[5]) or '0')
if v < tonumber(ARGV[3]) then redis.call('SET', KEYS[5], ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// Reserves `n` versions above both the counter and a floor. KEYS: version. ARGV: n, floor.
/// Returns the last version before the reserved ones.
const RESERVE: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < tonumber(ARGV[2]) then v = tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], v + tonumber(ARGV[1]))
return v
";

/// The store's epoch as seen by this control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochState {
    /// The epoch this control plane joined.
    Ours,
    /// None at all: the store was flushed or was never initialised.
    Missing,
    /// Another one: the store was re-seeded by another control plane, restored or replaced.
    Other(String),
}

/// What Redis says of its own persistence (`CONFIG GET`).
#[derive(Clone, Debug, Default)]
pub struct Persistence {
    pub appendonly: Option<String>,
    pub appendfsync: Option<String>,
    pub save: Option<String>,
}

pub struct RedisStore {
    pool: Pool,
    /// For the subscription to the changes channel (a pooled connection cannot subscribe).
    client: redis::Client,
    prefix: String,
    pub op_timeout: Duration,
    epoch: std::sync::Mutex<String>,
    /// The Lua scripts, hashed once.
    commit_script: redis::Script,
    delete_script: redis::Script,
    install_script: redis::Script,
    reserve_script: redis::Script,
}

/// A refusal a script answers with, or the store failing.
fn script_error(e: redis::RedisError) -> StoreError {
    let text = e.to_string();
    if text.contains("EPOCHLOST") {
        StoreError::EpochLost
    } else if text.contains("CONFLICT") {
        StoreError::Conflict
    } else if text.contains("SLUGTAKEN") {
        StoreError::SlugTaken
    } else if text.contains("NOTEMPTY") {
        StoreError::NotEmpty
    } else {
        unavailable(e)
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    pub fn new(url: &str, prefix: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        let mut cfg = Config::from_url(url);
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: 16,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(op_timeout),
                create: Some(op_timeout),
                recycle: Some(op_timeout),
            },
            ..Default::default()
        });
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(unavailable)?;
        Ok(Self {
            pool,
            client: redis::Client::open(url).map_err(unavailable)?,
            prefix: prefix.to_string(),
            op_timeout,
            epoch: std::sync::Mutex::new(String::new()),
            commit_script: redis::Script::new(COMMIT),
            delete_script: redis::Script::new(DELETE),
            install_script: redis::Script::new(INSTALL),
            reserve_script: redis::Script::new(RESERVE),
        })
    }

    /// The epoch this control plane joined ("" before it joined one).
    pub fn epoch(&self) -> String {
        self.epoch.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Joins `epoch`: commits are accepted only while the store carries it.
    pub fn join(&self, epoch: String) {
        if let Ok(mut e) = self.epoch.lock() {
            *e = epoch;
        }
    }

    /// The store's epoch marker, if it has one.
    pub async fn current_epoch(&self) -> Result<Option<String>, StoreError> {
        let mut c = self.conn().await?;
        c.get(epoch_key(&self.prefix)).await.map_err(unavailable)
    }

    /// Creates the epoch if the store has none (another control plane may win the race: then
    /// its epoch is joined), and joins it.
    pub async fn create_epoch(&self) -> Result<String, StoreError> {
        let mut c = self.conn().await?;
        let key = epoch_key(&self.prefix);
        let fresh = uuid::Uuid::new_v4().to_string();
        let _: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&fresh)
            .arg("NX")
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        let current: String = c.get(&key).await.map_err(unavailable)?;
        self.join(current.clone());
        Ok(current)
    }

    pub async fn epoch_state(&self) -> Result<EpochState, StoreError> {
        Ok(match self.current_epoch().await? {
            None => EpochState::Missing,
            Some(e) if e == self.epoch() => EpochState::Ours,
            Some(e) => EpochState::Other(e),
        })
    }

    /// Writes `seeds` as the whole configuration under a new epoch (see `INSTALL`), with the
    /// version counter at least `floor`. `Ok(false)`: a re-seed found an epoch already there.
    pub async fn install(
        &self,
        restore: bool,
        replacing: Option<&str>,
        seeds: &[Seed],
        floor: u64,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let fresh = uuid::Uuid::new_v4().to_string();
        let mut inv = self.install_script.prepare_invoke();
        inv.key(epoch_key(&self.prefix))
            .key(self.key("projects"))
            .key(snapshot_index_key(&self.prefix))
            .key(self.key("slugs"))
            .key(self.key("version"))
            .arg(if restore { "restore" } else { "reseed" })
            .arg(&fresh)
            .arg(floor)
            .arg(&self.prefix)
            .arg(replacing.unwrap_or(""));
        for s in seeds {
            inv.arg(s.project.to_string())
                .arg(s.version)
                .arg(&s.slug)
                .arg(&s.state[..])
                .arg(&s.snapshot[..]);
        }
        let done: i64 = inv.invoke_async(&mut *c).await.map_err(script_error)?;
        if done == 1 {
            self.join(fresh);
        }
        Ok(done == 1)
    }

    /// Reserves `n` versions above the counter and `floor`: the first of them.
    pub async fn reserve_versions(&self, n: u64, floor: u64) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let before: u64 = self
            .reserve_script
            .key(self.key("version"))
            .arg(n)
            .arg(floor)
            .invoke_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(before + 1)
    }

    /// The epoch and every project's version, read together.
    pub async fn index(&self) -> Result<(Option<String>, HashMap<Uuid, u64>), StoreError> {
        let mut c = self.conn().await?;
        let (epoch, raw): (Option<String>, HashMap<String, u64>) = redis::pipe()
            .atomic()
            .get(epoch_key(&self.prefix))
            .hgetall(snapshot_index_key(&self.prefix))
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        let versions = raw
            .into_iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
            .collect();
        Ok((epoch, versions))
    }

    /// Records the slugs of projects stored before the slug index existed (a store written by an
    /// older control plane); a slug already indexed to another project is reported.
    pub async fn index_slugs(&self, slugs: &[(String, Uuid)]) -> Result<(), StoreError> {
        if slugs.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let key = self.key("slugs");
        let mut pipe = redis::pipe();
        for (slug, id) in slugs {
            pipe.hset_nx(&key, slug, id.to_string()).ignore();
        }
        let () = pipe.query_async(&mut *c).await.map_err(unavailable)?;
        let owners: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(slugs.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        for ((slug, id), owner) in slugs.iter().zip(owners) {
            if owner.as_deref() != Some(id.to_string().as_str()) {
                tracing::warn!(%slug, project = %id, "two projects have the same slug; rename one");
            }
        }
        Ok(())
    }

    /// Redis's persistence settings, `None` where `CONFIG GET` is refused (managed Redis).
    pub async fn persistence(&self) -> Result<Persistence, StoreError> {
        let mut c = self.conn().await?;
        let mut get = async |name: &str| -> Option<String> {
            let r: redis::RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut *c)
                .await;
            r.ok()?.remove(name)
        };
        Ok(Persistence {
            appendonly: get("appendonly").await,
            appendfsync: get("appendfsync").await,
            save: get("save").await,
        })
    }

    /// Follows the changes channel: the stream ends when the subscription is lost.
    pub async fn subscribe(
        &self,
    ) -> Result<futures_util::stream::BoxStream<'static, Change>, StoreError> {
        use futures_util::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await.map_err(unavailable)?;
        pubsub
            .subscribe(changes_channel(&self.prefix))
            .await
            .map_err(unavailable)?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|m| async move {
                let text: String = m.get_payload().ok()?;
                Change::decode(&text)
            })
            .boxed())
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    fn audit_key(&self, project: Option<Uuid>) -> String {
        match project {
            Some(p) => self.key(&format!("audit:{p}")),
            None => self.key("audit"),
        }
    }

    /// Appends an entry (JSON) to the operator-wide stream and, when it concerns a project, to
    /// the project's; each keeps about `max` entries.
    pub async fn append_audit(
        &self,
        json: &str,
        project: Option<Uuid>,
        max: usize,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let keys = std::iter::once(None).chain(project.map(Some));
        for key in keys.map(|p| self.audit_key(p)) {
            pipe.cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max)
                .arg("*")
                .arg("e")
                .arg(json)
                .ignore();
        }
        let () = pipe.query_async(&mut *c).await.map_err(unavailable)?;
        Ok(())
    }

    /// At most `limit` entries (id, JSON) older than `before`, newest first.
    pub async fn read_audit(
        &self,
        project: Option<Uuid>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.conn().await?;
        let end = before.map_or_else(|| "+".to_string(), |b| format!("({b}"));
        let rows: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.audit_key(project))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, mut fields)| {
                let json = (fields.len() == 2).then(|| fields.swap_remove(1))?;
                Some((id, json))
            })
            .collect())
    }

    /// The ids of every stored project.
    pub async fn project_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let mut c = self.conn().await?;
        let ids: Vec<String> = c
            .smembers(self.key("projects"))
            .await
            .map_err(unavailable)?;
        ids.into_iter()
            .map(|id| {
                id.parse()
                    .map_err(|_| StoreError::Corrupt(format!("project id {id:?}")))
            })
            .collect()
    }

    /// The states of `ids` in one round trip (`MGET`); deleted ones are skipped.
    pub async fn load_many(&self, ids: &[Uuid]) -> Result<Vec<ProjectState>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.key(&format!("state:{id}")))
            .collect();
        let mut c = self.conn().await?;
        let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, r) in ids.iter().zip(raw) {
            if let Some(s) = parse_state(*id, r)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub async fn load(&self, project: Uuid) -> Result<Option<ProjectState>, StoreError> {
        let mut c = self.conn().await?;
        let raw: Option<Vec<u8>> = c
            .get(self.key(&format!("state:{project}")))
            .await
            .map_err(unavailable)?;
        parse_state(project, raw)
    }

    /// A project as stored, read together with the epoch: `EpochLost` unless the store still
    /// carries the joined epoch (an emptied store must not read as "project deleted").
    pub async fn load_in_epoch(&self, project: Uuid) -> Result<Option<ProjectState>, StoreError> {
        let mut c = self.conn().await?;
        let (epoch, raw): (Option<String>, Option<Vec<u8>>) = redis::pipe()
            .atomic()
            .get(epoch_key(&self.prefix))
            .get(self.key(&format!("state:{project}")))
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        if epoch.as_deref() != Some(self.epoch().as_str()) {
            return Err(StoreError::EpochLost);
        }
        parse_state(project, raw)
    }

    pub async fn next_version(&self) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        c.incr(self.key("version"), 1u64).await.map_err(unavailable)
    }

    /// One of the per-project scripts with the keys and leading arguments both expect: KEYS
    /// epoch, projects, state, snapshot, index, slugs; ARGV epoch, project id.
    fn project_script<'a>(
        &self,
        script: &'a redis::Script,
        project: &Uuid,
    ) -> redis::ScriptInvocation<'a> {
        let id = project.to_string();
        let mut inv = script.prepare_invoke();
        inv.key(epoch_key(&self.prefix))
            .key(self.key("projects"))
            .key(self.key(&format!("state:{id}")))
            .key(snapshot_key(&self.prefix, project))
            .key(snapshot_index_key(&self.prefix))
            .key(self.key("slugs"))
            .arg(self.epoch())
            .arg(id);
        inv
    }

    /// Stores a project's new state and snapshot if the store still holds the version the change
    /// was applied to (`Conflict` otherwise) and no other project has its slug (`SlugTaken`).
    pub async fn commit(
        &self,
        state: &ProjectState,
        json: &[u8],
        snapshot: &[u8],
        base: &Base,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .project_script(&self.commit_script, &state.project.id)
            .arg(json)
            .arg(snapshot)
            .arg(state.version)
            .arg(base.version)
            .arg(&state.project.slug)
            .arg(base.slug.as_deref().unwrap_or(""))
            .invoke_async(&mut *c)
            .await
            .map_err(script_error)?;
        Ok(())
    }

    /// Deletes a project if the store still holds the version the deletion was decided on.
    pub async fn delete(&self, project: Uuid, base: &Base) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .project_script(&self.delete_script, &project)
            .arg(base.version)
            .arg(base.slug.as_deref().unwrap_or(""))
            .invoke_async(&mut *c)
            .await
            .map_err(script_error)?;
        Ok(())
    }

    pub async fn publish(&self, change: Change) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = c
            .publish(changes_channel(&self.prefix), change.encode())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn parse_state(project: Uuid, raw: Option<Vec<u8>>) -> Result<Option<ProjectState>, StoreError> {
    raw.map(|r| {
        serde_json::from_slice(&r)
            .map_err(|e| StoreError::Corrupt(format!("state of {project}: {e}")))
    })
    .transpose()
}
