//! Bedrock: SigV4 verified over the request as received, model and inference-profile listings, Converse and its event stream, InvokeModel (Claude) whole and streamed.

use super::*;

pub(super) fn aws_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header((
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
        ))
        .json(json!({"message": message}))
}

/// Verifies SigV4 over the request as received; `Err` is AWS's answer.
#[allow(clippy::result_large_err)]
pub(super) fn verify_sigv4(req: &HttpRequest, body: &[u8]) -> Result<(), HttpResponse> {
    let auth = header(req, "authorization").unwrap_or("");
    let missing = || {
        aws_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        )
    };
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(missing)?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(String::from)
    };
    let (credential, signed_headers, signature) = match (
        field("Credential="),
        field("SignedHeaders="),
        field("Signature="),
    ) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err(missing()),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != AWS_KEY_ID {
        return Err(aws_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date = header(req, "x-amz-date").unwrap_or("");
    let at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc().timestamp())
        .map_err(|_| missing())?;
    if (chrono::Utc::now().timestamp() - at).abs() > 300 {
        return Err(aws_error(
            403,
            "InvalidSignatureException",
            "Signature expired",
        ));
    }
    if scope[2] != AWS_REGION || scope[3] != "bedrock" || scope[4] != "aws4_request" {
        return Err(aws_error(
            403,
            "InvalidSignatureException",
            &format!(
                "Credential should be scoped to a valid region and service 'bedrock', not '{}/{}'",
                scope[2], scope[3]
            ),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(missing());
    }
    let extra: Vec<(&str, &str)> = names
        .iter()
        .filter(|n| !matches!(**n, "host" | "x-amz-date" | "x-amz-security-token"))
        .map(|n| (*n, header(req, n).unwrap_or("")))
        .collect();
    let creds = sigv4::AwsCredentials {
        access_key_id: AWS_KEY_ID.into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: header(req, "x-amz-security-token").map(String::from),
    };
    // The path exactly as it arrived on the wire (still percent-encoded).
    let raw_path = req.uri().path();
    let expected = sigv4::sign(
        &sigv4::Request {
            method: req.method().as_str(),
            host: header(req, "host").unwrap_or(""),
            path: raw_path,
            query: req.query_string(),
            headers: &extra,
            body,
        },
        &creds,
        AWS_REGION,
        "bedrock",
        at,
    );
    let want = expected
        .authorization
        .rsplit("Signature=")
        .next()
        .unwrap_or("")
        .to_string();
    if want != signature
        || !expected
            .authorization
            .contains(&format!("SignedHeaders={signed_headers},"))
    {
        return Err(aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."));
    }
    Ok(())
}

/// One AWS event-stream frame of an event (headers `:event-type`, `:content-type`,
/// `:message-type`), CRC32-checked by whoever decodes it.
pub fn event_frame(event_type: &str, payload: &Value) -> Vec<u8> {
    to11_shared::eventstream::encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// InvokeModelWithResponseStream for a Claude model: each Anthropic event of `anthropic_events`
/// as a `chunk` frame carrying its JSON in base64.
pub fn invoke_stream_frames(model: &str) -> Vec<u8> {
    chunk_frames(&anthropic_events(model))
}

/// Anthropic SSE events as InvokeModel stream `chunk` frames.
pub(super) fn chunk_frames(events: &[String]) -> Vec<u8> {
    use base64::Engine;
    events
        .iter()
        .flat_map(|e| {
            let data = e
                .split_once("\ndata: ")
                .map(|(_, d)| d.trim_end())
                .unwrap_or("");
            let b = base64::engine::general_purpose::STANDARD.encode(data);
            event_frame("chunk", &json!({"bytes": b}))
        })
        .collect()
}

/// Converse's `usage`: 3 input and 2 output tokens, and (rich) 7 read from and 11 written to the
/// cache.
pub(super) fn converse_usage() -> Value {
    if crate::mock::rich_usage() {
        json!({"inputTokens": 3, "outputTokens": 2, "totalTokens": 23, "cacheReadInputTokens": 7, "cacheWriteInputTokens": 11})
    } else {
        json!({"inputTokens": 3, "outputTokens": 2, "totalTokens": 5})
    }
}

/// The ConverseStream frames the mock sends, exactly as sent.
pub fn converse_frames() -> Vec<u8> {
    [
        ("messageStart", json!({"role": "assistant"})),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        ),
        (
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": " there"}}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        ("messageStop", json!({"stopReason": "end_turn"})),
        (
            "metadata",
            json!({"usage": converse_usage(), "metrics": {"latencyMs": 1}}),
        ),
    ]
    .iter()
    .flat_map(|(t, p)| event_frame(t, p))
    .collect()
}

pub(super) fn bedrock(req: &HttpRequest, body: &[u8], state: &NativeState) -> HttpResponse {
    let bearer = header(req, "authorization").and_then(|a| a.strip_prefix("Bearer "));
    match bearer {
        // A Bedrock API key.
        Some(k) if k == state.api_key || k.starts_with("sk-byok") => {}
        Some(_) => {
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        }
        None => {
            if let Err(e) = verify_sigv4(req, body) {
                return e;
            }
            state
                .signatures_verified
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let path = req.path().to_string();
    if req.method() == actix_web::http::Method::GET {
        return match path.as_str() {
            "/foundation-models" => HttpResponse::Ok().json(json!({"modelSummaries": [
                {"modelArn": "arn:aws:bedrock:eu-west-3::foundation-model/m1", "modelId": "m1", "modelName": "M1", "providerName": "Mock",
                 "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}},
                {"modelArn": "arn:…/old", "modelId": "old-m", "providerName": "Mock", "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "LEGACY"}},
                {"modelArn": "arn:…/p", "modelId": "anthropic.claude-m1-v1:0", "providerName": "Anthropic", "inferenceTypesSupported": ["INFERENCE_PROFILE"], "modelLifecycle": {"status": "ACTIVE"}},
                {"modelArn": "arn:…/t", "modelId": "amazon.titan-embed-text-v2:0", "providerName": "Amazon", "outputModalities": ["EMBEDDING"], "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}},
                {"modelArn": "arn:…/c", "modelId": "cohere.embed-v4:0", "providerName": "Cohere", "outputModalities": ["EMBEDDING"], "inferenceTypesSupported": ["ON_DEMAND"], "modelLifecycle": {"status": "ACTIVE"}}]})),
            "/inference-profiles" => match query(req, "nextToken").as_deref() {
                None => HttpResponse::Ok().json(json!({"inferenceProfileSummaries": [
                    {"inferenceProfileId": "eu.anthropic.claude-m1-v1:0", "inferenceProfileArn": "arn:…", "status": "ACTIVE", "type": "SYSTEM_DEFINED"}], "nextToken": "t2"})),
                Some("t2") => HttpResponse::Ok().json(json!({"inferenceProfileSummaries": [
                    {"inferenceProfileId": "eu.m2", "inferenceProfileArn": "arn:…", "status": "ACTIVE", "type": "SYSTEM_DEFINED"}]})),
                Some(_) => aws_error(400, "ValidationException", "bad token"),
            },
            _ => aws_error(404, "UnknownOperationException", "unknown"),
        };
    }
    let Some(rest) = path.strip_prefix("/model/") else {
        return aws_error(404, "UnknownOperationException", "unknown");
    };
    let Some((model, op)) = rest.rsplit_once('/') else {
        return aws_error(404, "UnknownOperationException", "unknown");
    };
    let model = to11_shared::upstream::decode_segment(model).unwrap_or_default();
    let known = [
        "m1",
        "eu.m2",
        "eu.anthropic.claude-m1-v1:0",
        "amazon.titan-embed-text-v2:0",
        "cohere.embed-v4:0",
    ];
    if !known.contains(&model.as_str()) {
        return aws_error(
            400,
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    }
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    // With tools, the model calls the first one (or the one `toolChoice` names) with {"q":"x"}.
    let tool = v["toolConfig"]["toolChoice"]["tool"]["name"]
        .as_str()
        .or(v["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str());
    match (op, tool) {
        ("converse", Some(name)) => HttpResponse::Ok().json(json!({
            "output": {"message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": {"q": "x"}}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}, "metrics": {"latencyMs": 1}})),
        ("converse-stream", Some(name)) => HttpResponse::Ok()
            .content_type("application/vnd.amazon.eventstream")
            .body(
                [
                    ("messageStart", json!({"role": "assistant"})),
                    ("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": name}}})),
                    ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"q\":"}}})),
                    ("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"x\"}"}}})),
                    ("contentBlockStop", json!({"contentBlockIndex": 0})),
                    ("messageStop", json!({"stopReason": "tool_use"})),
                    ("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}, "metrics": {"latencyMs": 1}})),
                ]
                .iter()
                .flat_map(|(t, p)| event_frame(t, p))
                .collect::<Vec<u8>>(),
            ),
        _ => converse_or_invoke(op, &model, body),
    }
}

pub(super) fn converse_or_invoke(op: &str, model: &str, body: &[u8]) -> HttpResponse {
    let model = model.to_string();
    match op {
        "converse" => HttpResponse::Ok().json(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello there"}]}},
            "stopReason": "end_turn", "usage": converse_usage(), "metrics": {"latencyMs": 1}})),
        "converse-stream" => HttpResponse::Ok()
            .content_type("application/vnd.amazon.eventstream")
            .body(converse_frames()),
        "invoke" if model.contains("anthropic.") => {
            messages(body, Some(&model), Some("bedrock-2023-05-31"))
        }
        "invoke-with-response-stream" if model.contains("anthropic.") => {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            if v["anthropic_version"] != "bedrock-2023-05-31"
                || v.get("model").is_some()
                || v.get("stream").is_some()
            {
                return aws_error(
                    400,
                    "ValidationException",
                    "malformed Anthropic body for InvokeModel",
                );
            }
            HttpResponse::Ok()
                .content_type("application/vnd.amazon.eventstream")
                .body(chunk_frames(&match claude_tool(&v) {
                    Some((name, _)) => tool_events(&model, &name),
                    None => anthropic_events(&model),
                }))
        }
        "invoke" if model.contains("titan-embed") => {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let Some(text) = v["inputText"].as_str() else {
                return aws_error(
                    400,
                    "ValidationException",
                    "Malformed input request: required key [inputText] not found",
                );
            };
            let n = text.len() / 4 + 1;
            HttpResponse::Ok()
                .insert_header(("x-amzn-bedrock-input-token-count", n.to_string()))
                .json(
                    json!({"embedding": super::google::mock_vector(text, v["dimensions"].as_u64()),
                    "inputTextTokenCount": n}),
                )
        }
        "invoke" if model.contains("cohere.embed") => {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let texts: Vec<&str> = v["texts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if texts.is_empty() || v["input_type"].as_str().is_none() {
                return aws_error(
                    400,
                    "ValidationException",
                    "Malformed input request: texts and input_type are required",
                );
            }
            let n: usize = texts.iter().map(|t| t.len() / 4 + 1).sum();
            let vectors: Vec<Vec<f64>> = texts
                .iter()
                .map(|t| super::google::mock_vector(t, v["output_dimension"].as_u64()))
                .collect();
            HttpResponse::Ok()
                .insert_header(("x-amzn-bedrock-input-token-count", n.to_string()))
                .json(json!({"id": "emb-1", "embeddings": {"float": vectors}, "response_type": "embeddings_by_type", "texts": texts}))
        }
        _ => aws_error(400, "ValidationException", "unsupported"),
    }
}
