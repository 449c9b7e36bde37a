//! The audit log in the local store directory: `audit/operator.jsonl` (every entry) and
//! `audit/{project}.jsonl`, one entry (JSON, with its id) a line, appended and fsynced. A file
//! grown past twice its cap is rewritten atomically with its newest `max` lines, so appends stay
//! O(1) amortised and the directory bounded.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

use super::{io, write_atomic};
use crate::audit::{parse_id, Entry, Page};
use crate::store::StoreError;

/// The audit files of one store directory; appends are serialised.
pub struct AuditFiles {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Lines in each file, counted on first use.
    lines: HashMap<PathBuf, usize>,
    /// The last id handed out (ms, seq).
    last: (u64, u64),
}

impl AuditFiles {
    pub fn new(dir: &Path) -> Self {
        AuditFiles {
            dir: dir.join("audit"),
            state: Mutex::new(State::default()),
        }
    }

    fn path(&self, project: Option<Uuid>) -> PathBuf {
        match project {
            Some(p) => self.dir.join(format!("{p}.jsonl")),
            None => self.dir.join("operator.jsonl"),
        }
    }

    /// Gives `entry` the next id and appends it to the operator's file and its project's.
    pub fn append(&self, entry: &Entry, max: usize) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let ms = u64::try_from(entry.at.timestamp_millis()).unwrap_or(0);
        st.last = if ms > st.last.0 {
            (ms, 0)
        } else {
            (st.last.0, st.last.1 + 1)
        };
        let mut entry = entry.clone();
        entry.id = format!("{}-{}", st.last.0, st.last.1);
        let mut line =
            serde_json::to_vec(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        line.push(b'\n');
        let paths = std::iter::once(None)
            .chain(entry.project.map(Some))
            .map(|p| self.path(p));
        for path in paths {
            let n = match st.lines.get(&path) {
                Some(n) => *n,
                None => count_lines(&path)?,
            };
            append_line(&path, &line)?;
            let n = if n + 1 > 2 * max.max(1) {
                keep_newest(&path, max)?
            } else {
                n + 1
            };
            st.lines.insert(path, n);
        }
        Ok(())
    }

    /// A page of a project's entries, or of every entry, newest first.
    pub fn read(&self, project: Option<Uuid>, page: &Page) -> Result<Vec<Entry>, StoreError> {
        let before = page.before.as_deref().and_then(parse_id);
        let mut entries: Vec<Entry> = read_lines(&self.path(project))?
            .iter()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .filter(|e| before.is_none_or(|b| parse_id(&e.id).is_some_and(|id| id < b)))
            .collect();
        entries.reverse();
        entries.truncate(page.limit);
        Ok(entries)
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, StoreError> {
    match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(io(e)),
    }
}

fn count_lines(path: &Path) -> Result<usize, StoreError> {
    Ok(read_lines(path)?.len())
}

fn append_line(path: &Path, line: &[u8]) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(line).map_err(io)?;
    f.sync_data().map_err(io)
}

/// Rewrites the file with its newest `max` lines; returns how many it keeps.
fn keep_newest(path: &Path, max: usize) -> Result<usize, StoreError> {
    let lines = read_lines(path)?;
    let kept = &lines[lines.len().saturating_sub(max)..];
    let mut bytes = kept.join("\n").into_bytes();
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(io)?;
    Ok(kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Principal;

    fn entry(project: Option<u128>, action: &str) -> Entry {
        let who = project.map(|p| Principal::Project(Uuid::from_u128(p)));
        Entry::new(who, "127.0.0.1".parse().unwrap(), action)
    }

    #[test]
    fn pages_newest_first_per_scope_and_stays_capped() {
        let dir = std::env::temp_dir().join(format!("to11-audit-{}", Uuid::new_v4()));
        let files = AuditFiles::new(&dir);
        for i in 0..25 {
            let project = if i % 2 == 0 { Some(1) } else { Some(2) };
            files.append(&entry(project, &format!("a{i}")), 5).unwrap();
        }
        let page = |before: Option<String>, limit| Page { before, limit };
        let all = files.read(None, &page(None, 100)).unwrap();
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        // Capped at 5, rewritten once past 10: between 5 and 10 newest kept.
        assert!((5..=10).contains(&all.len()), "{}", all.len());
        assert_eq!(actions[0], "a24");
        let ids: Vec<_> = all.iter().map(|e| parse_id(&e.id).unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

        let first = files.read(None, &page(None, 2)).unwrap();
        let next = files
            .read(None, &page(Some(first[1].id.clone()), 2))
            .unwrap();
        assert_eq!(next[0].action, actions[2], "before pages on");

        let p1 = files
            .read(Some(Uuid::from_u128(1)), &page(None, 100))
            .unwrap();
        assert!(p1.iter().all(|e| e.project == Some(Uuid::from_u128(1))));
        assert_eq!(p1[0].action, "a24");
        let none = files
            .read(Some(Uuid::from_u128(3)), &page(None, 100))
            .unwrap();
        assert!(none.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
