//! The REST API against a real server: every route of the catalogue over HTTP, each response
//! checked against the schema the OpenAPI document declares for it, and the WebSocket.

#[path = "common/server.rs"]
mod server;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use server::TestServer;

struct Api {
    server: TestServer,
    openapi: Value,
    /// (method, path template) of every route called, to prove every route is covered.
    called: Mutex<BTreeSet<(String, String)>>,
}

/// Which template a concrete path matches.
fn template_of(openapi: &Value, method: &str, path: &str) -> String {
    let segments: Vec<&str> = path.split('?').next().unwrap_or_default().split('/').collect();
    for (template, operations) in openapi["paths"].as_object().expect("paths") {
        if operations.get(method).is_none() {
            continue;
        }
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, segment)| part.starts_with('{') || part == segment)
        {
            return template.clone();
        }
    }
    panic!("no route in the OpenAPI document for {method} {path}");
}

impl Api {
    async fn start() -> Api {
        let server = TestServer::start().await;
        let openapi = server
            .client
            .get(format!("{}/api/v1/openapi.json", server.base))
            .send()
            .await
            .expect("openapi")
            .json()
            .await
            .expect("JSON");
        Api { server, openapi, called: Mutex::new(BTreeSet::new()) }
    }

    /// Calls a route and checks the status and the body against the declared schema.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> (Value, reqwest::header::HeaderMap) {
        let request = match body {
            Some(body) => self
                .server
                .client
                .request(method.parse().expect("method"), format!("{}/api/v1{path}", self.server.base))
                .json(&body),
            None => self
                .server
                .client
                .request(method.parse().expect("method"), format!("{}/api/v1{path}", self.server.base)),
        };
        self.send(method, path, request, status).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
        status: u16,
    ) -> (Value, reqwest::header::HeaderMap) {
        let response = request.send().await.expect("request sent");
        let headers = response.headers().clone();
        let actual = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(actual, status, "{method} {path} answered {actual}: {text}");
        let body: Value = serde_json::from_str(&text).expect("JSON body");
        let method = method.to_lowercase();
        let template = template_of(&self.openapi, &method, path);
        self.called.lock().expect("lock").insert((method.clone(), template.clone()));
        let declared = if status < 300 {
            assert_eq!(headers["content-type"], "application/json", "{path}");
            self.openapi["paths"][&template][&method]["responses"][status.to_string()]["content"]["application/json"]["schema"].clone()
        } else {
            assert_eq!(headers["content-type"], "application/problem+json", "{path}");
            assert!(
                self.openapi["paths"][&template][&method]["responses"].get(status.to_string()).is_some(),
                "{status} not declared for {template}"
            );
            self.openapi["components"]["schemas"]["Problem"].clone()
        };
        let validator = jsonschema::validator_for(&declared).expect("declared schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(&body).map(|error| format!("{}: {error}", error.instance_path())).collect();
        assert!(errors.is_empty(), "{method} {path}: the response breaks its declared schema: {errors:?}\n{body}");
        (body, headers)
    }
}

/// Every (lower-case method, path) the OpenAPI document declares.
fn declared_routes(openapi: &Value) -> BTreeSet<(String, String)> {
    openapi["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("operations")
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn every_route_answers_as_its_openapi_schema_declares() {
    let api = Api::start().await;

    // Definitions.
    let (runtimes, _) = api.call("GET", "/runtimes", None, 200).await;
    assert_eq!(runtimes.as_array().expect("list").len(), 4, "the four examples");
    api.call("GET", "/runtimes?environment=DEVELOPMENT", None, 200).await;
    api.call("GET", "/runtimes?environment=MOON", None, 400).await;
    let yaml = "package: desk\nversion: 1.0.0\nroles: [{name: clerk}]\nplaybooks:\n  - name: file\n    role: clerk\n    steps:\n      - {name: one, kind: transform, program: '{n: 1}'}\n      - {name: ask, kind: human, output_schema: {type: object, properties: {ok: {type: boolean}}}}\n      - {name: three, kind: transform, program: '{done: true}'}\n";
    let request = api
        .server
        .client
        .post(format!("{}/api/v1/runtimes?environment=DEVELOPMENT", api.server.base))
        .header("content-type", "application/yaml")
        .body(yaml);
    let (deployed, headers) = api.send("POST", "/runtimes", request, 201).await;
    assert_eq!(deployed["id"], "desk-v1");
    assert_eq!(headers["location"], "/api/v1/runtimes/desk-v1");
    let package: Value = serde_yaml_ng::from_str(yaml).expect("yaml");
    // The same package as JSON is the version it already is.
    let (again, _) = api.call("POST", "/runtimes?environment=DEVELOPMENT&runtimeId=desk-v1", Some(package), 201).await;
    assert_eq!(again["version"], 1);
    let (invalid, _) = api
        .call("POST", "/runtimes?environment=DEVELOPMENT", Some(json!({"package": "x", "version": "one"})), 400)
        .await;
    assert_eq!(invalid["errors"][0]["pointer"], "/version");
    let (runtime, _) = api.call("GET", "/runtimes/kitchen-v1", None, 200).await;
    assert_eq!(runtime["roles"][0]["name"], "cook");
    api.call("GET", "/runtimes/kitchen-v1?version=1", None, 200).await;
    api.call("GET", "/runtimes/nope-v1", None, 404).await;
    let (playbooks, _) = api.call("GET", "/runtimes/kitchen-v1/playbooks", None, 200).await;
    assert_eq!(playbooks[0]["name"], "pbj-sandwich");
    let (schema, _) = api.call("GET", "/runtimes/kitchen-v1/playbooks/pbj-sandwich/schema", None, 200).await;
    assert_eq!(schema["inputSchema"]["required"], json!(["sandwichType"]));
    assert_eq!(schema["fields"][0]["widget"], "select");
    let (role, _) = api.call("GET", "/runtimes/kitchen-v1/roles/cook", None, 200).await;
    assert_eq!(role["capabilities"][0], "food-preparation");
    api.call("GET", "/runtimes/kitchen-v1/roles/baker", None, 404).await;
    let (operation, _) = api.call("GET", "/runtimes/kitchen-v1/operations/gather-ingredients", None, 200).await;
    assert_eq!(operation["kind"], "TRANSFORM");

    // The pbj flow.
    let start = json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}, "executionOptions": {"mode": "AUTO", "idempotencyKey": "order-1"}});
    let (handle, headers) = api.call("POST", "/runtimes/kitchen-v1/executions", Some(start), 201).await;
    let id = handle["executionId"].as_str().expect("id").to_owned();
    assert_eq!(headers["location"], format!("/api/v1/executions/{id}").as_str());
    let (bad, _) = api
        .call(
            "POST",
            "/runtimes/kitchen-v1/executions",
            Some(json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "tuna"}})),
            400,
        )
        .await;
    assert_eq!(bad["errors"][0]["pointer"], "/sandwichType");
    api.call("POST", "/runtimes/kitchen-v1/executions", Some(json!({"playbook": "pbj-sandwich"})), 400).await;
    let (waiting, _) = api.call("GET", &format!("/executions/{id}?wait=10"), None, 200).await;
    assert_eq!(waiting["status"], "WAITING");
    assert_eq!(waiting["currentStep"], "choose-jelly");
    let (interventions, _) =
        api.call("GET", &format!("/executions/{id}/interventions?status=PENDING"), None, 200).await;
    let intervention = interventions[0]["id"].as_str().expect("intervention id").to_owned();
    let (wrong, _) = api
        .call(
            "POST",
            &format!("/executions/{id}/interventions/{intervention}"),
            Some(json!({"response": {"jelly_flavor": "mango"}})),
            400,
        )
        .await;
    assert_eq!(wrong["errors"][0]["pointer"], "/jelly_flavor");
    api.call(
        "POST",
        &format!("/executions/{id}/interventions/{intervention}"),
        Some(json!({"response": {"jelly_flavor": "grape"}, "notes": "lots"})),
        200,
    )
    .await;
    api.call(
        "POST",
        &format!("/executions/{id}/interventions/{intervention}"),
        Some(json!({"response": {"jelly_flavor": "grape"}})),
        409,
    )
    .await;
    let (done, _) = api.call("GET", &format!("/executions/{id}?wait=10"), None, 200).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["output"], json!({"name": "PB&J", "flavor": "grape"}));
    let (history, _) = api.call("GET", &format!("/executions/{id}/history?afterSeq=3"), None, 200).await;
    assert_eq!(history[0]["seq"], 4);
    api.call("GET", &format!("/executions/{id}/history?afterSeq=three"), None, 400).await;
    // Checkpoints: the start, then one after each step, with the context saved there.
    let (checkpoints, _) = api.call("GET", &format!("/executions/{id}/checkpoints"), None, 200).await;
    let checkpoints = checkpoints.as_array().expect("a list");
    assert_eq!(checkpoints[0]["stepIndex"], 0);
    let last = checkpoints.last().expect("a last checkpoint");
    assert_eq!(last["steps"]["choose-jelly"], json!({"jelly_flavor": "grape"}), "{last}");
    api.call("GET", "/executions/0190a5d2-0000-7000-8000-000000000000/checkpoints", None, 404).await;
    api.call("GET", "/executions/0190a5d2-0000-7000-8000-000000000000", None, 404).await;

    // Listing, a page at a time.
    api.call(
        "POST",
        "/runtimes/kitchen-v1/executions",
        Some(json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "deluxe"}})),
        201,
    )
    .await;
    let (page, _) = api.call("GET", "/executions?runtimeId=kitchen-v1&first=1", None, 200).await;
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let cursor = page["pageInfo"]["endCursor"].as_str().expect("cursor").to_owned();
    let (next, _) =
        api.call("GET", &format!("/executions?runtimeId=kitchen-v1&first=1&after={cursor}"), None, 200).await;
    assert_eq!(next["edges"][0]["node"]["id"], id.as_str());
    api.call("GET", "/interventions?environment=DEVELOPMENT&mine=true", None, 200).await;

    // Steering.
    let (handle, _) =
        api.call("POST", "/runtimes/desk-v1/executions", Some(json!({"playbookName": "file"})), 201).await;
    let desk = handle["executionId"].as_str().expect("id").to_owned();
    api.call("GET", &format!("/executions/{desk}?wait=10"), None, 200).await;
    let (paused, _) = api.call("POST", &format!("/executions/{desk}/pause"), None, 200).await;
    assert_eq!(paused["status"], "PAUSED");
    api.call("POST", &format!("/executions/{desk}/pause"), None, 409).await;
    api.call("POST", &format!("/executions/{desk}/resume"), None, 200).await;
    let (edited, _) = api
        .call(
            "POST",
            &format!("/executions/{desk}/actions"),
            Some(json!({"action": "EDIT_STATE", "patch": {"a": 1}})),
            200,
        )
        .await;
    assert_eq!(edited["state"], json!({"a": 1}));
    let (kept, _) = api
        .call(
            "POST",
            &format!("/executions/{desk}/actions"),
            Some(json!({"action": "JUMP", "step": "ask", "state": "KEEP"})),
            200,
        )
        .await;
    assert_eq!(kept["state"], json!({"a": 1}), "JUMP with KEEP kept the edited state");
    for action in [json!({"action": "BACK"}), json!({"action": "RETRY"}), json!({"action": "JUMP", "step": "ask"})] {
        api.call("POST", &format!("/executions/{desk}/actions"), Some(action), 200).await;
        api.call("GET", &format!("/executions/{desk}?wait=10"), None, 200).await;
    }
    api.call("POST", &format!("/executions/{desk}/actions"), Some(json!({"action": "LEAP"})), 400).await;
    api.call(
        "POST",
        &format!("/executions/{desk}/actions"),
        Some(json!({"action": "SKIP", "output": {"ok": true}})),
        200,
    )
    .await;
    let (finished, _) = api.call("GET", &format!("/executions/{desk}?wait=10"), None, 200).await;
    assert_eq!(finished["status"], "COMPLETED");
    let (handle, _) =
        api.call("POST", "/runtimes/desk-v1/executions", Some(json!({"playbookName": "file"})), 201).await;
    let desk = handle["executionId"].as_str().expect("id").to_owned();
    api.call("POST", &format!("/executions/{desk}/abort"), Some(json!({})), 400).await;
    let (aborted, _) =
        api.call("POST", &format!("/executions/{desk}/abort"), Some(json!({"reason": "duplicate"})), 200).await;
    assert_eq!(aborted["status"], "ABORTED");

    // Runtime versions: retire every version (new executions are refused), then roll back to
    // the newest, which new executions use again.
    let (versions, _) = api.call("GET", "/runtimes/desk-v1/versions", None, 200).await;
    let newest = versions[0]["version"].clone();
    assert_eq!(versions[0]["current"], true, "{versions}");
    let (retired, _) = api.call("POST", "/runtimes/desk-v1/retire", Some(json!({})), 200).await;
    assert!(retired.as_array().expect("versions").iter().all(|version| version["retiredAt"].is_string()), "{retired}");
    api.call("POST", "/runtimes/desk-v1/executions", Some(json!({"playbookName": "file"})), 409).await;
    let (back, _) = api.call("POST", "/runtimes/desk-v1/rollback", Some(json!({"version": newest})), 200).await;
    assert_eq!((&back[0]["current"], &back[0]["retiredAt"]), (&json!(true), &Value::Null), "{back}");
    api.call("POST", "/runtimes/desk-v1/executions", Some(json!({"playbookName": "file"})), 201).await;

    // Every route of the table was exercised.
    let declared = declared_routes(&api.openapi);
    let called = api.called.lock().expect("lock").clone();
    let missed: Vec<_> = declared.difference(&called).collect();
    assert!(missed.is_empty(), "routes never exercised: {missed:?}");
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_catalogue_routes() {
    let api = Api::start().await;
    let declared: BTreeSet<(String, String)> =
        declared_routes(&api.openapi).into_iter().map(|(method, path)| (method.to_uppercase(), path)).collect();
    let catalogue: BTreeSet<(String, String)> = orgata::api::catalog::OPERATIONS
        .iter()
        .filter_map(|operation| operation.rest.map(|rest| (rest.method.as_str().to_owned(), rest.path.to_owned())))
        .collect();
    assert_eq!(declared, catalogue);
    let ids: BTreeSet<String> = api.openapi["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|operations| {
            operations
                .as_object()
                .expect("operations")
                .values()
                .map(|operation| operation["operationId"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids.len(), catalogue.len(), "one operationId per route");
    // Nothing outside the table answers.
    for (method, path) in
        [("GET", "/api/v1/executions/x/secret"), ("DELETE", "/api/v1/runtimes/kitchen-v1"), ("GET", "/api/v1/admin")]
    {
        let response = api
            .server
            .client
            .request(method.parse().expect("method"), format!("{}{path}", api.server.base))
            .send()
            .await
            .expect("sent");
        assert!(matches!(response.status().as_u16(), 404 | 405), "{method} {path} answered {}", response.status());
    }
    assert_eq!(api.openapi["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_websocket_replays_and_streams_without_gaps() {
    let api = Api::start().await;
    let (handle, _) = api
        .call(
            "POST",
            "/runtimes/kitchen-v1/executions",
            Some(json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}})),
            201,
        )
        .await;
    let id = handle["executionId"].as_str().expect("id").to_owned();
    let url = format!("{}/api/v1/ws", api.server.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("connects");
    let receive = async |socket: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), StreamExt::next(socket))
                .await
                .expect("in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("JSON");
            }
        }
    };
    socket
        .send(Message::text(json!({"type": "subscribe_execution", "executionId": id, "afterSeq": 0}).to_string()))
        .await
        .expect("sent");
    assert_eq!(receive(&mut socket).await["type"], "subscribed");
    let mut seen = Vec::new();
    loop {
        let message = receive(&mut socket).await;
        assert_eq!(message["type"], "execution_event", "{message}");
        seen.push(message["event"]["seq"].as_i64().expect("seq"));
        if message["event"]["type"] == "INTERVENTION_REQUESTED" {
            break;
        }
    }
    socket
        .send(Message::text(json!({"type": "unsubscribe_execution", "executionId": id}).to_string()))
        .await
        .expect("sent");
    assert_eq!(receive(&mut socket).await["type"], "unsubscribed");

    let (interventions, _) =
        api.call("GET", &format!("/executions/{id}/interventions?status=PENDING"), None, 200).await;
    let intervention = interventions[0]["id"].as_str().expect("id").to_owned();
    api.call(
        "POST",
        &format!("/executions/{id}/interventions/{intervention}"),
        Some(json!({"response": {"jelly_flavor": "grape"}})),
        200,
    )
    .await;
    let (done, _) = api.call("GET", &format!("/executions/{id}?wait=10"), None, 200).await;
    let last = done["lastSeq"].as_i64().expect("lastSeq");

    let after = *seen.last().expect("events");
    socket
        .send(Message::text(json!({"type": "subscribe_execution", "executionId": id, "afterSeq": after}).to_string()))
        .await
        .expect("sent");
    assert_eq!(receive(&mut socket).await["type"], "subscribed");
    while *seen.last().expect("events") < last {
        let message = receive(&mut socket).await;
        seen.push(message["event"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seen, (1..=last).collect::<Vec<_>>());

    socket.send(Message::text("not json".to_owned())).await.expect("sent");
    assert_eq!(receive(&mut socket).await["code"], "BAD_INPUT");
    socket
        .send(Message::text(
            json!({"type": "subscribe_execution", "executionId": "0190a5d2-0000-7000-8000-000000000000"}).to_string(),
        ))
        .await
        .expect("sent");
    assert_eq!(receive(&mut socket).await["type"], "subscribed");
    let error = receive(&mut socket).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("NOT_FOUND")), "{error}");
}

#[test]
fn the_committed_openapi_document_matches_the_server() {
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend-contract/openapi.json"),
    )
    .expect("frontend-contract/openapi.json is committed");
    let generated = orgata::contract::files()
        .into_iter()
        .find(|(name, _)| *name == "openapi.json")
        .expect("openapi in the contract")
        .1;
    assert!(
        committed == generated,
        "frontend-contract/openapi.json was not up to date; run `cargo run -- contract export` and commit the result"
    );
}
