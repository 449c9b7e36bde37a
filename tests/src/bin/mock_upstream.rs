#![allow(clippy::expect_used, clippy::unwrap_used)]
//! `to11-mock-upstream [LISTEN] [--fast]`: the mock OpenAI-compatible upstream as a process.
//! `--fast` answers every request with a fixed answer (the benchmark's upstream): a chat
//! completion, an SSE chat stream when the body asks `"stream":true`, an Anthropic Messages answer
//! on `POST /v1/messages`; it lists `claude-bench` too, for the benchmark's Anthropic connection.
//! Prints the bound address on its first line.

use to11_tests::mock::MockUpstream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fast = args.iter().any(|a| a == "--fast");
    let listen = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let mock = MockUpstream::start_on(
        &listen,
        "sk-mock",
        &["gpt-4o", "gpt-4o-mini", "claude-bench"],
        1,
        fast,
    );
    println!("{}", mock.addr);
    loop {
        std::thread::park();
    }
}
