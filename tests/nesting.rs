//! Stored data never takes the server down (issue 15, item 1), through real `orgata serve`
//! processes on SQLite, and on PostgreSQL when `ORGATA_TEST_DATABASE_URL` is set:
//!
//! - a chain of nested playbooks `p0 → p1 → … → pN` runs to completion at a depth that used to
//!   overflow a worker's stack and abort the process (and every restart after it);
//! - deploying a chain deeper than `--max-nesting-depth` is refused, naming the chain; a chain
//!   within it runs; a too-deep runtime deployed under a larger limit fails at run time, with
//!   the reason, and the server stays up;
//! - a poison execution (stored data the engine cannot process) is failed with its reason once
//!   its attempts are spent, and stays failed across restarts instead of being retried forever.

#[path = "common/process.rs"]
mod process;
#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use process::{Database, Process, graphql};
use wait::wait_until;

const DEPLOY: &str =
    "mutation($source: String!) { deployRuntime(input: {environment: DEVELOPMENT, source: $source}) { id version } }";
const START: &str = "mutation($runtime: String!, $playbook: String!) { executePlaybook(input: {runtimeId: $runtime, playbook: $playbook, input: {}}) { id status } }";
const EXECUTION: &str = "query($id: ID!) { execution(id: $id) { status output error } }";

/// A package of `depth + 1` playbooks, each calling the next; the last returns `{leaf: true}`.
fn chain(name: &str, depth: usize) -> String {
    let mut yaml = format!("package: {name}\nversion: 1.0.0\nplaybooks:\n");
    for level in 0..depth {
        yaml.push_str(&format!(
            "  - name: p{level}\n    steps:\n      - name: call\n        kind: playbook\n        playbook: p{}\n",
            level + 1
        ));
    }
    yaml.push_str(&format!(
        "  - name: p{depth}\n    steps:\n      - name: leaf\n        kind: transform\n        program: '{{leaf: true}}'\n"
    ));
    yaml
}

async fn deploy(client: &reqwest::Client, base: &str, source: &str) -> Value {
    graphql(client, base, DEPLOY, json!({"source": source})).await.expect("the server answers a deploy")
}

async fn start(client: &reqwest::Client, base: &str, runtime: &str, playbook: &str) -> String {
    let body = graphql(client, base, START, json!({"runtime": runtime, "playbook": playbook}))
        .await
        .expect("the server answers a start");
    body["data"]["executePlaybook"]["id"].as_str().unwrap_or_else(|| panic!("started: {body}")).to_owned()
}

/// Polls until the execution is finished (or `deadline` passes), and returns it.
async fn finished(client: &reqwest::Client, base: &str, id: &str, deadline: Duration) -> Value {
    wait_until(deadline, &format!("execution {id} to finish"), || async {
        let body = graphql(client, base, EXECUTION, json!({"id": id})).await.expect("the server is up");
        let execution = &body["data"]["execution"];
        ["COMPLETED", "FAILED", "ABORTED"]
            .contains(&execution["status"].as_str().unwrap_or_default())
            .then(|| execution.clone())
    })
    .await
}

fn problems(body: &Value) -> String {
    body["errors"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_playbook_chains_run_or_are_refused_and_never_crash_the_server() {
    let database = Database::fresh();
    let client = reqwest::Client::new();

    // 300 levels: enough to overflow a worker's stack before (and to outrun the 256 steps one
    // transaction runs inline, so workers finish the chain). Allowed here by a larger limit.
    let server = Process::spawn(&database, &["--no-examples", "--max-nesting-depth", "300"]).await;
    let deployed = deploy(&client, &server.base, &chain("deep", 300)).await;
    assert!(deployed["errors"].is_null(), "{deployed}");
    let id = start(&client, &server.base, "deep-v1", "p0").await;
    let done = finished(&client, &server.base, &id, Duration::from_secs(180)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["output"], json!({"leaf": true}));
    let refused = deploy(&client, &server.base, &chain("deeper", 301)).await;
    let said = problems(&refused);
    assert!(said.contains("nests playbooks 301 deep") && said.contains("at most 300"), "{refused}");
    let complaints = server.kill().await;
    assert!(!complaints.iter().any(|line| line.contains("overflow") || line.contains("panicked")), "{complaints:?}");

    // The default limit (32): one level more is refused with the chain named, the limit runs.
    let server = Process::spawn(&database, &["--no-examples"]).await;
    let refused = deploy(&client, &server.base, &chain("toodeep", 33)).await;
    let said = problems(&refused);
    assert!(
        said.contains("playbook `p0` nests playbooks 33 deep (p0 → p1 → p2 → p3 → … → p31 → p32 → p33)")
            && said.contains("at most 32 deep")
            && said.contains("--max-nesting-depth"),
        "{refused}"
    );
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_INPUT", "{refused}");
    let deployed = deploy(&client, &server.base, &chain("limit", 32)).await;
    assert!(deployed["errors"].is_null(), "{deployed}");
    let id = start(&client, &server.base, "limit-v1", "p0").await;
    let done = finished(&client, &server.base, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // The 300-deep runtime deployed under the larger limit now fails at run time, with the
    // reason, at the 33rd level; and the server is still there to say so.
    let id = start(&client, &server.base, "deep-v1", "p0").await;
    let failed = finished(&client, &server.base, &id, Duration::from_secs(60)).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("would nest executions 33 deep") && error.contains("at most 32"), "{failed}");
    let health = client.get(format!("{}/healthz", server.base)).send().await.expect("alive");
    assert!(health.status().is_success());
    server.kill().await;
}

const WAITS: &str = r#"package: waits
version: 1.0.0
roles:
  - name: clerk
playbooks:
  - name: main
    role: clerk
    steps:
      - name: ask
        kind: human
        output_schema: {type: object}
  - name: quick
    steps:
      - name: done
        kind: transform
        program: '{ok: true}'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_execution_is_failed_with_its_reason_not_retried_forever() {
    let database = Database::fresh();
    let client = reqwest::Client::new();
    let arguments = ["--no-examples", "--lease-seconds", "1"];
    let server = Process::spawn(&database, &arguments).await;
    let deployed = deploy(&client, &server.base, WAITS).await;
    assert!(deployed["errors"].is_null(), "{deployed}");
    let id = start(&client, &server.base, "waits-v1", "main").await;
    server.kill().await;

    // Stored data the engine cannot process: a RUNNING execution of a playbook its runtime
    // does not have (as an upgrade or a hand edit might leave it).
    let store = orgata::store::Store::connect(&database.url, 1, database.schema.as_deref()).await.expect("store");
    let corrupted = store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE executions SET status = 'RUNNING', playbook = 'vanished', lease_owner = NULL, lease_until = NULL \
             WHERE id = '{id}'"
        ))
        .await
        .expect("corrupted");
    assert_eq!(corrupted.rows_affected(), 1);
    drop(store);

    let server = Process::spawn(&database, &arguments).await;
    let failed = finished(&client, &server.base, &id, Duration::from_secs(60)).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the engine could not process this execution (3 attempt(s))") && error.contains("vanished"),
        "{failed}"
    );
    let complaints = server.kill().await;
    assert!(
        complaints.iter().any(|line| line.contains("failing it as poison") && line.contains(&id)),
        "the poison execution is logged: {complaints:?}"
    );

    // After another restart it stays failed: nothing picks it up again, and other work runs.
    let server = Process::spawn(&database, &arguments).await;
    let quick = start(&client, &server.base, "waits-v1", "quick").await;
    let done = finished(&client, &server.base, &quick, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let again = finished(&client, &server.base, &id, Duration::from_secs(1)).await;
    assert_eq!(again["status"], "FAILED");
    let complaints = server.kill().await;
    assert!(!complaints.iter().any(|line| line.contains(&id)), "the poison execution was retried: {complaints:?}");
}
