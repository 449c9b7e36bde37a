use super::*;
use crate::catalog::entry;

fn api(kind: &str, base: &str, account: serde_json::Value) -> ProviderApi {
    let e = entry(kind).expect("entry");
    ProviderApi::new(kind, &e, base, account.as_object().expect("obj"))
}

#[test]
fn inbound_paths() {
    assert_eq!(
        inbound("/v1/chat/completions"),
        Some((Surface::OpenAi("/chat/completions"), None))
    );
    assert_eq!(inbound("/v1/messages"), Some((Surface::Messages, None)));
    assert_eq!(
        inbound("/v1beta/models/gemini-2.0-flash:streamGenerateContent"),
        Some((
            Surface::Google("streamGenerateContent".into()),
            Some("gemini-2.0-flash".into())
        ))
    );
    assert_eq!(
        inbound("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
        Some((
            Surface::Bedrock("converse"),
            Some("anthropic.claude-3-haiku-20240307-v1:0".into())
        ))
    );
    // `provider/model` passthrough names travel in paths, literally or encoded.
    assert_eq!(
        inbound("/v1beta/models/gemini/m1:generateContent"),
        Some((
            Surface::Google("generateContent".into()),
            Some("gemini/m1".into())
        ))
    );
    assert_eq!(
        inbound("/model/bedrock%2Fm1/converse"),
        Some((Surface::Bedrock("converse"), Some("bedrock/m1".into())))
    );
    assert_eq!(
        inbound("/model/bedrock/m1/converse"),
        Some((Surface::Bedrock("converse"), Some("bedrock/m1".into())))
    );
    for bad in [
        "/v1/nope",
        "/v1beta/models/x:deleteEverything",
        "/model//converse",
        "/model/x/run",
    ] {
        assert_eq!(inbound(bad), None, "{bad}");
    }
}

#[test]
fn plans_per_family() {
    let openai = api("openai", "https://api.openai.com/v1", serde_json::json!({}));
    assert_eq!(
        plan(
            &openai,
            &Surface::OpenAi("/chat/completions"),
            "gpt-4o",
            false,
            Some("a=1")
        )
        .expect("ok")
        .url,
        "https://api.openai.com/v1/chat/completions?a=1"
    );
    let azure = api(
        "azure-openai",
        "https://contoso.openai.azure.com/openai",
        serde_json::json!({"resource":"contoso","api_version":"2024-10-21"}),
    );
    assert_eq!(
        plan(&azure, &Surface::OpenAi("/chat/completions"), "my-gpt4o", false, Some("api-version=evil")).expect("ok").url,
        "https://contoso.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert!(plan(&azure, &Surface::OpenAi("/responses"), "d", false, None).is_err());
    let anthropic = api(
        "anthropic",
        "https://api.anthropic.com/v1",
        serde_json::json!({}),
    );
    let p = plan(
        &anthropic,
        &Surface::Messages,
        "claude-sonnet-4-5",
        true,
        None,
    )
    .expect("ok");
    assert_eq!(
        (p.url.as_str(), p.body),
        ("https://api.anthropic.com/v1/messages", BodyEdit::SetModel)
    );
    assert_eq!(p.default_headers, ANTHROPIC_DEFAULTS);
    let e = plan(
        &anthropic,
        &Surface::OpenAi("/embeddings"),
        "claude",
        false,
        None,
    )
    .unwrap_err();
    // OpenAI chat reaches Claude through translation, wherever Claude is served.
    let t = plan(
        &anthropic,
        &Surface::OpenAi("/chat/completions"),
        "claude-x",
        true,
        None,
    )
    .expect("translated");
    assert_eq!(
        (t.body, t.response),
        (
            BodyEdit::OpenAiToAnthropic { vendor: None },
            ResponseEdit::AnthropicToOpenAi
        )
    );
    assert!(
        e.contains("OpenAI Embeddings") && e.contains("Anthropic Messages"),
        "{e}"
    );
    let gemini = api(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        serde_json::json!({}),
    );
    assert_eq!(
        plan(&gemini, &Surface::Google("streamGenerateContent".into()), "gemini-2.0-flash", false, Some("alt=sse&key=leak")).expect("ok").url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let vertex = api(
        "vertex",
        "https://us-central1-aiplatform.googleapis.com",
        serde_json::json!({"project":"p1","region":"us-central1"}),
    );
    assert_eq!(
        plan(&vertex, &Surface::Google("generateContent".into()), "gemini-2.0-flash", false, None).expect("ok").url,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    let p = plan(
        &vertex,
        &Surface::Messages,
        "claude-sonnet-4@20250514",
        true,
        None,
    )
    .expect("ok");
    assert_eq!(p.url, "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict");
    assert_eq!(
        p.body,
        BodyEdit::AnthropicVendor {
            version: "vertex-2023-10-16",
            drop_stream: false
        }
    );
    // Messages to a Gemini model: through OpenAI chat.
    let t = plan(&vertex, &Surface::Messages, "gemini-2.0-flash", true, None).expect("translated");
    assert_eq!(
        (t.body, t.response),
        (BodyEdit::MessagesToGemini, ResponseEdit::GeminiToMessages)
    );
    assert!(t
        .url
        .ends_with("/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"));
    assert!(plan(
        &vertex,
        &Surface::Google("generateContent".into()),
        "claude-sonnet-4@20250514",
        false,
        None
    )
    .is_err());
    let bedrock = api(
        "bedrock",
        "https://bedrock-runtime.us-east-1.amazonaws.com",
        serde_json::json!({"region":"us-east-1"}),
    );
    assert_eq!(
        plan(&bedrock, &Surface::Bedrock("converse-stream"), "anthropic.claude-3-haiku-20240307-v1:0", false, None).expect("ok").url,
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    let p = plan(
        &bedrock,
        &Surface::Messages,
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        false,
        None,
    )
    .expect("ok");
    assert!(p
        .url
        .ends_with("/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/invoke"));
    let p = plan(
        &bedrock,
        &Surface::Messages,
        "anthropic.claude-x",
        true,
        None,
    )
    .expect("ok");
    assert!(p
        .url
        .ends_with("/model/anthropic.claude-x/invoke-with-response-stream"));
    assert_eq!(p.response, ResponseEdit::EventStreamToAnthropicSse);
    let t = plan(
        &bedrock,
        &Surface::Messages,
        "amazon.nova-pro-v1:0",
        false,
        None,
    )
    .expect("translated");
    assert_eq!(
        (t.body, t.response),
        (
            BodyEdit::MessagesToConverse,
            ResponseEdit::ConverseToMessages
        )
    );
    assert!(t.url.ends_with("/model/amazon.nova-pro-v1%3A0/converse"));
    assert!(plan(
        &bedrock,
        &Surface::OpenAi("/responses"),
        "amazon.nova-pro-v1:0",
        false,
        None
    )
    .is_err());
    let cohere = api(
        "cohere",
        "https://api.cohere.ai/compatibility/v1",
        serde_json::json!({}),
    );
    assert!(plan(
        &cohere,
        &Surface::OpenAi("/embeddings"),
        "embed-v4.0",
        false,
        None
    )
    .is_ok());
    assert!(plan(
        &cohere,
        &Surface::OpenAi("/responses"),
        "command-a",
        false,
        None
    )
    .is_err());
}

#[test]
fn vendor_body_moves_the_model_out() {
    let b = vendor_body(
        br#"{"model":"m","stream":true,"max_tokens":5}"#,
        "bedrock-2023-05-31",
        true,
    )
    .expect("ok");
    let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"anthropic_version":"bedrock-2023-05-31","max_tokens":5})
    );
    let b = vendor_body(
        br#"{"model":"m","stream":true,"anthropic_version":"x"}"#,
        "v",
        false,
    )
    .expect("ok");
    let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"anthropic_version":"x","stream":true})
    );
}

#[test]
fn segments_keep_google_version_marks() {
    assert_eq!(
        segment("claude-sonnet-4@20250514"),
        "claude-sonnet-4@20250514"
    );
    assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
}
