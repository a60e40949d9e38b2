//! The HTTP server: assembles the router from the protocols under `src/api/` (GraphQL, REST,
//! MCP, operations), puts the edge policy and request spans in front of it, listens, and shuts
//! down gracefully. [`serve`] takes a bound listener, so tests bind port 0 and never race for a
//! port. Nothing under `src/api/` imports this module.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
use axum::{Router, middleware};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::api::context::{AppState, SocketTiming};
use crate::api::edge::{EdgePolicy, enforce, request_span};
use crate::api::{graphql, mcp, ops, rest};
use crate::config::Config;
use crate::engine::{DeployRequest, Engine, Environment, Principal};

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
    let mut state = AppState::new(engine.clone(), loopback).map_err(anyhow::Error::msg)?;
    state.sockets = SocketTiming {
        send_timeout: Duration::from_secs(config.ws_send_timeout_seconds.max(1)),
        init_timeout: Duration::from_secs(config.ws_init_timeout_seconds.max(1)),
        reauthenticate: Duration::from_secs(config.ws_reauthenticate_seconds.max(1)),
    };
    state.metrics_token = config.metrics_token.clone().filter(|token| !token.is_empty());
    state.mcp_sessions = mcp::SessionLimits {
        total: config.mcp_max_sessions.max(1),
        per_principal: config.mcp_max_sessions_per_principal.max(1),
    };
    let mut policy = EdgePolicy::new(
        &[config.allowed_hosts.as_slice(), config.mcp_allowed_hosts.as_slice()].concat(),
        &config.cors_allow_origin,
        yaml_routes(&state),
    );
    if !address.ip().is_unspecified() {
        policy.allow_host(&address.ip().to_string());
    }
    let app = router(state, config.max_body_bytes, &config.cors_allow_origin).map_err(anyhow::Error::msg)?;
    let app = app.layer(middleware::from_fn_with_state(Arc::new(policy), enforce));
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

/// Every route: GraphQL, REST under `/api/v1`, MCP at `/mcp`, and the operators' endpoints.
pub fn router(mut state: AppState, max_body_bytes: usize, cors_origins: &[String]) -> Result<Router, String> {
    state.max_body_bytes = max_body_bytes;
    let router = Router::new()
        .route("/graphql", get(graphql::http::get).post(graphql::http::post))
        .route("/graphql/ws", get(graphql::http::socket))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .nest("/api/v1", rest::router(state.rest.clone()))
        .merge(mcp::routes(&state))
        .layer(middleware::from_fn_with_state(state.clone(), ops::count_requests))
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
