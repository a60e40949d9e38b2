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
//!
//! A connection is also bounded in time: `connection_init` must arrive within the init timeout
//! (otherwise 4408, as graphql-transport-ws says), and the credential it presented is checked
//! again on every new subscription and every `reauthenticate` interval, so a revoked key or an
//! expired JWT closes the connection (4403) instead of streaming on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::{Data, Executor};
use axum::extract::ws::{Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::context::{SocketCredential, SocketTiming, close_message};
use crate::api::graphql::OrgataSchema;
use crate::api::graphql::limits::MAX_SUBSCRIPTIONS;

/// graphql-transport-ws: `connection_init` did not arrive in time.
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// graphql-transport-ws: the credential is refused (here: no longer valid).
const CLOSE_FORBIDDEN: u16 = 4403;

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
/// payload into the connection's data (who the client is) and presents its token to
/// `credential`, which is checked again while the connection lasts.
pub(crate) async fn serve<Init, InitFuture>(
    socket: WebSocket,
    schema: OrgataSchema,
    protocol: WebSocketProtocols,
    timing: SocketTiming,
    credential: SocketCredential,
    on_init: Init,
) where
    Init: FnOnce(Value) -> InitFuture + Send + 'static,
    InitFuture: Future<Output = async_graphql::Result<Data>> + Send + 'static,
{
    let (mut sink, stream) = socket.split();
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (refuse, mut refusals) = mpsc::channel::<WsMessage>(REFUSALS);
    let legacy = protocol == WebSocketProtocols::SubscriptionsTransportWS;
    let input = {
        let active = active.clone();
        let credential = credential.clone();
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
                let verdict = refusal(bytes, &active, legacy);
                let refuse = refuse.clone();
                let credential = credential.clone();
                async move {
                    let refusal = match verdict {
                        Verdict::Pass => return true,
                        // Every new subscription re-checks the credential first.
                        Verdict::Subscribe => match credential.check().await {
                            Ok(()) => return true,
                            Err(message) => WsMessage::Close(CLOSE_FORBIDDEN, message),
                        },
                        Verdict::Refuse(text) => WsMessage::Text(text),
                    };
                    // Waits while refusals are unwritten: back-pressure, not a queue.
                    let _ = refuse.send(refusal).await;
                    false
                }
            })
    };
    let graphql = async_graphql::http::WebSocket::new(Detached(schema), input, protocol).on_connection_init(on_init);
    futures::pin_mut!(graphql);
    let init_deadline = tokio::time::sleep(timing.init_timeout);
    tokio::pin!(init_deadline);
    let mut acknowledged = false;
    let mut recheck = timing.recheck();
    loop {
        let message = tokio::select! {
            message = graphql.next() => match message {
                Some(message) => message,
                None => break,
            },
            Some(refusal) = refusals.recv() => refusal,
            () = &mut init_deadline, if !acknowledged => {
                WsMessage::Close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".to_owned())
            }
            _ = recheck.tick(), if acknowledged => match credential.check().await {
                Ok(()) => continue,
                Err(message) => WsMessage::Close(CLOSE_FORBIDDEN, message),
            },
        };
        let (message, last) = match message {
            WsMessage::Text(text) => {
                if !acknowledged && text.starts_with(r#"{"type":"connection_ack""#) {
                    acknowledged = true;
                }
                if let Some(id) = completed(&text) {
                    active.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                }
                (Message::text(text), false)
            }
            WsMessage::Close(code, reason) => (close_message(code, &reason), true),
        };
        match tokio::time::timeout(timing.send_timeout, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(
                    seconds = timing.send_timeout.as_secs(),
                    "closing a GraphQL WebSocket whose client stopped reading"
                );
                break;
            }
        }
        if last {
            break;
        }
    }
}

/// What happens to a client message.
enum Verdict {
    /// It goes on to async-graphql.
    Pass,
    /// It starts a subscription, which goes on once the credential is still valid.
    Subscribe,
    /// It is answered with this message instead.
    Refuse(String),
}

/// What to do with a client message: a subscription over the limit is refused with an `error`
/// message for its id.
fn refusal(bytes: &[u8], active: &Mutex<HashSet<String>>, legacy: bool) -> Verdict {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: String,
        id: Option<String>,
    }
    // Whatever does not parse is async-graphql's to refuse.
    let Ok(Envelope { kind, id: Some(id) }) = serde_json::from_slice::<Envelope>(bytes) else { return Verdict::Pass };
    let mut active = active.lock().unwrap_or_else(PoisonError::into_inner);
    match kind.as_str() {
        "start" | "subscribe" => {
            if active.contains(&id) || active.len() < MAX_SUBSCRIPTIONS {
                active.insert(id);
                return Verdict::Subscribe;
            }
            let message = format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection");
            let error = json!({"message": message, "extensions": {"code": "BAD_INPUT"}});
            let payload = if legacy { error } else { json!([error]) };
            Verdict::Refuse(json!({"type": "error", "id": id, "payload": payload}).to_string())
        }
        "stop" | "complete" => {
            active.remove(&id);
            Verdict::Pass
        }
        _ => Verdict::Pass,
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
