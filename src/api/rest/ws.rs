//! WebSocket `/api/v1/ws`: JSON messages to follow executions. Each subscription runs the
//! catalogue's `executionEvents` GraphQL subscription in-process, so it replays and goes live
//! exactly like the GraphQL one.
//!
//! Client → server: `{"type":"subscribe_execution","executionId":…,"afterSeq":…}`,
//! `{"type":"unsubscribe_execution","executionId":…}`. Server → client: `subscribed`,
//! `execution_event` (with `event`), `unsubscribed`, `error` (with `code` and `message`).
//!
//! The first subscription must come within the init timeout (otherwise the socket is closed
//! with 4408), and the credential is checked again on every subscription and every
//! re-authentication interval: once it is refused (a revoked key, an expired JWT) the socket
//! is closed with 4403.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::catalog;
use crate::api::context::{AppState, SocketCredential, WS_BUFFER_BYTES, bearer, close_message};
use crate::engine::Principal;

/// No subscription arrived within the init timeout.
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// The credential is no longer valid.
const CLOSE_FORBIDDEN: u16 = 4403;

/// How many messages may wait for a slow client before its subscriptions pause.
const OUTBOX: usize = 64;
/// How many executions one connection may follow at once.
pub const MAX_SUBSCRIPTIONS: usize = crate::api::graphql::limits::MAX_SUBSCRIPTIONS;

/// The connection authenticates once, with the upgrade request's `Authorization` header or a
/// `?token=` query parameter (browsers cannot set headers on WebSockets).
pub async fn upgrade(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = bearer(&headers).or_else(|| query.get("token").cloned());
    let credential = SocketCredential::new(state.clone());
    match credential.present(token).await {
        Ok(principal) => upgrade
            .max_message_size(state.max_body_bytes)
            .max_frame_size(state.max_body_bytes)
            .read_buffer_size(WS_BUFFER_BYTES)
            .write_buffer_size(WS_BUFFER_BYTES)
            .on_upgrade(move |socket| session(state, principal, credential, socket)),
        Err(error) => crate::api::rest::problem(error.code().as_str(), &error.public_message(), &[]),
    }
}

/// A client that does not read is disconnected once a message has waited the send timeout.
async fn session(state: AppState, principal: Principal, credential: SocketCredential, socket: WebSocket) {
    let (mut sender, mut receiver) = socket.split();
    let (outbox, mut pending) = mpsc::channel::<Value>(OUTBOX);
    let mut subscriptions: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let timing = state.sockets;
    let init_deadline = tokio::time::sleep(timing.init_timeout);
    tokio::pin!(init_deadline);
    let mut subscribed = false;
    let mut recheck = timing.recheck();
    let close = loop {
        let outgoing = tokio::select! {
            incoming = receiver.next() => {
                let Some(Ok(message)) = incoming else { break None };
                let text = match message {
                    Message::Text(text) => text.to_string(),
                    Message::Close(_) => break None,
                    _ => continue,
                };
                let message = serde_json::from_str::<Value>(&text).ok();
                if message.as_ref().is_some_and(|message| message["type"] == "subscribe_execution") {
                    subscribed = true;
                    if let Err(reason) = credential.check().await {
                        break Some((CLOSE_FORBIDDEN, reason));
                    }
                }
                match handle(&state, &principal, message, &outbox, &mut subscriptions) {
                    Some(reply) => reply,
                    None => continue,
                }
            }
            Some(message) = pending.recv() => message,
            () = &mut init_deadline, if !subscribed => {
                break Some((CLOSE_INIT_TIMEOUT, "no subscribe_execution within the init timeout".to_owned()));
            }
            _ = recheck.tick() => match credential.check().await {
                Ok(()) => continue,
                Err(reason) => break Some((CLOSE_FORBIDDEN, reason)),
            },
        };
        match tokio::time::timeout(timing.send_timeout, sender.send(Message::text(outgoing.to_string()))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break None,
            Err(_) => {
                tracing::info!(
                    seconds = timing.send_timeout.as_secs(),
                    "closing a REST WebSocket whose client stopped reading"
                );
                break None;
            }
        }
    };
    for (_, task) in subscriptions {
        task.abort();
    }
    if let Some((code, reason)) = close {
        let _ = tokio::time::timeout(timing.send_timeout, sender.send(close_message(code, &reason))).await;
    }
}

fn error(code: &str, message: &str, execution_id: Option<&str>) -> Value {
    json!({"type": "error", "code": code, "message": message, "executionId": execution_id})
}

/// Handles one client message; returns the immediate reply, if any.
fn handle(
    state: &AppState,
    principal: &Principal,
    message: Option<Value>,
    outbox: &mpsc::Sender<Value>,
    subscriptions: &mut HashMap<String, tokio::task::JoinHandle<()>>,
) -> Option<Value> {
    let Some(message) = message else {
        return Some(error("BAD_INPUT", "messages are JSON objects with a `type`", None));
    };
    // One subscription per execution, however its id is spelled (case, braces, `urn:uuid:`).
    let execution_id = message["executionId"]
        .as_str()
        .map(|id| id.parse::<crate::engine::ExecutionId>().map_or_else(|_| id.to_owned(), |id| id.to_string()));
    match (message["type"].as_str(), execution_id) {
        (Some("subscribe_execution"), Some(execution_id)) => {
            if subscriptions.len() >= MAX_SUBSCRIPTIONS && !subscriptions.contains_key(&execution_id) {
                return Some(error(
                    "BAD_INPUT",
                    &format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                    Some(&execution_id),
                ));
            }
            let after_seq = message["afterSeq"].as_i64().unwrap_or(0);
            if let Some(previous) = subscriptions.remove(&execution_id) {
                previous.abort();
            }
            let task = tokio::spawn(forward(
                state.clone(),
                principal.clone(),
                execution_id.clone(),
                after_seq,
                outbox.clone(),
            ));
            subscriptions.insert(execution_id.clone(), task);
            Some(json!({"type": "subscribed", "executionId": execution_id, "afterSeq": after_seq}))
        }
        (Some("unsubscribe_execution"), Some(execution_id)) => {
            if let Some(task) = subscriptions.remove(&execution_id) {
                task.abort();
            }
            Some(json!({"type": "unsubscribed", "executionId": execution_id}))
        }
        (Some("subscribe_execution" | "unsubscribe_execution"), None) => {
            Some(error("BAD_INPUT", "`executionId` is required", None))
        }
        _ => Some(error(
            "BAD_INPUT",
            "unknown message type; expected subscribe_execution or unsubscribe_execution",
            None,
        )),
    }
}

/// Runs the `executionEvents` subscription and forwards each event.
async fn forward(
    state: AppState,
    principal: Principal,
    execution_id: String,
    after_seq: i64,
    outbox: mpsc::Sender<Value>,
) {
    let Some(operation) = catalog::operation("executionEvents") else { return };
    let variables = json!({"id": execution_id, "afterSeq": after_seq});
    let variables = variables.as_object().cloned().unwrap_or_default();
    let mut stream = state.runner.stream(operation, variables, principal);
    while let Some(result) = stream.next().await {
        let message = match result {
            Err(failure) => {
                let message = error(failure.code.as_str(), &failure.message, Some(&execution_id));
                let _ = outbox.send(message).await;
                return;
            }
            Ok(data) => {
                json!({"type": "execution_event", "executionId": execution_id, "event": data["executionEvents"]})
            }
        };
        if outbox.send(message).await.is_err() {
            return;
        }
    }
}
