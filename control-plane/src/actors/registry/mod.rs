//! `ProjectRegistry`: owns the in-memory model of every project, reloaded from the store at start.
//! Every configuration write goes through it, one at a time (`AtomicResponse`), as a typed
//! command (`commands`) whose domain change is applied to a copy of the project, then compiled,
//! stored and published (`write`). A write that fails at the store marks the project stale; the
//! next write reloads it first, so a write whose outcome is unknown is never silently overwritten
//! by an older copy. Every change to the model is published (`model::ReadModel`), where readers
//! find it without going through the mailbox.
//!
//! Several control planes may share one store. Each commit is a compare-and-set on the project's
//! stored version (`write`), and each registry follows the others' changes: the change
//! notifications replicas follow (`follow`), and a reconcile of the store's index on every
//! watchdog tick (`watch`), each reloading what changed into the model (`Refresh`).

mod commands;
mod error;
mod messages;
mod model;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::crypto::Keyring;
use to11_shared::model::ProjectState;
use to11_shared::resolve::Problem;
use to11_shared::snapshot::{credential_owner, Snapshot};
use uuid::Uuid;

pub use commands::*;
pub use error::RegistryError;
pub use messages::*;
pub use model::{Model, ReadModel};

use crate::domain::limits::Limits;
use crate::store::{Seed, Store, StoreError};

pub struct ProjectRegistry {
    store: Arc<Store>,
    keyring: Keyring,
    /// The current model; changed only here, and published whole after each change.
    model: Model,
    published: ReadModel,
    stale: HashSet<Uuid>,
    /// Fault injection for tests: when false, changes are stored but not announced.
    publish: Arc<AtomicBool>,
    /// How often the store's epoch and index are checked (a flushed store is re-seeded, a new
    /// epoch reloaded, other control planes' changes reloaded).
    epoch_check: std::time::Duration,
    epoch_check_running: bool,
    /// Quotas every write is checked against.
    limits: Limits,
}

/// What a successful write returns.
#[derive(Debug)]
pub struct Committed<T> {
    pub value: T,
    pub state: Arc<ProjectState>,
    pub version: u64,
    pub warnings: Vec<Problem>,
}

impl ProjectRegistry {
    /// Loads every project from the store, and publishes them into `published`.
    pub async fn load(
        store: Arc<Store>,
        keyring: Keyring,
        publish: Arc<AtomicBool>,
        epoch_check: std::time::Duration,
        published: ReadModel,
    ) -> Result<Self, RegistryError> {
        match store.current_epoch().await? {
            Some(epoch) => store.join(epoch),
            None => {
                store.create_epoch().await?;
            }
        }
        let all = store.load_all().await?;
        let slugs: Vec<(String, Uuid)> = all
            .iter()
            .map(|s| (s.project.slug.clone(), s.project.id))
            .collect();
        store.index_slugs(&slugs).await?;
        let mut r = ProjectRegistry {
            store,
            keyring,
            model: Model::default(),
            published,
            stale: HashSet::new(),
            publish,
            epoch_check,
            epoch_check_running: false,
            limits: Limits::default(),
        };
        for s in all {
            r.check_credentials_open(&s)?;
            r.model.put(Arc::new(s));
        }
        r.published.publish(&r.model);
        tracing::info!(
            projects = r.model.len(),
            "loaded configuration from the store"
        );
        Ok(r)
    }

    /// The quotas writes are checked against (default: `Limits::default()`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A master key that does not open the stored credentials is refused at start, instead of
    /// silently serving without them.
    fn check_credentials_open(&self, s: &ProjectState) -> Result<(), RegistryError> {
        credentials_open(&self.keyring, s)
    }

    /// Adds or replaces a project in the model, and publishes the model.
    fn put(&mut self, s: Arc<ProjectState>) {
        self.model.put(s);
        self.published.publish(&self.model);
    }

    /// Removes a project from the model, and publishes the model.
    fn remove(&mut self, id: Uuid) {
        self.model.remove(id);
        self.published.publish(&self.model);
    }

    /// Writes the whole in-memory model into a store that lost its epoch, then announces every
    /// project. Runs with the mailbox paused, so no write interleaves. When another control
    /// plane re-seeded first, its epoch is joined and the store reloaded instead: one writes,
    /// the others follow.
    fn reseed(&mut self, replacing: Option<String>, ctx: &mut Context<Self>) {
        let seeds: Vec<Seed> = self
            .model
            .projects()
            .map(|s| Seed {
                project: s.project.id,
                version: s.version,
                slug: s.project.slug.clone(),
                state: serde_json::to_vec(&**s).unwrap_or_default(),
                snapshot: Snapshot::from_state(s).seal(&self.keyring),
            })
            .collect();
        let max_version = self.model.max_version();
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        let fut = async move {
            if !store
                .reseed(replacing.as_deref(), &seeds, max_version)
                .await?
            {
                return Ok(None);
            }
            if publish {
                for s in &seeds {
                    store
                        .publish(Change {
                            project: s.project,
                            version: s.version,
                        })
                        .await;
                }
            }
            Ok::<_, StoreError>(Some(seeds.len()))
        }
        .into_actor(self)
        .map(|res, act, ctx| match res {
            Ok(Some(n)) => tracing::warn!(
                projects = n,
                "configuration store had lost its epoch; re-seeded it from memory"
            ),
            Ok(None) => {
                tracing::warn!("configuration store was re-seeded by another control plane (or restored); reloading it");
                act.reload_all(ctx);
            }
            Err(e) => {
                tracing::error!(error = %e, "re-seeding the configuration store failed; will retry")
            }
        });
        ctx.wait(fut);
    }

    /// Replaces the model with the store's whole content under the store's current epoch (a
    /// restore, or another control plane's re-seed). Runs with the mailbox paused.
    fn reload_all(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let fut = async move {
            let epoch = store.current_epoch().await?;
            let all = store.load_all().await?;
            Ok::<_, StoreError>((epoch, all))
        }
        .into_actor(self)
        .map(|res, act, _| match res {
            // An empty store never replaces a configuration held in memory: the next check
            // re-seeds over it instead.
            Ok((Some(_), all)) if all.is_empty() && !act.model.is_empty() => {}
            Ok((Some(epoch), all)) => {
                act.store.join(epoch);
                let mut model = Model::default();
                for s in all {
                    model.put(Arc::new(s));
                }
                act.model = model;
                act.stale.clear();
                act.published.publish(&act.model);
                tracing::warn!(
                    projects = act.model.len(),
                    "joined the configuration store's new epoch and reloaded it"
                );
            }
            // Flushed again meanwhile: the next check re-seeds.
            Ok((None, _)) => {}
            Err(e) => {
                tracing::error!(error = %e, "reloading the configuration store failed; will retry")
            }
        });
        ctx.wait(fut);
    }

    /// The watchdog: reads the store's epoch and index without pausing the mailbox (a hung store
    /// must not stall the API). No epoch: re-seed from memory. Another epoch: reload it — unless
    /// it holds no project while this model holds some (a control plane that remembered nothing
    /// initialised a flushed store): then re-seed over it, so an emptied store never wins over a
    /// running control plane's configuration. Ours: reload the projects whose stored version
    /// differs from the model's (other control planes' writes and deletions whose notification
    /// was missed).
    pub(super) fn watch(&mut self, ctx: &mut Context<Self>) {
        if self.epoch_check_running {
            return;
        }
        self.epoch_check_running = true;
        let store = self.store.clone();
        let fut = async move { store.index().await }
            .into_actor(self)
            .map(|res, act, ctx| {
                act.epoch_check_running = false;
                match res {
                    Ok((None, _)) => act.reseed(None, ctx),
                    Ok((Some(epoch), versions)) if epoch != act.store.epoch() => {
                        if versions.is_empty() && !act.model.is_empty() {
                            act.reseed(Some(epoch), ctx);
                        } else {
                            act.reload_all(ctx);
                        }
                    }
                    Ok((Some(_), versions)) => {
                        let projects = differing(&act.model, &versions);
                        if !projects.is_empty() {
                            ctx.address().do_send(Refresh { projects });
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "store check failed"),
                }
            });
        ctx.spawn(fut);
    }
}

/// The projects whose version in the store's index is not the model's: (id, stored version, or
/// `None` when the store no longer has it).
fn differing(model: &Model, index: &HashMap<Uuid, u64>) -> Vec<(Uuid, Option<u64>)> {
    let mut out: Vec<(Uuid, Option<u64>)> = index
        .iter()
        .filter(|(id, v)| model.get(id).is_none_or(|s| s.version < **v))
        .map(|(id, v)| (*id, Some(*v)))
        .collect();
    out.extend(
        model
            .projects()
            .filter(|s| !index.contains_key(&s.project.id))
            .map(|s| (s.project.id, None)),
    );
    out
}

/// Compares the model with the store now (the watchdog's check, out of turn).
#[derive(Message)]
#[rtype(result = "()")]
struct CheckStore;

impl Handler<CheckStore> for ProjectRegistry {
    type Result = ();

    fn handle(&mut self, _: CheckStore, ctx: &mut Context<Self>) {
        self.watch(ctx);
    }
}

/// Follows the change notifications (the ones replicas follow) so that other control planes'
/// writes reach this model within milliseconds: each becomes a `Refresh` of its project.
/// Resubscribes with back-off when the subscription is lost; the watchdog's reconcile covers
/// what was missed meanwhile.
async fn follow(store: Arc<Store>, registry: Addr<ProjectRegistry>) {
    use futures_util::StreamExt;
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match store.subscribe().await {
            Some(Ok(mut changes)) => {
                wait = std::time::Duration::from_millis(100);
                // Subscribed first, then compared with the store: nothing committed before
                // the subscription (or while it was down) is missed.
                registry.do_send(CheckStore);
                while let Some(c) = changes.next().await {
                    registry.do_send(Refresh {
                        projects: vec![(c.project, Some(c.version))],
                    });
                }
                tracing::warn!("lost the change subscription; resubscribing");
            }
            Some(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to changes; retrying"),
            None => return,
        }
        actix_rt::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Whether `keyring` opens every credential of `s` (`WrongMasterKey` names the first it does not).
pub fn credentials_open(keyring: &Keyring, s: &ProjectState) -> Result<(), RegistryError> {
    for p in &s.providers {
        for c in &p.credentials {
            let owner = credential_owner(&s.project.id, &p.slug, &c.id);
            if keyring.open(&owner, &c.sealed).is_err() {
                return Err(RegistryError::WrongMasterKey {
                    project: s.project.slug.clone(),
                    provider: p.slug.clone(),
                    credential: c.id.clone(),
                });
            }
        }
    }
    Ok(())
}

impl Actor for ProjectRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.epoch_check, |act, ctx| act.watch(ctx));
        actix_rt::spawn(follow(self.store.clone(), ctx.address()));
    }
}
