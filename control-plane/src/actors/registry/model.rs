//! The read model: an immutable `Model` of every project, indexed by id, slug and management-key
//! hash. `ProjectRegistry` owns the current one, changes it only in its write pipeline (and on
//! load, reload and delete) and publishes each change whole into `ReadModel` (one `ArcSwap`
//! store). API handlers and authentication load it directly: reads never queue behind writes in
//! the registry's mailbox, lookups are hash-map hits, and a project is handed out as an
//! `Arc<ProjectState>`, never copied.

use std::sync::Arc;

use arc_swap::ArcSwap;
use to11_shared::crypto::KeyHash;
use to11_shared::model::ProjectState;
use uuid::Uuid;

/// Every project, as last committed. Cloning one is cheap (persistent maps share structure).
#[derive(Clone, Default)]
pub struct Model {
    projects: imbl::HashMap<Uuid, Arc<ProjectState>>,
    slugs: imbl::HashMap<String, Uuid>,
    management_keys: imbl::HashMap<KeyHash, Uuid>,
    /// (version, id) of every project, so the highest version is read without a walk
    /// (`/metrics` asks on every scrape).
    versions: imbl::OrdSet<(u64, Uuid)>,
}

impl Model {
    pub fn get(&self, id: &Uuid) -> Option<&Arc<ProjectState>> {
        self.projects.get(id)
    }

    /// A project by id, or by slug when `key` is not a UUID.
    pub fn find(&self, key: &str) -> Option<&Arc<ProjectState>> {
        match key.parse::<Uuid>() {
            Ok(id) => self.projects.get(&id),
            Err(_) => self.projects.get(self.slugs.get(key)?),
        }
    }

    /// Whether a project other than `except` has `slug`.
    pub fn slug_taken(&self, slug: &str, except: Uuid) -> bool {
        self.slugs.get(slug).is_some_and(|id| *id != except)
    }

    /// Which project a management key (by its keyed hash) belongs to.
    pub fn authenticate(&self, hash: &KeyHash) -> Option<Uuid> {
        self.management_keys.get(hash).copied()
    }

    /// All projects (or only `only`), oldest first.
    pub fn list(&self, only: Option<Uuid>) -> Vec<Arc<ProjectState>> {
        let mut v: Vec<Arc<ProjectState>> = match only {
            Some(id) => self.projects.get(&id).cloned().into_iter().collect(),
            None => self.projects.values().cloned().collect(),
        };
        v.sort_by_key(|p| p.project.created_at);
        v
    }

    pub fn projects(&self) -> impl Iterator<Item = &Arc<ProjectState>> {
        self.projects.values()
    }

    pub fn len(&self) -> usize {
        self.projects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.projects.is_empty()
    }

    /// The highest configuration version of any project (0 without projects), O(log n).
    pub fn max_version(&self) -> u64 {
        self.versions.get_max().map_or(0, |(v, _)| *v)
    }

    /// Adds or replaces a project with its indexes.
    pub(super) fn put(&mut self, s: Arc<ProjectState>) {
        let id = s.project.id;
        self.unindex(id);
        self.slugs.insert(s.project.slug.clone(), id);
        for h in hashes(&s) {
            self.management_keys.insert(h, id);
        }
        self.versions.insert((s.version, id));
        self.projects.insert(id, s);
    }

    pub(super) fn remove(&mut self, id: Uuid) {
        self.unindex(id);
        self.projects.remove(&id);
    }

    /// Drops what the indexes hold for the stored copy of project `id`.
    fn unindex(&mut self, id: Uuid) {
        let Some(old) = self.projects.get(&id).cloned() else {
            return;
        };
        self.versions.remove(&(old.version, id));
        if self.slugs.get(&old.project.slug) == Some(&id) {
            self.slugs.remove(&old.project.slug);
        }
        for h in hashes(&old) {
            if self.management_keys.get(&h) == Some(&id) {
                self.management_keys.remove(&h);
            }
        }
    }
}

fn hashes(s: &ProjectState) -> impl Iterator<Item = KeyHash> + '_ {
    s.management_keys
        .iter()
        .filter_map(|k| KeyHash::from_hex(&k.hash))
}

/// Where the registry publishes its model and readers load it. Clones share it.
#[derive(Clone, Default)]
pub struct ReadModel(Arc<ArcSwap<Model>>);

impl ReadModel {
    /// The model as last published, to read several things from one consistent view.
    pub fn load(&self) -> Arc<Model> {
        self.0.load_full()
    }

    /// A project by id or slug.
    pub fn project(&self, key: &str) -> Option<Arc<ProjectState>> {
        self.0.load().find(key).cloned()
    }

    /// Which project a management key belongs to.
    pub fn authenticate(&self, hash: &KeyHash) -> Option<Uuid> {
        self.0.load().authenticate(hash)
    }

    pub(super) fn publish(&self, model: &Model) {
        self.0.store(Arc::new(model.clone()));
    }
}

#[cfg(test)]
mod tests;
