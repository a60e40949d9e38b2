//! What lasts for an MCP session: resource subscriptions, the client's roots, and (for
//! 2025-11-25 clients that declared sampling) the offer of AGENT interventions to the model.

// Sampling and roots are deprecated from 2026-07-28 on, but 2025-11-25 clients use them and
// Orgata serves that revision deliberately.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use rmcp::model::{
    ClientJsonRpcMessage, CreateMessageRequestParams, ResourceUpdatedNotificationParam, SamplingMessage,
    ServerJsonRpcMessage, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::{RestoreOutcome, SessionId, SessionManager};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Value;

use crate::api::mcp::{OrgataMcp, error};
use crate::engine::payloads::{self, InterventionRequested};
use crate::engine::{Command, Environment, EventFilter, EventType, ExecutionId, InterventionKind, Principal};

/// The key of the sampling task among a session's subscriptions.
const SAMPLING: &str = "sampling";
/// How long a tool call waits for the client to list its roots.
const ROOTS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Per-session state; the HTTP service makes a fresh one for every session.
#[derive(Default)]
pub struct Session {
    subscriptions: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Environments the client's `orgata://env/{environment}` roots allow; None until asked,
    /// or when the client declared no such roots.
    roots: Mutex<Option<Option<Vec<Environment>>>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(subscriptions) = self.subscriptions.lock() {
            subscriptions.values().for_each(tokio::task::AbortHandle::abort);
        }
    }
}

/// How many resources one session may follow at once (as many as a WebSocket).
pub const MAX_SUBSCRIPTIONS: usize = crate::api::graphql::limits::MAX_SUBSCRIPTIONS;

/// The execution an `orgata://execution/{id}` URI names, and the URI in its canonical
/// spelling: a UUID may be written many ways (case, braces, `urn:uuid:`), and each spelling must
/// not become a subscription of its own.
fn execution_of(uri: &str) -> Result<(ExecutionId, String), McpError> {
    let id: ExecutionId = uri
        .strip_prefix("orgata://execution/")
        .ok_or_else(|| {
            error::bad_input(format!("only executions can be subscribed to, not `{}`", crate::engine::bounded(uri)))
        })?
        .parse()
        .map_err(|message: String| error::bad_input(message))?;
    Ok((id, format!("orgata://execution/{id}")))
}

fn too_many() -> McpError {
    error::bad_input(format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per session"))
}

/// Forwards an execution's events as `notifications/resources/updated` until `notify` fails.
async fn follow<F, Fut>(
    server: &OrgataMcp,
    principal: &Principal,
    id: ExecutionId,
    uri: String,
    notify: F,
) -> Result<tokio::task::AbortHandle, McpError>
where
    F: Fn(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let engine = server.state.engine.clone();
    let execution = engine.execution(principal, id).await.map_err(error::from_engine)?;
    let stream = engine.subscribe(id, execution.last_seq);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(_)) = stream.next().await {
            if !notify(uri.clone()).await {
                break;
            }
        }
    });
    Ok(task.abort_handle())
}

impl OrgataMcp {
    /// 2025-11-25: `resources/subscribe` on an execution.
    pub(crate) async fn subscribe_resource(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let principal = self.caller(&context).await?;
        let (id, uri) = execution_of(&request.uri)?;
        let full = |subscriptions: &HashMap<String, tokio::task::AbortHandle>| {
            let resources = subscriptions.keys().filter(|key| key.as_str() != SAMPLING).count();
            !subscriptions.contains_key(&uri) && resources >= MAX_SUBSCRIPTIONS
        };
        if self.session.subscriptions.lock().is_ok_and(|subscriptions| full(&subscriptions)) {
            return Err(too_many());
        }
        let peer = context.peer.clone();
        let handle = follow(self, &principal, id, uri.clone(), move |uri| {
            let peer = peer.clone();
            async move { peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_ok() }
        })
        .await?;
        let mut subscriptions = self.session.subscriptions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked again: another subscribe may have filled the session meanwhile.
        if full(&subscriptions) {
            handle.abort();
            return Err(too_many());
        }
        if let Some(previous) = subscriptions.insert(uri, handle) {
            previous.abort();
        }
        Ok(())
    }

    pub(crate) fn unsubscribe_resource(&self, request: UnsubscribeRequestParams) {
        let Ok((_, uri)) = execution_of(&request.uri) else { return };
        if let Ok(mut subscriptions) = self.session.subscriptions.lock()
            && let Some(handle) = subscriptions.remove(&uri)
        {
            handle.abort();
        }
    }

    /// 2026-07-28: `subscriptions/listen` with resource URIs, until the client cancels.
    pub(crate) async fn listen_resources(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let principal = self.caller(context.request_context()).await?;
        let mut executions = HashMap::new();
        for uri in context.accepted().resource_subscriptions.clone().unwrap_or_default() {
            let (id, uri) = execution_of(&uri)?;
            executions.insert(uri, id);
        }
        if executions.len() > MAX_SUBSCRIPTIONS {
            return Err(too_many());
        }
        let mut handles = Vec::new();
        for (uri, id) in executions {
            let sink = context.sink().clone();
            handles.push(
                follow(self, &principal, id, uri, move |uri| {
                    let sink = sink.clone();
                    async move { sink.notify_resource_updated(uri).await.is_ok() }
                })
                .await?,
            );
        }
        context.cancelled().await;
        handles.iter().for_each(tokio::task::AbortHandle::abort);
        Ok(())
    }

    pub(crate) fn accepted(&self, requested: &SubscriptionFilter) -> SubscriptionFilter {
        requested.supported_by(&rmcp::ServerHandler::get_info(self).capabilities)
    }

    /// The caller, narrowed to the environments of the client's `orgata://env/…` roots when a
    /// 2025-11-25 client declared roots.
    pub(crate) async fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        let principal = self.principal(context)?;
        let declared = context.client_capabilities().is_some_and(|capabilities| capabilities.roots.is_some());
        if !declared || super::is_stateless(context) {
            return Ok(principal);
        }
        let known = self.session.roots.lock().ok().and_then(|roots| roots.clone());
        let roots = match known {
            Some(roots) => roots,
            None => {
                // Roots narrow a session for convenience; grants are the boundary. A client
                // whose roots cannot be read has, for this session, declared none.
                let listed = tokio::time::timeout(ROOTS_WAIT, context.peer.list_roots()).await;
                let roots = match listed
                    .map_err(|_| "no answer in time".to_owned())
                    .and_then(|listed| listed.map_err(|error| error.to_string()))
                {
                    Ok(listed) => {
                        let environments: Vec<Environment> = listed
                            .roots
                            .iter()
                            .filter_map(|root| root.uri.strip_prefix("orgata://env/")?.parse().ok())
                            .collect();
                        (!environments.is_empty()).then_some(environments)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the client declared roots but did not list them; the session is not narrowed");
                        None
                    }
                };
                if let Ok(mut cached) = self.session.roots.lock() {
                    *cached = Some(roots.clone());
                }
                roots
            }
        };
        Ok(match roots {
            Some(environments) => Principal { grants: principal.grants.restricted_to(&environments), ..principal },
            None => principal,
        })
    }

    /// A change of roots takes effect at the next request.
    pub(crate) fn forget_roots(&self) {
        if let Ok(mut roots) = self.session.roots.lock() {
            *roots = None;
        }
    }

    /// After a 2025-11-25 client that declared sampling initializes, pending and future AGENT
    /// interventions it may answer are offered to its model.
    pub(crate) fn offer_sampling(&self, context: &NotificationContext<RoleServer>) {
        let declared = context.peer.peer_info().is_some_and(|info| info.capabilities.sampling.is_some());
        let principal = self.fixed.clone().or_else(|| {
            context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        });
        let (true, Some(principal)) = (declared, principal) else { return };
        let engine = self.state.engine.clone();
        let peer = context.peer.clone();
        let task = tokio::spawn(async move {
            let events = engine.events(&principal, EventFilter::of_types(&[EventType::InterventionRequested]));
            let mut events = std::pin::pin!(events);
            // What is already pending first, then what is requested from now on.
            let filter = crate::engine::InterventionFilter {
                status: Some(crate::engine::InterventionStatus::Pending),
                kind: Some(InterventionKind::Agent),
                answerable_by: Some(principal.clone()),
                ..Default::default()
            };
            for intervention in engine.interventions(&principal, &filter, 100).await.unwrap_or_default() {
                if !sample(&engine, &peer, &principal, intervention.id).await {
                    return;
                }
            }
            loop {
                let event = match events.next().await {
                    Some(Ok(event)) => event,
                    // Fell behind: the next sampling offer picks up what is still pending.
                    Some(Err(_)) => continue,
                    None => return,
                };
                let Some(requested) = payloads::read::<InterventionRequested>(event.event_type, &event.payload) else {
                    continue;
                };
                let Ok(id) = requested.intervention_id.parse() else { continue };
                if requested.kind != InterventionKind::Agent {
                    continue;
                }
                if !sample(&engine, &peer, &principal, id).await {
                    return;
                }
            }
        });
        if let Ok(mut subscriptions) = self.session.subscriptions.lock() {
            subscriptions.insert(SAMPLING.to_owned(), task.abort_handle());
        }
    }
}

/// Asks the client's model to answer one AGENT intervention; false once the client is gone.
async fn sample(
    engine: &crate::engine::Engine,
    peer: &Peer<RoleServer>,
    principal: &Principal,
    id: crate::engine::InterventionId,
) -> bool {
    let Ok(intervention) = engine.intervention(principal, id).await else { return true };
    if intervention.kind != InterventionKind::Agent
        || !engine.intervention_actions(principal, &intervention).contains(&crate::engine::Action::Respond)
    {
        return true;
    }
    let text = format!(
        "{}\n\nAnswer with one JSON value that fits this JSON Schema, and nothing else:\n{}",
        intervention.prompt.clone().unwrap_or_default(),
        intervention.form_schema
    );
    let request = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(text)], 1024);
    let reply = match peer.create_message(request).await {
        Ok(reply) => reply,
        Err(rmcp::service::ServiceError::TransportClosed) => return false,
        Err(error) => {
            tracing::info!(%error, "the client did not answer a sampling request; the intervention stays pending");
            return true;
        }
    };
    let answer = serde_json::to_value(&reply.message).ok().and_then(|message| {
        let text =
            message.pointer("/content/text").or_else(|| message.pointer("/content/0/text"))?.as_str()?.to_owned();
        serde_json::from_str::<Value>(text.trim().trim_start_matches("```json").trim_matches('`').trim()).ok()
    });
    let Some(response) = answer else {
        tracing::info!("the model's reply was not JSON; the intervention stays pending");
        return true;
    };
    let command = Command::Respond {
        intervention_id: id,
        response,
        notes: Some("answered by the client's model (sampling)".to_owned()),
    };
    if let Err(error) = engine.act(principal, intervention.execution_id, command).await {
        tracing::info!(error = %error.public_message(), "a sampled answer was refused; the intervention stays pending");
    }
    true
}

/// How many MCP sessions (2025-11-25; 2026-07-28 is stateless) may be open at once, in total
/// and per principal. Each costs tens of kilobytes and a task; abandoned ones end after rmcp's
/// idle timeout (five minutes).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub total: usize,
    pub per_principal: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { total: 1000, per_principal: 32 }
    }
}

/// Who is opening a session: set by the `/mcp` middleware around the request, read when rmcp
/// asks for a session (on the same task), so the session manager knows its owner. `refused`
/// tells the middleware the request was refused for the cap.
pub(crate) struct Admission {
    owner: String,
    refused: std::sync::atomic::AtomicBool,
}

tokio::task_local! {
    static ADMISSION: Admission;
}

/// Runs one `/mcp` request on behalf of `owner`; true with the response if it was refused
/// because the session caps are reached.
pub(crate) async fn admitted<F: Future>(owner: String, request: F) -> (F::Output, bool) {
    let admission = Admission { owner, refused: std::sync::atomic::AtomicBool::new(false) };
    ADMISSION
        .scope(admission, async {
            let output = request.await;
            let refused = ADMISSION.with(|admission| admission.refused.load(std::sync::atomic::Ordering::Relaxed));
            (output, refused)
        })
        .await
}

/// A session could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("too many MCP sessions are open")]
    Full,
    #[error(transparent)]
    Local(#[from] rmcp::transport::streamable_http_server::session::local::LocalSessionManagerError),
}

/// rmcp's in-memory sessions, capped in total and per principal.
pub struct Sessions {
    inner: rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    /// Each open session's owner (principal id); pruned against the open sessions.
    owners: Mutex<HashMap<SessionId, String>>,
    limits: SessionLimits,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions { inner: Default::default(), owners: Mutex::default(), limits }
    }
}

type LocalManager = rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = <LocalManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let owner = ADMISSION.try_with(|admission| admission.owner.clone()).unwrap_or_default();
        let open: std::collections::HashSet<SessionId> = self.inner.sessions.read().await.keys().cloned().collect();
        let full = {
            let mut owners = self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            owners.retain(|id, _| open.contains(id));
            open.len() >= self.limits.total
                || owners.values().filter(|known| **known == owner).count() >= self.limits.per_principal
        };
        if full {
            let _ = ADMISSION.try_with(|admission| admission.refused.store(true, std::sync::atomic::Ordering::Relaxed));
            return Err(SessionsError::Full);
        }
        let (id, transport) = self.inner.create_session().await?;
        self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), owner);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.inner.restore_session(id).await?)
    }
}
