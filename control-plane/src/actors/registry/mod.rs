//! `ProjectRegistry`: owns the in-memory model of every project, reloaded from the store at start.
//! Every configuration write goes through it, one at a time (`AtomicResponse`), as a typed
//! command (`commands`) whose domain change is applied to a copy of the project, then compiled,
//! stored and published (`write`). A write that fails at the store marks the project stale; the
//! next write reloads it first, so a write whose outcome is unknown is never silently overwritten
//! by an older copy. Every change to the model is published (`model::ReadModel`), where readers
//! find it without going through the mailbox.

mod commands;
mod error;
mod messages;
mod model;
#[cfg(test)]
mod tests;
mod write;

use std::collections::HashSet;
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
    /// How often the store's epoch is checked (a flushed or replaced store is re-seeded).
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
        store.join_epoch().await?;
        let all = store.load_all().await?;
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
        for p in &s.providers {
            for c in &p.credentials {
                let owner = credential_owner(&s.project.id, &p.slug, &c.id);
                if self.keyring.open(&owner, &c.sealed).is_err() {
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
    /// project. Runs with the mailbox paused, so no write interleaves.
    fn reseed(&mut self, ctx: &mut Context<Self>) {
        let seeds: Vec<Seed> = self
            .model
            .projects()
            .map(|s| Seed {
                project: s.project.id,
                version: s.version,
                state: serde_json::to_vec(&**s).unwrap_or_default(),
                snapshot: Snapshot::from_state(s).seal(&self.keyring),
            })
            .collect();
        let max_version = self.model.max_version();
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        let fut = async move {
            store.reseed(&seeds, max_version).await?;
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
            Ok::<usize, StoreError>(seeds.len())
        }
        .into_actor(self)
        .map(|res, _, _| match res {
            Ok(n) => tracing::warn!(
                projects = n,
                "configuration store had lost its epoch; re-seeded it from memory"
            ),
            Err(e) => {
                tracing::error!(error = %e, "re-seeding the configuration store failed; will retry")
            }
        });
        ctx.wait(fut);
    }

    /// Checks the epoch without pausing the mailbox (a hung store must not stall the API); only
    /// the re-seed, once the store has answered that its epoch is gone, pauses it.
    fn check_epoch(&mut self, ctx: &mut Context<Self>) {
        if self.epoch_check_running {
            return;
        }
        self.epoch_check_running = true;
        let store = self.store.clone();
        let fut = async move { store.epoch_intact().await }
            .into_actor(self)
            .map(|intact, act, ctx| {
                act.epoch_check_running = false;
                if let Ok(false) = intact {
                    act.reseed(ctx);
                }
            });
        ctx.spawn(fut);
    }
}

impl Actor for ProjectRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.epoch_check, |act, ctx| act.check_epoch(ctx));
    }
}
