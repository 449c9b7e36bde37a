//! `GET /v1/models`: every name the key may call, in OpenAI's list shape.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::auth::authenticate;
use crate::error::GatewayError;
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
        .map(|(name, layer)| {
            let owned_by = t
                .resolve(name)
                .filter(|r| r.layer == to11_shared::resolve::Layer::Passthrough)
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
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("x-to11-request-id", request_id))
        .insert_header(("x-to11-config-version", caller.project.version.to_string()))
        .json(serde_json::json!({"object": "list", "data": data})))
}
