//! The one table of error codes both planes use. Each code has one HTTP status, a stable
//! machine-readable name, the OpenAI `type` it renders as, and who is at fault.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Gateway,
}

macro_rules! codes {
    ($($variant:ident => $status:expr, $name:expr, $oai_type:expr, $fault:ident;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];
            pub fn status(self) -> u16 { match self { $(ErrorCode::$variant => $status,)* } }
            /// Stable machine-readable name, e.g. `model_not_found`.
            pub fn name(self) -> &'static str { match self { $(ErrorCode::$variant => $name,)* } }
            /// The OpenAI error `type` this code renders as.
            pub fn openai_type(self) -> &'static str { match self { $(ErrorCode::$variant => $oai_type,)* } }
            pub fn fault(self) -> Fault { match self { $(ErrorCode::$variant => Fault::$fault,)* } }
        }
    };
}

codes! {
    // Shared by both planes.
    BadRequest          => 400, "bad_request",              "invalid_request_error", Client;
    InvalidJson         => 400, "invalid_json",             "invalid_request_error", Client;
    Validation          => 422, "validation_failed",        "invalid_request_error", Client;
    Unauthorized        => 401, "unauthorized",             "authentication_error",  Client;
    Forbidden           => 403, "forbidden",                "permission_error",      Client;
    NotFound            => 404, "not_found",                "not_found_error",       Client;
    Conflict            => 409, "conflict",                 "invalid_request_error", Client;
    PayloadTooLarge     => 413, "payload_too_large",        "invalid_request_error", Client;
    StoreUnavailable    => 503, "store_unavailable",        "api_error",             Gateway;
    StoreReset          => 503, "store_reset",              "api_error",             Gateway;
    Internal            => 500, "internal_error",           "api_error",             Gateway;
    // Data plane.
    MissingModel        => 400, "missing_model",            "invalid_request_error", Client;
    MissingKey          => 401, "missing_api_key",          "authentication_error",  Client;
    InvalidKey          => 401, "invalid_api_key",          "authentication_error",  Client;
    ExpiredKey          => 401, "expired_api_key",          "authentication_error",  Client;
    ByokRequired        => 401, "byok_required",            "authentication_error",  Client;
    ModelNotAllowed     => 403, "model_not_allowed",        "permission_error",      Client;
    ModelNotFound       => 404, "model_not_found",          "not_found_error",       Client;
    RateLimited         => 429, "rate_limited",             "rate_limit_error",      Client;
    BudgetExceeded      => 429, "budget_exceeded",          "rate_limit_error",      Client;
    ConcurrencyLimited  => 429, "concurrency_limited",      "rate_limit_error",      Client;
    UpstreamFailure     => 502, "upstream_failure",         "api_error",             Upstream;
    NotConfigured       => 503, "not_configured",           "api_error",             Gateway;
    UpstreamTimeout     => 504, "upstream_timeout",         "api_error",             Upstream;
    UnsupportedByTarget => 400, "unsupported_by_target",    "invalid_request_error", Client;
    UpstreamAuth        => 502, "upstream_auth_failed",     "api_error",             Upstream;
    Overloaded          => 503, "overloaded",               "api_error",             Gateway;
    RequestTimeout      => 408, "request_timeout",          "invalid_request_error", Client;
    // Control plane: provider validation and discovery.
    ProviderInvalidCredential => 400, "provider_invalid_credential", "invalid_request_error", Client;
    ProviderPermission        => 400, "provider_permission_denied",  "invalid_request_error", Client;
    ProviderUnreachable       => 400, "provider_unreachable",        "invalid_request_error", Client;
    ProviderBadBaseUrl        => 400, "provider_bad_base_url",       "invalid_request_error", Client;
    ProviderRateLimited       => 400, "provider_rate_limited",       "invalid_request_error", Client;
    ProviderTimeout           => 400, "provider_timeout",            "invalid_request_error", Client;
    ProviderUnexpected        => 400, "provider_unexpected_response","invalid_request_error", Client;
    UpstreamUrlRefused        => 400, "upstream_url_refused",        "invalid_request_error", Client;
    // Control plane: the usage store.
    UsageUnavailable          => 503, "usage_unavailable",           "api_error",             Gateway;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_unique_and_statuses_are_http_errors() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.name()), "duplicate {}", c.name());
            assert!((400..600).contains(&c.status()));
        }
    }
}
