//! Why the registry refused or failed a write (or a start). Rendered for the API by the one
//! conversion in `crate::error`; the registry's own control flow matches on these variants.

use to11_shared::resolve::Problem;

use crate::domain::DomainError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The domain refused the change.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The change would leave a snapshot that does not compile: every problem.
    #[error("the change leaves the configuration invalid ({} problem(s))", .0.len())]
    Invalid(Vec<Problem>),
    /// The store failed or timed out (the write's outcome may be unknown), or lost its epoch.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other control planes kept changing the project first: nothing was written.
    #[error("the project was changed by another control plane {attempts} times while this change was being applied; nothing was changed: retry")]
    Conflict { attempts: u32 },
    /// No project with that id.
    #[error("project not found")]
    NotFound,
    /// At start: the master key does not open a stored credential.
    #[error("TO11_MASTER_KEY does not open the stored credential {project}/{provider}/{credential}: wrong master key")]
    WrongMasterKey {
        project: String,
        provider: String,
        credential: String,
    },
}
