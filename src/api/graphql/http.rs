//! GraphQL over HTTP and WebSocket: `POST /graphql` (one JSON request), `GET /graphql` (a query
//! from the query string, or GraphiQL for a browser) and `/graphql/ws` (subscriptions, driven
//! by [`super::ws`]). Each request is authenticated here and runs the schema as its caller.

use async_graphql::Request as GraphQLRequestBody;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, WebSocketProtocols};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::api::context::{AppState, SocketCredential, WS_BUFFER_BYTES, bearer, caller};
use crate::api::graphql;
use crate::engine::ErrorCode;

fn unauthenticated_graphql(error: crate::engine::Error) -> Response {
    let body = serde_json::json!({"data": null, "errors": [{"message": error.public_message(), "extensions": {"code": error.code().as_str()}}]});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
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
pub(crate) async fn post(
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
    let mut request = match serde_json::from_slice::<serde_json::Value>(&body) {
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
        Ok(principal) => {
            request.data = graphql::caller_data(&state.engine, principal);
            GraphQLResponse::from(state.schema.execute(request).await).into_response()
        }
        Err(error) => unauthenticated_graphql(error),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GetParameters {
    query: Option<String>,
    variables: Option<String>,
    operation_name: Option<String>,
}

/// A browser gets GraphiQL; a client with `?query=` gets an answer. GET never mutates, so a
/// link cannot change anything.
pub(crate) async fn get(
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
        Ok(principal) => {
            request.data = graphql::caller_data(&state.engine, principal);
            GraphQLResponse::from(state.schema.execute(request).await).into_response()
        }
        Err(error) => unauthenticated_graphql(error),
    }
}

/// Subscriptions over WebSocket, speaking `graphql-transport-ws` and the legacy `graphql-ws`.
/// The token may come in the upgrade request's `Authorization` header or, since browsers cannot
/// set headers on WebSockets, in `connection_init`'s payload as `Authorization` or `token`.
pub(crate) async fn socket(
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
    let engine = state.engine.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(state.max_body_bytes)
        .max_frame_size(state.max_body_bytes)
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            metrics.websocket(1);
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
                Ok(graphql::caller_data(&engine, principal))
            };
            graphql::ws::serve(socket, schema, protocol, timing, credential, on_init).await;
            metrics.websocket(-1);
        })
}
