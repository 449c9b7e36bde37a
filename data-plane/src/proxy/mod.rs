//! The gateway endpoint: authenticate, read the body (with a limit), resolve the model, forward to
//! the chosen upstream with awc and stream the answer back as it arrives.

mod answer;
pub mod forward;
pub mod guard;
mod images;
pub mod models;
mod present;
pub mod transform;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use to11_shared::ErrorCode;

use crate::error::GatewayError;

/// A v4 UUID from the thread-local generator (no syscall per request).
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Reads a request body, refusing with 413 as soon as it exceeds `limit` (a declared
/// Content-Length over the limit is refused before reading anything).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than the {limit} byte limit"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            GatewayError::new(ErrorCode::BadRequest, format!("reading request body: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
