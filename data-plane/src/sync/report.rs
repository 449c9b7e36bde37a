//! The replica reports in: every `TO11_REPORT_INTERVAL_MS` it writes what it serves (version,
//! projects), its last refusal, its staleness, whether it is degraded or draining, to a
//! `ReportSink` with a TTL of three intervals, so a replica that is gone drops out of the
//! control plane's list by itself. A report is a status, not configuration: the data plane still
//! never writes configuration. A failing sink is logged and tried again at the next interval;
//! nothing waits on it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use to11_io::replicas::{ReportError, ReportSink};
use to11_shared::bus::replica_key;
use to11_shared::report::ReplicaReport;

use super::SyncStatus;
use crate::drain::Drain;
use crate::health_book::now_ms;
use crate::state::Live;

/// Reports in Redis: `SET {prefix}replica:{id} <json> PX <ttl>`, the one key a replica writes
/// besides the usage stream.
pub struct RedisReports {
    redis: to11_io::redis_conn::LazyRedis,
    prefix: String,
}

impl RedisReports {
    pub fn new(url: &str, prefix: &str) -> Result<Self, ReportError> {
        Ok(RedisReports {
            redis: to11_io::redis_conn::LazyRedis::open(url)
                .map_err(|e| ReportError(format!("redis: {e}")))?,
            prefix: prefix.to_string(),
        })
    }
}

impl ReportSink for RedisReports {
    fn report(
        &self,
        report: &ReplicaReport,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ReportError>> {
        let key = replica_key(&self.prefix, &report.id);
        let body = serde_json::to_string(report);
        async move {
            let body = body.map_err(|e| ReportError(e.to_string()))?;
            let mut conn = self
                .redis
                .get()
                .await
                .map_err(|e| ReportError(format!("redis: {e}")))?;
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(body)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async(&mut conn)
                .await;
            if let Err(e) = set {
                // A broken connection is made again on the next report.
                self.redis.reset().await;
                return Err(ReportError(format!("redis: {e}")));
            }
            Ok(())
        }
        .boxed()
    }
}

/// What the reporter reads.
pub struct Reporter {
    pub id: String,
    pub started_at_ms: u64,
    pub live: Live,
    pub status: Arc<SyncStatus>,
    pub drain: Arc<Drain>,
    pub interval: Duration,
    /// Longest wait for one write.
    pub timeout: Duration,
}

impl Reporter {
    /// The report as of now.
    pub fn report(&self) -> ReplicaReport {
        let now = now_ms();
        let s = &self.status;
        let reconciled = s.reconciled_ms.load(Ordering::Relaxed);
        ReplicaReport {
            id: self.id.clone(),
            started_at_ms: self.started_at_ms,
            reported_at_ms: now,
            loaded: self.live.load().loaded,
            draining: self.drain.draining(),
            degraded: s.degraded.load(Ordering::Relaxed),
            subscribed: s.subscribed.load(Ordering::Relaxed),
            version: self.live.max_version(),
            projects: self.live.load().projects.len() as u64,
            applied: s.applied.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            last_refusal: s.last_refusal(),
            staleness_ms: (reconciled > 0).then(|| now.saturating_sub(reconciled)),
            last_error: s.last_error(),
        }
    }

    /// Writes the report every interval, forever.
    pub async fn run(self, sink: Arc<dyn ReportSink>) {
        let ttl = self.interval * 3;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let report = self.report();
            let r = tokio::time::timeout(self.timeout, sink.report(&report, ttl)).await;
            match r {
                Ok(Ok(())) => failing = false,
                Ok(Err(e)) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot write the replica's report");
                }
                Err(_) if !failing => {
                    failing = true;
                    tracing::warn!("writing the replica's report timed out");
                }
                _ => {}
            }
        }
    }
}

/// The replica's id: `configured` when set, else the host name and process id (and a random
/// suffix, so two replicas in one process — tests — differ).
pub fn replica_id(configured: &str) -> String {
    if !configured.is_empty() {
        return to11_shared::report::clean_id(configured);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "replica".into()
    } else {
        host
    };
    to11_shared::report::clean_id(&format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    ))
}
