//! Actors of the control plane: `ProjectRegistry` owns the in-memory model and performs every
//! configuration write; `ProviderProber` validates credentials and discovers models.

pub mod prober;
pub mod registry;
