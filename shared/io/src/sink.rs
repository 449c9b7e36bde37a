//! Where replicas ship request records: a Redis stream in a multi-replica deployment (the data
//! plane's `RedisSink`), the usage store itself in embedded mode. A sink takes whole batches; a
//! batch that fails is shipped again (records are stored once per request id, so a retry never
//! counts twice).

use futures_util::future::BoxFuture;
use to11_shared::record::Batch;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

pub trait RecordSink: Send + Sync + 'static {
    /// Ships one sealed batch; `Err` leaves it to be shipped again.
    fn ship<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>>;
}
