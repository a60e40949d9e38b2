//! BACK: return to the previous checkpoint — the latest one recorded before the current step —
//! with its context, or keeping the current one (`StateOnMove`). History keeps everything;
//! the move is a JUMPED event that says which.

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
    state: StateOnMove,
    actor: &str,
) -> Result<()> {
    let previous =
        store::history::latest_checkpoint_before(tx.db(), &row.id, row.current_step_index).await?.ok_or_else(|| {
            Error::Conflict(format!("execution {} is at its first step; there is no earlier checkpoint", row.id))
        })?;
    let to = Move { target: previous.step_index, checkpoint: previous, state, back: true };
    restore(tx, row, playbook, to, actor).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus, StateOnMove};

    /// BACK from `ask` restores the checkpoint recorded before `one` ran: its context comes
    /// back (the state edited since is gone), `one` runs again, and `ask` asks again.
    #[tokio::test]
    async fn back_returns_to_the_previous_checkpoint() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let first = world.the_pending(waiting.id).await;
        let edited = world.act(waiting.id, Command::EditState { patch: json!({"note": "x"}) }).await.expect("edited");
        let before = world.checkpoints(waiting.id).await;
        assert_eq!(before.iter().map(|checkpoint| checkpoint.step_index).collect::<Vec<_>>(), [0, 1]);

        let again = world.act(waiting.id, Command::Back { state: StateOnMove::Restore }).await.expect("back");
        assert_eq!((again.status, again.current_step.as_deref()), (ExecutionStatus::Waiting, Some("ask")));
        assert_eq!(again.state, json!({}), "the checkpoint's state came back");
        let events = world.events_after(waiting.id, edited.last_seq).await;
        let jumped = &events[0];
        assert_eq!((jumped.event_type, jumped.actor.as_str()), (EventType::Jumped, "admin"));
        assert_eq!(jumped.step.as_deref(), Some("one"));
        assert_eq!(
            jumped.payload,
            json!({"from": "ask", "fromIndex": 1, "to": "one", "toIndex": 0, "checkpointSeq": before[0].seq, "back": true,
                   "state": "RESTORE", "stateDiscarded": true})
        );
        let completed: Vec<_> = events.iter().filter(|event| event.event_type == EventType::StepCompleted).collect();
        assert_eq!(completed.iter().map(|event| event.step.as_deref()).collect::<Vec<_>>(), [Some("one")]);
        // The move records a checkpoint of its own, and `one` another after it.
        let after = world.checkpoints(waiting.id).await;
        assert_eq!(after.len(), 4, "{after:?}");
        assert_eq!((after[2].seq, after[2].step_index), (jumped.seq, 0));
        assert_eq!(world.intervention(first.id).await.status, InterventionStatus::Cancelled);
        assert_ne!(world.the_pending(waiting.id).await.id, first.id);
    }

    /// BACK with KEEP moves only the position: the state edited since the checkpoint stays,
    /// and the event says nothing was discarded.
    #[tokio::test]
    async fn back_can_keep_the_current_state() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let edited = world.act(waiting.id, Command::EditState { patch: json!({"note": "x"}) }).await.expect("edited");
        let again = world.act(waiting.id, Command::Back { state: StateOnMove::Keep }).await.expect("back");
        assert_eq!((again.status, again.current_step.as_deref()), (ExecutionStatus::Waiting, Some("ask")));
        assert_eq!(again.state, json!({"note": "x"}), "the edited state was kept");
        let events = world.events_after(waiting.id, edited.last_seq).await;
        assert_eq!(events[0].event_type, EventType::Jumped);
        assert_eq!(
            (&events[0].payload["state"], &events[0].payload["stateDiscarded"]),
            (&json!("KEEP"), &json!(false))
        );
    }

    #[tokio::test]
    async fn back_at_the_first_step_is_a_conflict() {
        let world = World::start().await;
        let first = world.run("first").await;
        assert_eq!((first.status, first.current_step_index), (ExecutionStatus::Waiting, 0));
        let error =
            world.assert_refused(first.id, Command::Back { state: StateOnMove::Restore }, ErrorCode::Conflict).await;
        assert!(error.to_string().contains("no earlier checkpoint"), "{error}");
        let done = world.in_status(ExecutionStatus::Completed).await;
        world.assert_refused(done.id, Command::Back { state: StateOnMove::Restore }, ErrorCode::Conflict).await;
    }
}
