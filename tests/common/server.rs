//! A real server on a random loopback port, and small clients for it: GraphQL over HTTP and
//! over WebSocket (both subprotocols).

#![allow(dead_code)]

#[path = "wait.rs"]
pub mod wait;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use wait::{PATIENCE, wait_until};

/// The selection of a pending intervention that tests read.
const PENDING: &str = "query($id: ID!) { execution(id: $id) { status interventions(status: PENDING) { id step kind role prompt formSchema fields { name type enum widget required } allowedActions answerable } } }";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    /// The database, for administration commands run beside the server.
    pub database_url: String,
    pub database_schema: Option<String>,
    _directory: tempfile::TempDir,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts `orgata::serve` with the example packages deployed, on SQLite or (with
    /// `ORGATA_TEST_DATABASE_URL`) a fresh PostgreSQL schema.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Like [`TestServer::start`], with the configuration adjusted first.
    pub async fn start_with(configure: impl FnOnce(&mut orgata::Config)) -> TestServer {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut config = match std::env::var("ORGATA_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let mut config = orgata::Config::new(url);
                config.database_schema = Some(format!("t_{}", uuid::Uuid::now_v7().simple()));
                config
            }
            _ => orgata::Config::new(orgata::store::sqlite_url(&directory.path().join("orgata.db"))),
        };
        config.examples = true;
        config.no_examples = false;
        config.examples_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        configure(&mut config);
        let database_url = config.database_url();
        let database_schema = config.database_schema.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(orgata::serve(listener, config));
        let client = reqwest::Client::new();
        let server = TestServer { base, client, database_url, database_schema, _directory: directory, task };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        // The examples deploy before the listener serves, so they are there once it is ready.
        wait_until(Duration::from_secs(10), "the server to become ready", || async {
            let response = self.client.get(format!("{}/readyz", self.base)).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// Runs `orgata keys …` on the server's database; returns its standard output.
    pub fn keys(&self, arguments: &[&str]) -> String {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orgata"));
        command.arg("keys").args(arguments).env("ORGATA_DATABASE_URL", &self.database_url);
        if let Some(schema) = &self.database_schema {
            command.env("ORGATA_DATABASE_SCHEMA", schema);
        }
        let output = command.output().expect("orgata keys runs");
        assert!(
            output.status.success(),
            "orgata keys {arguments:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Creates a key with the CLI; returns its token.
    pub fn create_key(&self, name: &str, roles: &str, grants: &str) -> String {
        let mut arguments = vec!["create", "--name", name, "--grant", grants];
        if !roles.is_empty() {
            arguments.extend(["--role", roles]);
        }
        let printed = self.keys(&arguments);
        printed.lines().find(|line| line.starts_with("orgata_")).expect("the token is printed").to_owned()
    }

    /// Runs a GraphQL document as the holder of `token`; returns the whole response body.
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.graphql_by(Some(token), query, variables).await
    }

    /// Runs a GraphQL document as the holder of `token`, or as the loopback developer without
    /// one; returns the whole response body, whatever the HTTP status.
    pub async fn graphql_by(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post_graphql(token, query, variables).await.json().await.expect("JSON body")
    }

    async fn post_graphql(&self, token: Option<&str>, query: &str, variables: Value) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/graphql", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.json(&json!({"query": query, "variables": variables})).send().await.expect("request sent")
    }

    /// Starts a classic pbj-sandwich on `runtime` (`kitchen-v1` is the development example) as
    /// the holder of `token`, or the loopback developer; returns its id. It runs until the cook
    /// is asked for the jelly.
    pub async fn start_pbj(&self, token: Option<&str>, runtime: &str) -> String {
        let body = self
            .graphql_by(
                token,
                "mutation($runtime: String!) { executePlaybook(input: {runtimeId: $runtime, playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }",
                json!({"runtime": runtime}),
            )
            .await;
        body["data"]["executePlaybook"]["id"].as_str().unwrap_or_else(|| panic!("pbj started: {body}")).to_owned()
    }

    /// The pending intervention of execution `id` once it waits for one, as the holder of
    /// `token` (or the loopback developer) sees it: `id step kind role prompt formSchema fields
    /// allowedActions answerable`.
    pub async fn pending_intervention(&self, token: Option<&str>, id: &str) -> Value {
        wait_until(PATIENCE, &format!("execution {id} to wait on an intervention"), || async {
            let body = self.graphql_by(token, PENDING, json!({"id": id})).await;
            let execution = &body["data"]["execution"];
            let first = &execution["interventions"][0];
            (execution["status"] == "WAITING" && first.is_object()).then(|| first.clone())
        })
        .await
    }

    /// Runs a GraphQL document over HTTP POST; returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self.post_graphql(None, query, variables).await;
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("JSON body")
    }

    /// Runs a document that must succeed; returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs a document that must fail; returns its first error.
    pub async fn error(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        body["errors"][0].clone()
    }

    /// Polls an execution until its status is one of `statuses`.
    pub async fn wait_status(&self, id: &str, statuses: &[&str]) -> Value {
        wait_until(PATIENCE, &format!("execution {id} to be one of {statuses:?}"), || async {
            let data = self
                .data(
                    "query($id: ID!) { execution(id: $id) { id status currentStep output lastSeq } }",
                    json!({"id": id}),
                )
                .await;
            let execution = &data["execution"];
            statuses.iter().any(|status| execution["status"] == *status).then(|| execution.clone())
        })
        .await
    }
}

/// A GraphQL WebSocket client speaking `graphql-transport-ws` or the legacy `graphql-ws`.
pub struct GraphQLWs {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    legacy: bool,
}

impl GraphQLWs {
    pub async fn connect(base: &str, protocol: &str) -> GraphQLWs {
        let url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket connects");
        let mut client = GraphQLWs { socket, legacy: protocol == "graphql-ws" };
        client.send(json!({"type": "connection_init", "payload": {}})).await;
        let ack = client.receive().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("sent");
    }

    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("valid frame");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("JSON message");
                match value["type"].as_str() {
                    Some("ka") => continue,
                    Some("ping") => {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    _ => return value,
                }
            }
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        self.send(json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}})).await;
    }

    /// The next result's `data` (panics on errors).
    pub async fn next_data(&mut self) -> Value {
        let message = self.receive().await;
        let expected = if self.legacy { "data" } else { "next" };
        assert_eq!(message["type"], expected, "{message}");
        assert!(message["payload"].get("errors").is_none_or(Value::is_null), "{message}");
        message["payload"]["data"].clone()
    }

    /// The next message if one arrives within `wait`, whatever it is.
    pub async fn next_message_within(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.receive()).await.ok()
    }

    /// The next message, whatever it is.
    pub async fn next_message(&mut self) -> Value {
        self.receive().await
    }

    /// Ends subscription `id` (`complete`, or the legacy `stop`).
    pub async fn complete(&mut self, id: &str) {
        let kind = if self.legacy { "stop" } else { "complete" };
        self.send(json!({"type": kind, "id": id})).await;
    }

    /// Sends a text frame as it is.
    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.expect("sent");
    }

    /// Whether the server ends the connection within `wait` (a close frame, an error, or the
    /// end of the stream), whatever else arrives first.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Whether nothing arrives for `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.socket.next()).await.is_err()
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
