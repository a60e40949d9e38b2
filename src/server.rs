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
use crate::engine::{DeployRequest, Engine, Environment, ErrorCode, Principal};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Whether the server listens on loopback only, where the local user may act as
    /// `developer` as long as no keys are configured.
    pub loopback: bool,
    pub schema: OrgataSchema,
    pub rest: Arc<RestApi>,
    pub mcp: Arc<crate::api::mcp::McpApi>,
    pub metrics: Arc<Metrics>,
    /// The largest request body, and WebSocket message, accepted.
    pub max_body_bytes: usize,
    /// How WebSockets are bounded in time.
    pub sockets: SocketTiming,
    /// A bearer token that reads `/metrics` (for a scraper that holds no API key).
    pub metrics_token: Option<String>,
    /// How many MCP sessions may be open.
    pub mcp_sessions: crate::api::mcp::SessionLimits,
}

/// How a WebSocket is bounded in time.
#[derive(Debug, Clone, Copy)]
pub struct SocketTiming {
    /// How long a message may wait for a client that does not read.
    pub send_timeout: Duration,
    /// How long a new connection may take to say who it is (`connection_init` on GraphQL, the
    /// first subscription on `/api/v1/ws`).
    pub init_timeout: Duration,
    /// How often an open connection's credential is checked again.
    pub reauthenticate: Duration,
}

impl SocketTiming {
    /// The ticks at which an open socket's credential is checked again (the first one
    /// `reauthenticate` from now; a late tick is delayed, not bunched).
    pub(crate) fn recheck(&self) -> tokio::time::Interval {
        let mut recheck =
            tokio::time::interval_at(tokio::time::Instant::now() + self.reauthenticate, self.reauthenticate);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck
    }
}

impl Default for SocketTiming {
    fn default() -> Self {
        SocketTiming {
            send_timeout: Duration::from_secs(30),
            init_timeout: Duration::from_secs(10),
            reauthenticate: Duration::from_secs(30),
        }
    }
}

/// The credential a WebSocket presented, checked again while the socket stays open: on every
/// new subscription and every [`SocketTiming::reauthenticate`]. A revoked key, an expired JWT,
/// or (for the keyless loopback developer) keys configured since, end the socket.
#[derive(Clone)]
pub(crate) struct SocketCredential {
    state: AppState,
    /// The token, once presented (`None` inside: presented without one).
    token: Arc<std::sync::OnceLock<Option<String>>>,
}

impl SocketCredential {
    pub(crate) fn new(state: AppState) -> SocketCredential {
        SocketCredential { state, token: Arc::default() }
    }

    /// Authenticates `token` and remembers it for the checks that follow.
    pub(crate) async fn present(&self, token: Option<String>) -> Result<Principal, crate::engine::Error> {
        let principal = caller(&self.state, token.as_deref()).await?;
        let _ = self.token.set(token);
        Ok(principal)
    }

    /// Whether the presented credential still holds; the reason to close the socket if not.
    /// Before a credential is presented there is nothing to check. A failure to reach the
    /// database is logged and does not close the socket: only a refused credential does.
    pub(crate) async fn check(&self) -> Result<(), String> {
        let Some(token) = self.token.get() else { return Ok(()) };
        match caller(&self.state, token.as_deref()).await {
            Ok(_) => Ok(()),
            Err(error) if error.code() == crate::engine::ErrorCode::Internal => {
                tracing::warn!(error = %error.public_message(), "could not re-check a WebSocket's credential");
                Ok(())
            }
            Err(error) => Err(error.public_message()),
        }
    }
}

/// RFC 6455 leaves 123 bytes of a close frame for its reason.
pub(crate) const MAX_CLOSE_REASON_BYTES: usize = 123;

/// A close frame, its reason cut to [`MAX_CLOSE_REASON_BYTES`] on a character boundary: every
/// close frame the server sends is made here.
pub(crate) fn close_message(code: u16, reason: &str) -> axum::extract::ws::Message {
    let mut end = reason.len().min(MAX_CLOSE_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    axum::extract::ws::Message::Close(Some(axum::extract::ws::CloseFrame { code, reason: reason[..end].into() }))
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
    state.sockets = SocketTiming {
        send_timeout: Duration::from_secs(config.ws_send_timeout_seconds.max(1)),
        init_timeout: Duration::from_secs(config.ws_init_timeout_seconds.max(1)),
        reauthenticate: Duration::from_secs(config.ws_reauthenticate_seconds.max(1)),
    };
    state.metrics_token = config.metrics_token.clone().filter(|token| !token.is_empty());
    state.mcp_sessions = crate::api::mcp::SessionLimits {
        total: config.mcp_max_sessions.max(1),
        per_principal: config.mcp_max_sessions_per_principal.max(1),
    };
    let mut policy = crate::edge::EdgePolicy::new(
        &[config.allowed_hosts.as_slice(), config.mcp_allowed_hosts.as_slice()].concat(),
        &config.cors_allow_origin,
        yaml_routes(&state),
    );
    if !address.ip().is_unspecified() {
        policy.allow_host(&address.ip().to_string());
    }
    let app = router(state, config.max_body_bytes, &config.cors_allow_origin).map_err(anyhow::Error::msg)?;
    let app = app.layer(middleware::from_fn_with_state(Arc::new(policy), crate::edge::enforce));
    let app = app.layer(TraceLayer::new_for_http().make_span_with(request_span));
    tracing::info!(%address, "orgata is listening; GraphiQL at http://{address}/graphql");
    accept(listener, app, Duration::from_secs(config.header_read_timeout_seconds.max(1))).await;
    engine.stop();
    tracing::info!("orgata stopped");
    Ok(())
}

/// The REST routes whose body may be a YAML document, for the edge policy.
fn yaml_routes(state: &AppState) -> Vec<String> {
    state
        .rest
        .routes
        .iter()
        .filter(|route| {
            route.rest.binds.iter().any(|bind| matches!(bind.from, crate::api::catalog::Source::Document(..)))
        })
        .map(|route| format!("/api/v1{}", route.rest.path))
        .collect()
}

/// A request's span: method and path, and the query with credentials (`?token=`, which
/// browsers use on WebSockets) blanked, so debug logs never hold a secret.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %redacted(request.uri()),
        version = ?request.version(),
    )
}

/// The URI's path and query, with the values of credential parameters replaced by `***`.
pub(crate) fn redacted(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else { return uri.path().to_owned() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if ["token", "access_token"].contains(&name.to_ascii_lowercase().as_str()) => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// Accepts connections until SIGINT or SIGTERM, then lets the requests under way finish.
/// Written out rather than `axum::serve` to bound how long a client may take to send a
/// request's headers: a client that drips them is disconnected after `header_read_timeout`.
async fn accept(listener: TcpListener, app: Router, header_read_timeout: Duration) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended");
                    }
                    return;
                }
                _ = stop.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    let _ = stopping.send(true);
    drop(stop);
    // Every connection holds a receiver until it has finished.
    stopping.closed().await;
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
        max_body_bytes: 8 * 1024 * 1024,
        sockets: SocketTiming::default(),
        metrics_token: None,
        mcp_sessions: crate::api::mcp::SessionLimits::default(),
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
                .nest_service("/mcp", crate::api::mcp::service(state.clone(), state.max_body_bytes))
                .layer(middleware::from_fn_with_state(state.clone(), crate::api::mcp::check_message))
                .layer(middleware::from_fn(crate::api::mcp::session_ended))
                .layer(middleware::from_fn_with_state(state.clone(), authenticate_mcp)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(max_body_bytes))
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
            return refused_graphql(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge.as_str(), &message);
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
    let timing = state.sockets;
    let credential = SocketCredential::new(state.clone());
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(state.max_body_bytes)
        .max_frame_size(state.max_body_bytes)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            metrics.websockets.fetch_add(1, Ordering::Relaxed);
            let presented = credential.clone();
            let on_init = move |payload: serde_json::Value| async move {
                let from_payload = ["Authorization", "authorization", "token"].iter().find_map(|key| {
                    let value = payload.get(*key)?.as_str()?;
                    Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned())
                });
                let token = from_payload.or(header_token);
                let principal = presented
                    .present(token)
                    .await
                    .map_err(|error| async_graphql::Error::new(error.public_message()))?;
                let mut data = Data::default();
                data.insert(principal);
                Ok(data)
            };
            graphql::ws::serve(socket, schema, protocol, timing, credential, on_init).await;
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
            let owner = principal.id.clone();
            request.extensions_mut().insert(principal);
            let (response, refused) = crate::api::mcp::admitted(owner, next.run(request)).await;
            if !refused {
                return response;
            }
            let limits = state.mcp_sessions;
            let message = format!(
                "too many MCP sessions are open (at most {} per principal, {} in all); close one (DELETE /mcp) or let \
                 an idle one expire",
                limits.per_principal, limits.total
            );
            let body = serde_json::json!({"error": message, "code": "TOO_MANY_SESSIONS"});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
            response
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

/// Prometheus text exposition, for whoever may call the server at all (any valid credential, or
/// nobody's on a keyless loopback server) or holds `--metrics-token`: the counts say how busy
/// every environment is, so they are not public once credentials exist.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let token = bearer(&headers);
    let scraper = match (&state.metrics_token, &token) {
        (Some(expected), Some(token)) => {
            bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes()))
        }
        _ => false,
    };
    if !scraper && let Err(error) = caller(&state, token.as_deref()).await {
        let mut response = crate::api::rest::problem(error.code().as_str(), &error.public_message(), &[]);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        return response;
    }
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
        let request = DeployRequest { runtime_id: None, environment: Environment::Development, package: loaded };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_frame_and_stay_text() {
        let reason = format!("{}é{}", "a".repeat(122), "b".repeat(200));
        let axum::extract::ws::Message::Close(Some(frame)) = close_message(1002, &reason) else {
            panic!("a close frame");
        };
        // 122 ASCII bytes, then a two-byte character that would end at byte 124: cut before it.
        assert_eq!(frame.reason.as_str(), "a".repeat(122));
        let axum::extract::ws::Message::Close(Some(frame)) = close_message(4408, "short") else {
            panic!("a close frame");
        };
        assert_eq!((frame.code, frame.reason.as_str()), (4408, "short"));
    }

    #[test]
    fn credentials_in_the_query_are_blanked_in_spans() {
        let uri: axum::http::Uri = "/api/v1/ws?after=1&token=orgata_abc_secret&TOKEN=x".parse().expect("uri");
        assert_eq!(redacted(&uri), "/api/v1/ws?after=1&token=***&TOKEN=***");
    }
}
