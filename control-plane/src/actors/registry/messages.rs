//! The registry's other messages: creating and deleting whole projects, and pinging the store.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::model::ProjectState;
use uuid::Uuid;

use super::write::Created;
use super::{Committed, ProjectRegistry, RegistryError};
use crate::domain::DomainError;

/// Create a project; its slug must be unused.
#[derive(Message)]
#[rtype(result = "Result<Committed<()>, RegistryError>")]
pub struct CreateProject {
    pub state: ProjectState,
}

impl Handler<CreateProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<Committed<()>, RegistryError>>;

    fn handle(&mut self, msg: CreateProject, _: &mut Context<Self>) -> Self::Result {
        let slug = msg.state.project.slug.clone();
        let id = msg.state.project.id;
        if self.model.slug_taken(&slug, id) {
            let taken = DomainError::SlugTaken(slug);
            return AtomicResponse::new(Box::pin(fut::ready(Err(taken.into()))));
        }
        self.write(id, Some(msg.state), Created(id))
    }
}

/// Delete a project and everything in it; replicas drop it.
#[derive(Message)]
#[rtype(result = "Result<u64, RegistryError>")]
pub struct DeleteProject {
    pub project: Uuid,
}

impl Handler<DeleteProject> for ProjectRegistry {
    type Result = AtomicResponse<Self, Result<u64, RegistryError>>;

    fn handle(&mut self, msg: DeleteProject, _: &mut Context<Self>) -> Self::Result {
        let id = msg.project;
        if self.model.get(&id).is_none() {
            return AtomicResponse::new(Box::pin(fut::ready(Err(RegistryError::NotFound))));
        }
        let store = self.store.clone();
        let publish = self.publish.load(Ordering::Relaxed);
        let fut = async move {
            let version = store.next_version().await?;
            store.delete(id, version).await?;
            if publish {
                store
                    .publish(Change {
                        project: id,
                        version,
                    })
                    .await;
            }
            Ok::<_, RegistryError>(version)
        }
        .into_actor(self)
        .map(move |res, act, _| {
            match &res {
                Ok(_) => act.remove(id),
                Err(_) => {
                    act.stale.insert(id);
                }
            }
            res
        });
        AtomicResponse::new(Box::pin(fut))
    }
}

/// Whether the store answers (for `/readyz`).
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct PingStore;

impl Handler<PingStore> for ProjectRegistry {
    type Result = ResponseFuture<Result<(), RegistryError>>;

    fn handle(&mut self, _: PingStore, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.ping().await.map_err(RegistryError::from) })
    }
}
