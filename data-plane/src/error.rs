//! Gateway errors, rendered in the inbound surface's own error shape. Messages never contain a
//! secret: keys are never echoed, only the public facts of the failure.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use to11_shared::ErrorCode;

#[derive(Debug)]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
    pub request_id: Option<String>,
    /// Seconds a client should wait before trying again (`retry-after`).
    pub retry_after: Option<u64>,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_string());
        self
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// OpenAI shape: `{"error":{"message","type","param","code"}}`.
    fn error_response(&self) -> HttpResponse {
        self.render(Dialect::OpenAi)
    }
}

/// The error shape of the API a client called, so its SDK can parse the gateway's own errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}` (Anthropic SDKs).
    Anthropic,
    /// `{"error":{"code","message","status"}}` (Google SDKs).
    Google,
    /// `x-amzn-ErrorType` and `{"message"}` (AWS SDKs).
    Aws,
}

impl Dialect {
    pub fn of_path(path: &str) -> Dialect {
        if path.starts_with("/v1/messages") {
            Dialect::Anthropic
        } else if path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/") {
            Dialect::Google
        } else if path.starts_with("/model/") {
            Dialect::Aws
        } else {
            Dialect::OpenAi
        }
    }
}

impl GatewayError {
    /// The error in `dialect`'s shape; every shape carries to11's stable code.
    pub fn render(&self, dialect: Dialect) -> HttpResponse {
        let status = self.code.status();
        let code = self.code.name();
        let mut b = HttpResponse::build(self.status_code());
        if let Some(id) = &self.request_id {
            b.insert_header(("x-to11-request-id", id.as_str()));
        }
        if let Some(secs) = self.retry_after {
            b.insert_header(("retry-after", secs.to_string()));
        }
        let body = match dialect {
            Dialect::OpenAi => serde_json::json!({"error": {
                "message": self.message, "type": self.code.openai_type(), "param": null, "code": code}}),
            Dialect::Anthropic => {
                let kind = match status {
                    400 | 422 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    504 => "timeout_error",
                    503 => "overloaded_error",
                    _ => "api_error",
                };
                serde_json::json!({"type": "error", "error": {"type": kind, "message": self.message, "code": code},
                    "request_id": self.request_id})
            }
            Dialect::Google => {
                let rpc = match status {
                    400 | 413 | 422 => "INVALID_ARGUMENT",
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    429 => "RESOURCE_EXHAUSTED",
                    503 => "UNAVAILABLE",
                    504 => "DEADLINE_EXCEEDED",
                    _ => "INTERNAL",
                };
                serde_json::json!({"error": {"code": status, "message": self.message, "status": rpc,
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": "to11"}]}})
            }
            Dialect::Aws => {
                let kind = match status {
                    400 | 413 | 422 => "ValidationException",
                    401 | 403 => "AccessDeniedException",
                    404 => "ResourceNotFoundException",
                    429 => "ThrottlingException",
                    503 => "ServiceUnavailableException",
                    504 => "ModelTimeoutException",
                    _ => "InternalServerException",
                };
                b.insert_header(("x-amzn-errortype", kind));
                serde_json::json!({"message": self.message, "code": code})
            }
        };
        b.content_type("application/json").body(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: HttpResponse) -> serde_json::Value {
        let b = actix_web::body::to_bytes(r.into_body())
            .await
            .unwrap_or_default();
        serde_json::from_slice(&b).unwrap_or_default()
    }

    #[actix_rt::test]
    async fn each_dialect_keeps_status_message_and_code() {
        let e = GatewayError::new(ErrorCode::InvalidKey, "bad key");
        let a = body(e.render(Dialect::of_path("/v1/messages"))).await;
        assert_eq!(
            (a["type"].as_str(), a["error"]["type"].as_str()),
            (Some("error"), Some("authentication_error"))
        );
        assert_eq!(a["error"]["code"], "invalid_api_key");
        let g = body(e.render(Dialect::of_path("/v1beta/models/x:generateContent"))).await;
        assert_eq!(
            (g["error"]["code"].as_u64(), g["error"]["status"].as_str()),
            (Some(401), Some("UNAUTHENTICATED"))
        );
        let r = e.render(Dialect::of_path("/model/m/converse"));
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("AccessDeniedException")
        );
        let o = body(e.render(Dialect::of_path("/v1/chat/completions"))).await;
        assert_eq!(o["error"]["code"], "invalid_api_key");
    }
}
