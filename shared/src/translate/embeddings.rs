//! OpenAI `/v1/embeddings` in, for targets without an OpenAI embeddings API: Gemini
//! (`batchEmbedContents`, every input in one call), Vertex (`predict`, one instance per input),
//! Bedrock Titan text embeddings (`invoke`, one text per call) and Cohere embed models on Bedrock
//! (`invoke`, the inputs in one call).
//!
//! Request: `input` (a string or strings; token ids are refused: only OpenAI's tokenizer
//! knows them), `dimensions` → the target's output dimensionality, `encoding_format`
//! (`float`, or `base64`: little-endian f32, what the OpenAI SDKs ask for by default), `user`
//! dropped (no equivalent). Cohere's `input_type` may be sent as an extra field (default
//! `search_document`).
//!
//! Answer: OpenAI's `list` of `embedding`s in input order, and `usage` (the provider's token
//! count where it gives one, in the body; otherwise none: metering then counts by estimate).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::pair::{Answer, Target};
use super::stream::{Event, StreamTranslator};
use super::{Asked, TranslateError};

fn unsupported(what: &str) -> TranslateError {
    TranslateError::Unsupported(format!("this embedding model cannot express {what}"))
}

fn invalid(what: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(what.into())
}

/// The texts to embed, and what the answer needs (`encoding_format`).
fn inputs(req: &Map<String, Value>, asked: &mut Asked) -> Result<Vec<String>, TranslateError> {
    for k in req.keys() {
        match k.as_str() {
            "model" | "input" | "dimensions" | "encoding_format" | "user" | "input_type" => {}
            other => return Err(unsupported(&format!("the request field '{other}'"))),
        }
    }
    asked.base64 = match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(invalid(format!("unknown encoding_format '{other}'"))),
    };
    let texts = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut texts = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(unsupported(
                            "token-id inputs (only OpenAI's tokenizer knows them: send text)",
                        ))
                    }
                    _ => return Err(invalid("'input' items must be strings")),
                }
            }
            texts
        }
        Some(Value::Array(_)) => return Err(invalid("'input' is empty")),
        None | Some(Value::Null) => return Err(invalid("the request has no 'input'")),
        Some(_) => return Err(invalid("'input' must be a string or an array of strings")),
    };
    if texts.iter().any(String::is_empty) {
        return Err(invalid("'input' cannot contain an empty string"));
    }
    Ok(texts)
}

fn dimensions(req: &Map<String, Value>) -> Result<Option<u64>, TranslateError> {
    match req.get("dimensions") {
        None | Some(Value::Null) => Ok(None),
        Some(d) => match d.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid("'dimensions' must be a positive integer")),
        },
    }
}

/// OpenAI embeddings → Gemini `batchEmbedContents`.
pub fn gemini_request(
    req: Map<String, Value>,
    target: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let texts = inputs(&req, asked)?;
    let dims = dimensions(&req)?;
    let model = format!("models/{}", target.model);
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|t| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = d.into();
            }
            r
        })
        .collect();
    let mut out = Map::new();
    out.insert("requests".into(), Value::Array(requests));
    Ok(out)
}

/// Gemini `batchEmbedContents` → OpenAI's list.
pub fn gemini_answer(v: Value, a: &Answer<'_>) -> Value {
    let vectors = v["embeddings"]
        .as_array()
        .map(|e| e.iter().map(|x| &x["values"]).collect::<Vec<_>>())
        .unwrap_or_default();
    list(&vectors, a, tokens(&v["usageMetadata"]["promptTokenCount"]))
}

/// OpenAI embeddings → Vertex `predict` (one instance per input).
pub fn vertex_request(
    req: Map<String, Value>,
    _: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let texts = inputs(&req, asked)?;
    let mut out = Map::new();
    out.insert(
        "instances".into(),
        texts.into_iter().map(|t| json!({"content": t})).collect(),
    );
    if let Some(d) = dimensions(&req)? {
        out.insert("parameters".into(), json!({"outputDimensionality": d}));
    }
    Ok(out)
}

/// Vertex `predict` → OpenAI's list; usage from each prediction's `statistics.token_count`.
pub fn vertex_answer(v: Value, a: &Answer<'_>) -> Value {
    let predictions = v["predictions"].as_array().cloned().unwrap_or_default();
    let vectors: Vec<&Value> = predictions
        .iter()
        .map(|p| &p["embeddings"]["values"])
        .collect();
    let counted: Option<u64> = predictions
        .iter()
        .map(|p| p["embeddings"]["statistics"]["token_count"].as_f64())
        .sum::<Option<f64>>()
        .map(|n| n as u64);
    list(&vectors, a, counted)
}

/// OpenAI embeddings → a Titan text embeddings body (one text per call).
pub fn titan_request(
    req: Map<String, Value>,
    _: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let mut texts = inputs(&req, asked)?;
    if texts.len() > 1 {
        return Err(unsupported(
            "several inputs in one request (Titan embeds one text per call: send them one by one)",
        ));
    }
    let mut out = Map::new();
    out.insert("inputText".into(), texts.remove(0).into());
    if let Some(d) = dimensions(&req)? {
        out.insert("dimensions".into(), d.into());
    }
    Ok(out)
}

/// Titan → OpenAI's list.
pub fn titan_answer(v: Value, a: &Answer<'_>) -> Value {
    list(&[&v["embedding"]], a, tokens(&v["inputTextTokenCount"]))
}

/// OpenAI embeddings → a Cohere embed body on Bedrock (the inputs in one call).
pub fn cohere_request(
    req: Map<String, Value>,
    _: &Target<'_>,
    asked: &mut Asked,
) -> Result<Map<String, Value>, TranslateError> {
    let texts = inputs(&req, asked)?;
    let mut out = Map::new();
    out.insert("texts".into(), texts.into());
    let input_type = req
        .get("input_type")
        .and_then(Value::as_str)
        .unwrap_or("search_document");
    out.insert("input_type".into(), input_type.into());
    out.insert("embedding_types".into(), json!(["float"]));
    if let Some(d) = dimensions(&req)? {
        out.insert("output_dimension".into(), d.into());
    }
    Ok(out)
}

/// Cohere embed (`embeddings` as a list, or by type) → OpenAI's list.
pub fn cohere_answer(v: Value, a: &Answer<'_>) -> Value {
    let e = &v["embeddings"];
    let all = if e.is_array() { e } else { &e["float"] };
    let vectors: Vec<&Value> = all
        .as_array()
        .map(|x| x.iter().collect())
        .unwrap_or_default();
    list(
        &vectors,
        a,
        tokens(&v["meta"]["billed_units"]["input_tokens"]),
    )
}

fn tokens(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// OpenAI's embeddings answer; vectors as floats or, when asked, base64 of little-endian f32.
fn list(vectors: &[&Value], a: &Answer<'_>, tokens: Option<u64>) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if a.asked.base64 {
                let mut bytes = Vec::new();
                for x in v.as_array().into_iter().flatten() {
                    bytes.extend_from_slice(&(x.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
                }
                Value::String(STANDARD.encode(bytes))
            } else {
                (*v).clone()
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut out = json!({"object": "list", "data": data, "model": a.model});
    if let Some(n) = tokens {
        out["usage"] = json!({"prompt_tokens": n, "total_tokens": n});
    }
    out
}

/// Embeddings are never streamed: a translator that yields nothing.
pub fn no_stream(_: &Answer<'_>) -> Box<dyn StreamTranslator> {
    struct Never;
    impl StreamTranslator for Never {
        fn event(&mut self, _: Event, _: &mut Vec<Event>) {}
        fn end(&mut self, _: &mut Vec<Event>) {}
        fn ended(&self) -> bool {
            true
        }
    }
    Box::new(Never)
}

#[cfg(test)]
mod tests;
