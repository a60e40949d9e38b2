//! `orgata-bench`: benchmarks of real Orgata server processes over their real protocols, on
//! loopback. Each scenario prints one JSON object. It checks correctness (every execution
//! completed), never timings: those are for people to read (`bench/RESULTS.md`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Parser)]
#[command(name = "orgata-bench", about = "Benchmarks of Orgata server processes on loopback")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// The `orgata` binary (default: next to this one).
    #[arg(long, global = true)]
    orgata: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Graphql,
    Rest,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// pbj-sandwich: start N executions until all wait for the cook, then answer them all.
    Pbj {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: Store,
        #[arg(long, value_enum, default_value = "graphql")]
        protocol: Protocol,
        #[arg(long, default_value_t = 2000)]
        executions: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// PostgreSQL URL (default: ORGATA_BENCH_DATABASE_URL or the local server's `postgres` database).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// N executions parked on the human step: the server's memory and the database's size.
    Parked {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: Store,
        #[arg(long, default_value_t = 100_000)]
        executions: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Many GraphQL subscribers on one execution: delivery latency and memory per subscriber.
    Fanout {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: Store,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Subscriptions per WebSocket connection (a browser tab holds a few).
        #[arg(long, default_value_t = 10)]
        per_connection: usize,
        /// Events to send (state edits on the execution), one every `interval_ms`.
        #[arg(long, default_value_t = 20)]
        events: usize,
        #[arg(long, default_value_t = 250)]
        interval_ms: u64,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// `execution(id)` over GraphQL and over REST at a fixed request rate, interleaved.
    Read {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: Store,
        /// Requests per second of each protocol.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Large packages: deploy a playbook of N distinct jq steps several times, run each
    /// version, and check that memory stays bounded, a jq value bomb and an over-limit package
    /// are refused with their reasons. Checks correctness; timings are informative.
    LargePackages {
        #[arg(long, value_enum, default_value = "sqlite")]
        store: Store,
        /// Steps of the playbook (each its own jq program).
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        /// Versions deployed (each a little different, so each is compiled).
        #[arg(long, default_value_t = 3)]
        deploys: usize,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// pbj on PostgreSQL with 1, 2 and 3 replicas, requests spread over them.
    Replicas {
        #[arg(long, default_value_t = 2000)]
        executions: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        replicas: Vec<usize>,
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// One `orgata serve` process.
struct Server {
    base: String,
    child: tokio::process::Child,
}

impl Server {
    /// Peak resident memory of the process, in kB (Linux).
    fn peak_rss_kb(&self) -> Option<u64> {
        self.status_kb("VmHWM:")
    }

    /// Resident memory of the process now, in kB (Linux).
    fn rss_kb(&self) -> Option<u64> {
        self.status_kb("VmRSS:")
    }

    fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status.lines().find(|line| line.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
    }
}

/// A store for one scenario: a SQLite file in a temporary directory, or a fresh schema in a
/// PostgreSQL database.
struct Database {
    url: String,
    schema: Option<String>,
    directory: tempfile::TempDir,
}

impl Database {
    fn new(store: Store, database_url: Option<String>) -> anyhow::Result<Database> {
        let directory = tempfile::tempdir()?;
        Ok(match store {
            Store::Sqlite => Database {
                url: format!("sqlite://{}/orgata.db?mode=rwc", directory.path().display()),
                schema: None,
                directory,
            },
            Store::Postgres => Database { url: postgres_url(database_url), schema: Some(schema_name()), directory },
        })
    }

    async fn start(&self, orgata: &PathBuf) -> anyhow::Result<Server> {
        start_server(orgata, &self.url, self.schema.as_deref()).await
    }

    /// Bytes on disk: the SQLite file with its WAL, or the schema's tables and indexes.
    fn size_bytes(&self) -> anyhow::Result<u64> {
        match &self.schema {
            None => {
                let mut total = 0;
                for entry in std::fs::read_dir(self.directory.path())? {
                    total += entry?.metadata()?.len();
                }
                Ok(total)
            }
            Some(schema) => {
                let output = std::process::Command::new("psql")
                    .args([self.url.as_str(), "-tAc"])
                    .arg(format!(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relkind = 'r'"
                    ))
                    .output()
                    .context("running psql")?;
                if !output.status.success() {
                    bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
                }
                Ok(String::from_utf8(output.stdout)?.trim().parse()?)
            }
        }
    }
}

async fn start_server(orgata: &PathBuf, database_url: &str, schema: Option<&str>) -> anyhow::Result<Server> {
    let mut command = tokio::process::Command::new(orgata);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--database-url", database_url])
        .args(["--examples-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")])
        .env("RUST_LOG", "warn,orgata::server=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(schema) = schema {
        command.args(["--database-schema", schema]);
    }
    let mut child = command.spawn().with_context(|| format!("starting {}", orgata.display()))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let address = loop {
        let line =
            tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??.context("the server exited")?;
        if let Some(found) = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next()) {
            break found.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { base: format!("http://{address}"), child })
}

async fn graphql(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await?
        .json()
        .await?;
    if let Some(errors) = body.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    Ok(body["data"].clone())
}

async fn start(client: &reqwest::Client, base: &str, protocol: Protocol) -> anyhow::Result<String> {
    Ok(match protocol {
        Protocol::Graphql => graphql(
            client,
            base,
            "mutation { executePlaybook(input: {runtimeId: \"kitchen-v1\", playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }",
            json!({}),
        )
        .await?["executePlaybook"]["id"]
            .as_str()
            .context("id")?
            .to_owned(),
        Protocol::Rest => {
            let body: Value = client
                .post(format!("{base}/api/v1/runtimes/kitchen-v1/executions"))
                .json(&json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}}))
                .send()
                .await?
                .json()
                .await?;
            body["executionId"].as_str().context("executionId")?.to_owned()
        }
    })
}

/// Waits (long poll) until the execution is no longer RUNNING; returns its status.
async fn settle(client: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<String> {
    for _ in 0..30 {
        let body: Value = client.get(format!("{base}/api/v1/executions/{id}?wait=10")).send().await?.json().await?;
        let status = body["status"].as_str().context("status")?.to_owned();
        if status != "RUNNING" {
            return Ok(status);
        }
    }
    bail!("{id} stayed RUNNING")
}

/// Answers the cook's intervention; returns the execution's status in the server's answer
/// (COMPLETED when the steps after it ran in the same transaction).
async fn answer(client: &reqwest::Client, base: &str, id: &str, protocol: Protocol) -> anyhow::Result<String> {
    let pending: Value =
        client.get(format!("{base}/api/v1/executions/{id}/interventions?status=PENDING")).send().await?.json().await?;
    let intervention = pending[0]["id"].as_str().context("a pending intervention")?;
    let execution = match protocol {
        Protocol::Graphql => graphql(
            client,
            base,
            "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id status } }",
            json!({"id": id, "i": intervention}),
        )
        .await?["respondToIntervention"]
            .clone(),
        Protocol::Rest => {
            let response = client
                .post(format!("{base}/api/v1/executions/{id}/interventions/{intervention}"))
                .json(&json!({"response": {"jelly_flavor": "grape"}}))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("answer refused: {}", response.status());
            }
            response.json().await?
        }
    };
    Ok(execution["status"].as_str().context("the answer names no status")?.to_owned())
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs the pbj workload over `servers`, requests spread round robin.
async fn pbj(servers: &[Server], protocol: Protocol, executions: usize, concurrency: usize) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let bases: Vec<String> = servers.iter().map(|server| server.base.clone()).collect();
    let began = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..executions)
        .map(|index| {
            let client = client.clone();
            let base = bases[index % bases.len()].clone();
            async move {
                let id = start(&client, &base, protocol).await?;
                let status = settle(&client, &base, &id).await?;
                if status != "WAITING" {
                    bail!("{id} is {status}, not waiting for the cook");
                }
                Ok::<_, anyhow::Error>(id)
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let starts_per_s = executions as f64 / began.elapsed().as_secs_f64();

    let began = Instant::now();
    let timings: Vec<(f64, f64)> = futures::stream::iter(ids.into_iter().enumerate())
        .map(|(index, id)| {
            let client = client.clone();
            let base = bases[(index + 1) % bases.len()].clone();
            async move {
                let asked = Instant::now();
                let status = answer(&client, &base, &id, protocol).await?;
                let answered = Instant::now();
                // The answer's own transaction may have finished the execution; otherwise
                // wait for it (long poll).
                let status = if status == "RUNNING" { settle(&client, &base, &id).await? } else { status };
                if status != "COMPLETED" {
                    bail!("{id} ended {status}");
                }
                let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
                // Resume runs from sending the answer, since the answer's own transaction now
                // runs the steps that follow it.
                Ok::<_, anyhow::Error>((ms(asked.elapsed()), ms(answered - asked)))
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let completions_per_s = executions as f64 / began.elapsed().as_secs_f64();
    let (mut latencies, mut answers): (Vec<f64>, Vec<f64>) = timings.into_iter().unzip();
    latencies.sort_by(f64::total_cmp);
    answers.sort_by(f64::total_cmp);
    Ok(json!({
        "starts_per_s": (starts_per_s * 10.0).round() / 10.0,
        "completions_per_s": (completions_per_s * 10.0).round() / 10.0,
        "resume_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
        "resume_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "answer_p50_ms": (percentile(&answers, 0.5) * 100.0).round() / 100.0,
        "answer_p99_ms": (percentile(&answers, 0.99) * 100.0).round() / 100.0,
        "completed": latencies.len(),
        "server_peak_rss_kb": servers.iter().filter_map(Server::peak_rss_kb).max(),
    }))
}

/// Starts N executions that park on the cook, and measures what they weigh.
async fn parked(server: &Server, database: &Database, executions: usize, concurrency: usize) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let baseline_rss_kb = server.rss_kb();
    let began = Instant::now();
    let parked = futures::stream::iter(0..executions)
        .map(|_| {
            let client = client.clone();
            let base = server.base.clone();
            async move {
                let data = graphql(
                    &client,
                    &base,
                    "mutation { executePlaybook(input: {runtimeId: \"kitchen-v1\", playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id status } }",
                    json!({}),
                )
                .await?;
                let status = data["executePlaybook"]["status"].as_str().unwrap_or_default().to_owned();
                let id = data["executePlaybook"]["id"].as_str().unwrap_or_default().to_owned();
                let status = if status == "RUNNING" { settle(&client, &base, &id).await? } else { status };
                if status != "WAITING" {
                    bail!("{id} is {status}, not waiting for the cook");
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?
        .len();
    let starts_per_s = parked as f64 / began.elapsed().as_secs_f64();
    // The server's own count, from its metrics.
    let metrics = client.get(format!("{}/metrics", server.base)).send().await?.text().await?;
    let waiting: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix("orgata_executions{status=\"WAITING\"} "))
        .context("no WAITING count in /metrics")?
        .trim()
        .parse()?;
    if waiting != executions {
        bail!("the server counts {waiting} waiting executions, not {executions}");
    }
    // Let the allocator settle after the burst before reading resident memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kb = server.rss_kb();
    Ok(json!({
        "parked": waiting,
        "starts_per_s": (starts_per_s * 10.0).round() / 10.0,
        "server_rss_kb": rss_kb,
        "server_baseline_rss_kb": baseline_rss_kb,
        "server_peak_rss_kb": server.peak_rss_kb(),
        "database_bytes": database.size_bytes()?,
    }))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a `graphql-transport-ws` connection and waits for its acknowledgement.
async fn graphql_ws(base: &str) -> anyhow::Result<Socket> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut request = format!("{}/graphql/ws", base.replacen("http", "ws", 1)).into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket.send(ws_text(json!({"type": "connection_init", "payload": {}}))).await?;
    loop {
        let message = next_json(&mut socket).await?;
        if message["type"] == "connection_ack" {
            return Ok(socket);
        }
    }
}

fn ws_text(value: Value) -> tokio_tungstenite::tungstenite::Message {
    tokio_tungstenite::tungstenite::Message::text(value.to_string())
}

/// The next JSON text message (answering pings).
async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    use futures::SinkExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .context("no message within 60 s")?
            .context("the WebSocket closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text)?;
            if value["type"] == "ping" {
                socket.send(ws_text(json!({"type": "pong"}))).await?;
                continue;
            }
            return Ok(value);
        }
    }
}

/// Many subscribers on one parked execution; each event is a state edit, timed from the
/// moment its mutation is sent to the moment each subscriber receives it.
async fn fanout(
    server: &Server,
    subscribers: usize,
    per_connection: usize,
    events: usize,
    interval: Duration,
) -> anyhow::Result<Value> {
    use futures::SinkExt;
    let client = reqwest::Client::new();
    let id = start(&client, &server.base, Protocol::Graphql).await?;
    if settle(&client, &server.base, &id).await? != "WAITING" {
        bail!("{id} did not park");
    }
    let last_seq =
        graphql(&client, &server.base, "query($id: ID!) { execution(id: $id) { lastSeq } }", json!({"id": id})).await?
            ["execution"]["lastSeq"]
            .as_i64()
            .context("lastSeq")?;
    let baseline_rss_kb = server.rss_kb().unwrap_or_default();
    let per_connection = per_connection.max(1);
    let connections = subscribers.div_ceil(per_connection);
    let epoch = Instant::now();
    // Each connection subscribes, reports readiness, then records when each event arrives.
    let (ready_sender, mut ready) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(connections);
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let count = per_connection.min(subscribers - connection * per_connection);
        let base = server.base.clone();
        let id = id.clone();
        let ready_sender = ready_sender.clone();
        tasks.push(tokio::spawn(async move {
            let subscribed = async {
                let mut socket = graphql_ws(&base).await?;
                for index in 0..count {
                    socket
                        .send(ws_text(json!({"type": "subscribe", "id": index.to_string(), "payload": {
                            "query": "subscription($id: ID!, $after: Int) { executionEvents(executionId: $id, afterSeq: $after) { seq type } }",
                            "variables": {"id": id, "after": last_seq},
                        }})))
                        .await?;
                }
                Ok::<_, anyhow::Error>(socket)
            }
            .await;
            let mut socket = match subscribed {
                Ok(socket) => {
                    let _ = ready_sender.send(Ok(())).await;
                    socket
                }
                Err(error) => {
                    let _ = ready_sender.send(Err(error)).await;
                    return Ok(Vec::new());
                }
            };
            // (seq, milliseconds since the epoch) for every delivery on this connection.
            let mut arrivals: Vec<(i64, f64)> = Vec::with_capacity(count * events);
            while arrivals.len() < count * events {
                let message = next_json(&mut socket).await?;
                match message["type"].as_str() {
                    Some("next") => {
                        let seq = message["payload"]["data"]["executionEvents"]["seq"].as_i64().context("seq")?;
                        arrivals.push((seq, epoch.elapsed().as_secs_f64() * 1000.0));
                    }
                    Some("error") => bail!("subscription refused: {message}"),
                    _ => {}
                }
            }
            Ok::<_, anyhow::Error>(arrivals)
        }));
    }
    drop(ready_sender);
    for _ in 0..connections {
        ready.recv().await.context("a subscriber task ended early")??;
    }
    // The subscriptions are registered once the server has read them; give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subscribed_rss_kb = server.rss_kb().unwrap_or_default();

    let mut sent_at: Vec<(i64, f64)> = Vec::new();
    for index in 0..events {
        let at = epoch.elapsed().as_secs_f64() * 1000.0;
        let data = graphql(
            &client,
            &server.base,
            "mutation($id: ID!, $patch: JSON) { interveneExecution(input: {executionId: $id, action: EDIT_STATE, patch: $patch}) { lastSeq } }",
            json!({"id": id, "patch": {"tick": index}}),
        )
        .await?;
        sent_at.push((data["interveneExecution"]["lastSeq"].as_i64().context("lastSeq")?, at));
        tokio::time::sleep(interval).await;
    }
    let mut latencies = Vec::with_capacity(subscribers * events);
    for task in tasks {
        for (seq, arrived) in task.await?? {
            let (_, sent) = sent_at.iter().find(|(sent_seq, _)| *sent_seq == seq).context("an event nobody sent")?;
            latencies.push(arrived - sent);
        }
    }
    if latencies.len() != subscribers * events {
        bail!("{} deliveries, expected {}", latencies.len(), subscribers * events);
    }
    latencies.sort_by(f64::total_cmp);
    let per_subscriber = subscribed_rss_kb.saturating_sub(baseline_rss_kb) as f64 * 1024.0 / subscribers as f64;
    Ok(json!({
        "deliveries": latencies.len(),
        "connections": connections,
        "delivery_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
        "delivery_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "delivery_max_ms": (percentile(&latencies, 1.0) * 100.0).round() / 100.0,
        "server_baseline_rss_kb": baseline_rss_kb,
        "server_subscribed_rss_kb": subscribed_rss_kb,
        "rss_bytes_per_subscriber": per_subscriber.round(),
        "server_peak_rss_kb": server.peak_rss_kb(),
    }))
}

/// `execution(id)` over GraphQL and over REST, interleaved at a fixed rate each.
async fn read(server: &Server, rate: u64, seconds: u64) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let id = start(&client, &server.base, Protocol::Graphql).await?;
    settle(&client, &server.base, &id).await?;
    let document = include_str!("../../schema/operations/getExecution.graphql");
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = Vec::with_capacity(total * 2);
    for _ in 0..total {
        ticker.tick().await;
        for protocol in [Protocol::Graphql, Protocol::Rest] {
            let client = client.clone();
            let base = server.base.clone();
            let id = id.clone();
            requests.push(tokio::spawn(async move {
                let began = Instant::now();
                let body: Value = match protocol {
                    Protocol::Graphql => {
                        graphql(&client, &base, document, json!({"id": id})).await?["execution"].clone()
                    }
                    Protocol::Rest => client.get(format!("{base}/api/v1/executions/{id}")).send().await?.json().await?,
                };
                if body["id"] != id.as_str() {
                    bail!("{protocol:?} answered {body}");
                }
                Ok::<_, anyhow::Error>((protocol, began.elapsed().as_secs_f64() * 1000.0))
            }));
        }
    }
    let (mut graphql_ms, mut rest_ms) = (Vec::new(), Vec::new());
    for request in requests {
        match request.await?? {
            (Protocol::Graphql, ms) => graphql_ms.push(ms),
            (Protocol::Rest, ms) => rest_ms.push(ms),
        }
    }
    graphql_ms.sort_by(f64::total_cmp);
    rest_ms.sort_by(f64::total_cmp);
    let round = |value: f64| (value * 1000.0).round() / 1000.0;
    let overhead = |fraction: f64| round(percentile(&rest_ms, fraction) / percentile(&graphql_ms, fraction) - 1.0);
    Ok(json!({
        "requests": graphql_ms.len() + rest_ms.len(),
        "graphql_p50_ms": round(percentile(&graphql_ms, 0.5)),
        "graphql_p99_ms": round(percentile(&graphql_ms, 0.99)),
        "rest_p50_ms": round(percentile(&rest_ms, 0.5)),
        "rest_p99_ms": round(percentile(&rest_ms, 0.99)),
        "rest_overhead_p50": overhead(0.5),
        "rest_overhead_p99": overhead(0.99),
        "server_peak_rss_kb": server.peak_rss_kb(),
    }))
}

/// A package with one playbook of `steps` transform steps; step `s<i>` adds one to the
/// previous step's count, so the output is `{n: steps}`.
fn large_package(steps: usize, version: usize) -> String {
    let mut yaml = format!(
        "package: large\nversion: 1.0.0\ndescription: version {version}\nplaybooks:\n  - name: main\n    steps:\n"
    );
    for step in 0..steps {
        let previous = if step == 0 { "0".to_owned() } else { format!(".steps.s{}.n", step - 1) };
        yaml.push_str(&format!(
            "      - name: s{step}\n        kind: transform\n        program: '{{n: ({previous} + 1)}}'\n"
        ));
    }
    yaml
}

async fn deploy_source(client: &reqwest::Client, base: &str, source: &str) -> anyhow::Result<Value> {
    Ok(client
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($source: String!) { deployRuntime(input: {environment: DEVELOPMENT, source: $source}) { id version } }",
            "variables": {"source": source},
        }))
        .send()
        .await?
        .json()
        .await?)
}

async fn run_to_end(client: &reqwest::Client, base: &str, runtime: &str, playbook: &str) -> anyhow::Result<Value> {
    let started = graphql(
        client,
        base,
        "mutation($runtime: String!, $playbook: String!) { executePlaybook(input: {runtimeId: $runtime, playbook: $playbook, input: {}}) { id } }",
        json!({"runtime": runtime, "playbook": playbook}),
    )
    .await?;
    let id = started["executePlaybook"]["id"].as_str().context("id")?.to_owned();
    settle(client, base, &id).await?;
    let body =
        graphql(client, base, "query($id: ID!) { execution(id: $id) { status output error } }", json!({"id": id}))
            .await?;
    Ok(body["execution"].clone())
}

async fn large_packages(server: &Server, steps: usize, deploys: usize) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let baseline_rss_kb = server.rss_kb();
    let mut after_deploy_rss_kb = Vec::new();
    let mut deploy_ms = Vec::new();
    for version in 0..deploys {
        let began = Instant::now();
        let body = deploy_source(&client, &server.base, &large_package(steps, version)).await?;
        if body.get("errors").is_some() {
            bail!("deploying {steps} steps failed: {body}");
        }
        deploy_ms.push(began.elapsed().as_millis() as u64);
        after_deploy_rss_kb.push(server.rss_kb());
    }
    // Run the latest version twice.
    let mut run_ms = Vec::new();
    for _ in 0..2 {
        let began = Instant::now();
        let execution = run_to_end(&client, &server.base, "large-v1", "main").await?;
        if execution["status"] != "COMPLETED" || execution["output"] != json!({"n": steps}) {
            bail!("the {steps}-step playbook ended {execution}");
        }
        run_ms.push(began.elapsed().as_millis() as u64);
    }
    // A jq program that doubles a string 29 times fails on its size budget, not the server.
    let bomb = "package: bomb\nversion: 1.0.0\nplaybooks:\n  - name: main\n    steps:\n      - name: grow\n        kind: transform\n        program: 'reduce range(29) as $i (\"x\"; . + .)'\n";
    let body = deploy_source(&client, &server.base, bomb).await?;
    if body.get("errors").is_some() {
        bail!("deploying the bomb failed: {body}");
    }
    let bombed = run_to_end(&client, &server.base, "bomb-v1", "main").await?;
    let bomb_error = bombed["error"].as_str().unwrap_or_default().to_owned();
    if bombed["status"] != "FAILED" || !bomb_error.contains("built values larger than") {
        bail!("the value bomb ended {bombed}");
    }
    // One step over the default limit of steps per playbook is refused at deploy.
    let body = deploy_source(&client, &server.base, &large_package(1001, 0).replace("package: large", "package: huge"))
        .await?;
    let refusal = body["errors"].to_string();
    if !refusal.contains("has 1001 steps") {
        bail!("an over-limit package was not refused: {body}");
    }
    Ok(json!({
        "server_baseline_rss_kb": baseline_rss_kb,
        "server_rss_after_each_deploy_kb": after_deploy_rss_kb,
        "server_rss_kb": server.rss_kb(),
        "server_peak_rss_kb": server.peak_rss_kb(),
        "deploy_ms": deploy_ms,
        "run_ms": run_ms,
        "value_bomb": bomb_error,
        "over_limit_refused": true,
    }))
}

fn postgres_url(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("ORGATA_BENCH_DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn schema_name() -> String {
    format!("bench_{}", uuid::Uuid::now_v7().simple())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let orgata = match cli.orgata {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("orgata"),
    };
    match cli.scenario {
        Scenario::Pbj { store, protocol, executions, concurrency, database_url } => {
            let database = Database::new(store, database_url)?;
            let server = database.start(&orgata).await?;
            let figures = pbj(std::slice::from_ref(&server), protocol, executions, concurrency).await?;
            report(
                json!({"scenario": "pbj", "store": store.name(), "protocol": format!("{protocol:?}").to_lowercase(),
                       "executions": executions, "concurrency": concurrency}),
                figures,
            );
        }
        Scenario::Parked { store, executions, concurrency, database_url } => {
            let database = Database::new(store, database_url)?;
            let server = database.start(&orgata).await?;
            let figures = parked(&server, &database, executions, concurrency).await?;
            report(
                json!({"scenario": "parked", "store": store.name(), "executions": executions, "concurrency": concurrency}),
                figures,
            );
        }
        Scenario::Fanout { store, subscribers, per_connection, events, interval_ms, database_url } => {
            let database = Database::new(store, database_url)?;
            let server = database.start(&orgata).await?;
            let figures =
                fanout(&server, subscribers, per_connection, events, Duration::from_millis(interval_ms)).await?;
            report(
                json!({"scenario": "fanout", "store": store.name(), "subscribers": subscribers,
                       "per_connection": per_connection, "events": events, "interval_ms": interval_ms}),
                figures,
            );
        }
        Scenario::Read { store, rate, seconds, database_url } => {
            let database = Database::new(store, database_url)?;
            let server = database.start(&orgata).await?;
            let figures = read(&server, rate, seconds).await?;
            report(json!({"scenario": "read", "store": store.name(), "rate": rate, "seconds": seconds}), figures);
        }
        Scenario::LargePackages { store, steps, deploys, database_url } => {
            let database = Database::new(store, database_url)?;
            let server = database.start(&orgata).await?;
            let figures = large_packages(&server, steps, deploys).await?;
            report(
                json!({"scenario": "large-packages", "store": store.name(), "steps": steps, "deploys": deploys}),
                figures,
            );
        }
        Scenario::Replicas { executions, concurrency, replicas, database_url } => {
            let url = postgres_url(database_url);
            for count in replicas {
                let schema = schema_name();
                let mut servers = Vec::new();
                for _ in 0..count.max(1) {
                    servers.push(start_server(&orgata, &url, Some(&schema)).await?);
                }
                let figures = pbj(&servers, Protocol::Graphql, executions, concurrency).await?;
                report(
                    json!({"scenario": "replicas", "store": "postgres", "protocol": "graphql", "replicas": count,
                           "executions": executions, "concurrency": concurrency}),
                    figures,
                );
            }
        }
    }
    Ok(())
}

/// Prints one scenario's parameters and figures as one JSON object.
fn report(mut parameters: Value, figures: Value) {
    if let (Value::Object(parameters), Value::Object(figures)) = (&mut parameters, figures) {
        parameters.extend(figures);
    }
    println!("{parameters}");
}
