//! Pure core of to11: domain types, the versioned snapshot format, compilation of a snapshot into
//! lookup tables, top-down model resolution, secrets sealing, key formats and error codes.
//!
//! Architecture invariant: nothing in this crate does I/O (no sockets, files, clocks other than
//! timestamps passed in, no environment). Both planes call the same `compile` so a snapshot a
//! replica receives was checked by the very function the replica uses.

pub mod body;
pub mod bus;
pub mod catalog;
pub mod config;
pub mod crypto;
pub mod error;
pub mod eventstream;
pub mod google;
pub mod keys;
pub mod limits;
pub mod model;
pub mod otel;
pub mod policy;
pub mod record;
pub mod redact;
pub mod report;
pub mod resolve;
pub mod sigv4;
pub mod snapshot;
pub mod translate;
pub mod upstream;
pub mod upstream_url;
pub mod usage;

pub use error::ErrorCode;

/// A hash map for lookups on the request path: foldhash, seeded at random per map (SipHash, the
/// standard map's, cost ~150 instructions per lookup of a short key; this costs a fifth).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
