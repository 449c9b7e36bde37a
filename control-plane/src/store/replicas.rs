//! The replicas' reports in Redis (`{prefix}replica:{id}`, each written by its replica with a
//! TTL): found with `SCAN` and read with `MGET`. The control plane only reads them; they are not
//! configuration. Embedded mode lists its one gateway from memory (`to11_io::replicas`).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::aio::MultiplexedConnection;
use to11_io::replicas::{ReplicaDirectory, ReportError};
use to11_shared::bus::replica_pattern;
use to11_shared::report::ReplicaReport;

/// Most report keys listed (a bound on one operator request's work).
const MAX_REPLICAS: usize = 10_000;

pub struct RedisReplicas {
    redis: to11_io::redis_conn::LazyRedis,
    prefix: String,
}

fn err(e: redis::RedisError) -> ReportError {
    ReportError(format!("redis: {e}"))
}

impl RedisReplicas {
    pub fn new(url: &str, prefix: &str) -> Result<Self, ReportError> {
        Ok(RedisReplicas {
            redis: to11_io::redis_conn::LazyRedis::open(url).map_err(err)?,
            prefix: prefix.to_string(),
        })
    }

    async fn conn(&self) -> Result<MultiplexedConnection, ReportError> {
        self.redis.get().await.map_err(err)
    }

    async fn list(&self) -> Result<Vec<ReplicaReport>, ReportError> {
        let mut conn = self.conn().await?;
        let r = async {
            let pattern = replica_pattern(&self.prefix);
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 || keys.len() >= MAX_REPLICAS {
                    break;
                }
            }
            keys.sort();
            keys.dedup();
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(values)
        }
        .await;
        let values = match r {
            Ok(v) => v,
            Err(e) => {
                self.redis.reset().await;
                return Err(err(e));
            }
        };
        // A key that expired between SCAN and MGET is gone; one that does not parse is skipped.
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_str(&v).ok())
            .collect())
    }
}

impl ReplicaDirectory for RedisReplicas {
    fn replicas(&self) -> BoxFuture<'_, Result<Vec<ReplicaReport>, ReportError>> {
        self.list().boxed()
    }
}
