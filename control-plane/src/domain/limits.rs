//! Quotas on configuration: how much one project may hold (routes, targets per route, keys,
//! credentials, providers, exposed models, functions) and how long its free-text names may be.
//! Configuration is amplification: one route's targets are the upstream calls one request may
//! make, and every write compiles the whole project, so an unbounded tenant slows every write
//! and every replica.
//!
//! `Limits::check` compares a write's result with the project before it: a count over its limit
//! is refused only when the write makes it grow (an operator who lowers a limit does not lock
//! projects out of unrelated changes), and only names the write introduced are checked.

use std::collections::HashSet;

use to11_shared::model::ProjectState;

use super::DomainError;

/// Per project limits (`TO11_MAX_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub routes: usize,
    pub targets_per_route: usize,
    pub gateway_keys: usize,
    pub management_keys: usize,
    /// Credentials over all of a project's providers.
    pub credentials: usize,
    pub providers: usize,
    pub models_per_provider: usize,
    pub functions: usize,
    /// Characters in a free-text name (project, key, credential names).
    pub name_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            routes: 1_000,
            targets_per_route: 50,
            gateway_keys: 1_000,
            management_keys: 100,
            credentials: 200,
            providers: 100,
            models_per_provider: 2_000,
            functions: 1_000,
            name_length: 200,
        }
    }
}

/// One count a write grew past its limit.
struct Count {
    what: &'static str,
    setting: &'static str,
    max: usize,
    before: usize,
    after: usize,
}

impl Limits {
    /// Refuses `after` when the write from `before` (none: a new project) grew a count past its
    /// limit, or introduced a name that is too long or holds control characters.
    pub fn check(
        &self,
        before: Option<&ProjectState>,
        after: &ProjectState,
    ) -> Result<(), DomainError> {
        for c in self.counts(before, after) {
            if c.after > c.max && c.after > c.before {
                return Err(DomainError::Limit {
                    what: c.what,
                    setting: c.setting,
                    max: c.max,
                });
            }
        }
        self.check_names(before, after)
    }

    fn counts(&self, before: Option<&ProjectState>, after: &ProjectState) -> Vec<Count> {
        let n = |f: &dyn Fn(&ProjectState) -> usize| (before.map_or(0, f), f(after));
        let mut counts = Vec::new();
        let mut push = |what, setting, max, (before, after)| {
            counts.push(Count {
                what,
                setting,
                max,
                before,
                after,
            })
        };
        push(
            "routes",
            "TO11_MAX_ROUTES",
            self.routes,
            n(&|s| s.routes.len()),
        );
        push(
            "functions",
            "TO11_MAX_FUNCTIONS",
            self.functions,
            n(&|s| s.functions.len()),
        );
        push(
            "gateway keys",
            "TO11_MAX_GATEWAY_KEYS",
            self.gateway_keys,
            n(&|s| s.keys.len()),
        );
        push(
            "management keys",
            "TO11_MAX_MANAGEMENT_KEYS",
            self.management_keys,
            n(&|s| s.management_keys.len()),
        );
        push(
            "providers",
            "TO11_MAX_PROVIDERS",
            self.providers,
            n(&|s| s.providers.len()),
        );
        push(
            "credentials",
            "TO11_MAX_CREDENTIALS",
            self.credentials,
            n(&|s| s.providers.iter().map(|p| p.credentials.len()).sum()),
        );
        for r in &after.routes {
            let was = before
                .and_then(|b| b.routes.iter().find(|o| o.name == r.name))
                .map_or(0, |o| o.targets.len());
            push(
                "targets in a route",
                "TO11_MAX_TARGETS_PER_ROUTE",
                self.targets_per_route,
                (was, r.targets.len()),
            );
        }
        for p in &after.providers {
            let was = before
                .and_then(|b| b.providers.iter().find(|o| o.slug == p.slug))
                .map_or(0, |o| o.exposed.len());
            push(
                "exposed models of a provider",
                "TO11_MAX_MODELS_PER_PROVIDER",
                self.models_per_provider,
                (was, p.exposed.len()),
            );
        }
        counts
    }

    fn check_names(
        &self,
        before: Option<&ProjectState>,
        after: &ProjectState,
    ) -> Result<(), DomainError> {
        let old: HashSet<(&str, &str)> =
            before.map(names).unwrap_or_default().into_iter().collect();
        for (what, name) in names(after) {
            if old.contains(&(what, name)) {
                continue;
            }
            if name.chars().count() > self.name_length {
                return Err(DomainError::Limit {
                    what: "characters in a name",
                    setting: "TO11_MAX_NAME_LENGTH",
                    max: self.name_length,
                });
            }
            if name.chars().any(char::is_control) {
                return Err(DomainError::Invalid(format!(
                    "the {what} must not contain control characters (line breaks, tabs, escapes)"
                )));
            }
        }
        Ok(())
    }
}

/// Every free-text name and identifier in a project, with what it names.
fn names(s: &ProjectState) -> Vec<(&'static str, &str)> {
    let mut v = vec![
        ("project name", s.project.name.as_str()),
        ("project slug", s.project.slug.as_str()),
    ];
    for p in &s.providers {
        v.push(("provider slug", p.slug.as_str()));
        for c in &p.credentials {
            v.push(("credential id", c.id.as_str()));
            v.push(("credential name", c.name.as_str()));
        }
    }
    v.extend(s.keys.iter().map(|k| ("gateway key name", k.name.as_str())));
    v.extend(
        s.management_keys
            .iter()
            .map(|k| ("management key name", k.name.as_str())),
    );
    v.extend(s.routes.iter().map(|r| ("route name", r.name.as_str())));
    v.extend(
        s.functions
            .iter()
            .map(|f| ("function name", f.name.as_str())),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{project_with_providers, route};
    use super::*;

    fn small() -> Limits {
        Limits {
            routes: 2,
            targets_per_route: 3,
            gateway_keys: 2,
            management_keys: 2,
            credentials: 2,
            providers: 2,
            models_per_provider: 2,
            functions: 2,
            name_length: 10,
        }
    }

    fn refused(before: &ProjectState, after: &ProjectState) -> Option<&'static str> {
        match small().check(Some(before), after) {
            Ok(()) => None,
            Err(DomainError::Limit { setting, .. }) => Some(setting),
            Err(e) => panic!("{e}"),
        }
    }

    fn targets(n: usize) -> Vec<(&'static str, &'static str, Option<&'static str>)> {
        vec![("openai", "m1", None); n]
    }

    #[test]
    fn each_count_is_refused_when_it_grows_past_its_limit() {
        let base = project_with_providers(&["openai"]);
        type Grow = fn(&mut ProjectState);
        let cases: [(&str, Grow); 7] = [
            ("TO11_MAX_ROUTES", |s| {
                s.routes = (0..3)
                    .map(|i| route(&format!("r{i}"), &[("openai", "m1", None)]))
                    .collect()
            }),
            ("TO11_MAX_TARGETS_PER_ROUTE", |s| {
                s.routes = vec![route("r", &targets(4))]
            }),
            ("TO11_MAX_PROVIDERS", |s| {
                *s = project_with_providers(&["openai", "b", "c"])
            }),
            ("TO11_MAX_MODELS_PER_PROVIDER", |s| {
                s.providers[0].exposed = vec!["m1".into(), "m2".into(), "m3".into()]
            }),
            ("TO11_MAX_FUNCTIONS", |s| {
                s.functions = (0..3)
                    .map(|i| to11_shared::model::Function {
                        name: format!("f{i}"),
                        route: Some("r".into()),
                        model: None,
                        defaults: None,
                    })
                    .collect()
            }),
            ("TO11_MAX_GATEWAY_KEYS", |s| {
                let k = key();
                s.keys = vec![k.clone(), k.clone(), k];
            }),
            ("TO11_MAX_MANAGEMENT_KEYS", |s| {
                let k = key();
                let m = to11_shared::model::ManagementKey {
                    id: k.id,
                    name: k.name,
                    hash: k.hash,
                    hint: k.hint,
                    created_at: k.created_at,
                };
                s.management_keys = vec![m.clone(), m.clone(), m];
            }),
        ];
        for (setting, grow) in cases {
            let mut after = base.clone();
            grow(&mut after);
            assert_eq!(refused(&base, &after), Some(setting), "{setting}");
        }
    }

    fn key() -> to11_shared::model::GatewayKey {
        to11_shared::model::GatewayKey {
            id: uuid::Uuid::nil(),
            name: "k".into(),
            hash: String::new(),
            hint: String::new(),
            models: None,
            expires_at: None,
            byok: None,
            limits: None,
            created_at: super::super::fixtures::at(0),
        }
    }

    #[test]
    fn a_count_already_over_a_lowered_limit_may_stay_or_shrink() {
        let mut before = project_with_providers(&["openai"]);
        before.routes = vec![route("r", &targets(5))];
        let mut same = before.clone();
        same.project.name = "Renamed".into();
        assert_eq!(refused(&before, &same), None);
        let mut fewer = before.clone();
        fewer.routes = vec![route("r", &targets(4))];
        assert_eq!(refused(&before, &fewer), None);
        let mut more = before.clone();
        more.routes = vec![route("r", &targets(6))];
        assert_eq!(refused(&before, &more), Some("TO11_MAX_TARGETS_PER_ROUTE"));
        // A new project is counted from nothing.
        assert!(small().check(None, &before).is_err());
    }

    #[test]
    fn new_names_are_bounded_and_free_of_control_characters() {
        let before = project_with_providers(&["openai"]);
        let mut long = before.clone();
        long.project.name = "x".repeat(11);
        assert_eq!(refused(&before, &long), Some("TO11_MAX_NAME_LENGTH"));
        let mut ok = before.clone();
        ok.project.name = "é".repeat(10);
        assert_eq!(refused(&before, &ok), None, "characters, not bytes");
        for bad in ["a\nb", "a\tb", "a\u{1b}[31m", "a\u{7f}"] {
            let mut after = before.clone();
            after.project.name = bad.into();
            let e = small().check(Some(&before), &after).unwrap_err();
            assert!(
                matches!(&e, DomainError::Invalid(m) if m.contains("project name") && m.contains("control characters")),
                "{bad:?}: {e}"
            );
        }
        // A name stored before the limit existed does not block other changes.
        let mut old = before.clone();
        old.project.name = "an old long name".into();
        let mut after = old.clone();
        after.routes = vec![route("r", &targets(1))];
        assert_eq!(refused(&old, &after), None);
    }
}
