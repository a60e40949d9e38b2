//! Live history. After a transition commits, its events go to an in-process broadcast.
//! `subscribe(execution, after_seq)` replays from the database, then goes live, and fills any
//! gap (events published out of commit order, or a lagging receiver) from the database, so a
//! subscriber sees every event once, in `seq` order.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::broadcast;

use crate::engine::error::Result;
use crate::engine::records;
use crate::engine::types::{Event, ExecutionId};
use crate::engine::{Engine, Inner};
use crate::store::entity::event;

/// How many events the broadcast holds for slow receivers before they must catch up from the
/// database.
pub(crate) const BROADCAST_CAPACITY: usize = 16_384;

/// Events of `execution` with `after < seq <= until`, in order.
pub(crate) async fn read(
    engine: &Inner,
    execution: ExecutionId,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> Result<Vec<Event>> {
    let mut query = event::Entity::find()
        .filter(event::Column::ExecutionId.eq(execution.to_string()))
        .filter(event::Column::Seq.gt(after));
    if let Some(until) = until {
        query = query.filter(event::Column::Seq.lte(until));
    }
    query
        .order_by_asc(event::Column::Seq)
        .limit(limit)
        .all(engine.store.connection())
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
        StepStarted => event.payload.get("childExecutionId").is_some(),
        _ => false,
    }
}

struct Subscription {
    engine: Arc<Inner>,
    execution: ExecutionId,
    last: i64,
    receiver: broadcast::Receiver<Arc<Event>>,
    backlog: VecDeque<Event>,
    replayed: bool,
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
            match self.receiver.recv().await {
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
            receiver: self.inner.events.subscribe(),
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

    /// Every event of every execution as it is published, for streams that filter by
    /// environment, runtime or type. Receivers that lag must resume per execution by `seq`.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.events.subscribe()
    }
}
