//! The server's edge against a real server: the one policy every route and socket goes
//! through (Host, Origin, body types), credentials re-checked on open sockets (revocation, JWT
//! expiry), JWT claims, handshake and header timeouts, close frames, MCP session and
//! subscription caps, and what a request may learn or make the server repeat.

#[path = "common/mcp_client.rs"]
mod mcp_client;
#[path = "common/server.rs"]
mod server;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use server::TestServer;

const ADMIN_GRANTS: &str = "production:admin,staging:admin,development:admin,simulation:admin";

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket at `path` with extra headers; the HTTP status if the upgrade is refused.
async fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let url = format!("{}{path}", server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("WebSocket to {path}: {error}"),
    }
}

/// A GraphQL socket (graphql-transport-ws) that has been acknowledged for `token`.
async fn graphql_socket(server: &TestServer, token: &str) -> Socket {
    let mut socket =
        open(server, "/graphql/ws", &[("sec-websocket-protocol", "graphql-transport-ws")]).await.expect("upgraded");
    send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}))
        .await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("sent");
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if value["type"] != "ping" && value["type"] != "ka" {
                return value;
            }
        }
    }
}

/// The close frame's code and reason once the server closes the socket within `wait`.
async fn close_within(socket: &mut Socket, wait: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Some((frame.code.into(), frame.reason.to_string())),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(None)))) => return Some((0, String::new())),
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn key_id(token: &str) -> String {
    token.trim_start_matches("orgata_").split('_').next().expect("key id").to_owned()
}

/// Both sockets of a principal: GraphQL following an execution, and `/api/v1/ws` likewise.
async fn both_sockets(server: &TestServer, token: &str, execution: &str) -> (Socket, Socket) {
    let mut graphql = graphql_socket(server, token).await;
    send(
        &mut graphql,
        json!({"type": "subscribe", "id": "1", "payload": {"query": "subscription($id: ID!) { executionEvents(executionId: $id) { seq } }", "variables": {"id": execution}}}),
    )
    .await;
    assert_eq!(next_json(&mut graphql).await["type"], "next");
    let mut rest = open(server, &format!("/api/v1/ws?token={token}"), &[]).await.expect("upgraded");
    send(&mut rest, json!({"type": "subscribe_execution", "executionId": execution})).await;
    assert_eq!(next_json(&mut rest).await["type"], "subscribed");
    (graphql, rest)
}

#[tokio::test]
async fn revoked_keys_and_expired_jwts_close_open_sockets() {
    let secret = "edge-test-secret-of-enough-length";
    let server = TestServer::start_with(|config| {
        config.ws_reauthenticate_seconds = 1;
        config.jwt_hs256_secret = Some(secret.to_owned());
        config.jwt_leeway_seconds = 0;
    })
    .await;
    let ops = server.create_key("ops", "", ADMIN_GRANTS);
    let watcher = server.create_key("watcher", "", "development");
    let execution = server.start_pbj(Some(&ops), "kitchen-v1").await;
    let (mut graphql, mut rest) = both_sockets(&server, &watcher, &execution).await;
    let revoked = server
        .graphql_as(
            &ops,
            "mutation($id: String!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({"id": key_id(&watcher)}),
        )
        .await;
    assert!(revoked["data"]["revokeApiKey"]["revokedAt"].is_string(), "{revoked}");
    for (name, socket) in [("graphql", &mut graphql), ("rest", &mut rest)] {
        let (code, reason) = close_within(socket, Duration::from_secs(5)).await.unwrap_or_else(|| {
            panic!("the {name} socket of a revoked key stayed open");
        });
        assert_eq!(code, 4403, "{name}: {reason}");
        assert!(reason.contains("revoked"), "{name}: {reason}");
    }
    // A JWT that expires while its sockets are open.
    let exp = chrono::Utc::now().timestamp() + 2;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "brief", "grants": ["development"], "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signed");
    let (mut graphql, mut rest) = both_sockets(&server, &token, &execution).await;
    for (name, socket) in [("graphql", &mut graphql), ("rest", &mut rest)] {
        let (code, reason) = close_within(socket, Duration::from_secs(8)).await.unwrap_or_else(|| {
            panic!("the {name} socket of an expired JWT stayed open");
        });
        assert_eq!(code, 4403, "{name}: {reason}");
        assert!(reason.contains("expired"), "{name}: {reason}");
    }
}

#[tokio::test]
async fn a_new_subscription_rechecks_the_credential() {
    // The periodic check is far away: only the check on subscribing can close these.
    let server = TestServer::start_with(|config| config.ws_reauthenticate_seconds = 3600).await;
    let ops = server.create_key("ops", "", ADMIN_GRANTS);
    let watcher = server.create_key("watcher", "", "development");
    let execution = server.start_pbj(Some(&ops), "kitchen-v1").await;
    let (mut graphql, mut rest) = both_sockets(&server, &watcher, &execution).await;
    server
        .graphql_as(&ops, "mutation($id: String!) { revokeApiKey(id: $id) { id } }", json!({"id": key_id(&watcher)}))
        .await;
    send(
        &mut graphql,
        json!({"type": "subscribe", "id": "2", "payload": {"query": "subscription($id: ID!) { executionEvents(executionId: $id) { seq } }", "variables": {"id": execution}}}),
    )
    .await;
    send(&mut rest, json!({"type": "subscribe_execution", "executionId": execution.to_uppercase()})).await;
    for (name, socket) in [("graphql", &mut graphql), ("rest", &mut rest)] {
        let closed = close_within(socket, Duration::from_secs(5)).await;
        assert_eq!(closed.map(|(code, _)| code), Some(4403), "{name}: a revoked key subscribed again");
    }
}

#[tokio::test]
async fn jwt_claims_are_required_on_every_endpoint() {
    let secret = "edge-test-secret-of-enough-length";
    let server = TestServer::start_with(|config| {
        config.jwt_hs256_secret = Some(secret.to_owned());
        config.jwt_issuer = Some("https://issuer.example.test".to_owned());
        config.jwt_audience = Some("orgata".to_owned());
        config.jwt_leeway_seconds = 5;
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signed")
    };
    let base = json!({"sub": "sam", "grants": ["development"], "exp": now + 600, "iss": "https://issuer.example.test", "aud": "orgata"});
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = base.as_object().expect("object").clone();
        change(&mut claims);
        sign(Value::Object(claims))
    };
    let good = with(&|_| {});
    assert_eq!(accepted_on(&server, &good).await, vec![true; 5], "a complete token is accepted everywhere");
    let refused = [
        ("no iss", with(&|claims| drop(claims.remove("iss")))),
        ("no aud", with(&|claims| drop(claims.remove("aud")))),
        ("nbf an hour ahead", with(&|claims| drop(claims.insert("nbf".into(), json!(now + 3600))))),
        ("another issuer", with(&|claims| drop(claims.insert("iss".into(), json!("https://evil.example.test"))))),
    ];
    for (what, token) in refused {
        assert_eq!(accepted_on(&server, &token).await, vec![false; 5], "{what} is refused on every endpoint");
    }
    // Within the leeway, a token just issued by a clock slightly ahead is accepted.
    let skewed = with(&|claims| drop(claims.insert("nbf".into(), json!(now + 2))));
    assert_eq!(accepted_on(&server, &skewed).await, vec![true; 5]);
}

/// Whether `token` is let in on GraphQL, REST, MCP, `/graphql/ws` and `/api/v1/ws`.
async fn accepted_on(server: &TestServer, token: &str) -> Vec<bool> {
    let graphql = server.graphql_as(token, "{ me { id } }", json!({})).await["data"]["me"]["id"].is_string();
    let rest = server
        .client
        .get(format!("{}/api/v1/runtimes", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .status()
        .is_success();
    let mcp = mcp_client::connect(&server.base, "2025-11-25", Some(token)).await.is_ok();
    let mut socket =
        open(server, "/graphql/ws", &[("sec-websocket-protocol", "graphql-transport-ws")]).await.expect("upgraded");
    send(&mut socket, json!({"type": "connection_init", "payload": {"token": token}})).await;
    let graphql_ws = match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.contains("connection_ack"),
        _ => false,
    };
    let rest_ws = open(server, &format!("/api/v1/ws?token={token}"), &[]).await.is_ok();
    vec![graphql, rest, mcp, graphql_ws, rest_ws]
}

#[tokio::test]
async fn one_edge_policy_for_every_route_and_socket() {
    let server =
        TestServer::start_with(|config| config.cors_allow_origin = vec!["https://app.example.test".into()]).await;
    let base = &server.base;
    let client = &server.client;
    // Bodies a page may send without a preflight are refused before anything runs.
    let start = format!("{base}/api/v1/runtimes/kitchen-v1/executions");
    let body = r#"{"playbookName": "pbj-sandwich", "input": {"sandwichType": "classic"}}"#;
    for media in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let response = client.post(&start).header("content-type", media).body(body).send().await.expect("sent");
        assert_eq!(response.status(), 415, "{media}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.expect("JSON");
        assert_eq!(problem["code"], "UNSUPPORTED_MEDIA_TYPE", "{problem}");
    }
    let untyped = client.post(&start).body(body).send().await.expect("sent");
    assert_eq!(untyped.status(), 415, "a body without a type");
    let deploy = client
        .post(format!("{base}/api/v1/runtimes?environment=DEVELOPMENT"))
        .header("content-type", "text/plain")
        .body("package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '.'}]}]\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(deploy.status(), 415, "a package as text/plain");
    let deploy = client
        .post(format!("{base}/api/v1/runtimes?environment=DEVELOPMENT"))
        .header("content-type", "application/yaml")
        .body("package: desk\nversion: 1.0.0\nplaybooks: [{name: p, steps: [{name: s, kind: transform, program: '.'}]}]\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(deploy.status(), 201, "YAML where documented: {}", deploy.text().await.unwrap_or_default());
    let json = client.post(&start).header("content-type", "application/json").body(body).send().await.expect("sent");
    assert_eq!(json.status(), 201);

    // A foreign Host (DNS rebinding) is refused on every protocol.
    for (method, path) in [("POST", "/graphql"), ("GET", "/api/v1/runtimes"), ("POST", "/mcp"), ("GET", "/metrics")] {
        let request = client
            .request(method.parse().expect("method"), format!("{base}{path}"))
            .header("host", "rebound.example.test")
            .header("content-type", "application/json")
            .body("{}");
        assert_eq!(request.send().await.expect("sent").status(), 403, "{method} {path}");
    }
    for path in ["/graphql/ws", "/api/v1/ws"] {
        let refused = open(
            &server,
            path,
            &[("host", "rebound.example.test"), ("sec-websocket-protocol", "graphql-transport-ws")],
        )
        .await;
        assert_eq!(refused.err(), Some(403), "{path} with a foreign Host");
    }

    // A foreign Origin may not open a socket or change anything; the server's own and the CORS
    // list's may.
    let own = base.clone();
    // `/api/v1/ws` speaks its own messages, with no subprotocol to ask for.
    for (path, protocol) in [("/graphql/ws", Some("graphql-transport-ws")), ("/api/v1/ws", None)] {
        fn headers<'a>(origin: &'a str, protocol: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
            let mut headers = vec![("origin", origin)];
            headers.extend(protocol.map(|protocol| ("sec-websocket-protocol", protocol)));
            headers
        }
        let refused = open(&server, path, &headers("https://evil.example.test", protocol)).await;
        assert_eq!(refused.err(), Some(403), "{path} from a foreign origin");
        for origin in [own.as_str(), "https://app.example.test"] {
            assert!(open(&server, path, &headers(origin, protocol)).await.is_ok(), "{path} from {origin}");
        }
    }
    let foreign = client
        .post(format!("{base}/graphql"))
        .header("origin", "https://evil.example.test")
        .json(&json!({"query": "mutation { executePlaybook(input: {runtimeId: \"kitchen-v1\", playbook: \"pbj-sandwich\", input: {sandwichType: \"classic\"}}) { id } }"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(foreign.status(), 403);
    let refused: Value = foreign.json().await.expect("GraphQL-shaped");
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let same = client
        .post(format!("{base}/graphql"))
        .header("origin", own.as_str())
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(same.status(), 200, "GraphiQL, served here, may post here");
}

#[tokio::test]
async fn handshakes_and_headers_are_timed_out() {
    let server = TestServer::start_with(|config| {
        config.ws_init_timeout_seconds = 1;
        config.header_read_timeout_seconds = 1;
    })
    .await;
    let mut graphql =
        open(&server, "/graphql/ws", &[("sec-websocket-protocol", "graphql-transport-ws")]).await.expect("upgraded");
    let closed = close_within(&mut graphql, Duration::from_secs(5)).await;
    assert_eq!(closed.map(|(code, _)| code), Some(4408), "no connection_init");
    let mut rest = open(&server, "/api/v1/ws", &[]).await.expect("upgraded");
    let closed = close_within(&mut rest, Duration::from_secs(5)).await;
    assert_eq!(closed.map(|(code, _)| code), Some(4408), "no subscription");

    // A client dripping its headers is disconnected.
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connects");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("written");
    let started = tokio::time::Instant::now();
    let mut ended = false;
    while started.elapsed() < Duration::from_secs(6) {
        if stream.write_all(b"X-Drip: 1\r\n").await.is_err() {
            ended = true;
            break;
        }
        let mut buffer = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await {
            ended = true;
            break;
        }
    }
    assert!(ended, "a connection dripping headers for {:?} stayed open", started.elapsed());
}

#[tokio::test]
async fn close_frames_fit_rfc_6455() {
    let server = TestServer::start().await;
    let mut socket = graphql_socket(&server, "").await;
    // An unknown message type: async-graphql's reason lists every type it knows (161 bytes).
    socket
        .send(Message::text(json!({"type": "an-unknown-message-type-with-a-long-name", "id": "x"}).to_string()))
        .await
        .expect("sent");
    let (code, reason) = close_within(&mut socket, Duration::from_secs(5)).await.expect("closed");
    assert_ne!(code, 0, "a close frame arrived, so the client could parse it");
    assert!(reason.len() <= 123, "{} bytes: {reason}", reason.len());
}

#[tokio::test]
async fn least_privilege_and_nothing_repeated_or_leaked() {
    let server = TestServer::start_with(|config| config.metrics_token = Some("scrape-token".into())).await;
    let ops = server.create_key("ops", "", ADMIN_GRANTS);
    let dev = server.create_key("dev", "", "development");
    let listed = server.graphql_as(&dev, "{ apiKeys { name grants } }", json!({})).await;
    let names: Vec<&str> =
        listed["data"]["apiKeys"].as_array().expect("listed").iter().filter_map(|key| key["name"].as_str()).collect();
    assert_eq!(names, vec!["dev"], "a development admin sees only keys within development: {listed}");
    let all = server.graphql_as(&ops, "{ apiKeys { name } }", json!({})).await;
    assert_eq!(all["data"]["apiKeys"].as_array().map(Vec::len), Some(2), "{all}");

    // /metrics is not anonymous once keys exist.
    let metrics = |token: Option<&str>| {
        let request = server.client.get(format!("{}/metrics", server.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    assert_eq!(metrics(None).await.expect("sent").status(), 401);
    assert_eq!(metrics(Some("wrong")).await.expect("sent").status(), 401);
    assert_eq!(metrics(Some("scrape-token")).await.expect("sent").status(), 200);
    assert_eq!(metrics(Some(&dev)).await.expect("sent").status(), 200);

    // Huge values are not repeated back.
    let huge = "x".repeat(7 * 1024 * 1024);
    let answer = server.graphql_as(&ops, "query($id: ID!) { execution(id: $id) { id } }", json!({"id": huge})).await;
    let text = answer.to_string();
    assert!(text.len() < 4096, "a 7 MiB id came back in {} bytes", text.len());
    assert!(answer["errors"][0]["extensions"]["code"].is_string(), "{}", &text[..text.len().min(300)]);
    let created = server
        .graphql_as(
            &ops,
            "mutation($roles: [String!]!) { createApiKey(input: {name: \"huge\", roles: $roles, grants: [\"development\"]}) { token } }",
            json!({"roles": [huge]}),
        )
        .await;
    let text = created.to_string();
    assert!(text.len() < 4096, "a 7 MiB role name came back in {} bytes", text.len());
    assert_eq!(created["errors"][0]["extensions"]["code"], "BAD_INPUT", "{}", &text[..text.len().min(300)]);
    let created = server
        .graphql_as(&ops, "mutation { createApiKey(input: {name: \"bad\", roles: [\"co ok\"], grants: [\"development\"]}) { token } }", json!({}))
        .await;
    assert_eq!(created["errors"][0]["extensions"]["code"], "BAD_INPUT", "{created}");
}

#[tokio::test]
async fn mcp_sessions_and_subscriptions_are_capped() {
    let server = TestServer::start_with(|config| {
        config.mcp_max_sessions = 4;
        config.mcp_max_sessions_per_principal = 3;
    })
    .await;
    let alice = server.create_key("alice", "", "development");
    let bob = server.create_key("bob", "", "development");
    let initialize = |token: String| {
        let request = server
            .client
            .post(format!("{}/mcp", server.base))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "cap-test", "version": "1"}}}));
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let session =
                response.headers().get("mcp-session-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
            (status, session)
        }
    };
    let mut alices = Vec::new();
    for _ in 0..3 {
        let (status, session) = initialize(alice.clone()).await;
        assert_eq!(status, 200);
        alices.push(session.expect("a session"));
    }
    assert_eq!(initialize(alice.clone()).await.0, 429, "a fourth session for one principal");
    assert_eq!(initialize(bob.clone()).await.0, 200, "another principal still gets one");
    assert_eq!(initialize(bob.clone()).await.0, 429, "the total is reached");
    let closed = server
        .client
        .delete(format!("{}/mcp", server.base))
        .bearer_auth(&alice)
        .header("mcp-session-id", &alices[0])
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("sent");
    assert!(closed.status().is_success(), "{}", closed.status());
    assert_eq!(initialize(bob.clone()).await.0, 200, "a closed session frees its place");
}

#[tokio::test]
async fn mcp_subscriptions_are_canonical_and_capped() {
    let server = TestServer::start().await;
    let mut executions = Vec::new();
    for _ in 0..257 {
        executions.push(server.start_pbj(None, "kitchen-v1").await);
    }
    let session = mcp_client::connect(&server.base, "2025-11-25", None).await.expect("connects");
    let subscribe = |id: String| {
        let request = rmcp::model::SubscribeRequestParams::new(format!("orgata://execution/{id}"));
        let session = &session;
        // `resources/subscribe` is what 2025-11-25 clients send; rmcp marks it legacy.
        #[allow(deprecated)]
        session.subscribe(request)
    };
    // Eight spellings of the first execution are one subscription…
    let first = uuid::Uuid::parse_str(&executions[0]).expect("uuid");
    let spellings = [
        first.hyphenated().to_string(),
        first.simple().to_string(),
        first.braced().to_string(),
        first.urn().to_string(),
    ];
    for spelling in spellings.iter().flat_map(|spelling| [spelling.clone(), spelling.to_uppercase()]) {
        subscribe(spelling.clone()).await.unwrap_or_else(|error| panic!("{spelling}: {error}"));
    }
    // …so 255 more executions fit, and the next one does not.
    for id in &executions[1..256] {
        subscribe(id.clone()).await.unwrap_or_else(|error| panic!("{id}: {error}"));
    }
    let refused = subscribe(executions[256].clone()).await.expect_err("the 257th execution");
    assert!(refused.to_string().contains("at most 256"), "{refused}");
    session.cancel().await.expect("closed");
}
