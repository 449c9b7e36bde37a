//! `GET /v1/models`: every name the key may call, in OpenAI's list shape; `GET /v1/models/{id}`
//! (the SDKs' `models.retrieve`): one of them, in OpenAI's shape or, when the request carries
//! `anthropic-version`, Anthropic's; `GET /v1beta/models/{id}` in Gemini's.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use to11_shared::resolve::{Layer, Tables};
use to11_shared::ErrorCode;

use crate::auth::{authenticate, Caller};
use crate::error::{Dialect, GatewayError};
use crate::Ctx;

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'a str,
    /// to11 extension: the layer this name resolves through.
    to11_layer: &'static str,
}

pub async fn list_models(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
) -> Result<HttpResponse, GatewayError> {
    let request_id = super::new_request_id();
    let state = ctx.live.load();
    let caller = authenticate(&state, req.headers(), &ctx.keyring)
        .map_err(|e| e.with_request_id(&request_id))?;
    let t = &caller.project.tables;
    let data: Vec<ModelEntry<'_>> = t
        .names()
        .into_iter()
        .filter(|(name, _)| caller.model_allowed(name))
        .map(|(name, layer)| entry(t, name, layer))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("x-to11-request-id", request_id))
        .insert_header(("x-to11-config-version", caller.project.version.to_string()))
        .json(serde_json::json!({"object": "list", "data": data})))
}

/// A name's entry: owned by the provider that serves it directly, else by to11.
fn entry<'a>(t: &'a Tables, name: &'a str, layer: Layer) -> ModelEntry<'a> {
    let owned_by = t
        .resolve(name)
        .filter(|r| r.layer == Layer::Passthrough)
        .and_then(|r| r.targets.first())
        .map(|tg| t.providers[tg.provider].slug.as_str())
        .unwrap_or("to11");
    ModelEntry {
        id: name,
        object: "model",
        created: 0,
        owned_by,
        to11_layer: layer.as_str(),
    }
}

/// The shape `GET …/models/{id}` answers in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Shape {
    fn dialect(self) -> Dialect {
        match self {
            Shape::OpenAi => Dialect::OpenAi,
            Shape::Anthropic => Dialect::Anthropic,
            Shape::Gemini => Dialect::Google,
        }
    }
}

/// `GET /v1/models/{id}`.
pub async fn get_model(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    let shape = if req.headers().contains_key("anthropic-version") {
        Shape::Anthropic
    } else {
        Shape::OpenAi
    };
    one_model(&req, &ctx, shape)
}

/// `GET /v1beta/models/{id}`.
pub async fn get_gemini_model(req: HttpRequest, ctx: web::Data<Ctx>) -> HttpResponse {
    one_model(&req, &ctx, Shape::Gemini)
}

fn one_model(req: &HttpRequest, ctx: &Ctx, shape: Shape) -> HttpResponse {
    let request_id = super::new_request_id();
    let state = ctx.live.load();
    let name = req
        .path()
        .split_once("/models/")
        .map_or("", |(_, name)| name);
    let found = authenticate(&state, req.headers(), &ctx.keyring).and_then(|caller| {
        let layer = known(&caller, name).ok_or_else(|| {
            GatewayError::new(
                ErrorCode::ModelNotFound,
                format!("model '{name}' is not one this key may call"),
            )
        })?;
        let version = caller.project.version;
        let e = entry(&caller.project.tables, name, layer);
        let body = match shape {
            Shape::OpenAi => serde_json::to_value(&e).unwrap_or_default(),
            Shape::Anthropic => serde_json::json!({"type": "model", "id": e.id,
                "display_name": e.id, "created_at": "1970-01-01T00:00:00Z"}),
            Shape::Gemini => serde_json::json!({"name": format!("models/{}", e.id),
                "baseModelId": e.id, "version": "", "displayName": e.id,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}),
        };
        Ok((body, version))
    });
    match found {
        Ok((body, version)) => HttpResponse::Ok()
            .insert_header(("x-to11-request-id", request_id))
            .insert_header(("x-to11-config-version", version.to_string()))
            .json(body),
        Err(e) => e.with_request_id(&request_id).render(shape.dialect()),
    }
}

/// The layer `name` resolves through, when the key may call it.
fn known(caller: &Caller, name: &str) -> Option<Layer> {
    if !caller.model_allowed(name) {
        return None;
    }
    caller
        .project
        .tables
        .resolve(name)
        .filter(|r| !r.targets.is_empty())
        .map(|r| r.layer)
}
