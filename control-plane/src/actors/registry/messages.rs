//! The registry's other messages: creating and deleting whole projects, and reads.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use to11_shared::bus::Change;
use to11_shared::crypto::KeyHash;
use to11_shared::model::{CredentialSecret, ProjectState};
use uuid::Uuid;

use super::write::Created;
use super::{Committed, ProjectRegistry, RegistryError};
use crate::domain::{self, DomainError};

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
        if self.slug_taken(&slug, id) {
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
        if !self.projects.contains_key(&id) {
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

/// Read one project by id or slug.
#[derive(Message)]
#[rtype(result = "Option<ProjectState>")]
pub struct GetProject {
    pub key: String,
}

impl Handler<GetProject> for ProjectRegistry {
    type Result = Option<ProjectState>;

    fn handle(&mut self, msg: GetProject, _: &mut Context<Self>) -> Self::Result {
        self.find(&msg.key).cloned()
    }
}

/// Read all projects (or only one, for a management key).
#[derive(Message)]
#[rtype(result = "Vec<ProjectState>")]
pub struct ListProjects {
    pub only: Option<Uuid>,
}

impl Handler<ListProjects> for ProjectRegistry {
    type Result = Vec<ProjectState>;

    fn handle(&mut self, msg: ListProjects, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<ProjectState> = self
            .projects
            .values()
            .filter(|p| msg.only.is_none_or(|o| o == p.project.id))
            .cloned()
            .collect();
        v.sort_by_key(|p| p.project.created_at);
        v
    }
}

/// Which project a management key belongs to.
#[derive(Message)]
#[rtype(result = "Option<Uuid>")]
pub struct AuthenticateManagementKey {
    pub hash: KeyHash,
}

impl Handler<AuthenticateManagementKey> for ProjectRegistry {
    type Result = Option<Uuid>;

    fn handle(&mut self, msg: AuthenticateManagementKey, _: &mut Context<Self>) -> Self::Result {
        self.management_keys.get(&msg.hash).copied()
    }
}

/// Open a provider's stored credential, for rediscovery. Stays inside the control plane.
#[derive(Message)]
#[rtype(result = "Result<(String, String, CredentialSecret), RegistryError>")]
pub struct OpenProviderCredential {
    pub project: Uuid,
    pub provider: String,
}

impl Handler<OpenProviderCredential> for ProjectRegistry {
    type Result = Result<(String, String, CredentialSecret), RegistryError>;

    fn handle(&mut self, msg: OpenProviderCredential, _: &mut Context<Self>) -> Self::Result {
        let state = self
            .projects
            .get(&msg.project)
            .ok_or(RegistryError::NotFound)?;
        let p = state
            .provider(&msg.provider)
            .ok_or(DomainError::NotFound("provider"))?;
        let secret = domain::credentials::open_default(state, &msg.provider, &self.keyring)?;
        Ok((p.kind.clone(), p.base_url.clone(), secret))
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
