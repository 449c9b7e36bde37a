//! The exporter: a thread of its own with its own actix system (awc is not `Send`, and nothing
//! here may run on a worker), taking finished traces off the bounded queue, gathering a batch
//! (up to `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans, or what came within `OTEL_BSP_SCHEDULE_DELAY`
//! of its first trace), encoding it as OTLP/protobuf and POSTing it with the configured headers
//! and timeout. One export at a time: while the collector is slow the queue fills and what
//! overflows is dropped and counted; a failed export is counted and its batch dropped (never
//! retried: a dead collector must not make the gateway hold spans).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use to11_shared::otel::encode::{encode_batch, Scope};
use to11_shared::otel::TraceSettings;
use tokio::sync::mpsc;

use super::{TraceStats, Traced};

/// Starts the thread; it ends once every sender is gone, after exporting what is left.
pub fn spawn(
    settings: TraceSettings,
    rx: mpsc::Receiver<Box<Traced>>,
    stats: Arc<TraceStats>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("to11-otlp".into())
        .spawn(move || {
            actix_rt::System::new().block_on(run(settings, rx, stats));
        })
        .map(|_| ())
}

async fn run(settings: TraceSettings, mut rx: mpsc::Receiver<Box<Traced>>, stats: Arc<TraceStats>) {
    let client = to11_io::outbound::client(&to11_io::outbound::ClientOptions {
        connect_timeout: settings.timeout,
        timeout: settings.timeout,
        max_connections: 4,
        // The collector is the operator's own address (often local), not a tenant's URL.
        allow_private: true,
    });
    let scope = Scope {
        name: "to11-data-plane",
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut batch: Vec<Box<Traced>> = Vec::new();
    let mut body = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut spans = first.trace.spans.len();
        batch.push(first);
        let until = tokio::time::Instant::now() + settings.delay;
        let mut open = true;
        while spans < settings.max_batch {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(t)) => {
                    spans += t.trace.spans.len();
                    batch.push(t);
                }
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        body.clear();
        encode_batch(
            &mut body,
            &settings.resource,
            &scope,
            batch.iter().map(|t| &t.trace),
        );
        batch.clear();
        let n = spans as u64;
        match send(&client, &settings, &body).await {
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
        if !open {
            break;
        }
    }
}

async fn send(client: &awc::Client, s: &TraceSettings, body: &[u8]) -> Result<(), String> {
    let mut req = client
        .post(s.endpoint.as_str())
        .timeout(s.timeout)
        .insert_header(("content-type", "application/x-protobuf"));
    for (k, v) in &s.headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req
        .send_body(bytes::Bytes::copy_from_slice(body))
        .await
        .map_err(|e| e.to_string())?;
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
