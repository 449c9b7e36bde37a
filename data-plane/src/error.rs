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
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            request_id: None,
        }
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
        let body = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.code.openai_type(),
                "param": null,
                "code": self.code.name(),
            }
        });
        let mut b = HttpResponse::build(self.status_code());
        if let Some(id) = &self.request_id {
            b.insert_header(("x-to11-request-id", id.as_str()));
        }
        b.content_type("application/json").body(body.to_string())
    }
}
