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
