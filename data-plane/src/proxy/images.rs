//! Images given by http(s) URL, for targets that take only bytes (Gemini, Bedrock Converse): the
//! gateway fetches them and inlines them as data URLs before the request is translated.
//!
//! The URL is the client's, so it is checked like a provider's base URL (`check_fetch_url`: no
//! private or metadata address, literal or named, without the operator's allowance; no userinfo)
//! and fetched through the guarded client, which re-checks every resolved address and follows no
//! redirect. Each image must be served as `image/*` and is bounded in time and size, and so is
//! the sum of a request's images (`TO11_IMAGE_MAX_BYTES`, `TO11_IMAGE_MAX_TOTAL_BYTES`, at most
//! `MAX_IMAGES`); the bytes are encoded to base64 as they arrive (never held twice), and the most
//! a request's fetches may hold is reserved from the replica's memory budget before they start,
//! as request bodies are charged. An operator may turn fetching off
//! (`TO11_IMAGE_URLS=false`). A URL is fetched once per request, however many targets are tried. A
//! failure is the client's to fix: a 400 naming the URL and the reason, never a request sent
//! without the image.

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::{Map, Value};
use to11_shared::error::ErrorCode;
use to11_shared::upstream_url::{check_fetch_url, UrlProblem};

use crate::budget::{Charge, MemoryBudget};
use crate::config::Settings;
use crate::error::GatewayError;

/// Most images fetched for one request.
pub const MAX_IMAGES: usize = 16;

/// Bytes of memory charged per byte of image: the base64 text (4/3), its copy in the body being
/// translated and the translated body's own copy.
const HELD_PER_BYTE: usize = 4;

/// The images fetched for one request: URL → data URL.
#[derive(Default)]
pub(super) struct Images<'a> {
    fetched: HashMap<String, String>,
    /// A client of its own, made when the request first needs one: its resolver applies
    /// `allow_private_image_urls`, not the upstreams' allowance.
    client: Option<awc::Client>,
    /// The replica's budget, and what this request's images hold of it.
    budget: Option<&'a MemoryBudget>,
    charges: Vec<Charge<'a>>,
    /// Bytes of images fetched so far.
    total: usize,
}

/// What one fetch may take: its settings, and the request's running total.
struct Limits<'s> {
    settings: &'s Settings,
    total: &'s Cell<usize>,
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

impl<'a> Images<'a> {
    pub fn new(budget: Option<&'a MemoryBudget>) -> Self {
        Images {
            budget,
            ..Images::default()
        }
    }

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
        if !settings.image_urls {
            return Err(GatewayError::new(
                ErrorCode::BadRequest,
                "this gateway does not fetch images by URL for targets that need their bytes; send them as data URLs (data:image/png;base64,…)",
            ));
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
        // The most these fetches may hold is reserved before any starts, all at once: requests
        // charging image by image could each hold part of the budget and all wait for the rest.
        if let Some(budget) = self.budget.filter(|_| !missing.is_empty()) {
            let most = (missing.len() * settings.image_max_bytes)
                .min(settings.image_max_total_bytes.saturating_sub(self.total));
            let mut charge = Charge::default();
            budget.charge(&mut charge, most * HELD_PER_BYTE).await?;
            self.charges.push(charge);
        }
        let total = Cell::new(self.total);
        let limits = Limits {
            settings,
            total: &total,
        };
        let results = futures_util::future::join_all(
            missing
                .iter()
                .map(|u| fetch(client, u, allow_private, &limits)),
        )
        .await;
        self.total = total.get();
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
    limits: &Limits<'_>,
) -> Result<String, GatewayError> {
    let timeout = limits.settings.image_fetch_timeout;
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
        let resp = client
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
        encode(resp, raw, &mime, limits).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(refused(raw, "fetching it timed out")))
}

/// An image's body as a data URL, encoded as it arrives: each chunk is counted against the
/// image's and the request's limits before it is kept.
async fn encode<S>(
    mut body: S,
    raw: &str,
    mime: &str,
    limits: &Limits<'_>,
) -> Result<String, GatewayError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    use base64::Engine;
    use futures_util::StreamExt;
    let engine = &base64::engine::general_purpose::STANDARD;
    let (each, all) = (
        limits.settings.image_max_bytes,
        limits.settings.image_max_total_bytes,
    );
    let mut out = format!("data:{mime};base64,");
    // Bytes not encoded yet (base64 encodes groups of three).
    let mut rest: Vec<u8> = Vec::with_capacity(3);
    let mut size = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| refused(raw, format!("reading it failed ({e})")))?;
        size += chunk.len();
        if size > each {
            return Err(refused(
                raw,
                format!("it is larger than this gateway's {each}-byte limit per image"),
            ));
        }
        limits.total.set(limits.total.get() + chunk.len());
        if limits.total.get() > all {
            return Err(refused(
                raw,
                format!(
                    "the request's images pass this gateway's {all}-byte limit for one request"
                ),
            ));
        }
        rest.extend_from_slice(&chunk);
        let whole = rest.len() / 3 * 3;
        engine.encode_string(&rest[..whole], &mut out);
        rest.drain(..whole);
    }
    engine.encode_string(&rest, &mut out);
    Ok(out)
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

#[cfg(test)]
mod encoding {
    use super::*;
    use base64::Engine;

    fn settings(each: usize, all: usize) -> Settings {
        let mut s = Settings::with_listen("127.0.0.1:0");
        s.image_max_bytes = each;
        s.image_max_total_bytes = all;
        s
    }

    fn chunks(
        parts: &[&'static [u8]],
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin
    {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(bytes::Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[actix_rt::test]
    async fn encodes_as_it_arrives_whatever_the_chunking() {
        let s = settings(100, 100);
        let total = Cell::new(0);
        let limits = Limits {
            settings: &s,
            total: &total,
        };
        let data = encode(
            chunks(&[b"ab", b"cdefg", b"", b"h", b"ijklmnopq"]),
            "u",
            "image/png",
            &limits,
        )
        .await
        .expect("encoded");
        let want = base64::engine::general_purpose::STANDARD.encode(b"abcdefghijklmnopq");
        assert_eq!(data, format!("data:image/png;base64,{want}"));
        assert_eq!(total.get(), 17);
    }

    #[actix_rt::test]
    async fn an_image_or_a_request_over_its_limit_is_refused() {
        let s = settings(8, 12);
        let total = Cell::new(0);
        let limits = Limits {
            settings: &s,
            total: &total,
        };
        let e = encode(chunks(&[b"123456", b"789"]), "u", "image/png", &limits)
            .await
            .expect_err("over the image limit");
        assert!(e.message.contains("per image"), "{}", e.message);
        total.set(0);
        encode(chunks(&[b"12345678"]), "a", "image/png", &limits)
            .await
            .expect("first image");
        let e = encode(chunks(&[b"12345"]), "b", "image/png", &limits)
            .await
            .expect_err("over the request's limit");
        assert!(e.message.contains("for one request"), "{}", e.message);
    }
}
