//! Following the control plane: subscribe, then load current state; apply new versions as
//! notifications arrive; reconcile (compare versions with the source's index) on every
//! (re)connect and on an interval, so a missed notification delays a replica by at most one
//! interval. A snapshot that does not verify, decode, compile or decrypt is refused and the last
//! good one stays in service.
//!
//! Architecture invariant: the data plane never writes configuration; sources are read-only.

pub mod redis;
pub mod report;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use to11_shared::bus::Change;
use to11_shared::crypto::Keyring;
use uuid::Uuid;

use crate::state::{prepare, Live, Prepared};
pub use to11_io::source::{Index, SnapshotSource, SourceError};
pub use to11_shared::report::Refusal;

/// What the sync task reports on `/readyz`, `/metrics` and in the replica's reports.
#[derive(Default)]
pub struct SyncStatus {
    pub subscribed: AtomicBool,
    /// Subscriptions found dead (ended, or not answering the check's PING in time).
    pub subscription_losses: AtomicU64,
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    pub reconciles: AtomicU64,
    /// When the last reconcile that reached the store ended (ms since the epoch; 0: never).
    pub reconciled_ms: AtomicU64,
    /// Serving a configuration the store no longer holds: the store lost its epoch marker, or
    /// changed epoch with no projects, while this replica serves some (it keeps them).
    pub degraded: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// The last snapshot refused.
    pub last_refusal: Mutex<Option<Refusal>>,
}

impl SyncStatus {
    pub fn last_refusal(&self) -> Option<Refusal> {
        self.last_refusal.lock().ok().and_then(|g| g.clone())
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

/// The longest wait between two attempts to reach an unreachable source.
const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Snapshots read in one round trip when reconciling (a cold start reads every project).
const FETCH_PAGE: usize = 500;

pub struct Follower {
    pub source: Arc<dyn SnapshotSource>,
    pub live: Live,
    pub keyring: Keyring,
    pub status: Arc<SyncStatus>,
    pub reconcile_interval: Duration,
    /// How often the subscription is checked with a PING (its own timer, shorter than the
    /// reconcile interval).
    pub check_interval: Duration,
    pub op_timeout: Duration,
    /// The store epoch the live state came from.
    pub epoch: Mutex<Option<String>>,
}

impl Follower {
    /// Runs forever: the sync task of a replica. While the source is unreachable it tries again
    /// every `RECONNECT_MAX` at most, so a replica is ready soon after the source comes back.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.timed(self.source.subscribe()).await {
                Ok(stream) => {
                    backoff = Duration::from_millis(50);
                    self.status.subscribed.store(true, Ordering::Relaxed);
                    tracing::info!("subscribed to configuration changes");
                    self.follow(stream).await;
                    self.status.subscribed.store(false, Ordering::Relaxed);
                    self.status
                        .subscription_losses
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("configuration subscription lost; reconnecting");
                }
                Err(e) => {
                    self.status.set_error(Some(format!("subscribe: {e}")));
                    // Tried again every half second at most: said once per outage, not each time.
                    if backoff == Duration::from_millis(50) {
                        tracing::warn!(error = %e, "cannot subscribe to configuration changes");
                    } else {
                        tracing::debug!(error = %e, "cannot subscribe to configuration changes");
                    }
                    // Still try to load what is there, so a replica can serve from the store.
                    let _ = self.reconcile().await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// Follows one subscription until it ends or stops answering. The check runs beside the
    /// work (changes and reconciles), never behind it: a reconcile stuck on a hung store (each
    /// call bounded by `op_timeout`, but one per project) cannot delay noticing the hang past
    /// `check_interval` + `op_timeout`.
    async fn follow(&self, stream: BoxStream<'static, Change>) {
        tokio::select! {
            e = self.check_subscription() => {
                self.status.set_error(Some(format!("subscription check: {e}")));
                tracing::warn!(error = %e, "configuration source does not answer PING");
            }
            () = self.apply(stream) => {
                tracing::warn!("configuration subscription ended");
            }
        }
    }

    /// PINGs the subscription's connection every `check_interval`; returns the first failure.
    async fn check_subscription(&self) -> SourceError {
        let mut check = tokio::time::interval(self.check_interval);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await;
        loop {
            check.tick().await;
            if let Err(e) = self.timed(self.source.ping()).await {
                return e;
            }
        }
    }

    /// Reconciles, then applies notified changes and reconciles every `reconcile_interval`,
    /// until the subscription's stream ends.
    async fn apply(&self, mut stream: BoxStream<'static, Change>) {
        // Subscribed first, then load: a change published in between is seen by one or the other.
        let _ = self.reconcile().await;
        let mut tick = tokio::time::interval(self.reconcile_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(change) => self.on_change(change).await,
                    None => return,
                },
                _ = tick.tick() => {
                    let _ = self.reconcile().await;
                }
            }
        }
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.op_timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(SourceError("configuration source timed out".into())),
        }
    }

    async fn on_change(&self, change: Change) {
        let current = self.live.project_version(&change.project).unwrap_or(0);
        if change.version > current {
            if let Err(e) = self.load_project(change.project, current).await {
                self.status.set_error(Some(e.0.clone()));
                tracing::warn!(project = %change.project, error = %e, "cannot load snapshot");
            }
        }
    }

    /// Compares every project's version with the source and loads what differs.
    ///
    /// A store without its epoch marker (flushed, or a fresh Redis the control plane has not
    /// re-seeded yet) changes nothing: the replica keeps its last good configuration. A new epoch
    /// with no projects is refused the same way while this replica serves some. In a new epoch
    /// versions are compared for equality, not order.
    pub async fn reconcile(&self) -> Result<(), SourceError> {
        self.status.reconciles.fetch_add(1, Ordering::Relaxed);
        let index = match self.timed(self.source.index()).await {
            Ok(i) => i,
            Err(e) => {
                self.status.set_error(Some(format!("reconcile: {e}")));
                return Err(e);
            }
        };
        let Some(epoch) = index.epoch else {
            let msg = "the configuration store has no epoch marker (flushed, or not initialised by a control plane yet); keeping the last good configuration";
            self.status.set_error(Some(msg.into()));
            self.status
                .degraded
                .store(!self.live.load().projects.is_empty(), Ordering::Relaxed);
            return Err(SourceError(msg.into()));
        };
        let state = self.live.load();
        let known = self.epoch.lock().ok().and_then(|e| e.clone());
        let new_epoch = known.as_ref().is_some_and(|k| *k != epoch);
        if new_epoch && index.versions.is_empty() && !state.projects.is_empty() {
            let msg = "the configuration store changed epoch and holds no projects; refusing to drop the live configuration";
            self.status.set_error(Some(msg.into()));
            self.status.degraded.store(true, Ordering::Relaxed);
            return Err(SourceError(msg.into()));
        }
        if new_epoch {
            tracing::warn!("configuration store epoch changed; adopting its state");
        }
        let mut ok = true;
        // (project, the version it must be above) of every project that changed.
        let changed: Vec<(Uuid, u64)> = index
            .versions
            .iter()
            .filter_map(|(project, version)| {
                let current = state.projects.get(project).map(|p| p.version).unwrap_or(0);
                let differs = if new_epoch {
                    *version != current
                } else {
                    *version > current
                };
                differs.then_some((*project, if new_epoch { 0 } else { current }))
            })
            .collect();
        for page in changed.chunks(FETCH_PAGE) {
            ok &= self.apply_page(page).await;
        }
        let gone: Vec<Uuid> = state
            .projects
            .keys()
            .filter(|p| !index.versions.contains_key(p))
            .copied()
            .collect();
        drop(state);
        for p in gone {
            tracing::info!(project = %p, "project removed");
            self.live.remove(&p);
        }
        if let Ok(mut e) = self.epoch.lock() {
            *e = Some(epoch);
        }
        self.live.mark_loaded();
        self.status.degraded.store(false, Ordering::Relaxed);
        self.status
            .reconciled_ms
            .store(crate::health_book::now_ms(), Ordering::Relaxed);
        if ok {
            self.status.set_error(None);
        }
        Ok(())
    }

    /// One page of changed projects (id, the version each must be above) read in one round
    /// trip, within the store timeout, and swapped in at once: a cold start over many projects
    /// takes pages, not one call (nor one swap) per project. Whether all of it applied.
    async fn apply_page(&self, page: &[(Uuid, u64)]) -> bool {
        let ids: Vec<Uuid> = page.iter().map(|(p, _)| *p).collect();
        let all = match self.timed(self.source.fetch_many(&ids)).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "reading a page of snapshots failed");
                return false;
            }
        };
        let mut ok = true;
        let mut ready = Vec::with_capacity(page.len());
        for ((project, floor), bytes) in page.iter().zip(all) {
            match self.open_envelope(*project, bytes, *floor) {
                Ok(Some(p)) => ready.push(p),
                Ok(None) => {}
                Err(_) => ok = false,
            }
        }
        let n = ready.len() as u64;
        self.live.apply_many(ready);
        self.status.applied.fetch_add(n, Ordering::Relaxed);
        ok
    }

    async fn load_project(&self, project: Uuid, current: u64) -> Result<(), SourceError> {
        let bytes = self.timed(self.source.fetch(project)).await?;
        self.apply_envelope(project, bytes, current)
    }

    /// A fetched envelope applied (`None`: the project is gone), unless it is not newer than
    /// `current`.
    fn apply_envelope(
        &self,
        project: Uuid,
        bytes: Option<Vec<u8>>,
        current: u64,
    ) -> Result<(), SourceError> {
        if let Some((p, keys)) = self.open_envelope(project, bytes, current)? {
            self.live.apply(p, keys);
            self.status.applied.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A fetched envelope verified and prepared, `None` when there is nothing to apply (the
    /// project is gone, then removed here; or the envelope is not newer than `current`).
    fn open_envelope(
        &self,
        project: Uuid,
        bytes: Option<Vec<u8>>,
        current: u64,
    ) -> Result<Option<Prepared>, SourceError> {
        let Some(bytes) = bytes else {
            self.live.remove(&project);
            return Ok(None);
        };
        let snap = match to11_shared::snapshot::open(&bytes, &self.keyring) {
            Ok(s) => s,
            Err(e) => return Err(self.refuse(project, e.to_string())),
        };
        if snap.version <= current {
            return Ok(None);
        }
        match prepare(&snap, &self.keyring) {
            Ok(prepared) => {
                tracing::debug!(project = %project, version = snap.version, "prepared snapshot");
                Ok(Some(prepared))
            }
            Err(e) => Err(self.refuse(project, e.to_string())),
        }
    }

    fn refuse(&self, project: Uuid, why: String) -> SourceError {
        self.status.refused.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.status.last_refusal.lock() {
            *g = Some(Refusal {
                project,
                reason: why.clone(),
                at_ms: crate::health_book::now_ms(),
            });
        }
        tracing::error!(project = %project, error = %why, "refused snapshot; keeping the last good one");
        SourceError(format!("refused snapshot of project {project}: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::future::BoxFuture;
    use futures_util::FutureExt;
    use std::collections::HashMap;
    use to11_shared::model::ByokPolicy;

    /// An in-memory source whose index and snapshots the test sets.
    #[derive(Default)]
    struct Source {
        index: Mutex<(Option<String>, HashMap<Uuid, u64>)>,
        snapshots: Mutex<HashMap<Uuid, Vec<u8>>>,
    }

    impl SnapshotSource for Source {
        fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Change>, SourceError>> {
            async { Ok(futures_util::stream::pending().boxed()) }.boxed()
        }
        fn index(&self) -> BoxFuture<'_, Result<Index, SourceError>> {
            let (epoch, versions) = self.index.lock().unwrap().clone();
            async move { Ok(Index { epoch, versions }) }.boxed()
        }
        fn fetch(&self, project: Uuid) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
            let s = self.snapshots.lock().unwrap().get(&project).cloned();
            async move { Ok(s) }.boxed()
        }
        fn ping(&self) -> BoxFuture<'_, Result<(), SourceError>> {
            async { Ok(()) }.boxed()
        }
    }

    fn follower(source: Arc<Source>) -> Follower {
        Follower {
            source,
            live: Live::default(),
            keyring: crate::state::tests::keyring(),
            status: Default::default(),
            reconcile_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(1),
            op_timeout: Duration::from_secs(1),
            epoch: Default::default(),
        }
    }

    fn publish(src: &Source, epoch: Option<&str>, version: u64) -> Uuid {
        let snap = crate::state::tests::snapshot(version, &["to11_gk_a"], ByokPolicy::Allowed);
        let id = snap.project.id;
        let sealed = snap.seal(&crate::state::tests::keyring());
        src.snapshots.lock().unwrap().insert(id, sealed);
        *src.index.lock().unwrap() = (epoch.map(String::from), HashMap::from([(id, version)]));
        id
    }

    /// A store that lists 50 projects to fetch, then hangs on every call but the index.
    struct Hung;

    impl SnapshotSource for Hung {
        fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Change>, SourceError>> {
            async { Ok(futures_util::stream::pending().boxed()) }.boxed()
        }
        fn index(&self) -> BoxFuture<'_, Result<Index, SourceError>> {
            let versions = (0..50).map(|_| (Uuid::new_v4(), 1)).collect();
            async move {
                Ok(Index {
                    epoch: Some("e".into()),
                    versions,
                })
            }
            .boxed()
        }
        fn fetch(&self, _: Uuid) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
            futures_util::future::pending().boxed()
        }
        fn ping(&self) -> BoxFuture<'_, Result<(), SourceError>> {
            futures_util::future::pending().boxed()
        }
    }

    #[actix_rt::test]
    async fn a_hung_subscription_is_noticed_even_during_a_long_reconcile() {
        let mut f = follower(Arc::new(Source::default()));
        f.source = Arc::new(Hung);
        f.check_interval = Duration::from_millis(50);
        f.op_timeout = Duration::from_millis(100);
        let stream = f.source.subscribe().await.expect("subscribed");
        let started = std::time::Instant::now();
        // The first reconcile alone takes 50 fetches × 100 ms = 5 s.
        f.follow(stream).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "noticed after {took:?}");
        assert!(f
            .status
            .last_error()
            .is_some_and(|e| e.contains("subscription check")));
    }

    #[actix_rt::test]
    async fn epochs_guard_the_live_configuration() {
        let src = Arc::new(Source::default());
        let f = follower(src.clone());

        // A store with no epoch yet: nothing is loaded, the replica is not ready.
        publish(&src, None, 5);
        assert!(f.reconcile().await.is_err());
        assert!(!f.live.load().loaded);

        // Initialised: loaded.
        let id = publish(&src, Some("e1"), 5);
        f.reconcile().await.unwrap();
        assert_eq!(f.live.project_version(&id), Some(5));

        // Flushed (epoch gone, index empty): kept.
        *src.index.lock().unwrap() = (None, HashMap::new());
        assert!(f.reconcile().await.is_err());
        assert_eq!(f.live.project_version(&id), Some(5));

        assert!(
            f.status.degraded.load(Ordering::Relaxed),
            "serving what the store lost"
        );

        // A new, empty epoch: refused, kept.
        *src.index.lock().unwrap() = (Some("e2".into()), HashMap::new());
        assert!(f.reconcile().await.is_err());
        assert_eq!(f.live.project_version(&id), Some(5));
        assert!(f.status.degraded.load(Ordering::Relaxed));

        // A new epoch with the project at a *lower* version: adopted.
        publish(&src, Some("e2"), 3);
        f.reconcile().await.unwrap();
        assert_eq!(f.live.project_version(&id), Some(3));
        assert!(!f.status.degraded.load(Ordering::Relaxed), "in step again");

        // A snapshot that does not verify: refused, recorded, the last good one kept.
        src.snapshots
            .lock()
            .unwrap()
            .insert(id, b"not a sealed snapshot".to_vec());
        src.index.lock().unwrap().1.insert(id, 4);
        let _ = f.reconcile().await;
        assert_eq!(f.live.project_version(&id), Some(3));
        let refusal = f.status.last_refusal().expect("a refusal");
        assert_eq!(refusal.project, id);
        assert!(refusal.at_ms > 0 && !refusal.reason.is_empty());
        publish(&src, Some("e2"), 3);

        // Same epoch, project gone from the index: a real deletion, removed.
        *src.index.lock().unwrap() = (Some("e2".into()), HashMap::new());
        f.reconcile().await.unwrap();
        assert_eq!(f.live.project_version(&id), None);
    }
}
