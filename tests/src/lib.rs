//! The to11 test sandbox: a real `redis-server` on a free port, mock upstreams on port 0, and both
//! planes started in-process (each in its own thread and actix system, so they can be stopped and
//! restarted) with the same `start` functions the binaries use.

// Test support: panicking on a broken set-up is the point, so `expect` is allowed here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod breaking;
pub mod checker;
pub mod client;
pub mod gzip;
pub mod mock;
pub mod native_mock;
pub mod postgres;
pub mod redis_server;
pub mod sandbox;

/// Starts `cmd` (its standard output piped) and reads the address it prints on its first line,
/// as the mock upstream and the floor proxy do once they listen.
pub fn spawn_listening(
    mut cmd: std::process::Command,
) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("its address");
    let addr = line.trim().parse().expect("an address on its first line");
    (child, addr)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `secs` seconds. Tests wait on
/// signals (a replica's reported version, a recorded request) this way, never on fixed sleeps.
pub async fn wait_until<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Python virtual environment `target/{name}` with `requirements` (a file under the repository)
/// installed from PyPI, created (or brought up to date) when missing; its `bin` directory.
pub fn venv(name: &str, requirements: &str) -> std::path::PathBuf {
    use std::process::Command;
    let venv = repo_root().join("target").join(name);
    let bin = venv.join("bin");
    let requirements = repo_root().join(requirements);
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && bin.join("python").exists()
    {
        return bin;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(ok.success(), "python3 -m venv failed");
    let ok = Command::new(bin.join("pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .status()
        .expect("pip runs");
    assert!(
        ok.success(),
        "installing {} from PyPI failed",
        requirements.display()
    );
    std::fs::write(&stamp, wanted).expect("stamp");
    bin
}
