use super::*;
use crate::translate::pair::{
    Step, EMBEDDINGS_TO_COHERE, EMBEDDINGS_TO_GEMINI, EMBEDDINGS_TO_TITAN, EMBEDDINGS_TO_VERTEX,
};
use crate::translate::testing;

fn request(
    step: &'static Step,
    body: Value,
    model: &str,
) -> Result<(Value, Asked), TranslateError> {
    testing::request(step, body.to_string().as_bytes(), model)
        .map(|(b, a)| (serde_json::from_slice(&b).expect("json"), a))
}

fn answer(step: &'static Step, body: Value, asked: Asked) -> Value {
    let out = testing::answer(step, body.to_string().as_bytes(), "emb", 1, asked).expect("ok");
    serde_json::from_slice(&out).expect("json")
}

#[test]
fn requests_per_target() {
    let body = json!({"model": "x", "input": ["a", "bb"], "dimensions": 8, "encoding_format": "base64", "user": "u"});
    let (g, asked) =
        request(&EMBEDDINGS_TO_GEMINI, body.clone(), "gemini-embedding-001").expect("ok");
    assert!(asked.base64);
    assert_eq!(
        g,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bb"}]}, "outputDimensionality": 8}]})
    );
    let (v, _) = request(&EMBEDDINGS_TO_VERTEX, body.clone(), "text-embedding-005").expect("ok");
    assert_eq!(
        v,
        json!({"instances": [{"content": "a"}, {"content": "bb"}], "parameters": {"outputDimensionality": 8}})
    );
    let (c, _) = request(&EMBEDDINGS_TO_COHERE, body.clone(), "cohere.embed-v4:0").expect("ok");
    assert_eq!(
        c,
        json!({"texts": ["a", "bb"], "input_type": "search_document", "embedding_types": ["float"], "output_dimension": 8})
    );
    let (t, asked) = request(
        &EMBEDDINGS_TO_TITAN,
        json!({"model": "x", "input": "a", "dimensions": 256}),
        "amazon.titan-embed-text-v2:0",
    )
    .expect("ok");
    assert!(!asked.base64);
    assert_eq!(t, json!({"inputText": "a", "dimensions": 256}));
    let (c, _) = request(
        &EMBEDDINGS_TO_COHERE,
        json!({"model": "x", "input": "q", "input_type": "search_query"}),
        "cohere.embed-english-v3",
    )
    .expect("ok");
    assert_eq!(c["input_type"], "search_query");
}

#[test]
fn what_a_target_cannot_take_is_refused_by_name() {
    let refused = |step: &'static Step, body: Value| match request(step, body, "m") {
        Err(TranslateError::Unsupported(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        refused(&EMBEDDINGS_TO_TITAN, json!({"input": ["a", "b"]})).contains("one text per call")
    );
    assert!(refused(&EMBEDDINGS_TO_GEMINI, json!({"input": [[1, 2, 3]]})).contains("token-id"));
    assert!(refused(&EMBEDDINGS_TO_GEMINI, json!({"input": [1, 2]})).contains("token-id"));
    assert!(refused(
        &EMBEDDINGS_TO_VERTEX,
        json!({"input": "a", "truncate": true})
    )
    .contains("'truncate'"));
    for body in [
        json!({}),
        json!({"input": []}),
        json!({"input": [""]}),
        json!({"input": 3}),
        json!({"input": "a", "dimensions": 0}),
        json!({"input": "a", "encoding_format": "int8"}),
    ] {
        assert!(
            matches!(
                request(&EMBEDDINGS_TO_GEMINI, body.clone(), "m"),
                Err(TranslateError::Invalid(_))
            ),
            "{body}"
        );
    }
}

#[test]
fn answers_become_openais_list() {
    let g = answer(
        &EMBEDDINGS_TO_GEMINI,
        json!({"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]}),
        Asked::default(),
    );
    assert_eq!(
        g,
        json!({"object": "list", "model": "emb", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}]})
    );
    let v = answer(
        &EMBEDDINGS_TO_VERTEX,
        json!({"predictions": [
            {"embeddings": {"values": [1.0], "statistics": {"token_count": 3.0, "truncated": false}}},
            {"embeddings": {"values": [2.0], "statistics": {"token_count": 4.0, "truncated": false}}}]}),
        Asked::default(),
    );
    assert_eq!(v["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));
    assert_eq!(v["data"][1]["embedding"], json!([2.0]));
    let t = answer(
        &EMBEDDINGS_TO_TITAN,
        json!({"embedding": [0.1, 0.2], "inputTextTokenCount": 5}),
        Asked::default(),
    );
    assert_eq!(t["usage"]["prompt_tokens"], 5);
    for body in [
        json!({"embeddings": {"float": [[1.0], [2.0]]}, "response_type": "embeddings_by_type"}),
        json!({"embeddings": [[1.0], [2.0]], "response_type": "embeddings_floats"}),
    ] {
        let c = answer(&EMBEDDINGS_TO_COHERE, body, Asked::default());
        assert_eq!(c["data"][1]["embedding"], json!([2.0]));
    }
}

/// base64 is the little-endian f32 bytes, as OpenAI sends them (and its SDKs decode).
#[test]
fn base64_vectors_are_little_endian_f32() {
    let asked = Asked {
        base64: true,
        ..Asked::default()
    };
    let g = answer(
        &EMBEDDINGS_TO_GEMINI,
        json!({"embeddings": [{"values": [1.0, -2.5]}]}),
        asked,
    );
    let bytes = STANDARD
        .decode(g["data"][0]["embedding"].as_str().expect("base64"))
        .expect("decodes");
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [1.0, -2.5]);
}

#[test]
fn errors_come_back_in_openais_shape() {
    let e: Value = serde_json::from_slice(&testing::error(
        &EMBEDDINGS_TO_GEMINI,
        400,
        br#"{"error":{"code":400,"message":"bad dims","status":"INVALID_ARGUMENT"}}"#,
    ))
    .expect("json");
    assert_eq!(e["error"]["message"], "bad dims");
    let e: Value = serde_json::from_slice(&testing::error(
        &EMBEDDINGS_TO_TITAN,
        400,
        br#"{"message":"Malformed input request"}"#,
    ))
    .expect("json");
    assert_eq!(e["error"]["message"], "Malformed input request");
}
