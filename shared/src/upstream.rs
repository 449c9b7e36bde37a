//! Where a request goes upstream: the inbound surface a client called (OpenAI, Anthropic Messages,
//! Gemini `generateContent`, Bedrock Converse/Invoke), and for one target the upstream URL, the edit
//! its body needs and the headers its API expects. Pure; the data plane sends what this plans.
//!
//! A surface is forwarded unchanged to a provider that speaks it natively. A target that does not
//! gets `Unsupported` with a message naming what is missing (translation between formats is a
//! separate layer).

use crate::catalog::Family;
use crate::sigv4::uri_encode;

/// The API a client called, with the part of the path that names the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses`: the
    /// suffix after `/v1`.
    OpenAi(&'static str),
    /// `/v1/messages`.
    Messages,
    /// `/v1/messages/count_tokens`.
    CountTokens,
    /// `/v1beta/models/{model}:{method}` (and `/v1/models/…`): the method.
    Google(String),
    /// `/model/{model}/{op}`: `converse`, `converse-stream`, `invoke`,
    /// `invoke-with-response-stream`.
    Bedrock(&'static str),
}

impl Surface {
    /// The catalog's name for this surface (`CatalogEntry::surfaces`).
    pub fn name(&self) -> &'static str {
        match self {
            Surface::OpenAi("/chat/completions") => "chat",
            Surface::OpenAi("/completions") => "completions",
            Surface::OpenAi("/embeddings") => "embeddings",
            Surface::OpenAi(_) => "responses",
            Surface::Messages | Surface::CountTokens => "messages",
            Surface::Google(_) => "generate-content",
            Surface::Bedrock("converse" | "converse-stream") => "converse",
            Surface::Bedrock(_) => "invoke",
        }
    }

    /// Whether an answer is a stream even when the body says nothing about it.
    pub fn streams_by_path(&self) -> bool {
        match self {
            Surface::Google(m) => m == "streamGenerateContent",
            Surface::Bedrock(op) => op.ends_with("stream"),
            _ => false,
        }
    }
}

/// Parses an inbound path. The model comes back when the path carries it (Gemini, Bedrock);
/// otherwise it is in the body.
pub fn inbound(path: &str) -> Option<(Surface, Option<String>)> {
    let s = match path {
        "/v1/chat/completions" => Surface::OpenAi("/chat/completions"),
        "/v1/completions" => Surface::OpenAi("/completions"),
        "/v1/embeddings" => Surface::OpenAi("/embeddings"),
        "/v1/responses" => Surface::OpenAi("/responses"),
        "/v1/messages" => Surface::Messages,
        "/v1/messages/count_tokens" => Surface::CountTokens,
        _ => {
            if let Some(rest) = path
                .strip_prefix("/v1beta/models/")
                .or_else(|| path.strip_prefix("/v1/models/"))
            {
                let (model, method) = rest.rsplit_once(':')?;
                if !matches!(
                    method,
                    "generateContent"
                        | "streamGenerateContent"
                        | "countTokens"
                        | "embedContent"
                        | "batchEmbedContents"
                ) {
                    return None;
                }
                return Some((Surface::Google(method.into()), Some(decode_segment(model)?)));
            }
            let rest = path.strip_prefix("/model/")?;
            let (model, op) = rest.rsplit_once('/')?;
            let op = match op {
                "converse" => "converse",
                "converse-stream" => "converse-stream",
                "invoke" => "invoke",
                "invoke-with-response-stream" => "invoke-with-response-stream",
                _ => return None,
            };
            return Some((Surface::Bedrock(op), Some(decode_segment(model)?)));
        }
    };
    Some((s, None))
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
    pub surfaces: &'static [&'static str],
    /// Vertex: `/v1/projects/{project}/locations/{region}`; empty otherwise.
    pub vertex_prefix: String,
    /// Azure: the `api-version`.
    pub api_version: String,
    /// `CatalogEntry::max_tokens_field`.
    pub max_tokens_field: &'static str,
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
    /// Write the upstream model into the body's `model`.
    SetModel,
    /// Send the body as it came (the model is in the URL).
    Keep,
    /// Anthropic Messages on Vertex or Bedrock: the model moves to the URL, the body gets
    /// `anthropic_version`; Bedrock's InvokeModel also takes no `stream`.
    AnthropicVendor {
        version: &'static str,
        drop_stream: bool,
    },
    /// An OpenAI chat body translated to Anthropic Messages (`translate::anthropic::request`),
    /// then, on Vertex or Bedrock, edited as `AnthropicVendor` with this version.
    OpenAiToAnthropic {
        vendor: Option<(&'static str, bool)>,
    },
    /// An OpenAI chat body translated to `generateContent` (`translate::gemini::request`).
    OpenAiToGemini,
    /// An OpenAI chat body translated to Bedrock Converse (`translate::bedrock::request`).
    OpenAiToConverse,
    /// An Anthropic Messages body translated to OpenAI chat (`translate::messages_in::request`).
    MessagesToOpenAi,
    /// Anthropic Messages → OpenAI chat → `generateContent` (both translations in turn).
    MessagesToGemini,
    /// Anthropic Messages → OpenAI chat → Converse.
    MessagesToConverse,
}

/// What to do with a successful answer's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseEdit {
    /// Stream it to the client as it comes.
    Pass,
    /// Bedrock's binary event stream of Anthropic events → Anthropic's SSE (`eventstream`).
    EventStreamToAnthropicSse,
    /// An Anthropic answer (JSON, SSE or error) → OpenAI's (`translate::anthropic`).
    AnthropicToOpenAi,
    /// Bedrock's event stream of Anthropic events → OpenAI chunks (both of the above).
    EventStreamToOpenAi,
    /// A Gemini answer (JSON, SSE or error) → OpenAI's (`translate::gemini`).
    GeminiToOpenAi,
    /// A Converse answer (JSON, event stream or error) → OpenAI's (`translate::bedrock`).
    ConverseToOpenAi,
    /// An OpenAI chat answer (JSON, SSE or error) → Anthropic's (`translate::messages_in`).
    OpenAiToMessages,
    /// A Gemini answer → OpenAI's → Anthropic's.
    GeminiToMessages,
    /// A Converse answer → OpenAI's → Anthropic's.
    ConverseToMessages,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub url: String,
    pub body: BodyEdit,
    /// Headers sent when the client did not send them.
    pub default_headers: &'static [(&'static str, &'static str)],
    pub response: ResponseEdit,
}

pub const ANTHROPIC_VERSION: &str = "2023-06-01";
const ANTHROPIC_DEFAULTS: &[(&str, &str)] = &[("anthropic-version", ANTHROPIC_VERSION)];

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
    surface: &Surface,
    model: &str,
    stream: bool,
    query: Option<&str>,
) -> Result<Plan, String> {
    let unsupported = || {
        format!(
            "provider '{}' does not serve the {} API; its native APIs are: {}",
            p.slug,
            surface_title(surface),
            p.surfaces
                .iter()
                .map(|s| surface_title_by_name(s))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if *surface == Surface::OpenAi("/chat/completions") {
        if let Some(plan) = translated_chat(p, model, stream)? {
            return Ok(plan);
        }
    }
    // Anthropic Messages to a target that speaks OpenAI chat: translated.
    if *surface == Surface::Messages
        && matches!(p.family, Family::OpenAi | Family::Azure)
        && p.surfaces.contains(&"chat")
    {
        let url = match p.family {
            Family::Azure => p.azure_url(model, "/chat/completions"),
            _ => format!("{}/chat/completions", p.base_url),
        };
        return Ok(Plan {
            url,
            body: BodyEdit::MessagesToOpenAi,
            default_headers: &[],
            response: ResponseEdit::OpenAiToMessages,
        });
    }
    // Anthropic Messages to Gemini or a non-Claude Bedrock model: through OpenAI chat.
    if *surface == Surface::Messages && !p.surfaces.contains(&"messages")
        || *surface == Surface::Messages
            && p.family == Family::Vertex
            && vertex_publisher(model) == "google"
        || *surface == Surface::Messages
            && p.family == Family::Bedrock
            && !model.contains("anthropic.")
    {
        if let Some(mut plan) = translated_chat(p, model, stream)? {
            match plan.body {
                BodyEdit::OpenAiToGemini => {
                    plan.body = BodyEdit::MessagesToGemini;
                    plan.response = ResponseEdit::GeminiToMessages;
                    return Ok(plan);
                }
                BodyEdit::OpenAiToConverse => {
                    plan.body = BodyEdit::MessagesToConverse;
                    plan.response = ResponseEdit::ConverseToMessages;
                    return Ok(plan);
                }
                _ => {}
            }
        }
    }
    if !p.surfaces.contains(&surface.name()) {
        return Err(unsupported());
    }
    let base = &p.base_url;
    let with_query = |mut url: String, drop: &[&str]| {
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|kv| !drop.contains(&kv.split('=').next().unwrap_or("")))
                .collect();
            if !kept.is_empty() {
                url.push('?');
                url.push_str(&kept.join("&"));
            }
        }
        url
    };
    let plan = |url: String, body: BodyEdit| Plan {
        url,
        body,
        default_headers: &[],
        response: ResponseEdit::Pass,
    };
    Ok(match (p.family, surface) {
        (Family::OpenAi, Surface::OpenAi(suffix)) => plan(
            with_query(format!("{base}{suffix}"), &[]),
            BodyEdit::SetModel,
        ),
        (Family::Azure, Surface::OpenAi(suffix)) => {
            plan(p.azure_url(model, suffix), BodyEdit::SetModel)
        }
        (Family::Anthropic, Surface::Messages | Surface::CountTokens) => Plan {
            url: with_query(
                format!(
                    "{base}{}",
                    if *surface == Surface::Messages {
                        "/messages"
                    } else {
                        "/messages/count_tokens"
                    }
                ),
                &[],
            ),
            body: BodyEdit::SetModel,
            default_headers: ANTHROPIC_DEFAULTS,
            response: ResponseEdit::Pass,
        },
        (Family::Gemini, Surface::Google(method)) => plan(
            with_query(p.google_url(model, method), &["key"]),
            BodyEdit::Keep,
        ),
        (Family::Vertex, Surface::Google(method)) => {
            if vertex_publisher(model) != "google" {
                return Err(format!(
                    "model '{model}' on provider '{}' is a Claude model: call it through the Anthropic Messages API (/v1/messages)",
                    p.slug
                ));
            }
            plan(
                with_query(p.google_url(model, method), &["key"]),
                BodyEdit::Keep,
            )
        }
        (Family::Vertex, Surface::Messages | Surface::CountTokens) => {
            if vertex_publisher(model) != "anthropic" {
                return Err(format!(
                    "model '{model}' on provider '{}' is not a Claude model: call it through the Gemini API (/v1beta/models/{model}:generateContent)",
                    p.slug
                ));
            }
            match surface {
                Surface::CountTokens => plan(
                    format!(
                        "{base}{}/publishers/anthropic/models/count-tokens:rawPredict",
                        p.vertex_prefix
                    ),
                    BodyEdit::SetModel,
                ),
                _ => plan(
                    p.vertex_claude_url(model, stream),
                    BodyEdit::AnthropicVendor {
                        version: "vertex-2023-10-16",
                        drop_stream: false,
                    },
                ),
            }
        }
        (Family::Bedrock, Surface::Bedrock(op)) => plan(p.bedrock_url(model, op), BodyEdit::Keep),
        (Family::Bedrock, Surface::Messages) => {
            if !model.contains("anthropic.") {
                return Err(format!(
                    "model '{model}' on provider '{}' is not an Anthropic model: call it through Bedrock's Converse API (/model/{{model}}/converse)",
                    p.slug
                ));
            }
            let vendor = BodyEdit::AnthropicVendor {
                version: "bedrock-2023-05-31",
                drop_stream: true,
            };
            if stream {
                // The answer is Bedrock's binary event stream; the client gets Anthropic's SSE.
                Plan {
                    url: p.bedrock_url(model, "invoke-with-response-stream"),
                    body: vendor,
                    default_headers: &[],
                    response: ResponseEdit::EventStreamToAnthropicSse,
                }
            } else {
                plan(p.bedrock_url(model, "invoke"), vendor)
            }
        }
        _ => return Err(unsupported()),
    })
}

/// OpenAI chat through translation: to Claude (Anthropic directly, on Vertex with `rawPredict`,
/// on Bedrock with `invoke`), to Gemini (AI Studio, Vertex publisher `google`) and to every other
/// Bedrock model (Converse). `None` when the
/// target speaks OpenAI natively or has no translation (yet).
fn translated_chat(p: &ProviderApi, model: &str, stream: bool) -> Result<Option<Plan>, String> {
    let base = &p.base_url;
    Ok(Some(match p.family {
        Family::Anthropic => Plan {
            url: format!("{base}/messages"),
            body: BodyEdit::OpenAiToAnthropic { vendor: None },
            default_headers: ANTHROPIC_DEFAULTS,
            response: ResponseEdit::AnthropicToOpenAi,
        },
        Family::Vertex if vertex_publisher(model) == "anthropic" => Plan {
            url: p.vertex_claude_url(model, stream),
            body: BodyEdit::OpenAiToAnthropic {
                vendor: Some(("vertex-2023-10-16", false)),
            },
            default_headers: &[],
            response: ResponseEdit::AnthropicToOpenAi,
        },
        Family::Bedrock if model.contains("anthropic.") => {
            let op = if stream {
                "invoke-with-response-stream"
            } else {
                "invoke"
            };
            Plan {
                url: p.bedrock_url(model, op),
                body: BodyEdit::OpenAiToAnthropic {
                    vendor: Some(("bedrock-2023-05-31", true)),
                },
                default_headers: &[],
                response: if stream {
                    ResponseEdit::EventStreamToOpenAi
                } else {
                    ResponseEdit::AnthropicToOpenAi
                },
            }
        }
        Family::Bedrock => {
            let op = if stream {
                "converse-stream"
            } else {
                "converse"
            };
            Plan {
                url: p.bedrock_url(model, op),
                body: BodyEdit::OpenAiToConverse,
                default_headers: &[],
                response: ResponseEdit::ConverseToOpenAi,
            }
        }
        Family::Gemini | Family::Vertex => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            Plan {
                url: p.google_url(model, method),
                body: BodyEdit::OpenAiToGemini,
                default_headers: &[],
                response: ResponseEdit::GeminiToOpenAi,
            }
        }
        _ => return Ok(None),
    }))
}

fn surface_title(s: &Surface) -> &'static str {
    surface_title_by_name(s.name())
}

fn surface_title_by_name(name: &str) -> &'static str {
    match name {
        "chat" => "OpenAI Chat Completions",
        "completions" => "OpenAI Completions",
        "embeddings" => "OpenAI Embeddings",
        "responses" => "OpenAI Responses",
        "messages" => "Anthropic Messages",
        "generate-content" => "Gemini generateContent",
        "converse" => "Bedrock Converse",
        "invoke" => "Bedrock InvokeModel",
        _ => "unknown",
    }
}

/// Applies a `BodyEdit` that needs the body rebuilt (`AnthropicVendor`): `model` removed,
/// `anthropic_version` set unless present, `stream` removed when asked.
pub fn vendor_body(body: &[u8], version: &str, drop_stream: bool) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("request body is not a JSON object: {e}"))?;
    v.remove("model");
    if drop_stream {
        v.remove("stream");
    }
    v.entry("anthropic_version")
        .or_insert_with(|| version.into());
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
