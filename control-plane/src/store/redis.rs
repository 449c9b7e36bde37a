//! Redis layout (all keys under a configurable prefix, default `to11:`):
//! - `version`: INCR counter of configuration versions;
//! - `projects`: set of project ids;
//! - `state:{id}`: the project's full state (JSON; credentials sealed, keys hashed);
//! - `snapshot:{id}` and `snapshot-index` (id → version): what replicas read (see `shared::bus`);
//! - channel `changes`: notifications.
//!
//! - `epoch`: a random id written when the store is initialised.
//! - `audit` and `audit:{id}`: the audit log, operator-wide and per project — capped streams
//!   (`XADD … MAXLEN ~`) of one field `e`, the entry as JSON.
//!
//! A commit is one Lua script that first checks the epoch, so state, snapshot and index never
//! disagree and nothing is written into a store that was flushed or replaced under us (the
//! registry then re-seeds it from memory).

use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};
use redis::AsyncCommands;
use to11_shared::bus::{changes_channel, epoch_key, snapshot_index_key, snapshot_key, Change};
use to11_shared::model::ProjectState;
use uuid::Uuid;

use super::{Seed, StoreError};

/// KEYS: epoch, projects, state, snapshot, index. ARGV: epoch, id, state, snapshot, version.
const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('EPOCHLOST') end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
return 1
";

/// KEYS: epoch, projects, state, snapshot, index. ARGV: epoch, id.
const DELETE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('EPOCHLOST') end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[2])
return 1
";

pub struct RedisStore {
    pool: Pool,
    prefix: String,
    pub op_timeout: Duration,
    epoch: std::sync::Mutex<String>,
    /// The Lua scripts, hashed once.
    commit_script: redis::Script,
    delete_script: redis::Script,
}

fn epoch_error(e: redis::RedisError) -> StoreError {
    if e.to_string().contains("EPOCHLOST") {
        StoreError::EpochLost
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
            prefix: prefix.to_string(),
            op_timeout,
            epoch: std::sync::Mutex::new(String::new()),
            commit_script: redis::Script::new(COMMIT),
            delete_script: redis::Script::new(DELETE),
        })
    }

    fn epoch(&self) -> String {
        self.epoch.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub async fn join_epoch(&self) -> Result<(), StoreError> {
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
        if let Ok(mut e) = self.epoch.lock() {
            *e = current;
        }
        Ok(())
    }

    pub async fn epoch_intact(&self) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let current: Option<String> = c.get(epoch_key(&self.prefix)).await.map_err(unavailable)?;
        Ok(current.as_deref() == Some(self.epoch().as_str()))
    }

    pub async fn reseed(&self, seeds: &[Seed], max_version: u64) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let fresh = uuid::Uuid::new_v4().to_string();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Drop what a different control plane may have left, then write our model whole.
        pipe.del(self.key("projects")).ignore();
        pipe.del(snapshot_index_key(&self.prefix)).ignore();
        for s in seeds {
            let id = s.project.to_string();
            pipe.sadd(self.key("projects"), &id).ignore();
            pipe.set(self.key(&format!("state:{id}")), &s.state[..])
                .ignore();
            pipe.set(snapshot_key(&self.prefix, &s.project), &s.snapshot[..])
                .ignore();
            pipe.hset(snapshot_index_key(&self.prefix), &id, s.version)
                .ignore();
        }
        // The counter never goes back: versions stay monotonic across the reset.
        let key = self.key("version");
        pipe.cmd("EVAL")
            .arg("local v = tonumber(redis.call('GET', KEYS[1]) or '0'); if v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 1")
            .arg(1)
            .arg(&key)
            .arg(max_version)
            .ignore();
        pipe.set(epoch_key(&self.prefix), &fresh).ignore();
        let () = pipe.query_async(&mut *c).await.map_err(unavailable)?;
        if let Ok(mut e) = self.epoch.lock() {
            *e = fresh;
        }
        Ok(())
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

    pub async fn load_all(&self) -> Result<Vec<ProjectState>, StoreError> {
        let mut c = self.conn().await?;
        let ids: Vec<String> = c
            .smembers(self.key("projects"))
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id: Uuid = id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("project id {id:?}")))?;
            if let Some(s) = self.load(id).await? {
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
        raw.map(|r| {
            serde_json::from_slice(&r)
                .map_err(|e| StoreError::Corrupt(format!("state of {project}: {e}")))
        })
        .transpose()
    }

    pub async fn next_version(&self) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        c.incr(self.key("version"), 1u64).await.map_err(unavailable)
    }

    /// One of the per-project scripts with the keys and leading arguments both expect: KEYS
    /// epoch, projects, state, snapshot, index; ARGV epoch, project id.
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
            .arg(self.epoch())
            .arg(id);
        inv
    }

    pub async fn commit(
        &self,
        project: Uuid,
        version: u64,
        state: &[u8],
        snapshot: &[u8],
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .project_script(&self.commit_script, &project)
            .arg(state)
            .arg(snapshot)
            .arg(version)
            .invoke_async(&mut *c)
            .await
            .map_err(epoch_error)?;
        Ok(())
    }

    pub async fn delete(&self, project: Uuid) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .project_script(&self.delete_script, &project)
            .invoke_async(&mut *c)
            .await
            .map_err(epoch_error)?;
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
