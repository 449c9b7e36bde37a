//! Persistence. The only code that knows Redis commands or file layout. A commit stores a
//! project's state and its sealed snapshot together (atomically), if the store still holds the
//! version the change was applied to (`Base`: a compare-and-set, so several control planes never
//! overwrite each other), then the caller publishes.
//!
//! Two back ends: Redis for multi-replica deployments, and a local directory for embedded mode.

pub mod local;
pub mod redis;
pub mod replicas;

use std::collections::HashMap;
use std::time::Duration;

use to11_shared::bus::Change;
use to11_shared::model::ProjectState;
use uuid::Uuid;

pub use self::redis::{EpochState, Persistence};

use crate::audit::{Entry, Page, Scope};

/// The epoch a local store reports (it cannot be flushed under the process that owns it).
pub const LOCAL_EPOCH: &str = "local";

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
    /// The project changed in the store since the copy the change was applied to (another
    /// control plane wrote it): nothing was written.
    #[error("the project changed in the store since it was read")]
    Conflict,
    /// Another project has the slug in the store: nothing was written.
    #[error("another project has this slug")]
    SlugTaken,
    /// A restore into a store that holds projects: nothing was written.
    #[error("the configuration store already holds projects")]
    NotEmpty,
}

/// What a change was applied to: the project's version and slug as stored (0 and `None` for a
/// project being created). A commit is refused with `Conflict` unless the store still holds
/// that version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base {
    pub version: u64,
    pub slug: Option<String>,
}

impl Base {
    pub fn of(state: &ProjectState) -> Self {
        Base {
            version: state.version,
            slug: Some(state.project.slug.clone()),
        }
    }
}

/// One project as written when a store is re-seeded.
pub struct Seed {
    pub project: Uuid,
    pub version: u64,
    pub slug: String,
    pub state: Vec<u8>,
    pub snapshot: Vec<u8>,
}

// One per process, behind an `Arc`: the size of the Redis variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    Redis(redis::RedisStore),
    Local(local::LocalStore),
}

fn no_sessions() -> StoreError {
    StoreError::Unavailable("the local store keeps no sessions (they live in the process)".into())
}

/// Projects read in one round trip when loading them all.
pub const LOAD_PAGE: usize = 500;

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

    /// The store's epoch marker (a local store always has one).
    pub async fn current_epoch(&self) -> Result<Option<String>, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.current_epoch().await,
                Store::Local(_) => Ok(Some(LOCAL_EPOCH.into())),
            }
        })
        .await
    }

    /// Creates the store's epoch if it has none, and joins the one it has.
    pub async fn create_epoch(&self) -> Result<String, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.create_epoch().await,
                Store::Local(_) => Ok(LOCAL_EPOCH.into()),
            }
        })
        .await
    }

    /// Joins an epoch found in the store (another control plane's re-seed, or a restore).
    pub fn join(&self, epoch: String) {
        if let Store::Redis(r) = self {
            r.join(epoch);
        }
    }

    /// The epoch this control plane joined.
    pub fn epoch(&self) -> String {
        match self {
            Store::Redis(r) => r.epoch(),
            Store::Local(_) => LOCAL_EPOCH.into(),
        }
    }

    /// Whether the store carries the epoch this control plane joined, none, or another.
    pub async fn epoch_state(&self) -> Result<EpochState, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.epoch_state().await,
                Store::Local(_) => Ok(EpochState::Ours),
            }
        })
        .await
    }

    /// The epoch and every project's version, read together (what a reconcile compares).
    pub async fn index(&self) -> Result<(Option<String>, HashMap<Uuid, u64>), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.index().await,
                Store::Local(l) => Ok((Some(LOCAL_EPOCH.into()), l.versions())),
            }
        })
        .await
    }

    /// Writes the whole in-memory model into a store that lost its epoch (or holds only
    /// `replacing`, an epoch without projects), under a new one, with the version counter at
    /// least `max_version` so versions stay monotonic. `Ok(false)`: another control plane
    /// re-seeded (or restored) it first; this one must reload instead.
    pub async fn reseed(
        &self,
        replacing: Option<&str>,
        seeds: &[Seed],
        max_version: u64,
    ) -> Result<bool, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.install(false, replacing, seeds, max_version).await,
                Store::Local(_) => Ok(false),
            }
        })
        .await
    }

    /// Writes a backup's projects into a store that holds none (`NotEmpty` otherwise), under a
    /// new epoch, so every replica adopts them.
    pub async fn restore(&self, seeds: &[Seed], floor: u64) -> Result<(), StoreError> {
        match self {
            Store::Redis(r) => {
                timed(self.op_timeout() * 10, r.install(true, None, seeds, floor))
                    .await
                    .map(|_| ())
            }
            Store::Local(_) => Err(StoreError::Unavailable(
                "restoring a backup is for the Redis store (embedded mode's data directory is copied as files)".into(),
            )),
        }
    }

    /// Reserves `n` consecutive versions above the counter and `floor`: the first of them.
    pub async fn reserve_versions(&self, n: u64, floor: u64) -> Result<u64, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.reserve_versions(n, floor).await,
                Store::Local(l) => l.reserve_versions(n, floor).await,
            }
        })
        .await
    }

    /// Indexes the slugs of projects an older control plane stored without the slug index.
    pub async fn index_slugs(&self, slugs: &[(String, Uuid)]) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.index_slugs(slugs).await,
                Store::Local(_) => Ok(()),
            }
        })
        .await
    }

    /// Redis's persistence settings (`None` for the local store, which fsyncs every write).
    pub async fn persistence(&self) -> Option<Result<Persistence, StoreError>> {
        match self {
            Store::Redis(r) => Some(timed(self.op_timeout(), r.persistence()).await),
            Store::Local(_) => None,
        }
    }

    /// The change notifications other control planes (and this one) publish; `None` for the
    /// local store, which has one control plane only.
    pub async fn subscribe(
        &self,
    ) -> Option<Result<futures_util::stream::BoxStream<'static, Change>, StoreError>> {
        match self {
            Store::Redis(r) => Some(timed(self.op_timeout(), r.subscribe()).await),
            Store::Local(_) => None,
        }
    }

    /// A project as stored, `EpochLost` if the store no longer carries the joined epoch.
    pub async fn load_in_epoch(&self, project: Uuid) -> Result<Option<ProjectState>, StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.load_in_epoch(project).await,
                Store::Local(l) => l.load(project).await,
            }
        })
        .await
    }

    /// Every project's state, at start-up. Over Redis it is read in pages
    /// (`LOAD_PAGE` projects a round trip), each page within the store timeout: how long the
    /// whole takes grows with the number of projects, no single call does.
    pub async fn load_all(&self) -> Result<Vec<ProjectState>, StoreError> {
        let r = match self {
            Store::Local(l) => return timed(self.op_timeout(), l.load_all()).await,
            Store::Redis(r) => r,
        };
        let ids = timed(self.op_timeout(), r.project_ids()).await?;
        let mut out = Vec::with_capacity(ids.len());
        let started = std::time::Instant::now();
        for (n, page) in ids.chunks(LOAD_PAGE).enumerate() {
            out.extend(timed(self.op_timeout(), r.load_many(page)).await?);
            if (n + 1) % 50 == 0 {
                tracing::info!(
                    loaded = out.len(),
                    of = ids.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "loading projects"
                );
            }
        }
        Ok(out)
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

    /// Durably stores the state and its sealed snapshot, together, if the store still holds
    /// the project as `base` (compare-and-set: `Conflict` otherwise, `SlugTaken` when another
    /// project has the slug).
    pub async fn commit(
        &self,
        state: &ProjectState,
        snapshot: &[u8],
        base: &Base,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.commit(state, &json, snapshot, base).await,
                Store::Local(l) => {
                    l.commit(state.project.id, state.version, &json, snapshot, base)
                        .await
                }
            }
        })
        .await
    }

    /// Deletes a project if the store still holds it as `base`.
    pub async fn delete(&self, project: Uuid, base: &Base) -> Result<(), StoreError> {
        timed(self.op_timeout(), async {
            match self {
                Store::Redis(r) => r.delete(project, base).await,
                Store::Local(l) => l.delete(project, base).await,
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

    /// Whether dashboard sessions are kept in the store (Redis: any control plane answers any
    /// session), rather than in the process (embedded mode).
    pub fn keeps_sessions(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Opens a dashboard session (`false`: the table is full). Redis only.
    pub async fn session_create(&self, s: &redis::NewSession<'_>) -> Result<bool, StoreError> {
        match self {
            Store::Redis(r) => timed(self.op_timeout(), r.session_create(s)).await,
            Store::Local(_) => Err(no_sessions()),
        }
    }

    /// A live dashboard session by the hash of its id, renewed. Redis only.
    pub async fn session_find(
        &self,
        id_hash: &str,
        now_ms: u64,
        lifetime_ms: u64,
        idle_ms: u64,
    ) -> Result<Option<redis::StoredSession>, StoreError> {
        match self {
            Store::Redis(r) => {
                timed(
                    self.op_timeout(),
                    r.session_find(id_hash, now_ms, lifetime_ms, idle_ms),
                )
                .await
            }
            Store::Local(_) => Err(no_sessions()),
        }
    }

    /// Ends a dashboard session. Redis only.
    pub async fn session_remove(&self, id_hash: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(r) => timed(self.op_timeout(), r.session_remove(id_hash)).await,
            Store::Local(_) => Err(no_sessions()),
        }
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
