#![allow(clippy::expect_used, clippy::unwrap_used)]
//! The `to11-control-plane` binary as operators run it: settings from `TO11_*` (or flags).

use std::process::Command;

#[test]
fn control_plane_binary_reports_every_missing_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env("TO11_MASTER_KEY", "short")
        .env("TO11_PROBE_TIMEOUT_MS", "soon")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "TO11_ADMIN_TOKEN",
        "TO11_MASTER_KEY",
        "TO11_PROBE_TIMEOUT_MS",
    ] {
        assert!(err.contains(want), "{want} not reported in: {err}");
    }
}

#[test]
fn control_plane_binary_takes_flags_that_mirror_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env_remove("TO11_MASTER_KEY")
        .args([
            "--admin-token",
            "a-long-enough-operator-token",
            "--probe-timeout-ms=later",
            "stray",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected argument \"stray\""), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env_remove("TO11_ADMIN_TOKEN")
        .env_remove("TO11_MASTER_KEY")
        .args([
            "--admin-token",
            "a-long-enough-operator-token",
            "--probe-timeout-ms=later",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TO11_PROBE_TIMEOUT_MS") && err.contains("TO11_MASTER_KEY"),
        "{err}"
    );
    assert!(!err.contains("TO11_ADMIN_TOKEN"), "{err}");
}

#[test]
fn control_plane_binary_refuses_a_weak_operator_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
        .env("TO11_ADMIN_TOKEN", "hunter2")
        .env(
            "TO11_MASTER_KEY",
            "dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=",
        )
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TO11_ADMIN_TOKEN is 7 characters long; it needs at least 16"),
        "{err}"
    );
}

/// A process that is killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 200 anonymous connections that each push 1 MiB to a write endpoint and stall: the real
/// `to11-control-plane` answers each 401 without reading the body, and its resident memory
/// barely moves (308 MiB were held before the API authenticated first).
#[test]
fn stalled_anonymous_uploads_do_not_grow_the_control_plane() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let redis_port = free_port();
    let _redis = Child(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let mut cp = Child(
        Command::new(env!("CARGO_BIN_EXE_to11-control-plane"))
            .env("TO11_ADMIN_TOKEN", "a-long-enough-operator-token")
            .env(
                "TO11_MASTER_KEY",
                "dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=",
            )
            .env("TO11_REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
            .env("TO11_API_LISTEN", "127.0.0.1:0")
            .env("TO11_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("control plane"),
    );
    // It retries Redis until it answers, then prints where it listens.
    let stdout = cp.0.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("the control plane starts");
    let addr = line.rsplit(' ').next().expect("address").to_string();
    let pid = cp.0.id();

    let body = vec![b'a'; 1 << 20];
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let head = "PUT /api/v1/projects/x/routes/r HTTP/1.1\r\nHost: cp\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
        s.write_all(head.as_bytes()).expect("head");
        s.set_nonblocking(true).expect("nonblocking");
        let mut sent = 0;
        while sent < body.len() {
            match s.write(&body[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        s.set_nonblocking(false).expect("blocking");
        conns.push(s);
    }
    let during = rss_kib(pid);
    let mut answered = 0;
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut head = [0u8; 12];
        if s.read_exact(&mut head).is_ok() {
            assert_eq!(&head, b"HTTP/1.1 401", "an anonymous write is refused");
            answered += 1;
        }
    }
    let after = rss_kib(pid);
    eprintln!(
        "to11-control-plane RSS: {} MiB before, {} MiB with 200 stalled 1 MiB uploads, {} MiB after; {answered} answered 401",
        before / 1024,
        during / 1024,
        after / 1024
    );
    assert!(answered >= 150, "only {answered} of 200 answered 401");
    let grown = during.max(after).saturating_sub(before) / 1024;
    assert!(grown < 64, "the control plane grew {grown} MiB");
}

/// Over a Redis that lost its data while the newest backup holds a project, the real binary
/// refuses to start (exit 2) and names the recovery; with `--restore-from` it restores the backup
/// and serves it.
#[test]
fn control_plane_binary_refuses_a_store_that_lost_its_data_and_restores_it() {
    use std::io::{BufRead, BufReader};

    use to11_control_plane::actors::registry::Model;
    use to11_control_plane::recovery::backup::{self, Backup};

    let redis_port = free_port();
    let _redis = Child(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let dir = std::env::temp_dir().join(format!("to11-bin-backups-{}", uuid::Uuid::new_v4()));
    let mut backup = Backup::of(&Model::default(), "an-epoch-redis-lost", chrono::Utc::now());
    let mut state = to11_control_plane::domain::project::new_project(
        uuid::Uuid::new_v4(),
        "kept".into(),
        "Kept",
        to11_shared::model::ByokPolicy::Allowed,
        chrono::Utc::now(),
    );
    state.version = 41;
    backup.projects.push(state);
    backup.max_version = 41;
    let written = backup::write(&dir, &backup, 10).expect("backup");
    let control_plane = |extra: &[(&str, String)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_to11-control-plane"));
        cmd.env("TO11_ADMIN_TOKEN", "a-long-enough-operator-token")
            .env(
                "TO11_MASTER_KEY",
                "dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=",
            )
            .env("TO11_REDIS_URL", &redis_url)
            .env("TO11_API_LISTEN", "127.0.0.1:0")
            .env("TO11_BACKUP_DIR", &dir)
            .env("TO11_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    };

    let out = control_plane(&[]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    let log = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(2), "{err}");
    // This Redis runs without AOF: the warning names the settings.
    assert!(
        log.contains("AOF off") && log.contains("appendonly yes"),
        "{log}"
    );
    assert!(err.contains("lost its data"), "{err}");
    assert!(
        err.contains(&format!("--restore-from {}", written.file.display())),
        "{err}"
    );

    let mut cp = Child(
        control_plane(&[("TO11_RESTORE_FROM", written.file.display().to_string())])
            .spawn()
            .expect("control plane"),
    );
    let stdout = cp.0.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("the control plane restores and starts");
    let mut conn = redis::Client::open(redis_url.as_str())
        .expect("client")
        .get_connection()
        .expect("conn");
    let index: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg("to11:snapshot-index")
        .query(&mut conn)
        .expect("index");
    let version = index
        .get(&backup.projects[0].project.id.to_string())
        .copied()
        .expect("the restored project is in the index");
    assert!(version > 41, "a version above the backup's ({version})");
    let _ = std::fs::remove_dir_all(&dir);
}
