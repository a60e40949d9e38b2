//! GraphQL over WebSocket (`/graphql/ws`), both subprotocols, driven here rather than by
//! `GraphQLWebSocket::serve` so that a connection is bounded: it holds at most
//! [`MAX_SUBSCRIPTIONS`] subscriptions (one more is refused with an `error` message for its id),
//! and a client that stops reading is disconnected once a message has waited `send_timeout`
//! for it. Each subscription runs in a task of its own that hands its results over a small
//! channel: async-graphql polls a connection's subscriptions only between writes, and a
//! subscription left unpolled in the middle of reading the database would hold its pooled
//! connection for as long as the client does not read (a few such clients starve the pool).
//! Nothing queues for a slow client beyond those channels and a few refusals: client messages
//! are read only while refusals have room.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{Data, Executor};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::graphql::OrgataSchema;
use crate::api::graphql::limits::MAX_SUBSCRIPTIONS;

/// How many refusals may wait to be written before client messages wait too.
const REFUSALS: usize = 64;
/// How many results of one subscription may wait for the connection to take them.
const RESULTS: usize = 4;

/// The schema, with each subscription driven by a task of its own (see the module's comment).
#[derive(Clone)]
struct Detached(OrgataSchema);

impl Executor for Detached {
    fn execute(&self, request: async_graphql::Request) -> impl Future<Output = async_graphql::Response> + Send {
        self.0.execute(request)
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let mut results = self.0.execute_stream_with_session_data(request, session_data.unwrap_or_default());
        // Boxed: a channel allocates room for 32 messages at once, and a `Response` is large.
        let (sender, receiver) = mpsc::channel::<Box<async_graphql::Response>>(RESULTS);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // The connection dropped the subscription (completed, refused, closed).
                    () = sender.closed() => return,
                    result = results.next() => match result {
                        Some(result) => {
                            if sender.send(Box::new(result)).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver).map(|result| *result).boxed()
    }
}

/// Serves one connection until either side ends it. `on_init` turns `connection_init`'s
/// payload into the connection's data (who the client is).
pub async fn serve<Init, InitFuture>(
    socket: WebSocket,
    schema: OrgataSchema,
    protocol: WebSocketProtocols,
    send_timeout: Duration,
    on_init: Init,
) where
    Init: FnOnce(Value) -> InitFuture + Send + 'static,
    InitFuture: Future<Output = async_graphql::Result<Data>> + Send + 'static,
{
    let (mut sink, stream) = socket.split();
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (refuse, mut refusals) = mpsc::channel::<String>(REFUSALS);
    let legacy = protocol == WebSocketProtocols::SubscriptionsTransportWS;
    let input = {
        let active = active.clone();
        stream
            .take_while(|message| std::future::ready(message.is_ok()))
            .filter_map(|message| {
                std::future::ready(match message {
                    Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    _ => None,
                })
            })
            .filter(move |bytes| {
                let refusal = refusal(bytes, &active, legacy);
                let refuse = refuse.clone();
                async move {
                    match refusal {
                        None => true,
                        Some(refusal) => {
                            // Waits while refusals are unwritten: back-pressure, not a queue.
                            let _ = refuse.send(refusal).await;
                            false
                        }
                    }
                }
            })
    };
    let graphql = async_graphql::http::WebSocket::new(Detached(schema), input, protocol).on_connection_init(on_init);
    futures::pin_mut!(graphql);
    loop {
        let message = tokio::select! {
            message = graphql.next() => match message {
                Some(message) => message,
                None => break,
            },
            Some(refusal) = refusals.recv() => WsMessage::Text(refusal),
        };
        let message = match message {
            WsMessage::Text(text) => {
                if let Some(id) = completed(&text) {
                    active.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                }
                Message::text(text)
            }
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
        };
        match tokio::time::timeout(send_timeout, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(
                    seconds = send_timeout.as_secs(),
                    "closing a GraphQL WebSocket whose client stopped reading"
                );
                break;
            }
        }
    }
}

/// The refusal of a client message, or `None` when it goes on to async-graphql: a subscription
/// over the limit is refused with an `error` message for its id.
fn refusal(bytes: &[u8], active: &Mutex<HashSet<String>>, legacy: bool) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: String,
        id: Option<String>,
    }
    // Whatever does not parse is async-graphql's to refuse.
    let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_slice::<Envelope>(bytes) else { return None };
    let mut active = active.lock().unwrap_or_else(PoisonError::into_inner);
    match kind.as_str() {
        "start" | "subscribe" => {
            if active.contains(&id) || active.len() < MAX_SUBSCRIPTIONS {
                active.insert(id);
                return None;
            }
            let message = format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection");
            let error = json!({"message": message, "extensions": {"code": "BAD_INPUT"}});
            let payload = if legacy { error } else { json!([error]) };
            Some(json!({"type": "error", "id": id, "payload": payload}).to_string())
        }
        "stop" | "complete" => {
            active.remove(&id);
            None
        }
        _ => None,
    }
}

/// The id of a server `complete` message (the subscription has ended).
fn completed(text: &str) -> Option<String> {
    if !text.starts_with(r#"{"type":"complete""#) {
        return None;
    }
    let message: Value = serde_json::from_str(text).ok()?;
    message.get("id")?.as_str().map(str::to_owned)
}
