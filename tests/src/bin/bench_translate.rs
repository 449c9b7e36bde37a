#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-bench-translate`: the CPU cost of preparing one translated request, in release mode: an
//! OpenAI chat body (system prompt, a few turns, two tools) reaching a Gemini target through a
//! function with defaults — read the model and stream flag, apply the defaults, translate.
//! Prints nanoseconds per request (best of five rounds).

use std::time::Instant;

use serde_json::json;
use to11_shared::body::{apply_defaults_to, scan};
use to11_shared::translate::pair::{parse_object, CHAT_TO_GEMINI};
use to11_shared::translate::{Asked, Target, Translation};

fn body() -> Vec<u8> {
    json!({
        "model": "assistant",
        "messages": [
            {"role": "system", "content": "You are a careful assistant. Answer briefly and cite the tool results you used."},
            {"role": "user", "content": "What is the weather in Paris and in Lyon today? Also convert 20 C to F."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18, \"sky\": \"cloudy\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "{\"temp_c\": 21, \"sky\": \"sunny\"}"},
            {"role": "assistant", "content": "Paris is 18 C and cloudy; Lyon is 21 C and sunny."},
            {"role": "user", "content": "Thanks. And the conversion?"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"], "additionalProperties": false}}},
            {"type": "function", "function": {"name": "convert", "description": "Convert a temperature",
                "parameters": {"type": "object", "properties": {"value": {"type": "number"}, "to": {"type": "string", "enum": ["C", "F"]}}, "required": ["value", "to"]}}}
        ],
        "tool_choice": "auto",
        "stream": false
    })
    .to_string()
    .into_bytes()
}

fn main() {
    let body = body();
    let defaults = json!({"temperature": 0.2, "max_tokens": 256, "top_p": 0.9});
    let defaults = defaults.as_object().expect("object").clone();
    let target = Target {
        model: "gemini-2.5-flash",
        max_tokens_field: "max_tokens",
        ask_usage: true,
        cache_points: false,
    };
    let n = 50_000;
    let mut best = f64::INFINITY;
    let mut out_len = 0;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..n {
            // What the gateway does for this request: one scan to route it, one parse into a
            // JSON object, the defaults added to it, the translation over values, one write.
            let s = scan(&body).expect("scan");
            assert!(s.model.is_some() && !s.stream);
            let mut v = parse_object(&body).expect("object");
            apply_defaults_to(&mut v, &defaults);
            let mut asked = Asked::default();
            let v = Translation::request_step(&CHAT_TO_GEMINI, v, &target, &mut asked)
                .expect("translate");
            out_len = serde_json::to_vec(&v).expect("json").len();
        }
        best = best.min(started.elapsed().as_nanos() as f64 / n as f64);
    }
    println!(
        "OpenAI chat → Gemini with a function's defaults: {:.0} ns per request ({} bytes in, {out_len} bytes out)",
        best,
        body.len()
    );
    // Each stage alone, to see where the time goes.
    let stage = |name: &str, f: &dyn Fn()| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..n {
                f();
            }
            best = best.min(started.elapsed().as_nanos() as f64 / n as f64);
        }
        println!("  {name:<28} {best:>8.0} ns");
    };
    let parsed = parse_object(&body).expect("object");
    stage("scan (route it)", &|| {
        std::hint::black_box(scan(&body).expect("scan"));
    });
    stage("parse into a JSON object", &|| {
        std::hint::black_box(parse_object(&body).expect("object"));
    });
    stage("translate (values)", &|| {
        let mut asked = Asked::default();
        std::hint::black_box(
            Translation::request_step(&CHAT_TO_GEMINI, parsed.clone(), &target, &mut asked)
                .expect("translate"),
        );
    });
    stage("  of which cloning the input", &|| {
        std::hint::black_box(parsed.clone());
    });
    let out = Translation::request_step(
        &CHAT_TO_GEMINI,
        parsed.clone(),
        &target,
        &mut Asked::default(),
    )
    .expect("translate");
    stage("write the body", &|| {
        std::hint::black_box(serde_json::to_vec(&out).expect("json"));
    });
}
