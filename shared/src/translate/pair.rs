//! Translation descriptors: one `Step` per surface pair (its request, whole answer, error and
//! stream translation), and `Translation`, the steps a target needs in turn. Chained pairs (Anthropic
//! Messages → OpenAI chat → Gemini) are a list of steps run over JSON values: the request through
//! each step in order, the answer back through them in reverse, never through bytes in between.
//!
//! Adding a pair is one `Step` (its functions live in the pair's file) plus its tests, and one
//! line where `upstream::plan` chooses it.

use serde_json::{Map, Value};

use super::stream::{Chain, Converter, Framing, StreamTranslator};
use super::{
    anthropic, bedrock, embeddings, gemini, messages_in, responses_in, Asked, TranslateError,
};
use crate::usage::UsageFormat;

/// What a request translation needs to know about the target.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The upstream model.
    pub model: &'a str,
    /// The catalog entry's field for an output limit (`max_tokens` or `max_completion_tokens`).
    pub max_tokens_field: &'static str,
    /// Whether to ask an OpenAI-compatible target for the usage of a stream
    /// (`stream_options.include_usage`; some servers refuse it).
    pub ask_usage: bool,
    /// Whether the next step keeps cache points marked on chat parts, tool messages and tools
    /// (`cache_control`, as Anthropic writes it): chat → Converse maps them to `cachePoint`s.
    /// Never set when the chat body goes to a server, which would refuse the unknown field.
    pub cache_points: bool,
}

/// What an answer translation needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The upstream model (named in answers whose upstream does not say).
    pub model: &'a str,
    /// The answer's creation time (Unix seconds).
    pub created: i64,
    pub asked: Asked,
}

/// The answer side of a step.
pub struct AnswerSide {
    /// A whole (non-streamed) answer.
    pub whole: fn(Value, &Answer<'_>) -> Value,
    /// An error body (its JSON, or `Null`; and its text) with the upstream's status.
    pub error: fn(u16, &Value, &str) -> Value,
    /// The translator of a streamed answer.
    pub stream: fn(&Answer<'_>) -> Box<dyn StreamTranslator>,
}

/// A request translation: the body as a JSON object in, the next API's out; what the answer
/// translation must know is noted in `Asked`.
pub type RequestFn =
    fn(Map<String, Value>, &Target<'_>, &mut Asked) -> Result<Map<String, Value>, TranslateError>;

/// One surface pair.
pub struct Step {
    /// `client API → upstream API`, for messages and tests.
    pub name: &'static str,
    /// The request body (a JSON object) in the next API's terms.
    pub request: RequestFn,
    /// Whether http(s) image URLs must become inline bytes before this step (its target takes
    /// images only as bytes). The caller fetches them: this crate does no I/O.
    pub inline_images: bool,
    /// `None`: the answer is already in the client's terms (a body edit only).
    pub answer: Option<AnswerSide>,
    /// The usage format of the answers this step's upstream gives.
    pub answers_in: UsageFormat,
}

/// The steps a target needs, and how its streamed answers are framed.
#[derive(Clone, Copy)]
pub struct Translation {
    pub steps: &'static [&'static Step],
    pub framing: Framing,
}

impl std::fmt::Debug for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|s| s.name).collect();
        write!(f, "Translation({} / {:?})", names.join(" → "), self.framing)
    }
}

impl PartialEq for Translation {
    fn eq(&self, other: &Self) -> bool {
        self.framing == other.framing
            && self.steps.len() == other.steps.len()
            && self
                .steps
                .iter()
                .zip(other.steps)
                .all(|(a, b)| std::ptr::eq(*a, *b))
    }
}

impl Eq for Translation {}

/// Why an answer could not be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the provider's answer is not JSON: {0}")]
    NotJson(String),
}

impl Translation {
    pub const fn new(steps: &'static [&'static Step], framing: Framing) -> Self {
        Translation { steps, framing }
    }

    /// Whether answers come back in the client's terms (every step is a body edit only), so they
    /// pass through unread — unless their framing must change.
    pub fn answers_pass(&self) -> bool {
        self.steps.iter().all(|s| s.answer.is_none())
    }

    /// Whether a streamed answer must be converted on the way.
    pub fn converts_streams(&self) -> bool {
        !self.answers_pass() || self.framing != Framing::Sse
    }

    /// Runs the request through one step (the caller inlines images first when it asks).
    pub fn request_step(
        step: &Step,
        body: Map<String, Value>,
        target: &Target<'_>,
        asked: &mut Asked,
    ) -> Result<Map<String, Value>, TranslateError> {
        (step.request)(body, target, asked)
    }

    /// A whole answer back through every step, last first.
    pub fn answer(&self, body: &[u8], a: &Answer<'_>) -> Result<Vec<u8>, AnswerError> {
        let mut v: Value =
            serde_json::from_slice(body).map_err(|e| AnswerError::NotJson(e.to_string()))?;
        for side in self.answer_sides() {
            v = (side.whole)(v, a);
        }
        Ok(serde_json::to_vec(&v).unwrap_or_default())
    }

    /// An error body back through every step, last first: the client's error shape.
    pub fn error(&self, status: u16, body: &[u8]) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(body).unwrap_or_default();
        let text: String = String::from_utf8_lossy(body).chars().take(500).collect();
        let mut translated = false;
        for side in self.answer_sides() {
            v = (side.error)(status, &v, &text);
            translated = true;
        }
        if translated {
            serde_json::to_vec(&v).unwrap_or_default()
        } else {
            body.to_vec()
        }
    }

    /// The converter of a streamed answer: the upstream's framing decoded, every step's
    /// translator chained (last step first), the client's SSE encoded.
    pub fn stream(&self, a: &Answer<'_>) -> Converter {
        let mut chain: Option<Box<dyn StreamTranslator>> = None;
        for side in self.answer_sides() {
            let next = (side.stream)(a);
            chain = Some(match chain {
                None => next,
                Some(first) => Box::new(Chain::new(first, next)),
            });
        }
        Converter::new(self.framing, chain)
    }

    fn answer_sides(&self) -> impl Iterator<Item = &'static AnswerSide> {
        self.steps.iter().rev().filter_map(|s| s.answer.as_ref())
    }

    /// The whole request translation without images fetched (tests, benchmarks): a body in,
    /// the upstream's body out.
    pub fn request_bytes(
        &self,
        body: &[u8],
        target: &Target<'_>,
    ) -> Result<(Vec<u8>, Asked), TranslateError> {
        let mut v = parse_object(body)?;
        let mut asked = Asked::default();
        for step in self.steps {
            v = (step.request)(v, target, &mut asked)?;
        }
        Ok((serde_json::to_vec(&v).unwrap_or_default(), asked))
    }
}

/// A request body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    serde_json::from_slice(body)
        .map_err(|e| TranslateError::Invalid(format!("request body is not a JSON object: {e}")))
}

/// OpenAI chat → Anthropic Messages (Anthropic's own API).
pub static CHAT_TO_MESSAGES: Step = Step {
    name: "OpenAI chat → Anthropic Messages",
    request: anthropic::request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: anthropic::answer,
        error: anthropic::error,
        stream: anthropic::stream,
    }),
    answers_in: UsageFormat::Anthropic,
};

/// OpenAI chat → Gemini `generateContent`.
pub static CHAT_TO_GEMINI: Step = Step {
    name: "OpenAI chat → Gemini generateContent",
    request: gemini::request,
    inline_images: true,
    answer: Some(AnswerSide {
        whole: gemini::answer,
        error: gemini::error,
        stream: gemini::stream,
    }),
    answers_in: UsageFormat::Gemini,
};

/// OpenAI chat → Bedrock Converse.
pub static CHAT_TO_CONVERSE: Step = Step {
    name: "OpenAI chat → Bedrock Converse",
    request: bedrock::request,
    inline_images: true,
    answer: Some(AnswerSide {
        whole: bedrock::answer,
        error: bedrock::error,
        stream: bedrock::stream,
    }),
    answers_in: UsageFormat::Converse,
};

/// Anthropic Messages → OpenAI chat.
pub static MESSAGES_TO_CHAT: Step = Step {
    name: "Anthropic Messages → OpenAI chat",
    request: messages_in::request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: messages_in::answer,
        error: messages_in::error,
        stream: messages_in::stream,
    }),
    answers_in: UsageFormat::OpenAi,
};

/// OpenAI Responses → OpenAI chat (and on through chat's translations to every other family).
pub static RESPONSES_TO_CHAT: Step = Step {
    name: "OpenAI Responses → OpenAI chat",
    request: responses_in::request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: responses_in::answer,
        error: responses_in::error,
        stream: responses_in::stream,
    }),
    answers_in: UsageFormat::OpenAi,
};

/// OpenAI embeddings → Gemini `batchEmbedContents`.
pub static EMBEDDINGS_TO_GEMINI: Step = Step {
    name: "OpenAI embeddings → Gemini batchEmbedContents",
    request: embeddings::gemini_request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: embeddings::gemini_answer,
        error: gemini::error,
        stream: embeddings::no_stream,
    }),
    answers_in: UsageFormat::Gemini,
};

/// OpenAI embeddings → Vertex `predict` (Google's text embedding models).
pub static EMBEDDINGS_TO_VERTEX: Step = Step {
    name: "OpenAI embeddings → Vertex predict",
    request: embeddings::vertex_request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: embeddings::vertex_answer,
        error: gemini::error,
        stream: embeddings::no_stream,
    }),
    answers_in: UsageFormat::Gemini,
};

/// OpenAI embeddings → Bedrock Titan text embeddings (`invoke`).
pub static EMBEDDINGS_TO_TITAN: Step = Step {
    name: "OpenAI embeddings → Bedrock Titan embeddings",
    request: embeddings::titan_request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: embeddings::titan_answer,
        error: bedrock::error,
        stream: embeddings::no_stream,
    }),
    answers_in: UsageFormat::BedrockInvoke,
};

/// OpenAI embeddings → Cohere embed on Bedrock (`invoke`).
pub static EMBEDDINGS_TO_COHERE: Step = Step {
    name: "OpenAI embeddings → Bedrock Cohere embed",
    request: embeddings::cohere_request,
    inline_images: false,
    answer: Some(AnswerSide {
        whole: embeddings::cohere_answer,
        error: bedrock::error,
        stream: embeddings::no_stream,
    }),
    answers_in: UsageFormat::BedrockInvoke,
};

/// Anthropic Messages for Claude on Vertex (`rawPredict`): the model moves to the URL, the body
/// gets `anthropic_version: vertex-2023-10-16`. Answers are Anthropic's own.
pub static VERTEX_CLAUDE: Step = Step {
    name: "Anthropic Messages → Claude on Vertex",
    request: anthropic::vertex_body,
    inline_images: false,
    answer: None,
    answers_in: UsageFormat::Anthropic,
};

/// Anthropic Messages for Claude on Bedrock (`invoke`): the model moves to the URL, no `stream`,
/// `anthropic_version: bedrock-2023-05-31`. Answers are Anthropic's own (streams in AWS's
/// framing).
pub static BEDROCK_CLAUDE: Step = Step {
    name: "Anthropic Messages → Claude on Bedrock",
    request: anthropic::bedrock_body,
    inline_images: false,
    answer: None,
    answers_in: UsageFormat::Anthropic,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static MESSAGES_TO_GEMINI: &[&Step] = &[&MESSAGES_TO_CHAT, &CHAT_TO_GEMINI];

    #[test]
    fn a_chain_translates_requests_in_order_and_answers_in_reverse() {
        let t = Translation::new(MESSAGES_TO_GEMINI, Framing::Sse);
        let (body, _) = t
            .request_bytes(
                json!({"model": "m", "max_tokens": 10, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "hi"}]})
                .to_string()
                .as_bytes(),
                &Target {
                    model: "gemini-x",
                    max_tokens_field: "max_tokens",
                    ask_usage: true,
                    cache_points: false,
                },
            )
            .expect("ok");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 10);
        let a = Answer {
            model: "gemini-x",
            created: 1,
            asked: Asked::default(),
        };
        let answer = t
            .answer(
                json!({"candidates": [{"content": {"parts": [{"text": "Hello"}]}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}})
                .to_string()
                .as_bytes(),
                &a,
            )
            .expect("ok");
        let m: Value = serde_json::from_slice(&answer).expect("json");
        assert_eq!(m["type"], "message");
        assert_eq!(m["content"][0]["text"], "Hello");
        assert_eq!(m["usage"]["input_tokens"], 3);
        let e: Value = serde_json::from_slice(&t.error(
            429,
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .expect("json");
        assert_eq!(
            (e["type"].as_str(), e["error"]["type"].as_str()),
            (Some("error"), Some("rate_limit_error"))
        );
        assert_eq!(
            t.answer(b"<html>", &a),
            Err(AnswerError::NotJson(
                "expected value at line 1 column 1".into()
            ))
        );
    }

    #[test]
    fn a_body_edit_passes_answers() {
        static VERTEX: &[&Step] = &[&VERTEX_CLAUDE];
        static BEDROCK: &[&Step] = &[&BEDROCK_CLAUDE];
        let t = Translation::new(VERTEX, Framing::Sse);
        assert!(t.answers_pass() && !t.converts_streams());
        assert_eq!(t.error(500, b"boom"), b"boom");
        let t = Translation::new(BEDROCK, Framing::AnthropicChunks);
        assert!(t.answers_pass() && t.converts_streams());
        let (body, _) = t
            .request_bytes(
                br#"{"model":"m","stream":true,"max_tokens":5,"messages":[]}"#,
                &Target {
                    model: "m",
                    max_tokens_field: "max_tokens",
                    ask_usage: true,
                    cache_points: false,
                },
            )
            .expect("ok");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("json"),
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []})
        );
    }

    /// A Gemini function call's thought signature rides in the tool-call id, so it comes back
    /// to Gemini on the next turn whichever API the client speaks: Anthropic Messages
    /// (`tool_use.id`) and the Responses API (`call_id`) as well as chat.
    #[test]
    fn thought_signatures_come_back_through_every_inbound_api() {
        static FROM_MESSAGES: &[&Step] = &[&MESSAGES_TO_CHAT, &CHAT_TO_GEMINI];
        static FROM_RESPONSES: &[&Step] = &[&RESPONSES_TO_CHAT, &CHAT_TO_GEMINI];
        let goal = Target {
            model: "gemini-3-pro-preview",
            max_tokens_field: "max_tokens",
            ask_usage: true,
            cache_points: false,
        };
        // The id a Gemini answer gave the call (signature "c2lnbmVk" = "signed").
        let id = "call_r1_0_0__ts__c2lnbmVk";
        let messages = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "42"}]}]});
        let responses = json!({"model": "m", "input": [
            {"role": "user", "content": "q"},
            {"type": "function_call", "call_id": id, "name": "get", "arguments": "{\"a\":1}"},
            {"type": "function_call_output", "call_id": id, "output": "42"}]});
        for (steps, body) in [(FROM_MESSAGES, messages), (FROM_RESPONSES, responses)] {
            let (out, _) = Translation::new(steps, Framing::Sse)
                .request_bytes(body.to_string().as_bytes(), &goal)
                .expect("ok");
            let v: Value = serde_json::from_slice(&out).expect("json");
            let call = &v["contents"][1]["parts"][0];
            assert_eq!(call["functionCall"]["name"], "get", "{v}");
            assert_eq!(call["thoughtSignature"], "c2lnbmVk", "{v}");
            assert_eq!(
                v["contents"][2]["parts"][0]["functionResponse"]["name"],
                "get"
            );
        }
    }

    /// Claude Code's cache points reach Bedrock Converse as `cachePoint`s after the marked
    /// system block, message block, tool result and tool, on models that take them; on others
    /// they are dropped and named.
    #[test]
    fn cache_points_reach_converse() {
        static STEPS: &[&Step] = &[&MESSAGES_TO_CHAT, &CHAT_TO_CONVERSE];
        let eph = json!({"type": "ephemeral"});
        let body = json!({"model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "Rules."}, {"type": "text", "text": "Repo.", "cache_control": eph}],
            "tools": [{"name": "a", "input_schema": {"type": "object"}},
                {"name": "b", "input_schema": {"type": "object"}, "cache_control": eph}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Fix it.", "cache_control": eph}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok", "cache_control": eph}]}]});
        let run = |model: &str| {
            let (out, asked) = Translation::new(STEPS, Framing::ConverseEvents)
                .request_bytes(
                    body.to_string().as_bytes(),
                    &Target {
                        model,
                        max_tokens_field: "max_tokens",
                        ask_usage: true,
                        cache_points: true,
                    },
                )
                .expect("ok");
            (serde_json::from_slice::<Value>(&out).expect("json"), asked)
        };
        let point = json!({"cachePoint": {"type": "default"}});
        let (v, asked) = run("amazon.nova-pro-v1:0");
        assert!(asked.dropped.is_empty());
        assert_eq!(
            v["system"],
            json!([{"text": "Rules."}, {"text": "Repo."}, point])
        );
        assert_eq!(v["toolConfig"]["tools"][2], point);
        assert_eq!(v["toolConfig"]["tools"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            v["messages"][0]["content"],
            json!([{"text": "Fix it."}, point])
        );
        assert_eq!(v["messages"][2]["content"][1], point);
        assert!(v["messages"][2]["content"][0].get("toolResult").is_some());
        let (v, asked) = run("meta.llama3-70b-instruct-v1:0");
        assert!(!v.to_string().contains("cachePoint"), "{v}");
        assert_eq!(asked.dropped.names(), "cache_control");
    }
}
