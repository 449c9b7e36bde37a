//! The audit log: who changed what, when and from where, and every sign-in and failed
//! authentication. Entries never carry a secret: an action is a command's name, a target its ids
//! or slugs, a source the peer address.
//!
//! Entries go to the store (`Store::append_audit`: a capped Redis stream per project plus one
//! operator-wide, or files in the local store directory) after the write they record has been
//! answered by the registry; a failing audit store never fails that write: the entry is counted
//! in `to11_cp_audit_failures_total` and logged instead.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::Principal;
use crate::store::{Store, StoreError};

/// One audit entry. `id` is given by the store (a cursor for `before`, newest is greatest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub id: String,
    pub at: DateTime<Utc>,
    /// `operator`, `project:<id>`, or `unknown` (a failed authentication).
    pub actor: String,
    /// The peer address the request came from.
    pub source: String,
    /// The command (`CreateRoute`, `IssueGatewayKey`…) or `sign_in`, `sign_in_failed`,
    /// `auth_failed`.
    pub action: String,
    /// The project it concerns, when one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Uuid>,
    /// What inside the project: a route's name, a key's id, `provider/credential`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ok`, or the error code the change or sign-in was refused with.
    pub outcome: String,
    /// The configuration version a change committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Entry {
    pub fn new(who: Option<Principal>, source: IpAddr, action: impl Into<String>) -> Self {
        let (actor, project) = match who {
            Some(Principal::Operator) => ("operator".to_string(), None),
            Some(Principal::Project(p)) => (format!("project:{p}"), Some(p)),
            None => ("unknown".to_string(), None),
        };
        Entry {
            id: String::new(),
            at: Utc::now(),
            actor,
            source: source.to_string(),
            action: action.into(),
            project,
            target: None,
            outcome: "ok".into(),
            version: None,
        }
    }
}

/// Whose entries a reader asks for: one project's, or every entry (the operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Operator,
    Project(Uuid),
}

/// A page: at most `limit` entries older than `before` (an entry id), newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub before: Option<String>,
    pub limit: usize,
}

/// An audit id, `<ms>-<seq>` as Redis stream ids are: ordered as a pair.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Records entries; failures are counted, never returned.
#[derive(Clone)]
pub struct Auditor {
    store: Arc<Store>,
    failures: Arc<AtomicU64>,
}

impl Auditor {
    pub fn new(store: Arc<Store>) -> Self {
        Auditor {
            store,
            failures: Arc::default(),
        }
    }

    /// Stores `entry`; a failure is counted and logged.
    pub async fn record(&self, entry: Entry) {
        if let Err(e) = self.store.append_audit(&entry).await {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, action = %entry.action, "audit entry not stored");
        }
    }

    pub async fn read(&self, scope: Scope, page: &Page) -> Result<Vec<Entry>, StoreError> {
        self.store.read_audit(scope, page).await
    }

    /// The failure count itself (read at scrape time by `/metrics`).
    pub fn failure_counter(&self) -> Arc<AtomicU64> {
        self.failures.clone()
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_pairs() {
        assert_eq!(parse_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert!(parse_id("9-10") > parse_id("9-9"));
        assert_eq!(parse_id("nope"), None);
        assert_eq!(parse_id("1-x"), None);
    }

    #[test]
    fn entries_name_their_actor_and_never_need_a_secret() {
        let p = Uuid::from_u128(7);
        let e = Entry::new(
            Some(Principal::Project(p)),
            "10.0.0.1".parse().unwrap(),
            "CreateRoute",
        );
        assert_eq!(
            (e.actor.as_str(), e.project),
            ("project:00000000-0000-0000-0000-000000000007", Some(p))
        );
        let v = serde_json::to_value(&e).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["action", "actor", "at", "id", "outcome", "project", "source"]
        );
        let e = Entry::new(None, "::1".parse().unwrap(), "auth_failed");
        assert_eq!((e.actor.as_str(), e.project), ("unknown", None));
    }
}
