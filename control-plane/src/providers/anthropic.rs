//! Anthropic: `GET {base}/models?limit=1000&after_id=…` while `has_more`, with `x-api-key` and
//! `anthropic-version`. A bad key answers 401 `authentication_error`.

use serde::Deserialize;

use super::http::{bad_shape, checked, q, Call};
use super::openai::MAX_PAGES;
use super::{Item, Probe, ProbeError};

#[derive(Deserialize)]
struct Page {
    data: Vec<Item>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

pub async fn discover(p: &Probe<'_>) -> Result<Vec<Item>, ProbeError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{}/models?limit=1000", p.base_url);
        if let Some(a) = &after {
            url.push_str(&format!("&after_id={}", q(a)));
        }
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
        .await?;
        let page: Page =
            serde_json::from_slice(&body).map_err(|_| bad_shape(&url, "Anthropic's model list"))?;
        all.extend(page.data);
        match (page.has_more, page.last_id) {
            (true, Some(last)) if !last.is_empty() => after = Some(last),
            _ => break,
        }
    }
    Ok(all)
}
