//! Persistence. The only code that knows Redis commands or file layout. A commit stores a
//! project's state and its sealed snapshot together (atomically), then the caller publishes.
//!
//! Two back ends: Redis for multi-replica deployments, and a local directory for embedded mode.

pub mod local;
pub mod redis;
pub mod replicas;

use std::time::Duration;

use to11_shared::bus::Change;
use to11_shared::model::ProjectState;
use uuid::Uuid;

use crate::audit::{Entry, Page, Scope};

/// Entries each audit log (operator-wide, and each project's) keeps, about.
pub const AUDIT_MAX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store timed out")]
    Timeout,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the configuration store was flushed or replaced (its epoch marker is gone)")]
    EpochLost,
}

/// One project as written when a store is re-seeded.
pub struct Seed {
    pub project: Uuid,
    pub version: u64,
    pub state: Vec<u8>,
    pub snapshot: Vec<u8>,
}

pub enum Store {
    Redis(redis::RedisStore),
    Local(local::LocalStore),
}

async fn timed<T>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(d, f)
        .await
        .unwrap_or(Err(StoreError::Timeout))
}

impl Store {
    fn op_timeout(&self) -> Duration {
        match self {
            Store::Redis(r) => r.op_timeout,
            Store::Local(_) => Duration::from_secs(30),
        }
    }

    /// Joins the store's epoch, creating it if the store has none. Called once at start-up.
    pub async fn join_epoch(&self) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.join_epoch().await,
                Store::Local(_) => Ok(()),
            }
        })
        .await
    }

    /// Whether the store still carries the epoch this control plane joined.
    pub async fn epoch_intact(&self) -> Result<bool, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.epoch_intact().await,
                Store::Local(_) => Ok(true),
            }
        })
        .await
    }

    /// Writes a new epoch and every project (a store that was flushed or replaced), with the
    /// version counter at least `max_version` so versions stay monotonic.
    pub async fn reseed(&self, seeds: &[Seed], max_version: u64) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.reseed(seeds, max_version).await,
                Store::Local(_) => Ok(()),
            }
        })
        .await
    }

    /// Every project's state, at start-up.
    pub async fn load_all(&self) -> Result<Vec<ProjectState>, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.load_all().await,
                Store::Local(l) => l.load_all().await,
            }
        })
        .await
    }

    pub async fn load(&self, project: Uuid) -> Result<Option<ProjectState>, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.load(project).await,
                Store::Local(l) => l.load(project).await,
            }
        })
        .await
    }

    /// A new configuration version, greater than every version handed out before.
    pub async fn next_version(&self) -> Result<u64, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.next_version().await,
                Store::Local(l) => l.next_version().await,
            }
        })
        .await
    }

    /// Durably stores the state and its sealed snapshot, together.
    pub async fn commit(&self, state: &ProjectState, snapshot: &[u8]) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => {
                    r.commit(state.project.id, state.version, &json, snapshot)
                        .await
                }
                Store::Local(l) => {
                    l.commit(state.project.id, state.version, &json, snapshot)
                        .await
                }
            }
        })
        .await
    }

    pub async fn delete(&self, project: Uuid, version: u64) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.delete(project).await,
                Store::Local(l) => l.delete(project, version).await,
            }
        })
        .await
    }

    /// Announces a change. Best effort: replicas reconcile, so a lost notification only delays.
    pub async fn publish(&self, change: Change) {
        let r = timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.publish(change).await,
                Store::Local(l) => {
                    l.publish(change);
                    Ok(())
                }
            }
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, project = %change.project, version = change.version, "publish failed; replicas will reconcile");
        }
    }

    /// Appends an audit entry to the operator-wide log and, when it concerns a project, to the
    /// project's; each keeps about `AUDIT_MAX` entries.
    pub async fn append_audit(&self, entry: &Entry) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => {
                    let json = serde_json::to_string(entry)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    r.append_audit(&json, entry.project, AUDIT_MAX).await
                }
                Store::Local(l) => l.append_audit(entry, AUDIT_MAX).await,
            }
        })
        .await
    }

    /// A page of the audit log of `scope`, newest first.
    pub async fn read_audit(&self, scope: Scope, page: &Page) -> Result<Vec<Entry>, StoreError> {
        let project = match scope {
            Scope::Operator => None,
            Scope::Project(p) => Some(p),
        };
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => {
                    let rows = r
                        .read_audit(project, page.before.as_deref(), page.limit)
                        .await?;
                    Ok(rows
                        .into_iter()
                        .filter_map(|(id, json)| {
                            let mut e: Entry = serde_json::from_str(&json).ok()?;
                            e.id = id;
                            Some(e)
                        })
                        .collect())
                }
                Store::Local(l) => l.read_audit(project, page).await,
            }
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.ping().await,
                Store::Local(_) => Ok(()),
            }
        })
        .await
    }
}
