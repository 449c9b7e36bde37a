//! Gemini and Vertex: API keys and the service-account token endpoint (JWT verified), model pages, `generateContent` and its SSE stream, Claude on Vertex.

use super::*;

pub(super) fn google_error(
    status: u16,
    code: &str,
    message: &str,
    reason: Option<&str>,
) -> HttpResponse {
    let mut e = json!({"error": {"code": status, "message": message, "status": code}});
    if let Some(r) = reason {
        e["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r, "domain": "googleapis.com"}]);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(e)
}

/// Gemini's `usageMetadata`: 3 prompt and 2 candidates tokens, or (rich) 10 prompt tokens of
/// which 7 cached, 2 candidates and 4 thoughts tokens.
pub(super) fn gemini_usage() -> Value {
    if crate::mock::rich_usage() {
        json!({"promptTokenCount": 10, "cachedContentTokenCount": 7, "candidatesTokenCount": 2,
            "thoughtsTokenCount": 4, "totalTokenCount": 16})
    } else {
        json!({"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5})
    }
}

/// The SSE events of a streamed `generateContent`, exactly as sent (no `[DONE]`).
pub fn gemini_events() -> Vec<String> {
    let part = |t: &str| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}]});
    let mut last = part(" there");
    last["candidates"][0]["finishReason"] = "STOP".into();
    last["usageMetadata"] = gemini_usage();
    [part("Hello"), last]
        .iter()
        .map(|v| format!("data: {v}\r\n\r\n"))
        .collect()
}

/// What the Gemini mock's model answers: with function declarations, a call of the first one with
/// `{"q":"x"}`; in JSON mode (`responseMimeType`), the text `{"q":"x"}`; else "Hello there".
/// Each as the parts of its stream chunks.
pub(super) fn gemini_parts(body: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(f) = v["tools"][0]["functionDeclarations"][0]["name"].as_str() {
        return vec![
            json!({"functionCall": {"name": f, "args": {"q": "x"}}, "thoughtSignature": MOCK_SIGNATURE}),
        ];
    }
    if v["generationConfig"]["responseMimeType"] == "application/json" {
        return vec![json!({"text": "{\"q\":"}), json!({"text": "\"x\"}"})];
    }
    vec![json!({"text": "Hello"}), json!({"text": " there"})]
}

/// A deterministic embedding of `text` with `dims` values (4 unless asked).
pub fn mock_vector(text: &str, dims: Option<u64>) -> Vec<f64> {
    let first = text.len() as f64 / 8.0;
    (0..dims.unwrap_or(4))
        .map(|i| {
            if i == 0 {
                first
            } else {
                1.0 / (i as f64 + 1.0)
            }
        })
        .collect()
}

/// `batchEmbedContents`: every request must name its model as `models/…` and carry text.
fn batch_embed(body: &[u8]) -> HttpResponse {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let mut out = Vec::new();
    for r in v["requests"].as_array().into_iter().flatten() {
        let (Some(model), Some(text)) = (
            r["model"].as_str(),
            r["content"]["parts"][0]["text"].as_str(),
        ) else {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "* BatchEmbedContentsRequest.requests: content is required",
                None,
            );
        };
        if !model.starts_with("models/") {
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "model must be models/{model}",
                None,
            );
        }
        out.push(json!({"values": mock_vector(text, r["outputDimensionality"].as_u64())}));
    }
    if out.is_empty() {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "* BatchEmbedContentsRequest.requests: at least one request is required",
            None,
        );
    }
    HttpResponse::Ok().json(json!({"embeddings": out}))
}

/// Vertex `predict` of a text embedding model: an instance per text, a token count each.
fn vertex_predict(body: &[u8]) -> HttpResponse {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let dims = v["parameters"]["outputDimensionality"].as_u64();
    let predictions: Vec<Value> = v["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["content"].as_str())
        .map(|t| {
            json!({"embeddings": {"values": mock_vector(t, dims),
            "statistics": {"truncated": false, "token_count": (t.len() / 4 + 1) as f64}}})
        })
        .collect();
    if predictions.is_empty() {
        return google_error(400, "INVALID_ARGUMENT", "instances are required", None);
    }
    HttpResponse::Ok()
        .json(json!({"predictions": predictions, "metadata": {"billableCharacterCount": 1}}))
}

/// The thought signature the mock Gemini puts on its function calls (base64, `+` and `/`
/// included so that a lossy carrier shows).
pub const MOCK_SIGNATURE: &str = "Cr8B+/si/mock+w=";

/// As Gemini 3 does: a function call in the history must come back with the signature it was
/// given (or Google's documented skip value); a missing or altered one is a 400.
fn unsigned_call(body: &[u8]) -> Option<HttpResponse> {
    let v: Value = serde_json::from_slice(body).ok()?;
    for c in v["contents"].as_array()? {
        for p in c["parts"].as_array().into_iter().flatten() {
            if p.get("functionCall").is_none() {
                continue;
            }
            match p["thoughtSignature"].as_str() {
                Some(MOCK_SIGNATURE) | Some("skip_thought_signature_validator") => {}
                other => {
                    return Some(google_error(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("Function call is missing a thought_signature in functionCall parts (got {other:?})."),
                        None,
                    ))
                }
            }
        }
    }
    None
}

pub(super) fn generate(method: &str, body: &[u8]) -> HttpResponse {
    if let Some(refused) = unsigned_call(body) {
        return refused;
    }
    let parts = gemini_parts(body);
    let usage = gemini_usage();
    match method {
        "generateContent" => {
            let whole = match parts
                .iter()
                .map(|p| p["text"].as_str())
                .collect::<Option<String>>()
            {
                Some(text) => vec![json!({"text": text})],
                None => parts,
            };
            HttpResponse::Ok().json(json!({
                "candidates": [{"content": {"role": "model", "parts": whole}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": usage, "modelVersion": "mock"}))
        }
        "streamGenerateContent" if parts.len() == 2 && parts[0]["text"] == "Hello" => {
            sse(gemini_events())
        }
        "streamGenerateContent" => {
            let n = parts.len();
            sse(parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}]});
                    if i + 1 == n {
                        c["candidates"][0]["finishReason"] = "STOP".into();
                        c["usageMetadata"] = usage.clone();
                    }
                    format!("data: {c}\r\n\r\n")
                })
                .collect())
        }
        "countTokens" => HttpResponse::Ok().json(json!({"totalTokens": 1})),
        "batchEmbedContents" => batch_embed(body),
        "predict" => vertex_predict(body),
        m => google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("unknown method {m}"),
            None,
        ),
    }
}

pub(super) fn gemini(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let key = header(req, "x-goog-api-key");
    if key != Some(&state.api_key) && !key.is_some_and(|k| k.starts_with("sk-byok")) {
        // Google answers a bad key with 400, not 401.
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            Some("API_KEY_INVALID"),
        );
    }
    if query(req, "key").is_some() {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "a key in the URL reached the upstream",
            None,
        );
    }
    let path = req.path();
    if req.method() == actix_web::http::Method::GET && path == "/v1beta/models" {
        let pages = [
            json!({"models": [{"name": "models/m1", "supportedGenerationMethods": ["generateContent", "countTokens"]},
                              {"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]}], "nextPageToken": "page-2"}),
            json!({"models": [{"name": "models/m2", "supportedGenerationMethods": ["embedContent"]}]}),
        ];
        return match query(req, "pageToken").as_deref() {
            None => HttpResponse::Ok().json(&pages[0]),
            Some("page-2") => HttpResponse::Ok().json(&pages[1]),
            Some(_) => google_error(400, "INVALID_ARGUMENT", "bad page token", None),
        };
    }
    match path
        .strip_prefix("/v1beta/models/")
        .and_then(|r| r.split_once(':'))
    {
        Some((m, method)) if m == "m1" || m == "m2" => generate(method, body),
        Some((m, _)) => google_error(404, "NOT_FOUND", &format!("models/{m} is not found"), None),
        None => not_found(path),
    }
}

pub(super) fn vertex(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let path = req.path().to_string();
    if path == "/token" {
        return token_endpoint(body, state);
    }
    let bearer = header(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    let issued = bearer.is_some_and(|t| {
        state
            .issued_tokens
            .lock()
            .expect("lock")
            .iter()
            .any(|i| i == t)
    });
    if !issued && !bearer.is_some_and(|t| t.starts_with("sk-byok")) {
        return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", None);
    }
    if req.method() == actix_web::http::Method::GET && path == "/v1beta1/publishers/google/models" {
        return match query(req, "pageToken").as_deref() {
            None => HttpResponse::Ok().json(json!({"publisherModels": [
                {"name": "publishers/google/models/gemini-m1", "versionId": "001", "launchStage": "GA"},
                {"name": "publishers/google/models/imagen-x", "versionId": "001"}], "nextPageToken": "p2"})),
            Some("p2") => HttpResponse::Ok().json(json!({"publisherModels": [
                {"name": "publishers/google/models/gemini-m2", "versionId": "001", "launchStage": "GA"}]})),
            Some(_) => google_error(400, "INVALID_ARGUMENT", "bad page token", None),
        };
    }
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return not_found(&path);
    };
    let Some((project, rest)) = rest.split_once("/locations/") else {
        return not_found(&path);
    };
    if project != VERTEX_PROJECT {
        return google_error(403, "PERMISSION_DENIED", &format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/{project}'"), None);
    }
    let Some((_region, rest)) = rest.split_once('/') else {
        return not_found(&path);
    };
    if rest == "models" {
        return HttpResponse::Ok().json(json!({"models": []}));
    }
    if let Some(call) = rest.strip_prefix("publishers/google/models/") {
        return match call.split_once(':') {
            Some((m, method)) if m.starts_with("gemini-m") => generate(method, body),
            Some((m, method)) if m.starts_with("text-embedding-m") => generate(method, body),
            _ => google_error(404, "NOT_FOUND", "Publisher model not found", None),
        };
    }
    if let Some(call) = rest.strip_prefix("publishers/anthropic/models/") {
        return match call.split_once(':') {
            Some((m, "rawPredict" | "streamRawPredict")) if m == "claude-m1@20250514" => {
                messages(body, Some(m), Some("vertex-2023-10-16"))
            }
            _ => google_error(
                404,
                "NOT_FOUND",
                "Publisher model not found or not enabled",
                None,
            ),
        };
    }
    not_found(&path)
}

/// Google's token endpoint: verifies the JWT-bearer assertion before issuing a token.
pub(super) fn token_endpoint(body: &[u8], state: &NativeState) -> HttpResponse {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let refuse = |d: &str| {
        HttpResponse::BadRequest().json(json!({"error": "invalid_grant", "error_description": d}))
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let sa = ServiceAccount::from_json(&service_account(SA_EMAIL)).expect("test SA");
    let pk = public_key_der(&sa).expect("public key");
    let Some(claims) = form.get("assertion").and_then(|a| verify_assertion(a, &pk)) else {
        return refuse("Invalid JWT Signature.");
    };
    let now = chrono::Utc::now().timestamp();
    if claims["iss"] != SA_EMAIL {
        return refuse("Invalid grant: account not found");
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if claims["aud"] != "https://oauth2.googleapis.com/token"
        || claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || exp <= now
        || exp - iat > 3600
        || (iat - now).abs() > 300
    {
        return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    let mut issued = state.issued_tokens.lock().expect("lock");
    let token = format!("ya29.mock-{}", issued.len() + 1);
    issued.push(token.clone());
    HttpResponse::Ok()
        .json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
}
