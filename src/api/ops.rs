//! What operators call: `/healthz`, `/readyz` and `/metrics` (Prometheus text), and the
//! counters behind them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};

use crate::api::context::{AppState, bearer, caller};
use futures::StreamExt;

use crate::engine::{Engine, EventFilter, EventType, Principal};

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

impl Metrics {
    /// Counters that count `engine`'s completed steps as they are published.
    pub fn counting(engine: &Engine) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
        let counted = metrics.clone();
        let events = engine.events(&Principal::system(), EventFilter::of_types(&[EventType::StepCompleted]));
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            // A lagged receiver's dropped events go uncounted; the counter is a rate, not a ledger.
            while let Some(event) = events.next().await {
                if event.is_ok() {
                    counted.steps_completed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        metrics
    }

    /// A GraphQL WebSocket opened (`+1`) or closed (`-1`).
    pub(crate) fn websocket(&self, change: i64) {
        self.websockets.fetch_add(change, Ordering::Relaxed);
    }
}

/// Counts every answered request by outcome.
pub(crate) async fn count_requests(
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

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// Prometheus text exposition, for whoever may call the server at all (any valid credential, or
/// nobody's on a keyless loopback server) or holds `--metrics-token`: the counts say how busy
/// every environment is, so they are not public once credentials exist.
pub(crate) async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
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
