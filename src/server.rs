//! The HTTP server: GraphQL over HTTP and WebSocket, health, readiness and metrics, on one axum
//! router. [`serve`] takes a bound listener, so tests bind port 0 and never race for a port.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use anyhow::Context as _;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{Data, Request as GraphQLRequestBody};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
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
    pub schema: OrgataSchema,
    pub rest: Arc<RestApi>,
    pub metrics: Arc<Metrics>,
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

/// Who a request acts as. Until API keys exist the server only listens on loopback, where the
/// local user is the `developer` principal.
pub(crate) fn principal() -> Principal {
    Principal::new("developer", Vec::<String>::new(), true)
}

/// Runs the server on `listener` until SIGINT or SIGTERM.
pub async fn serve(listener: TcpListener, config: Config) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the listener's address")?;
    if !address.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {address}: this server has no API keys configured, so it only accepts loopback \
             addresses (127.0.0.1 or ::1). Use --listen 127.0.0.1:8080."
        );
    }
    let engine_config = config.engine().map_err(anyhow::Error::msg)?;
    let engine = Engine::start(engine_config)
        .await
        .with_context(|| format!("starting the engine on {}", crate::store::redact(&config.database_url())))?;
    if config.deploys_examples() {
        deploy_examples(&engine, &config).await;
    }
    let state = state(engine.clone()).map_err(anyhow::Error::msg)?;
    let app = router(state, config.max_body_bytes);
    tracing::info!(%address, "orgata is listening; GraphiQL at http://{address}/graphql");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")?;
    engine.stop();
    tracing::info!("orgata stopped");
    Ok(())
}

/// The application state for an engine: its schema and metrics.
pub fn state(engine: Engine) -> Result<AppState, String> {
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
    Ok(AppState { schema, rest, engine, metrics })
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", crate::api::rest::router(state.rest.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn graphql_post(State(state): State<AppState>, request: GraphQLRequest) -> GraphQLResponse {
    state.schema.execute(request.into_inner().data(principal())).await.into()
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
async fn graphql_get(State(state): State<AppState>, Query(parameters): Query<GetParameters>) -> Response {
    let Some(query) = parameters.query else {
        return Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish())
            .into_response();
    };
    let only_queries = async_graphql::parser::parse_query(&query).is_ok_and(|document| {
        document
            .operations
            .iter()
            .all(|(_, operation)| operation.node.ty == async_graphql::parser::types::OperationType::Query)
    });
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
    GraphQLResponse::from(state.schema.execute(request.data(principal())).await).into_response()
}

/// Subscriptions over WebSocket, speaking `graphql-transport-ws` and the legacy `graphql-ws`.
async fn graphql_ws(State(state): State<AppState>, protocol: GraphQLProtocol, upgrade: WebSocketUpgrade) -> Response {
    let schema = state.schema.clone();
    let metrics = state.metrics.clone();
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |stream| async move {
        metrics.websockets.fetch_add(1, Ordering::Relaxed);
        GraphQLWebSocket::new(stream, schema, protocol)
            .on_connection_init(|_payload| async move {
                let mut data = Data::default();
                data.insert(principal());
                Ok(data)
            })
            .serve()
            .await;
        metrics.websockets.fetch_sub(1, Ordering::Relaxed);
    })
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
async fn deploy_examples(engine: &Engine, config: &Config) {
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
