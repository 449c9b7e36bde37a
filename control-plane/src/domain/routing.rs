//! Routes (a public model name → a strategy over targets) and functions (a named task → a route
//! or a model, with request defaults): named objects of a project, created, replaced and deleted
//! the same way. Whether they make sense (targets on connected providers, exposed models,
//! existing credentials, a function's route) is the compile step's question: the registry
//! refuses a write whose snapshot does not compile, with every problem.

use to11_shared::model::{Function, ProjectState, Route};

use super::{remove_one, DomainError};

/// A named object of a project (`Route`, `Function`).
pub trait Named: Clone + serde::Serialize + Send + 'static {
    /// What refusals call it.
    const KIND: &'static str;
    fn name(&self) -> &str;
    fn all(state: &ProjectState) -> &Vec<Self>;
    fn all_mut(state: &mut ProjectState) -> &mut Vec<Self>;
}

impl Named for Route {
    const KIND: &'static str = "route";
    fn name(&self) -> &str {
        &self.name
    }
    fn all(state: &ProjectState) -> &Vec<Self> {
        &state.routes
    }
    fn all_mut(state: &mut ProjectState) -> &mut Vec<Self> {
        &mut state.routes
    }
}

impl Named for Function {
    const KIND: &'static str = "function";
    fn name(&self) -> &str {
        &self.name
    }
    fn all(state: &ProjectState) -> &Vec<Self> {
        &state.functions
    }
    fn all_mut(state: &mut ProjectState) -> &mut Vec<Self> {
        &mut state.functions
    }
}

/// The object named `name`, if any.
pub fn find<'a, T: Named>(state: &'a ProjectState, name: &str) -> Option<&'a T> {
    T::all(state).iter().find(|x| x.name() == name)
}

/// Adds an object whose name is not taken by one of its kind.
pub fn create<T: Named>(state: &mut ProjectState, item: T) -> Result<(), DomainError> {
    if find::<T>(state, item.name()).is_some() {
        return Err(DomainError::AlreadyExists {
            kind: T::KIND,
            name: item.name().to_string(),
        });
    }
    T::all_mut(state).push(item);
    Ok(())
}

/// Replaces the object of the same name, in place.
pub fn replace<T: Named>(state: &mut ProjectState, item: T) -> Result<(), DomainError> {
    let slot = T::all_mut(state)
        .iter_mut()
        .find(|x| x.name() == item.name())
        .ok_or(DomainError::NotFound(T::KIND))?;
    *slot = item;
    Ok(())
}

pub fn delete<T: Named>(state: &mut ProjectState, name: &str) -> Result<(), DomainError> {
    remove_one(T::all_mut(state), |x| x.name() == name, T::KIND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{project_with_providers, route};

    fn function(name: &str, route: &str) -> Function {
        Function {
            name: name.into(),
            route: Some(route.into()),
            model: None,
            defaults: None,
        }
    }

    fn names<T: Named>(s: &ProjectState) -> Vec<&str> {
        T::all(s).iter().map(|x| x.name()).collect()
    }

    #[test]
    fn routes() {
        let mut s = project_with_providers(&["a"]);
        let r = |name: &str, model: &str| route(name, &[("a", model, None)]);
        assert_eq!(create(&mut s, r("fast", "m1")), Ok(()));
        assert_eq!(create(&mut s, r("smart", "m1")), Ok(()));
        // A function may share a route's name: they are different kinds.
        assert_eq!(create(&mut s, function("fast", "smart")), Ok(()));
        let cases: Vec<(&str, Result<(), DomainError>)> = vec![
            ("create taken", create(&mut s, r("fast", "m2"))),
            ("replace", replace(&mut s, r("fast", "m2"))),
            ("replace missing", replace(&mut s, r("slow", "m2"))),
            ("delete", delete::<Route>(&mut s, "smart")),
            ("delete missing", delete::<Route>(&mut s, "smart")),
        ];
        let want = [
            Err(DomainError::AlreadyExists {
                kind: "route",
                name: "fast".into(),
            }),
            Ok(()),
            Err(DomainError::NotFound("route")),
            Ok(()),
            Err(DomainError::NotFound("route")),
        ];
        for ((what, got), want) in cases.into_iter().zip(want) {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(names::<Route>(&s), ["fast"]);
        assert_eq!(
            find::<Route>(&s, "fast").map(|r| r.targets[0].model.as_str()),
            Some("m2")
        );
        assert_eq!(names::<Function>(&s), ["fast"]);
    }

    #[test]
    fn functions() {
        let mut s = project_with_providers(&[]);
        assert_eq!(create(&mut s, function("summarize", "r1")), Ok(()));
        assert_eq!(
            create(&mut s, function("summarize", "r2")),
            Err(DomainError::AlreadyExists {
                kind: "function",
                name: "summarize".into()
            })
        );
        assert_eq!(
            find::<Function>(&s, "summarize").and_then(|f| f.route.as_deref()),
            Some("r1")
        );
        assert_eq!(replace(&mut s, function("summarize", "r2")), Ok(()));
        assert_eq!(
            find::<Function>(&s, "summarize").and_then(|f| f.route.as_deref()),
            Some("r2")
        );
        assert_eq!(
            replace(&mut s, function("translate", "r2")),
            Err(DomainError::NotFound("function"))
        );
        assert_eq!(
            delete::<Function>(&mut s, "translate"),
            Err(DomainError::NotFound("function"))
        );
        assert_eq!(delete::<Function>(&mut s, "summarize"), Ok(()));
        assert!(s.functions.is_empty());
    }
}
