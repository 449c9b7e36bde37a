//! One Redis connection made when first needed, shared by clones, and made again after a
//! failure (`reset`). What every Redis writer of both planes keeps: the usage sink, the replica
//! reports and their directory, the limit counters.

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

pub struct LazyRedis {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl LazyRedis {
    pub fn open(url: &str) -> redis::RedisResult<Self> {
        Ok(LazyRedis {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
        })
    }

    /// The connection, made now if there is none.
    pub async fn get(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.client.get_multiplexed_async_connection().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection after a failure: the next `get` makes a new one.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// For a connection of its own (a command that blocks on the server).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }
}
