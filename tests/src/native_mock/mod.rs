//! Mock upstreams for the provider families with their own APIs, each answering in that family's
//! real wire format and checking credentials in that family's real form — never accepting
//! anything:
//!
//! - Anthropic: `x-api-key` + `anthropic-version` required; cursor pages (`has_more`, `last_id`);
//!   Messages JSON and its named SSE events; 401 `authentication_error`.
//! - Gemini: `x-goog-api-key`; `nextPageToken` pages of `models/…`; **400** `API_KEY_INVALID`;
//!   `generateContent` and `streamGenerateContent?alt=sse`.
//! - Vertex: a token endpoint that verifies the service account's RS256 JWT (signature, issuer,
//!   audience, scope, lifetime) before issuing a token; every API call needs an issued token; the
//!   project is checked; publisher pages; Gemini and Claude (`rawPredict`) paths.
//! - Bedrock: SigV4 verified by recomputing the signature over the request as received (known
//!   access key, region, service `bedrock`, date skew); 403 `UnrecognizedClientException` /
//!   `InvalidSignatureException` with `x-amzn-ErrorType`; `foundation-models`, paged
//!   `inference-profiles`; Converse JSON and the binary event stream (CRC32-checked frames);
//!   InvokeModel with an Anthropic body.
//! - Azure OpenAI: `api-key`; `api-version` required (404 without, as Azure does); deployments
//!   by path (404 `DeploymentNotFound`).
//! - Cohere: bearer; `v1/models` pages (`next_page_token`, `endpoints`); the OpenAI-compatible
//!   surface under `/compatibility/v1`; 401 `{"message":"invalid api token"}`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use to11_shared::google::{public_key_der, verify_assertion, ServiceAccount};
use to11_shared::sigv4;

use crate::mock::Recorded;

mod anthropic;
mod bedrock;
mod google;
mod openai_like;

pub use anthropic::anthropic_events;
use anthropic::*;
use bedrock::*;
pub use bedrock::{converse_frames, event_frame, invoke_stream_frames};
pub use google::gemini_events;
pub use google::MOCK_SIGNATURE;
use google::*;
use openai_like::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Native {
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Azure,
    Cohere,
}

/// The test service account's RSA key (see shared/testdata).
pub const TEST_SA_KEY: &str = include_str!("../../../shared/testdata/service_account_test_key.pem");
pub const SA_EMAIL: &str = "gateway@proj-1.iam.gserviceaccount.com";
pub const VERTEX_PROJECT: &str = "proj-1";
pub const AWS_KEY_ID: &str = "AKIAMOCKEXAMPLE0001";
pub const AWS_SECRET: &str = "mock/secret+key/EXAMPLEKEY0000000000000";
pub const AWS_REGION: &str = "eu-west-3";

pub fn service_account(email: &str) -> Value {
    json!({"type": "service_account", "project_id": VERTEX_PROJECT, "private_key_id": "k1",
        "private_key": TEST_SA_KEY, "client_email": email, "token_uri": "https://oauth2.googleapis.com/token"})
}

pub struct NativeState {
    pub kind: Native,
    pub api_key: String,
    pub requests: Mutex<Vec<Recorded>>,
    pub issued_tokens: Mutex<Vec<String>>,
    /// SigV4 checks done and passed.
    pub signatures_verified: std::sync::atomic::AtomicUsize,
}

pub struct NativeMock {
    pub addr: SocketAddr,
    pub state: Arc<NativeState>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NativeMock {
    pub fn start(kind: Native, api_key: &str) -> NativeMock {
        let state = Arc::new(NativeState {
            kind,
            api_key: api_key.to_string(),
            requests: Mutex::new(vec![]),
            issued_tokens: Mutex::new(vec![]),
            signatures_verified: Default::default(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let data = web::Data::from(st);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        // Requests with images inlined are large.
                        .app_data(web::PayloadConfig::new(128 << 20))
                        .wrap_fn(|req, srv| crate::gzip::gzip_json(req, srv, true))
                        .default_service(web::to(dispatch))
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind mock");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("send");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("mock started");
        NativeMock {
            addr,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The last request whose path (with query) starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<Recorded> {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.path.starts_with(prefix))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }
}

impl Drop for NativeMock {
    fn drop(&mut self) {
        let h = self.handle.clone();
        let _ = std::thread::spawn(move || actix_rt::System::new().block_on(h.stop(false))).join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn record(state: &NativeState, req: &HttpRequest, body: &[u8]) {
    state
        .requests
        .lock()
        .expect("lock")
        .push(Recorded::of(req, body));
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn not_found(path: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": {"code": 404, "message": format!("no route {path}"), "status": "NOT_FOUND"}}))
}

/// The bytes every native mock serves at `/images/dot.png` (any bytes: only their journey is
/// checked).
pub const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\nmock-image-bytes";

async fn dispatch(req: HttpRequest, body: Bytes, state: web::Data<NativeState>) -> HttpResponse {
    record(&state, &req, &body);
    if let Some(r) = crate::mock::echo_credentials(&req) {
        return r;
    }
    // A web server hosting images that clients refer to by URL.
    match req.path() {
        "/images/dot.png" => return HttpResponse::Ok().content_type("image/png").body(IMAGE),
        "/images/page.html" => return HttpResponse::Ok().content_type("text/html").body("<p>"),
        // `/images/big-{MiB}-{anything}.png`: an image of that many MiB.
        p if p.starts_with("/images/big-") => {
            let mib: usize = p["/images/big-".len()..]
                .split('-')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            return HttpResponse::Ok()
                .content_type("image/png")
                .body(vec![0x42u8; mib << 20]);
        }
        p if p.starts_with("/images/") => return HttpResponse::NotFound().finish(),
        _ => {}
    }
    match state.kind {
        Native::Anthropic => anthropic(&req, &body, &state),
        Native::Gemini => gemini(&req, &body, &state),
        Native::Vertex => vertex(&req, &body, &state),
        Native::Bedrock => bedrock(&req, &body, &state),
        Native::Azure => azure(&req, &body, &state),
        Native::Cohere => cohere(&req, &body, &state),
    }
}

fn sse(events: Vec<String>) -> HttpResponse {
    let chunks = events
        .into_iter()
        .map(|e| Ok::<_, actix_web::Error>(Bytes::from(e)));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(chunks))
}

/// Mocks of the four native families, answering with the same credential `key`.
pub struct Natives {
    pub anthropic: NativeMock,
    pub gemini: NativeMock,
    pub vertex: NativeMock,
    pub bedrock: NativeMock,
}

impl Natives {
    pub fn start(key: &str) -> Natives {
        Natives {
            anthropic: NativeMock::start(Native::Anthropic, key),
            gemini: NativeMock::start(Native::Gemini, key),
            vertex: NativeMock::start(Native::Vertex, key),
            bedrock: NativeMock::start(Native::Bedrock, key),
        }
    }

    /// The Google token endpoint (Vertex's mock) the gateway must mint its tokens at.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.vertex.addr)
    }

    /// `POST /projects/{p}/providers` bodies connecting each family (slugs `anthropic`, `gemini`,
    /// `vertex`, `bedrock`); Vertex exposes `vertex_models`.
    pub fn connections(&self, key: &str, vertex_models: &[&str]) -> Vec<Value> {
        vec![
            json!({"kind": "anthropic", "base_url": format!("http://{}/v1", self.anthropic.addr), "credential": {"api_key": key}}),
            json!({"kind": "gemini", "base_url": format!("http://{}/v1beta", self.gemini.addr), "credential": {"api_key": key}}),
            json!({"kind": "vertex", "base_url": format!("http://{}", self.vertex.addr), "account": {"region": "us-central1"},
                "credential": {"service_account_json": service_account(SA_EMAIL)}, "models": vertex_models}),
            json!({"kind": "bedrock", "base_url": format!("http://{}", self.bedrock.addr), "account": {"region": AWS_REGION},
                "credential": {"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET}}),
        ]
    }
}

/// An embedded gateway minting Google tokens at `Natives::token_url`, with project `slug`
/// connected to every body of `connections` and one gateway key, applied at the gateway.
pub struct NativesProject {
    pub gw: crate::sandbox::Spawned<crate::sandbox::EmbeddedInfo>,
    pub dir: std::path::PathBuf,
    /// A gateway key of the project.
    pub key: String,
}

impl Natives {
    pub async fn project(
        &self,
        slug: &str,
        connections: impl IntoIterator<Item = Value>,
    ) -> NativesProject {
        let token_url = self.token_url();
        let dir = std::env::temp_dir().join(format!("to11-{slug}-{}", uuid::Uuid::new_v4()));
        let gw = crate::sandbox::embedded_with(&dir, move |s| {
            s.api.google_token_url = token_url.clone();
            s.gateway.google_token_url = token_url;
        })
        .expect("embedded");
        let api = crate::client::ApiClient::new(
            gw.info.api,
            gw.info.generated_admin_token.as_deref().expect("token"),
        );
        let (_, p) = api
            .post("/projects", json!({"name": slug, "slug": slug}))
            .await;
        let project = p["id"].as_str().expect("id").to_string();
        for body in connections {
            let (s, c) = api.post(&format!("/projects/{slug}/providers"), body).await;
            assert_eq!(s, 201, "{c}");
        }
        let (_, k) = api
            .post(&format!("/projects/{slug}/keys"), json!({"name": slug}))
            .await;
        crate::client::wait_version(
            &[gw.info.gateway],
            &project,
            k["version"].as_u64().expect("v"),
        )
        .await;
        NativesProject {
            gw,
            dir,
            key: k["key"].as_str().expect("key").to_string(),
        }
    }
}
