//! The usage store: one record per request (kept for `raw_days`), and rollups per minute and
//! hour by project, key, model, provider and route (and hourly by end user and by tag) that the
//! usage queries read. Behind one boundary (`UsageStore`): PostgreSQL for deployments
//! (`postgres`), SQLite in the data directory for embedded mode (`sqlite`); a columnar store
//! would be a third implementation. Records arrive in batches — from the Redis stream
//! (`ingest`) or, in embedded mode, straight from the gateway (`LocalSink`) — are priced
//! (`Pricer`), and stored once per request id; rollups grow from the records a batch newly
//! stored, so a batch shipped twice counts once.

pub mod ingest;
pub mod postgres;
pub mod query;
pub mod rollup;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use to11_io::sink::{RecordSink, SinkError};
use to11_shared::record::{Batch, RequestRecord};
use to11_shared::usage::{cost, PriceTable};
use uuid::Uuid;

pub use query::{LogQuery, RowQuery, Table};
use rollup::Sums;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage store unavailable: {0}")]
    Unavailable(String),
    #[error("usage store: {0}")]
    Query(String),
}

/// One stored rollup row, as a query reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub bucket: DateTime<Utc>,
    pub project: Uuid,
    pub key: Uuid,
    pub model: String,
    pub provider: String,
    pub route: String,
    /// The end user (user rows) or the tag's value (tag rows).
    pub label: String,
    pub sums: Sums,
}

/// Where prices apply: every project (the operator's), or one project (negotiated rates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PriceScope {
    Operator,
    Project(Uuid),
}

pub trait UsageStore: Send + Sync + 'static {
    /// Stores a batch (already priced); returns how many were new (a record whose request id is
    /// stored already is skipped) and adds those to the rollups, atomically.
    fn insert<'a>(&'a self, batch: &'a [RequestRecord])
        -> BoxFuture<'a, Result<usize, UsageError>>;
    /// Rollup rows of one table in a time range.
    fn rows<'a>(&'a self, q: &'a RowQuery) -> BoxFuture<'a, Result<Vec<Row>, UsageError>>;
    /// Records, newest first.
    fn requests<'a>(
        &'a self,
        q: &'a LogQuery,
    ) -> BoxFuture<'a, Result<Vec<RequestRecord>, UsageError>>;
    /// One record of a project, by request id.
    fn record(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<RequestRecord>, UsageError>>;
    /// A price table set for a scope (its JSON), if any.
    fn prices(&self, scope: PriceScope) -> BoxFuture<'_, Result<Option<String>, UsageError>>;
    /// Sets (or, with `None`, removes) the price table of a scope.
    fn set_prices<'a>(
        &'a self,
        scope: PriceScope,
        json: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), UsageError>>;
    /// Every scope that has prices set, with its table.
    fn all_prices(&self) -> BoxFuture<'_, Result<Vec<(PriceScope, String)>, UsageError>>;
    /// Drops records older than `raw_days` and rollups older than `rollup_days`; prepares what
    /// the coming days need (partitions).
    fn maintain(
        &self,
        now: DateTime<Utc>,
        raw_days: u32,
        rollup_days: u32,
    ) -> BoxFuture<'_, Result<(), UsageError>>;
}

/// Prices records: a project's own rates first, then the operator's, then the table kept in the
/// repository. A model without a price stays unpriced (`cost: None`), never 0.
pub struct Pricer {
    builtin: PriceTable,
    overrides: RwLock<HashMap<PriceScope, PriceTable>>,
}

impl Default for Pricer {
    fn default() -> Self {
        Pricer {
            builtin: PriceTable::builtin(),
            overrides: RwLock::default(),
        }
    }
}

impl Pricer {
    /// Replaces the overrides with what the store holds (tables that no longer parse are
    /// skipped, with a warning).
    pub async fn reload(&self, store: &dyn UsageStore) -> Result<(), UsageError> {
        let mut next = HashMap::new();
        for (scope, json) in store.all_prices().await? {
            match PriceTable::parse(&json) {
                Ok(t) => {
                    next.insert(scope, t);
                }
                Err(e) => tracing::warn!(?scope, error = %e, "stored price table skipped"),
            }
        }
        if let Ok(mut g) = self.overrides.write() {
            *g = next;
        }
        Ok(())
    }

    /// Sets one scope's table in memory (after the store took it).
    pub fn set(&self, scope: PriceScope, table: Option<PriceTable>) {
        if let Ok(mut g) = self.overrides.write() {
            match table {
                Some(t) => g.insert(scope, t),
                None => g.remove(&scope),
            };
        }
    }

    /// The cost of a record's usage, in micro-units; `None` without usage or price.
    pub fn cost(&self, r: &RequestRecord) -> Option<u64> {
        let usage = r.usage?;
        let (kind, model) = (r.provider_kind.as_deref()?, r.model.as_deref()?);
        let overrides = self.overrides.read().ok()?;
        let price = [PriceScope::Project(r.project), PriceScope::Operator]
            .iter()
            .filter_map(|s| overrides.get(s))
            .chain(std::iter::once(&self.builtin))
            .find_map(|t| t.find(kind, model))?;
        Some(cost(&usage, &price.price))
    }

    /// Prices every record of a batch.
    pub fn price(&self, batch: &mut [RequestRecord]) {
        for r in batch {
            r.cost = self.cost(r);
        }
    }
}

/// Embedded mode's sink: the gateway's batches priced and stored directly.
pub struct LocalSink {
    pub store: Arc<dyn UsageStore>,
    pub pricer: Arc<Pricer>,
}

impl RecordSink for LocalSink {
    fn ship<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        async move {
            // A batch this build wrote always reads back; were it not, no retry would help.
            let mut batch = match batch.records() {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "a batch of request records does not read back; dropped");
                    return Ok(());
                }
            };
            self.pricer.price(&mut batch);
            self.store
                .insert(&batch)
                .await
                .map(|_| ())
                .map_err(|e| SinkError(e.to_string()))
        }
        .boxed()
    }
}

/// The usage store a URL names: `postgres://…` (connected when first used) or `sqlite://PATH`
/// (or a bare path; opened now).
pub fn open(url: &str) -> Result<Arc<dyn UsageStore>, UsageError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::new(url)))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(
            path,
        ))?))
    }
}

/// What the control plane meters with: the usage store (if any), the prices, and ingestion's
/// counters (in Redis mode).
#[derive(Clone, Default)]
pub struct Metering {
    pub store: Option<Arc<dyn UsageStore>>,
    pub pricer: Arc<Pricer>,
    pub ingest: Option<Arc<ingest::IngestStats>>,
    /// Where usage limits are counted (to show what is used of each).
    pub counters: Option<Arc<dyn to11_io::counters::CounterStore>>,
}
