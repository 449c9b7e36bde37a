//! Compile a snapshot into lookup tables and resolve a model name top-down:
//! function → route → passthrough (`slug/model` or a bare exposed name) → unknown.
//!
//! `compile` reports every problem at once; the control plane refuses a write whose snapshot does
//! not compile, and a replica refuses a snapshot that does not compile. Resolution is a handful of
//! hash-map lookups and allocates nothing.

use std::collections::HashMap;

use crate::FastMap;

use serde::Serialize;

use crate::model::{valid_alias, valid_slug, Strategy};
use crate::snapshot::Snapshot;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where in the configuration, e.g. `routes[smart].targets[1].model`.
    pub at: String,
    pub message: String,
}

fn problem(at: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        at: at.into(),
        message: message.into(),
    }
}

/// One place a request can go: a provider (index into `Tables::providers`), the upstream's model
/// name and the stored credential to use ("" = none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CompiledTarget {
    pub provider: usize,
    pub model: String,
    pub credential: String,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct CompiledProvider {
    pub slug: String,
    pub kind: String,
    pub base_url: String,
    pub exposed: Vec<String>,
    /// The provider's trace attributes, encoded on first use (`trace_attrs`).
    pub trace: std::sync::OnceLock<crate::otel::genai::ProviderAttrs>,
}

impl CompiledProvider {
    pub fn new(slug: &str, kind: &str, base_url: &str, exposed: Vec<String>) -> CompiledProvider {
        CompiledProvider {
            slug: slug.to_string(),
            kind: kind.to_string(),
            base_url: base_url.to_string(),
            exposed,
            trace: Default::default(),
        }
    }

    /// The host and port of `url`, an upstream URL of this provider, when they may differ from
    /// `base_url`'s (`None`: `url` is under `base_url`).
    pub fn address_for<'a>(&self, url: &'a str) -> Option<(&'a str, Option<u16>)> {
        let base = self.base_url.as_str();
        let under = !base.is_empty()
            && url.starts_with(base)
            && (base.ends_with('/')
                || matches!(
                    url.as_bytes().get(base.len()),
                    None | Some(b'/' | b'?' | b'#')
                ));
        (!under).then(|| crate::otel::genai::host_port(url))
    }

    /// The provider's name, slug and base URL's address as trace attributes, encoded on first
    /// use (a replica that does not trace never reads its providers' addresses).
    pub fn trace_attrs(&self) -> &crate::otel::genai::ProviderAttrs {
        self.trace.get_or_init(|| {
            let (host, port) = crate::otel::genai::host_port(&self.base_url);
            crate::otel::genai::ProviderAttrs::new(&self.kind, &self.slug, host, port)
        })
    }
}

#[derive(Clone, Debug)]
pub struct CompiledRoute {
    pub strategy: Strategy,
    pub targets: Vec<CompiledTarget>,
    pub policy: crate::policy::RoutePolicy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionDest {
    Route(String),
    Model(String),
}

#[derive(Clone, Debug)]
pub struct CompiledFunction {
    pub dest: FunctionDest,
    pub defaults: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The lookup tables of one project.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub providers: Vec<CompiledProvider>,
    pub functions: FastMap<String, CompiledFunction>,
    pub routes: FastMap<String, CompiledRoute>,
    /// Both `slug/model` and bare exposed names; a bare name shared by several providers maps to
    /// the first in provider order.
    pub passthrough: FastMap<String, CompiledTarget>,
    /// Not errors: e.g. a bare model name exposed by several providers (who wins is stated).
    pub warnings: Vec<Problem>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Function,
    Route,
    Passthrough,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Function => "function",
            Layer::Route => "route",
            Layer::Passthrough => "passthrough",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Resolution<'a> {
    pub layer: Layer,
    pub function: Option<&'a str>,
    pub route: Option<&'a str>,
    pub strategy: Option<Strategy>,
    /// The targets a request would try, in order. Strategies beyond "first target" belong to the
    /// data plane's routing; the order here is the route's own.
    pub targets: &'a [CompiledTarget],
    /// A function's request defaults (fields the request does not set).
    pub defaults: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The route's failure policy (`None` for passthrough: one target, no retries).
    pub policy: Option<&'a crate::policy::RoutePolicy>,
}

impl Tables {
    /// Top-down resolution of a requested model name.
    pub fn resolve<'a>(&'a self, name: &str) -> Option<Resolution<'a>> {
        if let Some((fname, f)) = self.functions.get_key_value(name) {
            let inner = match &f.dest {
                FunctionDest::Route(r) => self.resolve_below_functions(r),
                FunctionDest::Model(m) => self.resolve_below_functions(m),
            }?;
            return Some(Resolution {
                layer: Layer::Function,
                function: Some(fname),
                defaults: f.defaults.as_ref(),
                ..inner
            });
        }
        self.resolve_below_functions(name)
    }

    fn resolve_below_functions<'a>(&'a self, name: &str) -> Option<Resolution<'a>> {
        if let Some((rname, r)) = self.routes.get_key_value(name) {
            return Some(Resolution {
                layer: Layer::Route,
                function: None,
                route: Some(rname),
                strategy: Some(r.strategy),
                targets: &r.targets,
                defaults: None,
                policy: Some(&r.policy),
            });
        }
        self.passthrough.get(name).map(|t| Resolution {
            layer: Layer::Passthrough,
            function: None,
            route: None,
            strategy: None,
            targets: std::slice::from_ref(t),
            defaults: None,
            policy: None,
        })
    }

    /// Every name a client may call, sorted, each with the layer it resolves through.
    pub fn names(&self) -> Vec<(&str, Layer)> {
        let mut out: Vec<(&str, Layer)> = self
            .functions
            .keys()
            .map(|k| (k.as_str(), Layer::Function))
            .chain(
                self.routes
                    .keys()
                    .filter(|k| !self.functions.contains_key(*k))
                    .map(|k| (k.as_str(), Layer::Route)),
            )
            .chain(
                self.passthrough
                    .keys()
                    .filter(|k| !self.functions.contains_key(*k) && !self.routes.contains_key(*k))
                    .map(|k| (k.as_str(), Layer::Passthrough)),
            )
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// Compiles a snapshot into lookup tables, or lists every problem found.
pub fn compile(s: &Snapshot) -> Result<Tables, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut t = Tables::default();
    let mut by_slug: HashMap<&str, usize> = HashMap::new();

    for (i, p) in s.providers.iter().enumerate() {
        let at = format!("providers[{}]", p.slug);
        if !valid_slug(&p.slug) {
            problems.push(problem(
                &at,
                "slug must be lowercase letters, digits and '-' (max 64)",
            ));
        }
        if by_slug.insert(&p.slug, i).is_some() {
            problems.push(problem(&at, "duplicate provider slug"));
        }
        if !p.default_credential.is_empty()
            && !p.credentials.iter().any(|c| c.id == p.default_credential)
        {
            problems.push(problem(
                format!("{at}.default_credential"),
                format!("credential '{}' does not exist", p.default_credential),
            ));
        }
        t.providers.push(CompiledProvider::new(
            &p.slug,
            &p.kind,
            &p.base_url,
            p.exposed.clone(),
        ));
    }

    // Passthrough: explicit `slug/model` first, then bare names in provider order.
    for (i, p) in s.providers.iter().enumerate() {
        for m in &p.exposed {
            let target = CompiledTarget {
                provider: i,
                model: m.clone(),
                credential: p.default_credential.clone(),
                weight: 1,
            };
            t.passthrough.insert(format!("{}/{}", p.slug, m), target);
        }
    }
    for (i, p) in s.providers.iter().enumerate() {
        for m in &p.exposed {
            match t.passthrough.get(m) {
                Some(existing) => {
                    let winner = &s.providers[existing.provider].slug;
                    if existing.model == *m && existing.provider != i {
                        t.warnings.push(problem(
                            format!("providers[{}].exposed", p.slug),
                            format!("model '{m}' is also exposed by '{winner}', which comes first in provider order and serves the bare name; call '{}/{m}' to reach this one", p.slug),
                        ));
                    } else if existing.model != *m {
                        t.warnings.push(problem(
                            format!("providers[{}].exposed", p.slug),
                            format!("bare model name '{m}' equals the explicit name '{m}' of provider '{winner}', which wins"),
                        ));
                    }
                }
                None => {
                    t.passthrough.insert(
                        m.clone(),
                        CompiledTarget {
                            provider: i,
                            model: m.clone(),
                            credential: s.providers[i].default_credential.clone(),
                            weight: 1,
                        },
                    );
                }
            }
        }
    }

    for r in &s.routes {
        let at = format!("routes[{}]", r.name);
        if !valid_alias(&r.name) {
            problems.push(problem(
                &at,
                "route name must be 1-128 letters, digits, '.', '_', ':' or '-' (no '/')",
            ));
        }
        if t.routes.contains_key(&r.name) {
            problems.push(problem(&at, "duplicate route name"));
            continue;
        }
        if r.targets.is_empty() {
            problems.push(problem(&at, "a route needs at least one target"));
        }
        let mut targets = Vec::with_capacity(r.targets.len());
        for (ti, tg) in r.targets.iter().enumerate() {
            let tat = format!("{at}.targets[{ti}]");
            let Some(&pi) = by_slug.get(tg.provider.as_str()) else {
                problems.push(problem(
                    format!("{tat}.provider"),
                    format!("provider '{}' is not connected", tg.provider),
                ));
                continue;
            };
            let p = &s.providers[pi];
            if !p.exposed.contains(&tg.model) {
                problems.push(problem(
                    format!("{tat}.model"),
                    format!(
                        "model '{}' is not exposed by provider '{}'",
                        tg.model, tg.provider
                    ),
                ));
            }
            let credential = tg
                .credential
                .clone()
                .unwrap_or_else(|| p.default_credential.clone());
            if !credential.is_empty() && !p.credentials.iter().any(|c| c.id == credential) {
                problems.push(problem(
                    format!("{tat}.credential"),
                    format!(
                        "credential '{credential}' does not exist on provider '{}'",
                        p.slug
                    ),
                ));
            }
            if tg.weight == Some(0) && r.strategy == Strategy::Loadbalance {
                problems.push(problem(
                    format!("{tat}.weight"),
                    "weight must be at least 1",
                ));
            }
            targets.push(CompiledTarget {
                provider: pi,
                model: tg.model.clone(),
                credential,
                weight: tg.weight.unwrap_or(1),
            });
        }
        for p in r.policy.problems() {
            problems.push(problem(format!("{at}.policy"), p));
        }
        t.routes.insert(
            r.name.clone(),
            CompiledRoute {
                strategy: r.strategy,
                targets,
                policy: r.policy.clone(),
            },
        );
    }

    for f in &s.functions {
        let at = format!("functions[{}]", f.name);
        if !valid_alias(&f.name) {
            problems.push(problem(
                &at,
                "function name must be 1-128 letters, digits, '.', '_', ':' or '-' (no '/')",
            ));
        }
        if f.defaults
            .as_ref()
            .is_some_and(|d| d.contains_key("model") || d.contains_key("stream"))
        {
            problems.push(problem(
                format!("{at}.defaults"),
                "defaults may not set 'model' or 'stream'",
            ));
        }
        if t.functions.contains_key(&f.name) {
            problems.push(problem(&at, "duplicate function name"));
            continue;
        }
        let dest = match (&f.route, &f.model) {
            (Some(r), None) => {
                if !t.routes.contains_key(r) {
                    problems.push(problem(
                        format!("{at}.route"),
                        format!("route '{r}' does not exist"),
                    ));
                }
                FunctionDest::Route(r.clone())
            }
            (None, Some(m)) => {
                if s.functions.iter().any(|g| g.name == *m) {
                    problems.push(problem(
                        format!("{at}.model"),
                        format!("'{m}' is a function; a function resolves to a route or a model, not another function"),
                    ));
                } else if !t.routes.contains_key(m) && !t.passthrough.contains_key(m) {
                    problems.push(problem(
                        format!("{at}.model"),
                        format!("model '{m}' is not exposed by any connected provider"),
                    ));
                }
                FunctionDest::Model(m.clone())
            }
            _ => {
                problems.push(problem(
                    &at,
                    "a function names exactly one of 'route' or 'model'",
                ));
                continue;
            }
        };
        t.functions.insert(
            f.name.clone(),
            CompiledFunction {
                dest,
                defaults: f.defaults.clone(),
            },
        );
    }

    let mut key_hashes = std::collections::HashSet::new();
    for k in &s.keys {
        if !key_hashes.insert(k.hash.as_str()) {
            problems.push(problem(format!("keys[{}]", k.id), "duplicate key hash"));
        }
    }

    if problems.is_empty() {
        Ok(t)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
