//! The project itself: created empty, renamed, its name, BYOK policy and provider order edited.

use chrono::{DateTime, Utc};
use to11_shared::model::{ByokPolicy, Project, ProjectState};
use uuid::Uuid;

use super::DomainError;

/// A new project with nothing in it yet (version 0 until its first commit).
pub fn new_project(
    id: Uuid,
    slug: String,
    name: &str,
    byok: ByokPolicy,
    now: DateTime<Utc>,
) -> ProjectState {
    ProjectState {
        project: Project {
            id,
            slug,
            name: name.trim().to_string(),
            byok,
            strict_translation: false,
            created_at: now,
        },
        version: 0,
        providers: vec![],
        keys: vec![],
        management_keys: vec![],
        routes: vec![],
        functions: vec![],
        limits: None,
        plan: None,
        alert_webhook: None,
    }
}

/// The slug a project gets from its name when none is given: lowercase ASCII letters and digits,
/// every other run of characters one '-', at most 64 characters.
pub fn slug_from_name(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').chars().take(64).collect()
}

/// Gives the project another slug. Whether another project has it is the registry's question,
/// which sees every project.
pub fn rename(state: &mut ProjectState, slug: String) {
    state.project.slug = slug;
}

/// What `PATCH /projects/{p}` may change besides the slug; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectEdit {
    pub name: Option<String>,
    pub byok: Option<ByokPolicy>,
    pub strict_translation: Option<bool>,
    /// A permutation of the connected providers' slugs: decides which provider serves a bare
    /// model name several expose.
    pub provider_order: Option<Vec<String>>,
}

/// Applies an edit. A provider order that is not a permutation of the connected providers is
/// refused, listing them.
pub fn edit(state: &mut ProjectState, edit: ProjectEdit) -> Result<(), DomainError> {
    if let Some(order) = &edit.provider_order {
        let mut want = order.clone();
        want.sort();
        let mut have: Vec<String> = state.providers.iter().map(|p| p.slug.clone()).collect();
        have.sort();
        if want != have {
            return Err(DomainError::Invalid(format!(
                "provider_order must list every connected provider exactly once: {}",
                have.join(", ")
            )));
        }
    }
    if let Some(n) = edit.name {
        state.project.name = n.trim().to_string();
    }
    if let Some(b) = edit.byok {
        state.project.byok = b;
    }
    if let Some(s) = edit.strict_translation {
        state.project.strict_translation = s;
    }
    if let Some(order) = edit.provider_order {
        state
            .providers
            .sort_by_key(|p| order.iter().position(|o| *o == p.slug));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{project_with_providers, slugs};

    #[test]
    fn slugs_from_names() {
        let long = "x".repeat(80);
        for (name, want) in [
            ("Acme", "acme"),
            ("  Acme  Labs!", "acme-labs"),
            ("a--b__c", "a-b-c"),
            ("---", ""),
            ("Café 42", "caf-42"),
            (long.as_str(), &long[..64]),
        ] {
            assert_eq!(slug_from_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn new_projects_are_empty_with_a_trimmed_name() {
        let now = Utc::now();
        let s = new_project(
            Uuid::nil(),
            "acme".into(),
            "  Acme ",
            ByokPolicy::Required,
            now,
        );
        assert_eq!(s.project.name, "Acme");
        assert_eq!(s.project.slug, "acme");
        assert_eq!(s.project.byok, ByokPolicy::Required);
        assert_eq!(s.project.created_at, now);
        assert_eq!(s.version, 0);
        assert!(s.providers.is_empty() && s.keys.is_empty() && s.routes.is_empty());
    }

    #[test]
    fn rename_changes_only_the_slug() {
        let mut s = project_with_providers(&["a"]);
        let name = s.project.name.clone();
        rename(&mut s, "renamed".into());
        assert_eq!(s.project.slug, "renamed");
        assert_eq!(s.project.name, name);
    }

    #[test]
    fn edits() {
        let order = |o: &[&str]| Some(o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let refused = |have: &str| {
            Err(DomainError::Invalid(format!(
                "provider_order must list every connected provider exactly once: {have}"
            )))
        };
        struct Case {
            edit: ProjectEdit,
            want: Result<(), DomainError>,
            order_after: &'static [&'static str],
        }
        let cases = [
            Case {
                edit: ProjectEdit::default(),
                want: Ok(()),
                order_after: &["b", "a", "c"],
            },
            Case {
                edit: ProjectEdit {
                    provider_order: order(&["a", "b", "c"]),
                    ..Default::default()
                },
                want: Ok(()),
                order_after: &["a", "b", "c"],
            },
            Case {
                edit: ProjectEdit {
                    provider_order: order(&["c", "a", "b"]),
                    ..Default::default()
                },
                want: Ok(()),
                order_after: &["c", "a", "b"],
            },
            Case {
                edit: ProjectEdit {
                    provider_order: order(&["a", "b"]),
                    ..Default::default()
                },
                want: refused("a, b, c"),
                order_after: &["b", "a", "c"],
            },
            Case {
                edit: ProjectEdit {
                    provider_order: order(&["a", "b", "c", "c"]),
                    ..Default::default()
                },
                want: refused("a, b, c"),
                order_after: &["b", "a", "c"],
            },
            Case {
                edit: ProjectEdit {
                    name: Some("ignored when refused".into()),
                    provider_order: order(&["a", "b", "x"]),
                    ..Default::default()
                },
                want: refused("a, b, c"),
                order_after: &["b", "a", "c"],
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut s = project_with_providers(&["b", "a", "c"]);
            let before_name = s.project.name.clone();
            let got = edit(&mut s, c.edit);
            assert_eq!(got, c.want, "case {i}");
            assert_eq!(slugs(&s), c.order_after, "case {i}");
            if got.is_err() {
                assert_eq!(
                    s.project.name, before_name,
                    "case {i}: refused edits change nothing"
                );
            }
        }
    }

    #[test]
    fn edits_name_byok_and_strictness() {
        let mut s = project_with_providers(&[]);
        edit(
            &mut s,
            ProjectEdit {
                name: Some("  New name ".into()),
                byok: Some(ByokPolicy::Allowed),
                strict_translation: Some(true),
                provider_order: None,
            },
        )
        .unwrap();
        assert_eq!(s.project.name, "New name");
        assert_eq!(s.project.byok, ByokPolicy::Allowed);
        assert!(s.project.strict_translation);
        edit(&mut s, ProjectEdit::default()).unwrap();
        assert!(s.project.strict_translation, "None leaves it as it is");
    }
}
