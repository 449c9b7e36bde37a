//! Where a request goes upstream: the inbound surface a client called (OpenAI, Anthropic Messages,
//! Gemini `generateContent`, Bedrock Converse/Invoke), and for one target the upstream URL, the
//! edit its body needs (none, the model, or a `Translation`) and the headers its API expects.
//! Pure; the data plane sends what this plans.
//!
//! A surface is forwarded unchanged to a provider that speaks it natively; a translation is
//! chosen when the target speaks another API; otherwise the target is refused with a `PlanError`
//! naming what it does speak.

use crate::catalog::{Api, Family, StreamUsage};
use crate::sigv4::uri_encode;
use crate::translate::pair::{
    BEDROCK_CLAUDE, CHAT_TO_CONVERSE, CHAT_TO_GEMINI, CHAT_TO_MESSAGES, EMBEDDINGS_TO_COHERE,
    EMBEDDINGS_TO_GEMINI, EMBEDDINGS_TO_TITAN, EMBEDDINGS_TO_VERTEX, MESSAGES_TO_CHAT,
    RESPONSES_TO_CHAT, VERTEX_CLAUDE,
};
use crate::translate::{Framing, Step, Translation};
use crate::usage::UsageFormat;

/// A Gemini API method (`/v1beta/models/{model}:{method}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoogleMethod {
    GenerateContent,
    StreamGenerateContent,
    CountTokens,
    EmbedContent,
    BatchEmbedContents,
}

impl GoogleMethod {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "generateContent" => GoogleMethod::GenerateContent,
            "streamGenerateContent" => GoogleMethod::StreamGenerateContent,
            "countTokens" => GoogleMethod::CountTokens,
            "embedContent" => GoogleMethod::EmbedContent,
            "batchEmbedContents" => GoogleMethod::BatchEmbedContents,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GoogleMethod::GenerateContent => "generateContent",
            GoogleMethod::StreamGenerateContent => "streamGenerateContent",
            GoogleMethod::CountTokens => "countTokens",
            GoogleMethod::EmbedContent => "embedContent",
            GoogleMethod::BatchEmbedContents => "batchEmbedContents",
        }
    }
}

/// A Bedrock runtime operation (`/model/{model}/{op}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BedrockOp {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

impl BedrockOp {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "converse" => BedrockOp::Converse,
            "converse-stream" => BedrockOp::ConverseStream,
            "invoke" => BedrockOp::Invoke,
            "invoke-with-response-stream" => BedrockOp::InvokeStream,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BedrockOp::Converse => "converse",
            BedrockOp::ConverseStream => "converse-stream",
            BedrockOp::Invoke => "invoke",
            BedrockOp::InvokeStream => "invoke-with-response-stream",
        }
    }
}

/// The API a client called, with the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/responses`.
    Responses,
    /// `/v1/messages`.
    Messages,
    /// `/v1/messages/count_tokens`.
    CountTokens,
    /// `/v1beta/models/{model}:{method}` (and `/v1/models/…`).
    Google(GoogleMethod),
    /// `/model/{model}/{op}`.
    Bedrock(BedrockOp),
}

impl Surface {
    /// The API this surface belongs to.
    pub fn api(self) -> Api {
        match self {
            Surface::Chat => Api::Chat,
            Surface::Completions => Api::Completions,
            Surface::Embeddings => Api::Embeddings,
            Surface::Responses => Api::Responses,
            Surface::Messages | Surface::CountTokens => Api::Messages,
            Surface::Google(_) => Api::GenerateContent,
            Surface::Bedrock(BedrockOp::Converse | BedrockOp::ConverseStream) => Api::Converse,
            Surface::Bedrock(_) => Api::Invoke,
        }
    }

    /// The path after `/v1` of an OpenAI surface.
    pub fn openai_path(self) -> Option<&'static str> {
        Some(match self {
            Surface::Chat => "/chat/completions",
            Surface::Completions => "/completions",
            Surface::Embeddings => "/embeddings",
            Surface::Responses => "/responses",
            _ => return None,
        })
    }

    /// Whether an answer is a stream even when the body says nothing about it.
    pub fn streams_by_path(self) -> bool {
        matches!(
            self,
            Surface::Google(GoogleMethod::StreamGenerateContent)
                | Surface::Bedrock(BedrockOp::ConverseStream | BedrockOp::InvokeStream)
        )
    }
}

/// The APIs' fixed paths, and the surface each calls.
const API_PATHS: [(&str, Surface); 6] = [
    ("/v1/chat/completions", Surface::Chat),
    ("/v1/completions", Surface::Completions),
    ("/v1/embeddings", Surface::Embeddings),
    ("/v1/responses", Surface::Responses),
    ("/v1/messages", Surface::Messages),
    ("/v1/messages/count_tokens", Surface::CountTokens),
];

/// Prefixes of the paths that name a model: Gemini's (`…/{model}:{method}`).
const GEMINI_MODEL_PATHS: [&str; 2] = ["/v1beta/models/", "/v1/models/"];

/// Prefix of Bedrock's paths (`/model/{model}/{operation}`).
const BEDROCK_MODEL_PATH: &str = "/model/";

/// Whether `path` is one of the APIs' paths: a fixed one, or one under a prefix that names a
/// model (whether it names a model and an operation, `inbound` decides).
pub fn is_api_path(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty())
    };
    API_PATHS.iter().any(|(p, _)| *p == path)
        || GEMINI_MODEL_PATHS.into_iter().any(under)
        || under(BEDROCK_MODEL_PATH)
}

/// Parses an inbound path. The model comes back when the path carries it (Gemini, Bedrock);
/// otherwise it is in the body.
pub fn inbound(path: &str) -> Option<(Surface, Option<String>)> {
    if let Some((_, s)) = API_PATHS.iter().find(|(p, _)| *p == path) {
        return Some((*s, None));
    }
    if let Some(rest) = GEMINI_MODEL_PATHS
        .into_iter()
        .find_map(|p| path.strip_prefix(p))
    {
        let (model, method) = rest.rsplit_once(':')?;
        let method = GoogleMethod::parse(method)?;
        return Some((Surface::Google(method), Some(decode_segment(model)?)));
    }
    let rest = path.strip_prefix(BEDROCK_MODEL_PATH)?;
    let (model, op) = rest.rsplit_once('/')?;
    let op = BedrockOp::parse(op)?;
    Some((Surface::Bedrock(op), Some(decode_segment(model)?)))
}

/// A percent-encoded path segment, decoded (`+` stays a plus); `None` when empty.
pub fn decode_segment(segment: &str) -> Option<String> {
    let d = url::form_urlencoded::parse(format!("m={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    // A `/` is kept: `provider/model` passthrough names travel in paths too.
    (!d.is_empty()).then_some(d)
}

/// The per-provider facts planning needs, prepared once per snapshot.
#[derive(Clone, Debug)]
pub struct ProviderApi {
    pub slug: String,
    pub family: Family,
    pub base_url: String,
    /// Surfaces the catalog entry serves natively.
    pub surfaces: &'static [Api],
    /// Vertex: `/v1/projects/{project}/locations/{region}`; empty otherwise.
    pub vertex_prefix: String,
    /// Azure: the `api-version`.
    pub api_version: String,
    /// `CatalogEntry::max_tokens_field`.
    pub max_tokens_field: &'static str,
    /// Whether streamed answers report usage (`CatalogEntry::stream_usage`).
    pub stream_usage: crate::catalog::StreamUsage,
}

impl ProviderApi {
    pub fn new(
        slug: &str,
        entry: &crate::catalog::CatalogEntry,
        base_url: &str,
        account: &serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let get = |k: &str| account.get(k).and_then(|v| v.as_str()).unwrap_or("");
        ProviderApi {
            slug: slug.into(),
            family: entry.family,
            base_url: base_url.trim_end_matches('/').into(),
            surfaces: entry.surfaces,
            vertex_prefix: match entry.family {
                Family::Vertex => format!(
                    "/v1/projects/{}/locations/{}",
                    get("project"),
                    get("region")
                ),
                _ => String::new(),
            },
            api_version: get("api_version").into(),
            max_tokens_field: entry.max_tokens_field(),
            stream_usage: entry.stream_usage,
        }
    }
}

impl ProviderApi {
    /// Azure: a deployment's OpenAI operation (`suffix`, e.g. `/chat/completions`).
    pub fn azure_url(&self, deployment: &str, suffix: &str) -> String {
        format!(
            "{}/deployments/{}{suffix}?api-version={}",
            self.base_url,
            segment(deployment),
            uri_encode(&self.api_version, false)
        )
    }

    /// Gemini, or Vertex publisher `google`: `{model}:{method}`.
    pub fn google_url(&self, model: &str, method: &str) -> String {
        match self.family {
            Family::Vertex => format!(
                "{}{}/publishers/google/models/{}:{method}",
                self.base_url,
                self.vertex_prefix,
                segment(model)
            ),
            _ => format!("{}/models/{}:{method}", self.base_url, segment(model)),
        }
    }

    /// Claude on Vertex: `rawPredict`, or `streamRawPredict` for a stream.
    pub fn vertex_claude_url(&self, model: &str, stream: bool) -> String {
        format!(
            "{}{}/publishers/anthropic/models/{}:{}",
            self.base_url,
            self.vertex_prefix,
            segment(model),
            if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            }
        )
    }

    /// Bedrock runtime: `/model/{id}/{op}`.
    pub fn bedrock_url(&self, model: &str, op: &str) -> String {
        format!("{}/model/{}/{op}", self.base_url, uri_encode(model, false))
    }
}

/// What to do with the client's body for this target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEdit {
    /// Write the upstream model into the body's `model`; the answer passes.
    SetModel,
    /// Send the body as it came (the model is in the URL); the answer passes.
    Keep,
    /// Through these steps; the answer back through them (or only reframed, when every step is a
    /// body edit).
    Translate(Translation),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub url: String,
    pub body: BodyEdit,
    /// Headers sent when the client did not send them.
    pub default_headers: &'static [(&'static str, &'static str)],
    /// The usage format of the upstream's answers.
    pub usage: UsageFormat,
    /// Whether the gateway asks for the usage of this stream (`stream_options.include_usage`)
    /// on the client's behalf, to remove what that adds before the client sees it.
    pub ask_usage: bool,
}

impl Plan {
    /// The translation of this plan, if its body or answer changes form.
    pub fn translation(&self) -> Option<&Translation> {
        match &self.body {
            BodyEdit::Translate(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a target cannot serve a surface.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("provider '{provider}' does not serve the {} API; its native APIs are: {}", .api.title(), titles(.native))]
    NotServed {
        provider: String,
        api: Api,
        native: &'static [Api],
    },
    #[error("model '{model}' on provider '{provider}' is {what}: call it through {how}")]
    OtherApi {
        provider: String,
        model: String,
        what: &'static str,
        how: String,
    },
}

fn titles(apis: &[Api]) -> String {
    apis.iter()
        .map(|a| a.title())
        .collect::<Vec<_>>()
        .join(", ")
}

pub const ANTHROPIC_VERSION: &str = "2023-06-01";
const ANTHROPIC_DEFAULTS: &[(&str, &str)] = &[("anthropic-version", ANTHROPIC_VERSION)];

static ONLY_VERTEX_CLAUDE: &[&Step] = &[&VERTEX_CLAUDE];
static ONLY_BEDROCK_CLAUDE: &[&Step] = &[&BEDROCK_CLAUDE];
static CHAT_TO_ANTHROPIC: &[&Step] = &[&CHAT_TO_MESSAGES];
static CHAT_TO_VERTEX_CLAUDE: &[&Step] = &[&CHAT_TO_MESSAGES, &VERTEX_CLAUDE];
static CHAT_TO_BEDROCK_CLAUDE: &[&Step] = &[&CHAT_TO_MESSAGES, &BEDROCK_CLAUDE];
static CHAT_TO_GOOGLE: &[&Step] = &[&CHAT_TO_GEMINI];
static CHAT_TO_BEDROCK: &[&Step] = &[&CHAT_TO_CONVERSE];
static MESSAGES_TO_OPENAI: &[&Step] = &[&MESSAGES_TO_CHAT];
static MESSAGES_TO_GOOGLE: &[&Step] = &[&MESSAGES_TO_CHAT, &CHAT_TO_GEMINI];
static MESSAGES_TO_BEDROCK: &[&Step] = &[&MESSAGES_TO_CHAT, &CHAT_TO_CONVERSE];
static RESPONSES_TO_OPENAI: &[&Step] = &[&RESPONSES_TO_CHAT];
static RESPONSES_TO_ANTHROPIC: &[&Step] = &[&RESPONSES_TO_CHAT, &CHAT_TO_MESSAGES];
static RESPONSES_TO_VERTEX_CLAUDE: &[&Step] =
    &[&RESPONSES_TO_CHAT, &CHAT_TO_MESSAGES, &VERTEX_CLAUDE];
static RESPONSES_TO_BEDROCK_CLAUDE: &[&Step] =
    &[&RESPONSES_TO_CHAT, &CHAT_TO_MESSAGES, &BEDROCK_CLAUDE];
static RESPONSES_TO_GOOGLE: &[&Step] = &[&RESPONSES_TO_CHAT, &CHAT_TO_GEMINI];
static RESPONSES_TO_BEDROCK: &[&Step] = &[&RESPONSES_TO_CHAT, &CHAT_TO_CONVERSE];
static EMBED_GEMINI: &[&Step] = &[&EMBEDDINGS_TO_GEMINI];
static EMBED_VERTEX: &[&Step] = &[&EMBEDDINGS_TO_VERTEX];
static EMBED_TITAN: &[&Step] = &[&EMBEDDINGS_TO_TITAN];
static EMBED_COHERE: &[&Step] = &[&EMBEDDINGS_TO_COHERE];

fn translate(steps: &'static [&'static Step], framing: Framing) -> BodyEdit {
    BodyEdit::Translate(Translation::new(steps, framing))
}

/// A path segment: unreserved characters, `@` and `:` kept (Google's versioned ids), the rest
/// percent-encoded.
pub fn segment(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    for part in model.split_inclusive(['@', ':']) {
        let (body, sep) = match part.strip_suffix(['@', ':']) {
            Some(b) => (b, &part[b.len()..]),
            None => (part, ""),
        };
        out.push_str(&uri_encode(body, false));
        out.push_str(sep);
    }
    out
}

/// A Vertex model's publisher: Claude models are Anthropic's, the rest Google's.
pub fn vertex_publisher(model: &str) -> &'static str {
    if model.starts_with("claude") {
        "anthropic"
    } else {
        "google"
    }
}

/// Plans the upstream request of `surface` to `model` on provider `p`. `stream` is the body's
/// `stream` flag; `query` the client's query string.
pub fn plan(
    p: &ProviderApi,
    surface: Surface,
    model: &str,
    stream: bool,
    query: Option<&str>,
) -> Result<Plan, PlanError> {
    let translated = match surface {
        Surface::Chat => translated_chat(p, model, stream),
        Surface::Messages => translated_messages(p, model, stream),
        Surface::Responses => translated_responses(p, model, stream),
        Surface::Embeddings => translated_embeddings(p, model)?,
        _ => None,
    };
    let mut plan = match translated {
        Some(plan) => plan,
        None if !p.surfaces.contains(&surface.api()) => {
            return Err(PlanError::NotServed {
                provider: p.slug.clone(),
                api: surface.api(),
                native: p.surfaces,
            })
        }
        None => native(p, surface, model, stream, query)?,
    };
    plan.usage = usage_format(p, surface, model, &plan.body);
    plan.ask_usage = stream
        && matches!(surface, Surface::Chat | Surface::Completions)
        && plan.body == BodyEdit::SetModel
        && p.stream_usage == StreamUsage::Ask;
    Ok(plan)
}

/// The usage format of the answers a target gives for `surface`.
fn usage_format(p: &ProviderApi, surface: Surface, model: &str, body: &BodyEdit) -> UsageFormat {
    if let BodyEdit::Translate(t) = body {
        if let Some(last) = t.steps.last() {
            return last.answers_in;
        }
    }
    match p.family {
        Family::OpenAi | Family::Azure => UsageFormat::OpenAi,
        Family::Anthropic => UsageFormat::Anthropic,
        Family::Gemini => UsageFormat::Gemini,
        Family::Vertex if vertex_publisher(model) == "anthropic" => UsageFormat::Anthropic,
        Family::Vertex => UsageFormat::Gemini,
        Family::Bedrock => match surface {
            Surface::Bedrock(BedrockOp::Converse | BedrockOp::ConverseStream) => {
                UsageFormat::Converse
            }
            _ if model.contains("anthropic.") => UsageFormat::Anthropic,
            _ => UsageFormat::BedrockInvoke,
        },
    }
}

/// `query` without the parameters in `drop` and without any that carries a to11 key (in any
/// form), appended to `url`.
fn with_query(mut url: String, query: Option<&str>, drop: &[&str]) -> String {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let kept: Vec<&str> = q
            .split('&')
            .filter(|kv| {
                !drop.contains(&kv.split('=').next().unwrap_or(""))
                    && !crate::keys::carries_to11_key(kv)
            })
            .collect();
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
    }
    url
}

/// `base` then `path`, in one allocation (`format!` costs several times more on every request).
fn join(base: &str, path: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len());
    url.push_str(base);
    url.push_str(path);
    url
}

fn pass(url: String, body: BodyEdit) -> Plan {
    Plan {
        url,
        body,
        default_headers: &[],
        usage: UsageFormat::OpenAi,
        ask_usage: false,
    }
}

/// A surface the provider speaks natively.
fn native(
    p: &ProviderApi,
    surface: Surface,
    model: &str,
    stream: bool,
    query: Option<&str>,
) -> Result<Plan, PlanError> {
    let base = &p.base_url;
    Ok(match (p.family, surface) {
        (Family::OpenAi, s) if s.openai_path().is_some() => pass(
            with_query(join(base, s.openai_path().unwrap_or("")), query, &[]),
            BodyEdit::SetModel,
        ),
        (Family::Azure, s) if s.openai_path().is_some() => pass(
            p.azure_url(model, s.openai_path().unwrap_or("")),
            BodyEdit::SetModel,
        ),
        (Family::Anthropic, Surface::Messages | Surface::CountTokens) => {
            let path = match surface {
                Surface::Messages => "/messages",
                _ => "/messages/count_tokens",
            };
            Plan {
                default_headers: ANTHROPIC_DEFAULTS,
                ..pass(with_query(join(base, path), query, &[]), BodyEdit::SetModel)
            }
        }
        (Family::Gemini | Family::Vertex, Surface::Google(method)) => {
            if p.family == Family::Vertex && vertex_publisher(model) != "google" {
                return Err(other_api(
                    p,
                    model,
                    "a Claude model",
                    "the Anthropic Messages API (/v1/messages)".into(),
                ));
            }
            pass(
                with_query(p.google_url(model, method.as_str()), query, &["key"]),
                BodyEdit::Keep,
            )
        }
        (Family::Vertex, Surface::Messages | Surface::CountTokens) => {
            vertex_claude(p, surface, model, stream)?
        }
        (Family::Bedrock, Surface::Bedrock(op)) => {
            pass(p.bedrock_url(model, op.as_str()), BodyEdit::Keep)
        }
        (Family::Bedrock, Surface::Messages) => bedrock_claude(p, model, stream)?,
        _ => {
            return Err(PlanError::NotServed {
                provider: p.slug.clone(),
                api: surface.api(),
                native: p.surfaces,
            })
        }
    })
}

fn other_api(p: &ProviderApi, model: &str, what: &'static str, how: String) -> PlanError {
    PlanError::OtherApi {
        provider: p.slug.clone(),
        model: model.to_string(),
        what,
        how,
    }
}

/// Anthropic Messages (or its token count) to Claude on Vertex.
fn vertex_claude(
    p: &ProviderApi,
    surface: Surface,
    model: &str,
    stream: bool,
) -> Result<Plan, PlanError> {
    if vertex_publisher(model) != "anthropic" {
        return Err(other_api(
            p,
            model,
            "not a Claude model",
            format!("the Gemini API (/v1beta/models/{model}:generateContent)"),
        ));
    }
    Ok(match surface {
        Surface::CountTokens => pass(
            format!(
                "{}{}/publishers/anthropic/models/count-tokens:rawPredict",
                p.base_url, p.vertex_prefix
            ),
            BodyEdit::SetModel,
        ),
        _ => pass(
            p.vertex_claude_url(model, stream),
            translate(ONLY_VERTEX_CLAUDE, Framing::Sse),
        ),
    })
}

/// Anthropic Messages to Claude on Bedrock (`invoke`). Streamed, the answer is Bedrock's binary
/// event stream; the client gets Anthropic's SSE.
fn bedrock_claude(p: &ProviderApi, model: &str, stream: bool) -> Result<Plan, PlanError> {
    if !model.contains("anthropic.") {
        return Err(other_api(
            p,
            model,
            "not an Anthropic model",
            "Bedrock's Converse API (/model/{model}/converse)".into(),
        ));
    }
    let (op, framing) = invoke(stream);
    Ok(pass(
        p.bedrock_url(model, op.as_str()),
        translate(ONLY_BEDROCK_CLAUDE, framing),
    ))
}

/// Bedrock's InvokeModel operation, and how its answer is framed.
fn invoke(stream: bool) -> (BedrockOp, Framing) {
    if stream {
        (BedrockOp::InvokeStream, Framing::AnthropicChunks)
    } else {
        (BedrockOp::Invoke, Framing::Sse)
    }
}

/// OpenAI chat through translation: to Claude (Anthropic directly, on Vertex with `rawPredict`,
/// on Bedrock with `invoke`), to Gemini (AI Studio, Vertex publisher `google`) and to every other
/// Bedrock model (Converse). `None` when the target speaks OpenAI natively or has no translation.
fn translated_chat(p: &ProviderApi, model: &str, stream: bool) -> Option<Plan> {
    let base = &p.base_url;
    Some(match p.family {
        Family::Anthropic => Plan {
            default_headers: ANTHROPIC_DEFAULTS,
            ..pass(
                format!("{base}/messages"),
                translate(CHAT_TO_ANTHROPIC, Framing::Sse),
            )
        },
        Family::Vertex if vertex_publisher(model) == "anthropic" => pass(
            p.vertex_claude_url(model, stream),
            translate(CHAT_TO_VERTEX_CLAUDE, Framing::Sse),
        ),
        Family::Bedrock if model.contains("anthropic.") => {
            let (op, framing) = invoke(stream);
            pass(
                p.bedrock_url(model, op.as_str()),
                translate(CHAT_TO_BEDROCK_CLAUDE, framing),
            )
        }
        Family::Bedrock => pass(
            p.bedrock_url(model, converse_op(stream).as_str()),
            translate(CHAT_TO_BEDROCK, Framing::ConverseEvents),
        ),
        Family::Gemini | Family::Vertex => pass(
            p.google_url(model, google_method(stream)),
            translate(CHAT_TO_GOOGLE, Framing::Sse),
        ),
        _ => return None,
    })
}

/// Anthropic Messages through translation: to OpenAI chat for every target that speaks it, and
/// on through chat to Gemini and to non-Claude Bedrock models. `None` when the target speaks
/// Messages natively.
fn translated_messages(p: &ProviderApi, model: &str, stream: bool) -> Option<Plan> {
    Some(match p.family {
        Family::OpenAi | Family::Azure if p.surfaces.contains(&Api::Chat) => pass(
            match p.family {
                Family::Azure => p.azure_url(model, "/chat/completions"),
                _ => format!("{}/chat/completions", p.base_url),
            },
            translate(MESSAGES_TO_OPENAI, Framing::Sse),
        ),
        Family::Gemini => pass(
            p.google_url(model, google_method(stream)),
            translate(MESSAGES_TO_GOOGLE, Framing::Sse),
        ),
        Family::Vertex if vertex_publisher(model) == "google" => pass(
            p.google_url(model, google_method(stream)),
            translate(MESSAGES_TO_GOOGLE, Framing::Sse),
        ),
        Family::Bedrock if !model.contains("anthropic.") => pass(
            p.bedrock_url(model, converse_op(stream).as_str()),
            translate(MESSAGES_TO_BEDROCK, Framing::ConverseEvents),
        ),
        _ => return None,
    })
}

/// The Responses API through translation: to OpenAI chat for OpenAI-format targets without a
/// Responses API, and on through chat to Claude (Anthropic, Vertex, Bedrock), Gemini and every
/// other Bedrock model. `None` when the target speaks the Responses API natively.
fn translated_responses(p: &ProviderApi, model: &str, stream: bool) -> Option<Plan> {
    if p.surfaces.contains(&Api::Responses) {
        return None;
    }
    let base = &p.base_url;
    Some(match p.family {
        Family::OpenAi | Family::Azure if p.surfaces.contains(&Api::Chat) => pass(
            match p.family {
                Family::Azure => p.azure_url(model, "/chat/completions"),
                _ => format!("{base}/chat/completions"),
            },
            translate(RESPONSES_TO_OPENAI, Framing::Sse),
        ),
        Family::Anthropic => Plan {
            default_headers: ANTHROPIC_DEFAULTS,
            ..pass(
                format!("{base}/messages"),
                translate(RESPONSES_TO_ANTHROPIC, Framing::Sse),
            )
        },
        Family::Vertex if vertex_publisher(model) == "anthropic" => pass(
            p.vertex_claude_url(model, stream),
            translate(RESPONSES_TO_VERTEX_CLAUDE, Framing::Sse),
        ),
        Family::Bedrock if model.contains("anthropic.") => {
            let (op, framing) = invoke(stream);
            pass(
                p.bedrock_url(model, op.as_str()),
                translate(RESPONSES_TO_BEDROCK_CLAUDE, framing),
            )
        }
        Family::Bedrock => pass(
            p.bedrock_url(model, converse_op(stream).as_str()),
            translate(RESPONSES_TO_BEDROCK, Framing::ConverseEvents),
        ),
        Family::Gemini | Family::Vertex => pass(
            p.google_url(model, google_method(stream)),
            translate(RESPONSES_TO_GOOGLE, Framing::Sse),
        ),
        _ => return None,
    })
}

/// OpenAI embeddings through translation: Gemini (`batchEmbedContents`), Google's embedding
/// models on Vertex (`predict`), and Titan and Cohere embedding models on Bedrock (`invoke`).
/// `Ok(None)` when the target serves OpenAI embeddings natively (or not at all).
fn translated_embeddings(p: &ProviderApi, model: &str) -> Result<Option<Plan>, PlanError> {
    Ok(Some(match p.family {
        Family::Gemini => pass(
            p.google_url(model, "batchEmbedContents"),
            translate(EMBED_GEMINI, Framing::Sse),
        ),
        Family::Vertex if vertex_publisher(model) == "google" => pass(
            p.google_url(model, "predict"),
            translate(EMBED_VERTEX, Framing::Sse),
        ),
        Family::Bedrock if model.contains("titan-embed") => pass(
            p.bedrock_url(model, "invoke"),
            translate(EMBED_TITAN, Framing::Sse),
        ),
        Family::Bedrock if model.contains("cohere.embed") => pass(
            p.bedrock_url(model, "invoke"),
            translate(EMBED_COHERE, Framing::Sse),
        ),
        Family::Bedrock => {
            return Err(other_api(
                p,
                model,
                "not an embedding model Bedrock can serve through /v1/embeddings (Titan text or Cohere embed)",
                "chat completions or Bedrock's Converse API".into(),
            ))
        }
        _ => return Ok(None),
    }))
}

fn google_method(stream: bool) -> &'static str {
    if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    }
}

fn converse_op(stream: bool) -> BedrockOp {
    if stream {
        BedrockOp::ConverseStream
    } else {
        BedrockOp::Converse
    }
}

#[cfg(test)]
mod tests;
