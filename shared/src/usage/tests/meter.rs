use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::fixtures::{self, Case};
use super::streams;
use crate::eventstream::Decoder;
use crate::translate::sse;
use crate::translate::stream::{Event, Framing};
use crate::usage::meter::{Body, Meter};
use crate::usage::Usage;

fn run(c: &Case, parts: &[&[u8]]) -> (Option<Usage>, u64) {
    let mut m = Meter::new(c.format, c.body);
    for p in parts {
        m.push(p);
    }
    (m.usage(), m.chunks())
}

fn check_every_split(c: &Case) {
    let b = &c.bytes;
    for at in 0..=b.len() {
        let (x, y) = b.split_at(at);
        assert_eq!(
            run(c, &[x, y]),
            (c.want, c.chunks),
            "{}: split at {at}",
            c.name
        );
    }
    let bytes: Vec<&[u8]> = b.chunks(1).collect();
    assert_eq!(
        run(c, &bytes),
        (c.want, c.chunks),
        "{}: byte by byte",
        c.name
    );
}

#[test]
fn whole_answers_at_every_split() {
    for c in fixtures::whole_cases() {
        check_every_split(&c);
    }
}

#[test]
fn streams_at_every_split() {
    for c in streams::streams() {
        check_every_split(&c);
    }
}

#[test]
fn streams_at_three_pieces_around_the_usage() {
    // Every pair of cuts in a window around the usage key: a key, its colon and its object cut
    // in three places at once.
    for c in streams::streams() {
        let b = &c.bytes;
        let Some(key) = memchr::memmem::find(b, b"\"usage\"")
            .or_else(|| memchr::memmem::find(b, b"\"usageMetadata\""))
        else {
            continue;
        };
        let lo = key.saturating_sub(4);
        let hi = (key + 40).min(b.len());
        for i in lo..hi {
            for j in i..hi {
                let parts = [&b[..i], &b[i..j], &b[j..]];
                assert_eq!(run(&c, &parts), (c.want, c.chunks), "{}: {i}, {j}", c.name);
            }
        }
    }
}

#[test]
fn a_stream_cut_before_its_usage_has_none_but_chunks() {
    for c in streams::streams() {
        let Some(cut) = c.cut else { continue };
        let (usage, chunks) = run(&c, &[&c.bytes[..cut]]);
        assert_eq!(usage, None, "{}", c.name);
        assert!(chunks > 0, "{}", c.name);
    }
}

/// The events a converter would decode from a stream's bytes.
fn decode(c: &Case) -> Vec<Event> {
    let mut out = Vec::new();
    match c.body {
        Body::Stream(Framing::Sse) => {
            let mut p = sse::Parser::default();
            for e in p.push(&c.bytes).into_iter().chain(p.finish()) {
                if e.data == "[DONE]" {
                    out.push(Event::Done);
                } else if let Ok(data) = serde_json::from_str(&e.data) {
                    out.push(Event::Json {
                        name: e.event.map(Cow::Owned),
                        data,
                    });
                }
            }
        }
        Body::Stream(framing) => {
            for f in Decoder::default().push(&c.bytes).expect("frames") {
                let kind = f.header(":event-type").unwrap_or("").to_string();
                let data: Value = serde_json::from_slice(&f.payload).expect("json");
                let (name, data) = if framing == Framing::AnthropicChunks {
                    let bytes = STANDARD
                        .decode(data["bytes"].as_str().expect("bytes"))
                        .expect("base64");
                    let event: Value = serde_json::from_slice(&bytes).expect("event");
                    let name = event["type"].as_str().unwrap_or("chunk").to_string();
                    (name, event)
                } else {
                    (kind, data)
                };
                out.push(Event::Json {
                    name: Some(Cow::Owned(name)),
                    data,
                });
            }
        }
        Body::Json => unreachable!("streams only"),
    }
    out
}

#[test]
fn decoded_events_read_as_the_bytes_do() {
    for c in streams::streams() {
        let mut m = Meter::new(c.format, c.body);
        for e in decode(&c) {
            m.event(&e);
        }
        assert_eq!((m.usage(), m.chunks()), (c.want, c.chunks), "{}", c.name);
    }
}

#[test]
fn a_broken_frame_stops_the_meter_quietly() {
    let c = streams::streams()
        .into_iter()
        .find(|c| c.body == Body::Stream(Framing::ConverseEvents))
        .expect("a converse case");
    let mut bytes = c.bytes.clone();
    bytes[9] ^= 0xff;
    assert_eq!(run(&c, &[&bytes]), (None, 0));
}

#[test]
fn a_key_after_a_backslash_is_string_content() {
    // The end of a string whose content ends with `"usage`, used as a key: not usage.
    let c = Case {
        name: "escaped",
        format: crate::usage::UsageFormat::OpenAi,
        body: Body::Json,
        bytes: br#"{"say \"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.to_vec(),
        want: None,
        chunks: 0,
        cut: None,
    };
    check_every_split(&c);
}

/// The meter's cost: `cargo test -p to11-shared --release --lib -- --ignored --nocapture
/// meter_cost`. Each stream is pushed an event (an SSE event or an AWS frame) at a time, as an
/// upstream's reads usually arrive, and in 64-byte pieces.
#[test]
#[ignore]
fn meter_cost_per_chunk() {
    let rounds = 20_000u32;
    let time = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(rounds)
    };
    for c in streams::streams() {
        let events = event_pieces(&c);
        let new = time(&mut || {
            std::hint::black_box(Meter::new(c.format, c.body));
        });
        for (how, pieces) in [
            ("event", events.clone()),
            ("64 B", c.bytes.chunks(64).collect()),
        ] {
            let total = time(&mut || {
                let mut m = Meter::new(c.format, c.body);
                for p in &pieces {
                    m.push(p);
                }
                assert_eq!(m.usage(), c.want);
            });
            println!(
                "{:40} new {new:4.0} ns; per {how} push {:5.0} ns ({} pushes, {:.2} ns/byte)",
                c.name,
                (total - new) / pieces.len() as f64,
                pieces.len(),
                (total - new) / c.bytes.len() as f64,
            );
        }
    }
}

/// The steady state: one content event after another, as most of a long answer is.
#[test]
#[ignore]
fn meter_cost_per_content_event() {
    for c in streams::streams() {
        let events = event_pieces(&c);
        // The longest content event of the stream (a text delta).
        let Some(content) = events
            .iter()
            .filter(|e| {
                let mut m = Meter::new(c.format, c.body);
                m.push(e);
                m.chunks() == 1 && m.usage().is_none()
            })
            .max_by_key(|e| e.len())
        else {
            continue;
        };
        let mut m = Meter::new(c.format, c.body);
        let n = 200_000u32;
        let start = std::time::Instant::now();
        for _ in 0..n {
            m.push(std::hint::black_box(content));
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(n);
        assert_eq!(m.chunks(), u64::from(n));
        println!(
            "{:40} {per:5.0} ns per {}-byte content event",
            c.name,
            content.len()
        );
    }
}

/// A stream cut at its events' ends.
fn event_pieces(c: &Case) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = &c.bytes[..];
    while !rest.is_empty() {
        let end = match c.body {
            Body::Stream(Framing::Sse) => memchr::memmem::find(rest, b"\n\n")
                .map(|i| i + 2)
                .or_else(|| memchr::memmem::find(rest, b"\r\n\r\n").map(|i| i + 4)),
            _ => Some(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize),
        }
        .unwrap_or(rest.len());
        let (a, b) = rest.split_at(end);
        out.push(a);
        rest = b;
    }
    out
}

/// The finish reasons in a JSON document, found by walking it: the string values of the keys
/// the providers use, at any depth, distinct, in document order.
fn reasons_in(v: &Value, out: &mut Vec<String>) {
    const KEYS: [&str; 5] = [
        "finish_reason",
        "stop_reason",
        "finishReason",
        "stopReason",
        "completionReason",
    ];
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x.as_str() {
                    Some(s) if KEYS.contains(&k.as_str()) && !out.iter().any(|o| o == s) => {
                        out.push(s.to_string());
                    }
                    _ => reasons_in(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| reasons_in(x, out)),
        _ => {}
    }
}

/// What a case's finish reasons are, read from its decoded documents.
fn want_reasons(c: &Case) -> Vec<String> {
    let mut out = Vec::new();
    match c.body {
        Body::Json => reasons_in(&serde_json::from_slice(&c.bytes).expect("json"), &mut out),
        Body::Stream(_) => {
            for e in decode(c) {
                if let Event::Json { data, .. } = e {
                    reasons_in(&data, &mut out);
                }
            }
        }
    }
    out
}

fn run_finish(c: &Case, parts: &[&[u8]]) -> (Option<Usage>, u64, Vec<String>) {
    let mut m = Meter::new(c.format, c.body).with_finish();
    for p in parts {
        m.push(p);
    }
    (m.usage(), m.chunks(), m.finish_reasons().to_vec())
}

#[test]
fn finish_reasons_at_every_split_and_usage_unchanged() {
    let cases: Vec<Case> = fixtures::whole_cases()
        .into_iter()
        .chain(streams::streams())
        .collect();
    let mut named = Vec::new();
    for c in &cases {
        let want = (c.want, c.chunks, want_reasons(c));
        let b = &c.bytes;
        for at in 0..=b.len() {
            let (x, y) = b.split_at(at);
            assert_eq!(run_finish(c, &[x, y]), want, "{}: split at {at}", c.name);
        }
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(run_finish(c, &bytes), want, "{}: byte by byte", c.name);
        named.push((c.name, want.2));
    }
    // The walk above is the oracle; these pin that it finds what the providers sent.
    for (name, want) in [
        ("openai chat", &["tool_calls"][..]),
        ("anthropic", &["tool_use"]),
        ("converse", &["tool_use"]),
        ("openai chat stream", &["stop"]),
        ("anthropic stream", &["tool_use"]),
        ("gemini stream", &["STOP"]),
        ("converse stream", &["end_turn"]),
        ("bedrock llama chunks", &["stop"]),
        ("openai embeddings", &[]),
    ] {
        let got = named.iter().find(|(n, _)| *n == name).expect(name);
        assert_eq!(got.1, want, "{name}");
    }
}

#[test]
fn finish_reasons_of_decoded_events_match_the_bytes() {
    for c in streams::streams() {
        let mut m = Meter::new(c.format, c.body).with_finish();
        for e in decode(&c) {
            m.event(&e);
        }
        assert_eq!(m.finish_reasons(), want_reasons(&c), "{}", c.name);
    }
}

#[test]
fn finish_reasons_are_read_only_when_asked() {
    for c in streams::streams() {
        let mut m = Meter::new(c.format, c.body);
        m.push(&c.bytes);
        for e in decode(&c) {
            m.event(&e);
        }
        assert!(m.finish_reasons().is_empty(), "{}", c.name);
    }
}

#[test]
fn a_finish_reason_that_is_not_a_short_plain_string_is_skipped() {
    let c = |bytes: &[u8]| Case {
        name: "odd reasons",
        format: crate::usage::UsageFormat::OpenAi,
        body: Body::Json,
        bytes: bytes.to_vec(),
        want: None,
        chunks: 0,
        cut: None,
    };
    let long = format!(
        r#"{{"choices":[{{"finish_reason":"{}"}}]}}"#,
        "x".repeat(65)
    );
    for (bytes, want) in [
        (
            &br#"{"choices":[{"finish_reason":null},{"finish_reason":"length"}]}"#[..],
            &["length"][..],
        ),
        (
            br#"{"choices":[{"finish_reason":"st\"op"},{"finish_reason":"stop"}]}"#,
            &["stop"],
        ),
        (
            br#"{"text":"say \"finish_reason\":\"x\"","finish_reason":"stop"}"#,
            &["stop"],
        ),
        (br#"{"type":"finish_reason","n":1}"#, &[]),
        (long.as_bytes(), &[]),
        (
            br#"{"choices":[{"finish_reason":"stop"},{"finish_reason":"stop"}]}"#,
            &["stop"],
        ),
    ] {
        let c = c(bytes);
        for at in 0..=bytes.len() {
            let (x, y) = bytes.split_at(at);
            let got = run_finish(&c, &[x, y]).2;
            assert_eq!(
                got,
                want,
                "{}: split at {at}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
