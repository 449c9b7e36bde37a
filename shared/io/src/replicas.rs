//! Replica reports (`to11_shared::report::ReplicaReport`): where a replica writes its own
//! (`ReportSink`: Redis with a TTL in a deployment, memory in embedded mode) and where the control
//! plane lists them (`ReplicaDirectory`). A report is a status, not configuration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use to11_shared::report::ReplicaReport;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);

/// Where a replica writes its report; it expires after `ttl` unless written again.
pub trait ReportSink: Send + Sync + 'static {
    fn report(
        &self,
        report: &ReplicaReport,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ReportError>>;
}

/// Where the control plane reads the reports of the replicas alive.
pub trait ReplicaDirectory: Send + Sync + 'static {
    fn replicas(&self) -> BoxFuture<'_, Result<Vec<ReplicaReport>, ReportError>>;
}

/// Reports kept in memory (embedded mode: the gateway and the API share one).
#[derive(Default)]
pub struct MemoryReports {
    reports: Mutex<HashMap<String, (ReplicaReport, Instant)>>,
}

impl ReportSink for MemoryReports {
    fn report(
        &self,
        report: &ReplicaReport,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), ReportError>> {
        let r = match self.reports.lock() {
            Ok(mut g) => {
                g.insert(report.id.clone(), (report.clone(), Instant::now() + ttl));
                Ok(())
            }
            Err(_) => Err(ReportError("report table poisoned".into())),
        };
        async move { r }.boxed()
    }
}

impl ReplicaDirectory for MemoryReports {
    fn replicas(&self) -> BoxFuture<'_, Result<Vec<ReplicaReport>, ReportError>> {
        let r = match self.reports.lock() {
            Ok(mut g) => {
                let now = Instant::now();
                g.retain(|_, (_, until)| *until > now);
                Ok(g.values().map(|(r, _)| r.clone()).collect())
            }
            Err(_) => Err(ReportError("report table poisoned".into())),
        };
        async move { r }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> ReplicaReport {
        ReplicaReport {
            id: id.into(),
            started_at_ms: 1,
            reported_at_ms: 2,
            loaded: true,
            draining: false,
            degraded: false,
            subscribed: true,
            version: 3,
            projects: 1,
            applied: 1,
            refused: 0,
            last_refusal: None,
            staleness_ms: Some(4),
            last_error: None,
        }
    }

    #[actix_rt::test]
    async fn reports_expire_unless_written_again() {
        let m = MemoryReports::default();
        m.report(&report("a"), Duration::from_millis(30))
            .await
            .expect("a");
        m.report(&report("b"), Duration::from_secs(30))
            .await
            .expect("b");
        assert_eq!(m.replicas().await.expect("list").len(), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = m.replicas().await.expect("list");
        assert_eq!(
            left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}
