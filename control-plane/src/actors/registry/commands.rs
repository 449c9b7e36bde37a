//! The verbs of configuration: one message per change the API can ask of `ProjectRegistry`.
//! Each names its project and, inside the write pipeline (`ProjectRegistry::write`), applies a
//! `domain` function to the registry's copy of that project; the registry then compiles, stores
//! and publishes the result, and answers `Committed` with the command's value.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use to11_shared::crypto::Keyring;
use to11_shared::model::{GatewayKey, ManagementKey, ModelInfo, ProjectState};
use uuid::Uuid;

use super::{Committed, ProjectRegistry, RegistryError};
use crate::domain::credentials::{self, CredentialChange, NewCredential};
use crate::domain::keys;
use crate::domain::project::{self, ProjectEdit};
use crate::domain::providers::{self, DiscoveryDiff, NewProvider};
use crate::domain::routing::{self, Named};
use crate::domain::usage_limits::{self, LimitsOf};
use crate::domain::DomainError;

/// A change to one existing project.
///
/// A command is cloned so that a write another control plane got in first can run it again on
/// the reloaded project (`write::CONFLICT_ATTEMPTS`).
pub trait ProjectCommand: Clone + Send + 'static {
    /// What the command answers besides the committed state.
    type Value: Send + 'static;

    /// The project it changes.
    fn project(&self) -> Uuid;

    /// A project slug the change takes, which no other project may have. Checked by the
    /// registry, which sees every project, before the write.
    fn claims_slug(&self) -> Option<&str> {
        None
    }

    /// How the audit log names the change: the command's name and what it targets inside the
    /// project (ids, slugs, names; never a secret).
    fn audit(&self) -> (&'static str, Option<String>);

    /// Applies the change to the registry's copy of the project.
    fn apply(self, state: &mut ProjectState, keyring: &Keyring)
        -> Result<Self::Value, DomainError>;
}

impl<C> Handler<C> for ProjectRegistry
where
    C: ProjectCommand + Message<Result = Result<Committed<C::Value>, RegistryError>>,
{
    type Result = AtomicResponse<Self, Result<Committed<C::Value>, RegistryError>>;

    fn handle(&mut self, command: C, _: &mut Context<Self>) -> Self::Result {
        if let Some(slug) = command.claims_slug() {
            if self.model.slug_taken(slug, command.project()) {
                let taken = DomainError::SlugTaken(slug.to_string());
                return AtomicResponse::new(Box::pin(fut::ready(Err(taken.into()))));
            }
        }
        self.write(command.project(), None, command)
    }
}

/// Declares what each command answers, as its actix `Message`.
macro_rules! answers {
    ($($command:ident => $value:ty;)*) => {$(
        impl Message for $command {
            type Result = Result<Committed<$value>, RegistryError>;
        }
    )*};
}

answers! {
    RenameProject => ();
    EditProject => ();
    IssueManagementKey => ManagementKey;
    RevokeManagementKey => ();
    IssueGatewayKey => GatewayKey;
    RevokeGatewayKey => ();
    SetLimits => Option<to11_shared::limits::Limits>;
    SetAlertWebhook => ();
    ConnectProvider => ();
    SetExposedModels => ();
    ApplyDiscovery => Option<DiscoveryDiff>;
    DisconnectProvider => ();
    AddCredential => ();
    UpdateCredential => ();
    RemoveCredential => ();
}

/// Gives a project another slug, unless another project has it.
#[derive(Clone)]
pub struct RenameProject {
    pub project: Uuid,
    pub slug: String,
}

impl ProjectCommand for RenameProject {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn claims_slug(&self) -> Option<&str> {
        Some(&self.slug)
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("RenameProject", Some(self.slug.clone()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        project::rename(state, self.slug);
        Ok(())
    }
}

/// Changes a project's name, BYOK policy or provider order.
#[derive(Clone)]
pub struct EditProject {
    pub project: Uuid,
    pub edit: ProjectEdit,
}

impl ProjectCommand for EditProject {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("EditProject", None)
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        project::edit(state, self.edit)
    }
}

/// Adds a minted management key (its secret stays with the caller).
#[derive(Clone)]
pub struct IssueManagementKey {
    pub project: Uuid,
    pub key: ManagementKey,
}

impl ProjectCommand for IssueManagementKey {
    type Value = ManagementKey;
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("IssueManagementKey", Some(self.key.id.to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<ManagementKey, DomainError> {
        Ok(keys::issue_management_key(state, self.key))
    }
}

#[derive(Clone)]
pub struct RevokeManagementKey {
    pub project: Uuid,
    pub id: Uuid,
}

impl ProjectCommand for RevokeManagementKey {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("RevokeManagementKey", Some(self.id.to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        keys::revoke_management_key(state, self.id)
    }
}

/// Adds a minted gateway key (its secret stays with the caller).
#[derive(Clone)]
pub struct IssueGatewayKey {
    pub project: Uuid,
    pub key: GatewayKey,
}

impl ProjectCommand for IssueGatewayKey {
    type Value = GatewayKey;
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("IssueGatewayKey", Some(self.key.id.to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<GatewayKey, DomainError> {
        Ok(keys::issue_gateway_key(state, self.key))
    }
}

/// Sets the usage limits of a project, of the operator's plan for it, or of a key.
#[derive(Clone)]
pub struct SetLimits {
    pub project: Uuid,
    pub of: LimitsOf,
    pub limits: to11_shared::limits::Limits,
}

impl ProjectCommand for SetLimits {
    type Value = Option<to11_shared::limits::Limits>;
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("SetLimits", Some(self.of.name()))
    }
    fn apply(
        self,
        state: &mut ProjectState,
        _: &Keyring,
    ) -> Result<Option<to11_shared::limits::Limits>, DomainError> {
        usage_limits::set_limits(state, self.of, self.limits)
    }
}

/// Sets or removes where a project's budget alerts are sent.
#[derive(Clone)]
pub struct SetAlertWebhook {
    pub project: Uuid,
    pub webhook: Option<to11_shared::model::AlertWebhook>,
}

impl ProjectCommand for SetAlertWebhook {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        (
            "SetAlertWebhook",
            self.webhook.as_ref().map(|w| w.url.clone()),
        )
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        usage_limits::set_alert_webhook(state, self.webhook);
        Ok(())
    }
}

#[derive(Clone)]
pub struct RevokeGatewayKey {
    pub project: Uuid,
    pub id: Uuid,
}

impl ProjectCommand for RevokeGatewayKey {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("RevokeGatewayKey", Some(self.id.to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        keys::revoke_gateway_key(state, self.id)
    }
}

/// Connects a provider validated and discovered `at`; its credential is sealed here.
#[derive(Clone)]
pub struct ConnectProvider {
    pub project: Uuid,
    pub provider: NewProvider,
    pub at: DateTime<Utc>,
}

impl ProjectCommand for ConnectProvider {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("ConnectProvider", Some(self.provider.slug.clone()))
    }
    fn apply(self, state: &mut ProjectState, keyring: &Keyring) -> Result<(), DomainError> {
        providers::connect(state, self.provider, keyring, self.at)
    }
}

/// Replaces the models a provider exposes.
#[derive(Clone)]
pub struct SetExposedModels {
    pub project: Uuid,
    pub provider: String,
    pub exposed: Vec<String>,
}

impl ProjectCommand for SetExposedModels {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("SetExposedModels", Some(self.provider.clone()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        providers::set_exposed(state, &self.provider, self.exposed)
    }
}

/// Records a rediscovery made `at`: the models found (answering what changed), or why it failed.
#[derive(Clone)]
pub struct ApplyDiscovery {
    pub project: Uuid,
    pub provider: String,
    pub outcome: Result<Vec<ModelInfo>, String>,
    pub at: DateTime<Utc>,
}

impl ProjectCommand for ApplyDiscovery {
    type Value = Option<DiscoveryDiff>;
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("ApplyDiscovery", Some(self.provider.clone()))
    }
    fn apply(
        self,
        state: &mut ProjectState,
        _: &Keyring,
    ) -> Result<Option<DiscoveryDiff>, DomainError> {
        match self.outcome {
            Ok(models) => {
                providers::apply_discovery(state, &self.provider, models, self.at).map(Some)
            }
            Err(m) => providers::record_discovery_failure(state, &self.provider, m).map(|_| None),
        }
    }
}

#[derive(Clone)]
pub struct DisconnectProvider {
    pub project: Uuid,
    pub provider: String,
}

impl ProjectCommand for DisconnectProvider {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        ("DisconnectProvider", Some(self.provider.clone()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        providers::disconnect(state, &self.provider)
    }
}

/// Adds a credential (validated by the caller) `at`; sealed here.
#[derive(Clone)]
pub struct AddCredential {
    pub project: Uuid,
    pub credential: NewCredential,
    pub at: DateTime<Utc>,
}

impl ProjectCommand for AddCredential {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        (
            "AddCredential",
            Some(format!(
                "{}/{}",
                self.credential.provider, self.credential.id
            )),
        )
    }
    fn apply(self, state: &mut ProjectState, keyring: &Keyring) -> Result<(), DomainError> {
        credentials::add(state, self.credential, keyring, self.at)
    }
}

/// Rotates, renames or makes default a credential.
#[derive(Clone)]
pub struct UpdateCredential {
    pub project: Uuid,
    pub provider: String,
    pub id: String,
    pub change: CredentialChange,
}

impl ProjectCommand for UpdateCredential {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        (
            "UpdateCredential",
            Some(format!("{}/{}", self.provider, self.id)),
        )
    }
    fn apply(self, state: &mut ProjectState, keyring: &Keyring) -> Result<(), DomainError> {
        credentials::update(state, &self.provider, &self.id, self.change, keyring)
    }
}

#[derive(Clone)]
pub struct RemoveCredential {
    pub project: Uuid,
    pub provider: String,
    pub id: String,
}

impl ProjectCommand for RemoveCredential {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        (
            "RemoveCredential",
            Some(format!("{}/{}", self.provider, self.id)),
        )
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        credentials::remove(state, &self.provider, &self.id)
    }
}

/// Creates a route or a function (`CreateRoute`, `CreateFunction`).
#[derive(Clone)]
pub struct Create<T> {
    pub project: Uuid,
    pub item: T,
}

pub type CreateRoute = Create<to11_shared::model::Route>;
pub type CreateFunction = Create<to11_shared::model::Function>;

impl<T: Named> Message for Create<T> {
    type Result = Result<Committed<()>, RegistryError>;
}

impl<T: Named> ProjectCommand for Create<T> {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        let action = if T::KIND == "route" {
            "CreateRoute"
        } else {
            "CreateFunction"
        };
        (action, Some(self.item.name().to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        routing::create(state, self.item)
    }
}

/// Replaces a route or a function of the same name (`ReplaceRoute`, `ReplaceFunction`).
#[derive(Clone)]
pub struct Replace<T> {
    pub project: Uuid,
    pub item: T,
}

pub type ReplaceRoute = Replace<to11_shared::model::Route>;
pub type ReplaceFunction = Replace<to11_shared::model::Function>;

impl<T: Named> Message for Replace<T> {
    type Result = Result<Committed<()>, RegistryError>;
}

impl<T: Named> ProjectCommand for Replace<T> {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        let action = if T::KIND == "route" {
            "ReplaceRoute"
        } else {
            "ReplaceFunction"
        };
        (action, Some(self.item.name().to_string()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        routing::replace(state, self.item)
    }
}

/// Deletes a route or a function by name (`DeleteRoute`, `DeleteFunction`).
#[derive(Clone)]
pub struct Delete<T> {
    pub project: Uuid,
    pub name: String,
    pub kind: std::marker::PhantomData<T>,
}

pub type DeleteRoute = Delete<to11_shared::model::Route>;
pub type DeleteFunction = Delete<to11_shared::model::Function>;

impl<T: Named> Delete<T> {
    pub fn new(project: Uuid, name: String) -> Self {
        Delete {
            project,
            name,
            kind: std::marker::PhantomData,
        }
    }
}

impl<T: Named> Message for Delete<T> {
    type Result = Result<Committed<()>, RegistryError>;
}

impl<T: Named> ProjectCommand for Delete<T> {
    type Value = ();
    fn project(&self) -> Uuid {
        self.project
    }
    fn audit(&self) -> (&'static str, Option<String>) {
        let action = if T::KIND == "route" {
            "DeleteRoute"
        } else {
            "DeleteFunction"
        };
        (action, Some(self.name.clone()))
    }
    fn apply(self, state: &mut ProjectState, _: &Keyring) -> Result<(), DomainError> {
        routing::delete::<T>(state, &self.name)
    }
}
