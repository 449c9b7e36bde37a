use chrono::{TimeZone, Utc};
use to11_shared::model::{ByokPolicy, ManagementKey};

use super::*;
use crate::domain::project::new_project;

fn hash(n: u8) -> KeyHash {
    KeyHash([n; 32])
}

fn project(n: u128, slug: &str, keys: &[u8]) -> Arc<ProjectState> {
    let created = Utc
        .timestamp_opt(1_700_000_000 - n as i64, 0)
        .single()
        .unwrap();
    let mut s = new_project(
        Uuid::from_u128(n),
        slug.into(),
        slug,
        ByokPolicy::Allowed,
        created,
    );
    s.version = n as u64 * 10;
    s.management_keys = keys
        .iter()
        .map(|k| ManagementKey {
            id: Uuid::from_u128(*k as u128),
            name: format!("k{k}"),
            hash: hash(*k).to_hex(),
            hint: String::new(),
            created_at: created,
        })
        .collect();
    Arc::new(s)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn found(m: &Model, key: &str) -> Option<Uuid> {
    m.find(key).map(|p| p.project.id)
}

#[test]
fn finds_by_id_slug_and_management_key() {
    let mut m = Model::default();
    m.put(project(1, "acme", &[1, 2]));
    m.put(project(2, "globex", &[3]));
    for (key, want) in [
        ("acme", Some(id(1))),
        ("globex", Some(id(2))),
        ("initech", None),
        (id(2).to_string().as_str(), Some(id(2))),
        (id(3).to_string().as_str(), None),
    ] {
        assert_eq!(found(&m, key), want, "{key}");
    }
    for (h, want) in [
        (1, Some(id(1))),
        (2, Some(id(1))),
        (3, Some(id(2))),
        (4, None),
    ] {
        assert_eq!(m.authenticate(&hash(h)), want, "key {h}");
    }
    assert_eq!((m.len(), m.max_version(), m.is_empty()), (2, 20, false));
}

#[test]
fn a_uuid_key_is_looked_up_as_an_id_only() {
    // A UUID in lowercase is also a valid slug; as before, it names a project by id.
    let mut m = Model::default();
    let uuid_slug = id(9).to_string();
    m.put(project(1, &uuid_slug, &[]));
    assert_eq!(found(&m, &uuid_slug), None);
}

#[test]
fn replacing_a_project_reindexes_it() {
    let mut m = Model::default();
    m.put(project(1, "acme", &[1, 2]));
    m.put(project(2, "globex", &[3]));
    // Renamed, one key revoked, one issued.
    m.put(project(1, "acme-corp", &[2, 4]));
    for (key, want) in [
        ("acme", None),
        ("acme-corp", Some(id(1))),
        ("globex", Some(id(2))),
    ] {
        assert_eq!(found(&m, key), want, "{key}");
    }
    for (h, want) in [
        (1, None),
        (2, Some(id(1))),
        (3, Some(id(2))),
        (4, Some(id(1))),
    ] {
        assert_eq!(m.authenticate(&hash(h)), want, "key {h}");
    }
    for (slug, except, taken) in [
        ("acme", id(2), false),
        ("acme-corp", id(2), true),
        ("acme-corp", id(1), false),
        ("globex", id(1), true),
    ] {
        assert_eq!(m.slug_taken(slug, except), taken, "{slug} except {except}");
    }
    assert_eq!(m.len(), 2);
}

#[test]
fn removing_a_project_drops_its_indexes() {
    let mut m = Model::default();
    m.put(project(1, "acme", &[1]));
    m.put(project(2, "globex", &[2]));
    m.remove(id(1));
    m.remove(id(7));
    assert_eq!(found(&m, "acme"), None);
    assert_eq!(m.authenticate(&hash(1)), None);
    assert_eq!(found(&m, "globex"), Some(id(2)));
    assert_eq!(m.authenticate(&hash(2)), Some(id(2)));
    assert_eq!((m.len(), m.max_version()), (1, 20));
    m.remove(id(2));
    assert!(m.is_empty());
    assert_eq!(m.max_version(), 0);
}

#[test]
fn lists_oldest_first() {
    let mut m = Model::default();
    for n in [2, 3, 1] {
        m.put(project(n, &format!("p{n}"), &[]));
    }
    let ids = |v: Vec<Arc<ProjectState>>| v.iter().map(|p| p.project.id).collect::<Vec<_>>();
    // Project n was created n seconds before the epoch of the fixture.
    assert_eq!(ids(m.list(None)), [id(3), id(2), id(1)]);
    assert_eq!(ids(m.list(Some(id(2)))), [id(2)]);
    assert!(m.list(Some(id(9))).is_empty());
}

#[test]
fn readers_keep_the_model_they_loaded() {
    let published = ReadModel::default();
    let mut m = Model::default();
    m.put(project(1, "acme", &[1]));
    published.publish(&m);
    let before = published.load();
    let acme = published.project("acme").unwrap();
    m.put(project(1, "renamed", &[]));
    m.put(project(2, "globex", &[]));
    published.publish(&m);
    assert_eq!(found(&before, "acme"), Some(id(1)));
    assert_eq!(before.len(), 1);
    assert_eq!(acme.project.slug, "acme");
    assert!(published.project("acme").is_none());
    assert_eq!(
        published.project("renamed").map(|p| p.project.id),
        Some(id(1))
    );
    assert_eq!(published.authenticate(&hash(1)), None);
    assert_eq!(published.load().len(), 2);
}

#[test]
fn the_highest_version_follows_replacements_and_removals() {
    let mut m = Model::default();
    m.put(project(3, "acme", &[]));
    m.put(project(2, "globex", &[]));
    assert_eq!(m.max_version(), 30);
    let mut lower = (*project(3, "acme", &[])).clone();
    lower.version = 5;
    m.put(Arc::new(lower));
    assert_eq!(m.max_version(), 20, "the replaced version no longer counts");
    m.remove(id(2));
    assert_eq!(m.max_version(), 5);
}
