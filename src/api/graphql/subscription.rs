//! Subscriptions: one execution's history (replayed from `afterSeq`, then live), live events
//! over many executions, and new interventions for a role.

use std::sync::Arc;

use async_graphql::{Context, ID, Subscription as GraphQLSubscription};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::api::graphql::types::{Environment, Event, EventType, Intervention};
use crate::api::graphql::{ApiResult, engine, parse_id, principal, to_graphql};
use crate::engine as core;
use crate::engine::payloads::{self, InterventionRequested};

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
        let filter = core::EventFilter {
            environment: environment.map(Into::into),
            runtime_id,
            types: types.map(|types| types.into_iter().map(Into::into).collect()),
        };
        match engine(context).and_then(|engine| Ok(engine.events(principal(context)?, filter))) {
            Ok(events) => events
                .map(|event| event.map(|event| Event::from(core::Event::clone(&event))).map_err(to_graphql))
                .boxed(),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
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
        let filter = core::EventFilter {
            environment: environment.map(Into::into),
            ..core::EventFilter::of_types(&[core::EventType::InterventionRequested])
        };
        engine
            .events(&principal, filter)
            .filter_map(move |item| {
                let engine = engine.clone();
                let role = role.clone();
                let principal = principal.clone();
                async move {
                    let event: Arc<core::Event> = item.ok()?;
                    let requested: InterventionRequested = payloads::read(event.event_type, &event.payload)?;
                    if role.as_ref().is_some_and(|role| requested.role.as_ref() != Some(role)) {
                        return None;
                    }
                    let id = requested.intervention_id.parse().ok()?;
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
