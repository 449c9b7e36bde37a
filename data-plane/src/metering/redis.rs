//! Request records into Redis: each batch is one entry (`XADD`, `encode_batch`'s bytes in the
//! field `USAGE_FIELD`) of the usage stream, capped near `max_entries` (oldest trimmed first); the
//! control plane consumes it with a consumer group. The only write a replica makes to Redis —
//! never configuration.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::MultiplexedConnection;
use to11_io::sink::{RecordSink, SinkError};
use to11_shared::bus::{usage_stream, USAGE_FIELD};
use to11_shared::record::{encode_batch, RequestRecord};
use tokio::sync::Mutex;

pub struct RedisSink {
    client: redis::Client,
    stream: String,
    max_entries: u64,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisSink {
    pub fn new(url: &str, prefix: &str, max_entries: u64) -> Result<Self, SinkError> {
        Ok(RedisSink {
            client: redis::Client::open(url).map_err(|e| SinkError(format!("redis: {e}")))?,
            stream: usage_stream(prefix),
            max_entries,
            conn: Mutex::new(None),
        })
    }

    async fn add(&self, batch: &[RequestRecord]) -> Result<(), SinkError> {
        let encoded = encode_batch(batch);
        let mut guard = self.conn.lock().await;
        let mut conn = match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| SinkError(format!("redis: {e}")))?;
                *guard = Some(c.clone());
                c
            }
        };
        drop(guard);
        let added: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_entries)
            .arg("*")
            .arg(USAGE_FIELD)
            .arg(encoded)
            .query_async(&mut conn)
            .await;
        match added {
            Ok(_) => Ok(()),
            Err(e) => {
                // A broken connection is made again on the next batch.
                *self.conn.lock().await = None;
                Err(SinkError(format!("redis: {e}")))
            }
        }
    }
}

impl RecordSink for RedisSink {
    fn ship<'a>(&'a self, batch: &'a [RequestRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.add(batch).boxed()
    }
}
