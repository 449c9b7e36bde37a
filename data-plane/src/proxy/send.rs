//! Sending an attempt with awc: the client's headers (minus hop-by-hop, framing, credentials and
//! cookies), an uncompressed answer asked for, the API's default headers, the credential in the
//! provider's form (`present`), the prepared body, the attempt's first-byte budget.

use std::cell::RefCell;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, HOST};
use actix_web::http::{Method, Uri};
use awc::error::{ConnectError, SendRequestError};

use super::attempt::{Answered, Attempt, SendError, Upstream};
use super::present::present;
use crate::Ctx;
use to11_shared::FastMap;

/// Request headers never forwarded upstream: hop-by-hop, framing, to11's own (`x-to11-*`), the
/// client's credentials (re-added in the upstream's form), its encoding wishes (answers are read
/// on the way) and cookies.
fn skip_request_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("x-to11-")
        || matches!(
            name.as_str(),
            "host"
                | "connection"
                | "keep-alive"
                | "proxy-authorization"
                | "proxy-authenticate"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
                | "expect"
                | "accept-encoding"
                | "authorization"
                | "x-api-key"
                | "x-goog-api-key"
                | "api-key"
                | "x-amz-date"
                | "x-amz-security-token"
                | "x-amz-content-sha256"
                | "cookie"
                | "forwarded"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
                | "x-real-ip"
        )
}

/// Most upstream URLs a worker keeps parsed; past it the cache starts over.
const URIS_KEPT: usize = 4096;

/// A worker's upstream URLs, parsed once each with the `Host` header awc would write for them:
/// awc parses a URL given as text on every request and formats its host header (~2k
/// instructions); a `Uri` and a `HeaderValue` are cloned by reference count.
#[derive(Default)]
pub struct Uris(RefCell<FastMap<String, (Uri, HeaderValue)>>);

impl Uris {
    /// The parsed URL and its host header; `None` for a URL awc would refuse (it is then given
    /// as text, and awc reports why).
    pub fn get(&self, url: &str) -> Option<(Uri, HeaderValue)> {
        if let Some(hit) = self.0.borrow().get(url) {
            return Some(hit.clone());
        }
        let uri: Uri = url.parse().ok()?;
        let host = uri.host()?;
        // As awc writes it: the port unless it is 80 or 443.
        let value = match uri.port_u16() {
            None | Some(80) | Some(443) => HeaderValue::from_str(host),
            Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        }
        .ok()?;
        let mut map = self.0.borrow_mut();
        if map.len() >= URIS_KEPT {
            map.clear();
        }
        map.insert(url.to_owned(), (uri.clone(), value.clone()));
        Some((uri, value))
    }
}

/// Attempts of one request, sent with the worker's awc client.
pub(super) struct AwcUpstream<'a> {
    pub client: &'a awc::Client,
    /// The worker's parsed upstream URLs.
    pub uris: &'a Uris,
    pub method: &'a Method,
    /// The client's request headers.
    pub headers: &'a HeaderMap,
    pub ctx: &'a Ctx,
}

impl Upstream for AwcUpstream<'_> {
    type Body = awc::ClientResponse;

    async fn send(&self, a: &Attempt<'_>) -> Result<Answered<Self::Body>, SendError> {
        let sent = match self.send_once(a).await? {
            // The upstream closed the connection after the request went out and before any
            // answer: an idle keep-alive connection it had just closed (servers close idle ones
            // after a few seconds; uvicorn and Node after 5), reused before its FIN arrived. As
            // nginx does for a cached connection, the request goes once more, on another
            // connection; a second such failure is the answer.
            Err(SendRequestError::Connect(ConnectError::Disconnected)) => self.send_once(a).await?,
            sent => sent,
        };
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let mut headers = HeaderMap::new();
                let body = resp.map_body(|head, payload| {
                    headers = std::mem::take(&mut head.headers);
                    payload
                });
                Ok(Answered {
                    status,
                    headers,
                    body,
                })
            }
            Err(SendRequestError::Timeout) => Err(SendError::Timeout),
            Err(SendRequestError::Connect(c)) => Err(SendError::Connect(c.to_string())),
            Err(other) => Err(SendError::Broken(other.to_string())),
        }
    }
}

impl AwcUpstream<'_> {
    /// The attempt's request, built and sent once.
    async fn send_once(
        &self,
        a: &Attempt<'_>,
    ) -> Result<Result<awc::ClientResponse, SendRequestError>, SendError> {
        let p = a.prepared;
        let (mut up, host) = match self.uris.get(&p.url) {
            Some((uri, host)) => (self.client.request(self.method.clone(), uri), Some(host)),
            None => (
                self.client.request(self.method.clone(), p.url.as_str()),
                None,
            ),
        };
        let h = up.headers_mut();
        if let Some(host) = host {
            h.insert(HOST, host);
        }
        for (name, value) in self.headers {
            if !skip_request_header(name) {
                h.append(name.clone(), value.clone());
            }
        }
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if let Some(tp) = &a.traceparent {
            // The request is traced: the upstream's parent is this attempt's span (the client's
            // `tracestate` goes on as it came).
            h.insert(crate::otel::TRACEPARENT, tp.clone());
        }
        for (name, value) in p.default_headers {
            if !h.contains_key(*name) {
                h.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
        }
        present(h, a.byok, a.stored, &p.url, &p.body, self.ctx, self.client)
            .await
            .map_err(SendError::Credential)?;
        Ok(up.timeout(a.budget).send_body(p.body.clone()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_parsed_once_with_the_host_header_awc_would_write() {
        let uris = Uris::default();
        for (url, host) in [
            (
                "http://127.0.0.1:8080/v1/chat/completions",
                "127.0.0.1:8080",
            ),
            (
                "https://api.openai.com/v1/chat/completions",
                "api.openai.com",
            ),
            ("http://mock:80/v1/messages", "mock"),
            (
                "https://bedrock.example:443/model/x/converse",
                "bedrock.example",
            ),
            ("https://[::1]:9000/v1", "[::1]:9000"),
        ] {
            let (uri, value) = uris.get(url).expect(url);
            assert_eq!(uri.to_string(), url);
            assert_eq!(value, host, "{url}");
        }
        let again = uris.get("http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(
            uris.0.borrow().len(),
            5,
            "a URL seen before is not added again"
        );
        assert_eq!(again.expect("cached").1, "127.0.0.1:8080");
        assert!(uris.get("not a url").is_none(), "awc is left to refuse it");
        assert!(uris.get("/v1/no-host").is_none());
    }
}
