//! Embedded mode's store: a local directory, and an in-process bus.
//!
//! Layout: `projects/{id}.json` holds `{"state":…,"snapshot":…}` for one project; `meta.json`
//! holds the last version handed out. Every file is replaced atomically (write a temporary file,
//! fsync it, rename it over the old one, fsync the directory), so a crash mid-write leaves either
//! the old or the new file, never a torn one. The in-process bus mirrors the stored snapshots in
//! memory and implements the data plane's `SnapshotSource`. `audit/` holds the audit log
//! (`audit::AuditFiles`).

mod audit;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use to11_io::source::{Index, SnapshotSource, SourceError};
use to11_shared::bus::Change;
use to11_shared::model::ProjectState;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{Base, StoreError};

#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

/// Project id → (version, sealed snapshot envelope).
type Snapshots = HashMap<Uuid, (u64, Arc<Vec<u8>>)>;

struct Inner {
    dir: PathBuf,
    version: AtomicU64,
    snapshots: RwLock<Snapshots>,
    tx: broadcast::Sender<Change>,
    audit: audit::AuditFiles,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    version: u64,
}

#[derive(Deserialize)]
struct ProjectFile {
    state: ProjectState,
    snapshot: Box<RawValue>,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl LocalStore {
    /// Opens (creating if needed) the store in `dir` and loads the snapshots into the bus.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.join("projects")).map_err(io)?;
        let meta: Option<Meta> = match std::fs::read(dir.join("meta.json")) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| StoreError::Corrupt(format!("meta.json: {e}")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let (tx, _) = broadcast::channel(1024);
        let store = LocalStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                version: AtomicU64::new(meta.map(|m| m.version).unwrap_or(0)),
                snapshots: RwLock::new(HashMap::new()),
                tx,
                audit: audit::AuditFiles::new(dir),
            }),
        };
        let files = store.read_files()?;
        let mut snaps = HashMap::new();
        for f in &files {
            store
                .inner
                .version
                .fetch_max(f.state.version, Ordering::SeqCst);
            snaps.insert(
                f.state.project.id,
                (
                    f.state.version,
                    Arc::new(f.snapshot.get().as_bytes().to_vec()),
                ),
            );
        }
        if let Ok(mut g) = store.inner.snapshots.write() {
            *g = snaps;
        }
        Ok(store)
    }

    fn project_path(&self, id: Uuid) -> PathBuf {
        self.inner.dir.join("projects").join(format!("{id}.json"))
    }

    fn read_files(&self) -> Result<Vec<ProjectFile>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.inner.dir.join("projects")).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // The temporary file of a write interrupted before its rename: the old file is
                // intact beside it, so the leftover is only removed.
                if path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.starts_with("tmp"))
                {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io)?;
            let f: ProjectFile = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            out.push(f);
        }
        Ok(out)
    }

    pub async fn load_all(&self) -> Result<Vec<ProjectState>, StoreError> {
        let me = self.clone();
        blocking(move || Ok(me.read_files()?.into_iter().map(|f| f.state).collect())).await
    }

    pub async fn load(&self, project: Uuid) -> Result<Option<ProjectState>, StoreError> {
        let path = self.project_path(project);
        blocking(move || match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<ProjectFile>(&b)
                .map(|f| Some(f.state))
                .map_err(|e| StoreError::Corrupt(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        })
        .await
    }

    pub async fn append_audit(
        &self,
        entry: &crate::audit::Entry,
        max: usize,
    ) -> Result<(), StoreError> {
        let me = self.clone();
        let entry = entry.clone();
        blocking(move || me.inner.audit.append(&entry, max)).await
    }

    pub async fn read_audit(
        &self,
        project: Option<Uuid>,
        page: &crate::audit::Page,
    ) -> Result<Vec<crate::audit::Entry>, StoreError> {
        let me = self.clone();
        let page = page.clone();
        blocking(move || me.inner.audit.read(project, &page)).await
    }

    pub async fn next_version(&self) -> Result<u64, StoreError> {
        let v = self.inner.version.fetch_add(1, Ordering::SeqCst) + 1;
        let path = self.inner.dir.join("meta.json");
        let bytes = serde_json::to_vec(&Meta { version: v })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        blocking(move || write_atomic(&path, &bytes).map_err(io)).await?;
        Ok(v)
    }

    /// Every project's stored version.
    pub fn versions(&self) -> HashMap<Uuid, u64> {
        self.inner
            .snapshots
            .read()
            .map(|g| g.iter().map(|(k, (v, _))| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Refuses a change applied to another version than the stored one (one process owns the
    /// directory and its registry writes one at a time, so this holds unless the files were
    /// changed under it; checked all the same, as the Redis store does).
    fn check_base(&self, project: Uuid, base: &Base) -> Result<(), StoreError> {
        let current = self.versions().get(&project).copied().unwrap_or(0);
        if current == base.version {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Reserves `n` versions above the counter and `floor`: the first of them.
    pub async fn reserve_versions(&self, n: u64, floor: u64) -> Result<u64, StoreError> {
        self.inner.version.fetch_max(floor, Ordering::SeqCst);
        let first = self.inner.version.fetch_add(n, Ordering::SeqCst) + 1;
        let path = self.inner.dir.join("meta.json");
        let bytes = serde_json::to_vec(&Meta {
            version: first + n - 1,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        blocking(move || write_atomic(&path, &bytes).map_err(io)).await?;
        Ok(first)
    }

    pub async fn commit(
        &self,
        project: Uuid,
        version: u64,
        state: &[u8],
        snapshot: &[u8],
        base: &Base,
    ) -> Result<(), StoreError> {
        self.check_base(project, base)?;
        let mut file = Vec::with_capacity(state.len() + snapshot.len() + 32);
        file.extend_from_slice(b"{\"state\":");
        file.extend_from_slice(state);
        file.extend_from_slice(b",\"snapshot\":");
        file.extend_from_slice(snapshot);
        file.push(b'}');
        let path = self.project_path(project);
        blocking(move || write_atomic(&path, &file).map_err(io)).await?;
        if let Ok(mut g) = self.inner.snapshots.write() {
            g.insert(project, (version, Arc::new(snapshot.to_vec())));
        }
        Ok(())
    }

    pub async fn delete(&self, project: Uuid, base: &Base) -> Result<(), StoreError> {
        self.check_base(project, base)?;
        let path = self.project_path(project);
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        })
        .await?;
        if let Ok(mut g) = self.inner.snapshots.write() {
            g.remove(&project);
        }
        Ok(())
    }

    pub fn publish(&self, change: Change) {
        // No receiver yet is fine: a replica that subscribes later reconciles.
        let _ = self.inner.tx.send(change);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("store task failed: {e}"))))
}

/// The in-process bus, as the embedded replica sees it.
impl SnapshotSource for LocalStore {
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Change>, SourceError>> {
        let rx = self.inner.tx.subscribe();
        async move {
            // Lagged or closed ends the stream, so the follower resubscribes and reconciles.
            let s = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.ok().map(|c| (c, rx))
            })
            .boxed();
            Ok(s)
        }
        .boxed()
    }

    fn index(&self) -> BoxFuture<'_, Result<Index, SourceError>> {
        let r = self
            .inner
            .snapshots
            .read()
            .map(|g| Index {
                // A local store cannot be flushed under the process that owns it.
                epoch: Some("local".into()),
                versions: g.iter().map(|(k, (v, _))| (*k, *v)).collect(),
            })
            .map_err(|_| SourceError("bus lock poisoned".into()));
        async move { r }.boxed()
    }

    fn fetch(&self, project: Uuid) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        let r = self
            .inner
            .snapshots
            .read()
            .map(|g| g.get(&project).map(|(_, b)| b.as_ref().clone()))
            .map_err(|_| SourceError("bus lock poisoned".into()));
        async move { r }.boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        async { Ok(()) }.boxed()
    }
}
