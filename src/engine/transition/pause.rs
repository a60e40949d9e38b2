//! PAUSE: nothing runs until RESUME. A step already running completes and is recorded, but the
//! execution does not move past it.

use crate::engine::error::Result;
use crate::engine::payloads;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::ExecutionStatus;

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, from: ExecutionStatus, actor: &str) -> Result<()> {
    row.paused_from = Some(from);
    row.status = ExecutionStatus::Paused;
    tx.record(row, actor, None, payloads::Paused { from }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus};

    #[tokio::test]
    async fn pause_holds_a_parked_execution_where_it_stands() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;

        let paused = world.act(waiting.id, Command::Pause).await.expect("paused");
        assert_eq!(paused.status, ExecutionStatus::Paused);
        assert_eq!(paused.current_step.as_deref(), Some("ask"));
        let events = world.events_after(waiting.id, waiting.last_seq).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].event_type, events[0].actor.as_str()), (EventType::Paused, "admin"));
        assert_eq!(events[0].payload, json!({"from": "WAITING"}));
        assert_eq!(events[0].step, None);
        // The person's task stays open: a paused execution may still be answered.
        assert_eq!(world.intervention(intervention.id).await.status, InterventionStatus::Pending);
        assert_eq!(world.checkpoints(waiting.id).await.len(), 2, "a pause records no checkpoint");

        world.assert_refused(waiting.id, Command::Pause, ErrorCode::Conflict).await;
    }

    #[tokio::test]
    async fn pause_stops_a_running_execution_from_retrying() {
        let world = World::start().await;
        let running = world.in_status(ExecutionStatus::Running).await;
        let paused = world.act(running.id, Command::Pause).await.expect("paused");
        assert_eq!((paused.status, paused.attempt), (ExecutionStatus::Paused, 2));
        let events = world.events_after(running.id, running.last_seq).await;
        assert_eq!(events.iter().map(|event| &event.payload).collect::<Vec<_>>(), [&json!({"from": "RUNNING"})]);

        let done = world.in_status(ExecutionStatus::Completed).await;
        world.assert_refused(done.id, Command::Pause, ErrorCode::Conflict).await;
    }
}
