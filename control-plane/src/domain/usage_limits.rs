//! Usage limits (requests, tokens, concurrency and budgets; `to11_shared::limits`) of a project,
//! of the operator's plan for it, and of its keys. An empty object removes them.

use to11_shared::limits::Limits;
use to11_shared::model::{AlertWebhook, ProjectState};
use uuid::Uuid;

use super::DomainError;

/// Whose limits a change sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsOf {
    /// The project's own (its management key may set them).
    Project,
    /// The operator's plan: enforced besides the project's own, set only by the operator.
    Plan,
    Key(Uuid),
}

impl LimitsOf {
    pub fn name(self) -> String {
        match self {
            LimitsOf::Project => "project".into(),
            LimitsOf::Plan => "plan".into(),
            LimitsOf::Key(id) => format!("key {id}"),
        }
    }
}

/// Sets (or, with nothing in them, removes) the limits of `of`; answers what is stored.
pub fn set_limits(
    state: &mut ProjectState,
    of: LimitsOf,
    limits: Limits,
) -> Result<Option<Limits>, DomainError> {
    let stored = (!limits.is_empty()).then_some(limits);
    let slot = match of {
        LimitsOf::Project => &mut state.limits,
        LimitsOf::Plan => &mut state.plan,
        LimitsOf::Key(id) => {
            &mut state
                .keys
                .iter_mut()
                .find(|k| k.id == id)
                .ok_or(DomainError::NotFound("key"))?
                .limits
        }
    };
    *slot = stored;
    Ok(slot.clone())
}

/// Sets (or, with `None`, removes) where the project's budget alerts are sent.
pub fn set_alert_webhook(state: &mut ProjectState, webhook: Option<AlertWebhook>) {
    state.alert_webhook = webhook;
}

/// The limits stored for `of`, `None` when it has none (or the key does not exist).
pub fn limits_of(state: &ProjectState, of: LimitsOf) -> Result<Option<&Limits>, DomainError> {
    match of {
        LimitsOf::Project => Ok(state.limits.as_ref()),
        LimitsOf::Plan => Ok(state.plan.as_ref()),
        LimitsOf::Key(id) => state
            .keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.limits.as_ref())
            .ok_or(DomainError::NotFound("key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::project_with_providers;

    fn rpm(n: u64) -> Limits {
        Limits {
            requests_per_minute: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn each_owner_has_its_own_slot_and_an_empty_object_removes() {
        let mut s = project_with_providers(&[]);
        for (of, n) in [(LimitsOf::Project, 1), (LimitsOf::Plan, 2)] {
            assert_eq!(set_limits(&mut s, of, rpm(n)).unwrap(), Some(rpm(n)));
        }
        assert_eq!(s.limits, Some(rpm(1)));
        assert_eq!(s.plan, Some(rpm(2)));
        assert_eq!(
            set_limits(&mut s, LimitsOf::Project, Limits::default()).unwrap(),
            None
        );
        assert_eq!(s.limits, None);
        assert_eq!(s.plan, Some(rpm(2)), "the plan is untouched");
        let only_models = Limits {
            models: Some(vec!["a".into()]),
            ..Default::default()
        };
        assert_eq!(
            set_limits(&mut s, LimitsOf::Plan, only_models).unwrap(),
            None
        );
    }

    #[test]
    fn a_missing_key_is_not_found() {
        let mut s = project_with_providers(&[]);
        assert_eq!(
            set_limits(&mut s, LimitsOf::Key(Uuid::from_u128(9)), rpm(1)),
            Err(DomainError::NotFound("key"))
        );
        assert!(limits_of(&s, LimitsOf::Key(Uuid::from_u128(9))).is_err());
    }
}
