//! Several server processes on one PostgreSQL database: work started on any replica, events
//! seen on any other, answers given on a third; and a replica killed mid-step whose work the
//! others finish. Replicas need PostgreSQL, so these run when `ORGATA_TEST_DATABASE_URL` is
//! set, as `.ci/run` does; on SQLite alone they say so and stop.

#[path = "common/mcp_client.rs"]
mod mcp_client;
#[path = "common/server.rs"]
mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use server::{GraphQLWs, PATIENCE, wait_until};

struct Replica {
    base: String,
    child: tokio::process::Child,
}

fn database() -> Option<String> {
    std::env::var("ORGATA_TEST_DATABASE_URL").ok().filter(|url| !url.is_empty())
}

async fn replica(url: &str, schema: &str) -> Replica {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgata"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--lease-seconds", "2", "--pool-size", "6"])
        .args(["--database-url", url, "--database-schema", schema])
        .args(["--examples-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/examples")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("a replica starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let address = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("a line");
        if let Some(found) = line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next()) {
            break found.to_owned();
        }
    };
    // Keep draining the log so the replica never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Replica { base: format!("http://{address}"), child }
}

async fn graphql(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> Value {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

async fn wait_status(client: &reqwest::Client, base: &str, id: &str, status: &str) -> Value {
    wait_until(Duration::from_secs(30), &format!("{id} to become {status}"), || async {
        let data = graphql(
            client,
            base,
            "query($id: ID!) { execution(id: $id) { status output lastSeq history { seq type step } } }",
            json!({"id": id}),
        )
        .await;
        (data["execution"]["status"] == status).then(|| data["execution"].clone())
    })
    .await
}

/// History is gapless and, since nobody steered these executions, no step completed twice.
fn assert_sound(execution: &Value) {
    let history = execution["history"].as_array().expect("history");
    for (index, event) in history.iter().enumerate() {
        assert_eq!(event["seq"], index as i64 + 1, "seq gap: {history:?}");
    }
    let mut completed = std::collections::HashSet::new();
    for event in history.iter().filter(|event| event["type"] == "STEP_COMPLETED") {
        assert!(completed.insert(event["step"].to_string()), "{} completed twice", event["step"]);
    }
}

#[tokio::test]
async fn three_replicas_share_work_events_and_answers() {
    let Some(url) = database() else {
        eprintln!("replicas need PostgreSQL: set ORGATA_TEST_DATABASE_URL (as .ci/run does)");
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let replicas = [replica(&url, &schema).await, replica(&url, &schema).await, replica(&url, &schema).await];
    let client = reqwest::Client::new();
    let start = "mutation { executePlaybook(input: {runtimeId: \"kitchen-v1\", playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }";

    // A subscriber on replica 1 follows an execution that replica 0 starts and works.
    let watched = graphql(&client, &replicas[0].base, start, json!({})).await["executePlaybook"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut socket = GraphQLWs::connect(&replicas[1].base, "graphql-transport-ws").await;
    socket
        .subscribe(
            "1",
            "subscription($id: ID!) { executionEvents(executionId: $id) { seq type } }",
            json!({"id": watched}),
        )
        .await;
    let mut seen = Vec::new();
    loop {
        let event = socket.next_data().await["executionEvents"].clone();
        seen.push(event["seq"].as_i64().expect("seq"));
        if event["type"] == "INTERVENTION_REQUESTED" {
            break;
        }
    }

    let mut ids = vec![watched.clone()];
    for index in 1..24 {
        let base = &replicas[index % 3].base;
        ids.push(
            graphql(&client, base, start, json!({})).await["executePlaybook"]["id"].as_str().expect("id").to_owned(),
        );
    }
    // Every answer is given on replica 2.
    for id in &ids {
        let intervention = wait_until(PATIENCE, &format!("{id} to wait for the cook"), || async {
            let data = graphql(
                &client,
                &replicas[2].base,
                "query($id: ID!) { execution(id: $id) { interventions(status: PENDING) { id } } }",
                json!({"id": id}),
            )
            .await;
            data["execution"]["interventions"][0]["id"].as_str().map(str::to_owned)
        })
        .await;
        graphql(
            &client,
            &replicas[2].base,
            "mutation($id: ID!, $i: ID!) { respondToIntervention(input: {executionId: $id, interventionId: $i, response: {jelly_flavor: \"grape\"}}) { id } }",
            json!({"id": id, "i": intervention}),
        )
        .await;
    }
    for id in &ids {
        let done = wait_status(&client, &replicas[(ids.len()) % 3].base, id, "COMPLETED").await;
        assert_eq!(done["output"]["flavor"], "grape");
        assert_sound(&done);
    }
    // The subscriber on replica 1 saw every event of the watched execution, in order, once.
    let total =
        wait_status(&client, &replicas[1].base, &watched, "COMPLETED").await["lastSeq"].as_i64().expect("lastSeq");
    while seen.len() < total as usize {
        seen.push(socket.next_data().await["executionEvents"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_killed_replicas_work_is_finished_by_the_others() {
    let Some(url) = database() else {
        eprintln!("replicas need PostgreSQL: set ORGATA_TEST_DATABASE_URL (as .ci/run does)");
        return;
    };
    // A slow receiver, so that the doomed replica is mid-step when it dies.
    let keys = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (seen, counted) = (keys.clone(), arrived.clone());
    let router = axum::Router::new().route(
        "/crm/accounts",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let (seen, counted) = (seen.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // The slowness is the point: the replica dies while calls are in flight.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let key =
                    headers.get("idempotency-key").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
                *seen.lock().expect("lock").entry(key).or_default() += 1;
                Json(json!({"accountId": body["company"]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut doomed = replica(&url, &schema).await;
    let survivors = [replica(&url, &schema).await, replica(&url, &schema).await];
    let client = reqwest::Client::new();
    let source = format!(
        "package: hooks\nversion: 1.0.0\nplaybooks:\n  - name: main\n    steps:\n      - {{name: create, kind: webhook, url: '{hook}/crm/accounts', input: '{{company: .input.company}}', on_failure: {{retry: {{max_attempts: 3}}}}}}\n      - {{name: done, kind: transform, program: '{{ok: true}}'}}\n"
    );
    graphql(
        &client,
        &doomed.base,
        "mutation($s: String!) { deployRuntime(input: {environment: DEVELOPMENT, source: $s}) { id } }",
        json!({"s": source}),
    )
    .await;
    let mut ids = Vec::new();
    for index in 0..12 {
        let data = graphql(
            &client,
            &doomed.base,
            "mutation($c: JSON!) { executePlaybook(input: {runtimeId: \"hooks-v1\", playbook: \"main\", input: $c}) { id } }",
            json!({"c": {"company": format!("c{index}")}}),
        )
        .await;
        ids.push(data["executePlaybook"]["id"].as_str().expect("id").to_owned());
    }
    // Once the doomed replica has claimed work and its calls are in flight, SIGKILL it.
    wait_until(PATIENCE, "a webhook call to arrive", || async { (arrived.load(Ordering::SeqCst) > 0).then_some(()) })
        .await;
    doomed.child.start_kill().expect("SIGKILL");
    let _ = doomed.child.wait().await;
    for id in &ids {
        let done = wait_status(&client, &survivors[0].base, id, "COMPLETED").await;
        assert_eq!(done["output"], json!({"ok": true}));
        assert_sound(&done);
    }
    // At least once: a step cut short is called again, with the same idempotency key.
    let keys = keys.lock().expect("lock").clone();
    for id in &ids {
        assert!(keys.contains_key(&format!("{id}:create:1")), "{id} never reached the receiver: {keys:?}");
    }
}

#[tokio::test]
async fn a_sampling_client_on_one_replica_answers_an_agent_step_run_on_another() {
    let Some(url) = database() else {
        eprintln!("replicas need PostgreSQL: set ORGATA_TEST_DATABASE_URL (as .ci/run does)");
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let worker = replica(&url, &schema).await;
    let sampler_host = replica(&url, &schema).await;
    let model = mcp_client::scripted(None, Some(r#"{"category": "software", "flagged": false}"#.to_owned()), None);
    let sampler = mcp_client::connect_with(&sampler_host.base, "2025-11-25", None, model).await.expect("connects");
    let client = reqwest::Client::new();
    // The execution starts and its agent step runs on the worker replica; the model is
    // reached through the other replica's session.
    let started = graphql(
        &client,
        &worker.base,
        "mutation { executePlaybook(input: {runtimeId: \"expenses-v2\", playbook: \"approve-expense\", input: {employee: \"Di\", description: \"IDE licence\", amount: 120, currency: \"EUR\"}}) { id } }",
        json!({}),
    )
    .await;
    let id = started["executePlaybook"]["id"].as_str().expect("id").to_owned();
    let done = wait_status(&client, &worker.base, &id, "COMPLETED").await;
    assert_eq!(done["output"], json!({"decision": "paid", "category": "software"}));
    assert_sound(&done);
    sampler.cancel().await.expect("closed");
}
