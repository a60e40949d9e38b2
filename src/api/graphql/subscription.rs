//! Subscriptions: one execution's history (replayed from `afterSeq`, then live), live events
//! over many executions, and new interventions for a role.

use std::sync::Arc;

use async_graphql::{Context, ID, Subscription as GraphQLSubscription};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_stream::wrappers::BroadcastStream;

use crate::api::graphql::types::{Environment, Event, EventType, Intervention};
use crate::api::graphql::{ApiResult, engine, parse_id, principal, to_graphql};
use crate::engine::{self as core, Error};

pub struct Subscription;

#[GraphQLSubscription]
impl Subscription {
    /// Every event of one execution after `afterSeq`: stored history first, then live, each
    /// once and in order. Reconnect with the last `seq` you saw to miss nothing.
    async fn execution_events(
        &self,
        context: &Context<'_>,
        execution_id: ID,
        #[graphql(default = 0)] after_seq: i64,
    ) -> BoxStream<'static, ApiResult<Event>> {
        let started = async {
            let id = parse_id(&execution_id, "/executionId")?;
            let engine = engine(context)?.clone();
            // Unknown or unreadable executions are an error now, not a silent empty stream.
            engine.execution(principal(context)?, id).await.map_err(to_graphql)?;
            Ok::<_, async_graphql::Error>(engine.subscribe(id, after_seq))
        };
        match started.await {
            Ok(stream) => stream.map(|event| event.map(Event::from).map_err(to_graphql)).boxed(),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
    }

    /// Live events of every execution, filtered. It does not replay: to resume, follow each
    /// execution with `executionEvents(afterSeq)`.
    async fn events(
        &self,
        context: &Context<'_>,
        environment: Option<Environment>,
        runtime_id: Option<String>,
        types: Option<Vec<EventType>>,
    ) -> BoxStream<'static, ApiResult<Event>> {
        let (receiver, readable) = match engine(context).and_then(|engine| Ok((engine, principal(context)?))) {
            Ok((engine, principal)) => (engine.subscribe_all(), principal.grants.readable(core::Resource::Execution)),
            Err(error) => return futures::stream::once(async move { Err(error) }).boxed(),
        };
        let environment: Option<core::Environment> = environment.map(Into::into);
        let types: Option<Vec<core::EventType>> = types.map(|types| types.into_iter().map(Into::into).collect());
        BroadcastStream::new(receiver)
            .filter_map(move |item| {
            let keep = match &item {
                Ok(event) => {
                    readable.contains(&event.environment)
                        && environment.is_none_or(|environment| event.environment == environment)
                        && runtime_id.as_ref().is_none_or(|runtime| &event.runtime_id == runtime)
                        && types.as_ref().is_none_or(|types| types.contains(&event.event_type))
                }
                Err(_) => true,
            };
            let item = keep.then(|| match item {
                Ok(event) => Ok(Event::from(core::Event::clone(&event))),
                Err(_) => Err(to_graphql(Error::Conflict(
                    "this subscriber fell behind and events were dropped; resume each execution with executionEvents(afterSeq)"
                        .to_owned(),
                ))),
            });
            async move { item }
        })
            .boxed()
    }

    /// Interventions as they are requested, optionally of one environment and role.
    async fn intervention_requested(
        &self,
        context: &Context<'_>,
        environment: Option<Environment>,
        role: Option<String>,
    ) -> BoxStream<'static, ApiResult<Intervention>> {
        let (engine, principal) =
            match engine(context).and_then(|engine| Ok((engine.clone(), principal(context)?.clone()))) {
                Ok(found) => found,
                Err(error) => return futures::stream::once(async move { Err(error) }).boxed(),
            };
        let environment: Option<core::Environment> = environment.map(Into::into);
        let receiver = engine.subscribe_all();
        BroadcastStream::new(receiver)
            .filter_map(move |item| {
                let engine = engine.clone();
                let role = role.clone();
                let principal = principal.clone();
                async move {
                    let event: Arc<core::Event> = item.ok()?;
                    if event.event_type != core::EventType::InterventionRequested
                        || environment.is_some_and(|environment| event.environment != environment)
                    {
                        return None;
                    }
                    if let Some(role) = &role
                        && event.payload.get("role").and_then(|value| value.as_str()) != Some(role.as_str())
                    {
                        return None;
                    }
                    let id = event.payload.get("interventionId")?.as_str()?.parse().ok()?;
                    // Interventions the caller may not read are skipped, not reported.
                    engine
                        .intervention(&principal, id)
                        .await
                        .ok()
                        .map(|intervention| Ok(Intervention::from(intervention)))
                }
            })
            .boxed()
    }
}
