//! Images given by http(s) URL, for targets that take only bytes (Gemini, Bedrock Converse): the
//! gateway fetches them and inlines them as data URLs before the request is translated.
//!
//! The URL is the client's, so it is checked like a provider's base URL (`check_fetch_url`: no
//! private or metadata address, literal or named, without the operator's allowance; no userinfo)
//! and fetched through the guarded client, which re-checks every resolved address and follows no
//! redirect. Each image is bounded in size and time and must be served as `image/*`. A URL is
//! fetched once per request, however many targets are tried. A failure is the client's to fix: a
//! 400 naming the URL and the reason, never a request sent without the image.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use to11_shared::error::ErrorCode;
use to11_shared::upstream_url::{check_fetch_url, UrlProblem};

use crate::config::Settings;
use crate::error::GatewayError;

/// Largest image fetched.
pub const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;
/// Most images fetched for one request.
pub const MAX_IMAGES: usize = 16;

/// The images fetched for one request: URL → data URL.
#[derive(Default)]
pub(super) struct Images {
    fetched: HashMap<String, String>,
    /// A client of its own, made when the request first needs one: its resolver applies
    /// `allow_private_image_urls`, not the upstreams' allowance.
    client: Option<awc::Client>,
}

/// Where an http(s) URL sits in an OpenAI chat body's messages: message and part index.
fn http_images(messages: &Value) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (m, msg) in messages.as_array().into_iter().flatten().enumerate() {
        for (p, part) in msg["content"].as_array().into_iter().flatten().enumerate() {
            if part["type"] != "image_url" {
                continue;
            }
            let url = part["image_url"]["url"]
                .as_str()
                .or(part["image_url"].as_str())
                .unwrap_or("");
            let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                out.push((m, p, url.to_string()));
            }
        }
    }
    out
}

fn refused(url: &str, why: impl std::fmt::Display) -> GatewayError {
    let shown: String = url.chars().take(200).collect();
    GatewayError::new(
        ErrorCode::BadRequest,
        format!("the image at '{shown}' could not be used: {why}"),
    )
}

impl Images {
    /// Replaces every http(s) image of `chat` (an OpenAI chat body) by its bytes as a data URL.
    pub async fn inline(
        &mut self,
        chat: &mut Map<String, Value>,
        settings: &Settings,
    ) -> Result<(), GatewayError> {
        let (allow_private, timeout) = (
            settings.allow_private_image_urls,
            settings.image_fetch_timeout,
        );
        let Some(messages) = chat.get_mut("messages") else {
            return Ok(()); // the translator reports a body without messages
        };
        let found = http_images(messages);
        if found.is_empty() {
            return Ok(());
        }
        let mut wanted: Vec<&str> = found.iter().map(|(_, _, u)| u.as_str()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.len() > MAX_IMAGES {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                format!(
                    "the request gives {} images by URL; at most {MAX_IMAGES} are fetched for this target",
                    wanted.len()
                ),
            ));
        }
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|u| !self.fetched.contains_key(*u))
            .collect();
        let client = self.client.get_or_insert_with(|| {
            to11_io::outbound::client(&to11_io::outbound::ClientOptions {
                connect_timeout: timeout,
                timeout,
                max_connections: MAX_IMAGES,
                allow_private,
            })
        });
        let results = futures_util::future::join_all(
            missing
                .iter()
                .map(|u| fetch(client, u, allow_private, timeout)),
        )
        .await;
        for (url, r) in missing.into_iter().zip(results) {
            self.fetched.insert(url.to_string(), r?);
        }
        for (m, p, url) in found {
            let part = &mut messages[m]["content"][p];
            let data = self.fetched[&url].clone();
            if part["image_url"].is_object() {
                part["image_url"]["url"] = data.into();
            } else {
                part["image_url"] = serde_json::json!({ "url": data });
            }
        }
        Ok(())
    }
}

/// One image as a data URL.
async fn fetch(
    client: &awc::Client,
    raw: &str,
    allow_private: bool,
    timeout: Duration,
) -> Result<String, GatewayError> {
    use base64::Engine;
    let url = check_fetch_url(raw, allow_private).map_err(|p| {
        refused(
            raw,
            match p {
                UrlProblem::Invalid => "it is not a valid URL",
                UrlProblem::Scheme => "only http and https URLs are fetched",
                UrlProblem::Userinfo => "it carries a username or password",
                UrlProblem::QueryOrFragment => "it is malformed",
                UrlProblem::PrivateAddress | UrlProblem::MetadataAddress => {
                    "it points at a private, link-local or metadata address"
                }
            },
        )
    })?;
    let work = async {
        let mut resp = client
            .get(url.as_str())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| refused(raw, format!("fetching it failed ({e})")))?;
        if !resp.status().is_success() {
            return Err(refused(
                raw,
                format!("its server answered HTTP {}", resp.status().as_u16()),
            ));
        }
        let mime = resp
            .headers()
            .get(awc::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !mime.starts_with("image/") {
            return Err(refused(
                raw,
                format!("it is served as '{mime}', not as an image"),
            ));
        }
        let body = resp
            .body()
            .limit(MAX_IMAGE_BYTES)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Overflow => refused(
                    raw,
                    format!("it is larger than {} MiB", MAX_IMAGE_BYTES >> 20),
                ),
                e => refused(raw, format!("reading it failed ({e})")),
            })?;
        Ok(format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&body)
        ))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(refused(raw, "fetching it timed out")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_http_images_only() {
        let messages = json!([
            {"role": "system", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "HTTPS://x.test/a.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "image_url", "image_url": "http://x.test/b.png"}]}]);
        assert_eq!(
            http_images(&messages),
            vec![
                (1, 1, "HTTPS://x.test/a.png".to_string()),
                (1, 3, "http://x.test/b.png".to_string())
            ]
        );
    }
}
