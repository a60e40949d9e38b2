//! MCP's HTTP transport at `/mcp`: Streamable HTTP from rmcp, behind three layers of our own:
//! authentication (the principal rides in the request's extensions, and the session caps are
//! enforced), reading the JSON-RPC body before rmcp does (so unreadable messages get the
//! JSON-RPC error the specification names), and `DELETE /mcp` answered 204.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::context::{AppState, bearer, caller};
use crate::api::mcp::{OrgataMcp, error, session};

/// `/mcp`, with its layers.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .nest_service("/mcp", service(state.clone(), state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), check_message))
        .layer(middleware::from_fn(session_ended))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// `/mcp` authenticates like every other protocol; the principal rides in the request's
/// extensions, where the MCP handler finds it.
async fn authenticate(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match caller(&state, bearer(request.headers()).as_deref()).await {
        Ok(principal) => {
            let owner = principal.id.clone();
            request.extensions_mut().insert(principal);
            let (response, refused) = session::admitted(owner, next.run(request)).await;
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

/// The methods this server serves. A request for one of them whose params rmcp cannot read
/// falls through to rmcp's catch-all request and would be answered "method not found"; it is
/// answered "invalid params" instead.
const SERVED_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
];

/// Reads a JSON `POST /mcp` body before rmcp does, so that what rmcp would refuse with a bare
/// HTTP status (415 for a body that is not JSON, a plain 413) or misreport (-32601 for
/// unreadable params) is answered with the JSON-RPC error the specification names: -32700
/// for a parse error, -32600 for JSON that is not a JSON-RPC message, -32602 for params that
/// do not fit the method, and 413 with a JSON-RPC body for a body over the limit.
async fn check_message(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let json = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if request.method() != http::Method::POST || !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!("the body is larger than {} bytes", state.max_body_bytes);
            let body = error::rpc_body(
                Value::Null,
                error::PAYLOAD_TOO_LARGE,
                &message,
                crate::engine::ErrorCode::PayloadTooLarge,
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
        }
    };
    if let Some((status, body)) = unreadable(&bytes) {
        return (status, axum::Json(body)).into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// The JSON-RPC error for a body rmcp cannot serve, or `None` to let rmcp answer.
fn unreadable(bytes: &[u8]) -> Option<(http::StatusCode, Value)> {
    use crate::engine::ErrorCode;
    use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ErrorCode as RpcCode};
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(parse) => {
            let message = format!("parse error: the body is not JSON: {parse}");
            return Some((
                http::StatusCode::BAD_REQUEST,
                error::rpc_body(Value::Null, RpcCode::PARSE_ERROR, &message, ErrorCode::BadInput),
            ));
        }
    };
    let id = value.get("id").filter(|id| id.is_string() || id.is_number()).cloned().unwrap_or(Value::Null);
    match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        Err(invalid) => {
            let message = format!("invalid request: not a JSON-RPC 2.0 message: {invalid}");
            Some((
                http::StatusCode::BAD_REQUEST,
                error::rpc_body(id, RpcCode::INVALID_REQUEST, &message, ErrorCode::BadInput),
            ))
        }
        Ok(ClientJsonRpcMessage::Request(request)) => match &request.request {
            ClientRequest::CustomRequest(custom) if SERVED_METHODS.contains(&custom.method.as_str()) => {
                let message = format!("invalid params: `params` do not fit `{}`", custom.method);
                Some((
                    http::StatusCode::OK,
                    error::rpc_body(id, RpcCode::INVALID_PARAMS, &message, ErrorCode::BadInput),
                ))
            }
            _ => None,
        },
        Ok(_) => None,
    }
}

/// The Streamable HTTP service for `/mcp`. `Host` and `Origin` are checked by the edge policy
/// in front of every route (`crate::edge`), so rmcp's own host check is off.
fn service(
    state: AppState,
    max_body_bytes: usize,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<OrgataMcp, session::Sessions> {
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    let config =
        StreamableHttpServerConfig::default().with_max_request_body_bytes(max_body_bytes).disable_allowed_hosts();
    let sessions = Arc::new(session::Sessions::new(state.mcp_sessions));
    // One server per session, so that each session has its own subscriptions and roots.
    StreamableHttpService::new(
        move || Ok(OrgataMcp { state: state.clone(), fixed: None, session: Arc::default() }),
        sessions,
        config,
    )
}

/// Ending a 2025-11-25 session (`DELETE /mcp`) answers 204 No Content, as a completed request
/// with nothing to return does; rmcp answers 202 Accepted, which the official SDKs report as a
/// failed termination.
async fn session_ended(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let ending = request.method() == http::Method::DELETE;
    let mut response = next.run(request).await;
    if ending && response.status() == http::StatusCode::ACCEPTED {
        *response.status_mut() = http::StatusCode::NO_CONTENT;
    }
    response
}
