//! Names and message format of the configuration channel between the control plane and replicas.
//! Both the Redis store and the in-process bus use them, so the two modes cannot drift apart.

use uuid::Uuid;

/// Key of one project's sealed snapshot envelope.
pub fn snapshot_key(prefix: &str, project: &Uuid) -> String {
    format!("{prefix}snapshot:{project}")
}

/// Hash of project id → version of its current snapshot (what reconciliation compares).
pub fn snapshot_index_key(prefix: &str) -> String {
    format!("{prefix}snapshot-index")
}

/// The store's epoch marker: a random id the control plane writes when it initialises a store.
/// Missing means the store was flushed or replaced; a different value means a new store.
pub fn epoch_key(prefix: &str) -> String {
    format!("{prefix}epoch")
}

/// Stream of request records (usage): replicas add batches, the control plane consumes them with
/// the consumer group `USAGE_GROUP`.
pub fn usage_stream(prefix: &str) -> String {
    format!("{prefix}usage")
}

/// The consumer group that ingests request records into the usage store.
pub const USAGE_GROUP: &str = "to11-ingest";

/// The field of a usage-stream entry that holds its batch (`record::encode_batch`).
pub const USAGE_FIELD: &str = "records";

/// A replica's report (`report::ReplicaReport`, JSON), written by the replica with a TTL. Not
/// configuration: nothing but the operator's listing reads it.
pub fn replica_key(prefix: &str, id: &str) -> String {
    format!("{prefix}replica:{id}")
}

/// The pattern every replica report key matches (for `SCAN`).
pub fn replica_pattern(prefix: &str) -> String {
    format!("{prefix}replica:*")
}

/// Pub/sub channel carrying change notifications.
pub fn changes_channel(prefix: &str) -> String {
    format!("{prefix}changes")
}

/// A change notification: project `project` now has snapshot `version` (absent = deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub project: Uuid,
    pub version: u64,
}

impl Change {
    pub fn encode(&self) -> String {
        format!("{} {}", self.project, self.version)
    }

    pub fn decode(s: &str) -> Option<Change> {
        let (p, v) = s.split_once(' ')?;
        Some(Change {
            project: p.parse().ok()?,
            version: v.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_roundtrip() {
        let c = Change {
            project: Uuid::new_v4(),
            version: 42,
        };
        assert_eq!(Change::decode(&c.encode()), Some(c));
        assert_eq!(Change::decode("x 1"), None);
        assert_eq!(Change::decode(""), None);
    }
}
