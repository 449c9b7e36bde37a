//! Surviving the store's loss. A control plane keeps backups of the configuration (`backup`:
//! periodic, and on demand through `POST /api/v1/backups`), and the newest one tells it what it
//! last saw. At start (`prepare_store`), a store that holds no project under another epoch (or
//! none) while the newest backup holds projects is a store that lost its data: the control plane
//! refuses to start over it, naming the recovery, unless the operator says so
//! (`TO11_ACCEPT_EMPTY_STORE`). `TO11_RESTORE_FROM` writes a backup into an empty store under a new
//! epoch and versions above the backup's, which every replica adopts. Redis's persistence
//! settings are checked at start and a warning names what is missing.

pub mod backup;

use std::path::{Path, PathBuf};
use std::time::Duration;

use to11_shared::bus::Change;
use to11_shared::config::Reader;
use to11_shared::crypto::Keyring;
use to11_shared::snapshot::Snapshot;

use crate::actors::registry::credentials_open;
use crate::store::{Persistence, Seed, Store, StoreError};

/// The recovery settings of `to11-control-plane`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Where backups are written (and the newest one read at start); none: no backups, and a
    /// store that lost its data cannot be told from a new one.
    pub backup_dir: Option<PathBuf>,
    /// How often a backup is written while the configuration changed.
    pub backup_interval: Duration,
    /// How many backup files are kept.
    pub backup_keep: usize,
    /// Start over an emptied store although the newest backup holds projects.
    pub accept_empty_store: bool,
    /// A backup to write into the (empty) store before starting.
    pub restore_from: Option<PathBuf>,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            backup_dir: None,
            backup_interval: Duration::from_secs(60),
            backup_keep: 48,
            accept_empty_store: false,
            restore_from: None,
        }
    }
}

impl Recovery {
    pub fn read(r: &mut Reader<'_>) -> Self {
        Recovery {
            backup_dir: r.optional("TO11_BACKUP_DIR").map(PathBuf::from),
            backup_interval: r
                .millis("TO11_BACKUP_INTERVAL_MS", 60_000)
                .max(Duration::from_millis(100)),
            backup_keep: r.number("TO11_BACKUP_KEEP", 48).max(1) as usize,
            accept_empty_store: r.flag("TO11_ACCEPT_EMPTY_STORE", false),
            restore_from: r.optional("TO11_RESTORE_FROM").map(PathBuf::from),
        }
    }
}

/// A start refused for a reason a retry cannot fix: the operator must act (the binary exits).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether to serve the store as it is: refused when it holds no project, under an epoch other
/// than the newest backup's (or none), while that backup holds projects: the store lost its data.
pub fn check_store(
    store_epoch: Option<&str>,
    stored_projects: usize,
    latest: Option<&backup::Summary>,
    accept_empty: bool,
) -> Result<(), Refused> {
    let Some(b) = latest else { return Ok(()) };
    if stored_projects > 0 || b.projects == 0 || store_epoch == Some(b.epoch.as_str()) {
        return Ok(());
    }
    if accept_empty {
        tracing::warn!(backup = %b.file.display(), projects = b.projects, "the configuration store is empty although the newest backup holds projects; starting empty as TO11_ACCEPT_EMPTY_STORE says");
        return Ok(());
    }
    Err(Refused(format!(
        "the configuration store lost its data: it holds no project{}, but the newest backup ({}, taken {}) holds {} project(s) from epoch {}. \
         Nothing was served or written, and replicas keep their last configuration. \
         Restore it: start one control plane with --restore-from {} (TO11_RESTORE_FROM), then the others as usual. \
         Or start empty on purpose with TO11_ACCEPT_EMPTY_STORE=true (every replica then drops every project).",
        match store_epoch {
            None => " and no epoch marker (flushed, or a new Redis)".to_string(),
            Some(e) => format!(" under a new epoch {e}"),
        },
        b.file.display(),
        b.taken_at.to_rfc3339(),
        b.projects,
        b.epoch,
        b.file.display(),
    )))
}

/// What is missing from Redis's persistence for acknowledged writes to survive a restart.
pub fn persistence_advice(p: &Persistence) -> Option<String> {
    match (p.appendonly.as_deref(), p.appendfsync.as_deref()) {
        (None, _) => Some("cannot check Redis persistence (CONFIG GET is refused, as in some managed Redis): make sure AOF is on (appendonly yes, appendfsync everysec or always), or acknowledged configuration writes can be lost when Redis restarts".into()),
        (Some("yes"), Some("always" | "everysec")) => None,
        (Some("yes"), fsync) => Some(format!("Redis fsyncs its AOF only when the OS decides (appendfsync {}): set appendfsync everysec (or always)", fsync.unwrap_or("?"))),
        (Some(_), _) => Some(format!(
            "Redis has AOF off (appendonly no{}): a Redis restart loses every configuration write since its last RDB snapshot. Set appendonly yes and appendfsync everysec (or always)",
            match p.save.as_deref() {
                Some("") | None => ", no RDB snapshots either".to_string(),
                Some(s) => format!(", RDB save \"{s}\""),
            }
        )),
    }
}

/// Writes the backup at `path` into the store, which must hold no project: every project gets a
/// new version above the backup's and the store's counter, under a new epoch, and is announced.
/// A store that does not answer is a plain error (the binary retries); everything else is
/// `Refused`.
pub async fn restore(store: &Store, keyring: &Keyring, path: &Path) -> anyhow::Result<usize> {
    let b = backup::read(path).map_err(Refused)?;
    for s in &b.projects {
        credentials_open(keyring, s).map_err(|e| Refused(e.to_string()))?;
    }
    let mut slugs = std::collections::HashSet::new();
    if let Some(dup) = b.projects.iter().find(|s| !slugs.insert(&s.project.slug)) {
        return Err(Refused(format!(
            "{} holds two projects with the slug {}",
            path.display(),
            dup.project.slug
        ))
        .into());
    }
    let n = b.projects.len() as u64;
    let store_err = |e: StoreError| -> anyhow::Error {
        match e {
            StoreError::NotEmpty => Refused(format!(
                "not restoring {}: the configuration store already holds projects (restore is for a store that lost its data; remove --restore-from / TO11_RESTORE_FROM)",
                path.display()
            ))
            .into(),
            e @ (StoreError::Unavailable(_) | StoreError::Timeout) => {
                anyhow::anyhow!("restoring {}: {e}", path.display())
            }
            e => Refused(format!("restoring {}: {e}", path.display())).into(),
        }
    };
    let first = store
        .reserve_versions(n.max(1), b.max_version)
        .await
        .map_err(store_err)?;
    let seeds: Vec<Seed> = b
        .projects
        .into_iter()
        .zip(first..)
        .map(|(mut s, version)| {
            s.version = version;
            Seed {
                project: s.project.id,
                version,
                slug: s.project.slug.clone(),
                state: serde_json::to_vec(&s).unwrap_or_default(),
                snapshot: Snapshot::from_state(&s).seal(keyring),
            }
        })
        .collect();
    store
        .restore(&seeds, first + n.max(1) - 1)
        .await
        .map_err(store_err)?;
    for s in &seeds {
        store
            .publish(Change {
                project: s.project,
                version: s.version,
            })
            .await;
    }
    tracing::warn!(file = %path.display(), projects = seeds.len(), taken_at = %b.taken_at, "restored the configuration from a backup");
    // Audited as the operator's (who passed the setting), from no address.
    let mut entry = crate::audit::Entry::new(
        Some(crate::api::Principal::Operator),
        std::net::IpAddr::from([0, 0, 0, 0]),
        "RestoreBackup",
    );
    entry.target = Some(path.display().to_string());
    entry.version = seeds.last().map(|s| s.version);
    if let Err(e) = store.append_audit(&entry).await {
        tracing::warn!(error = %e, "the restore was not recorded in the audit log");
    }
    Ok(seeds.len())
}

/// Before the registry loads the store: the persistence check, a restore when asked, and the
/// refusal to serve a store that lost its data. A store that does not answer is a plain error
/// (the binary retries); what needs the operator is `Refused`.
pub async fn prepare_store(
    recovery: &Recovery,
    store: &Store,
    keyring: &Keyring,
) -> anyhow::Result<()> {
    // The store answers first (or the start is retried), so the checks below see it.
    let (epoch, versions) = store.index().await?;
    match store.persistence().await {
        Some(Ok(p)) => {
            if let Some(advice) = persistence_advice(&p) {
                tracing::warn!("{advice}");
            }
        }
        Some(Err(e)) => tracing::warn!(error = %e, "cannot check Redis persistence"),
        None => {}
    }
    if let Some(path) = &recovery.restore_from {
        restore(store, keyring, path).await?;
        return Ok(());
    }
    let Some(dir) = &recovery.backup_dir else {
        if matches!(store, Store::Redis(_)) {
            tracing::warn!("TO11_BACKUP_DIR is not set: no backups are written, and a configuration store that lost its data cannot be told from a new one at start");
        }
        return Ok(());
    };
    let latest = backup::latest(dir).map_err(Refused)?;
    check_store(
        epoch.as_deref(),
        versions.len(),
        latest.as_ref(),
        recovery.accept_empty_store,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn summary(epoch: &str, projects: usize) -> backup::Summary {
        backup::Summary {
            file: PathBuf::from("/backups/to11-backup-x.json"),
            taken_at: Utc::now(),
            epoch: epoch.into(),
            projects,
            max_version: 9,
        }
    }

    #[test]
    fn a_store_that_lost_its_data_is_refused_unless_the_operator_accepts_it() {
        let b = summary("e1", 3);
        let refused = check_store(None, 0, Some(&b), false).unwrap_err().0;
        assert!(
            refused.contains("--restore-from /backups/to11-backup-x.json"),
            "{refused}"
        );
        assert!(refused.contains("TO11_ACCEPT_EMPTY_STORE"), "{refused}");
        assert!(
            check_store(Some("e2"), 0, Some(&b), false).is_err(),
            "a new, empty epoch"
        );
        assert!(check_store(None, 0, Some(&b), true).is_ok(), "accepted");
        // Not a loss: projects in the store, the same epoch (all deleted), an empty backup, none.
        assert!(check_store(Some("e2"), 1, Some(&b), false).is_ok());
        assert!(check_store(Some("e1"), 0, Some(&b), false).is_ok());
        assert!(check_store(None, 0, Some(&summary("e1", 0)), false).is_ok());
        assert!(check_store(None, 0, None, false).is_ok());
    }

    #[test]
    fn persistence_advice_names_the_settings() {
        let p = |aof: Option<&str>, fsync: Option<&str>, save: Option<&str>| Persistence {
            appendonly: aof.map(String::from),
            appendfsync: fsync.map(String::from),
            save: save.map(String::from),
        };
        assert_eq!(
            persistence_advice(&p(Some("yes"), Some("everysec"), Some(""))),
            None
        );
        assert_eq!(
            persistence_advice(&p(Some("yes"), Some("always"), None)),
            None
        );
        let off = persistence_advice(&p(Some("no"), Some("everysec"), Some("3600 1"))).unwrap();
        assert!(
            off.contains("appendonly yes") && off.contains("3600 1"),
            "{off}"
        );
        let lazy = persistence_advice(&p(Some("yes"), Some("no"), None)).unwrap();
        assert!(lazy.contains("appendfsync everysec"), "{lazy}");
        let unknown = persistence_advice(&p(None, None, None)).unwrap();
        assert!(unknown.contains("cannot check"), "{unknown}");
    }
}
