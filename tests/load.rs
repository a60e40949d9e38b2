//! Load: a real server process under a steady mixed load on loopback — starts, answers, reads
//! and subscriptions — for a bounded time, with its resident memory (`VmRSS`) measured at a
//! warm baseline, during the load, and after it stops. Memory must come back near the baseline:
//! within max(20 MB, 25 %) of it, since allocators keep some of what they were given. Timings
//! are never asserted.
//!
//! Short by default (4 s of load after 3 s of warm-up); `ORGATA_LOAD_SECONDS=60` for the long form. On
//! PostgreSQL when `ORGATA_TEST_DATABASE_URL` is set.

#[path = "common/process.rs"]
mod process;
#[path = "common/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use process::{Database, Process};
use server::GraphQLWs;

const CLIENTS: usize = 8;

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    completed: AtomicU64,
    subscriptions: AtomicU64,
    reads: AtomicU64,
}

async fn graphql(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> Value {
    let body = process::graphql(client, base, query, variables).await.expect("the server answers");
    assert!(body.get("errors").is_none_or(Value::is_null), "{query}: {body}");
    body["data"].clone()
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.expect("the server answers");
    assert!(response.status().is_success(), "GET {url}: HTTP {}", response.status());
    response.json().await.expect("JSON")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// A WebSocket subscription to the end, then closed properly.
    Subscription,
    /// A subscription dropped without a goodbye once the execution parks; then long-polling.
    AbandonedSubscription,
    /// Long-polling REST.
    LongPoll,
}

async fn wait_while_running(client: &reqwest::Client, base: &str, id: &str) -> String {
    let mut status = String::new();
    for _ in 0..30 {
        let execution = get(client, format!("{base}/api/v1/executions/{id}?wait=10")).await;
        status = execution["status"].as_str().unwrap_or_default().to_owned();
        if status != "RUNNING" {
            break;
        }
    }
    status
}

/// One pbj-sandwich from start to completion, followed as `follow` says, with reads in
/// between.
async fn one_sandwich(client: &reqwest::Client, base: &str, follow: Follow, counts: &Counts) {
    let started = graphql(
        client,
        base,
        "mutation { executePlaybook(input: {runtimeId: \"kitchen-v1\", playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }",
        json!({}),
    )
    .await;
    let id = started["executePlaybook"]["id"].as_str().expect("id").to_owned();
    counts.started.fetch_add(1, Ordering::Relaxed);
    let mut socket = None;
    if follow != Follow::LongPoll {
        let mut ws = GraphQLWs::connect(base, "graphql-transport-ws").await;
        ws.subscribe(
            "1",
            "subscription($id: ID!) { executionEvents(executionId: $id) { seq type step payload } }",
            json!({"id": id}),
        )
        .await;
        loop {
            let event = ws.next_data().await["executionEvents"].clone();
            if event["type"] == "INTERVENTION_REQUESTED" {
                break;
            }
        }
        counts.subscriptions.fetch_add(1, Ordering::Relaxed);
        if follow == Follow::Subscription {
            socket = Some(ws);
        }
    } else {
        assert_eq!(wait_while_running(client, base, &id).await, "WAITING", "{id} should wait for the cook");
    }
    // Reads of the kinds a frontend makes.
    graphql(
        client,
        base,
        "query($id: ID!) { execution(id: $id) { id status currentStep steps history { seq type } checkpoints { seq step } } }",
        json!({"id": id}),
    )
    .await;
    graphql(client, base, "{ executions(first: 20) { edges { node { id status } } } interventions(first: 20) { id prompt fields { name } } }", json!({})).await;
    let pending = get(client, format!("{base}/api/v1/executions/{id}/interventions?status=PENDING")).await;
    counts.reads.fetch_add(3, Ordering::Relaxed);
    let intervention = pending[0]["id"].as_str().expect("a pending intervention").to_owned();
    let response = client
        .post(format!("{base}/api/v1/executions/{id}/interventions/{intervention}"))
        .json(&json!({"response": {"jelly_flavor": "grape"}}))
        .send()
        .await
        .expect("the answer is answered");
    assert!(response.status().is_success(), "answering {id}: HTTP {}", response.status());
    match socket {
        Some(mut ws) => {
            loop {
                let event = ws.next_data().await["executionEvents"].clone();
                if event["type"] == "EXECUTION_COMPLETED" {
                    break;
                }
            }
            ws.close().await;
        }
        None => assert_eq!(wait_while_running(client, base, &id).await, "COMPLETED", "{id} should complete"),
    }
    counts.completed.fetch_add(1, Ordering::Relaxed);
}

/// Runs `CLIENTS` clients until `stop`; half subscribe (every third subscription is
/// abandoned), half long-poll.
async fn load(base: String, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (base, stop, counts) = (base.clone(), stop.clone(), counts.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    let follow = match (index % 2, round % 3) {
                        (1, _) => Follow::LongPoll,
                        (_, 2) => Follow::AbandonedSubscription,
                        _ => Follow::Subscription,
                    };
                    one_sandwich(&client, &base, follow, &counts).await;
                    round += 1;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client ran without failing");
    }
}

fn seconds(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().filter(|value| !value.is_empty()).map_or(default, |value| {
        value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a whole number of seconds"))
    })
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// The median of a few samples a little apart.
async fn steady_rss(server: &Process) -> u64 {
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(server.rss_kb());
        // Samples spaced in time are the measurement, not a wait for something.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_near_its_baseline_after_a_steady_load() {
    let duration = seconds("ORGATA_LOAD_SECONDS", 4);
    let warm_up = seconds("ORGATA_LOAD_WARM_UP_SECONDS", (duration / 2).clamp(3, 20));
    let database = Database::fresh();
    let server = Process::spawn(&database, &[]).await;
    let started = server.rss_kb();

    // Warm up the same paths, so that pools, caches and the allocator reach their working size.
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let warming = tokio::spawn(load(server.base.clone(), stop.clone(), counts.clone()));
    // The warm-up lasts a set time: its length is part of the measurement.
    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    stop.store(true, Ordering::Relaxed);
    warming.await.expect("the warm-up ran");
    let warmed = counts.completed.load(Ordering::Relaxed);
    // A quiet spell before the baseline, so that it is measured at rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = steady_rss(&server).await;

    // The load, with memory sampled throughout.
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(server.base.clone(), stop.clone(), counts.clone()));
    let until = tokio::time::Instant::now() + Duration::from_secs(duration);
    let mut peak = 0;
    let mut samples = Vec::new();
    while tokio::time::Instant::now() < until {
        let rss = server.rss_kb();
        peak = peak.max(rss);
        samples.push(rss);
        // The sampling interval of the measurement.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    running.await.expect("the load ran");
    let mean = samples.iter().sum::<u64>() / samples.len().max(1) as u64;

    // Give the server a few seconds to let go; then it must be near its baseline.
    let tolerance = (20 * 1024).max(baseline / 4);
    let mut after = steady_rss(&server).await;
    for _ in 0..10 {
        if after <= baseline + tolerance {
            break;
        }
        // Memory may take a while to be given back: this is a bounded wait on the measurement,
        // whose outcome the assertion below judges.
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = steady_rss(&server).await;
    }
    let completed = counts.completed.load(Ordering::Relaxed);
    println!(
        "load on {} for {duration} s after {warm_up} s of warm-up ({warmed} executions): {} executions started, {completed} completed, {} followed by subscription, {} reads; RSS at start {}, warm baseline {}, during load mean {} and peak {}, after {} (tolerance {}, limit {})",
        database.store(),
        counts.started.load(Ordering::Relaxed),
        counts.subscriptions.load(Ordering::Relaxed),
        counts.reads.load(Ordering::Relaxed),
        mb(started),
        mb(baseline),
        mb(mean),
        mb(peak),
        mb(after),
        mb(tolerance),
        mb(baseline + tolerance),
    );
    assert_eq!(counts.started.load(Ordering::Relaxed), completed, "every execution started under load completed");
    assert!(completed > 0, "the load ran no execution to completion");
    assert!(
        after <= baseline + tolerance,
        "resident memory stayed at {} after the load, more than {} above its warm baseline of {}",
        mb(after),
        mb(tolerance),
        mb(baseline)
    );
    let complaints = server.kill().await;
    assert!(complaints.is_empty(), "the server complained under load:\n{}", complaints.join("\n"));
}
