//! OpenTelemetry traces as pure code: W3C trace context (`context`: `traceparent` read and
//! written), the standard samplers (`sampler`), the `OTEL_*` settings (`settings`), one request's
//! span tree as a compact record (`record::Trace`: fixed-size ids, every string in one buffer) with
//! its GenAI semantic-convention names (`genai`), and the OTLP/protobuf encoding of a batch
//! (`encode`), written by hand from the official `.proto` field numbers.
//!
//! No I/O: the data plane records a `Trace` per sampled request and ships encoded batches.

pub mod context;
pub mod encode;
pub mod genai;
pub mod record;
pub mod sampler;
pub mod settings;

pub use context::{SpanId, TraceId, TraceParent};
pub use record::{Kind, Trace};
pub use sampler::Sampler;
pub use settings::TraceSettings;
