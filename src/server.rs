//! The HTTP server: GraphQL over HTTP and WebSocket, health, readiness and metrics, on one axum
//! router. [`serve`] takes a bound listener, so tests bind port 0 and never race for a port.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_graphql::http::WebSocketProtocols;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{Data, Request as GraphQLRequestBody};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::api::graphql::{self, OrgataSchema};
use crate::api::rest::RestApi;
use crate::config::Config;
use crate::engine::{DeployRequest, Engine, Environment, Principal};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Whether the server listens on loopback only, where the local user may act as
    /// `developer` as long as no keys are configured.
    pub loopback: bool,
    /// Host names MCP's Streamable HTTP accepts (rmcp's default: loopback names).
    pub mcp_allowed_hosts: Vec<String>,
    pub schema: OrgataSchema,
    pub rest: Arc<RestApi>,
    pub mcp: Arc<crate::api::mcp::McpApi>,
    pub metrics: Arc<Metrics>,
    /// The largest request body, and WebSocket message, accepted.
    pub max_body_bytes: usize,
    /// How long a WebSocket message may wait for a client that does not read.
    pub ws_send_timeout: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    server_errors: AtomicU64,
    client_errors: AtomicU64,
    steps_completed: AtomicU64,
    /// Open GraphQL WebSocket connections, each carrying any number of subscriptions.
    websockets: AtomicI64,
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Who a request acts as, the same way on every protocol.
pub(crate) async fn caller(state: &AppState, token: Option<&str>) -> Result<Principal, crate::engine::Error> {
    state.engine.authenticate(token, state.loopback).await
}

fn unauthenticated_graphql(error: crate::engine::Error) -> Response {
    let body = serde_json::json!({"data": null, "errors": [{"message": error.public_message(), "extensions": {"code": error.code().as_str()}}]});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// Runs the server on `listener` until SIGINT or SIGTERM.
pub async fn serve(listener: TcpListener, config: Config) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the listener's address")?;
    let engine_config = config.engine().map_err(anyhow::Error::msg)?;
    let engine = Engine::start(engine_config)
        .await
        .with_context(|| format!("starting the engine on {}", crate::store::redact(&config.database_url())))?;
    let loopback = address.ip().is_loopback();
    if !loopback && !engine.keys_configured().await.context("checking for API keys")? {
        engine.stop();
        anyhow::bail!(
            "refusing to listen on {address}: no API key or JWT verification is configured, so anyone who can reach \
             this address would be let in. Create a key first, e.g. `orgata keys create --name admin --grant \
             production:admin,staging:admin,development:admin,simulation:admin`, or listen on 127.0.0.1."
        );
    }
    if config.deploys_examples() {
        deploy_examples(&engine, &config).await;
    }
    crate::jq::set_budget(config.jq_budget());
    let mut state = state(engine.clone(), loopback).map_err(anyhow::Error::msg)?;
    state.mcp_allowed_hosts = config.mcp_allowed_hosts.clone();
    state.ws_send_timeout = Duration::from_secs(config.ws_send_timeout_seconds.max(1));
    let app = router(state, config.max_body_bytes, &config.cors_allow_origin).map_err(anyhow::Error::msg)?;
    tracing::info!(%address, "orgata is listening; GraphiQL at http://{address}/graphql");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")?;
    engine.stop();
    tracing::info!("orgata stopped");
    Ok(())
}

/// The application state for an engine: its schema and metrics.
pub fn state(engine: Engine, loopback: bool) -> Result<AppState, String> {
    let metrics = Arc::new(Metrics::default());
    let counted = metrics.clone();
    let mut events = engine.subscribe_all();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) if event.event_type == crate::engine::EventType::StepCompleted => {
                    counted.steps_completed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let schema = graphql::build(engine.clone());
    let rest = Arc::new(RestApi::new(&schema)?);
    let mcp = Arc::new(crate::api::mcp::McpApi::new(&schema)?);
    Ok(AppState {
        schema,
        rest,
        mcp,
        engine,
        metrics,
        loopback,
        mcp_allowed_hosts: Vec::new(),
        max_body_bytes: 8 * 1024 * 1024,
        ws_send_timeout: Duration::from_secs(30),
    })
}

pub fn router(mut state: AppState, max_body_bytes: usize, cors_origins: &[String]) -> Result<Router, String> {
    state.max_body_bytes = max_body_bytes;
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", crate::api::rest::router(state.rest.clone()))
        .merge(
            Router::new()
                .nest_service(
                    "/mcp",
                    crate::api::mcp::service(state.clone(), &state.mcp_allowed_hosts, state.max_body_bytes),
                )
                .layer(middleware::from_fn(crate::api::mcp::session_ended))
                .layer(middleware::from_fn_with_state(state.clone(), authenticate_mcp)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    if cors_origins.is_empty() {
        return Ok(router);
    }
    let origins = cors_origins
        .iter()
        .map(|origin| {
            origin
                .parse::<axum::http::HeaderValue>()
                .map_err(|_| format!("CORS origin `{origin}` is not a valid header value"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::LOCATION]);
    Ok(router.layer(cors))
}

/// A GraphQL error body with `extensions.code`, outside any execution (the request itself is
/// refused).
fn refused_graphql(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}

/// One GraphQL request as JSON (`application/json`; a form or text body, which a web page may
/// send without asking, is refused). Batches are refused: one operation per request, so the
/// query limits bound what a request costs.
async fn graphql_post(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            let media = media.trim();
            media.eq_ignore_ascii_case("application/json") || media.eq_ignore_ascii_case("application/graphql+json")
        });
    if !json {
        return refused_graphql(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_INPUT",
            "POST /graphql takes a JSON body with Content-Type: application/json",
        );
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("the body is larger than {} bytes", state.max_body_bytes);
            return refused_graphql(StatusCode::PAYLOAD_TOO_LARGE, "BAD_INPUT", &message);
        }
        Err(rejection) => {
            let message = format!("the body could not be read: {}", rejection.body_text());
            return refused_graphql(StatusCode::BAD_REQUEST, "BAD_INPUT", &message);
        }
    };
    let request = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(_)) => {
            return refused_graphql(
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
                "batched requests are not supported; send one operation per request",
            );
        }
        Ok(value) => match serde_json::from_value::<GraphQLRequestBody>(value) {
            Ok(request) => request,
            Err(error) => {
                let message = format!("the body is not a GraphQL request: {error}");
                return refused_graphql(StatusCode::BAD_REQUEST, "BAD_INPUT", &message);
            }
        },
        Err(error) => {
            return refused_graphql(StatusCode::BAD_REQUEST, "BAD_INPUT", &format!("the body is not JSON: {error}"));
        }
    };
    match caller(&state, bearer(&headers).as_deref()).await {
        Ok(principal) => GraphQLResponse::from(state.schema.execute(request.data(principal)).await).into_response(),
        Err(error) => unauthenticated_graphql(error),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParameters {
    query: Option<String>,
    variables: Option<String>,
    operation_name: Option<String>,
}

/// A browser gets GraphiQL; a client with `?query=` gets an answer. GET never mutates, so a
/// link cannot change anything.
async fn graphql_get(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    parameters: Result<Query<GetParameters>, QueryRejection>,
) -> Response {
    let parameters = match parameters {
        Ok(Query(parameters)) => parameters,
        Err(rejection) => {
            let message = format!("the query string is not valid: {}", rejection.body_text());
            return refused_graphql(StatusCode::BAD_REQUEST, "BAD_INPUT", &message);
        }
    };
    let Some(query) = parameters.query else {
        return Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish())
            .into_response();
    };
    // The text is measured before the parser recurses into it.
    if let Err(message) = graphql::limits::check_text(&query) {
        return refused_graphql(StatusCode::BAD_REQUEST, "BAD_INPUT", &message);
    }
    let only_queries = match async_graphql::parser::parse_query(&query) {
        Ok(document) => document
            .operations
            .iter()
            .all(|(_, operation)| operation.node.ty == async_graphql::parser::types::OperationType::Query),
        Err(error) => {
            return refused_graphql(
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
                &format!("the query does not parse: {error}"),
            );
        }
    };
    if !only_queries {
        let body = serde_json::json!({"errors": [{"message": "GET /graphql runs queries only; send mutations and subscriptions with POST or WebSocket", "extensions": {"code": "BAD_INPUT"}}]});
        return (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    }
    let mut request = GraphQLRequestBody::new(query);
    if let Some(variables) = parameters.variables {
        match serde_json::from_str::<serde_json::Value>(&variables) {
            Ok(variables) => request = request.variables(async_graphql::Variables::from_json(variables)),
            Err(error) => {
                let body = serde_json::json!({"errors": [{"message": format!("`variables` is not JSON: {error}"), "extensions": {"code": "BAD_INPUT"}}]});
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
        }
    }
    if let Some(operation_name) = parameters.operation_name {
        request = request.operation_name(operation_name);
    }
    match caller(&state, bearer(&headers).as_deref()).await {
        Ok(principal) => GraphQLResponse::from(state.schema.execute(request.data(principal)).await).into_response(),
        Err(error) => unauthenticated_graphql(error),
    }
}

/// A WebSocket's read buffer and write batch. tungstenite's defaults (128 KiB each) would make a
/// fleet of idle browser connections cost hundreds of kilobytes each; messages here are small,
/// and larger ones still arrive (the buffer grows for them).
pub(crate) const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Subscriptions over WebSocket, speaking `graphql-transport-ws` and the legacy `graphql-ws`.
/// The token may come in the upgrade request's `Authorization` header or, since browsers cannot
/// set headers on WebSockets, in `connection_init`'s payload as `Authorization` or `token`.
async fn graphql_ws(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let protocol =
        headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|value| value.to_str().ok()).and_then(|protocols| {
            protocols.split(',').find_map(|protocol| protocol.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return refused_graphql(
            StatusCode::BAD_REQUEST,
            "BAD_INPUT",
            "Sec-WebSocket-Protocol must name graphql-transport-ws or graphql-ws",
        );
    };
    let schema = state.schema.clone();
    let metrics = state.metrics.clone();
    let header_token = bearer(&headers);
    let send_timeout = state.ws_send_timeout;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(state.max_body_bytes)
        .max_frame_size(state.max_body_bytes)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            metrics.websockets.fetch_add(1, Ordering::Relaxed);
            let on_init = move |payload: serde_json::Value| async move {
                let from_payload = ["Authorization", "authorization", "token"].iter().find_map(|key| {
                    let value = payload.get(*key)?.as_str()?;
                    Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned())
                });
                let token = from_payload.or(header_token);
                let principal = caller(&state, token.as_deref())
                    .await
                    .map_err(|error| async_graphql::Error::new(error.public_message()))?;
                let mut data = Data::default();
                data.insert(principal);
                Ok(data)
            };
            graphql::ws::serve(socket, schema, protocol, send_timeout, on_init).await;
            metrics.websockets.fetch_sub(1, Ordering::Relaxed);
        })
}

/// `/mcp` authenticates like every other protocol; the principal rides in the request's
/// extensions, where the MCP handler finds it.
async fn authenticate_mcp(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match caller(&state, bearer(request.headers()).as_deref()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => {
            let body = serde_json::json!({"error": error.public_message(), "code": error.code().as_str()});
            let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
            response
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn count_requests(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_server_error() {
        metrics.server_errors.fetch_add(1, Ordering::Relaxed);
    } else if response.status().is_client_error() {
        metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let mut text = String::new();
    let mut line = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    line(
        "orgata_http_requests_total",
        "counter",
        "HTTP requests answered, by outcome.",
        vec![
            ("{outcome=\"all\"}".to_owned(), metrics.requests.load(Ordering::Relaxed).to_string()),
            ("{outcome=\"client_error\"}".to_owned(), metrics.client_errors.load(Ordering::Relaxed).to_string()),
            ("{outcome=\"server_error\"}".to_owned(), metrics.server_errors.load(Ordering::Relaxed).to_string()),
        ],
    );
    line(
        "orgata_steps_completed_total",
        "counter",
        "Steps completed since this process started.",
        vec![(String::new(), metrics.steps_completed.load(Ordering::Relaxed).to_string())],
    );
    line(
        "orgata_graphql_websockets",
        "gauge",
        "Open GraphQL WebSocket connections (each carries subscriptions).",
        vec![(String::new(), metrics.websockets.load(Ordering::Relaxed).to_string())],
    );
    match state.engine.execution_counts().await {
        Ok(counts) => line(
            "orgata_executions",
            "gauge",
            "Executions in the database, by status.",
            counts.into_iter().map(|(status, count)| (format!("{{status=\"{status}\"}}"), count.to_string())).collect(),
        ),
        Err(error) => tracing::warn!(%error, "counting executions for /metrics failed"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Deploys each example package into `development`, unless it is already deployed unchanged.
pub async fn deploy_examples(engine: &Engine, config: &Config) {
    let entries = match std::fs::read_dir(&config.examples_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(directory = %config.examples_dir.display(), %error, "no example packages deployed");
            return;
        }
    };
    let mut paths: Vec<_> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    paths.sort();
    for path in paths {
        let is_package = path.join("package.yaml").exists()
            || path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml" || extension == "json");
        if !is_package {
            continue;
        }
        let loaded = match crate::package::load_path(&path) {
            Ok(loaded) => loaded,
            Err(problems) => {
                tracing::warn!(path = %path.display(), problems = problems.len(), "example package not loaded");
                continue;
            }
        };
        let request = DeployRequest {
            runtime_id: None,
            environment: Environment::Development,
            package: loaded,
            only_if_changed: true,
        };
        match engine.deploy(&Principal::system(), request).await {
            Ok(runtime) => tracing::info!(runtime = %runtime.id, version = runtime.version, "example deployed"),
            Err(error) => tracing::warn!(path = %path.display(), %error, "example package not deployed"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests under way");
}
