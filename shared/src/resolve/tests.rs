use super::{compile, Layer, Snapshot};
use crate::crypto::SealedSecret;
use crate::model::{ByokPolicy, Function, Project, Route, Target};
use crate::snapshot::{SnapshotCredential, SnapshotProvider};
use proptest::prelude::*;
use uuid::Uuid;

fn provider(slug: &str, models: &[&str]) -> SnapshotProvider {
    SnapshotProvider {
        slug: slug.into(),
        kind: "openai".into(),
        base_url: format!("https://{slug}.example/v1"),
        account: Default::default(),
        default_credential: "default".into(),
        credentials: vec![SnapshotCredential {
            id: "default".into(),
            sealed: SealedSecret {
                alg: "xchacha20poly1305".into(),
                nonce: String::new(),
                ct: String::new(),
            },
        }],
        exposed: models.iter().map(|m| m.to_string()).collect(),
    }
}

fn snap(
    providers: Vec<SnapshotProvider>,
    routes: Vec<Route>,
    functions: Vec<Function>,
) -> Snapshot {
    Snapshot {
        version: 1,
        project: Project {
            id: Uuid::nil(),
            slug: "p".into(),
            name: "P".into(),
            byok: ByokPolicy::Allowed,
            strict_translation: false,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
        },
        providers,
        routes,
        functions,
        keys: vec![],
        limits: None,
        plan: None,
    }
}

fn target(p: &str, m: &str) -> Target {
    Target {
        provider: p.into(),
        model: m.into(),
        credential: None,
        weight: None,
    }
}

fn route(name: &str, targets: Vec<Target>) -> Route {
    Route {
        name: name.into(),
        strategy: crate::model::Strategy::Fallback,
        targets,
        policy: Default::default(),
    }
}

fn func(name: &str, route: Option<&str>, model: Option<&str>) -> Function {
    Function {
        name: name.into(),
        route: route.map(Into::into),
        model: model.map(Into::into),
        defaults: None,
    }
}

#[test]
fn top_down_order() {
    let s = snap(
        vec![
            provider("openai", &["gpt-4o", "gpt-4o-mini"]),
            provider("groq", &["llama"]),
        ],
        vec![
            route(
                "smart",
                vec![target("groq", "llama"), target("openai", "gpt-4o")],
            ),
            // A route that shares its name with a provider model wins over passthrough.
            route("gpt-4o-mini", vec![target("groq", "llama")]),
        ],
        vec![
            func("summarize", Some("smart"), None),
            func("cheap", None, Some("gpt-4o")),
        ],
    );
    let t = compile(&s).expect("compiles");

    let r = t.resolve("summarize").expect("function");
    assert_eq!(
        (r.layer, r.function, r.route),
        (Layer::Function, Some("summarize"), Some("smart"))
    );
    assert_eq!(r.targets[0].model, "llama");

    let r = t.resolve("cheap").expect("function to model");
    assert_eq!((r.layer, r.route), (Layer::Function, None));
    assert_eq!(
        (r.targets[0].provider, r.targets[0].model.as_str()),
        (0, "gpt-4o")
    );

    let r = t.resolve("gpt-4o-mini").expect("route beats passthrough");
    assert_eq!(r.layer, Layer::Route);

    let r = t
        .resolve("openai/gpt-4o-mini")
        .expect("explicit passthrough");
    assert_eq!(
        (r.layer, r.targets[0].model.as_str()),
        (Layer::Passthrough, "gpt-4o-mini")
    );

    let r = t.resolve("llama").expect("bare passthrough");
    assert_eq!((r.layer, r.targets[0].provider), (Layer::Passthrough, 1));

    assert!(t.resolve("nope").is_none());
    assert!(
        t.resolve("groq/gpt-4o").is_none(),
        "explicit name of a model that provider does not expose"
    );
}

#[test]
fn overlap_first_provider_wins_with_warning() {
    let s = snap(
        vec![
            provider("openai", &["gpt-4o"]),
            provider("openai-eu", &["gpt-4o"]),
        ],
        vec![],
        vec![],
    );
    let t = compile(&s).expect("compiles");
    assert_eq!(t.resolve("gpt-4o").map(|r| r.targets[0].provider), Some(0));
    assert_eq!(
        t.resolve("openai-eu/gpt-4o").map(|r| r.targets[0].provider),
        Some(1)
    );
    assert_eq!(t.warnings.len(), 1);
    assert!(t.warnings[0].message.contains("openai-eu/gpt-4o"));
}

#[test]
fn every_problem_reported_at_once() {
    let mut bad_cred = target("openai", "gpt-4o");
    bad_cred.credential = Some("missing".into());
    let s = snap(
        vec![provider("openai", &["gpt-4o"]), provider("openai", &[])],
        vec![
            route(
                "r1",
                vec![target("nope", "x"), target("openai", "gpt-5"), bad_cred],
            ),
            route("empty", vec![]),
        ],
        vec![
            func("f1", Some("missing-route"), None),
            func("f2", None, Some("unknown-model")),
            func("f3", None, None),
            func("f4", None, Some("f1")),
        ],
    );
    let problems = compile(&s).expect_err("must fail");
    let ats: Vec<&str> = problems.iter().map(|p| p.at.as_str()).collect();
    for want in [
        "providers[openai]",
        "routes[r1].targets[0].provider",
        "routes[r1].targets[1].model",
        "routes[r1].targets[2].credential",
        "routes[empty]",
        "functions[f1].route",
        "functions[f2].model",
        "functions[f3]",
        "functions[f4].model",
    ] {
        assert!(ats.contains(&want), "missing {want} in {ats:?}");
    }
}

#[test]
fn names_lists_each_once_with_top_layer() {
    let s = snap(
        vec![provider("openai", &["gpt-4o"])],
        vec![route("gpt-4o", vec![target("openai", "gpt-4o")])],
        vec![func("sum", None, Some("gpt-4o"))],
    );
    let t = compile(&s).expect("compiles");
    assert_eq!(
        t.names(),
        vec![
            ("gpt-4o", Layer::Route),
            ("openai/gpt-4o", Layer::Passthrough),
            ("sum", Layer::Function)
        ]
    );
}

fn arb_snapshot() -> impl proptest::strategy::Strategy<Value = Snapshot> {
    let names = prop::sample::select(vec!["a", "b", "c", "m1", "m2", "a/m1"]);
    let providers = prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::collection::vec(names.clone(), 0..3),
        ),
        0..4,
    );
    let routes = prop::collection::vec(
        (
            names.clone(),
            prop::collection::vec((names.clone(), names.clone()), 0..3),
        ),
        0..3,
    );
    let functions = prop::collection::vec(
        (
            names.clone(),
            prop::option::of(names.clone()),
            prop::option::of(names),
        ),
        0..3,
    );
    (providers, routes, functions).prop_map(|(ps, rs, fs)| {
        snap(
            ps.into_iter()
                .map(|(slug, ms)| provider(slug, &ms))
                .collect(),
            rs.into_iter()
                .map(|(n, ts)| route(n, ts.into_iter().map(|(p, m)| target(p, m)).collect()))
                .collect(),
            fs.into_iter().map(|(n, r, m)| func(n, r, m)).collect(),
        )
    })
}

proptest! {
    /// Random snapshots compile or report problems; when they compile, every name listed resolves
    /// to targets whose provider exists and exposes the model.
    #[test]
    fn compiled_tables_are_consistent(s in arb_snapshot()) {
        if let Ok(t) = compile(&s) {
            for (name, layer) in t.names() {
                let r = t.resolve(name).expect("listed names resolve");
                prop_assert_eq!(r.layer, layer);
                prop_assert!(!r.targets.is_empty());
                for tg in r.targets {
                    let p = &t.providers[tg.provider];
                    prop_assert!(p.exposed.contains(&tg.model));
                }
            }
        }
    }
}

#[test]
fn a_providers_address_is_read_once_and_used_for_urls_under_its_base() {
    let p = super::CompiledProvider::new("p", "openai", "http://127.0.0.1:8080/v1", vec![]);
    assert_eq!(
        p.address_for("http://127.0.0.1:8080/v1/chat/completions"),
        None
    );
    assert_eq!(p.address_for("http://127.0.0.1:8080/v1"), None);
    assert_eq!(
        p.address_for("http://127.0.0.1:8080/v10/x"),
        Some(("127.0.0.1", Some(8080))),
        "not under the base: read from the URL itself"
    );
    assert_eq!(
        p.address_for("https://bedrock-runtime.us-east-1.amazonaws.com/model/x"),
        Some(("bedrock-runtime.us-east-1.amazonaws.com", Some(443)))
    );
    assert!(
        std::ptr::eq(p.trace_attrs(), p.trace_attrs()),
        "encoded once"
    );
    assert_eq!(
        *p.trace_attrs(),
        crate::otel::genai::ProviderAttrs::new("openai", "p", "127.0.0.1", Some(8080))
    );
    let compiled =
        compile(&snap(vec![provider("openai", &["gpt-4o"])], vec![], vec![])).expect("compiles");
    assert_eq!(
        *compiled.providers[0].trace_attrs(),
        crate::otel::genai::ProviderAttrs::new("openai", "openai", "openai.example", Some(443)),
        "the base URL's address"
    );
}
