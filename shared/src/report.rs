//! What a replica reports about itself to the control plane (through Redis with a TTL, or in
//! embedded mode in memory): not configuration — a status a replica writes and nothing reads to
//! decide anything but an operator's view (`GET /api/v1/replicas`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One replica's state, as of `reported_at_ms`. Unknown fields are accepted (an older control
/// plane lists what a newer replica wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The replica's name (`TO11_REPLICA_ID`, or its host name and process id).
    pub id: String,
    /// When the replica started and when it wrote this (ms since the Unix epoch).
    pub started_at_ms: u64,
    pub reported_at_ms: u64,
    /// Whether it has a configuration to serve (what `/readyz` answers, draining aside).
    pub loaded: bool,
    /// Told to stop: `/readyz` answers 503, requests in flight are finishing.
    pub draining: bool,
    /// Serving a configuration the store no longer holds (flushed, or a new epoch without
    /// projects): its last good one.
    pub degraded: bool,
    /// Whether its subscription to changes is alive.
    pub subscribed: bool,
    /// Highest configuration version applied, and the number of projects served.
    pub version: u64,
    pub projects: u64,
    /// Snapshots applied and refused since it started.
    pub applied: u64,
    pub refused: u64,
    pub last_refusal: Option<Refusal>,
    /// Milliseconds since its last reconcile with the store ended (`None`: none yet).
    pub staleness_ms: Option<u64>,
    /// The sync task's last error, if it has one now.
    pub last_error: Option<String>,
}

/// A snapshot a replica refused (it kept the last good one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub project: Uuid,
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A replica id as it may appear in a key name: ASCII letters, digits, `.`, `_` and `-` kept,
/// anything else replaced by `-`, at most 128 characters; empty becomes `replica`.
pub fn clean_id(id: &str) -> String {
    let s: String = id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "replica".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_in_key_names() {
        assert_eq!(clean_id("gw-7f9c.local_1"), "gw-7f9c.local_1");
        assert_eq!(clean_id("a:b*c {d}"), "a-b-c--d-");
        assert_eq!(clean_id(""), "replica");
        assert_eq!(clean_id(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn a_report_from_a_newer_replica_is_read() {
        let text = r#"{"id":"r","started_at_ms":1,"reported_at_ms":2,"loaded":true,"draining":false,
            "degraded":false,"subscribed":true,"version":3,"projects":1,"applied":1,"refused":0,
            "last_refusal":null,"staleness_ms":5,"last_error":null,"something_new":42}"#;
        let r: ReplicaReport = serde_json::from_str(text).expect("read");
        assert_eq!((r.id.as_str(), r.version), ("r", 3));
    }
}
