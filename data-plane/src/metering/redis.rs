//! Request records into Redis: each batch is one entry (`XADD`, the batch's bytes in the
//! field `USAGE_FIELD`) of the usage stream, capped near `max_entries` (oldest trimmed first); the
//! control plane consumes it with a consumer group. The only write a replica makes to Redis —
//! never configuration.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use to11_io::redis_conn::LazyRedis;
use to11_io::sink::{RecordSink, SinkError};
use to11_shared::bus::{usage_stream, USAGE_FIELD};
use to11_shared::record::Batch;

pub struct RedisSink {
    redis: LazyRedis,
    stream: String,
    max_entries: u64,
}

impl RedisSink {
    pub fn new(url: &str, prefix: &str, max_entries: u64) -> Result<Self, SinkError> {
        Ok(RedisSink {
            redis: LazyRedis::open(url).map_err(|e| SinkError(format!("redis: {e}")))?,
            stream: usage_stream(prefix),
            max_entries,
        })
    }

    async fn add(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut conn = self
            .redis
            .get()
            .await
            .map_err(|e| SinkError(format!("redis: {e}")))?;
        let added: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_entries)
            .arg("*")
            .arg(USAGE_FIELD)
            .arg(batch.bytes())
            .query_async(&mut conn)
            .await;
        match added {
            Ok(_) => Ok(()),
            Err(e) => {
                // A broken connection is made again on the next batch.
                self.redis.reset().await;
                Err(SinkError(format!("redis: {e}")))
            }
        }
    }
}

impl RecordSink for RedisSink {
    fn ship<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        self.add(batch).boxed()
    }
}
