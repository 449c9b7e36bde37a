//! Backup files: the whole configuration as the control plane holds it (every project's state,
//! credentials sealed by the master key, keys as keyed hashes: a backup holds no secret in
//! clear), one JSON file each, named by the time it was taken, written atomically into
//! `TO11_BACKUP_DIR`. The newest file is also the marker of what the control plane last saw, which
//! `super::check_store` compares with the store at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use to11_shared::model::ProjectState;

use crate::actors::registry::{Model, ReadModel};
use crate::store::local::write_atomic;
use crate::store::Store;

/// The format version a backup is written with.
pub const FORMAT: u32 = 1;
const PREFIX: &str = "to11-backup-";

/// One backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Backup {
    pub format: u32,
    pub taken_at: DateTime<Utc>,
    /// The store epoch the configuration was read under.
    pub epoch: String,
    /// The highest version of any project in it.
    pub max_version: u64,
    pub projects: Vec<ProjectState>,
}

/// What a backup says without its projects (the start-up check's marker, the API's answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub file: PathBuf,
    pub taken_at: DateTime<Utc>,
    pub epoch: String,
    pub projects: usize,
    pub max_version: u64,
}

impl Backup {
    /// The model as a backup (projects oldest first).
    pub fn of(model: &Model, epoch: &str, now: DateTime<Utc>) -> Self {
        Backup {
            format: FORMAT,
            taken_at: now,
            epoch: epoch.to_string(),
            max_version: model.max_version(),
            projects: model
                .list(None)
                .into_iter()
                .map(|p| ProjectState::clone(&p))
                .collect(),
        }
    }

    pub fn summary(&self, file: PathBuf) -> Summary {
        Summary {
            file,
            taken_at: self.taken_at,
            epoch: self.epoch.clone(),
            projects: self.projects.len(),
            max_version: self.max_version,
        }
    }
}

/// A backup's file name: sorts by the time it was taken.
fn file_name(taken_at: DateTime<Utc>) -> String {
    format!(
        "{PREFIX}{}-{:08x}.json",
        taken_at.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u32>()
    )
}

/// The backup files in `dir`, oldest first.
fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(".json"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(e),
    };
    out.sort();
    Ok(out)
}

/// Writes `backup` into `dir` (created if needed), then removes all but the newest `keep`.
pub fn write(dir: &Path, backup: &Backup, keep: usize) -> std::io::Result<Summary> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(file_name(backup.taken_at));
    let bytes = serde_json::to_vec(backup).map_err(std::io::Error::other)?;
    write_atomic(&path, &bytes)?;
    let all = files(dir)?;
    for old in &all[..all.len().saturating_sub(keep.max(1))] {
        let _ = std::fs::remove_file(old);
    }
    Ok(backup.summary(path))
}

/// Reads a backup file.
pub fn read(path: &Path) -> Result<Backup, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let b: Backup = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a to11 backup: {e}", path.display()))?;
    if b.format > FORMAT {
        return Err(format!(
            "{} was written by a newer to11 (backup format {}; this one reads {FORMAT})",
            path.display(),
            b.format
        ));
    }
    Ok(b)
}

/// The newest backup in `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<Summary>, String> {
    let all = files(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    match all.last() {
        Some(p) => read(p).map(|b| Some(b.summary(p.clone()))),
        None => Ok(None),
    }
}

/// Takes a backup of the published model now.
pub async fn take(
    dir: PathBuf,
    keep: usize,
    model: Arc<Model>,
    store: &Store,
) -> Result<Summary, String> {
    let backup = Backup::of(&model, &store.epoch(), Utc::now());
    tokio::task::spawn_blocking(move || write(&dir, &backup, keep))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write the backup: {e}"))
}

/// Writes a backup every `interval` while the model changed since the last one (and one at
/// start), so the newest backup is at most `interval` behind the configuration.
pub async fn periodically(
    dir: PathBuf,
    interval: std::time::Duration,
    keep: usize,
    model: ReadModel,
    store: Arc<Store>,
) {
    let mut last: Option<Arc<Model>> = None;
    loop {
        let now = model.load();
        if last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &now)) {
            match take(dir.clone(), keep, now.clone(), &store).await {
                Ok(s) => {
                    tracing::info!(file = %s.file.display(), projects = s.projects, "configuration backed up");
                    last = Some(now);
                }
                Err(e) => tracing::error!(error = %e, "backup failed; will retry"),
            }
        }
        actix_rt::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("to11-backups-{}", uuid::Uuid::new_v4()));
        let model = Model::default();
        let t0 = Utc::now();
        for i in 0..5 {
            let b = Backup::of(&model, "e1", t0 + chrono::Duration::seconds(i));
            write(&dir, &b, 3).unwrap();
        }
        assert_eq!(files(&dir).unwrap().len(), 3);
        let l = latest(&dir).unwrap().unwrap();
        assert_eq!(l.taken_at, t0 + chrono::Duration::seconds(4));
        assert_eq!((l.epoch.as_str(), l.projects), ("e1", 0));
        assert!(latest(&dir.join("none")).unwrap().is_none());
        std::fs::write(dir.join("to11-backup-9.json"), b"{}").unwrap();
        assert!(latest(&dir).unwrap_err().contains("not a to11 backup"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
