//! One condition, one code, on every protocol: the same request made over GraphQL, REST and MCP
//! against a real server gets the same answer. Unknown REST query parameters are refused, the
//! filters exist everywhere, unknown routes and methods are problems, formats are asserted
//! and missing fields point at themselves, a runtime id belongs to one package, and errors
//! raised by the protocol libraries themselves (GraphQL validation, oversized bodies, JSON-RPC
//! that cannot be read) carry the codes Orgata's own errors do.

#[path = "common/mcp_client.rs"]
mod mcp_client;
#[path = "common/server.rs"]
mod server;

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};

use server::{PATIENCE, TestServer, wait_until};

const DEPLOY: &str = "mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id version package } }";
const EXECUTE: &str = "mutation($input: ExecutePlaybookInput!) { executePlaybook(input: $input) { id } }";

/// A package whose `parent` playbook starts `child`, which waits on a form with formats and
/// required fields.
const DESK: &str = "package: desk\nversion: 1.0.0\nroles: [{name: clerk}]\nplaybooks:\n  - name: child\n    role: clerk\n    steps:\n      - name: ask\n        kind: human\n        output_schema:\n          type: object\n          required: [name, email]\n          properties:\n            name: {type: string}\n            email: {type: string, format: email}\n            day: {type: string, format: date}\n  - name: parent\n    steps:\n      - {name: call, kind: playbook, playbook: child}\n";

async fn rest(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server.client.request(method.parse().expect("method"), format!("{}/api/v1{path}", server.base));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    if status >= 400 {
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{method} {path}");
    }
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}")))
}

async fn deploy_desk(server: &TestServer) {
    let deployed = server.data(DEPLOY, json!({"input": {"environment": "DEVELOPMENT", "source": DESK}})).await;
    assert_eq!(deployed["deployRuntime"]["id"], "desk-v1");
}

/// Starts `parent`; returns (parent id, child id) once the child waits on its form.
async fn start_parent(server: &TestServer) -> (String, String) {
    let input = json!({"input": {"runtimeId": "desk-v1", "playbook": "parent"}});
    let parent = server.data(EXECUTE, input).await["executePlaybook"]["id"].as_str().expect("id").to_owned();
    let child = wait_until(PATIENCE, "the child to wait", || async {
        let data = server
            .data("query($id: ID!) { execution(id: $id) { children { id status } } }", json!({"id": parent}))
            .await;
        let child = data["execution"]["children"].as_array().and_then(|children| children.first()).cloned()?;
        (child["status"] == "WAITING").then(|| child["id"].as_str().expect("child id").to_owned())
    })
    .await;
    (parent, child)
}

#[tokio::test]
async fn unknown_query_parameters_are_refused_naming_the_accepted_ones() {
    let server = TestServer::start().await;
    // A misspelt filter used to be ignored and answered with everyone's interventions.
    let (status, problem) = rest(&server, "GET", "/interventions?execution_id=x", None).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "BAD_INPUT");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("`execution_id`") && detail.contains("`executionId`"), "{detail}");
    assert_eq!(problem["errors"][0]["pointer"], "?execution_id");

    let (status, problem) = rest(&server, "GET", "/executions?parent=x&zzz=1", None).await;
    assert_eq!(status, 400, "{problem}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.starts_with("unknown query parameters `parent`, `zzz`"), "{detail}");
    assert!(detail.contains("`parentId`") && detail.contains("`after`"), "{detail}");
    // `wait` is accepted where the route offers it, and nowhere else.
    let (status, _) = rest(&server, "GET", "/runtimes?wait=1", None).await;
    assert_eq!(status, 400);
    let (status, problem) = rest(&server, "GET", "/runtimes/kitchen-v1/playbooks?x=1", None).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().expect("detail").ends_with("this route accepts none"), "{problem}");
}

#[tokio::test]
async fn execution_and_parent_filters_exist_on_every_protocol() {
    let server = TestServer::start().await;
    deploy_desk(&server).await;
    let (first_parent, first_child) = start_parent(&server).await;
    let (_, second_child) = start_parent(&server).await;

    // Interventions of one execution.
    let (status, found) = rest(&server, "GET", &format!("/interventions?executionId={first_child}"), None).await;
    assert_eq!(status, 200, "{found}");
    let executions: Vec<&str> =
        found.as_array().expect("list").iter().map(|item| item["executionId"].as_str().expect("id")).collect();
    assert_eq!(executions, [first_child.as_str()]);
    let data = server
        .data(
            "query($id: ID) { interventions(filter: {executionId: $id}) { executionId } }",
            json!({"id": second_child}),
        )
        .await;
    assert_eq!(data["interventions"], json!([{"executionId": second_child}]));
    let session = mcp_client::connect(&server.base, "2025-11-25", None).await.expect("MCP connects");
    let found = mcp_client::ok(&session, "get_pending_interventions", json!({"executionId": first_child})).await;
    let executions: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["executionId"].as_str().expect("id"))
        .collect();
    assert_eq!(executions, [first_child.as_str()]);

    // Children of one execution.
    let (status, page) = rest(&server, "GET", &format!("/executions?parentId={first_parent}"), None).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> =
        page["edges"].as_array().expect("edges").iter().map(|edge| edge["node"]["id"].as_str().expect("id")).collect();
    assert_eq!(ids, [first_child.as_str()]);
    let data = server
        .data(
            "query($id: ID) { executions(filter: {parentId: $id}) { edges { node { id } } } }",
            json!({"id": first_parent}),
        )
        .await;
    assert_eq!(data["executions"]["edges"], json!([{"node": {"id": first_child}}]));
    let page = mcp_client::ok(&session, "list_executions", json!({"parentId": first_parent})).await;
    assert_eq!(page["edges"].as_array().expect("edges").len(), 1, "{page}");
    assert_eq!(page["edges"][0]["node"]["id"], first_child.as_str());

    // `after` pages on.
    let (_, first_page) = rest(&server, "GET", "/executions?first=1", None).await;
    let cursor = first_page["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let (status, next_page) = rest(&server, "GET", &format!("/executions?first=1&after={cursor}"), None).await;
    assert_eq!(status, 200, "{next_page}");
    assert_ne!(next_page["edges"][0]["node"]["id"], first_page["edges"][0]["node"]["id"]);
    let _ = session.cancel().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let server = TestServer::start().await;
    let (status, problem) = rest(&server, "GET", "/no-such-route", None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("NOT_FOUND")), "{problem}");
    let (status, problem) = rest(&server, "GET", "/runtimes/kitchen-v1/nothing/here", None).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("NOT_FOUND")), "{problem}");
    let response = server.client.delete(format!("{}/api/v1/runtimes", server.base)).send().await.expect("sent");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let allow = response.headers()["allow"].to_str().expect("allow").to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(problem["status"], 405);
}

#[tokio::test]
async fn formats_are_asserted_and_missing_fields_point_at_themselves() {
    let server = TestServer::start().await;
    deploy_desk(&server).await;
    let (_, child) = start_parent(&server).await;
    let (_, interventions) = rest(&server, "GET", &format!("/executions/{child}/interventions"), None).await;
    let intervention = interventions[0]["id"].as_str().expect("intervention").to_owned();
    let fields = &interventions[0]["fields"];
    assert!(fields.to_string().contains("email"), "{fields}");

    const RESPOND: &str =
        "mutation($input: RespondToInterventionInput!) { respondToIntervention(input: $input) { id } }";
    let respond = |response: Value| json!({"input": {"executionId": child, "interventionId": intervention, "response": response}});
    let error =
        server.error(RESPOND, respond(json!({"name": "Ann", "email": "not an email", "day": "2026-13-45"}))).await;
    assert_eq!(error["extensions"]["code"], "BAD_INPUT", "{error}");
    let pointers: Vec<&str> = error["extensions"]["errors"]
        .as_array()
        .expect("field errors")
        .iter()
        .map(|field| field["pointer"].as_str().expect("pointer"))
        .collect();
    assert_eq!(pointers, ["/email", "/day"], "{error}");
    let error = server.error(RESPOND, respond(json!({"email": "ann@example.com"}))).await;
    assert_eq!(
        error["extensions"]["errors"],
        json!([{"pointer": "/name", "message": "\"name\" is a required property"}])
    );

    let path = format!("/executions/{child}/interventions/{intervention}");
    let (status, problem) =
        rest(&server, "POST", &path, Some(json!({"response": {"name": "Ann", "email": "@"}}))).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/email");
    let (status, problem) = rest(&server, "POST", &path, Some(json!({"response": {"name": "Ann"}}))).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/email");
    // A REST body missing a required field points at it too.
    let (status, problem) = rest(&server, "POST", "/runtimes/desk-v1/executions", Some(json!({}))).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/playbookName", "{problem}");

    let (status, _) = rest(
        &server,
        "POST",
        &path,
        Some(json!({"response": {"name": "Ann", "email": "ann@example.com", "day": "2026-12-03"}})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_runtime_id_belongs_to_one_package_and_identical_deploys_are_one_version() {
    let server = TestServer::start().await;
    let deploy = |runtime: &str, source: &str| json!({"input": {"environment": "DEVELOPMENT", "runtimeId": runtime, "source": source}});
    let first = server.data(DEPLOY, deploy("shared", DESK)).await;
    assert_eq!(first["deployRuntime"]["version"], 1);

    // The same package again, as YAML and as JSON: the same version.
    let again = server.data(DEPLOY, deploy("shared", DESK)).await;
    assert_eq!(again["deployRuntime"]["version"], 1);
    let package: Value = serde_yaml_ng::from_str(DESK).expect("yaml");
    let as_json = server
        .data(DEPLOY, json!({"input": {"environment": "DEVELOPMENT", "runtimeId": "shared", "package": package}}))
        .await;
    assert_eq!(as_json["deployRuntime"]["version"], 1);
    let (status, over_rest) =
        rest(&server, "POST", "/runtimes?environment=DEVELOPMENT&runtimeId=shared", Some(package)).await;
    assert_eq!((status, &over_rest["version"]), (201, &json!(1)), "{over_rest}");

    // A change is a new version.
    let changed = DESK.replace("version: 1.0.0", "version: 1.1.0");
    let next = server.data(DEPLOY, deploy("shared", &changed)).await;
    assert_eq!(next["deployRuntime"]["version"], 2);

    // Another package cannot take the id over, on any protocol.
    let other = DESK.replace("package: desk", "package: intruder");
    let error = server.error(DEPLOY, deploy("shared", &other)).await;
    assert_eq!(error["extensions"]["code"], "CONFLICT", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("`desk`") && message.contains("`intruder`") && message.contains("`shared`"), "{message}");
    let other_package: Value = serde_yaml_ng::from_str(&other).expect("yaml");
    let (status, problem) =
        rest(&server, "POST", "/runtimes?environment=DEVELOPMENT&runtimeId=shared", Some(other_package.clone())).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("CONFLICT")), "{problem}");
    let session = mcp_client::connect(&server.base, "2025-11-25", None).await.expect("MCP connects");
    let result = mcp_client::call(
        &session,
        "deploy_runtime",
        json!({"runtimeId": "shared", "environment": "DEVELOPMENT", "package": other_package}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(mcp_client::failure(&result)["code"], "CONFLICT");
    let _ = session.cancel().await;
    let runtime = server.data("{ runtime(id: \"shared\") { version package } }", json!({})).await;
    assert_eq!(runtime["runtime"], json!({"version": 2, "package": "desk"}));
}

#[tokio::test]
async fn graphql_validation_errors_are_bad_input() {
    let server = TestServer::start().await;
    let cases = [
        // An unknown input field, inline and in a variable.
        ("{ executions(filter: {nope: 1}) { edges { cursor } } }", json!({})),
        ("query($f: ExecutionFilter) { executions(filter: $f) { edges { cursor } } }", json!({"f": {"nope": 1}})),
        // A value outside an enum.
        ("{ runtimes(environment: MOON) { id } }", json!({})),
        ("query($e: Environment) { runtimes(environment: $e) { id } }", json!({"e": "MOON"})),
        // An Int that overflows.
        ("{ executions(first: 99999999999) { edges { cursor } } }", json!({})),
        ("query($n: Int!) { executions(first: $n) { edges { cursor } } }", json!({"n": 99_999_999_999_i64})),
        // null for a non-null variable, and a missing one.
        ("query($id: ID!) { execution(id: $id) { id } }", json!({"id": null})),
        ("query($id: ID!) { execution(id: $id) { id } }", json!({})),
        // An unknown field and a syntax error.
        ("{ nope }", json!({})),
        ("{ me { id ", json!({})),
    ];
    for (query, variables) in cases {
        let body = server.graphql(query, variables.clone()).await;
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{query} {variables}: no errors: {body}"));
        for error in errors {
            assert_eq!(error["extensions"]["code"], "BAD_INPUT", "{query} {variables}: {error}");
        }
    }
    // REST says the same for the same mistake.
    let (status, problem) = rest(&server, "GET", "/executions?first=99999999999", None).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("BAD_INPUT")), "{problem}");
}

#[tokio::test]
async fn an_oversized_body_is_payload_too_large_everywhere() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 16 * 1024).await;
    let big = "x".repeat(32 * 1024);
    let post = |path: &str, body: String| {
        server
            .client
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
    };
    let response = post("/graphql", json!({"query": "{ me { id } }", "variables": {"x": big}}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    let response = post("/api/v1/runtimes", json!({"package": big}).to_string()).send().await.expect("sent");
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.expect("JSON");
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE", "{problem}");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_runtimes", "arguments": {"x": big}}});
    let response = post("/mcp", call.to_string()).send().await.expect("sent");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("JSON-RPC error");
    assert_eq!(body["error"]["data"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
}

#[tokio::test]
async fn mcp_answers_unreadable_messages_with_json_rpc_errors() {
    let server = TestServer::start().await;
    let post = |body: &str| {
        server
            .client
            .post(format!("{}/mcp", server.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned())
            .send()
    };
    let response = post("{not json").await.expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON-RPC error");
    assert_eq!((body["error"]["code"].as_i64(), &body["id"]), (Some(-32700), &Value::Null), "{body}");

    let response = post(r#"{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_runtimes", "arguments": "{}"}}"#)
        .await
        .expect("sent");
    let body: Value = response.json().await.expect("JSON-RPC error");
    assert_eq!((body["error"]["code"].as_i64(), &body["id"]), (Some(-32602), &json!(7)), "{body}");
    assert_eq!(body["error"]["data"]["code"], "BAD_INPUT");

    let response = post(r#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#).await.expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON-RPC error");
    assert_eq!(body["error"]["code"].as_i64(), Some(-32600), "{body}");
}

#[tokio::test]
async fn mcp_maps_each_code_the_same_way_in_resources_prompts_and_tools() {
    let server = TestServer::start().await;
    // A production runtime, deployed by an administrator.
    let admin = server.create_key("admin", "", "production:admin,development:admin");
    let deployed = server
        .graphql_as(
            &admin,
            "mutation($source: String!) { deployRuntime(input: {runtimeId: \"desk-prod\", environment: PRODUCTION, source: $source}) { id } }",
            json!({"source": "package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '.'}]}]\n"}),
        )
        .await;
    let production = deployed["data"]["deployRuntime"]["id"].as_str().expect("deployed to PRODUCTION").to_owned();
    let token = server.create_key("dev-only", "", "development:read");
    for revision in mcp_client::REVISIONS {
        let session = mcp_client::connect(&server.base, revision, Some(&token)).await.expect("MCP connects");
        // A production runtime, read by a development-only key: FORBIDDEN, whatever asks.
        let error = session
            .read_resource(ReadResourceRequestParams::new(format!("orgata://runtime/{production}")))
            .await
            .expect_err("forbidden");
        let text = error.to_string();
        assert!(text.contains("-32003") || text.contains("FORBIDDEN"), "{revision}: {text}");
        let error = session
            .read_resource(ReadResourceRequestParams::new("orgata://runtime/no-such-runtime"))
            .await
            .expect_err("not found");
        // 2026-07-28 answers a missing resource with invalid params (rmcp follows the
        // specification); the Orgata code in `data` is the same on both.
        let resource_code = if revision == "2026-07-28" { "-32602" } else { "-32002" };
        let text = error.to_string();
        assert!(text.contains(resource_code) && text.contains("NOT_FOUND"), "{revision}: {text}");
        let mut arguments = serde_json::Map::new();
        arguments.insert("runtimeId".to_owned(), json!("no-such-runtime"));
        arguments.insert("playbook".to_owned(), json!("p"));
        let error = session
            .get_prompt(GetPromptRequestParams::new("validate_business_logic").with_arguments(arguments))
            .await
            .expect_err("not found");
        let text = error.to_string();
        assert!(text.contains(resource_code) && text.contains("NOT_FOUND"), "{revision}: {text}");
        let result = mcp_client::call(&session, "get_runtime", json!({"runtimeId": "no-such-runtime"})).await;
        assert_eq!(mcp_client::failure(&result)["code"], "NOT_FOUND");
        let resources = session.list_all_resources().await.expect("resources/list");
        assert!(resources.iter().all(|resource| !resource.uri.contains("production")), "{revision}");
        let _ = session.cancel().await;
    }
}
