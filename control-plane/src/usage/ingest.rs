//! Ingestion: the usage stream's entries (batches shipped by replicas) read with the consumer
//! group `USAGE_GROUP` — this control plane's own unacknowledged entries first, then new ones,
//! and now and then entries a dead consumer left pending — priced, stored in one insert, and
//! acknowledged only once stored (at-least-once; the store skips ids it has, so nothing counts
//! twice). While the store is down the same entries are retried; the stream keeps the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use to11_shared::bus::{usage_stream, USAGE_FIELD, USAGE_GROUP};
use to11_shared::record::{decode_batch, BatchError, RequestRecord};

use super::{Pricer, UsageStore};

/// Entries read at a time (each a batch of up to 200 records).
const READ_COUNT: usize = 50;
/// An entry pending this long with another consumer is taken over.
const CLAIM_IDLE_MS: u64 = 60_000;
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What ingestion has done, for `/metrics`.
#[derive(Default)]
pub struct IngestStats {
    pub entries: AtomicU64,
    pub records: AtomicU64,
    /// Records already stored (a batch shipped or read twice).
    pub duplicates: AtomicU64,
    /// Entries that could not be read as records (acknowledged and skipped).
    pub malformed: AtomicU64,
    /// Entries written in a newer format by a newer replica (left pending for a newer control
    /// plane to take over).
    pub newer: AtomicU64,
    pub store_failures: AtomicU64,
    pub redis_failures: AtomicU64,
    /// Milliseconds between the newest stored record's arrival and its storing.
    pub lag_ms: AtomicU64,
}

pub struct Ingester {
    pub redis_url: String,
    pub prefix: String,
    /// This control plane's name in the consumer group (unique per process).
    pub consumer: String,
    pub store: Arc<dyn UsageStore>,
    pub pricer: Arc<Pricer>,
    pub stats: Arc<IngestStats>,
    /// Raw records are kept this many days, rollups `rollup_days`.
    pub raw_days: u32,
    pub rollup_days: u32,
}

impl Ingester {
    /// Runs until the process ends, reconnecting as needed.
    pub async fn run(self) {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.session().await {
                Ok(()) => return,
                Err(e) => {
                    self.stats.redis_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "usage ingestion: redis failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(usage_stream(&self.prefix))
            .arg(USAGE_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        if let Err(e) = made {
            if e.code() != Some("BUSYGROUP") {
                return Err(e);
            }
        }
        Ok(c)
    }

    /// One connection's life: pending entries first, then new ones.
    async fn session(&self) -> redis::RedisResult<()> {
        let mut c = self.connect().await?;
        let stream = usage_stream(&self.prefix);
        // Own pending entries are read from the start, past the ones left pending on purpose.
        let mut pending_from = Some("0".to_string());
        let mut last_claim = Instant::now();
        let mut last_upkeep: Option<Instant> = None;
        loop {
            if last_upkeep.is_none_or(|t| t.elapsed() > Duration::from_secs(300)) {
                self.upkeep().await;
                last_upkeep = Some(Instant::now());
            }
            let entries = if last_claim.elapsed() > Duration::from_millis(CLAIM_IDLE_MS) {
                last_claim = Instant::now();
                self.claim(&mut c, &stream).await?
            } else {
                self.read(&mut c, &stream, pending_from.as_deref()).await?
            };
            if pending_from.is_some() {
                pending_from = entries.last().map(|e| e.id.clone());
            }
            if entries.is_empty() {
                continue;
            }
            self.store_entries(&mut c, &stream, &entries).await?;
        }
    }

    async fn read(
        &self,
        c: &mut MultiplexedConnection,
        stream: &str,
        pending_from: Option<&str>,
    ) -> redis::RedisResult<Vec<StreamId>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(USAGE_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(READ_COUNT);
        if pending_from.is_none() {
            cmd.arg("BLOCK").arg(1000);
        }
        cmd.arg("STREAMS")
            .arg(stream)
            .arg(pending_from.unwrap_or(">"));
        let reply: Option<StreamReadReply> = cmd.query_async(c).await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Entries another consumer left pending too long.
    async fn claim(
        &self,
        c: &mut MultiplexedConnection,
        stream: &str,
    ) -> redis::RedisResult<Vec<StreamId>> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(USAGE_GROUP)
            .arg(&self.consumer)
            .arg(CLAIM_IDLE_MS)
            .arg("0")
            .arg("COUNT")
            .arg(READ_COUNT)
            .query_async(c)
            .await?;
        Ok(reply.claimed)
    }

    /// Prices and stores every record of `entries` (retrying while the store is down), then
    /// acknowledges them.
    async fn store_entries(
        &self,
        c: &mut MultiplexedConnection,
        stream: &str,
        entries: &[StreamId],
    ) -> redis::RedisResult<()> {
        let mut records: Vec<RequestRecord> = Vec::new();
        let mut done: Vec<&str> = Vec::with_capacity(entries.len());
        for e in entries {
            let raw = e.get::<Vec<u8>>(USAGE_FIELD).unwrap_or_default();
            match decode_batch(&raw) {
                Ok(b) => records.extend(b),
                Err(BatchError::Newer(v)) => {
                    self.stats.newer.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(entry = %e.id, format = v, "usage entry left pending: written by a newer replica (upgrade the control plane first)");
                    continue;
                }
                Err(BatchError::Malformed(why)) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(entry = %e.id, %why, "usage entry skipped: not a batch of records");
                }
            }
            done.push(e.id.as_str());
        }
        self.pricer.price(&mut records);
        let mut wait = Duration::from_millis(200);
        let stored = loop {
            match self.store.insert(&records).await {
                Ok(n) => break n,
                Err(e) => {
                    self.stats.store_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, records = records.len(), "usage store failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        };
        if !done.is_empty() {
            let _: u64 = redis::cmd("XACK")
                .arg(stream)
                .arg(USAGE_GROUP)
                .arg(&done)
                .query_async(c)
                .await?;
        }
        let s = &self.stats;
        s.entries.fetch_add(done.len() as u64, Ordering::Relaxed);
        s.records.fetch_add(stored as u64, Ordering::Relaxed);
        s.duplicates
            .fetch_add((records.len() - stored) as u64, Ordering::Relaxed);
        if let Some(newest) = records.iter().map(|r| r.time).max() {
            let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0);
            s.lag_ms.store(lag as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Prices from the store (another control plane may have changed them), retention.
    async fn upkeep(&self) {
        if let Err(e) = self.pricer.reload(&*self.store).await {
            tracing::warn!(error = %e, "reloading prices failed");
        }
        if let Err(e) = self
            .store
            .maintain(chrono::Utc::now(), self.raw_days, self.rollup_days)
            .await
        {
            tracing::warn!(error = %e, "usage retention failed");
        }
    }
}
