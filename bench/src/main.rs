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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status.lines().find(|line| line.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
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

async fn answer(client: &reqwest::Client, base: &str, id: &str, protocol: Protocol) -> anyhow::Result<()> {
    let pending: Value =
        client.get(format!("{base}/api/v1/executions/{id}/interventions?status=PENDING")).send().await?.json().await?;
    let intervention = pending[0]["id"].as_str().context("a pending intervention")?;
    match protocol {
        Protocol::Graphql => {
            graphql(
                client,
                base,
                "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id } }",
                json!({"id": id, "i": intervention}),
            )
            .await?;
        }
        Protocol::Rest => {
            let response = client
                .post(format!("{base}/api/v1/executions/{id}/interventions/{intervention}"))
                .json(&json!({"response": {"jelly_flavor": "grape"}}))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("answer refused: {}", response.status());
            }
        }
    }
    Ok(())
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
    let mut latencies: Vec<f64> = futures::stream::iter(ids.into_iter().enumerate())
        .map(|(index, id)| {
            let client = client.clone();
            let base = bases[(index + 1) % bases.len()].clone();
            async move {
                answer(&client, &base, &id, protocol).await?;
                let answered = Instant::now();
                let status = settle(&client, &base, &id).await?;
                if status != "COMPLETED" {
                    bail!("{id} ended {status}");
                }
                Ok::<_, anyhow::Error>(answered.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let completions_per_s = executions as f64 / began.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(json!({
        "starts_per_s": (starts_per_s * 10.0).round() / 10.0,
        "completions_per_s": (completions_per_s * 10.0).round() / 10.0,
        "resume_p50_ms": (percentile(&latencies, 0.5) * 100.0).round() / 100.0,
        "resume_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        "completed": latencies.len(),
        "server_peak_rss_kb": servers.iter().filter_map(Server::peak_rss_kb).max(),
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
            let directory = tempfile::tempdir()?;
            let (url, schema) = match store {
                Store::Sqlite => (format!("sqlite://{}/orgata.db?mode=rwc", directory.path().display()), None),
                Store::Postgres => (postgres_url(database_url), Some(schema_name())),
            };
            let server = start_server(&orgata, &url, schema.as_deref()).await?;
            let figures = pbj(std::slice::from_ref(&server), protocol, executions, concurrency).await?;
            let mut report = json!({
                "scenario": "pbj", "store": format!("{store:?}").to_lowercase(), "protocol": format!("{protocol:?}").to_lowercase(),
                "executions": executions, "concurrency": concurrency,
            });
            merge(&mut report, figures);
            println!("{report}");
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
                let mut report = json!({
                    "scenario": "replicas", "store": "postgres", "protocol": "graphql", "replicas": count,
                    "executions": executions, "concurrency": concurrency,
                });
                merge(&mut report, figures);
                println!("{report}");
            }
        }
    }
    Ok(())
}

fn merge(report: &mut Value, figures: Value) {
    if let (Value::Object(report), Value::Object(figures)) = (report, figures) {
        report.extend(figures);
    }
}
