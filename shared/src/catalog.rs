//! Provider catalog facts: which providers to11 knows, what each asks for, where its API lives and
//! how it authenticates. Plain data; the planes turn it into calls.

use serde::Serialize;

/// How a credential is presented upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthForm {
    /// `Authorization: Bearer <api_key>`.
    Bearer,
    /// Bearer when a key is given; none otherwise (self-hosted servers often run without one).
    OptionalBearer,
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
    pub help: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct CatalogEntry {
    pub id: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub docs_url: &'static str,
    /// `None` when the user must supply the base URL.
    pub default_base_url: Option<&'static str>,
    pub auth: AuthForm,
    pub listing: Listing,
    pub fields: Vec<Field>,
    /// Inbound surfaces the provider serves natively.
    pub surfaces: &'static [&'static str],
}

const OPENAI_SURFACES: &[&str] = &["chat", "completions", "embeddings", "responses"];

fn api_key_field(required: bool, help: &'static str) -> Field {
    Field {
        name: "api_key",
        label: "API key",
        group: "credential",
        secret: true,
        required,
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
        auth: AuthForm::Bearer,
        listing,
        fields: vec![
            api_key_field(true, key_help),
            base_url_field(false, "Override for a corporate proxy or regional endpoint, in the same form as the default."),
        ],
        surfaces: OPENAI_SURFACES,
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
        auth: AuthForm::OptionalBearer,
        listing,
        fields: vec![
            base_url_field(true, base_help),
            api_key_field(false, "Only if the server requires one."),
        ],
        surfaces: OPENAI_SURFACES,
    }
}

pub fn entries() -> Vec<CatalogEntry> {
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
    ]
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
    }
}
