//! OpenTelemetry traces as pure code: W3C trace context (`context`: `traceparent` read and
//! written), the standard samplers (`sampler`), the `OTEL_*` settings (`settings`), one request's
//! span tree, encoded as OTLP/protobuf while the request is served (`record::Trace`) with its
//! GenAI semantic-convention names (`genai`), the protobuf primitives and a batch's head
//! (`encode`), written by hand from the official `.proto` field numbers, and a reader of what is
//! written (`read`, for tests).
//!
//! No I/O: the data plane records a `Trace` per sampled request and ships batches of its bytes.

pub mod context;
pub mod encode;
pub mod genai;
pub mod read;
pub mod record;
pub mod sampler;
pub mod settings;

pub use context::{SpanId, TraceId, TraceParent};
pub use record::{Kind, Trace};
pub use sampler::Sampler;
pub use settings::TraceSettings;
