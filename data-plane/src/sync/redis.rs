//! Snapshots from Redis: `GET` a project's envelope, `HGETALL` the version index, `SUBSCRIBE` to
//! the changes channel. Read-only: a replica never writes configuration.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::AsyncCommands;
use to11_shared::bus::{changes_channel, epoch_key, snapshot_index_key, snapshot_key, Change};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{Index, SnapshotSource, SourceError};

pub struct RedisSource {
    client: redis::Client,
    prefix: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    sink: Arc<Mutex<Option<PubSubSink>>>,
}

fn err(e: redis::RedisError) -> SourceError {
    SourceError(format!("redis: {e}"))
}

impl RedisSource {
    pub fn new(url: &str, prefix: &str) -> Result<Self, SourceError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(err)?,
            prefix: prefix.to_string(),
            conn: Mutex::new(None),
            sink: Arc::new(Mutex::new(None)),
        })
    }

    async fn conn(&self) -> Result<MultiplexedConnection, SourceError> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(err)?;
        *g = Some(c.clone());
        Ok(c)
    }

    async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, SourceError> {
        let c = self.conn().await?;
        match f(c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // Drop a broken connection so the next call reconnects.
                *self.conn.lock().await = None;
                Err(err(e))
            }
        }
    }
}

impl SnapshotSource for RedisSource {
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Change>, SourceError>> {
        async move {
            let mut pubsub = self.client.get_async_pubsub().await.map_err(err)?;
            pubsub
                .subscribe(changes_channel(&self.prefix))
                .await
                .map_err(err)?;
            let (sink, stream) = pubsub.split();
            *self.sink.lock().await = Some(sink);
            let s = stream
                .filter_map(|m| async move {
                    let text: String = m.get_payload().ok()?;
                    Change::decode(&text)
                })
                .boxed();
            Ok(s)
        }
        .boxed()
    }

    fn index(&self) -> BoxFuture<'_, Result<Index, SourceError>> {
        async move {
            let (epoch_k, index_k) = (epoch_key(&self.prefix), snapshot_index_key(&self.prefix));
            // One transaction, so the epoch and the versions belong together.
            let (epoch, raw): (Option<String>, HashMap<String, u64>) = self
                .with_conn(async |mut c| {
                    redis::pipe()
                        .atomic()
                        .get(&epoch_k)
                        .hgetall(&index_k)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(Index {
                epoch,
                versions: raw
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                    .collect(),
            })
        }
        .boxed()
    }

    fn fetch(&self, project: Uuid) -> BoxFuture<'_, Result<Option<Vec<u8>>, SourceError>> {
        async move {
            let key = snapshot_key(&self.prefix, &project);
            self.with_conn(async |mut c| c.get(&key).await).await
        }
        .boxed()
    }

    fn fetch_many<'a>(
        &'a self,
        projects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>, SourceError>> {
        async move {
            if projects.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = projects
                .iter()
                .map(|p| snapshot_key(&self.prefix, p))
                .collect();
            self.with_conn(async |mut c| redis::cmd("MGET").arg(&keys).query_async(&mut c).await)
                .await
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        async move {
            let mut g = self.sink.lock().await;
            match g.as_mut() {
                Some(sink) => sink.ping::<redis::Value>().await.map(|_| ()).map_err(err),
                None => Err(SourceError("not subscribed".into())),
            }
        }
        .boxed()
    }
}
