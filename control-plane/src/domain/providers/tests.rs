use to11_shared::model::CredentialSecret;
use to11_shared::snapshot::credential_owner;

use super::*;
use crate::domain::fixtures::{api_key, at, keyring, models, project_with_providers, strings};

/// A list of model names in a table of cases.
type Names = &'static [&'static str];

fn new_provider(slug: &str, key: &str) -> NewProvider {
    NewProvider {
        slug: slug.into(),
        kind: "openai".into(),
        base_url: "https://api.example.com/v1".into(),
        account: Default::default(),
        credential: api_key(key),
        discovered: models(&["m1", "m2"]),
        exposed: strings(&["m1"]),
    }
}

#[test]
fn connect_stores_the_credential_sealed_as_the_default() {
    let mut s = project_with_providers(&["a"]);
    let k = keyring();
    connect(&mut s, new_provider("b", "sk-secret-1234"), &k, at(5)).unwrap();
    let p = s.provider("b").unwrap();
    assert_eq!(p.kind, "openai");
    assert_eq!(p.base_url, "https://api.example.com/v1");
    assert_eq!(p.default_credential, FIRST_CREDENTIAL);
    assert_eq!(p.exposed, ["m1"]);
    assert_eq!(p.discovered, models(&["m1", "m2"]));
    assert_eq!(
        (p.validated_at, p.discovered_at, p.created_at),
        (Some(at(5)), Some(at(5)), at(5))
    );
    assert_eq!(p.last_error, None);
    let [c] = p.credentials.as_slice() else {
        panic!("one credential: {:?}", p.credentials);
    };
    assert_eq!((c.id.as_str(), c.name.as_str()), ("default", "default"));
    assert_eq!(c.hint, "…1234");
    assert_eq!(c.created_at, at(5));
    let owner = credential_owner(&s.project.id, "b", "default");
    let clear: CredentialSecret =
        serde_json::from_slice(&k.open(&owner, &c.sealed).unwrap()).unwrap();
    assert_eq!(clear.api_key(), Some("sk-secret-1234"));
    // Sealed for its owner: it does not open as another provider's credential.
    let elsewhere = credential_owner(&s.project.id, "a", "default");
    assert!(k.open(&elsewhere, &c.sealed).is_err());
}

#[test]
fn connect_keyless_servers_without_a_credential() {
    let mut s = project_with_providers(&[]);
    connect(&mut s, new_provider("local", ""), &keyring(), at(1)).unwrap();
    let p = s.provider("local").unwrap();
    assert!(p.credentials.is_empty());
    assert_eq!(p.default_credential, "");
}

#[test]
fn connect_refuses_a_slug_in_use() {
    let mut s = project_with_providers(&["a"]);
    let before = s.providers.len();
    let got = connect(&mut s, new_provider("a", "k"), &keyring(), at(1));
    assert_eq!(got, Err(DomainError::ProviderConnected("a".into())));
    assert_eq!(
        got.unwrap_err().to_string(),
        "a provider with slug 'a' is already connected; pass another 'slug' (e.g. 'a-2') to connect a second one"
    );
    assert_eq!(s.providers.len(), before);
    assert_eq!(
        ensure_unconnected(&s, "a"),
        Err(DomainError::ProviderConnected("a".into()))
    );
    assert_eq!(ensure_unconnected(&s, "b"), Ok(()));
}

#[test]
fn exposed_models_chosen_at_connect() {
    let discovered = models(&["m1", "m2", "m3"]);
    let cases: [(Option<Names>, Result<Names, Names>); 6] = [
        (None, Ok(&["m1", "m2", "m3"])),
        (Some(&[]), Ok(&[])),
        (Some(&["m2"]), Ok(&["m2"])),
        (Some(&["m2", "m2", "m1"]), Ok(&["m2", "m1"])),
        (Some(&["m1", "x", "m2", "y"]), Err(&["x", "y"])),
        (Some(&["x", "x"]), Err(&["x", "x"])),
    ];
    for (wanted, want) in cases {
        let got = choose_exposed(wanted.map(strings), &discovered);
        let want = want
            .map(strings)
            .map_err(|u| DomainError::UnknownModels(strings(u)));
        assert_eq!(got, want, "{wanted:?}");
    }
}

#[test]
fn set_exposed_models() {
    let cases: [(&str, Names, Result<(), DomainError>, Names); 6] = [
        ("a", &["m2"], Ok(()), &["m2"]),
        ("a", &["m1", "m2"], Ok(()), &["m1", "m2"]),
        ("a", &["m2", "m2"], Ok(()), &["m2"]),
        ("a", &[], Ok(()), &[]),
        (
            "a",
            &["m3", "m1"],
            Err(DomainError::UnknownModels(strings(&["m3"]))),
            &["m1"],
        ),
        (
            "b",
            &["m1"],
            Err(DomainError::NotFound("provider")),
            &["m1"],
        ),
    ];
    for (slug, exposed, want, after) in cases {
        let mut s = project_with_providers(&["a"]);
        assert_eq!(
            set_exposed(&mut s, slug, strings(exposed)),
            want,
            "{slug} {exposed:?}"
        );
        assert_eq!(
            s.provider("a").unwrap().exposed,
            after,
            "{slug} {exposed:?}"
        );
    }
    assert_eq!(
        DomainError::UnknownModels(strings(&["x", "y"])).to_string(),
        "the provider does not offer: x, y"
    );
}

#[test]
fn discovery_results_and_their_difference() {
    // The fixture's provider discovered m1, m2 and exposes m1.
    let cases: [(Names, Names, Names, Names); 4] = [
        (&["m1", "m2"], &[], &[], &[]),
        (&["m1", "m2", "m3"], &["m3"], &[], &[]),
        (&["m2", "m4"], &["m4"], &["m1"], &["m1"]),
        (&[], &[], &["m1", "m2"], &["m1"]),
    ];
    for (found, added, removed, missing) in cases {
        let mut s = project_with_providers(&["a"]);
        s.provider_mut("a").unwrap().last_error = Some("earlier failure".into());
        let diff = apply_discovery(&mut s, "a", models(found), at(9)).unwrap();
        let want = DiscoveryDiff {
            added: strings(added),
            removed: strings(removed),
            exposed_missing: strings(missing),
        };
        assert_eq!(diff, want, "{found:?}");
        let p = s.provider("a").unwrap();
        assert_eq!(p.discovered, models(found));
        assert_eq!(p.exposed, ["m1"], "the exposed set is the project's choice");
        assert_eq!(
            (p.discovered_at, p.validated_at),
            (Some(at(9)), Some(at(9)))
        );
        assert_eq!(p.last_error, None);
    }
    let mut s = project_with_providers(&["a"]);
    assert_eq!(
        apply_discovery(&mut s, "b", models(&["m1"]), at(9)),
        Err(DomainError::NotFound("provider"))
    );
}

#[test]
fn discovery_failures_are_recorded() {
    let mut s = project_with_providers(&["a"]);
    record_discovery_failure(&mut s, "a", "invalid key".into()).unwrap();
    let p = s.provider("a").unwrap();
    assert_eq!(p.last_error.as_deref(), Some("invalid key"));
    assert_eq!(
        p.discovered,
        models(&["m1", "m2"]),
        "what was discovered stays"
    );
    assert_eq!(p.discovered_at, Some(at(0)));
    assert_eq!(
        record_discovery_failure(&mut s, "b", "x".into()),
        Err(DomainError::NotFound("provider"))
    );
}

#[test]
fn disconnects() {
    let cases: [(&str, Result<(), DomainError>, &[&str]); 3] = [
        ("b", Ok(()), &["a", "c"]),
        ("a", Ok(()), &["b", "c"]),
        (
            "x",
            Err(DomainError::NotFound("provider")),
            &["a", "b", "c"],
        ),
    ];
    for (slug, want, left) in cases {
        let mut s = project_with_providers(&["a", "b", "c"]);
        assert_eq!(disconnect(&mut s, slug), want, "{slug}");
        assert_eq!(crate::domain::fixtures::slugs(&s), left, "{slug}");
    }
}
