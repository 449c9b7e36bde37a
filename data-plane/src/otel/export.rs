//! The exporter: a thread of its own with its own actix system (awc is not `Send`, and nothing
//! here may run on a worker). It takes the workers' batches of encoded spans off the queue as they
//! come (a worker hands one over when it holds `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans, or
//! `OTEL_BSP_SCHEDULE_DELAY` after its first), writes each one's head into the room kept for it,
//! and POSTs it with the configured headers and timeout. One export at a time: while the collector
//! is slow the queue fills and what overflows is dropped and counted; a failed export is counted
//! and its batch dropped (never retried: a dead collector must not make the gateway hold spans).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use to11_shared::otel::encode::{Head, Scope};
use to11_shared::otel::TraceSettings;
use tokio::sync::mpsc;

use super::{Spans, TraceStats};
use crate::handover::Backlog;

/// The instrumentation scope of the data plane's spans.
pub fn scope() -> Scope<'static> {
    Scope {
        name: "to11-data-plane",
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Starts the thread; it ends once every sender is gone, after exporting what is left.
pub fn spawn(
    settings: TraceSettings,
    head: Head,
    rx: mpsc::UnboundedReceiver<Spans>,
    backlog: Arc<Backlog>,
    stats: Arc<TraceStats>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("to11-otlp".into())
        .spawn(move || {
            actix_rt::System::new().block_on(run(settings, head, rx, backlog, stats));
        })
        .map(|_| ())
}

async fn run(
    settings: TraceSettings,
    head: Head,
    mut rx: mpsc::UnboundedReceiver<Spans>,
    backlog: Arc<Backlog>,
    stats: Arc<TraceStats>,
) {
    let client = to11_io::outbound::client(&to11_io::outbound::ClientOptions {
        connect_timeout: settings.timeout,
        timeout: settings.timeout,
        max_connections: 4,
        // The collector is the operator's own address (often local), not a tenant's URL.
        allow_private: true,
    });
    while let Some(Spans { mut buf, count }) = rx.recv().await {
        backlog.taken(count);
        let start = head.seal(&mut buf);
        // The batch's bytes become the body as they are (no copy).
        let body = bytes::Bytes::from(buf).slice(start..);
        export(&client, &settings, body, count as u64, &stats).await;
    }
}

/// Sends one encoded batch of `n` spans and counts the outcome.
async fn export(
    client: &awc::Client,
    settings: &TraceSettings,
    body: bytes::Bytes,
    n: u64,
    stats: &TraceStats,
) {
    match send(client, settings, body).await {
        Ok(()) => {
            stats.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(why) => {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            if stats
                .export_failures
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(20)
            {
                tracing::warn!(endpoint = %settings.endpoint, error = %why, spans = n, "exporting traces failed; the batch is dropped");
            }
        }
    }
}

async fn send(client: &awc::Client, s: &TraceSettings, body: bytes::Bytes) -> Result<(), String> {
    let mut req = client
        .post(s.endpoint.as_str())
        .timeout(s.timeout)
        .insert_header(("content-type", "application/x-protobuf"));
    for (k, v) in &s.headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req.send_body(body).await.map_err(|e| e.to_string())?;
    // The answer (an ExportTraceServiceResponse, perhaps a partial success) is read and dropped,
    // so the connection can be reused.
    let _ = resp.body().limit(64 * 1024).await;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the collector answered HTTP {}",
            resp.status().as_u16()
        ))
    }
}
