//! Redis layout (all keys under a configurable prefix, default `to11:`):
//! - `version`: INCR counter of configuration versions;
//! - `projects`: set of project ids;
//! - `state:{id}`: the project's full state (JSON; credentials sealed, keys hashed);
//! - `snapshot:{id}` and `snapshot-index` (id → version): what replicas read (see `shared::bus`);
//! - channel `changes`: notifications.
//!
//! A commit is one MULTI/EXEC transaction, so state, snapshot and index never disagree.

use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};
use redis::AsyncCommands;
use to11_shared::bus::{changes_channel, snapshot_index_key, snapshot_key, Change};
use to11_shared::model::ProjectState;
use uuid::Uuid;

use super::StoreError;

pub struct RedisStore {
    pool: Pool,
    prefix: String,
    pub op_timeout: Duration,
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
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool.get().await.map_err(unavailable)
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

    pub async fn commit(
        &self,
        project: Uuid,
        version: u64,
        state: &[u8],
        snapshot: &[u8],
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let id = project.to_string();
        let () = redis::pipe()
            .atomic()
            .sadd(self.key("projects"), &id)
            .ignore()
            .set(self.key(&format!("state:{id}")), state)
            .ignore()
            .set(snapshot_key(&self.prefix, &project), snapshot)
            .ignore()
            .hset(snapshot_index_key(&self.prefix), &id, version)
            .ignore()
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn delete(&self, project: Uuid) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let id = project.to_string();
        let () = redis::pipe()
            .atomic()
            .srem(self.key("projects"), &id)
            .ignore()
            .del(self.key(&format!("state:{id}")))
            .ignore()
            .del(snapshot_key(&self.prefix, &project))
            .ignore()
            .hdel(snapshot_index_key(&self.prefix), &id)
            .ignore()
            .query_async(&mut *c)
            .await
            .map_err(unavailable)?;
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
