//! I/O both planes share: the guarded outbound HTTP client and the Google token exchange
//! (`outbound`), the interface replicas follow snapshots through (`source`), and the one they
//! ship request records through (`sink`). The control plane
//! and the data plane depend on this crate, never on each other; only the embedded binary
//! (`to11-embedded`) puts both planes in one process.

pub mod counters;
pub mod metrics;
pub mod outbound;
pub mod redis_conn;
pub mod replicas;
pub mod sink;
pub mod source;
