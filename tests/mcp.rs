//! MCP against the running server with the rmcp client, on both protocol revisions: the
//! 2025-11-25 session protocol and the stateless 2026-07-28 one. And `orgata mcp` over stdio.

// resources/subscribe is deprecated from 2026-07-28 on, and tested here for 2025-11-25 clients.
#![allow(deprecated)]

#[path = "common/mcp_client.rs"]
mod mcp_client;
#[path = "common/server.rs"]
mod server;

use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams, Implementation,
    ReadResourceRequestParams, ResourceContents,
};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

use mcp_client::{Client, REVISIONS, Session, arguments, call, connect, connect_with, ok, scripted};
use server::{PATIENCE, TestServer, wait_until};

/// Starts a pbj-sandwich of `kind` through `execute_playbook`; returns the execution id.
async fn start_pbj(session: &Session, kind: &str) -> String {
    let started = ok(
        session,
        "execute_playbook",
        json!({"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich", "input": {"sandwichType": kind}}),
    )
    .await;
    started["executionId"].as_str().expect("id").to_owned()
}

async fn wait_for_pending(session: &Session, execution: &str) -> Value {
    wait_until(PATIENCE, &format!("{execution} to wait for a person"), || async {
        let found = ok(session, "get_pending_interventions", json!({"executionId": execution})).await;
        found["items"].as_array().and_then(|items| items.first()).cloned()
    })
    .await
}

async fn wait_for_status(session: &Session, execution: &str, status: &str) -> Value {
    wait_until(PATIENCE, &format!("{execution} to become {status}"), || async {
        let found = ok(session, "get_execution", json!({"executionId": execution})).await;
        (found["status"] == status).then_some(found)
    })
    .await
}

#[tokio::test]
async fn tools_are_the_catalogue_with_its_schemas() {
    let server = TestServer::start().await;
    let expected = orgata::api::mcp::McpApi::new(&orgata::api::graphql::bare()).expect("tools").catalogue();
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let tools = session.list_all_tools().await.expect("tools");
        let listed: Vec<Value> = tools.iter().map(|tool| serde_json::to_value(tool).expect("json")).collect();
        let expected = expected.as_array().expect("list");
        assert_eq!(listed.len(), expected.len(), "{revision}");
        for tool in expected {
            let name = tool["name"].as_str().expect("name");
            let served = listed
                .iter()
                .find(|listed| listed["name"] == name)
                .unwrap_or_else(|| panic!("{name} is not served on {revision}"));
            assert_eq!(served["inputSchema"], tool["inputSchema"], "{name} on {revision}");
            assert_eq!(served["outputSchema"], tool["outputSchema"], "{name} on {revision}");
        }
        for name in [
            "execute_playbook",
            "intervene_execution",
            "pause_execution",
            "resume_execution",
            "get_pending_interventions",
            "list_runtimes",
            "get_execution",
        ] {
            assert!(listed.iter().any(|tool| tool["name"] == name), "{name} on {revision}");
        }
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn pbj_runs_end_to_end_through_tools_on_both_revisions() {
    let server = TestServer::start().await;
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let runtimes = ok(&session, "list_runtimes", json!({"environment": "DEVELOPMENT"})).await;
        assert!(runtimes["items"].as_array().expect("items").iter().any(|runtime| runtime["id"] == "kitchen-v1"));
        let id = start_pbj(&session, "classic").await;
        let intervention = wait_for_pending(&session, &id).await;
        assert_eq!(intervention["kind"], "TASK");
        assert_eq!(intervention["formSchema"]["required"], json!(["jelly_flavor"]));
        ok(&session, "pause_execution", json!({"executionId": id})).await;
        ok(&session, "resume_execution", json!({"executionId": id})).await;
        // A state edit survives a JUMP that keeps it.
        let patch = json!({"executionId": id, "action": "EDIT_STATE", "patch": {"note": "mcp"}});
        ok(&session, "intervene_execution", patch).await;
        let jump = json!({"executionId": id, "action": "JUMP", "step": "choose-jelly", "state": "KEEP"});
        let kept = ok(&session, "intervene_execution", jump).await;
        assert_eq!(kept["state"]["note"], "mcp", "{revision}: {kept}");
        let intervention = wait_for_pending(&session, &id).await;
        ok(
            &session,
            "intervene_execution",
            json!({"executionId": id, "interventionId": intervention["id"], "response": {"jelly_flavor": "grape"}}),
        )
        .await;
        let done = wait_for_status(&session, &id, "COMPLETED").await;
        assert_eq!(done["output"], json!({"name": "PB&J", "flavor": "grape"}), "{revision}");
        let history = ok(&session, "get_history", json!({"executionId": id, "afterSeq": 0})).await;
        assert_eq!(history["items"].as_array().expect("items").last().expect("last")["type"], "EXECUTION_COMPLETED");
        let versions = ok(&session, "list_runtime_versions", json!({"runtimeId": "kitchen-v1"})).await;
        assert_eq!(versions["items"][0]["current"], true, "{revision}: {versions}");
        let checkpoints = ok(&session, "get_checkpoints", json!({"executionId": id})).await;
        let checkpoints = checkpoints["items"].as_array().expect("items");
        assert_eq!(checkpoints[0]["stepIndex"], 0, "{revision}");
        assert!(checkpoints.iter().any(|checkpoint| checkpoint["steps"].get("choose-jelly").is_some()));
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn an_assistant_completes_an_agent_step() {
    let server = TestServer::start().await;
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let started = ok(&session, "execute_playbook", json!({"runtimeId": "expenses-v2", "playbookName": "approve-expense", "input": {"employee": "Ann", "description": "Team lunch", "amount": 40, "currency": "EUR"}})).await;
        let id = started["executionId"].as_str().expect("id").to_owned();
        let agent = wait_for_pending(&session, &id).await;
        assert_eq!(agent["kind"], "AGENT");
        assert!(agent["prompt"].as_str().unwrap_or_default().contains("Team lunch"));
        let wrong = call(
            &session,
            "intervene_execution",
            json!({"executionId": id, "interventionId": agent["id"], "response": {"category": "food"}}),
        )
        .await;
        assert_eq!(wrong.is_error, Some(true));
        ok(&session, "intervene_execution", json!({"executionId": id, "interventionId": agent["id"], "response": {"category": "meals", "flagged": false}})).await;
        let done = wait_for_status(&session, &id, "COMPLETED").await;
        assert_eq!(done["output"], json!({"decision": "paid", "category": "meals"}), "{revision}");
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn bad_arguments_are_tool_errors_with_field_pointers() {
    let server = TestServer::start().await;
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let missing = call(&session, "execute_playbook", json!({"runtimeId": "kitchen-v1"})).await;
        assert_eq!(missing.is_error, Some(true));
        let content = mcp_client::failure(&missing);
        assert_eq!(content["code"], "BAD_INPUT");
        assert!(content["errors"][0]["message"].as_str().unwrap_or_default().contains("playbookName"), "{content}");
        let typo = call(
            &session,
            "execute_playbook",
            json!({"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich", "executionOptions": {"mode": "FAST"}}),
        )
        .await;
        assert_eq!(mcp_client::failure(&typo)["errors"][0]["pointer"], "/executionOptions/mode");
        let invalid = call(
            &session,
            "execute_playbook",
            json!({"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich", "input": {"sandwichType": "tuna"}}),
        )
        .await;
        let content = mcp_client::failure(&invalid);
        assert_eq!(
            (content["code"].as_str(), content["errors"][0]["pointer"].as_str()),
            (Some("BAD_INPUT"), Some("/sandwichType"))
        );
        let unknown =
            call(&session, "get_execution", json!({"executionId": "0190a5d2-0000-7000-8000-000000000000"})).await;
        assert_eq!(mcp_client::failure(&unknown)["code"], "NOT_FOUND");
        let no_tool = session.call_tool(CallToolRequestParams::new("drop_tables")).await;
        assert!(no_tool.is_err(), "an unknown tool is a protocol error");
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn resources_and_prompts() {
    let server = TestServer::start().await;
    let setup = connect(&server.base, "2025-11-25", None).await.expect("connects");
    let id = start_pbj(&setup, "deluxe").await;
    wait_for_pending(&setup, &id).await;
    setup.cancel().await.expect("closed");
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let templates = session.list_all_resource_templates().await.expect("templates");
        assert_eq!(templates.len(), 5);
        let resources = session.list_all_resources().await.expect("resources");
        let uris: Vec<String> = resources.iter().map(|resource| resource.uri.clone()).collect();
        for expected in [
            "orgata://runtime/kitchen-v1",
            "orgata://playbook/kitchen-v1/pbj-sandwich",
            "orgata://role/kitchen-v1/cook",
            "orgata://operation/kitchen-v1/gather-ingredients",
            &format!("orgata://execution/{id}"),
        ] {
            assert!(uris.iter().any(|uri| uri == expected), "{expected} missing on {revision}: {uris:?}");
        }
        for (uri, key, value) in [
            ("orgata://runtime/kitchen-v1".to_owned(), "id", json!("kitchen-v1")),
            ("orgata://playbook/kitchen-v1/pbj-sandwich".to_owned(), "name", json!("pbj-sandwich")),
            ("orgata://role/kitchen-v1/cook".to_owned(), "name", json!("cook")),
            ("orgata://operation/kitchen-v1/gather-ingredients".to_owned(), "kind", json!("TRANSFORM")),
            (format!("orgata://execution/{id}"), "status", json!("WAITING")),
        ] {
            let read = session.read_resource(ReadResourceRequestParams::new(uri.clone())).await.expect("read");
            let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
                panic!("text contents")
            };
            let parsed: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(parsed[key], value, "{uri} on {revision}");
        }
        assert!(session.read_resource(ReadResourceRequestParams::new("orgata://runtime/nope-v9")).await.is_err());
        let prompts = session.list_all_prompts().await.expect("prompts");
        assert_eq!(prompts.len(), 3);
        for (name, args, needle) in [
            (
                "generate_operation_prompt",
                json!({"runtimeId": "kitchen-v1", "operation": "gather-ingredients"}),
                "bread_slices",
            ),
            ("validate_business_logic", json!({"runtimeId": "kitchen-v1", "playbook": "pbj-sandwich"}), "choose-jelly"),
            ("suggest_process_improvements", json!({"executionId": id}), "gather-ingredients"),
        ] {
            let prompt = session
                .get_prompt(GetPromptRequestParams::new(name).with_arguments(arguments(args)))
                .await
                .expect("prompt");
            let text = serde_json::to_string(&prompt.messages).expect("json");
            assert!(text.contains(needle), "{name} on {revision}: {text}");
        }
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn mcp_authenticates_like_the_other_protocols() {
    let server = TestServer::start().await;
    let production = server.create_key("prod", "cook", "production");
    for revision in REVISIONS {
        assert!(connect(&server.base, revision, None).await.is_err(), "no token, now that keys exist ({revision})");
        assert!(connect(&server.base, revision, Some("orgata_forged_token")).await.is_err());
        let session = connect(&server.base, revision, Some(&production)).await.expect("connects with a key");
        let denied = call(&session, "get_runtime", json!({"runtimeId": "kitchen-v1"})).await;
        assert_eq!(mcp_client::failure(&denied)["code"], "FORBIDDEN", "{revision}");
        session.cancel().await.expect("closed");
    }
}

#[tokio::test]
async fn orgata_mcp_serves_over_stdio() {
    let directory = tempfile::tempdir().expect("directory");
    let database = orgata::store::sqlite_url(&directory.path().join("orgata.db"));
    let transport =
        TokioChildProcess::new(tokio::process::Command::new(env!("CARGO_BIN_EXE_orgata")).configure(|command| {
            command
                .args([
                    "mcp",
                    "--database-url",
                    &database,
                    "--examples-dir",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/examples"),
                ])
                .stderr(std::process::Stdio::null());
        }))
        .expect("spawns orgata mcp");
    let client = Client {
        config: ClientConfig::new(ClientCapabilities::default(), Implementation::new("stdio-test", "1.0")),
        ..Client::default()
    };
    let session = client.serve(transport).await.expect("initializes over stdio");
    let deployed = ok(&session, "deploy_runtime", json!({"environment": "DEVELOPMENT", "source": "package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '{ok: true}'}]}]\n"})).await;
    assert_eq!(deployed["id"], "desk-v1");
    let started = ok(&session, "execute_playbook", json!({"runtimeId": "desk-v1", "playbookName": "p"})).await;
    let id = started["executionId"].as_str().expect("id").to_owned();
    let done = wait_for_status(&session, &id, "COMPLETED").await;
    assert_eq!(done["output"], json!({"ok": true}));
    session.cancel().await.expect("closed");
}

#[tokio::test]
async fn elicitation_answers_a_human_step_on_both_revisions() {
    let server = TestServer::start().await;
    for revision in REVISIONS {
        let client = scripted(Some(json!({"jelly_flavor": "apricot"})), None, None);
        let session = connect_with(&server.base, revision, None, client).await.expect("connects");
        let id = start_pbj(&session, "classic").await;
        let intervention = wait_for_pending(&session, &id).await;
        // No response: the server asks the person at the client for the form.
        ok(&session, "intervene_execution", json!({"executionId": id, "interventionId": intervention["id"]})).await;
        let done = wait_for_status(&session, &id, "COMPLETED").await;
        assert_eq!(done["output"]["flavor"], "apricot", "{revision}");
        session.cancel().await.expect("closed");
    }
    // A client that declines leaves the intervention pending, with a tool error.
    let session = connect_with(&server.base, "2025-11-25", None, scripted(None, None, None)).await.expect("connects");
    let id = start_pbj(&session, "classic").await;
    let intervention = wait_for_pending(&session, &id).await;
    let refused =
        call(&session, "intervene_execution", json!({"executionId": id, "interventionId": intervention["id"]})).await;
    assert_eq!(refused.is_error, Some(true));
    assert_eq!(mcp_client::failure(&refused)["errors"][0]["pointer"], "/response");
    session.cancel().await.expect("closed");
}

#[tokio::test]
async fn a_sampling_client_completes_an_agent_step() {
    let server = TestServer::start().await;
    let model = scripted(None, Some(r#"{"category": "travel", "flagged": false}"#.to_owned()), None);
    let sampler = connect_with(&server.base, "2025-11-25", None, model).await.expect("connects");
    // Another client starts the execution; the sampling client's model answers the AGENT step.
    let starter = connect(&server.base, "2026-07-28", None).await.expect("connects");
    let started = ok(&starter, "execute_playbook", json!({"runtimeId": "expenses-v2", "playbookName": "approve-expense", "input": {"employee": "Bo", "description": "Train", "amount": 80, "currency": "EUR"}})).await;
    let id = started["executionId"].as_str().expect("id").to_owned();
    let done = wait_for_status(&starter, &id, "COMPLETED").await;
    assert_eq!(done["output"], json!({"decision": "paid", "category": "travel"}));
    let history = ok(&starter, "get_history", json!({"executionId": id})).await;
    let resolved = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|event| event["type"] == "INTERVENTION_RESOLVED")
        .expect("resolved")
        .clone();
    assert_eq!(resolved["payload"]["notes"], "answered by the client's model (sampling)");
    sampler.cancel().await.expect("closed");
    starter.cancel().await.expect("closed");
}

#[tokio::test]
async fn roots_narrow_what_a_session_sees() {
    let server = TestServer::start().await;
    let setup = connect(&server.base, "2025-11-25", None).await.expect("connects");
    ok(&setup, "deploy_runtime", json!({"runtimeId": "sim-desk", "environment": "SIMULATION", "source": "package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '.'}]}]\n"})).await;
    setup.cancel().await.expect("closed");
    let narrowed = connect_with(
        &server.base,
        "2025-11-25",
        None,
        scripted(None, None, Some(vec!["orgata://env/simulation".to_owned()])),
    )
    .await
    .expect("connects");
    let listed = ok(&narrowed, "list_runtimes", json!({})).await;
    let ids: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|runtime| runtime["id"].as_str()).collect();
    assert_eq!(ids, ["sim-desk"], "only the simulation environment is visible");
    let denied = call(&narrowed, "get_runtime", json!({"runtimeId": "kitchen-v1"})).await;
    assert_eq!(mcp_client::failure(&denied)["code"], "FORBIDDEN");
    narrowed.cancel().await.expect("closed");
    // On every revision, listing tools take an environment.
    for revision in REVISIONS {
        let session = connect(&server.base, revision, None).await.expect("connects");
        let listed = ok(&session, "list_runtimes", json!({"environment": "SIMULATION"})).await;
        assert_eq!(listed["items"].as_array().expect("items").len(), 1, "{revision}");
        session.cancel().await.expect("closed");
    }
}

/// Roots narrow a session for convenience; grants are the boundary. A client that declares
/// roots but refuses to list them is treated as having declared none: its tool calls run.
#[tokio::test]
async fn a_client_whose_roots_cannot_be_read_still_calls_tools() {
    let server = TestServer::start().await;
    let client = Client { refuse_roots: true, ..scripted(None, None, Some(vec![])) };
    let session = connect_with(&server.base, "2025-11-25", None, client).await.expect("connects");
    let id = start_pbj(&session, "classic").await;
    wait_for_pending(&session, &id).await;
    let listed = ok(&session, "list_runtimes", json!({})).await;
    assert!(listed["items"].as_array().expect("items").iter().any(|runtime| runtime["id"] == "kitchen-v1"));
    session.cancel().await.expect("closed");
}

/// Ending a 2025-11-25 session answers 204 No Content (the official SDKs count 202 as a
/// failed termination).
#[tokio::test]
async fn ending_a_session_answers_no_content() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let response = http
        .post(format!("{}/mcp", server.base))
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"].to_str().expect("session id").to_owned();
    let ended = http
        .delete(format!("{}/mcp", server.base))
        .header("Mcp-Session-Id", session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .send()
        .await
        .expect("delete");
    assert_eq!(ended.status(), 204);
    assert!(ended.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn subscribing_to_an_execution_sends_updates_on_both_revisions() {
    let server = TestServer::start().await;
    // 2025-11-25: resources/subscribe, then notifications/resources/updated.
    let (sender, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let client = Client { updates: Some(sender), ..Client::default() };
    let session = connect_with(&server.base, "2025-11-25", None, client).await.expect("connects");
    let id = start_pbj(&session, "classic").await;
    let intervention = wait_for_pending(&session, &id).await;
    let uri = format!("orgata://execution/{id}");
    session.subscribe(rmcp::model::SubscribeRequestParams::new(uri.clone())).await.expect("subscribed");
    ok(
        &session,
        "intervene_execution",
        json!({"executionId": id, "interventionId": intervention["id"], "response": {"jelly_flavor": "grape"}}),
    )
    .await;
    let updated =
        tokio::time::timeout(Duration::from_secs(10), updates.recv()).await.expect("an update in time").expect("open");
    assert_eq!(updated, uri);
    session.cancel().await.expect("closed");

    // 2026-07-28: subscriptions/listen with the execution's URI.
    let session = connect(&server.base, "2026-07-28", None).await.expect("connects");
    let id = start_pbj(&session, "classic").await;
    let intervention = wait_for_pending(&session, &id).await;
    let uri = format!("orgata://execution/{id}");
    let mut listening = session
        .listen(rmcp::model::SubscriptionFilter::builder().resource_subscription(uri.clone()).build())
        .await
        .expect("listening");
    ok(
        &session,
        "intervene_execution",
        json!({"executionId": id, "interventionId": intervention["id"], "response": {"jelly_flavor": "grape"}}),
    )
    .await;
    let notification =
        tokio::time::timeout(Duration::from_secs(10), listening.next()).await.expect("in time").expect("received");
    assert!(
        matches!(notification, Some(rmcp::model::ServerNotification::ResourceUpdatedNotification(_))),
        "{notification:?}"
    );
    let _ = listening.cancel().await;
    session.cancel().await.expect("closed");
}
