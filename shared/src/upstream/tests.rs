use super::*;
use crate::catalog::entry;
use crate::translate::Framing;

fn api(kind: &str, base: &str, account: serde_json::Value) -> ProviderApi {
    let e = entry(kind).expect("entry");
    ProviderApi::new(kind, &e, base, account.as_object().expect("obj"))
}

/// A plan's translation: its steps' names and its framing.
fn steps(p: &Plan) -> Option<(Vec<&'static str>, Framing)> {
    p.translation()
        .map(|t| (t.steps.iter().map(|s| s.name).collect(), t.framing))
}

const CHAT_TO_ANTHROPIC: &str = "OpenAI chat → Anthropic Messages";
const MESSAGES_TO_CHAT: &str = "Anthropic Messages → OpenAI chat";

#[test]
fn inbound_paths() {
    assert_eq!(inbound("/v1/chat/completions"), Some((Surface::Chat, None)));
    assert_eq!(inbound("/v1/messages"), Some((Surface::Messages, None)));
    assert_eq!(
        inbound("/v1beta/models/gemini-2.0-flash:streamGenerateContent"),
        Some((
            Surface::Google(GoogleMethod::StreamGenerateContent),
            Some("gemini-2.0-flash".into())
        ))
    );
    assert_eq!(
        inbound("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
        Some((
            Surface::Bedrock(BedrockOp::Converse),
            Some("anthropic.claude-3-haiku-20240307-v1:0".into())
        ))
    );
    // `provider/model` passthrough names travel in paths, literally or encoded.
    assert_eq!(
        inbound("/v1beta/models/gemini/m1:generateContent"),
        Some((
            Surface::Google(GoogleMethod::GenerateContent),
            Some("gemini/m1".into())
        ))
    );
    assert_eq!(
        inbound("/model/bedrock%2Fm1/converse"),
        Some((
            Surface::Bedrock(BedrockOp::Converse),
            Some("bedrock/m1".into())
        ))
    );
    assert_eq!(
        inbound("/model/bedrock/m1/converse"),
        Some((
            Surface::Bedrock(BedrockOp::Converse),
            Some("bedrock/m1".into())
        ))
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
        plan(&openai, Surface::Chat, "gpt-4o", false, Some("a=1"))
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
        plan(&azure, Surface::Chat, "my-gpt4o", false, Some("api-version=evil")).expect("ok").url,
        "https://contoso.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        plan(&azure, Surface::Responses, "d", false, None).expect("translated").url,
        "https://contoso.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
    );
    let anthropic = api(
        "anthropic",
        "https://api.anthropic.com/v1",
        serde_json::json!({}),
    );
    let p = plan(
        &anthropic,
        Surface::Messages,
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
    let e = plan(&anthropic, Surface::Embeddings, "claude", false, None).unwrap_err();
    // OpenAI chat reaches Claude through translation, wherever Claude is served.
    let t = plan(&anthropic, Surface::Chat, "claude-x", true, None).expect("translated");
    assert_eq!(steps(&t), Some((vec![CHAT_TO_ANTHROPIC], Framing::Sse)));
    let e = e.to_string();
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
        plan(&gemini, Surface::Google(GoogleMethod::StreamGenerateContent), "gemini-2.0-flash", false, Some("alt=sse&key=leak")).expect("ok").url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let vertex = api(
        "vertex",
        "https://us-central1-aiplatform.googleapis.com",
        serde_json::json!({"project":"p1","region":"us-central1"}),
    );
    assert_eq!(
        plan(&vertex, Surface::Google(GoogleMethod::GenerateContent), "gemini-2.0-flash", false, None).expect("ok").url,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    let p = plan(
        &vertex,
        Surface::Messages,
        "claude-sonnet-4@20250514",
        true,
        None,
    )
    .expect("ok");
    assert_eq!(p.url, "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict");
    assert_eq!(
        steps(&p),
        Some((vec!["Anthropic Messages → Claude on Vertex"], Framing::Sse))
    );
    assert!(p.translation().is_some_and(|t| t.answers_pass()));
    // Messages to a Gemini model: through OpenAI chat.
    let t = plan(&vertex, Surface::Messages, "gemini-2.0-flash", true, None).expect("translated");
    assert_eq!(
        steps(&t),
        Some((
            vec![MESSAGES_TO_CHAT, "OpenAI chat → Gemini generateContent"],
            Framing::Sse
        ))
    );
    assert!(t
        .url
        .ends_with("/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"));
    assert!(plan(
        &vertex,
        Surface::Google(GoogleMethod::GenerateContent),
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
        plan(&bedrock, Surface::Bedrock(BedrockOp::ConverseStream), "anthropic.claude-3-haiku-20240307-v1:0", false, None).expect("ok").url,
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    let p = plan(
        &bedrock,
        Surface::Messages,
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
        Surface::Messages,
        "anthropic.claude-x",
        true,
        None,
    )
    .expect("ok");
    assert!(p
        .url
        .ends_with("/model/anthropic.claude-x/invoke-with-response-stream"));
    assert_eq!(
        steps(&p),
        Some((
            vec!["Anthropic Messages → Claude on Bedrock"],
            Framing::AnthropicChunks
        ))
    );
    let t = plan(
        &bedrock,
        Surface::Messages,
        "amazon.nova-pro-v1:0",
        false,
        None,
    )
    .expect("translated");
    assert_eq!(
        steps(&t),
        Some((
            vec![MESSAGES_TO_CHAT, "OpenAI chat → Bedrock Converse"],
            Framing::ConverseEvents
        ))
    );
    assert!(t.url.ends_with("/model/amazon.nova-pro-v1%3A0/converse"));
    let cohere = api(
        "cohere",
        "https://api.cohere.ai/compatibility/v1",
        serde_json::json!({}),
    );
    assert!(plan(&cohere, Surface::Embeddings, "embed-v4.0", false, None).is_ok());
    assert_eq!(
        plan(&cohere, Surface::Responses, "command-a", false, None)
            .expect("translated")
            .url,
        "https://api.cohere.ai/compatibility/v1/chat/completions"
    );
}

/// The Responses API reaches every family: natively where the entry serves it, otherwise
/// through chat completions and on through chat's translations.
#[test]
fn responses_plans_per_family() {
    const R: &str = "OpenAI Responses → OpenAI chat";
    /// Kind, base URL, account, model, stream; the upstream URL, the steps and their framing.
    type Case<'a> = (
        &'a str,
        &'a str,
        serde_json::Value,
        &'a str,
        bool,
        &'a str,
        Option<Vec<&'a str>>,
        Framing,
    );
    let cases: [Case; 9] = [
        (
            "openai",
            "https://api.openai.com/v1",
            serde_json::json!({}),
            "gpt-5",
            false,
            "https://api.openai.com/v1/responses",
            None,
            Framing::Sse,
        ),
        (
            "groq",
            "https://api.groq.com/openai/v1",
            serde_json::json!({}),
            "llama",
            false,
            "https://api.groq.com/openai/v1/responses",
            None,
            Framing::Sse,
        ),
        (
            "deepseek",
            "https://api.deepseek.com/v1",
            serde_json::json!({}),
            "deepseek-chat",
            false,
            "https://api.deepseek.com/v1/chat/completions",
            Some(vec![R]),
            Framing::Sse,
        ),
        (
            "anthropic",
            "https://api.anthropic.com/v1",
            serde_json::json!({}),
            "claude-x",
            true,
            "https://api.anthropic.com/v1/messages",
            Some(vec![R, CHAT_TO_ANTHROPIC]),
            Framing::Sse,
        ),
        (
            "gemini",
            "https://g/v1beta",
            serde_json::json!({}),
            "gemini-2.5-flash",
            true,
            "https://g/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            Some(vec![R, "OpenAI chat → Gemini generateContent"]),
            Framing::Sse,
        ),
        (
            "vertex",
            "https://v",
            serde_json::json!({"project": "p", "region": "r"}),
            "claude-x",
            false,
            "https://v/v1/projects/p/locations/r/publishers/anthropic/models/claude-x:rawPredict",
            Some(vec![
                R,
                CHAT_TO_ANTHROPIC,
                "Anthropic Messages → Claude on Vertex",
            ]),
            Framing::Sse,
        ),
        (
            "bedrock",
            "https://b",
            serde_json::json!({}),
            "anthropic.claude-x",
            true,
            "https://b/model/anthropic.claude-x/invoke-with-response-stream",
            Some(vec![
                R,
                CHAT_TO_ANTHROPIC,
                "Anthropic Messages → Claude on Bedrock",
            ]),
            Framing::AnthropicChunks,
        ),
        (
            "bedrock",
            "https://b",
            serde_json::json!({}),
            "amazon.nova-pro-v1:0",
            true,
            "https://b/model/amazon.nova-pro-v1%3A0/converse-stream",
            Some(vec![R, "OpenAI chat → Bedrock Converse"]),
            Framing::ConverseEvents,
        ),
        (
            "mistral",
            "https://api.mistral.ai/v1",
            serde_json::json!({}),
            "mistral-large",
            false,
            "https://api.mistral.ai/v1/chat/completions",
            Some(vec![R]),
            Framing::Sse,
        ),
    ];
    for (kind, base, account, model, stream, url, chain, framing) in cases {
        let p = plan(
            &api(kind, base, account),
            Surface::Responses,
            model,
            stream,
            None,
        )
        .unwrap_or_else(|e| panic!("{kind} {model}: {e}"));
        assert_eq!(p.url, url, "{kind} {model}");
        assert_eq!(steps(&p), chain.map(|c| (c, framing)), "{kind} {model}");
    }
}

#[test]
fn segments_keep_google_version_marks() {
    assert_eq!(
        segment("claude-sonnet-4@20250514"),
        "claude-sonnet-4@20250514"
    );
    assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
}

#[test]
fn query_parameters_carrying_a_to11_key_are_never_forwarded() {
    let q =
        "api-version=1&key=to11_gk_abcdefgh&token=Bearer%20to11_gk_x&b=dG8xMV9na19hYmM6&alt=sse";
    assert_eq!(
        super::with_query("https://u.test/v1/chat/completions".into(), Some(q), &[]),
        "https://u.test/v1/chat/completions?api-version=1&alt=sse"
    );
    assert_eq!(
        super::with_query("https://u.test/x".into(), Some("key=to11_gk_a"), &[]),
        "https://u.test/x"
    );
}

/// `/v1/embeddings` reaches Gemini, Google's embedding models on Vertex, and Titan and Cohere
/// embedding models on Bedrock, translated; other Bedrock models are named as not embedding ones.
#[test]
fn embeddings_plans_per_family() {
    let gemini = api("gemini", "https://g/v1beta", serde_json::json!({}));
    let p = plan(
        &gemini,
        Surface::Embeddings,
        "gemini-embedding-001",
        false,
        None,
    )
    .expect("ok");
    assert_eq!(
        p.url,
        "https://g/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        steps(&p),
        Some((
            vec!["OpenAI embeddings → Gemini batchEmbedContents"],
            Framing::Sse
        ))
    );
    let vertex = api(
        "vertex",
        "https://v",
        serde_json::json!({"project": "p", "region": "r"}),
    );
    let p = plan(
        &vertex,
        Surface::Embeddings,
        "text-embedding-005",
        false,
        None,
    )
    .expect("ok");
    assert_eq!(
        p.url,
        "https://v/v1/projects/p/locations/r/publishers/google/models/text-embedding-005:predict"
    );
    let bedrock = api("bedrock", "https://b", serde_json::json!({}));
    for (model, url, step) in [
        (
            "amazon.titan-embed-text-v2:0",
            "https://b/model/amazon.titan-embed-text-v2%3A0/invoke",
            "OpenAI embeddings → Bedrock Titan embeddings",
        ),
        (
            "cohere.embed-v4:0",
            "https://b/model/cohere.embed-v4%3A0/invoke",
            "OpenAI embeddings → Bedrock Cohere embed",
        ),
    ] {
        let p = plan(&bedrock, Surface::Embeddings, model, false, None).expect("ok");
        assert_eq!(
            (p.url.as_str(), steps(&p)),
            (url, Some((vec![step], Framing::Sse)))
        );
    }
    assert!(matches!(
        plan(
            &bedrock,
            Surface::Embeddings,
            "amazon.nova-pro-v1:0",
            false,
            None
        ),
        Err(PlanError::OtherApi { .. })
    ));
    let anthropic = api("anthropic", "https://a/v1", serde_json::json!({}));
    assert!(matches!(
        plan(&anthropic, Surface::Embeddings, "claude-x", false, None),
        Err(PlanError::NotServed { .. })
    ));
    let openai = api("openai", "https://api.openai.com/v1", serde_json::json!({}));
    assert_eq!(
        plan(
            &openai,
            Surface::Embeddings,
            "text-embedding-3-small",
            false,
            None
        )
        .expect("ok")
        .body,
        BodyEdit::SetModel
    );
}
