//! What a configuration change means, as plain functions over `to11_shared::model::ProjectState`:
//! connect a provider, apply a discovery, add or rotate a credential, create a route, issue a key…
//! Each takes the state to change, its inputs, and the clock value or keyring it needs, and
//! either changes the state or refuses with a `DomainError` (leaving the state as it was).
//!
//! No I/O, no actor, no HTTP: `ProjectRegistry` applies these to a copy of a project inside its
//! write pipeline (`actors::registry::commands`), and the API renders a `DomainError` through the
//! one conversion in `error`.

pub mod credentials;
pub mod keys;
pub mod limits;
pub mod project;
pub mod providers;
pub mod routing;
pub mod usage_limits;

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The object the change names does not exist (`what`: "provider", "credential", "route"…).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is malformed for this change.
    #[error("{0}")]
    Invalid(String),
    /// Models named that the provider does not list.
    #[error("the provider does not offer: {}", .0.join(", "))]
    UnknownModels(Vec<String>),
    #[error("a project with slug '{0}' already exists")]
    SlugTaken(String),
    #[error("a provider with slug '{0}' is already connected; pass another 'slug' (e.g. '{0}-2') to connect a second one")]
    ProviderConnected(String),
    #[error("provider '{provider}' already has a credential '{id}'; rotate it with PUT")]
    CredentialExists { provider: String, id: String },
    #[error(
        "'{id}' is the default credential of '{provider}'; make another one the default first"
    )]
    DefaultCredential { provider: String, id: String },
    #[error("credential '{id}' is used by route(s): {}", .routes.join(", "))]
    CredentialInUse { id: String, routes: Vec<String> },
    /// A route or function of that name exists (`kind`: "route" or "function").
    #[error("a {kind} named '{name}' already exists; replace it with PUT")]
    AlreadyExists { kind: &'static str, name: String },
    /// The change would make a project hold more than a quota allows.
    #[error("a project may hold at most {max} {what} (the operator's {setting})")]
    Limit {
        what: &'static str,
        setting: &'static str,
        max: usize,
    },
    /// A stored credential does not open or does not parse (the store or the master key is wrong).
    #[error("stored credential: {0}")]
    UnreadableCredential(String),
}

/// Removes the one item `matches` selects, or refuses naming `what`.
pub(crate) fn remove_one<T>(
    items: &mut Vec<T>,
    matches: impl Fn(&T) -> bool,
    what: &'static str,
) -> Result<(), DomainError> {
    let before = items.len();
    items.retain(|i| !matches(i));
    if items.len() == before {
        return Err(DomainError::NotFound(what));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fixtures;
