//! Preparing a target's upstream request: its plan (`to11_shared::upstream::plan`) and its body —
//! the client's as it came, with the model replaced, with a function's defaults, or translated
//! through the plan's steps. Computed once per distinct (provider, model) and kept for the
//! request's other attempts; the client's body is parsed at most once for translations.

use std::rc::Rc;

use bytes::Bytes;
use serde_json::{Map, Value};
use to11_shared::body::{apply_defaults, apply_defaults_to, replace_model, Scan};
use to11_shared::catalog::StreamUsage;
use to11_shared::resolve::CompiledTarget;
use to11_shared::translate::{pair, Asked, Target, TranslateError, Translation};
use to11_shared::upstream::{plan, BodyEdit, ProviderApi, Surface};
use to11_shared::usage::UsageFormat;
use to11_shared::ErrorCode;

use super::images::Images;
use crate::config::Settings;
use crate::error::GatewayError;
use crate::state::ProjectLive;

/// One target's upstream request, ready to send (and to send again).
#[derive(Debug)]
pub struct Prepared {
    pub url: String,
    pub body: Bytes,
    /// Headers sent when the client did not send them.
    pub default_headers: &'static [(&'static str, &'static str)],
    /// How the answer comes back, when it changes form.
    pub translation: Option<Translation>,
    /// What the answer translation needs to know of the request.
    pub asked: Asked,
    /// The usage format of the upstream's answers.
    pub usage: UsageFormat,
    /// The gateway asked for this stream's usage on the client's behalf: what that adds is
    /// removed before the client sees it.
    pub strip_usage: bool,
}

impl Prepared {
    /// The translation that reads answers, if they do not pass as they came.
    pub fn answer_translation(&self) -> Option<&Translation> {
        self.translation.as_ref().filter(|t| !t.answers_pass())
    }
}

/// What preparing a target gave.
pub enum Prepare {
    Ready(Rc<Prepared>),
    /// The target cannot serve this request (its API, or a feature the translation cannot
    /// express): the next target is tried; the reason is reported if none can.
    Unsupported(String),
}

/// What every target of one request shares.
pub struct Request<'a> {
    pub surface: Surface,
    /// The model the client asked for.
    pub model: &'a str,
    pub streaming: bool,
    pub query: Option<&'a str>,
    pub body: &'a Bytes,
    pub scan: &'a Scan<'a>,
    /// A function's defaults, in the client's terms.
    pub defaults: Option<&'a Map<String, Value>>,
    /// The route asks for strict translation (the project may too).
    pub strict: bool,
}

/// Prepares targets of one request, caching each result.
pub struct Preparer<'a> {
    project: &'a ProjectLive,
    request: Request<'a>,
    settings: &'a Settings,
    images: Images<'a>,
    /// The client's body as a JSON object with the defaults in, for the first translation.
    parsed: Option<Map<String, Value>>,
    /// Targets prepared so far (the first in place: most requests have one).
    done: smallvec::SmallVec<[(usize, &'a str, Rc<Prepared>); 1]>,
}

impl<'a> Preparer<'a> {
    pub fn new(project: &'a ProjectLive, request: Request<'a>, settings: &'a Settings) -> Self {
        Preparer {
            project,
            request,
            settings,
            images: Images::default(),
            parsed: None,
            done: smallvec::SmallVec::new(),
        }
    }

    /// Images fetched for this request are charged to `budget`.
    pub fn with_budget(mut self, budget: &'a crate::budget::MemoryBudget) -> Self {
        self.images = Images::new(Some(budget));
        self
    }

    /// The upstream request of `target`; a malformed client body is the client's error.
    pub async fn prepare(&mut self, target: &'a CompiledTarget) -> Result<Prepare, GatewayError> {
        if let Some((_, _, p)) = self
            .done
            .iter()
            .find(|(i, m, _)| *i == target.provider && *m == target.model)
        {
            return Ok(Prepare::Ready(p.clone()));
        }
        let api = &self.project.apis[target.provider];
        let r = &self.request;
        let plan = match plan(api, r.surface, &target.model, r.streaming, r.query) {
            Ok(p) => p,
            Err(why) => return Ok(Prepare::Unsupported(why.to_string())),
        };
        let strip_usage = plan.ask_usage && !self.request.scan.include_usage;
        let (body, asked) = match plan.body {
            BodyEdit::SetModel => (
                self.native(&target.model, true, strip_usage)?,
                Asked::default(),
            ),
            BodyEdit::Keep => (self.native(&target.model, false, false)?, Asked::default()),
            BodyEdit::Translate(t) => match self.translate(t, target, api).await? {
                Ok((_, asked))
                    if !asked.dropped.is_empty()
                        && (self.request.strict || self.project.strict_translation) =>
                {
                    return Ok(Prepare::Unsupported(format!(
                        "provider '{}' has no equivalent of {} (strict translation: nothing is dropped)",
                        api.slug,
                        asked.dropped.names()
                    )))
                }
                Ok(done) => done,
                Err(why) => {
                    return Ok(Prepare::Unsupported(format!(
                        "provider '{}': {why}",
                        api.slug
                    )))
                }
            },
        };
        let prepared = Rc::new(Prepared {
            translation: plan.translation().copied(),
            url: plan.url,
            body,
            default_headers: plan.default_headers,
            asked,
            usage: plan.usage,
            strip_usage,
        });
        self.done
            .push((target.provider, &target.model, prepared.clone()));
        Ok(Prepare::Ready(prepared))
    }

    /// The client's body for a target that speaks its API: the model written in when
    /// `set_model` and it differs, a function's defaults added, the stream's usage asked for when
    /// `ask_usage`; every other byte as it came.
    fn native(&self, model: &str, set_model: bool, ask_usage: bool) -> Result<Bytes, GatewayError> {
        let r = &self.request;
        let mut body = r.body.clone();
        if set_model && model != r.model {
            let span = r.scan.model_span.ok_or_else(|| {
                GatewayError::new(
                    ErrorCode::InvalidJson,
                    "could not locate 'model' in the body",
                )
            })?;
            body = replace_model(&body, span, model).into();
        }
        if let Some(defaults) = r.defaults {
            body = apply_defaults(&body, r.scan, defaults)
                .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?
                .into();
        }
        if ask_usage {
            body = ask_for_usage(body, r.scan)?;
        }
        Ok(body)
    }

    /// The client's body through `t`'s steps (images fetched and inlined before a step that
    /// needs them); `Err` inside says the target cannot express the request.
    async fn translate(
        &mut self,
        t: Translation,
        target: &CompiledTarget,
        api: &ProviderApi,
    ) -> Result<Result<(Bytes, Asked), TranslateError>, GatewayError> {
        let mut v = match self.parsed.take() {
            Some(v) => v,
            None => self.parse()?,
        };
        let mut asked = Asked::default();
        for (i, step) in t.steps.iter().enumerate() {
            if step.inline_images {
                self.images.inline(&mut v, self.settings).await?;
            }
            let goal = Target {
                model: &target.model,
                max_tokens_field: api.max_tokens_field,
                // A stream's usage is asked for when the next step is the gateway's own (it
                // reads it), or when the target only reports it when asked.
                ask_usage: i + 1 < t.steps.len() || api.stream_usage == StreamUsage::Ask,
                cache_points: t
                    .steps
                    .get(i + 1)
                    .is_some_and(|next| std::ptr::eq(*next, &pair::CHAT_TO_CONVERSE)),
            };
            v = match Translation::request_step(step, v, &goal, &mut asked) {
                Ok(v) => v,
                Err(TranslateError::Invalid(m)) => {
                    return Err(GatewayError::new(ErrorCode::BadRequest, m))
                }
                Err(unsupported) => return Ok(Err(unsupported)),
            };
        }
        let body = serde_json::to_vec(&v)
            .map_err(|e| GatewayError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(Ok((body.into(), asked)))
    }

    /// The client's body as a JSON object, a function's defaults in (they are in the client's
    /// terms, so they go in before translating).
    fn parse(&self) -> Result<Map<String, Value>, GatewayError> {
        let mut v = pair::parse_object(self.request.body)
            .map_err(|e| GatewayError::new(ErrorCode::InvalidJson, e.to_string()))?;
        if let Some(d) = self.request.defaults {
            apply_defaults_to(&mut v, d);
        }
        Ok(v)
    }
}

/// `stream_options.include_usage: true` added to a body (spliced in when the body has no
/// `stream_options`, else set in it).
fn ask_for_usage(body: Bytes, scan: &Scan<'_>) -> Result<Bytes, GatewayError> {
    let bad = |e: String| GatewayError::new(ErrorCode::InvalidJson, e);
    if !scan.keys.iter().any(|k| k == "stream_options") {
        let mut add = Map::new();
        add.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
        return Ok(apply_defaults(&body, scan, &add)
            .map_err(|e| bad(e.to_string()))?
            .into());
    }
    let mut v = pair::parse_object(&body).map_err(|e| bad(e.to_string()))?;
    match v.get_mut("stream_options") {
        Some(Value::Object(o)) => {
            o.insert("include_usage".into(), true.into());
        }
        _ => {
            v.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true}),
            );
        }
    }
    Ok(serde_json::to_vec(&v)
        .map_err(|e| bad(e.to_string()))?
        .into())
}
