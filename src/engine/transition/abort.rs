//! ABORT: the execution ends for good, with a reason. Pending interventions are cancelled and
//! child executions aborted; a parent waiting on this execution sees its step fail.

use crate::engine::children::{abort, fail_parent_step};
use crate::engine::error::{Error, Result};
use crate::engine::tx::{Row, Tx};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, reason: &str, actor: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::BadInput("an abort needs a reason".to_owned()));
    }
    abort(tx, row, reason, actor).await?;
    fail_parent_step(tx, row, &format!("child execution {} was aborted: {reason}", row.id)).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus};

    #[tokio::test]
    async fn abort_ends_the_execution_and_cancels_what_is_pending() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;
        world.assert_refused(waiting.id, Command::Abort { reason: "  ".into() }, ErrorCode::BadInput).await;

        let aborted = world.act(waiting.id, Command::Abort { reason: "out of bread".into() }).await.expect("aborted");
        assert_eq!(aborted.status, ExecutionStatus::Aborted);
        assert_eq!(aborted.error.as_deref(), Some("aborted: out of bread"));
        assert_eq!(aborted.current_step.as_deref(), Some("ask"), "an abort does not move the execution");
        let events = world.events_after(waiting.id, waiting.last_seq).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].event_type, events[0].actor.as_str()), (EventType::ExecutionAborted, "admin"));
        assert_eq!(events[0].payload, json!({"reason": "out of bread"}));
        assert_eq!(world.intervention(intervention.id).await.status, InterventionStatus::Cancelled);

        world.assert_refused(waiting.id, Command::Abort { reason: "again".into() }, ErrorCode::Conflict).await;
    }

    /// A failed execution may still be aborted, which is final where FAILED was not.
    #[tokio::test]
    async fn abort_closes_a_failed_execution_for_good() {
        let world = World::start().await;
        let failed = world.in_status(ExecutionStatus::Failed).await;
        let aborted = world.act(failed.id, Command::Abort { reason: "given up".into() }).await.expect("aborted");
        assert_eq!(aborted.status, ExecutionStatus::Aborted);
        world.assert_refused(failed.id, Command::Retry, ErrorCode::Conflict).await;
    }
}
