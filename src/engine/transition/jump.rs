//! JUMP: go to any step, with the context of the nearest checkpoint at or before it (the one
//! with the highest step index, the latest of those).

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::transition::restore;
use crate::engine::tx::{Row, Tx};
use crate::store;

pub(super) async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &str,
    actor: &str,
) -> Result<()> {
    let target = playbook
        .step_index(step)
        .ok_or_else(|| Error::StepNotFound { playbook: playbook.name.clone(), step: step.to_owned() })?
        as i32;
    let nearest = store::history::nearest_checkpoint_at_or_before(tx.db(), &row.id, target)
        .await?
        .ok_or_else(|| Error::Internal(format!("execution {} has no initial checkpoint", row.id)))?;
    restore(tx, row, playbook, nearest, target, false, actor).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus};

    /// JUMP forward past a person's step: the context is the nearest checkpoint at or before
    /// the target (after `one`), so `three` runs without an answer.
    #[tokio::test]
    async fn jump_goes_to_any_step_with_the_nearest_earlier_context() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;
        let checkpoints = world.checkpoints(waiting.id).await;
        world.assert_refused(waiting.id, Command::Jump { step: "nine".into() }, ErrorCode::NotFound).await;

        let done = world.act(waiting.id, Command::Jump { step: "three".into() }).await.expect("jumped");
        assert_eq!(done.status, ExecutionStatus::Completed);
        assert_eq!(done.output, Some(json!({"sum": 1})), "`ask` never answered");
        let events = world.events_after(waiting.id, waiting.last_seq).await;
        let jumped = &events[0];
        assert_eq!((jumped.event_type, jumped.actor.as_str()), (EventType::Jumped, "admin"));
        assert_eq!(
            jumped.payload,
            json!({"from": "ask", "fromIndex": 1, "to": "three", "toIndex": 2, "checkpointSeq": checkpoints[1].seq, "back": false})
        );
        assert_eq!(world.intervention(intervention.id).await.status, InterventionStatus::Cancelled);
        let types: Vec<EventType> = events.iter().map(|event| event.event_type).collect();
        assert!(!types.contains(&EventType::InterventionRequested), "{types:?}");

        world.assert_refused(waiting.id, Command::Jump { step: "one".into() }, ErrorCode::Conflict).await;
    }

    /// A jump reopens a failed execution and runs it from the target with the checkpoint's
    /// context, so a state edited since the checkpoint is gone again.
    #[tokio::test]
    async fn jump_reopens_a_failed_execution_with_the_checkpoints_context() {
        let world = World::start().await;
        let failed = world.in_status(ExecutionStatus::Failed).await;
        let edited = world.act(failed.id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("edited");
        let again = world.act(failed.id, Command::Jump { step: "one".into() }).await.expect("jumped");
        assert_eq!((again.status, again.state.clone()), (ExecutionStatus::Failed, json!({})), "{again:?}");
        let types: Vec<EventType> =
            world.events_after(failed.id, edited.last_seq).await.iter().map(|event| event.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::Jumped,
                EventType::StepStarted,
                EventType::StepCompleted,
                EventType::StepStarted,
                EventType::StepFailed,
                EventType::ExecutionFailed
            ]
        );
    }
}
