//! PostgreSQL for tests: a fresh database on the machine's server (127.0.0.1:5432, trust auth;
//! `TO11_TEST_POSTGRES` overrides its address), dropped at the end; or a private server of its
//! own (`initdb` + `pg_ctl` in a temporary directory, on a free port) for tests that stop and
//! restart it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::redis_server::free_port;

/// The shared server's base URL (no database).
fn shared_server() -> String {
    std::env::var("TO11_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

fn psql(server: &str, db: &str, sql: &str) -> bool {
    Command::new("psql")
        .arg(format!("{server}/{db}"))
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-qc")
        .arg(sql)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A database of its own on the shared server (or, when no server answers there, on a private
/// server started for it), dropped on drop.
pub struct TestDatabase {
    pub url: String,
    name: String,
    server: String,
    _private: Option<PgServer>,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        let name = format!("to11_test_{}", uuid::Uuid::new_v4().simple());
        let shared = shared_server();
        let (server, private) = if psql(&shared, "postgres", "SELECT 1") {
            (shared, None)
        } else {
            let p = PgServer::start();
            (format!("postgres://postgres@127.0.0.1:{}", p.port), Some(p))
        };
        assert!(
            psql(&server, "postgres", &format!("CREATE DATABASE {name}")),
            "cannot create a database on {server}"
        );
        TestDatabase {
            url: format!("{server}/{name}"),
            name,
            server,
            _private: private,
        }
    }

    /// Runs one SQL statement; its output (unaligned, tuples only).
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(
            &self.server,
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The directory of PostgreSQL's server programs.
fn bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    versions
        .into_iter()
        .map(|v| v.join("bin"))
        .filter(|b| b.join("pg_ctl").exists())
        .max()
        .expect("PostgreSQL server programs (apt-get install postgresql)")
}

/// A command as the `postgres` user when running as root (PostgreSQL refuses root).
fn as_postgres(program: PathBuf) -> Command {
    // SAFETY-free check: `id -u` rather than libc.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A private PostgreSQL server that can be stopped and started again.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
}

impl PgServer {
    pub fn start() -> PgServer {
        let dir = std::env::temp_dir().join(format!("to11-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let ok = as_postgres(bin_dir().join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "initdb failed");
        let server = PgServer {
            port: free_port(),
            dir,
        };
        server.up();
        server
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn up(&self) {
        let ok = as_postgres(bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-l"])
            .arg(self.dir.join("log"))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pg_ctl start failed (see {}/log)", self.dir.display());
        for _ in 0..200 {
            if psql(
                &format!("postgres://postgres@127.0.0.1:{}", self.port),
                "postgres",
                "SELECT 1",
            ) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL on {} never answered", self.port);
    }

    /// Stops it at once (clients see their connections broken).
    pub fn down(&self) {
        let _ = as_postgres(bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Runs one SQL statement on database `db`; its output.
    pub fn query(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(self.url(db))
            .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
