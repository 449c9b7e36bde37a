use super::fixtures::sse;
use crate::translate::stream::Framing;
use crate::usage::meter::{Body, Meter, UsageStrip};
use crate::usage::UsageFormat;

const HEAD: &str = r#""id":"chatcmpl-C3","object":"chat.completion.chunk","created":1764460800,"model":"gpt-5.4-mini-2026-03-17","service_tier":"default","system_fingerprint":null"#;

/// One chunk's members, with `"usage":null` among them or not.
fn chunk(members: &[&str], usage_at: Option<usize>) -> String {
    let mut m: Vec<&str> = members.to_vec();
    if let Some(i) = usage_at {
        m.insert(i, r#""usage":null"#);
    }
    format!("{{{}}}", m.join(","))
}

/// The same stream with and without `include_usage`: the `"usage":null` member first, in the
/// middle or last, an `obfuscation` field, content that quotes a usage member, and the final
/// usage chunk.
fn streams(sep: &str) -> (Vec<u8>, Vec<u8>) {
    let chunks: Vec<(Vec<&str>, usize)> = vec![
        (
            vec![
                HEAD,
                r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
                r#""obfuscation":"Gy2N""#,
            ],
            2,
        ),
        (
            vec![
                HEAD,
                r#""choices":[{"index":0,"delta":{"content":"Write \"usage\":null, or {\"usage\":null}"},"logprobs":null,"finish_reason":null}]"#,
                r#""obfuscation":"q""#,
            ],
            0,
        ),
        (
            vec![
                HEAD,
                r#""choices":[{"index":0,"delta":{"content":" ok"},"logprobs":null,"finish_reason":null}]"#,
            ],
            2,
        ),
        (
            vec![
                HEAD,
                r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#,
                r#""obfuscation":"xyz12""#,
            ],
            1,
        ),
    ];
    let with: Vec<String> = chunks
        .iter()
        .map(|(m, at)| chunk(m, Some(*at)))
        .chain([
            chunk(
                &[
                    HEAD,
                    r#""choices":[]"#,
                    r#""usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
                    r#""obfuscation":"k""#,
                ],
                None,
            ),
            "[DONE]".to_string(),
        ])
        .collect();
    let without: Vec<String> = chunks
        .iter()
        .map(|(m, _)| chunk(m, None))
        .chain(["[DONE]".to_string()])
        .collect();
    let events = |v: &[String]| {
        let e: Vec<(Option<&str>, &str)> = v.iter().map(|d| (None, d.as_str())).collect();
        sse(&e, sep)
    };
    (events(&with), events(&without))
}

fn strip(parts: &[&[u8]]) -> Vec<u8> {
    let mut s = UsageStrip::default();
    let mut out = Vec::new();
    for p in parts {
        out.extend(s.push(p));
    }
    out.extend(s.finish());
    out
}

#[test]
fn fixture_streams_differ_only_by_include_usage() {
    let (with, without) = streams("\n\n");
    assert!(with.len() > without.len());
    assert_eq!(
        String::from_utf8_lossy(&with)
            .matches(r#""usage":null"#)
            .count(),
        4
    );
}

#[test]
fn stripped_equals_the_stream_without_include_usage_at_every_split() {
    for sep in ["\n\n", "\r\n\r\n"] {
        let (with, without) = streams(sep);
        for at in 0..=with.len() {
            let (a, b) = with.split_at(at);
            assert_eq!(
                String::from_utf8_lossy(&strip(&[a, b])),
                String::from_utf8_lossy(&without),
                "{sep:?}: split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = with.chunks(1).collect();
        assert_eq!(strip(&bytes), without, "{sep:?}: byte by byte");
    }
}

#[test]
fn the_meter_reads_what_the_strip_drops() {
    let (with, _) = streams("\n\n");
    let mut m = Meter::new(UsageFormat::OpenAi, Body::Stream(Framing::Sse));
    m.push(&with);
    assert_eq!(m.usage().map(|u| (u.input, u.output)), Some((19, 10)));
    assert_eq!(m.chunks(), 4);
}

#[test]
fn members_in_every_position_and_spacing() {
    let cases = [
        (r#"{"usage":null,"a":1}"#, r#"{"a":1}"#),
        (r#"{"a":1,"usage":null}"#, r#"{"a":1}"#),
        (r#"{"a":1,"usage":null,"b":2}"#, r#"{"a":1,"b":2}"#),
        (r#"{"usage":null}"#, r#"{}"#),
        (r#"{"a": 1, "usage": null, "b": 2}"#, r#"{"a": 1, "b": 2}"#),
        (r#"{ "usage" : null , "b": 2}"#, r#"{ "b": 2}"#),
        (
            r#"{"a":"x\"usage\":null","usage":null}"#,
            r#"{"a":"x\"usage\":null"}"#,
        ),
        (r#"{"a":"x","usage":nullx}"#, r#"{"a":"x","usage":nullx}"#),
        (
            r#"{"type":"usage","usage":{"prompt_tokens":1}}"#,
            r#"{"type":"usage","usage":{"prompt_tokens":1}}"#,
        ),
        (r#"{"choices": [ ],"usage": {"prompt_tokens":1}}"#, ""),
        (
            r#"{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}"#,
        ),
    ];
    for (input, want) in cases {
        let bytes = format!("data: {input}\n\n");
        let want = if want.is_empty() {
            String::new()
        } else {
            format!("data: {want}\n\n")
        };
        assert_eq!(
            String::from_utf8_lossy(&strip(&[bytes.as_bytes()])),
            want,
            "{input}"
        );
    }
}

#[test]
fn other_events_pass_and_the_last_is_released_at_the_end() {
    let input = b": keep-alive\n\nevent: x\ndata: {\"usage\":null,\"a\":1}\n\ndata: {\"a\":2,\"usage\":null}";
    let mut s = UsageStrip::default();
    let first = s.push(input);
    assert_eq!(first, b": keep-alive\n\nevent: x\ndata: {\"a\":1}\n\n");
    assert_eq!(s.finish(), b"data: {\"a\":2}");
}

#[test]
fn an_oversized_event_passes_unread() {
    let big = format!(
        "data: {{\"usage\":null,\"x\":\"{}\"}}\n\ndata: {{\"usage\":null}}\n\n",
        "a".repeat(300 * 1024)
    );
    let out = strip(&[big.as_bytes()]);
    // Whole events are read whatever their size when they arrive complete.
    assert_eq!(out.len(), big.len() - 2 * r#""usage":null,"#.len() + 1);
    let (head, tail) = big.as_bytes().split_at(280 * 1024);
    let parts: Vec<&[u8]> = vec![head, tail];
    let out = strip(&parts);
    assert!(String::from_utf8_lossy(&out).starts_with("data: {\"usage\":null,\"x\""));
    assert!(String::from_utf8_lossy(&out).ends_with("data: {}\n\n"));
}
