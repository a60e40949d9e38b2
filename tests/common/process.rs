//! Real `orgata serve` processes for the soak and load tests: a database that outlives them
//! (a SQLite file, or a fresh PostgreSQL schema when `ORGATA_TEST_DATABASE_URL` is set), the
//! server's address read from its JSON log, its warnings kept, and its resident memory.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead};

/// Where the servers keep their data; a restarted server is given the same one.
pub struct Database {
    pub url: String,
    pub schema: Option<String>,
    _directory: tempfile::TempDir,
}

impl Database {
    /// A fresh SQLite file, or a fresh schema of `ORGATA_TEST_DATABASE_URL`.
    pub fn fresh() -> Database {
        let directory = tempfile::tempdir().expect("temporary directory");
        match std::env::var("ORGATA_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                Database { url, schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())), _directory: directory }
            }
            _ => Database {
                url: orgata::store::sqlite_url(&directory.path().join("orgata.db")),
                schema: None,
                _directory: directory,
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.schema.is_some()
    }

    /// `sqlite` or `postgres`, for reports.
    pub fn store(&self) -> &'static str {
        if self.is_postgres() { "postgres" } else { "sqlite" }
    }
}

/// One `orgata serve` process on loopback.
pub struct Process {
    pub base: String,
    pub child: tokio::process::Child,
    /// WARN and ERROR log lines, and anything written to standard error (a panic).
    pub complaints: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `orgata serve` on a random loopback port with the example packages, and waits
    /// until it logs the address it listens on.
    pub async fn spawn(database: &Database, extra: &[&str]) -> Process {
        let mut child = Process::launch(database, extra);
        let complaints = Arc::new(Mutex::new(Vec::new()));
        keep_complaints(child.stderr.take().expect("stderr"), complaints.clone(), true);
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("the server logs its address in time")
                .expect("the log is readable");
            let Some(line) = line else {
                let status = child.wait().await.expect("exit status");
                let said = complaints.lock().expect("lock").join("\n");
                panic!("the server exited before listening ({status}):\n{said}");
            };
            if line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
                complaints.lock().expect("lock").push(line.clone());
            }
            if let Some(found) = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next()) {
                break found.to_owned();
            }
        };
        keep_complaints(lines.into_inner(), complaints.clone(), false);
        Process { base: format!("http://{address}"), child, complaints }
    }

    /// Starts `orgata serve` without waiting for it (its output must be read or dropped).
    pub fn launch(database: &Database, extra: &[&str]) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgata"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--database-url", &database.url])
            .args(["--examples-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/examples")])
            .args(extra)
            .env("RUST_LOG", "warn,orgata::server=info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(schema) = &database.schema {
            command.args(["--database-schema", schema]);
        }
        command.spawn().expect("orgata serve starts")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Sends SIGKILL and reaps the process.
    pub async fn kill(mut self) -> Vec<String> {
        self.child.start_kill().expect("SIGKILL sent");
        let _ = self.child.wait().await;
        self.complaints.lock().expect("lock").clone()
    }

    /// Resident memory now, in kB.
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid()).expect("VmRSS of a live server")
    }
}

/// Keeps reading a pipe so the server never blocks on it, keeping the lines worth reporting.
fn keep_complaints(pipe: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>, everything: bool) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if everything || line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
                into.lock().expect("lock").push(line);
            }
        }
    });
}

/// A process's resident set size (`VmRSS` of `/proc/<pid>/status`), in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|line| line.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A tolerant GraphQL call: `Err` for a transport failure (the server died mid-request) or a
/// body that is not JSON; the whole body (with `data` and `errors`) otherwise.
pub async fn graphql(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    variables: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let response = client
        .post(format!("{base}/graphql"))
        .json(&serde_json::json!({"query": query, "variables": variables}))
        .send()
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    let status = response.status();
    let body: serde_json::Value =
        response.json().await.map_err(|error| format!("HTTP {status}, body unreadable: {error}"))?;
    Ok(body)
}
