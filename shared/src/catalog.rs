//! Provider catalog facts: which providers to11 knows, what each asks for, where its API lives and
//! how it authenticates. Plain data; the planes turn it into calls.

use serde::Serialize;

/// The API family a provider speaks: decides its URLs, its auth and its native surfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The OpenAI API (`{base}/chat/completions`, …), including every OpenAI-compatible server.
    OpenAi,
    /// Azure OpenAI: `{base}/deployments/{deployment}/…?api-version=…`.
    Azure,
    /// Anthropic's Messages API (`{base}/messages`).
    Anthropic,
    /// Google AI Studio (`{base}/models/{model}:generateContent`).
    Gemini,
    /// Vertex AI: publisher paths under `/v1/projects/{project}/locations/{region}`.
    Vertex,
    /// AWS Bedrock runtime (`/model/{id}/converse`), signed with SigV4.
    Bedrock,
}

/// How a credential is presented upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthForm {
    /// `Authorization: Bearer <api_key>`.
    Bearer,
    /// Bearer when a key is given; none otherwise (self-hosted servers often run without one).
    OptionalBearer,
    /// `x-api-key: <api_key>` and `anthropic-version: 2023-06-01` (unless the client sends one).
    AnthropicKey,
    /// `x-goog-api-key: <api_key>`.
    GoogApiKey,
    /// Azure's `api-key: <api_key>`.
    AzureApiKey,
    /// AWS SigV4 with static keys (optional session token), or a Bedrock API key as a bearer.
    AwsSigV4,
    /// A Google service-account JSON exchanged for an OAuth2 access token (cached, refreshed).
    GoogleServiceAccount,
}

impl AuthForm {
    /// The header a client's own (BYOK) key is presented in upstream.
    pub fn byok_header(self) -> &'static str {
        match self {
            AuthForm::AnthropicKey => "x-api-key",
            AuthForm::GoogApiKey => "x-goog-api-key",
            AuthForm::AzureApiKey => "api-key",
            // Bedrock API keys and Google access tokens are bearer tokens.
            AuthForm::Bearer
            | AuthForm::OptionalBearer
            | AuthForm::AwsSigV4
            | AuthForm::GoogleServiceAccount => "authorization",
        }
    }

    /// A key as this form presents it: `(header, value)`, `Bearer <key>` in `authorization`, the
    /// bare key in the others.
    pub fn key_header(self, key: &str) -> (&'static str, String) {
        match self.byok_header() {
            "authorization" => ("authorization", format!("Bearer {key}")),
            name => (name, key.to_string()),
        }
    }

    /// What the API takes as `credential`, for error messages and the catalog.
    pub fn credential_form(self) -> &'static str {
        match self {
            AuthForm::AwsSigV4 => {
                r#"{"access_key_id":"…","secret_access_key":"…","session_token":"…"(optional)} or {"api_key":"<Bedrock API key>"}"#
            }
            AuthForm::GoogleServiceAccount => r#"{"service_account_json":{…the key file…}}"#,
            _ => r#"{"api_key":"…"}"#,
        }
    }
}

/// How a provider lists its models (and so how a credential is validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Listing {
    /// `GET {base}/models` → `{"data":[{"id":…}]}`.
    OpenAiModels,
    /// `GET {base}/models` → a bare JSON array `[{"id":…}]` (Together).
    BareArray,
    /// `GET {host}/api/tags` → `{"models":[{"name":…}]}`, where `{host}` is the base URL without
    /// its `/v1` (Ollama's native listing).
    OllamaTags,
    /// `GET {base}/models` is public (it proves nothing about the key), so the key is checked with
    /// `GET {base}{key_path}` (OpenRouter's `/key`).
    PublicWithKeyCheck { key_path: &'static str },
    /// No usable listing: the user names the models, and each is validated with a real
    /// one-token chat call (it may cost a request fee).
    Named,
    /// Anthropic: `GET {base}/models?limit=1000&after_id=…` while `has_more`.
    AnthropicPages,
    /// Gemini: `GET {base}/models?pageSize=1000&pageToken=…`, ids are `name` minus `models/`.
    GeminiPages,
    /// Cohere: `GET {host}/v1/models?page_size=1000&page_token=…` → `models[].name`.
    CohereModels,
    /// Azure: the key is checked with `GET {base}/models?api-version=…`; deployments have no
    /// data-plane listing, so the user names them and each is checked with a one-token call.
    AzureDeployments,
    /// Vertex: a token is minted, the project and region are checked with
    /// `GET /v1/projects/{p}/locations/{r}/models`, Google's publisher models are listed; named
    /// models (e.g. Claude, which has no reliable listing) are checked with a real call.
    VertexPublisher,
    /// Bedrock: `GET /foundation-models` and `GET /inference-profiles` on the control-plane host
    /// (`bedrock.{region}…`).
    BedrockFoundationModels,
}

impl Listing {
    /// Whether the user's `models` are checked one by one with a real call.
    pub fn takes_named_models(self) -> bool {
        matches!(
            self,
            Listing::Named | Listing::AzureDeployments | Listing::VertexPublisher
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// `credential` fields are write-only secrets; `account` fields are account-specific parts
    /// of the upstream address; `base_url` overrides the default address.
    pub group: &'static str,
    pub secret: bool,
    pub required: bool,
    /// The value used when the field is omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    pub help: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct CatalogEntry {
    pub id: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub docs_url: &'static str,
    /// `None` when the user must supply the base URL. `{name}` parts are filled from the
    /// account fields.
    pub default_base_url: Option<&'static str>,
    pub family: Family,
    pub auth: AuthForm,
    pub listing: Listing,
    pub fields: Vec<Field>,
    /// The APIs the provider serves natively.
    pub surfaces: &'static [Api],
    /// Whether its streamed OpenAI-format answers report their usage.
    pub stream_usage: StreamUsage,
}

/// Whether a streamed answer reports the tokens it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamUsage {
    /// Only when asked (`stream_options.include_usage`): the gateway asks, and removes what
    /// asking adds before the client sees it.
    Ask,
    /// Always, unasked (Anthropic, Gemini, Bedrock, and some OpenAI-compatible servers).
    Sends,
    /// Never: the server refuses `stream_options`; streams are metered by estimate.
    Never,
}

/// An API a client calls, and a provider may serve natively (named as the catalog shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    Chat,
    Completions,
    Embeddings,
    Responses,
    Messages,
    GenerateContent,
    Converse,
    Invoke,
}

impl Api {
    /// Its name in the catalog and in records (`chat`, `generate-content`, …).
    pub fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::GenerateContent => "generate-content",
            Api::Converse => "converse",
            Api::Invoke => "invoke",
        }
    }

    /// How people call it.
    pub fn title(self) -> &'static str {
        match self {
            Api::Chat => "OpenAI Chat Completions",
            Api::Completions => "OpenAI Completions",
            Api::Embeddings => "OpenAI Embeddings",
            Api::Responses => "OpenAI Responses",
            Api::Messages => "Anthropic Messages",
            Api::GenerateContent => "Gemini generateContent",
            Api::Converse => "Bedrock Converse",
            Api::Invoke => "Bedrock InvokeModel",
        }
    }
}

const OPENAI_SURFACES: &[Api] = &[Api::Chat, Api::Completions, Api::Embeddings, Api::Responses];
/// OpenAI-compatible servers without a Responses API: `/v1/responses` reaches them translated
/// to chat completions.
const CHAT_SURFACES: &[Api] = &[Api::Chat, Api::Completions, Api::Embeddings];
/// OpenAI-compatible entries that serve `/v1/responses` themselves (OpenAI, and those whose
/// documentation says so); every other one gets the Responses API through chat completions.
const NATIVE_RESPONSES: &[&str] = &["openai", "groq", "xai", "fireworks", "openrouter", "vllm"];

fn api_key_field(required: bool, help: &'static str) -> Field {
    Field {
        name: "api_key",
        label: "API key",
        group: "credential",
        secret: true,
        required,
        default: None,
        help,
    }
}

fn base_url_field(required: bool, help: &'static str) -> Field {
    Field {
        name: "base_url",
        label: "Base URL",
        group: "base_url",
        secret: false,
        required,
        default: None,
        help,
    }
}

/// An OpenAI-compatible hosted provider: bearer key, fixed base URL.
fn hosted(
    id: &'static str,
    display_name: &'static str,
    description: &'static str,
    docs_url: &'static str,
    base: &'static str,
    listing: Listing,
    key_help: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        id,
        display_name,
        description,
        docs_url,
        default_base_url: Some(base),
        family: Family::OpenAi,
        auth: AuthForm::Bearer,
        listing,
        fields: vec![
            api_key_field(true, key_help),
            base_url_field(false, "Override for a corporate proxy or regional endpoint, in the same form as the default."),
        ],
        surfaces: OPENAI_SURFACES,
        stream_usage: StreamUsage::Ask,
    }
}

/// A self-hosted OpenAI-compatible server: the user gives the base URL; a key only if the
/// server requires one.
fn self_hosted(
    id: &'static str,
    display_name: &'static str,
    description: &'static str,
    docs_url: &'static str,
    listing: Listing,
    base_help: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        id,
        display_name,
        description,
        docs_url,
        default_base_url: None,
        family: Family::OpenAi,
        auth: AuthForm::OptionalBearer,
        listing,
        fields: vec![
            base_url_field(true, base_help),
            api_key_field(false, "Only if the server requires one."),
        ],
        surfaces: OPENAI_SURFACES,
        stream_usage: StreamUsage::Ask,
    }
}

pub fn entries() -> Vec<CatalogEntry> {
    let mut all = listed();
    for e in &mut all {
        // Mistral and Perplexity report usage in every stream and take no `stream_options`;
        // Cohere's compatibility API refuses it.
        match e.id {
            "mistral" | "perplexity" => e.stream_usage = StreamUsage::Sends,
            "cohere" => e.stream_usage = StreamUsage::Never,
            _ => {}
        }
        if e.surfaces == OPENAI_SURFACES && !NATIVE_RESPONSES.contains(&e.id) {
            e.surfaces = CHAT_SURFACES;
        }
    }
    all
}

fn listed() -> Vec<CatalogEntry> {
    use Listing::*;
    vec![
        hosted("openai", "OpenAI", "GPT, o-series, embeddings and the Responses API.",
            "https://platform.openai.com/docs/api-reference", "https://api.openai.com/v1", OpenAiModels,
            "A project or user key from platform.openai.com (sk-…)."),
        hosted("mistral", "Mistral AI", "Mistral, Codestral and Pixtral models.",
            "https://docs.mistral.ai/api/", "https://api.mistral.ai/v1", OpenAiModels,
            "A key from console.mistral.ai."),
        hosted("groq", "Groq", "Fast inference of open models on LPUs.",
            "https://console.groq.com/docs/api-reference", "https://api.groq.com/openai/v1", OpenAiModels,
            "A key from console.groq.com (gsk_…)."),
        hosted("deepseek", "DeepSeek", "DeepSeek chat and reasoner models.",
            "https://api-docs.deepseek.com/", "https://api.deepseek.com", OpenAiModels,
            "A key from platform.deepseek.com."),
        hosted("xai", "xAI", "Grok models.",
            "https://docs.x.ai/docs/api-reference", "https://api.x.ai/v1", OpenAiModels,
            "A key from console.x.ai (xai-…)."),
        hosted("together", "Together AI", "Open models served by Together.",
            "https://docs.together.ai/reference", "https://api.together.xyz/v1", BareArray,
            "A key from api.together.xyz/settings/api-keys."),
        hosted("fireworks", "Fireworks AI", "Open and fine-tuned models on Fireworks (ids like accounts/fireworks/models/…).",
            "https://docs.fireworks.ai/api-reference", "https://api.fireworks.ai/inference/v1", OpenAiModels,
            "A key from fireworks.ai/account/api-keys."),
        hosted("openrouter", "OpenRouter", "Hundreds of models from many providers behind one key.",
            "https://openrouter.ai/docs/api-reference", "https://openrouter.ai/api/v1", PublicWithKeyCheck { key_path: "/key" },
            "A key from openrouter.ai/keys (sk-or-…)."),
        hosted("perplexity", "Perplexity", "Sonar models with web search. No model listing: name the models you use (e.g. sonar, sonar-pro); each is checked with a one-token call.",
            "https://docs.perplexity.ai/api-reference", "https://api.perplexity.ai", Named,
            "A key from perplexity.ai/settings/api (pplx-…)."),
        hosted("cerebras", "Cerebras", "Fast inference of open models on Cerebras systems.",
            "https://inference-docs.cerebras.ai/api-reference", "https://api.cerebras.ai/v1", OpenAiModels,
            "A key from cloud.cerebras.ai."),
        hosted("deepinfra", "DeepInfra", "Open models served by DeepInfra.",
            "https://deepinfra.com/docs/advanced/openai_api", "https://api.deepinfra.com/v1/openai", OpenAiModels,
            "A key from deepinfra.com/dash/api_keys."),
        self_hosted("ollama", "Ollama", "A self-hosted Ollama server (its OpenAI-compatible /v1 API; models from /api/tags).",
            "https://github.com/ollama/ollama/blob/main/docs/openai.md", OllamaTags,
            "The server's /v1 URL, e.g. http://10.0.0.5:11434/v1."),
        self_hosted("vllm", "vLLM", "A self-hosted vLLM server.",
            "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html", OpenAiModels,
            "The server's /v1 URL, e.g. http://10.0.0.5:8000/v1."),
        self_hosted("openai-compatible", "OpenAI-compatible", "Any server speaking the OpenAI API: llama.cpp, LM Studio, TGI, SGLang, LocalAI, a corporate proxy.",
            "https://platform.openai.com/docs/api-reference", OpenAiModels,
            "The server's OpenAI base URL, usually ending in /v1 (e.g. http://10.0.0.5:8000/v1)."),
        native(NativeEntry {
            id: "anthropic", display_name: "Anthropic", description: "Claude models through Anthropic's Messages API (/v1/messages).",
            docs_url: "https://docs.claude.com/en/api/overview", base: "https://api.anthropic.com/v1",
            family: Family::Anthropic, auth: AuthForm::AnthropicKey, listing: AnthropicPages,
            credential: vec![api_key_field(true, "A key from console.anthropic.com (sk-ant-…).")], account: vec![],
            surfaces: &[Api::Messages],
        }),
        native(NativeEntry {
            id: "gemini", display_name: "Google Gemini", description: "Gemini models through Google AI Studio's generateContent API.",
            docs_url: "https://ai.google.dev/api", base: "https://generativelanguage.googleapis.com/v1beta",
            family: Family::Gemini, auth: AuthForm::GoogApiKey, listing: GeminiPages,
            credential: vec![api_key_field(true, "A key from aistudio.google.com/apikey.")], account: vec![],
            surfaces: &[Api::GenerateContent],
        }),
        native(NativeEntry {
            id: "vertex", display_name: "Google Vertex AI", description: "Gemini (publisher google) and Claude (publisher anthropic) models in your Google Cloud project. Claude on Vertex has no listing: name the models (e.g. claude-sonnet-4@20250514); each is checked with a one-token call.",
            docs_url: "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference", base: "https://{region}-aiplatform.googleapis.com",
            family: Family::Vertex, auth: AuthForm::GoogleServiceAccount, listing: VertexPublisher,
            credential: vec![Field { name: "service_account_json", label: "Service account key (JSON)", group: "credential", secret: true, required: true, default: None,
                help: "The JSON key file of a service account with the Vertex AI User role." }],
            account: vec![
                account_field("project", "Project ID", false, None, "The Google Cloud project; defaults to the key file's project_id."),
                account_field("region", "Region", true, Some("us-central1"), "e.g. us-central1, europe-west4, or global."),
            ],
            surfaces: &[Api::GenerateContent, Api::Messages],
        }),
        native(NativeEntry {
            id: "bedrock", display_name: "AWS Bedrock", description: "Foundation models and inference profiles in your AWS account (Converse and InvokeModel; Claude also through the Messages API).",
            docs_url: "https://docs.aws.amazon.com/bedrock/latest/APIReference/welcome.html", base: "https://bedrock-runtime.{region}.amazonaws.com",
            family: Family::Bedrock, auth: AuthForm::AwsSigV4, listing: BedrockFoundationModels,
            credential: vec![
                Field { name: "access_key_id", label: "Access key ID", group: "credential", secret: false, required: false, default: None, help: "An IAM access key (AKIA…/ASIA…) allowed bedrock:ListFoundationModels and bedrock:InvokeModel." },
                Field { name: "secret_access_key", label: "Secret access key", group: "credential", secret: true, required: false, default: None, help: "The access key's secret." },
                Field { name: "session_token", label: "Session token", group: "credential", secret: true, required: false, default: None, help: "Only for temporary (STS) credentials." },
                api_key_field(false, "Instead of IAM keys: a Bedrock API key (sent as a bearer token)."),
            ],
            account: vec![account_field("region", "Region", true, Some("us-east-1"), "The AWS region, e.g. us-east-1, eu-central-1.")],
            surfaces: &[Api::Converse, Api::Invoke, Api::Messages],
        }),
        native(NativeEntry {
            id: "azure-openai", display_name: "Azure OpenAI", description: "OpenAI models deployed in your Azure OpenAI resource. Deployments have no data-plane listing: name your deployments; each is checked with a one-token call.",
            docs_url: "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference", base: "https://{resource}.openai.azure.com/openai",
            family: Family::Azure, auth: AuthForm::AzureApiKey, listing: AzureDeployments,
            credential: vec![api_key_field(true, "KEY 1 or KEY 2 of the resource (Keys and Endpoint).")],
            account: vec![
                account_field("resource", "Resource name", true, None, "The resource's name: the {resource} of https://{resource}.openai.azure.com."),
                account_field("api_version", "API version", true, Some("2024-10-21"), "The api-version query parameter, e.g. 2024-10-21."),
            ],
            surfaces: &[Api::Chat, Api::Completions, Api::Embeddings],
        }),
        native(NativeEntry {
            id: "cohere", display_name: "Cohere", description: "Command and Embed models through Cohere's OpenAI-compatible API.",
            docs_url: "https://docs.cohere.com/docs/compatibility-api", base: "https://api.cohere.ai/compatibility/v1",
            family: Family::OpenAi, auth: AuthForm::Bearer, listing: CohereModels,
            credential: vec![api_key_field(true, "A key from dashboard.cohere.com/api-keys.")], account: vec![],
            surfaces: &[Api::Chat, Api::Embeddings],
        }),
    ]
}

fn account_field(
    name: &'static str,
    label: &'static str,
    required: bool,
    default: Option<&'static str>,
    help: &'static str,
) -> Field {
    Field {
        name,
        label,
        group: "account",
        secret: false,
        required,
        default,
        help,
    }
}

struct NativeEntry {
    id: &'static str,
    display_name: &'static str,
    description: &'static str,
    docs_url: &'static str,
    base: &'static str,
    family: Family,
    auth: AuthForm,
    listing: Listing,
    credential: Vec<Field>,
    account: Vec<Field>,
    surfaces: &'static [Api],
}

/// A provider with its own API family, account fields and credential form.
fn native(e: NativeEntry) -> CatalogEntry {
    let mut fields = e.credential;
    fields.extend(e.account);
    fields.push(base_url_field(false, "Override for a proxy, private endpoint or other partition; account fields are then not used in the address."));
    CatalogEntry {
        id: e.id,
        display_name: e.display_name,
        description: e.description,
        docs_url: e.docs_url,
        default_base_url: Some(e.base),
        family: e.family,
        auth: e.auth,
        listing: e.listing,
        fields,
        surfaces: e.surfaces,
        stream_usage: match e.family {
            Family::OpenAi | Family::Azure => StreamUsage::Ask,
            _ => StreamUsage::Sends,
        },
    }
}

/// Account values become parts of host names and paths: letters, digits, `-`, `_` and `.` only
/// (no `/`, `@`, `:` or `..`), 1..=63 characters.
fn valid_account_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !v.contains("..")
        && !v.starts_with(['.', '-'])
}

impl CatalogEntry {
    /// The OpenAI chat field a translated request (Anthropic Messages in) limits its answer with.
    /// OpenAI deprecated `max_tokens` and its reasoning models (o-series, GPT-5) refuse it, and
    /// Azure OpenAI follows; the compatible providers (vLLM, Ollama, Mistral, …) all take
    /// `max_tokens`, not all `max_completion_tokens`.
    pub fn max_tokens_field(&self) -> &'static str {
        match self.id {
            "openai" | "azure-openai" => "max_completion_tokens",
            _ => "max_tokens",
        }
    }

    /// The account values to store: defaults filled in, every field checked. `fallback` supplies
    /// values found elsewhere (a service account's `project_id`). Every problem is reported.
    pub fn account(
        &self,
        given: &serde_json::Map<String, serde_json::Value>,
        fallback: &[(&str, String)],
    ) -> Result<serde_json::Map<String, serde_json::Value>, Vec<String>> {
        let mut out = serde_json::Map::new();
        let mut problems = Vec::new();
        for k in given.keys() {
            if !self
                .fields
                .iter()
                .any(|f| f.group == "account" && f.name == k)
            {
                problems.push(format!("'{k}' is not an account field of '{}'", self.id));
            }
        }
        for f in self.fields.iter().filter(|f| f.group == "account") {
            let value = match given.get(f.name) {
                Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
                Some(_) => {
                    problems.push(format!("account.{} must be a string", f.name));
                    continue;
                }
                None => fallback
                    .iter()
                    .find(|(k, _)| *k == f.name)
                    .map(|(_, v)| v.clone())
                    .or(f.default.map(str::to_string)),
            };
            match value {
                Some(v) if valid_account_value(&v) => {
                    out.insert(f.name.into(), v.into());
                }
                Some(v) => problems.push(format!(
                    "account.{} '{v}' may only hold letters, digits, '-', '_' and '.'",
                    f.name
                )),
                None if f.required => problems.push(format!(
                    "'{}' needs account.{} ({})",
                    self.id, f.name, f.help
                )),
                None => {}
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The default base URL with its `{name}` parts filled from `account` (checked values).
    /// Vertex's `global` and `us`/`eu` multi-regions have their own hosts.
    pub fn default_base_url_for(
        &self,
        account: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<String> {
        let template = self.default_base_url?;
        let get = |k: &str| account.get(k).and_then(|v| v.as_str());
        if self.family == Family::Vertex {
            return Some(match get("region")? {
                "global" => "https://aiplatform.googleapis.com".to_string(),
                r @ ("us" | "eu") => format!("https://aiplatform.{r}.rep.googleapis.com"),
                r => format!("https://{r}-aiplatform.googleapis.com"),
            });
        }
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}')? + open;
            out.push_str(&rest[..open]);
            out.push_str(get(&rest[open + 1..close])?);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

pub fn entry(id: &str) -> Option<CatalogEntry> {
    entries().into_iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_unique_and_lookup() {
        let all = entries();
        let mut ids: Vec<_> = all.iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        assert!(entry("openai").is_some());
        assert!(entry("nope").is_none());
        assert!(entry("openai-compatible")
            .and_then(|e| e.default_base_url)
            .is_none());
        assert!(all.len() >= 20, "SPEC §7 asks for at least 20 entries");
    }

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn openai_and_azure_take_max_completion_tokens() {
        let field = |id: &str| entry(id).expect(id).max_tokens_field();
        assert_eq!(field("openai"), "max_completion_tokens");
        assert_eq!(field("azure-openai"), "max_completion_tokens");
        for id in ["mistral", "groq", "vllm", "ollama", "openai-compatible"] {
            assert_eq!(field(id), "max_tokens", "{id}");
        }
    }

    #[test]
    fn account_fields_defaults_and_templates() {
        let azure = entry("azure-openai").expect("azure");
        let a = azure
            .account(&map(serde_json::json!({"resource": "contoso"})), &[])
            .expect("ok");
        assert_eq!(a["api_version"], "2024-10-21");
        assert_eq!(
            azure.default_base_url_for(&a).as_deref(),
            Some("https://contoso.openai.azure.com/openai")
        );
        // Every problem at once; nothing that could change the host is accepted.
        let e = azure
            .account(
                &map(serde_json::json!({"resource": "evil.com/x", "api_version": 5, "zone": "a"})),
                &[],
            )
            .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(azure.account(&map(serde_json::json!({})), &[]).is_err());
        for bad in ["a@b", "a:1", "..", "-x", "a b", ""] {
            assert!(
                azure
                    .account(&map(serde_json::json!({"resource": bad})), &[])
                    .is_err(),
                "{bad}"
            );
        }
        let vertex = entry("vertex").expect("vertex");
        let v = vertex
            .account(&map(serde_json::json!({})), &[("project", "p1".into())])
            .expect("ok");
        assert_eq!(
            (v["project"].as_str(), v["region"].as_str()),
            (Some("p1"), Some("us-central1"))
        );
        assert_eq!(
            vertex.default_base_url_for(&v).as_deref(),
            Some("https://us-central1-aiplatform.googleapis.com")
        );
        let g = vertex
            .account(
                &map(serde_json::json!({"project": "p", "region": "global"})),
                &[],
            )
            .expect("ok");
        assert_eq!(
            vertex.default_base_url_for(&g).as_deref(),
            Some("https://aiplatform.googleapis.com")
        );
        let b = entry("bedrock").expect("bedrock");
        let r = b
            .account(&map(serde_json::json!({"region": "eu-west-3"})), &[])
            .expect("ok");
        assert_eq!(
            b.default_base_url_for(&r).as_deref(),
            Some("https://bedrock-runtime.eu-west-3.amazonaws.com")
        );
    }
}
