//! HTTP helpers for tests: the control-plane API and the gateway.

use std::net::SocketAddr;

use awc::http::Method;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

pub fn http() -> awc::Client {
    awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish()
}

/// The control-plane API with one bearer token.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub token: String,
}

impl ApiClient {
    pub fn new(addr: SocketAddr, token: &str) -> Self {
        ApiClient {
            base: format!("http://{addr}/api/v1"),
            token: token.to_string(),
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        ApiClient {
            base: self.base.clone(),
            token: token.to_string(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http().request(method, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            req = req.insert_header(("authorization", format!("Bearer {}", self.token)));
        }
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("control plane answers");
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(32 * 1024 * 1024).await.expect("body");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }
}

pub struct GatewayResponse {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Bytes,
}

impl GatewayResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(String::from)
    }
}

/// A request to the gateway with the given headers.
pub async fn gateway(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> GatewayResponse {
    let mut req = http().request(method, format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = match body {
        Some(b) => {
            req.insert_header(("content-type", "application/json"))
                .send_body(b)
                .await
        }
        None => req.send().await,
    }
    .expect("gateway answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.body().limit(32 * 1024 * 1024).await.expect("body");
    GatewayResponse {
        status,
        headers,
        body,
    }
}

/// `POST /v1/chat/completions` with exactly these headers and this body.
pub async fn post_chat(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> GatewayResponse {
    gateway(
        addr,
        Method::POST,
        "/v1/chat/completions",
        headers,
        Some(Bytes::copy_from_slice(body.as_bytes())),
    )
    .await
}

/// `POST /v1/chat/completions` with a to11 key.
pub async fn chat(addr: SocketAddr, key: &str, model: &str) -> GatewayResponse {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    gateway(
        addr,
        Method::POST,
        "/v1/chat/completions",
        &[("x-to11-authorization", &format!("Bearer {key}"))],
        Some(body.to_string().into()),
    )
    .await
}

/// A streaming chat through the gateway, gated at the mock: reads each SSE event, hands it to
/// `on_event` (which releases the mock's gate), and returns every event as received.
pub async fn gated_stream(
    addr: SocketAddr,
    key: &str,
    model: &str,
    gate: &str,
    mut on_event: impl FnMut(&str),
) -> (u16, awc::http::header::HeaderMap, Vec<String>) {
    let body = serde_json::json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut resp = http()
        .post(format!("http://{addr}/v1/chat/completions"))
        .insert_header(("x-to11-authorization", key))
        .insert_header(("x-mock-gate", gate))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .expect("gateway answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), resp.next()).await;
        let chunk = match next {
            Ok(Some(Ok(c))) => c,
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("stream error: {e}"),
            Err(_) => panic!(
                "no stream data within 10 s after {} events: the gateway is buffering",
                events.len()
            ),
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let ev: Vec<u8> = buf.drain(..end + 2).collect();
            let ev = String::from_utf8(ev).expect("utf8");
            on_event(&ev);
            events.push(ev);
        }
    }
    (status, headers, events)
}

/// The version a replica has applied for a project (0 when none).
pub async fn replica_version(addr: SocketAddr, project: &str) -> u64 {
    let resp = http()
        .get(format!("http://{addr}/readyz?project={project}"))
        .send()
        .await;
    match resp {
        Ok(mut r) => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            v["project_version"].as_u64().unwrap_or(0)
        }
        Err(_) => 0,
    }
}

/// Waits until every replica has applied `version` (or later) of `project`.
pub async fn wait_version(replicas: &[SocketAddr], project: &str, version: u64) {
    for a in replicas {
        crate::wait_until(&format!("replica {a} at version {version}"), 10, || async {
            (replica_version(*a, project).await >= version).then_some(())
        })
        .await;
    }
}
