//! Where a replica's snapshots come from: Redis in a multi-replica deployment
//! (`to11_data_plane::sync::redis::RedisSource`), the control plane's local store in embedded mode.
//! Read-only by design: the data plane never writes configuration.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use to11_shared::bus::Change;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where snapshots come from: Redis in a multi-replica deployment, the in-process store in
/// embedded mode.
pub trait SnapshotSource: Send + Sync + 'static {
    /// Subscribes to change notifications. The stream ends when the subscription is lost.
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Change>, SourceError>>;
    /// The store's epoch and every project's current snapshot version, read together.
    fn index(&self) -> BoxFuture<'_, Result<Index, SourceError>>;
    /// The sealed snapshot envelope of one project, `None` if it has none (deleted).
    fn fetch(&self, project: Uuid) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>>;
    /// The envelopes of several projects, in their order (a replica's cold start reads them a
    /// page at a time). By default one `fetch` after the other; a networked source does better.
    fn fetch_many<'a>(
        &'a self,
        projects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, SourceError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(projects.len());
            for p in projects {
                out.push(self.fetch(*p).await?);
            }
            Ok(out)
        })
    }
    /// Liveness check of the subscription's server (the watchdog); `Ok` if it answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), SourceError>>;
}

/// What reconciliation compares against.
pub struct Index {
    /// The store's epoch marker; `None` when the store was flushed or never initialised.
    pub epoch: Option<String>,
    /// Project id → current snapshot version.
    pub versions: HashMap<Uuid, u64>,
}
