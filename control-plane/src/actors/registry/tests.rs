//! The registry end to end over a local store: commands commit and publish, refusals leave
//! the model and the store as they were, slugs stay unique, a reload publishes what is stored.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use to11_shared::model::{ByokPolicy, ManagementKey, Route, Strategy, Target};

use super::*;
use crate::domain::project::new_project;
use crate::domain::DomainError;
use crate::store::local::LocalStore;

/// A store directory removed when the test ends.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keyring() -> Keyring {
    Keyring::from_master(&[3; 32])
}

async fn registry(dir: &Dir) -> (Addr<ProjectRegistry>, ReadModel, Arc<Store>) {
    let store = Arc::new(Store::Local(LocalStore::open(&dir.0).unwrap()));
    let model = ReadModel::default();
    let publish = Arc::new(AtomicBool::new(true));
    let r = ProjectRegistry::load(
        store.clone(),
        keyring(),
        publish,
        Duration::from_secs(3600),
        model.clone(),
    )
    .await
    .unwrap();
    (r.start(), model, store)
}

fn dir() -> Dir {
    Dir(std::env::temp_dir().join(format!("to11-registry-{}", Uuid::new_v4())))
}

async fn create(addr: &Addr<ProjectRegistry>, slug: &str) -> Result<Uuid, RegistryError> {
    let state = new_project(
        Uuid::new_v4(),
        slug.into(),
        slug,
        ByokPolicy::Allowed,
        Utc::now(),
    );
    let id = state.project.id;
    addr.send(CreateProject { state })
        .await
        .unwrap()
        .map(|_| id)
}

fn management_key(secret: &str) -> ManagementKey {
    ManagementKey {
        id: Uuid::new_v4(),
        name: "ci".into(),
        hash: keyring().key_hash(secret).to_hex(),
        hint: "…".into(),
        created_at: Utc::now(),
    }
}

#[actix_rt::test]
async fn commands_commit_and_publish_before_they_answer() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    assert_eq!(model.project("acme").map(|p| p.project.id), Some(id));

    let key = management_key("to11_mk_secret");
    let c = addr
        .send(IssueManagementKey { project: id, key })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.value.name, "ci");
    assert_eq!(c.state.management_keys.len(), 1);
    // Published before the answer: the key authenticates at once, at the committed version.
    let hash = keyring().key_hash("to11_mk_secret");
    assert_eq!(model.authenticate(&hash), Some(id));
    assert_eq!(model.project("acme").map(|p| p.version), Some(c.version));
    let stored = store.load(id).await.unwrap().unwrap();
    assert_eq!(stored.version, c.version);

    let c = addr
        .send(RenameProject {
            project: id,
            slug: "acme-corp".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(model.project("acme").is_none());
    assert_eq!(
        model.project("acme-corp").map(|p| p.version),
        Some(c.version)
    );
    assert_eq!(
        model.project(&id.to_string()).map(|p| p.project.id),
        Some(id)
    );
    let revoke = RevokeManagementKey {
        project: id,
        id: c.state.management_keys[0].id,
    };
    addr.send(revoke).await.unwrap().unwrap();
    assert_eq!(model.authenticate(&hash), None);
}

#[actix_rt::test]
async fn refusals_leave_model_and_store_as_they_were() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    let before = model.project("acme").unwrap();

    let unknown_key = RevokeGatewayKey {
        project: id,
        id: Uuid::new_v4(),
    };
    let e = addr.send(unknown_key).await.unwrap().unwrap_err();
    assert!(
        matches!(e, RegistryError::Domain(DomainError::NotFound("key"))),
        "{e:?}"
    );

    let route = Route {
        name: "fast".into(),
        strategy: Strategy::default(),
        targets: vec![Target {
            provider: "nowhere".into(),
            model: "m".into(),
            credential: None,
            weight: None,
        }],
        policy: Default::default(),
    };
    let e = addr
        .send(CreateRoute {
            project: id,
            item: route,
        })
        .await
        .unwrap()
        .unwrap_err();
    let RegistryError::Invalid(problems) = e else {
        panic!("a route to an unknown provider compiled: {e:?}");
    };
    assert!(!problems.is_empty());

    let e = addr
        .send(DisconnectProvider {
            project: Uuid::new_v4(),
            provider: "x".into(),
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound), "{e:?}");

    let after = model.project("acme").unwrap();
    assert!(
        Arc::ptr_eq(&before, &after),
        "a refused write published nothing"
    );
    assert!(after.routes.is_empty());
    assert_eq!(
        store.load(id).await.unwrap().unwrap().version,
        before.version
    );
}

#[actix_rt::test]
async fn slugs_stay_unique() {
    let dir = dir();
    let (addr, model, _) = registry(&dir).await;
    let acme = create(&addr, "acme").await.unwrap();
    let globex = create(&addr, "globex").await.unwrap();
    let taken = |e: RegistryError| matches!(e, RegistryError::Domain(DomainError::SlugTaken(s)) if s == "acme");
    assert!(taken(create(&addr, "acme").await.unwrap_err()));
    let rename = |project, slug: &str| RenameProject {
        project,
        slug: slug.into(),
    };
    assert!(taken(
        addr.send(rename(globex, "acme"))
            .await
            .unwrap()
            .unwrap_err()
    ));
    // Its own slug is not taken from itself; a freed slug is free.
    addr.send(rename(acme, "acme")).await.unwrap().unwrap();
    addr.send(rename(acme, "initech")).await.unwrap().unwrap();
    addr.send(rename(globex, "acme")).await.unwrap().unwrap();
    assert_eq!(model.project("acme").map(|p| p.project.id), Some(globex));
    assert_eq!(model.project("initech").map(|p| p.project.id), Some(acme));
    assert!(model.project("globex").is_none());
}

#[actix_rt::test]
async fn deletes_and_reloads() {
    let dir = dir();
    let (addr, model, _) = registry(&dir).await;
    let acme = create(&addr, "acme").await.unwrap();
    let globex = create(&addr, "globex").await.unwrap();
    let key = management_key("to11_mk_acme");
    addr.send(IssueManagementKey { project: acme, key })
        .await
        .unwrap()
        .unwrap();
    let version = addr
        .send(DeleteProject { project: globex })
        .await
        .unwrap()
        .unwrap();
    assert!(model.project("globex").is_none());
    assert_eq!(model.load().len(), 1);
    assert!(matches!(
        addr.send(DeleteProject { project: globex }).await.unwrap(),
        Err(RegistryError::NotFound)
    ));

    // Another registry over the same directory publishes what was stored, at load.
    let (_, reloaded, _) = registry(&dir).await;
    let m = reloaded.load();
    assert_eq!(m.len(), 1);
    assert_eq!(m.find("acme").map(|p| p.project.id), Some(acme));
    assert_eq!(
        m.authenticate(&keyring().key_hash("to11_mk_acme")),
        Some(acme)
    );
    assert!(
        m.max_version() < version,
        "the delete took a version of its own"
    );
}

/// What another control plane does to the store behind this registry's back: a management key
/// added to the stored project, committed with compare-and-set at a new version.
async fn write_elsewhere(store: &Store, id: Uuid, secret: &str) -> u64 {
    let mut s = store.load(id).await.unwrap().unwrap();
    let base = crate::store::Base::of(&s);
    s.management_keys.push(management_key(secret));
    s.version = store.next_version().await.unwrap();
    let sealed = Snapshot::from_state(&s).seal(&keyring());
    store.commit(&s, &sealed, &base).await.unwrap();
    s.version
}

#[actix_rt::test]
async fn a_write_that_conflicts_runs_again_on_the_stored_project_and_loses_nothing() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    let elsewhere = write_elsewhere(&store, id, "to11_mk_other_plane").await;
    // The model still holds the older copy: the commit is refused, the project reloaded and the
    // command applied again to it.
    assert!(model.project("acme").unwrap().version < elsewhere);
    let c = addr
        .send(IssueManagementKey {
            project: id,
            key: management_key("to11_mk_this_plane"),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(c.version > elsewhere);
    let stored = store.load(id).await.unwrap().unwrap();
    assert_eq!(stored.version, c.version);
    assert_eq!(stored.management_keys.len(), 2, "both writes are kept");
    for secret in ["to11_mk_other_plane", "to11_mk_this_plane"] {
        assert_eq!(model.authenticate(&keyring().key_hash(secret)), Some(id));
    }
}

#[actix_rt::test]
async fn a_refusal_on_a_copy_another_plane_made_stale_is_decided_on_the_stored_project() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    write_elsewhere(&store, id, "to11_mk_other_plane").await;
    let key = store.load(id).await.unwrap().unwrap().management_keys[0].id;
    // The model's copy has no such key: on memory alone this would be a 404.
    assert!(model.project("acme").unwrap().management_keys.is_empty());
    addr.send(RevokeManagementKey {
        project: id,
        id: key,
    })
    .await
    .unwrap()
    .unwrap();
    let stored = store.load(id).await.unwrap().unwrap();
    assert!(stored.management_keys.is_empty());
    assert_eq!(model.project("acme").unwrap().version, stored.version);
    // A refusal the stored project confirms is still a refusal, and changes nothing.
    let e = addr
        .send(RevokeManagementKey {
            project: id,
            id: key,
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Domain(DomainError::NotFound(_))),
        "{e:?}"
    );
    assert_eq!(
        store.load(id).await.unwrap().unwrap().version,
        stored.version
    );
}

#[actix_rt::test]
async fn a_delete_of_a_project_another_plane_created_reads_the_store_first() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    // Another plane's creation, committed behind this registry's back (its notification not
    // here yet): on memory alone the delete would be a 404.
    let mut s = new_project(
        Uuid::new_v4(),
        "elsewhere".into(),
        "elsewhere",
        ByokPolicy::Allowed,
        Utc::now(),
    );
    s.version = store.next_version().await.unwrap();
    let sealed = Snapshot::from_state(&s).seal(&keyring());
    store
        .commit(&s, &sealed, &crate::store::Base::default())
        .await
        .unwrap();
    assert!(model.project("elsewhere").is_none());
    let id = s.project.id;
    addr.send(DeleteProject { project: id })
        .await
        .unwrap()
        .unwrap();
    assert!(store.load(id).await.unwrap().is_none());
    // Gone from the store too: now a 404.
    let e = addr
        .send(DeleteProject { project: id })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, RegistryError::NotFound), "{e:?}");
}

#[actix_rt::test]
async fn a_commit_on_an_older_version_is_refused_by_the_store() {
    let dir = dir();
    let (addr, _, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    let old = store.load(id).await.unwrap().unwrap();
    write_elsewhere(&store, id, "to11_mk_first").await;
    let mut late = old.clone();
    late.version = store.next_version().await.unwrap();
    let sealed = Snapshot::from_state(&late).seal(&keyring());
    assert!(matches!(
        store
            .commit(&late, &sealed, &crate::store::Base::of(&old))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store.delete(id, &crate::store::Base::of(&old)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.load(id).await.unwrap().unwrap().management_keys.len(),
        1
    );
}

#[actix_rt::test]
async fn a_delete_after_another_planes_write_reloads_and_deletes() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    write_elsewhere(&store, id, "to11_mk_other_plane").await;
    addr.send(DeleteProject { project: id })
        .await
        .unwrap()
        .unwrap();
    assert!(model.project("acme").is_none());
    assert!(store.load(id).await.unwrap().is_none());
}

#[actix_rt::test]
async fn a_refresh_takes_in_newer_versions_and_deletions_only() {
    let dir = dir();
    let (addr, model, store) = registry(&dir).await;
    let id = create(&addr, "acme").await.unwrap();
    let v = write_elsewhere(&store, id, "to11_mk_other_plane").await;
    // An announcement of a version the model has changes nothing; a newer one is loaded.
    let before = model.load();
    addr.send(Refresh {
        projects: vec![(id, Some(before.get(&id).unwrap().version))],
    })
    .await
    .unwrap();
    assert!(Arc::ptr_eq(&before, &model.load()), "nothing published");
    addr.send(Refresh {
        projects: vec![(id, Some(v))],
    })
    .await
    .unwrap();
    assert_eq!(model.project("acme").unwrap().version, v);
    let hash = keyring().key_hash("to11_mk_other_plane");
    assert_eq!(model.authenticate(&hash), Some(id));
    // Deleted elsewhere: gone from the model too.
    store
        .delete(
            id,
            &crate::store::Base::of(&store.load(id).await.unwrap().unwrap()),
        )
        .await
        .unwrap();
    addr.send(Refresh {
        projects: vec![(id, None)],
    })
    .await
    .unwrap();
    assert!(model.project("acme").is_none());
    assert_eq!(model.authenticate(&hash), None);
}

#[test]
fn differing_finds_newer_new_and_missing_projects() {
    let mut m = Model::default();
    let state = |slug: &str, version| {
        let mut s = new_project(
            Uuid::new_v4(),
            slug.into(),
            slug,
            ByokPolicy::Allowed,
            Utc::now(),
        );
        s.version = version;
        Arc::new(s)
    };
    let (same, older, gone) = (state("a", 3), state("b", 4), state("c", 5));
    for s in [&same, &older, &gone] {
        m.put(s.clone());
    }
    let new = Uuid::new_v4();
    let index = HashMap::from([(same.project.id, 3), (older.project.id, 9), (new, 1)]);
    let mut d = super::differing(&m, &index);
    d.sort();
    let mut want = vec![
        (older.project.id, Some(9)),
        (new, Some(1)),
        (gone.project.id, None),
    ];
    want.sort();
    assert_eq!(d, want);
}
