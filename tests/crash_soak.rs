//! Crash soak: a real server process runs two workloads — `pbj-sandwich` (a person chooses the
//! jelly) and a package of our own with webhooks around a person's approval — and is sent
//! SIGKILL at random moments and restarted on the same database, again and again. Afterwards
//! every acknowledged start and answer must have taken effect, every history must be gapless
//! with each step completed once, and the webhook receiver must have applied each side effect
//! once per `Idempotency-Key`, the key of the attempt that completed.
//!
//! Some cycles also kill a server while it starts (migrating, deploying, recovering).
//!
//! Short by default (3 kills); `ORGATA_SOAK_CYCLES=20` for the long form. Randomness (what each
//! client does, when the server dies) comes from a seed printed at the start; rerun a failure
//! with `ORGATA_SOAK_SEED`. On PostgreSQL when `ORGATA_TEST_DATABASE_URL` is set, like the other
//! database suites.

#[path = "common/process.rs"]
mod process;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use process::{Database, Process, graphql};

/// Concurrent clients while the server is up.
const CLIENTS: usize = 8;

const START: &str = "mutation($runtime: String!, $playbook: String!, $input: JSON, $key: String) { executePlaybook(input: {runtimeId: $runtime, playbook: $playbook, input: $input, idempotencyKey: $key}) { id } }";
const LOOK: &str = "query($id: ID!) { execution(id: $id) { status interventions(status: PENDING) { id step } } }";
const ANSWER: &str = "mutation($id: ID!, $intervention: ID!, $response: JSON!) { respondToIntervention(input: {executionId: $id, interventionId: $intervention, response: $response}) { id } }";
const RECORD: &str = "query($id: ID!) { execution(id: $id) { id status output idempotencyKey lastSeq history(first: 10000) { seq type step payload } interventions { id step status response } } }";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// `kitchen-v1` / `pbj-sandwich`: transform, human, transform, transform.
    Pbj,
    /// Our package: webhook, human, webhook, transform.
    Hooks,
}

impl Flow {
    fn steps(self) -> &'static [&'static str] {
        match self {
            Flow::Pbj => &["gather-ingredients", "choose-jelly", "assemble-sandwich", "cleanup"],
            Flow::Hooks => &["reserve", "approve", "charge", "receipt"],
        }
    }

    fn human_step(self) -> &'static str {
        match self {
            Flow::Pbj => "choose-jelly",
            Flow::Hooks => "approve",
        }
    }
}

/// The package with webhooks; `{hook}` is the receiver's base URL.
const HOOKS_PACKAGE: &str = r#"package: soak
version: 1.0.0
description: Webhooks around a person's approval, for the crash soak.
roles:
  - name: clerk
    description: Approves orders
playbooks:
  - name: hooks
    role: clerk
    input_schema:
      type: object
      required: [order]
      properties:
        order: {type: string}
    steps:
      - name: reserve
        kind: webhook
        url: '{hook}/hooks/reserve'
        input: '{order: .input.order}'
      - name: approve
        kind: human
        prompt: 'Approve order {{ .input.order }}?'
        output_schema:
          type: object
          required: [approver]
          properties:
            approver: {type: string}
      - name: charge
        kind: webhook
        url: '{hook}/hooks/charge'
        input: '{order: .input.order, reservation: .steps.reserve.effect, approver: .steps.approve.approver}'
      - name: receipt
        kind: transform
        program: '{order: .input.order, reservation: .steps.reserve.effect, charge: .steps.charge.effect, approver: .steps.approve.approver}'
"#;

// ----- The webhook receiver -----------------------------------------------------------------

/// A side effect the receiver applied: the first delivery of its key.
struct Effect {
    hook: String,
    body: Value,
    reply: Value,
}

/// What the receiver saw. A delivery whose key it has applied before is an idempotent replay:
/// it answers with the first reply and applies nothing.
#[derive(Default)]
struct Receiver {
    applied: HashMap<String, Effect>,
    /// Keys in the order their effects were applied; one entry per application.
    ledger: Vec<String>,
    /// Every delivery per key, the first included.
    deliveries: HashMap<String, u64>,
    /// Replays whose hook or body differed from the applied delivery's.
    mismatched: Vec<String>,
    /// Deliveries without an `Idempotency-Key`.
    unkeyed: u64,
}

type Shared<T> = Arc<Mutex<T>>;

async fn receive(
    State(receiver): State<Shared<Receiver>>,
    Path(hook): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let key = headers.get("idempotency-key").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let Some(key) = key else {
        receiver.lock().expect("lock").unkeyed += 1;
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "an Idempotency-Key is required"})));
    };
    let reply = {
        let mut receiver = receiver.lock().expect("lock");
        *receiver.deliveries.entry(key.clone()).or_default() += 1;
        match receiver.applied.get(&key) {
            Some(effect) => {
                let reply = effect.reply.clone();
                let mismatch = (effect.hook != hook || effect.body != body)
                    .then(|| format!("{key}: first {} {}, then {hook} {body}", effect.hook, effect.body));
                receiver.mismatched.extend(mismatch);
                reply
            }
            None => {
                let reply = json!({"effect": format!("{hook}-{}", receiver.ledger.len() + 1), "key": key});
                receiver.applied.insert(key.clone(), Effect { hook, body, reply: reply.clone() });
                receiver.ledger.push(key.clone());
                reply
            }
        }
    };
    // A little latency after the effect, so that kills land between it and the engine's commit.
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    tokio::time::sleep(Duration::from_millis(hasher.finish() % 30)).await;
    (StatusCode::OK, Json(reply))
}

// ----- What the clients were told -------------------------------------------------------------

#[derive(Clone)]
struct Start {
    key: String,
    flow: Flow,
    input: Value,
}

struct Tracked {
    flow: Flow,
    key: String,
    /// What this execution's person answers.
    response: Value,
    /// The intervention an answer was last sent to.
    answered: Option<String>,
    /// The intervention whose answer the server acknowledged.
    acknowledged: Option<String>,
}

#[derive(Default)]
struct Ledger {
    starts: Vec<Start>,
    /// Starts sent without an acknowledgement; retried with the same idempotency key.
    unacknowledged: VecDeque<usize>,
    executions: BTreeMap<String, Tracked>,
    /// Acknowledged executions whose answer was not acknowledged yet.
    to_answer: VecDeque<String>,
    /// Errors the server answered with (any is a failure).
    anomalies: Vec<String>,
    start_requests: u64,
    start_retries: u64,
    answer_requests: u64,
    answers_acknowledged: u64,
}

/// The server died under the request: the client stops for this cycle.
struct Gone;

fn data_of(ledger: &Shared<Ledger>, what: &str, body: Value) -> Option<Value> {
    match body.get("errors") {
        Some(errors) if !errors.is_null() => {
            ledger.lock().expect("lock").anomalies.push(format!("{what}: {errors}"));
            None
        }
        _ => Some(body["data"].clone()),
    }
}

/// One start: a new one or a retry of one whose acknowledgement was lost.
async fn start_one(
    client: &reqwest::Client,
    base: &str,
    ledger: &Shared<Ledger>,
    runtime: &str,
    index: usize,
) -> Result<(), Gone> {
    let start = ledger.lock().expect("lock").starts[index].clone();
    let (runtime, playbook) = match start.flow {
        Flow::Pbj => ("kitchen-v1", "pbj-sandwich"),
        Flow::Hooks => (runtime, "hooks"),
    };
    let variables = json!({"runtime": runtime, "playbook": playbook, "input": start.input, "key": start.key});
    ledger.lock().expect("lock").start_requests += 1;
    let body = match graphql(client, base, START, variables).await {
        Ok(body) => body,
        Err(_) => {
            ledger.lock().expect("lock").unacknowledged.push_back(index);
            return Err(Gone);
        }
    };
    let Some(data) = data_of(ledger, &format!("start {}", start.key), body) else {
        ledger.lock().expect("lock").unacknowledged.push_back(index);
        return Ok(());
    };
    let id = data["executePlaybook"]["id"].as_str().expect("an execution id").to_owned();
    let mut ledger = ledger.lock().expect("lock");
    let response = match start.flow {
        Flow::Pbj => json!({"jelly_flavor": "grape"}),
        Flow::Hooks => json!({"approver": format!("approver of {}", start.key)}),
    };
    if let Some(previous) = ledger.executions.get(&id) {
        let message = format!("start {} acknowledged as {id}, already acknowledged for {}", start.key, previous.key);
        ledger.anomalies.push(message);
        return Ok(());
    }
    ledger
        .executions
        .insert(id.clone(), Tracked { flow: start.flow, key: start.key, response, answered: None, acknowledged: None });
    ledger.to_answer.push_back(id);
    Ok(())
}

/// Looks at an execution waiting for its answer and answers it if it is parked.
async fn answer_one(client: &reqwest::Client, base: &str, ledger: &Shared<Ledger>, id: String) -> Result<(), Gone> {
    let requeue = |ledger: &Shared<Ledger>, id: String| ledger.lock().expect("lock").to_answer.push_back(id);
    let body = match graphql(client, base, LOOK, json!({"id": id})).await {
        Ok(body) => body,
        Err(_) => {
            requeue(ledger, id);
            return Err(Gone);
        }
    };
    let Some(data) = data_of(ledger, &format!("look at {id}"), body) else {
        requeue(ledger, id);
        return Ok(());
    };
    let execution = &data["execution"];
    match execution["status"].as_str() {
        // Answered already (an acknowledgement was lost), or finishing.
        Some("COMPLETED") => Ok(()),
        Some("RUNNING") => {
            requeue(ledger, id);
            // Pacing of the load client, which looks again later; nothing waits on it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        }
        Some("WAITING") => {
            let Some(intervention) = execution["interventions"][0]["id"].as_str() else {
                ledger.lock().expect("lock").anomalies.push(format!("{id} is WAITING with nothing pending"));
                requeue(ledger, id);
                return Ok(());
            };
            let response = {
                let mut ledger = ledger.lock().expect("lock");
                ledger.answer_requests += 1;
                let tracked = ledger.executions.get_mut(&id).expect("tracked");
                tracked.answered = Some(intervention.to_owned());
                tracked.response.clone()
            };
            let variables = json!({"id": id, "intervention": intervention, "response": response});
            let body = match graphql(client, base, ANSWER, variables).await {
                Ok(body) => body,
                Err(_) => {
                    requeue(ledger, id);
                    return Err(Gone);
                }
            };
            if data_of(ledger, &format!("answer {id}"), body).is_none() {
                requeue(ledger, id);
                return Ok(());
            }
            let mut ledger = ledger.lock().expect("lock");
            ledger.answers_acknowledged += 1;
            ledger.executions.get_mut(&id).expect("tracked").acknowledged = Some(intervention.to_owned());
            Ok(())
        }
        other => {
            ledger.lock().expect("lock").anomalies.push(format!("{id} is {other:?}"));
            Ok(())
        }
    }
}

/// A client: retries lost starts first, then starts new executions and answers parked ones.
async fn client(base: String, ledger: Shared<Ledger>, runtime: String, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    while !stop.load(Ordering::Relaxed) {
        let (retry, backlog) = {
            let mut ledger = ledger.lock().expect("lock");
            (ledger.unacknowledged.pop_front(), ledger.to_answer.len())
        };
        let outcome = if let Some(index) = retry {
            ledger.lock().expect("lock").start_retries += 1;
            start_one(&client, &base, &ledger, &runtime, index).await
        } else if backlog == 0 || rng.random_bool(if backlog > 4 * CLIENTS { 0.1 } else { 0.5 }) {
            let index = {
                let mut ledger = ledger.lock().expect("lock");
                let index = ledger.starts.len();
                let flow = if rng.random_bool(0.5) { Flow::Pbj } else { Flow::Hooks };
                let key = format!("soak-{seed:x}-{index}");
                let input = match flow {
                    Flow::Pbj => json!({"sandwichType": if rng.random_bool(0.5) { "classic" } else { "deluxe" }}),
                    Flow::Hooks => json!({"order": key}),
                };
                ledger.starts.push(Start { key, flow, input });
                index
            };
            start_one(&client, &base, &ledger, &runtime, index).await
        } else {
            let id = ledger.lock().expect("lock").to_answer.pop_front();
            match id {
                Some(id) => answer_one(&client, &base, &ledger, id).await,
                None => Ok(()),
            }
        };
        if outcome.is_err() {
            return;
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().filter(|value| !value.is_empty()).map(|value| {
        let value = value.trim();
        value
            .strip_prefix("0x")
            .map_or_else(|| value.parse(), |hex| u64::from_str_radix(hex, 16))
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_servers_lose_and_duplicate_nothing() {
    let cycles = env_u64("ORGATA_SOAK_CYCLES").unwrap_or(3);
    let seed = env_u64("ORGATA_SOAK_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    let database = Database::fresh();
    println!(
        "crash soak on {}: seed {seed} (rerun with ORGATA_SOAK_SEED={seed}), {cycles} kill cycles",
        database.store()
    );
    let mut rng = StdRng::seed_from_u64(seed);

    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let router = axum::Router::new().route("/hooks/{hook}", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let hook = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The receiver, and the address the onboarding example names (so that it deploys quietly).
    let allow = format!("development={hook}/hooks/,development=http://127.0.0.1:9090/crm/");
    let arguments = ["--lease-seconds", "2", "--webhook-allow", &allow];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut complaints = Vec::new();
    let mut runtime = String::new();

    let mut startup_kills = 0;
    for cycle in 1..=cycles {
        // Sometimes a server dies while it starts: migrating, deploying the examples, recovering.
        if rng.random_bool(0.25) {
            let mut starting = Process::launch(&database, &arguments);
            let after = rng.random_range(0..400u64);
            // The random moment of the kill is what the soak tests.
            tokio::time::sleep(Duration::from_millis(after)).await;
            starting.start_kill().expect("SIGKILL sent");
            let _ = starting.wait().await;
            startup_kills += 1;
            println!("cycle {cycle}: SIGKILL {after} ms into start-up");
        }
        let server = Process::spawn(&database, &arguments).await;
        if runtime.is_empty() {
            let source = HOOKS_PACKAGE.replace("{hook}", &hook);
            let client = reqwest::Client::new();
            let body = graphql(
                &client,
                &server.base,
                "mutation($s: String!) { deployRuntime(input: {environment: DEVELOPMENT, source: $s}) { id } }",
                json!({"s": source}),
            )
            .await
            .expect("the deployment is answered");
            assert!(body.get("errors").is_none(), "deploying the webhook package: {body}");
            runtime = body["data"]["deployRuntime"]["id"].as_str().expect("runtime id").to_owned();
        }
        // Mostly mid-load; sometimes right after start-up, while recovery is under way.
        let kill_after =
            if rng.random_bool(0.2) { rng.random_range(0..150u64) } else { rng.random_range(150..1500u64) };
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let seed = rng.random::<u64>();
                tokio::spawn(client(server.base.clone(), ledger.clone(), runtime.clone(), stop.clone(), seed))
            })
            .collect();
        // The random moment of the kill is what the soak tests.
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        complaints.extend(server.kill().await);
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.expect("a client ran without panicking");
        }
        let ledger = ledger.lock().expect("lock");
        println!(
            "cycle {cycle}: SIGKILL after {kill_after} ms; {} executions acknowledged, {} starts unacknowledged, {} answers acknowledged, {} webhook effects",
            ledger.executions.len(),
            ledger.unacknowledged.len(),
            ledger.answers_acknowledged,
            receiver.lock().expect("lock").ledger.len(),
        );
    }

    // The last restart: retry the lost starts, answer whatever still waits, and let all finish.
    let server = Process::spawn(&database, &arguments).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    loop {
        let index = ledger.lock().expect("lock").unacknowledged.pop_front();
        let Some(index) = index else { break };
        ledger.lock().expect("lock").start_retries += 1;
        assert!(start_one(&client, &server.base, &ledger, &runtime, index).await.is_ok(), "the final server answers");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let waiting: Vec<String> = ledger.lock().expect("lock").to_answer.drain(..).collect();
        if waiting.is_empty() {
            break;
        }
        for id in waiting {
            assert!(answer_one(&client, &server.base, &ledger, id).await.is_ok(), "the final server answers");
        }
        assert!(tokio::time::Instant::now() < deadline, "executions still unanswered after 2 minutes");
        let anomalies = ledger.lock().expect("lock").anomalies.len();
        assert!(
            anomalies < 1000,
            "the server keeps answering with errors: {:?}",
            ledger.lock().expect("lock").anomalies
        );
    }

    // Every execution the database holds, through the API.
    let mut stored: Vec<Value> = Vec::new();
    for runtime in ["kitchen-v1", runtime.as_str()] {
        let mut after: Option<String> = None;
        loop {
            let body = graphql(
                &client,
                &server.base,
                "query($r: String!, $after: String) { executions(filter: {runtimeId: $r}, first: 100, after: $after) { edges { node { id idempotencyKey } } pageInfo { hasNextPage endCursor } } }",
                json!({"r": runtime, "after": after}),
            )
            .await
            .expect("listing answered");
            assert!(body.get("errors").is_none(), "{body}");
            let page = &body["data"]["executions"];
            stored.extend(page["edges"].as_array().expect("edges").iter().map(|edge| edge["node"].clone()));
            if page["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    // Wait for every execution to complete, then check each one's record.
    let mut failures: Vec<String> = Vec::new();
    let ledger = Arc::try_unwrap(ledger).ok().expect("clients are done").into_inner().expect("lock");
    failures.extend(ledger.anomalies.iter().map(|anomaly| format!("server error: {anomaly}")));
    let stored_ids: HashSet<String> = stored.iter().map(|node| node["id"].as_str().expect("id").to_owned()).collect();
    let mut keys_seen = HashMap::new();
    for node in &stored {
        let id = node["id"].as_str().expect("id");
        if !ledger.executions.contains_key(id) {
            failures
                .push(format!("{id} is stored but no start of it was acknowledged (key {})", node["idempotencyKey"]));
        }
        if let Some(previous) = keys_seen.insert(node["idempotencyKey"].to_string(), id.to_owned()) {
            failures.push(format!("idempotency key {} started both {previous} and {id}", node["idempotencyKey"]));
        }
    }
    let started_keys: HashSet<&str> = ledger.starts.iter().map(|start| start.key.as_str()).collect();
    let mut events = 0usize;
    let mut webhook_keys = 0usize;
    let mut answers_checked = 0usize;
    let mut answers_unacknowledged_effective = 0usize;
    let mut completed_keys: HashSet<String> = HashSet::new();
    for (id, tracked) in &ledger.executions {
        if !stored_ids.contains(id) {
            failures.push(format!("{id} (key {}) was acknowledged but is not stored", tracked.key));
            continue;
        }
        if !started_keys.contains(tracked.key.as_str()) {
            failures.push(format!("{id} has a key nobody sent: {}", tracked.key));
        }
        let record = loop {
            let body = graphql(&client, &server.base, RECORD, json!({"id": id})).await.expect("record answered");
            assert!(body.get("errors").is_none(), "{body}");
            let record = body["data"]["execution"].clone();
            // A bounded poll that does not panic: an execution never completed is reported
            // with the other findings by `check_execution`.
            if record["status"] == "COMPLETED" || tokio::time::Instant::now() > deadline {
                break record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let problems = check_execution(id, tracked, &record, &receiver.lock().expect("lock"), &mut completed_keys);
        failures.extend(problems);
        let history = record["history"].as_array().map_or(0, Vec::len);
        events += history;
        webhook_keys += if tracked.flow == Flow::Hooks { 2 } else { 0 };
        if tracked.acknowledged.is_some() {
            answers_checked += 1;
        } else if tracked.answered.is_some() {
            answers_unacknowledged_effective += 1;
        }
    }

    let complaints = [complaints, server.kill().await].concat();

    // The receiver's side: exactly the completed attempts' keys were applied, each once.
    let receiver = receiver.lock().expect("lock");
    let mut applications: HashMap<&str, usize> = HashMap::new();
    for key in &receiver.ledger {
        *applications.entry(key.as_str()).or_default() += 1;
    }
    for (key, count) in &applications {
        if *count != 1 {
            failures.push(format!("the effect of {key} was applied {count} times"));
        }
        if !completed_keys.contains(*key) {
            failures.push(format!("the effect of {key} was applied, but no step completed with that key"));
        }
    }
    failures.extend(receiver.mismatched.iter().map(|replay| format!("a replay differed: {replay}")));
    if receiver.unkeyed > 0 {
        failures.push(format!("{} webhook deliveries had no Idempotency-Key", receiver.unkeyed));
    }
    let deliveries: u64 = receiver.deliveries.values().sum();
    let replays = deliveries - receiver.ledger.len() as u64;

    println!(
        "crash soak on {} (seed {seed}): {cycles} cycles ({startup_kills} more kills during start-up); {} executions ({} pbj, {} webhook) from {} start requests ({} retried after a lost acknowledgement); {} answers acknowledged and checked ({} requests; {} more took effect without an acknowledgement); {events} events; {webhook_keys} webhook keys checked, {} effects applied, {deliveries} deliveries, {replays} idempotent replays; {} server warnings",
        database.store(),
        ledger.executions.len(),
        ledger.executions.values().filter(|tracked| tracked.flow == Flow::Pbj).count(),
        ledger.executions.values().filter(|tracked| tracked.flow == Flow::Hooks).count(),
        ledger.start_requests,
        ledger.start_retries,
        answers_checked,
        ledger.answer_requests,
        answers_unacknowledged_effective,
        receiver.ledger.len(),
        complaints.len(),
    );
    for complaint in complaints.iter().take(20) {
        println!("  server: {complaint}");
    }
    assert!(
        failures.is_empty(),
        "{} problems (seed {seed}):\n{}",
        failures.len(),
        failures.iter().take(50).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(!ledger.executions.is_empty(), "the soak started nothing");
}

/// The problems with one execution's final record.
fn check_execution(
    id: &str,
    tracked: &Tracked,
    record: &Value,
    receiver: &Receiver,
    completed_keys: &mut HashSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let history = record["history"].as_array().cloned().unwrap_or_default();
    let show = || {
        history
            .iter()
            .map(|event| format!("{} {} {}", event["seq"], event["type"], event["step"]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if record["status"] != "COMPLETED" {
        problems.push(format!("{id} ended {} at {}: {}", record["status"], record["lastSeq"], show()));
        return problems;
    }
    if record["idempotencyKey"] != tracked.key.as_str() {
        problems.push(format!("{id} has idempotency key {}, not {}", record["idempotencyKey"], tracked.key));
    }
    // seq is 1..n without gaps, and n is the execution's lastSeq.
    let seqs: Vec<i64> = history.iter().map(|event| event["seq"].as_i64().unwrap_or(-1)).collect();
    if seqs != (1..=seqs.len() as i64).collect::<Vec<_>>() || record["lastSeq"] != seqs.len() as i64 {
        problems.push(format!("{id} history seq is not 1..{} (lastSeq {}): {seqs:?}", seqs.len(), record["lastSeq"]));
    }
    let count = |kind: &str, step: Option<&str>| {
        history.iter().filter(|event| event["type"] == kind && step.is_none_or(|step| event["step"] == step)).count()
    };
    if count("EXECUTION_STARTED", None) != 1 || history.first().is_none_or(|event| event["type"] != "EXECUTION_STARTED")
    {
        problems.push(format!("{id} does not start with exactly one EXECUTION_STARTED: {}", show()));
    }
    if count("EXECUTION_COMPLETED", None) != 1
        || history.last().is_none_or(|event| event["type"] != "EXECUTION_COMPLETED")
    {
        problems.push(format!("{id} does not end with exactly one EXECUTION_COMPLETED: {}", show()));
    }
    for kind in ["STEP_FAILED", "STEP_SKIPPED", "JUMPED", "RETRIED", "EXECUTION_FAILED", "EXECUTION_ABORTED"] {
        if count(kind, None) != 0 {
            problems.push(format!("{id} has {kind} though nobody steered it: {}", show()));
        }
    }
    // Nobody steered these executions, so every step completed exactly once, and was started
    // at most once per attempt.
    for step in tracked.flow.steps() {
        if count("STEP_COMPLETED", Some(step)) != 1 {
            problems.push(format!(
                "{id} completed step {step} {} times: {}",
                count("STEP_COMPLETED", Some(step)),
                show()
            ));
        }
    }
    let mut started = HashSet::new();
    for event in history.iter().filter(|event| event["type"] == "STEP_STARTED") {
        if !started.insert((event["step"].to_string(), event["payload"]["attempt"].to_string())) {
            problems.push(format!(
                "{id} started {} attempt {} twice: {}",
                event["step"],
                event["payload"]["attempt"],
                show()
            ));
        }
    }
    let completed = |step: &str| {
        history
            .iter()
            .find(|event| event["type"] == "STEP_COMPLETED" && event["step"] == step)
            .cloned()
            .unwrap_or(Value::Null)
    };

    // One intervention, answered once with this execution's answer.
    let human = tracked.flow.human_step();
    let interventions = record["interventions"].as_array().cloned().unwrap_or_default();
    let requested: Vec<&Value> = history.iter().filter(|event| event["type"] == "INTERVENTION_REQUESTED").collect();
    let resolved: Vec<&Value> = history.iter().filter(|event| event["type"] == "INTERVENTION_RESOLVED").collect();
    if interventions.len() != 1 || requested.len() != 1 || resolved.len() != 1 {
        problems.push(format!(
            "{id} has {} interventions, {} requested, {} resolved: {}",
            interventions.len(),
            requested.len(),
            resolved.len(),
            show()
        ));
    } else {
        let intervention = &interventions[0];
        let intervention_id = intervention["id"].as_str().unwrap_or_default();
        if intervention["status"] != "RESOLVED" || intervention["response"] != tracked.response {
            problems
                .push(format!("{id}'s intervention is {} with {}", intervention["status"], intervention["response"]));
        }
        if resolved[0]["payload"]["interventionId"] != intervention_id
            || resolved[0]["payload"]["response"] != tracked.response
        {
            problems.push(format!(
                "{id} resolved {} with {}",
                resolved[0]["payload"]["interventionId"], resolved[0]["payload"]["response"]
            ));
        }
        if let Some(acknowledged) = &tracked.acknowledged
            && acknowledged != intervention_id
        {
            problems.push(format!(
                "{id}: the answer to {acknowledged} was acknowledged, but {intervention_id} was resolved"
            ));
        }
        if tracked.answered.as_deref().is_some_and(|answered| answered != intervention_id) {
            problems
                .push(format!("{id}: an answer went to {:?}, but {intervention_id} was resolved", tracked.answered));
        }
    }
    let human_completed = completed(human);
    if human_completed["payload"]["output"] != tracked.response {
        problems.push(format!(
            "{id}: step {human} completed with {}, not the answer {}",
            human_completed["payload"]["output"], tracked.response
        ));
    }

    match tracked.flow {
        Flow::Pbj => {
            if record["output"] != json!({"name": "PB&J", "flavor": "grape"}) {
                problems.push(format!("{id} output {}", record["output"]));
            }
        }
        Flow::Hooks => {
            // Each webhook step completed with the reply to its attempt's key, applied once.
            let mut replies = BTreeMap::new();
            for step in ["reserve", "charge"] {
                let event = completed(step);
                let attempt = event["payload"]["attempt"].as_i64().unwrap_or(0);
                let key = format!("{id}:{step}:{attempt}");
                match receiver.applied.get(&key) {
                    None => problems.push(format!("{id}: step {step} completed, but {key} never reached the receiver")),
                    Some(effect) => {
                        let applied = receiver.ledger.iter().filter(|entry| **entry == key).count();
                        if applied != 1 {
                            problems.push(format!("{key} was applied {applied} times"));
                        }
                        if event["payload"]["output"] != effect.reply {
                            problems.push(format!(
                                "{id}: step {step} output {} but the receiver replied {}",
                                event["payload"]["output"], effect.reply
                            ));
                        }
                    }
                }
                replies.insert(step, event["payload"]["output"]["effect"].clone());
                completed_keys.insert(key);
            }
            let expected = json!({
                "order": tracked.key, "reservation": replies["reserve"], "charge": replies["charge"],
                "approver": tracked.response["approver"],
            });
            if record["output"] != expected {
                problems.push(format!("{id} output {}, expected {expected}", record["output"]));
            }
        }
    }
    problems
}
