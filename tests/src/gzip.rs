//! Compression as real providers answer: a JSON answer is gzip-encoded whenever the request's
//! `accept-encoding` allows it (the Python SDKs send `gzip, deflate`). Streams are left as they
//! are. Used by the mock upstreams, so every translated path meets compressed answers.

use std::io::Write;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use futures_util::future::LocalBoxFuture;

/// `App::wrap_fn` middleware: gzip JSON answers when the client accepts gzip (and `enabled`).
pub fn gzip_json<S, B>(
    req: ServiceRequest,
    srv: &S,
    enabled: bool,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let accepts = enabled
        && req
            .headers()
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|c| c.trim().starts_with("gzip")));
    let answer = srv.call(req);
    Box::pin(async move {
        let res = answer.await?;
        let json = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !accepts || !json {
            return Ok(res.map_into_boxed_body());
        }
        let (req, res) = res.into_parts();
        let (mut res, body) = res.into_parts();
        let plain = actix_web::body::to_bytes(body)
            .await
            .map_err(|_| actix_web::error::ErrorInternalServerError("mock body"))?;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&plain)?;
        let gz = enc.finish()?;
        res.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        Ok(ServiceResponse::new(req, res.set_body(BoxBody::new(gz))))
    })
}
