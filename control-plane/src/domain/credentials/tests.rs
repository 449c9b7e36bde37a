use to11_shared::model::CredentialSecret;
use to11_shared::snapshot::credential_owner;

use super::*;
use crate::domain::fixtures::{api_key, at, keyring, project_with_providers, route};

fn opened(s: &ProjectState, keyring: &Keyring, provider: &str, id: &str) -> Option<String> {
    let c = s
        .provider(provider)?
        .credentials
        .iter()
        .find(|c| c.id == id)?;
    let owner = credential_owner(&s.project.id, provider, id);
    let clear = keyring.open(&owner, &c.sealed).ok()?;
    let secret: CredentialSecret = serde_json::from_slice(&clear).ok()?;
    secret.api_key().map(str::to_string)
}

fn new(provider: &str, id: &str, key: &str, make_default: bool) -> NewCredential {
    NewCredential {
        provider: provider.into(),
        id: id.into(),
        name: None,
        secret: api_key(key),
        make_default,
    }
}

/// Provider `a` with credentials `one` (its default) and `two`; route `r` uses `two`, route
/// `d` uses the default.
fn with_credentials() -> ProjectState {
    let mut s = project_with_providers(&["a", "b"]);
    let k = keyring();
    add(&mut s, new("a", "one", "key-0001", false), &k, at(1)).unwrap();
    add(&mut s, new("a", "two", "key-0002", false), &k, at(2)).unwrap();
    s.routes.push(route("r", &[("a", "m1", Some("two"))]));
    s.routes
        .push(route("d", &[("a", "m1", None), ("b", "m1", None)]));
    s
}

#[test]
fn adds() {
    let k = keyring();
    let mut s = with_credentials();
    let p = s.provider("a").unwrap();
    assert_eq!(
        p.default_credential, "one",
        "a provider without a default gets the first"
    );
    let two = &p.credentials[1];
    assert_eq!(
        (two.name.as_str(), two.hint.as_str(), two.created_at),
        ("two", "…0002", at(2))
    );
    assert_eq!(opened(&s, &k, "a", "two").as_deref(), Some("key-0002"));

    let named = NewCredential {
        name: Some("Spare account".into()),
        ..new("a", "three", "key-0003", true)
    };
    add(&mut s, named, &k, at(3)).unwrap();
    let p = s.provider("a").unwrap();
    assert_eq!(p.default_credential, "three");
    assert_eq!(p.credentials[2].name, "Spare account");

    let cases = [
        (
            new("x", "one", "k", false),
            DomainError::NotFound("provider"),
        ),
        (
            new("a", "two", "k", true),
            DomainError::CredentialExists {
                provider: "a".into(),
                id: "two".into(),
            },
        ),
    ];
    for (n, want) in cases {
        let before = s.clone();
        assert_eq!(add(&mut s, n, &k, at(4)), Err(want));
        assert_eq!(
            s.provider("a").unwrap().credentials.len(),
            before.provider("a").unwrap().credentials.len()
        );
        assert_eq!(s.provider("a").unwrap().default_credential, "three");
    }
    assert_eq!(
        DomainError::CredentialExists {
            provider: "a".into(),
            id: "two".into()
        }
        .to_string(),
        "provider 'a' already has a credential 'two'; rotate it with PUT"
    );
}

#[test]
fn updates() {
    let k = keyring();
    let mut s = with_credentials();
    let rotate = CredentialChange {
        secret: Some(api_key("key-9999")),
        ..Default::default()
    };
    update(&mut s, "a", "two", rotate, &k).unwrap();
    let c = &s.provider("a").unwrap().credentials[1];
    assert_eq!(
        (c.hint.as_str(), c.name.as_str(), c.created_at),
        ("…9999", "two", at(2))
    );
    assert_eq!(opened(&s, &k, "a", "two").as_deref(), Some("key-9999"));
    assert_eq!(opened(&s, &k, "a", "one").as_deref(), Some("key-0001"));

    let rename_and_default = CredentialChange {
        name: Some("Second".into()),
        make_default: true,
        ..Default::default()
    };
    update(&mut s, "a", "two", rename_and_default, &k).unwrap();
    let p = s.provider("a").unwrap();
    assert_eq!(p.default_credential, "two");
    assert_eq!(p.credentials[1].name, "Second");
    assert_eq!(opened(&s, &k, "a", "two").as_deref(), Some("key-9999"));

    for (provider, id, want) in [
        ("x", "one", DomainError::NotFound("provider")),
        ("a", "nine", DomainError::NotFound("credential")),
        ("b", "one", DomainError::NotFound("credential")),
    ] {
        let change = CredentialChange {
            make_default: true,
            ..Default::default()
        };
        assert_eq!(
            update(&mut s, provider, id, change, &k),
            Err(want),
            "{provider}/{id}"
        );
    }
    assert_eq!(s.provider("a").unwrap().default_credential, "two");
}

#[test]
fn removes_only_what_nothing_uses() {
    let mut s = with_credentials();
    add(
        &mut s,
        new("a", "spare", "key-0003", false),
        &keyring(),
        at(3),
    )
    .unwrap();
    let cases = [
        ("x", "one", Err(DomainError::NotFound("credential"))),
        ("a", "nine", Err(DomainError::NotFound("credential"))),
        ("b", "one", Err(DomainError::NotFound("credential"))),
        (
            "a",
            "one",
            Err(DomainError::DefaultCredential {
                provider: "a".into(),
                id: "one".into(),
            }),
        ),
        (
            "a",
            "two",
            Err(DomainError::CredentialInUse {
                id: "two".into(),
                routes: vec!["r".into()],
            }),
        ),
        ("a", "spare", Ok(())),
        ("a", "spare", Err(DomainError::NotFound("credential"))),
    ];
    for (provider, id, want) in cases {
        assert_eq!(remove(&mut s, provider, id), want, "{provider}/{id}");
    }
    let left: Vec<&str> = s
        .provider("a")
        .unwrap()
        .credentials
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(left, ["one", "two"]);
    assert_eq!(
        DomainError::DefaultCredential {
            provider: "a".into(),
            id: "one".into()
        }
        .to_string(),
        "'one' is the default credential of 'a'; make another one the default first"
    );
    assert_eq!(
        DomainError::CredentialInUse {
            id: "two".into(),
            routes: vec!["r".into(), "s".into()]
        }
        .to_string(),
        "credential 'two' is used by route(s): r, s"
    );
}

#[test]
fn routes_using_a_credential() {
    let mut s = with_credentials();
    s.routes.push(route(
        "both",
        &[("a", "m1", Some("one")), ("a", "m2", Some("two"))],
    ));
    s.routes.push(route("other", &[("b", "m1", Some("two"))]));
    for (provider, id, is_default, want) in [
        ("a", "one", true, &["d", "both"][..]),
        ("a", "one", false, &["both"][..]),
        ("a", "two", false, &["r", "both"][..]),
        ("b", "two", false, &["other"][..]),
        ("b", "x", true, &["d"][..]),
        ("c", "one", true, &[][..]),
    ] {
        assert_eq!(
            used_by(&s, provider, id, is_default),
            want,
            "{provider}/{id} {is_default}"
        );
    }
}

#[test]
fn opens_the_default_credential() {
    let k = keyring();
    let mut s = with_credentials();
    let got = open_default(&s, "a", &k).unwrap();
    assert_eq!(got.api_key(), Some("key-0001"));
    let keyless = open_default(&s, "b", &k).unwrap();
    assert_eq!(keyless.api_key(), Some(""));
    assert_eq!(
        open_default(&s, "x", &k).map(|_| ()),
        Err(DomainError::NotFound("provider"))
    );
    let other = Keyring::from_master(&[8; 32]);
    let Err(DomainError::UnreadableCredential(m)) = open_default(&s, "a", &other) else {
        panic!("another master key opens the credential");
    };
    assert!(m.contains("does not open"), "{m}");
    // A credential moved to another provider does not open there.
    let moved = s.provider("a").unwrap().credentials[0].clone();
    let b = s.provider_mut("b").unwrap();
    b.credentials.push(moved);
    b.default_credential = "one".into();
    assert!(matches!(
        open_default(&s, "b", &k),
        Err(DomainError::UnreadableCredential(_))
    ));
}

#[test]
fn clear_credentials_show_their_hint_only() {
    let c = api_key("sk-very-secret-9876");
    assert_eq!(format!("{c:?}"), "ClearCredential(…9876)");
    assert_eq!(c.hint(), "…9876");
    assert!(!c.is_keyless());
    assert!(api_key("").is_keyless());
}
