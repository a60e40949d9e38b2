//! RESUME: back to the status the execution would have now had it not been paused; a running
//! one is handed to the workers again. Parked executions hold no task, so nothing else wakes.

use crate::engine::error::Result;
use crate::engine::payloads;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::ExecutionStatus;

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, actor: &str) -> Result<()> {
    let to = row.paused_from.take().unwrap_or(ExecutionStatus::Running);
    row.status = to;
    tx.record(row, actor, None, payloads::Resumed { to }).await?;
    if to == ExecutionStatus::Running {
        tx.wake(&row.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus};

    #[tokio::test]
    async fn resume_returns_to_the_status_the_execution_would_have_had() {
        let world = World::start().await;
        let paused = world.in_status(ExecutionStatus::Paused).await;
        let resumed = world.act(paused.id, Command::Resume).await.expect("resumed");
        assert_eq!(resumed.status, ExecutionStatus::Waiting);
        assert_eq!(resumed.current_step.as_deref(), Some("ask"));
        let events = world.events_after(paused.id, paused.last_seq).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].event_type, events[0].actor.as_str()), (EventType::Resumed, "admin"));
        assert_eq!(events[0].payload, json!({"to": "WAITING"}));
        world.the_pending(paused.id).await;

        world.assert_refused(paused.id, Command::Resume, ErrorCode::Conflict).await;
        let running = world.in_status(ExecutionStatus::Running).await;
        world.assert_refused(running.id, Command::Resume, ErrorCode::Conflict).await;
    }

    /// An answer given while paused is recorded but runs nothing; RESUME hands the execution
    /// back to the workers, which finish it.
    #[tokio::test]
    async fn resume_runs_what_an_answer_given_while_paused_left() {
        let world = World::start().await;
        let paused = world.in_status(ExecutionStatus::Paused).await;
        let intervention = world.the_pending(paused.id).await;
        let respond =
            Command::Respond { intervention_id: intervention.id, response: json!({"answer": 41}), notes: None };
        let answered = world.act(paused.id, respond).await.expect("answered while paused");
        assert_eq!(answered.status, ExecutionStatus::Paused);
        assert_eq!(answered.current_step.as_deref(), Some("three"));

        let resumed = world.act(paused.id, Command::Resume).await.expect("resumed");
        let events = world.events_after(paused.id, answered.last_seq).await;
        assert_eq!(events[0].event_type, EventType::Resumed);
        assert_eq!(events[0].payload, json!({"to": "RUNNING"}));
        let done =
            world.wait_for(resumed.id, "COMPLETED", |execution| execution.status == ExecutionStatus::Completed).await;
        assert_eq!(done.output, Some(json!({"sum": 42})));
    }
}
