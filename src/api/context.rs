//! What every request handler shares: the [`AppState`] (the engine, the schema, the generated
//! REST and MCP surfaces, the catalogue runner), how a request says who it is ([`bearer`],
//! [`caller`]), and how a WebSocket keeps checking that ([`SocketCredential`]). Every protocol
//! under `src/api/` takes these from here; `src/server.rs` only assembles the router.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header;

use crate::api::graphql::{self, OrgataSchema};
use crate::api::mcp::{McpApi, SessionLimits};
use crate::api::ops::Metrics;
use crate::api::rest::RestApi;
use crate::api::runner::Runner;
use crate::engine::{Engine, Principal};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Whether the server listens on loopback only, where the local user may act as
    /// `developer` as long as no keys are configured.
    pub loopback: bool,
    pub schema: OrgataSchema,
    /// The catalogue's documents, parsed once, run in-process by REST and MCP.
    pub runner: Arc<Runner>,
    pub rest: Arc<RestApi>,
    pub mcp: Arc<McpApi>,
    pub metrics: Arc<Metrics>,
    /// The largest request body, and WebSocket message, accepted.
    pub max_body_bytes: usize,
    /// How WebSockets are bounded in time.
    pub sockets: SocketTiming,
    /// A bearer token that reads `/metrics` (for a scraper that holds no API key).
    pub metrics_token: Option<String>,
    /// How many MCP sessions may be open.
    pub mcp_sessions: SessionLimits,
}

impl AppState {
    /// The state for an engine: its schema, the catalogue prepared once, the generated REST and
    /// MCP surfaces, and metrics. Fails only if a catalogue document does not fit the schema.
    pub fn new(engine: Engine, loopback: bool) -> Result<AppState, String> {
        let metrics = Metrics::counting(&engine);
        let schema = graphql::build(engine.clone());
        let runner = Arc::new(Runner::new(schema.clone(), engine.clone())?);
        let rest = Arc::new(RestApi::new(&schema)?);
        let mcp = Arc::new(McpApi::new(&schema)?);
        Ok(AppState {
            schema,
            runner,
            rest,
            mcp,
            engine,
            metrics,
            loopback,
            max_body_bytes: 8 * 1024 * 1024,
            sockets: SocketTiming::default(),
            metrics_token: None,
            mcp_sessions: SessionLimits::default(),
        })
    }
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

/// A WebSocket's read buffer and write batch. tungstenite's defaults (128 KiB each) would make a
/// fleet of idle browser connections cost hundreds of kilobytes each; messages here are small,
/// and larger ones still arrive (the buffer grows for them).
pub(crate) const WS_BUFFER_BYTES: usize = 4 * 1024;

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
}
