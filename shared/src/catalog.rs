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

/// How a provider lists its models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listing {
    /// `GET {base}/models` → `{"data":[{"id":…}]}`.
    OpenAiModels,
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

pub fn entries() -> Vec<CatalogEntry> {
    vec![
        CatalogEntry {
            id: "openai",
            display_name: "OpenAI",
            description: "GPT, o-series, embeddings and the Responses API.",
            docs_url: "https://platform.openai.com/docs/api-reference",
            default_base_url: Some("https://api.openai.com/v1"),
            auth: AuthForm::Bearer,
            listing: Listing::OpenAiModels,
            fields: vec![
                api_key_field(true, "A project or user key from platform.openai.com (sk-…)."),
                base_url_field(false, "Override for a corporate proxy or regional endpoint, ending in /v1."),
            ],
            surfaces: OPENAI_SURFACES,
        },
        CatalogEntry {
            id: "openai-compatible",
            display_name: "OpenAI-compatible",
            description: "Any server speaking the OpenAI API: vLLM, llama.cpp, LM Studio, TGI, LocalAI, a corporate proxy.",
            docs_url: "https://platform.openai.com/docs/api-reference",
            default_base_url: None,
            auth: AuthForm::OptionalBearer,
            listing: Listing::OpenAiModels,
            fields: vec![
                base_url_field(true, "The server's OpenAI base URL, usually ending in /v1 (e.g. http://10.0.0.5:8000/v1)."),
                api_key_field(false, "Only if the server requires one."),
            ],
            surfaces: OPENAI_SURFACES,
        },
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
