//! Hostile clients against a real server: oversized and deeply nested bodies, invalid UTF-8,
//! amplifying GraphQL documents, clients that stop reading their WebSocket, thousands of
//! subscriptions on one connection, packages that reach for files or internal addresses, and jq
//! programs that never end. Each case asserts the clear error the server answers, and that a
//! normal request succeeds right after.

#[path = "common/server.rs"]
mod server;

#[path = "common/mcp_client.rs"]
mod mcp_client;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use server::{GraphQLWs, TestServer, wait_until};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const DEPLOY: &str = "mutation($input: DeployRuntimeInput!) { deployRuntime(input: $input) { id version } }";
const EXECUTE: &str = "mutation($input: ExecutePlaybookInput!) { executePlaybook(input: $input) { id } }";

/// A GraphQL query, a REST call and (with `mcp`) an MCP tool call all succeed.
async fn still_serving(server: &TestServer, mcp: bool) {
    let data = server.data("{ me { id } runtimes(environment: DEVELOPMENT) { id } }", json!({})).await;
    assert_eq!(data["me"]["id"], "developer");
    let response = server.client.get(format!("{}/api/v1/runtimes", server.base)).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    if mcp {
        let session = mcp_client::connect(&server.base, "2025-11-25", None).await.expect("MCP connects");
        let runtimes = mcp_client::ok(&session, "list_runtimes", json!({})).await;
        assert!(runtimes.to_string().contains("kitchen-v1"), "{runtimes}");
        let _ = session.cancel().await;
    }
}

fn refused_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// `[` × `levels`, then `]` × `levels`.
fn nested_arrays(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// A JSON value nested `levels` deep: `{"a": {"a": … 1}}`.
fn nested_objects(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({"a": inner}))
}

async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    server
        .client
        .post(format!("{}{path}", server.base))
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .expect("sent")
}

async fn deploy(server: &TestServer, package: Value) -> Value {
    server.graphql(DEPLOY, json!({"input": {"environment": "DEVELOPMENT", "package": package}})).await
}

/// A package whose playbooks each run one step.
fn package(name: &str, playbooks: Vec<Value>) -> Value {
    json!({"package": name, "version": "1.0.0", "roles": [{"name": "clerk"}], "playbooks": playbooks})
}

async fn start(server: &TestServer, runtime: &str, playbook: &str, input: Value) -> String {
    let data =
        server.data(EXECUTE, json!({"input": {"runtimeId": runtime, "playbook": playbook, "input": input}})).await;
    data["executePlaybook"]["id"].as_str().expect("id").to_owned()
}

/// The execution once FAILED or COMPLETED, with its error.
async fn settled(server: &TestServer, id: &str) -> Value {
    wait_until(Duration::from_secs(120), &format!("execution {id} to settle"), || async {
        let data = server.data("query($id: ID!) { execution(id: $id) { status error } }", json!({"id": id})).await;
        let execution = &data["execution"];
        (execution["status"] == "FAILED" || execution["status"] == "COMPLETED").then(|| execution.clone())
    })
    .await
}

// ----- 1. Oversized bodies ---------------------------------------------------------------

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 64 * 1024).await;
    let big = json!({"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic", "pad": "x".repeat(100_000)}});

    // REST, with a Content-Length and chunked.
    let response =
        post_raw(&server, "/api/v1/runtimes/kitchen-v1/executions", "application/json", big.to_string()).await;
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE", "{problem}");
    assert_eq!(problem["detail"], "the body is larger than 65536 bytes");
    let chunks = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096])));
    let response = post_raw(
        &server,
        "/api/v1/runtimes/kitchen-v1/executions",
        "application/json",
        reqwest::Body::wrap_stream(chunks),
    )
    .await;
    assert_eq!(response.status(), 413);

    // GraphQL.
    let query = json!({"query": "mutation($input: ExecutePlaybookInput!) { executePlaybook(input: $input) { id } }",
        "variables": {"input": {"runtimeId": "kitchen-v1", "playbook": "pbj-sandwich", "input": big["input"]}}});
    let response = post_raw(&server, "/graphql", "application/json", query.to_string()).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["errors"][0]["message"], "the body is larger than 65536 bytes");
    let chunks = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096])));
    let response = post_raw(&server, "/graphql", "application/json", reqwest::Body::wrap_stream(chunks)).await;
    assert_eq!(response.status(), 413);

    // MCP.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_runtimes", "arguments": {"pad": "x".repeat(100_000)}}});
    let response = post_raw(&server, "/mcp", "application/json", call.to_string()).await;
    assert_eq!(response.status(), 413);

    // A WebSocket message over the limit ends that connection.
    let mut socket = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    let padded = format!("{{\"query\": \"{{ me {{ id }} }}\", \"pad\": \"{}\"}}", "x".repeat(100_000));
    socket.send_text(format!("{{\"type\": \"subscribe\", \"id\": \"big\", \"payload\": {padded}}}")).await;
    assert!(socket.closed_within(Duration::from_secs(10)).await, "the connection stays open");

    still_serving(&server, true).await;
}

// ----- 2. Deeply nested JSON -------------------------------------------------------------

#[tokio::test]
async fn deeply_nested_json_is_refused_without_overflowing() {
    let server = TestServer::start().await;
    let deep = nested_arrays(100_000);

    // REST body.
    let body = format!(r#"{{"playbookName": "pbj-sandwich", "input": {deep}}}"#);
    let response = post_raw(&server, "/api/v1/runtimes/kitchen-v1/executions", "application/json", body).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["code"], "BAD_INPUT");
    assert!(problem["detail"].as_str().expect("detail").contains("recursion limit exceeded"), "{problem}");

    // GraphQL variables.
    let body = format!(r#"{{"query": "query($x: JSON) {{ me {{ id }} }}", "variables": {{"x": {deep}}}}}"#);
    let response = post_raw(&server, "/graphql", "application/json", body).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.starts_with("the body is not JSON") && message.contains("recursion limit"), "{message}");

    // Nesting the JSON parser accepts but the engine could not keep is refused by the API.
    let input = json!({"runtimeId": "kitchen-v1", "playbook": "pbj-sandwich", "input": nested_objects(100)});
    let error = server.error(EXECUTE, json!({"input": input})).await;
    assert_eq!(error["message"], "a variable nests deeper than 64 levels");
    assert_eq!(error["extensions"]["code"], "BAD_INPUT");
    let response = server
        .client
        .post(format!("{}/api/v1/runtimes/kitchen-v1/executions", server.base))
        .json(&json!({"playbookName": "pbj-sandwich", "input": nested_objects(100)}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["detail"], "a variable nests deeper than 64 levels", "{problem}");

    // MCP: a tool call whose arguments nest 100,000 deep, and one 100 deep.
    let call = format!(
        r#"{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "list_runtimes", "arguments": {{"environment": {deep}}}}}}}"#
    );
    let response = post_raw(&server, "/mcp", "application/json", call).await;
    assert!(response.status().is_client_error(), "HTTP {}", response.status());
    let text = response.text().await.expect("body");
    assert!(text.contains("recursion limit") || text.contains("Parse error") || text.contains("-32700"), "{text}");
    let session = mcp_client::connect(&server.base, "2025-11-25", None).await.expect("MCP connects");
    let result = mcp_client::call(
        &session,
        "execute_playbook",
        json!({"runtimeId": "kitchen-v1", "playbookName": "pbj-sandwich", "input": nested_objects(100)}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert!(format!("{result:?}").contains("nests deeper than 64 levels"), "{result:?}");
    let _ = session.cancel().await;

    still_serving(&server, true).await;
}

// ----- 3. Amplifying GraphQL documents ---------------------------------------------------

#[tokio::test]
async fn graphql_documents_cannot_amplify() {
    let server = TestServer::start().await;
    let refused = |body: &Value| body["errors"][0]["message"].as_str().unwrap_or_default().to_owned();

    // 100,000 nested selections, and a list literal as deep, over POST, GET and WebSocket.
    let deep = format!("{}{}", "{ a ".repeat(100_000), "}".repeat(100_000));
    let body = server.graphql(&deep, json!({})).await;
    assert_eq!(refused(&body), "the document nests 100000 levels deep; at most 100 are allowed");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT");
    let literal = format!("{{ runtimes(environment: {}) {{ id }} }}", nested_arrays(100_000));
    let body = server.graphql(&literal, json!({})).await;
    assert_eq!(refused(&body), "the document nests 100002 levels deep; at most 100 are allowed");
    let short = format!("{}{}", "{ a ".repeat(500), "}".repeat(500));
    let response = server
        .client
        .get(format!("{}/graphql", server.base))
        .query(&[("query", short.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(refused(&body), "the document nests 500 levels deep; at most 100 are allowed");
    let mut socket = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    socket.subscribe("deep", &format!("subscription {deep}"), json!({})).await;
    let message = socket.next_message().await;
    assert_eq!(
        message["payload"]["errors"][0]["message"],
        "the document nests 100000 levels deep; at most 100 are allowed"
    );

    // Depth, complexity and aliases.
    let too_deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "}".repeat(14)
    );
    let body = server.graphql(&too_deep, json!({})).await;
    assert!(refused(&body).contains("nested too deep"), "{body}");
    let aliases: String = (0..31).map(|index| format!("a{index}: me {{ id }} ")).collect();
    let body = server.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(refused(&body), "the query uses 31 aliases; at most 30 are allowed");
    let many: String = "id ".repeat(6_000);
    let started = Instant::now();
    let body = server.graphql(&format!("{{ me {{ {many} }} }}"), json!({})).await;
    assert!(refused(&body).contains("too complex"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20), "6,000 fields took {:?}", started.elapsed());

    // Fragments that spread fragments: 2^24 fields once expanded, refused without expanding.
    let mut fragments = String::from("fragment F24 on Query { __typename }\n");
    for level in 0..24 {
        fragments +=
            &format!("fragment F{level} on Query {{ ...F{next} me {{ ...M{next} }} ...F{next} }}\n", next = level + 1);
    }
    let fragments = (0..=24).fold(fragments, |text, level| text + &format!("fragment M{level} on Me {{ id }}\n"));
    let started = Instant::now();
    let body = server.graphql(&format!("{{ ...F0 }}\n{fragments}"), json!({})).await;
    assert!(refused(&body).contains("once its fragments are expanded; at most 10000 are allowed"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());

    // Batches are refused whole.
    let batch = json!([{"query": "{ me { id } }"}, {"query": "{ me { id } }"}]);
    let response = post_raw(&server, "/graphql", "application/json", batch.to_string()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(refused(&body), "batched requests are not supported; send one operation per request");

    // A form or text body, which any web page can send, is not a GraphQL request.
    let response = post_raw(&server, "/graphql", "text/plain", json!({"query": "{ me { id } }"}).to_string()).await;
    assert_eq!(response.status(), 415);

    still_serving(&server, false).await;
}

// ----- 4. Invalid UTF-8 ------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let server = TestServer::start().await;
    let mut body = br#"{"playbookName": "pbj-sandwich", "input": {"sandwichType": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}}"#);

    let response = post_raw(&server, "/api/v1/runtimes/kitchen-v1/executions", "application/json", body.clone()).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    assert!(problem["detail"].as_str().expect("detail").starts_with("the body is not JSON"), "{problem}");

    let mut query = br#"{"query": "{ me { id } }", "variables": {"x": ""#.to_vec();
    query.extend_from_slice(&[0xff, 0xfe]);
    query.extend_from_slice(br#""}}"#);
    let response = post_raw(&server, "/graphql", "application/json", query).await;
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("JSON");
    assert!(answer["errors"][0]["message"].as_str().expect("message").starts_with("the body is not JSON"), "{answer}");

    let mut call = br#"{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": ""#.to_vec();
    call.extend_from_slice(&[0xff, 0xfe]);
    call.extend_from_slice(br#""}}"#);
    let response = post_raw(&server, "/mcp", "application/json", call).await;
    assert!(response.status().is_client_error(), "HTTP {}", response.status());

    // Percent-encoded bytes that are not UTF-8, in a path and in query strings.
    let response = server.client.get(format!("{}/api/v1/executions/%FF%FE", server.base)).send().await.expect("sent");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["detail"], "the path is not valid", "{problem}");
    // (Query strings decode lossily: the byte becomes U+FFFD, which is no status.)
    let response =
        server.client.get(format!("{}/api/v1/executions?status=%FF", server.base)).send().await.expect("sent");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["code"], "BAD_INPUT", "{problem}");
    assert!(problem["detail"].as_str().expect("detail").contains("does not contain value \"\u{fffd}\""), "{problem}");
    let response = server.client.get(format!("{}/graphql?query=%FF", server.base)).send().await.expect("sent");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("JSON");
    let message = answer["errors"][0]["message"].as_str().expect("message");
    assert!(message.starts_with("the query does not parse") && message.contains("\u{fffd}"), "{answer}");

    // Raw bytes that are not UTF-8 (nor ASCII) in the request line.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connects");
    let mut request = b"GET /api/v1/executions/".to_vec();
    request.extend_from_slice(&[0xff, 0xfe]);
    request.extend_from_slice(format!(" HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes());
    stream.write_all(&request).await.expect("written");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    still_serving(&server, true).await;
}

// ----- 5. Slow WebSocket clients ---------------------------------------------------------

/// A WebSocket whose receive buffer is tiny, so that the server's writes stall once the
/// kernel's buffers are full.
async fn slow_socket(url: &str, protocol: Option<&str>) -> Socket {
    let mut request = url.into_client_request().expect("request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    }
    let host = request.uri().authority().expect("authority").as_str().to_owned();
    let address: std::net::SocketAddr = host.parse().expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let stream = socket.connect(address).await.expect("connects");
    let (socket, _) = tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("WebSocket handshake");
    socket
}

/// Reads what the server had written until the connection ends; returns the bytes read, or
/// `None` if the connection stayed open (nothing for 15 s).
async fn drain(socket: &mut Socket) -> Option<usize> {
    let mut bytes = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
            Err(_) => return None,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Some(bytes),
            Ok(Some(Ok(message))) => bytes += message.len(),
        }
    }
}

async fn websocket_gauge(server: &TestServer) -> i64 {
    let text =
        server.client.get(format!("{}/metrics", server.base)).send().await.expect("sent").text().await.expect("text");
    let line = text.lines().find(|line| line.starts_with("orgata_graphql_websockets ")).expect("gauge");
    line.rsplit(' ').next().and_then(|value| value.parse().ok()).expect("a number")
}

/// A playbook that waits on a person: its executions stay open, their inputs in the history.
fn waiting_package() -> Value {
    let wait = json!({"name": "wait", "kind": "human", "role": "clerk", "output_schema": {"type": "object"}});
    package("slow", vec![json!({"name": "hold", "role": "clerk", "steps": [wait]})])
}

#[tokio::test]
async fn slow_websocket_clients_are_disconnected_and_others_served() {
    let server = TestServer::start_with(|config| config.ws_send_timeout_seconds = 8).await;
    assert!(deploy(&server, waiting_package()).await.get("errors").is_none());
    // Twelve executions with a 1 MB input each: every replay of a history is over 1 MB.
    let mut ids = Vec::new();
    for index in 0..12 {
        ids.push(start(&server, "slow-v1", "hold", json!({"index": index, "pad": "x".repeat(1_000_000)})).await);
    }
    let total = 12_000_000;

    // GraphQL: one connection replays one big history twelve times and never reads.
    let ws = format!("{}/graphql/ws", server.base.replacen("http", "ws", 1));
    let mut slow = slow_socket(&ws, Some("graphql-transport-ws")).await;
    slow.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.expect("sent");
    for index in 0..12 {
        let subscribe = json!({"type": "subscribe", "id": format!("s{index}"), "payload": {
            "query": "subscription($id: ID!) { executionEvents(executionId: $id) { seq type payload } }",
            "variables": {"id": ids[0]}}});
        slow.send(Message::text(subscribe.to_string())).await.expect("sent");
    }
    // REST: one connection follows the twelve executions and never reads.
    let rest = format!("{}/api/v1/ws", server.base.replacen("http", "ws", 1));
    let mut slow_rest = slow_socket(&rest, None).await;
    for id in &ids {
        let subscribe = json!({"type": "subscribe_execution", "executionId": id, "afterSeq": 0});
        slow_rest.send(Message::text(subscribe.to_string())).await.expect("sent");
    }
    let rest_subscribed = Instant::now();

    // While the slow clients are stuck (their subscriptions must not hold database connections),
    // others are served: the database is reachable, a query runs, a subscription gets events.
    // This sleep is part of the case: nothing shows when the server's buffers towards the
    // clients that never read are full, so they are given time to fill and block.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let ready = server.client.get(format!("{}/readyz", server.base)).send().await.expect("sent");
    assert_eq!(ready.status(), 200);
    let mut healthy = GraphQLWs::connect(&server.base, "graphql-transport-ws").await;
    healthy
        .subscribe(
            "h",
            "subscription($id: ID!) { executionEvents(executionId: $id) { seq type } }",
            json!({"id": ids[1]}),
        )
        .await;
    assert_eq!(healthy.next_data().await["executionEvents"]["type"], "EXECUTION_STARTED");
    still_serving(&server, false).await;
    assert!(started.elapsed() < Duration::from_secs(5), "others waited {:?}", started.elapsed());
    assert_eq!(websocket_gauge(&server).await, 2, "the slow GraphQL connection is still open meanwhile");

    // The server gives up on the slow connections after 8 s without progress.
    wait_until(Duration::from_secs(60), "the server to close the slow GraphQL connection", || async {
        (websocket_gauge(&server).await <= 1).then_some(())
    })
    .await;
    let read = drain(&mut slow).await.expect("the server closed the slow GraphQL connection");
    assert!(read < total, "the slow GraphQL client was sent everything ({read} bytes)");
    // The REST connection has its own send timeout, counted from when its own writes stopped
    // making progress (shortly after it subscribed): reading it earlier would let them
    // progress again. This wait is the case itself: the timeout must pass unread.
    tokio::time::sleep_until((rest_subscribed + Duration::from_secs(8 + 6)).into()).await;
    let read = drain(&mut slow_rest).await.expect("the server closed the slow REST connection");
    assert!(read < total, "the slow REST client was sent everything ({read} bytes)");

    // The healthy subscriber still gets new events.
    server.data("mutation($id: ID!) { pauseExecution(id: $id) { id } }", json!({"id": ids[1]})).await;
    loop {
        let event = healthy.next_data().await;
        if event["executionEvents"]["type"] == "PAUSED" {
            break;
        }
    }
    assert_eq!(websocket_gauge(&server).await, 1);
    still_serving(&server, true).await;
}

// ----- 6. Thousands of subscriptions on one connection -----------------------------------

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let server = TestServer::start().await;
    let live = "subscription { events(environment: DEVELOPMENT) { seq type } }";
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let mut socket = GraphQLWs::connect(&server.base, protocol).await;
        for index in 0..1_000 {
            socket.subscribe(&format!("e{index}"), live, json!({})).await;
        }
        // 256 hold; the other 744 are refused, each with an error for its id.
        for index in 256..1_000 {
            let message = socket.next_message().await;
            assert_eq!(message["type"], "error", "{message}");
            assert_eq!(message["id"], format!("e{index}"));
            let error = if protocol == "graphql-ws" { &message["payload"] } else { &message["payload"][0] };
            assert_eq!(error["message"], "at most 256 subscriptions per connection", "{message}");
            assert_eq!(error["extensions"]["code"], "BAD_INPUT");
        }
        // Ending one frees its place.
        socket.complete("e0").await;
        assert_eq!(socket.next_message().await, json!({"type": "complete", "id": "e0"}));
        socket.subscribe("again", live, json!({})).await;
        assert!(socket.quiet_for(Duration::from_millis(500)).await, "the new subscription was refused");
        socket.subscribe("over", live, json!({})).await;
        assert_eq!(socket.next_message().await["id"], "over");
        socket.close().await;
    }

    // REST: 256 executions at most per connection.
    let url = format!("{}/api/v1/ws", server.base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.expect("connects");
    for index in 0..1_000 {
        let id = format!("00000000-0000-7000-8000-{index:012}");
        let subscribe = json!({"type": "subscribe_execution", "executionId": id, "afterSeq": 0});
        socket.send(Message::text(subscribe.to_string())).await.expect("sent");
    }
    let mut refused = 0;
    let mut subscribed = 0;
    while refused + subscribed < 1_000 {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(&text).expect("JSON");
        match message["type"].as_str() {
            Some("subscribed") => subscribed += 1,
            Some("error") if message["message"] == "at most 256 subscriptions per connection" => {
                assert_eq!(message["code"], "BAD_INPUT");
                refused += 1;
            }
            // Each followed execution is unknown: its subscription reports NOT_FOUND.
            Some("error") => assert_eq!(message["code"], "NOT_FOUND", "{message}"),
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!((subscribed, refused), (256, 744));
    still_serving(&server, false).await;
}

// ----- 7. Packages that reach for files --------------------------------------------------

#[tokio::test]
async fn packages_cannot_reach_outside_themselves() {
    let server = TestServer::start().await;
    let step = |extra: Value| {
        let mut step = json!({"name": "s", "kind": "transform", "program": "."});
        step.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        package("reach", vec![json!({"name": "p", "steps": [step]})])
    };
    let cases = [
        ("a file $ref", step(json!({"input_schema": {"$ref": "file:///etc/passwd"}}))),
        ("a relative $ref", step(json!({"output_schema": {"$ref": "../../../etc/passwd#/x"}}))),
        ("a remote $ref", step(json!({"input_schema": {"$ref": "http://169.254.169.254/latest/meta-data"}}))),
        ("a jq include", step(json!({"program": "include \"../../../etc/passwd\"; ."}))),
        ("a jq import", step(json!({"program": "import \"/etc/passwd\" as secrets; ."}))),
        ("the environment", step(json!({"program": "env"}))),
        ("an operation path", step(json!({"operation": "../../operations/secret"}))),
    ];
    for (what, package) in cases {
        let body = deploy(&server, package).await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_INPUT", "{what}: {body}");
        let problems = error["extensions"]["errors"].to_string();
        assert!(problems.contains("/playbooks/0/steps/0/"), "{what}: {body}");
    }
    let body = server
        .graphql(
            DEPLOY,
            json!({"input": {"environment": "DEVELOPMENT", "runtimeId": "../../etc", "package": step(json!({}))}}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT", "{body}");

    // YAML whose aliases expand to a billion strings.
    let mut bomb = String::from("package: bomb\nversion: 1.0.0\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let previous = format!("*l{}", level - 1);
        bomb += &format!("l{level}: &l{level} [{}]\n", vec![previous; 10].join(", "));
    }
    let started = Instant::now();
    let body = server.graphql(DEPLOY, json!({"input": {"environment": "DEVELOPMENT", "source": bomb}})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT", "{body}");
    assert!(refused_message(&body).ends_with("is not valid YAML: repetition limit exceeded"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());

    let body = deploy(&server, step(json!({}))).await;
    assert_eq!(body["data"]["deployRuntime"]["id"], "reach-v1", "{body}");
    still_serving(&server, false).await;
}

// ----- 8. Webhooks to internal addresses -------------------------------------------------

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused() {
    let server = TestServer::start().await;
    let admin = server.create_key("admin", "", "production:admin,development:admin");
    let webhook = |url: &str| {
        package("hook", vec![json!({"name": "p", "steps": [{"name": "call", "kind": "webhook", "url": url}]})])
    };
    let refused = |environment: &str| format!("is not on the {environment} allow-list");
    let not_http = "must be an http or https URL";
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", refused("development")),
        ("http://[::ffff:169.254.169.254]/", refused("development")),
        ("http://metadata.google.internal/computeMetadata/v1/", refused("development")),
        ("http://0.0.0.0:8080/", refused("development")),
        ("http://10.0.0.1/", refused("development")),
        ("http://127.0.0.1.nip.io/", refused("development")),
        ("http://127.0.0.1@169.254.169.254/", refused("development")),
        ("http://user:secret@127.0.0.1/", refused("development")),
        ("file:///etc/passwd", not_http.to_owned()),
        ("gopher://127.0.0.1:25/", not_http.to_owned()),
    ] {
        let body = server
            .graphql_as(&admin, DEPLOY, json!({"input": {"environment": "DEVELOPMENT", "package": webhook(url)}}))
            .await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_INPUT", "{url}: {body}");
        assert!(body.to_string().contains(&why), "{url}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["errors"][0]["pointer"], "/playbooks/0/steps/0/url",
            "{url}: {body}"
        );
    }
    // Loopback is allowed in development only; production has no allow-list by default.
    let body = server
        .graphql_as(
            &admin,
            DEPLOY,
            json!({"input": {"environment": "PRODUCTION", "package": webhook("http://127.0.0.1:9/hook")}}),
        )
        .await;
    assert!(body.to_string().contains(&refused("production")), "{body}");

    let body = server
        .graphql_as(
            &admin,
            DEPLOY,
            json!({"input": {"environment": "DEVELOPMENT", "package": webhook("http://127.0.0.1:9/hook")}}),
        )
        .await;
    assert_eq!(body["data"]["deployRuntime"]["id"], "hook-v1", "{body}");
    let me = server.graphql_as(&admin, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], "key:admin");
}

// ----- 9. jq programs that never end -----------------------------------------------------

/// CPU time (user + system, in clock ticks) of this process's jq evaluator threads.
#[cfg(target_os = "linux")]
fn evaluator_cpu() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("tasks").flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let Some((name, rest)) = stat.split_once(") ") else { continue };
        if !name.ends_with("(orgata-jq") {
            continue;
        }
        let fields: Vec<&str> = rest.split(' ').collect();
        // After the name: state is field 3, utime 14 and stime 15 (1-based, whole line).
        total += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    total
}

#[tokio::test]
async fn runaway_jq_programs_fail_their_step_and_stop() {
    // The budget is the process's (every test server here sets the default): 1,000,000 steps or
    // 1 s, whichever runs out first on this machine.
    let server = TestServer::start().await;
    let programs = [
        ("spin", "def f: f; f"),
        ("until", "until(false; .)"),
        ("last", "last(repeat(1))"),
        ("collect", "[repeat(1)]"),
        ("range", "[range(1e18)]"),
        ("deep", "def f: 1 + f; f"),
    ];
    let mut playbooks: Vec<Value> = programs
        .iter()
        .map(|(name, program)| json!({"name": name, "steps": [{"name": "run", "kind": "transform", "program": program}]}))
        .collect();
    playbooks.push(
        json!({"name": "when", "steps": [{"name": "run", "kind": "transform", "program": ".", "when": "def f: f; f"}]}),
    );
    playbooks.push(json!({"name": "prompt", "role": "clerk", "steps": [{"name": "ask", "kind": "human", "role": "clerk", "prompt": "Now {{ [repeat(.)] }}", "output_schema": {"type": "object"}}]}));
    playbooks.push(json!({"name": "fine", "steps": [{"name": "run", "kind": "transform", "program": "{sum: ([range(1000)] | add)}"}]}));
    let body = deploy(&server, package("runaway", playbooks)).await;
    assert!(body.get("errors").is_none(), "{body}");

    let mut started = Vec::new();
    for name in ["spin", "until", "last", "collect", "range", "deep", "when", "prompt"] {
        started.push((name, start(&server, "runaway-v1", name, json!({})).await));
    }
    // Others are served while the programs run.
    still_serving(&server, false).await;
    for (name, id) in &started {
        let execution = settled(&server, id).await;
        assert_eq!(execution["status"], "FAILED", "{name}: {execution}");
        let error = execution["error"].as_str().expect("error");
        let budget = error.ends_with(": ran out of its budget of 1000000 evaluation steps")
            || error.ends_with(": ran out of its time budget of 1000 ms");
        let expected = match *name {
            "when" => error.starts_with("step `run` failed: the step's condition failed") && budget,
            "prompt" => error.starts_with("step `ask` failed: the step's prompt failed") && budget,
            "deep" => error.ends_with(": recursed too deeply (more than 32 MiB of stack)") || budget,
            _ => error.starts_with("step `run` failed: the program failed") && budget,
        };
        assert!(expected, "{name}: {error}");
    }
    // Nothing keeps running once the budgets are spent.
    #[cfg(target_os = "linux")]
    {
        let before = evaluator_cpu();
        // The sleep is the measurement: the evaluator's CPU time over two idle seconds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let spent = evaluator_cpu() - before;
        assert!(spent < 20, "jq evaluator threads used {spent} ticks while idle");
    }
    // A sound program still runs.
    let id = start(&server, "runaway-v1", "fine", json!({})).await;
    assert_eq!(settled(&server, &id).await["status"], "COMPLETED");
    let output = server.data("query($id: ID!) { execution(id: $id) { output } }", json!({"id": id})).await;
    assert_eq!(output["execution"]["output"], json!({"sum": 499500}));
    still_serving(&server, true).await;
}
