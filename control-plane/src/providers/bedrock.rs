//! AWS Bedrock: models from the control-plane host (`bedrock.{region}…`, beside the runtime host
//! `bedrock-runtime.{region}…`): on-demand foundation models and inference profiles, signed with
//! SigV4 (service `bedrock`) or presented as a Bedrock API key. A bad access key answers 403
//! `UnrecognizedClientException`, a wrong secret 403 `InvalidSignatureException`.

use serde::Deserialize;

use super::http::{bad_shape, checked, q, Call};
use super::openai::MAX_PAGES;
use super::{Item, Probe, ProbeError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Foundation {
    model_summaries: Vec<Summary>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    model_id: String,
    #[serde(default)]
    provider_name: Option<String>,
    #[serde(default)]
    inference_types_supported: Option<Vec<String>>,
    #[serde(default)]
    model_lifecycle: Option<Lifecycle>,
}

#[derive(Deserialize)]
struct Lifecycle {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profiles {
    #[serde(default)]
    inference_profile_summaries: Vec<Profile>,
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    inference_profile_id: String,
    #[serde(default)]
    status: Option<String>,
}

/// The control-plane host of a runtime base URL (`bedrock-runtime.` → `bedrock.`); a custom base
/// URL without that name serves both.
pub fn control_host(base: &str) -> String {
    base.replacen("://bedrock-runtime.", "://bedrock.", 1)
}

pub async fn discover(p: &Probe<'_>) -> Result<Vec<Item>, ProbeError> {
    let host = control_host(p.base_url);
    let get = |url: String| async move {
        let body = checked(
            p.client,
            Call {
                method: "GET",
                url: &url,
                body: None,
                auth: &p.auth,
                secret: p.secret,
            },
            p.timeouts,
        )
        .await
        .map_err(|e| match e {
            ProbeError::Permission(m) => ProbeError::Permission(format!(
                "{m}; listing needs bedrock:ListFoundationModels and bedrock:ListInferenceProfiles"
            )),
            e => e,
        })?;
        Ok::<_, ProbeError>((url, body))
    };
    let (url, body) = get(format!("{host}/foundation-models")).await?;
    let f: Foundation = serde_json::from_slice(&body)
        .map_err(|_| bad_shape(&url, "Bedrock's foundation model list"))?;
    let mut all: Vec<Item> = f
        .model_summaries
        .into_iter()
        // Only what can be invoked by its id: on-demand and not retired. Models served only
        // through an inference profile come in with the profiles below.
        .filter(|s| {
            s.inference_types_supported
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == "ON_DEMAND"))
                && s.model_lifecycle
                    .as_ref()
                    .is_none_or(|l| l.status != "LEGACY")
        })
        .map(|s| Item {
            id: s.model_id,
            owned_by: s.provider_name,
            created: None,
            endpoints: None,
        })
        .collect();
    let mut next: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{host}/inference-profiles?maxResults=1000");
        if let Some(t) = &next {
            url.push_str(&format!("&nextToken={}", q(t)));
        }
        let (url, body) = get(url).await?;
        let page: Profiles = serde_json::from_slice(&body)
            .map_err(|_| bad_shape(&url, "Bedrock's inference profile list"))?;
        all.extend(
            page.inference_profile_summaries
                .into_iter()
                .filter(|p| p.status.as_deref().is_none_or(|s| s == "ACTIVE"))
                .map(|p| Item::named(&p.inference_profile_id)),
        );
        next = page.next_token.filter(|t| !t.is_empty());
        if next.is_none() {
            break;
        }
    }
    Ok(all)
}
