//! JUMP: go to any step, with the context of the nearest checkpoint at or before it (the one
//! with the highest step index, the latest of those), or keeping the current one.

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::transition::{Move, restore};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::StateOnMove;
use crate::store;

pub(super) async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &str,
    state: StateOnMove,
    actor: &str,
) -> Result<()> {
    let target = playbook
        .step_index(step)
        .ok_or_else(|| Error::StepNotFound { playbook: playbook.name.clone(), step: step.to_owned() })?
        as i32;
    let nearest = store::history::nearest_checkpoint_at_or_before(tx.db(), &row.id, target)
        .await?
        .ok_or_else(|| Error::Internal(format!("execution {} has no initial checkpoint", row.id)))?;
    restore(tx, row, playbook, Move { target, checkpoint: nearest, state, back: false }, actor).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus, StateOnMove};

    /// JUMP forward past a person's step: the context is the nearest checkpoint at or before
    /// the target (after `one`), so `three` runs without an answer.
    #[tokio::test]
    async fn jump_goes_to_any_step_with_the_nearest_earlier_context() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;
        let checkpoints = world.checkpoints(waiting.id).await;
        world
            .assert_refused(
                waiting.id,
                Command::Jump { step: "nine".into(), state: StateOnMove::Restore },
                ErrorCode::NotFound,
            )
            .await;

        let done = world
            .act(waiting.id, Command::Jump { step: "three".into(), state: StateOnMove::Restore })
            .await
            .expect("jumped");
        assert_eq!(done.status, ExecutionStatus::Completed);
        assert_eq!(done.output, Some(json!({"sum": 1})), "`ask` never answered");
        let events = world.events_after(waiting.id, waiting.last_seq).await;
        let jumped = &events[0];
        assert_eq!((jumped.event_type, jumped.actor.as_str()), (EventType::Jumped, "admin"));
        assert_eq!(
            jumped.payload,
            json!({"from": "ask", "fromIndex": 1, "to": "three", "toIndex": 2, "checkpointSeq": checkpoints[1].seq, "back": false,
                   "state": "RESTORE", "stateDiscarded": false})
        );
        assert_eq!(world.intervention(intervention.id).await.status, InterventionStatus::Cancelled);
        let types: Vec<EventType> = events.iter().map(|event| event.event_type).collect();
        assert!(!types.contains(&EventType::InterventionRequested), "{types:?}");

        world
            .assert_refused(
                waiting.id,
                Command::Jump { step: "one".into(), state: StateOnMove::Restore },
                ErrorCode::Conflict,
            )
            .await;
    }

    /// JUMP with KEEP keeps a state edited since the target's checkpoint (and records a
    /// checkpoint of its own, with that state); RESTORE to the first step undoes the edit, and
    /// its event says so.
    #[tokio::test]
    async fn jump_keeps_or_restores_the_state_as_asked() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        world.act(waiting.id, Command::EditState { patch: json!({"note": "x"}) }).await.expect("edited");
        let kept =
            world.act(waiting.id, Command::Jump { step: "ask".into(), state: StateOnMove::Keep }).await.expect("kept");
        assert_eq!((kept.current_step.as_deref(), kept.state.clone()), (Some("ask"), json!({"note": "x"})));
        let restored = world
            .act(waiting.id, Command::Jump { step: "one".into(), state: StateOnMove::Restore })
            .await
            .expect("jumped");
        assert_eq!(restored.state, json!({}));
        let events = world.events_after(waiting.id, kept.last_seq).await;
        assert_eq!(events[0].event_type, EventType::Jumped);
        assert_eq!(
            (&events[0].payload["state"], &events[0].payload["stateDiscarded"]),
            (&json!("RESTORE"), &json!(true))
        );
    }

    /// A jump reopens a failed execution and runs it from the target with the checkpoint's
    /// context, so a state edited since the checkpoint is gone again.
    #[tokio::test]
    async fn jump_reopens_a_failed_execution_with_the_checkpoints_context() {
        let world = World::start().await;
        let failed = world.in_status(ExecutionStatus::Failed).await;
        let edited = world.act(failed.id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("edited");
        let again = world
            .act(failed.id, Command::Jump { step: "one".into(), state: StateOnMove::Restore })
            .await
            .expect("jumped");
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
