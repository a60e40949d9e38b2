//! The GraphQL API against a real server on a loopback port, driven by real clients: reqwest
//! over HTTP and a WebSocket client speaking both GraphQL subprotocols.

#[path = "common/server.rs"]
mod server;

use std::time::Duration;

use serde_json::{Value, json};

use server::{GraphQLWs, TestServer};

const EXECUTE: &str =
    "mutation($input: ExecutePlaybookInput!) { executePlaybook(input: $input) { id status runtimeId runtimeVersion } }";
const RESPOND: &str =
    "mutation($input: RespondToInterventionInput!) { respondToIntervention(input: $input) { id status } }";
const INTERVENE: &str =
    "mutation($input: InterveneExecutionInput!) { interveneExecution(input: $input) { id status currentStep state } }";

#[tokio::test]
async fn the_pbj_flow_over_http() {
    let server = TestServer::start().await;
    let data = server
        .data(
            r#"{ environments runtimes(environment: DEVELOPMENT) { id version environment playbooks { name } roles { name } operations { name } }
                 playbook(runtimeId: "kitchen-v1", name: "pbj-sandwich") { inputSchema fields { name type required enum widget label } steps { name kind role } }
                 role(runtimeId: "kitchen-v1", name: "cook") { capabilities }
                 operation(runtimeId: "kitchen-v1", name: "gather-ingredients") { kind outputFields { name type } }
                 me { id grants administers } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["environments"], json!(["PRODUCTION", "STAGING", "SIMULATION", "DEVELOPMENT"]));
    let ids: Vec<&str> =
        data["runtimes"].as_array().expect("list").iter().filter_map(|runtime| runtime["id"].as_str()).collect();
    assert_eq!(ids, ["expenses-v2", "inquiries-v1", "kitchen-v1", "onboarding-v1"]);
    assert_eq!(
        data["playbook"]["fields"],
        json!([{"name": "sandwichType", "type": "string", "required": true, "enum": ["classic", "deluxe"], "widget": "select", "label": "Sandwich type"}])
    );
    let steps: Vec<&str> =
        data["playbook"]["steps"].as_array().expect("steps").iter().filter_map(|step| step["name"].as_str()).collect();
    assert_eq!(steps, ["gather-ingredients", "choose-jelly", "assemble-sandwich", "cleanup"]);
    assert_eq!(data["role"]["capabilities"], json!(["food-preparation", "ingredient-gathering"]));
    assert_eq!(data["operation"]["kind"], "TRANSFORM");
    // The loopback developer: development and simulation only.
    assert_eq!(data["me"]["id"], "developer");
    assert_eq!(data["me"]["administers"], json!(["SIMULATION", "DEVELOPMENT"]));

    let id = server.start_pbj(None, "kitchen-v1").await;
    let intervention = server.pending_intervention(None, &id).await;
    assert_eq!(intervention["kind"], "TASK");
    assert_eq!(intervention["role"], "cook");
    assert_eq!(intervention["fields"][0]["enum"], json!(["grape", "strawberry", "apricot"]));
    assert_eq!(intervention["answerable"], true);
    let mine = server.data("{ interventions(filter: {mine: true, environment: DEVELOPMENT}) { id } }", json!({})).await;
    assert!(mine["interventions"].as_array().expect("list").iter().any(|found| found["id"] == intervention["id"]));

    server
        .data(RESPOND, json!({"input": {"executionId": id, "interventionId": intervention["id"], "response": {"jelly_flavor": "grape"}, "notes": "extra grape"}}))
        .await;
    let done = server.wait_status(&id, &["COMPLETED"]).await;
    assert_eq!(done["output"], json!({"name": "PB&J", "flavor": "grape"}));
    let history = server
        .data(
            "query($id: ID!) { execution(id: $id) { history { seq type actor step } checkpoints { stepIndex } } }",
            json!({"id": id}),
        )
        .await;
    let seqs: Vec<i64> = history["execution"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|event| event["seq"].as_i64())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        history["execution"]["history"].as_array().expect("history").last().expect("last")["type"],
        "EXECUTION_COMPLETED"
    );
    assert_eq!(history["execution"]["checkpoints"].as_array().expect("checkpoints").len(), 5);
}

#[tokio::test]
async fn every_mutation_works_over_http() {
    let server = TestServer::start().await;
    // deployRuntime, from YAML text and from JSON.
    let yaml = "package: desk\nversion: 3.1.0\nroles: [{name: clerk}]\nplaybooks:\n  - name: file\n    role: clerk\n    steps:\n      - {name: one, kind: transform, program: '{n: 1}'}\n      - {name: ask, kind: human, output_schema: {type: object, properties: {ok: {type: boolean}}}}\n      - {name: three, kind: transform, program: '{done: true}'}\n";
    let deployed = server
        .data("mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id version environment packageVersion } }", json!({"input": {"environment": "DEVELOPMENT", "source": yaml}}))
        .await;
    assert_eq!(
        deployed["deployRuntime"],
        json!({"id": "desk-v3", "version": 1, "environment": "DEVELOPMENT", "packageVersion": "3.1.0"})
    );
    let package: Value = serde_json::from_str(
        &serde_json::to_string(&serde_yaml_ng::from_str::<Value>(yaml).expect("yaml")).expect("json"),
    )
    .expect("value");
    let again = server
        .data(
            "mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id version } }",
            json!({"input": {"environment": "DEVELOPMENT", "package": package, "runtimeId": "desk-v3"}}),
        )
        .await;
    // The same package as JSON is the version it already is.
    assert_eq!(again["deployRuntime"]["version"], 1);

    // executePlaybook with an idempotency key gives the same execution twice.
    let input = json!({"input": {"runtimeId": "desk-v3", "playbook": "file", "idempotencyKey": "k-1"}});
    let first = server.data(EXECUTE, input.clone()).await["executePlaybook"]["id"].clone();
    let second = server.data(EXECUTE, input).await["executePlaybook"]["id"].clone();
    assert_eq!(first, second);
    let id = first.as_str().expect("id").to_owned();
    server.pending_intervention(None, &id).await;

    // pause, resume, and the steering actions through interveneExecution.
    let paused = server.data("mutation($id: ID!) { pauseExecution(id: $id) { status } }", json!({"id": id})).await;
    assert_eq!(paused["pauseExecution"]["status"], "PAUSED");
    let resumed = server.data("mutation($id: ID!) { resumeExecution(id: $id) { status } }", json!({"id": id})).await;
    assert_eq!(resumed["resumeExecution"]["status"], "WAITING");
    let edited = server
        .data(INTERVENE, json!({"input": {"executionId": id, "action": "EDIT_STATE", "patch": {"priority": "high"}}}))
        .await;
    assert_eq!(edited["interveneExecution"]["state"], json!({"priority": "high"}));
    // BACK keeping the edited state (the move's own checkpoint holds it), then an edit that a
    // BACK restoring that checkpoint undoes.
    let kept = server.data(INTERVENE, json!({"input": {"executionId": id, "action": "BACK", "state": "KEEP"}})).await;
    assert_eq!(kept["interveneExecution"]["state"], json!({"priority": "high"}));
    server.pending_intervention(None, &id).await;
    server.data(INTERVENE, json!({"input": {"executionId": id, "action": "EDIT_STATE", "patch": {"note": "x"}}})).await;
    let restored = server.data(INTERVENE, json!({"input": {"executionId": id, "action": "BACK"}})).await;
    assert_eq!(restored["interveneExecution"]["state"], json!({"priority": "high"}));
    server.pending_intervention(None, &id).await;
    let wrong =
        server.error(INTERVENE, json!({"input": {"executionId": id, "action": "BACK", "state": "MAYBE"}})).await;
    assert_eq!(wrong["extensions"]["code"], "BAD_INPUT", "{wrong}");
    server.data(INTERVENE, json!({"input": {"executionId": id, "action": "RETRY"}})).await;
    let intervention = server.pending_intervention(None, &id).await;
    server.data(INTERVENE, json!({"input": {"executionId": id, "action": "RESPOND", "interventionId": intervention["id"], "response": {"ok": true}}})).await;
    server.wait_status(&id, &["COMPLETED"]).await;

    let id = server.data(EXECUTE, json!({"input": {"runtimeId": "desk-v3", "playbook": "file"}})).await["executePlaybook"]["id"].as_str().expect("id").to_owned();
    server.pending_intervention(None, &id).await;
    server.data(INTERVENE, json!({"input": {"executionId": id, "action": "JUMP", "step": "three"}})).await;
    server.wait_status(&id, &["COMPLETED"]).await;

    let id = server.data(EXECUTE, json!({"input": {"runtimeId": "desk-v3", "playbook": "file"}})).await["executePlaybook"]["id"].as_str().expect("id").to_owned();
    server.pending_intervention(None, &id).await;
    server.data(INTERVENE, json!({"input": {"executionId": id, "action": "SKIP", "output": {"ok": false}}})).await;
    server.wait_status(&id, &["COMPLETED"]).await;

    let id = server.data(EXECUTE, json!({"input": {"runtimeId": "desk-v3", "playbook": "file"}})).await["executePlaybook"]["id"].as_str().expect("id").to_owned();
    server.pending_intervention(None, &id).await;
    let aborted = server
        .data(
            "mutation($id: ID!) { abortExecution(id: $id, reason: \"duplicate\") { status error } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(aborted["abortExecution"]["status"], "ABORTED");

    let id = server.data(EXECUTE, json!({"input": {"runtimeId": "desk-v3", "playbook": "file"}})).await["executePlaybook"]["id"].as_str().expect("id").to_owned();
    server.pending_intervention(None, &id).await;
    let aborted = server
        .data(INTERVENE, json!({"input": {"executionId": id, "action": "ABORT", "reason": "no longer needed"}}))
        .await;
    assert_eq!(aborted["interveneExecution"]["status"], "ABORTED");
    let missing = server.error(INTERVENE, json!({"input": {"executionId": id, "action": "JUMP"}})).await;
    assert_eq!(missing["extensions"]["code"], "BAD_INPUT");
    assert_eq!(missing["extensions"]["errors"][0]["pointer"], "/step");
}

#[tokio::test]
async fn executions_page_as_a_relay_connection() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(server.start_pbj(None, "kitchen-v1").await);
    }
    ids.reverse();
    let query = "query($after: String) { executions(filter: {runtimeId: \"kitchen-v1\"}, first: 2, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut listed = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = server.data(query, json!({"after": after})).await;
        let connection = &data["executions"];
        pages += 1;
        for edge in connection["edges"].as_array().expect("edges") {
            assert_eq!(edge["cursor"], edge["node"]["id"]);
            listed.push(edge["node"]["id"].as_str().expect("id").to_owned());
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn errors_carry_codes_and_field_pointers() {
    let server = TestServer::start().await;
    let bad = server.error(EXECUTE, json!({"input": {"runtimeId": "kitchen-v1", "playbook": "pbj-sandwich", "input": {"sandwichType": "tuna"}}})).await;
    assert_eq!(bad["extensions"]["code"], "BAD_INPUT");
    assert_eq!(bad["extensions"]["errors"][0]["pointer"], "/sandwichType");

    let not_found = server.error("{ execution(id: \"0190a5d2-0000-7000-8000-000000000000\") { id } }", json!({})).await;
    assert_eq!(not_found["extensions"]["code"], "NOT_FOUND");
    let bad_id = server.error("{ execution(id: \"nope\") { id } }", json!({})).await;
    assert_eq!(bad_id["extensions"]["code"], "BAD_INPUT");
    assert_eq!(bad_id["extensions"]["errors"][0]["pointer"], "/id");

    let id = server.start_pbj(None, "kitchen-v1").await;
    server.pending_intervention(None, &id).await;
    let conflict = server.error("mutation($id: ID!) { resumeExecution(id: $id) { id } }", json!({"id": id})).await;
    assert_eq!(conflict["extensions"]["code"], "CONFLICT");

    let invalid_package = server
        .error("mutation { deployRuntime(input: {environment: DEVELOPMENT, source: \"package: x\\nversion: one\\n\"}) { id } }", json!({}))
        .await;
    assert_eq!(invalid_package["extensions"]["code"], "BAD_INPUT");
    assert_eq!(invalid_package["extensions"]["errors"][0]["pointer"], "/version");

    // Limits: nesting, aliases.
    let deep = format!("{{ runtimes {{ playbooks {{ steps {{ name {} }} }} }} }}", "");
    assert!(server.graphql(&deep, json!({})).await.get("errors").is_none());
    let aliases: String = (0..40).map(|index| format!("a{index}: environments ")).collect();
    let too_many = server.error(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(too_many["extensions"]["code"], "BAD_INPUT");
    assert!(too_many["message"].as_str().unwrap_or_default().contains("aliases"));
    let nested = format!("{{ execution(id: \"{id}\") {{ {}id{} }} }}", "children { ".repeat(20), " }".repeat(20));
    let too_deep = server.graphql(&nested, json!({})).await;
    assert!(too_deep["errors"][0]["message"].as_str().unwrap_or_default().contains("nested too deep"), "{too_deep}");
}

#[test]
fn every_error_code_maps_to_its_extension() {
    use orgata::api::graphql::to_graphql;
    use orgata::engine::Error;
    let cases = [
        (Error::BadInput("x".into()), "BAD_INPUT"),
        (Error::RuntimeNotFound("x".into()), "NOT_FOUND"),
        (Error::Conflict("x".into()), "CONFLICT"),
        (Error::Unauthenticated("x".into()), "UNAUTHENTICATED"),
        (Error::Forbidden("x".into()), "FORBIDDEN"),
        (Error::Internal("SELECT secret FROM table".into()), "INTERNAL"),
    ];
    for (error, code) in cases {
        let error = to_graphql(error);
        let extensions = error.extensions.expect("extensions");
        assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from(code)));
        assert!(!error.message.contains("SELECT"), "internal details never reach clients");
    }
}

#[tokio::test]
async fn a_cut_subscription_resumes_with_after_seq_and_misses_nothing() {
    let server = TestServer::start().await;
    let id = server.start_pbj(None, "kitchen-v1").await;
    let subscription = "subscription($id: ID!, $after: Int!) { executionEvents(executionId: $id, afterSeq: $after) { seq type step } }";

    let mut socket = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    socket.subscribe("1", subscription, json!({"id": id, "after": 0})).await;
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let data = socket.next_data().await;
        let event = &data["executionEvents"];
        seen.push(event["seq"].as_i64().expect("seq"));
        if event["type"] == "INTERVENTION_REQUESTED" {
            break;
        }
    }
    // The connection drops mid-execution; meanwhile the execution moves on.
    socket.close().await;
    let intervention = server.pending_intervention(None, &id).await;
    server.data(RESPOND, json!({"input": {"executionId": id, "interventionId": intervention["id"], "response": {"jelly_flavor": "apricot"}}})).await;
    let done = server.wait_status(&id, &["COMPLETED"]).await;
    let total = done["lastSeq"].as_i64().expect("lastSeq");

    let mut socket = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    let last = *seen.last().expect("some events");
    socket.subscribe("2", subscription, json!({"id": id, "after": last})).await;
    while *seen.last().expect("some") < total {
        let data = socket.next_data().await;
        seen.push(data["executionEvents"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "every event exactly once, in order");
    assert!(socket.quiet_for(Duration::from_millis(300)).await, "no duplicates after the last event");
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let server = TestServer::start().await;
    let mut socket = GraphQLWs::connect(&server.base, "graphql-ws").await;
    socket
        .subscribe(
            "a",
            "subscription { interventionRequested(environment: DEVELOPMENT, role: \"cook\") { step kind role } }",
            json!({}),
        )
        .await;
    let message = start_until_heard(&server, &mut socket, "a").await;
    assert_eq!(message["type"], "data", "{message}");
    assert_eq!(
        message["payload"]["data"]["interventionRequested"],
        json!({"step": "choose-jelly", "kind": "TASK", "role": "cook"})
    );

    socket
        .subscribe(
            "b",
            "subscription { events(environment: DEVELOPMENT, types: [EXECUTION_STARTED]) { type runtimeId } }",
            json!({}),
        )
        .await;
    let message = start_until_heard(&server, &mut socket, "b").await;
    assert_eq!(message["payload"]["data"]["events"], json!({"type": "EXECUTION_STARTED", "runtimeId": "kitchen-v1"}));
}

/// Starts pbj sandwiches until subscription `id` delivers a message, and returns it. The
/// protocol does not acknowledge a subscription, so a start may come before it listens;
/// messages of other subscriptions are passed over.
async fn start_until_heard(server: &TestServer, socket: &mut GraphQLWs, id: &str) -> Value {
    for _ in 0..50 {
        server.start_pbj(None, "kitchen-v1").await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Some(message) =
            socket.next_message_within(deadline.saturating_duration_since(tokio::time::Instant::now())).await
        {
            if message["id"] == id {
                return message;
            }
        }
    }
    panic!("subscription {id} heard nothing of 50 starts");
}

#[tokio::test]
async fn subscribing_to_an_unknown_execution_is_an_error() {
    let server = TestServer::start().await;
    let mut socket = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    socket
        .subscribe(
            "1",
            "subscription { executionEvents(executionId: \"0190a5d2-0000-7000-8000-000000000000\") { seq } }",
            json!({}),
        )
        .await;
    let message = socket.next_message().await;
    let errors =
        if message["type"] == "error" { message["payload"].clone() } else { message["payload"]["errors"].clone() };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{message}");
}

#[tokio::test]
async fn get_serves_graphiql_and_queries_but_never_mutations() {
    let server = TestServer::start().await;
    let page = server.client.get(format!("{}/graphql", server.base)).send().await.expect("GET");
    assert!(page.text().await.expect("body").contains("graphiql"));
    let query = server
        .client
        .get(format!("{}/graphql", server.base))
        .query(&[("query", "{ environments }")])
        .send()
        .await
        .expect("GET query");
    let body: Value = query.json().await.expect("JSON");
    assert_eq!(body["data"]["environments"][0], "PRODUCTION");
    let mutation = server
        .client
        .get(format!("{}/graphql", server.base))
        .query(&[("query", "mutation { pauseExecution(id: \"x\") { id } }")])
        .send()
        .await
        .expect("GET mutation");
    assert_eq!(mutation.status(), 405);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    let health = server.client.get(format!("{}/healthz", server.base)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let id = server.start_pbj(None, "kitchen-v1").await;
    server.pending_intervention(None, &id).await;
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("orgata_executions{status=\"WAITING\"} 1"), "{metrics}");
    assert!(metrics.contains("orgata_steps_completed_total 1"), "{metrics}");
    assert!(metrics.contains("orgata_http_requests_total{outcome=\"all\"}"), "{metrics}");
}

#[tokio::test]
async fn the_server_refuses_non_loopback_addresses_without_keys() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let directory = tempfile::tempdir().expect("directory");
    let config = orgata::Config::new(orgata::store::sqlite_url(&directory.path().join("o.db")));
    let error = orgata::serve(listener, config).await.expect_err("refused");
    assert!(error.to_string().contains("orgata keys create"), "the message says how to create a key: {error}");
}

#[test]
fn the_committed_sdl_matches_the_server() {
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend-contract/schema.graphql"),
    )
    .expect("frontend-contract/schema.graphql is committed");
    assert!(
        committed == orgata::api::graphql::sdl(),
        "frontend-contract/schema.graphql was not up to date; run `cargo run -- contract export` and commit the result"
    );
}
