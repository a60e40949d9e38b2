//! Live history. After a transition commits, its events go to an in-process broadcast.
//! `subscribe(execution, after_seq)` replays from the database, then goes live, and fills any
//! gap (events published out of commit order, or a lagging receiver) from the database, so a
//! subscriber sees every event once, in `seq` order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::sync::broadcast;

use crate::engine::access::Resource;
use crate::engine::error::{Error, Result};
use crate::engine::records;
use crate::engine::types::{Environment, Event, EventType, ExecutionId, Principal};
use crate::engine::{Engine, Inner};
use crate::store;

/// How many events the broadcast holds for slow receivers before they must catch up from the
/// database.
pub(crate) const BROADCAST_CAPACITY: usize = 16_384;

/// Events one execution's channel holds for slow subscribers before they catch up from the
/// database. Small, since every watched execution has one.
const WATCH_CAPACITY: usize = 128;

/// Routes each event to the subscribers of its execution only, so that a subscriber wakes
/// for its own execution's events and never filters everybody else's. A channel exists while
/// somebody watches its execution.
#[derive(Default)]
pub(crate) struct Hub {
    channels: Mutex<HashMap<ExecutionId, broadcast::Sender<Arc<Event>>>>,
}

impl Hub {
    fn watch(&self, execution: ExecutionId) -> broadcast::Receiver<Arc<Event>> {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.entry(execution).or_insert_with(|| broadcast::channel(WATCH_CAPACITY).0).subscribe()
    }

    pub(crate) fn publish(&self, event: &Arc<Event>) {
        let channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(&event.execution_id) {
            // Nobody left is fine: the last subscriber removes the channel as it goes.
            let _ = channel.send(event.clone());
        }
    }

    /// Called by a subscriber as it goes: the channel goes with its last subscriber.
    fn unwatch(&self, execution: ExecutionId, receiver: broadcast::Receiver<Arc<Event>>) {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(receiver);
        if channels.get(&execution).is_some_and(|channel| channel.receiver_count() == 0) {
            channels.remove(&execution);
        }
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.channels.lock().map(|channels| channels.len()).unwrap_or_default()
    }
}

/// Events of `execution` with `after < seq <= until`, in order.
pub(crate) async fn read(
    engine: &Inner,
    execution: ExecutionId,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> Result<Vec<Event>> {
    store::history::events_between(engine.store.connection(), &execution.to_string(), after, until, limit)
        .await?
        .into_iter()
        .map(records::event)
        .collect()
}

/// Whether an event leaves its execution somewhere other than RUNNING.
fn settles(event: &Event) -> bool {
    use crate::engine::EventType::*;
    match event.event_type {
        InterventionRequested | Paused | ExecutionCompleted | ExecutionFailed | ExecutionAborted => true,
        // A `playbook` step parks its parent on the child it starts.
        StepStarted => {
            crate::engine::payloads::read::<crate::engine::payloads::StepStarted>(event.event_type, &event.payload)
                .is_some_and(|started| started.child_execution_id.is_some())
        }
        _ => false,
    }
}

struct Subscription {
    engine: Arc<Inner>,
    execution: ExecutionId,
    last: i64,
    /// Taken only by `Drop`.
    receiver: Option<broadcast::Receiver<Arc<Event>>>,
    backlog: VecDeque<Event>,
    replayed: bool,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            self.engine.watchers.unwatch(self.execution, receiver);
        }
    }
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last = event.seq;
                return Some(Ok(event));
            }
            if !self.replayed {
                self.replayed = true;
                if let Err(error) = self.catch_up(None).await {
                    return Some(Err(error));
                }
                continue;
            }
            let receiver = self.receiver.as_mut()?;
            match receiver.recv().await {
                Ok(event) if event.execution_id != self.execution || event.seq <= self.last => {}
                Ok(event) if event.seq == self.last + 1 => {
                    self.last = event.seq;
                    return Some(Ok(Event::clone(&event)));
                }
                Ok(event) => {
                    if let Err(error) = self.catch_up(Some(event.seq)).await {
                        return Some(Err(error));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(error) = self.catch_up(None).await {
                        return Some(Err(error));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    async fn catch_up(&mut self, until: Option<i64>) -> Result<()> {
        let events = read(&self.engine, self.execution, self.last, until, 10_000).await?;
        self.backlog.extend(events);
        Ok(())
    }
}

impl Engine {
    /// Every event of `execution` after `after_seq`: first the stored history, then live ones.
    /// The stream never ends on its own; drop it to unsubscribe.
    pub fn subscribe(
        &self,
        execution: ExecutionId,
        after_seq: i64,
    ) -> impl Stream<Item = Result<Event>> + Send + use<> {
        // Subscribing before reading history means nothing committed in between is missed.
        let subscription = Subscription {
            receiver: Some(self.inner.watchers.watch(execution)),
            engine: self.inner.clone(),
            execution,
            last: after_seq.max(0),
            backlog: VecDeque::new(),
            replayed: false,
        };
        futures::stream::unfold(subscription, |mut subscription| async move {
            let item = subscription.next().await?;
            Some((item, subscription))
        })
    }

    /// The execution once it is no longer RUNNING, or as it stands when `wait` is up. Backed
    /// by the event stream: nothing polls the database in a loop.
    pub async fn settle(
        &self,
        principal: &crate::engine::Principal,
        execution: ExecutionId,
        wait: std::time::Duration,
    ) -> Result<crate::engine::Execution> {
        use futures::StreamExt;
        let current = self.execution(principal, execution).await?;
        if current.status != crate::engine::ExecutionStatus::Running {
            return Ok(current);
        }
        let stream = self.subscribe(execution, current.last_seq);
        let settled = async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = event?;
                if settles(&event) {
                    break;
                }
            }
            Ok::<(), crate::engine::Error>(())
        };
        if let Ok(result) = tokio::time::timeout(wait, settled).await {
            result?;
        }
        self.execution(principal, execution).await
    }

    /// Live events of every execution `principal` may read, as they are published, kept by
    /// `filter`. It does not replay: a subscriber that falls behind gets one CONFLICT item
    /// (events were dropped) and goes on; to miss nothing it resumes each execution it cares
    /// about with [`Engine::subscribe`] from the last `seq` it saw.
    pub fn events(
        &self,
        principal: &Principal,
        filter: EventFilter,
    ) -> impl Stream<Item = Result<Arc<Event>>> + Send + use<> {
        use futures::StreamExt;
        let readable = principal.grants.readable(Resource::Execution);
        tokio_stream::wrappers::BroadcastStream::new(self.inner.events.subscribe()).filter_map(move |item| {
            let item = match item {
                Ok(event) => (readable.contains(&event.environment) && filter.keeps(&event)).then_some(Ok(event)),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                    Some(Err(Error::Conflict(format!(
                        "this subscriber fell behind and {missed} events were dropped; resume each execution with \
                         executionEvents(afterSeq)"
                    ))))
                }
            };
            std::future::ready(item)
        })
    }
}

/// Which live events a subscriber of [`Engine::events`] wants; every field left out keeps all.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    pub types: Option<Vec<EventType>>,
}

impl EventFilter {
    /// Only events of these types.
    pub fn of_types(types: &[EventType]) -> EventFilter {
        EventFilter { types: Some(types.to_vec()), ..EventFilter::default() }
    }

    fn keeps(&self, event: &Event) -> bool {
        self.environment.is_none_or(|environment| event.environment == environment)
            && self.runtime_id.as_ref().is_none_or(|runtime| &event.runtime_id == runtime)
            && self.types.as_ref().is_none_or(|types| types.contains(&event.event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::EventType;

    fn event(execution: ExecutionId, seq: i64) -> Arc<Event> {
        Arc::new(Event {
            execution_id: execution,
            seq,
            event_type: EventType::StateEdited,
            at: chrono::Utc::now(),
            actor: "test".to_owned(),
            step: None,
            payload: serde_json::Value::Null,
            runtime_id: "r".to_owned(),
            environment: crate::engine::types::Environment::Development,
        })
    }

    #[test]
    fn each_execution_has_a_channel_while_somebody_watches_it() {
        let hub = Hub::default();
        let (watched, other) = (ExecutionId::new(), ExecutionId::new());
        let mut first = hub.watch(watched);
        let second = hub.watch(watched);
        assert_eq!(hub.watched(), 1);
        hub.publish(&event(other, 1));
        hub.publish(&event(watched, 7));
        assert_eq!(first.try_recv().map(|event| event.seq).ok(), Some(7), "only its own execution's events");
        assert!(first.try_recv().is_err());
        hub.unwatch(watched, first);
        assert_eq!(hub.watched(), 1, "the second subscriber still watches");
        hub.unwatch(watched, second);
        assert_eq!(hub.watched(), 0, "the channel goes with its last subscriber");
    }
}
