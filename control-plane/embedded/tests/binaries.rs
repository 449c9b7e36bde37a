#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The `to11` binary as operators run it: settings from `TO11_*`, port 0, the addresses and the
//! generated operator token printed on start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn read_lines_until(child: &mut std::process::Child, want: &[&str]) -> Vec<String> {
    let out = child.stdout.take().expect("stdout");
    let mut lines = vec![];
    let mut reader = BufReader::new(out);
    while !want
        .iter()
        .all(|w| lines.iter().any(|l: &String| l.contains(w)))
    {
        let mut l = String::new();
        if reader.read_line(&mut l).expect("read") == 0 {
            break;
        }
        lines.push(l);
    }
    lines
}

/// `GET url` over a plain TCP connection; returns the status code.
fn status(url: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_whitespace().nth(1).unwrap_or("").to_string()
}

fn value_after(lines: &[String], marker: &str) -> String {
    let l = lines
        .iter()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in {lines:?}"));
    l.split(marker)
        .nth(1)
        .expect("value")
        .split_whitespace()
        .next()
        .expect("value")
        .to_string()
}

#[test]
fn embedded_binary_starts_with_no_external_service_and_prints_token_once() {
    let dir = std::env::temp_dir().join(format!("to11-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_to11"))
            .env("TO11_DATA_DIR", &dir)
            .env("TO11_GATEWAY_LISTEN", "127.0.0.1:0")
            .env("TO11_API_LISTEN", "127.0.0.1:0")
            .env("TO11_REDIS_URL", "redis://127.0.0.1:1")
            .env_remove("TO11_ADMIN_TOKEN")
            .env_remove("TO11_MASTER_KEY")
            .env("TO11_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn to11")
    };
    let mut child = run();
    let lines = read_lines_until(
        &mut child,
        &["gateway", "dashboard", "API", "operator token"],
    );
    let token = value_after(&lines, "operator token (shown once, keep it safe): ");
    let api = value_after(&lines, "API      ");
    assert!(token.starts_with("to11_op_"), "{lines:?}");
    assert_eq!(status(&format!("{api}/projects"), &token), "200");
    assert_eq!(status(&format!("{api}/projects"), "wrong"), "401");
    let gw = value_after(&lines, "gateway  ");
    assert_eq!(status(&format!("{gw}/healthz"), ""), "200");
    let dashboard = value_after(&lines, "dashboard ");
    assert_eq!(status(&dashboard, ""), "200");
    let _ = child.kill();
    let _ = child.wait();

    // Second start: same data directory, no new token, the old one still works.
    let mut child = run();
    let lines = read_lines_until(&mut child, &["gateway", "API"]);
    assert!(
        !lines.iter().any(|l| l.contains("operator token")),
        "{lines:?}"
    );
    let api = value_after(&lines, "API      ");
    assert_eq!(status(&format!("{api}/projects"), &token), "200");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM drains `to11`'s gateway as it does a replica's: `/readyz` answers 503 during the grace
/// period while the gateway still answers, and the process exits once nothing is left.
#[test]
fn embedded_binary_drains_its_gateway_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("to11-drain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_to11"))
        .env("TO11_DATA_DIR", &dir)
        .env("TO11_GATEWAY_LISTEN", "127.0.0.1:0")
        .env("TO11_API_LISTEN", "127.0.0.1:0")
        .env("TO11_DRAIN_GRACE_MS", "3000")
        .env("TO11_DRAIN_TIMEOUT_MS", "2000")
        .env_remove("TO11_ADMIN_TOKEN")
        .env_remove("TO11_MASTER_KEY")
        .env("TO11_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn to11");
    // Every line the binary prints at start is read before the pipe is dropped (a print to a
    // closed pipe would end the process).
    let lines = read_lines_until(&mut child, &["gateway", "API", "operator token"]);
    let gw = value_after(&lines, "gateway  ");
    let ready = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status(&format!("{gw}/readyz"), "") != "200" {
        assert!(std::time::Instant::now() < ready, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sigterm = std::time::Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let draining = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while status(&format!("{gw}/readyz"), "") != "503" {
        assert!(
            std::time::Instant::now() < draining,
            "/readyz never answered 503"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(status(&format!("{gw}/healthz"), ""), "200", "still serving");
    assert!(
        sigterm.elapsed() < std::time::Duration::from_secs(3),
        "checked within the grace period"
    );
    let exited = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(std::time::Instant::now() < exited, "did not exit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
