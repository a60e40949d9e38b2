//! EDIT_STATE: apply an RFC 7396 merge patch to the execution's `state`, which stays an object.

use serde_json::Value;

use crate::engine::error::{Error, Result};
use crate::engine::payloads;
use crate::engine::tx::{Row, Tx};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, patch: Value, actor: &str) -> Result<()> {
    if !patch.is_object() {
        return Err(Error::BadInput("the state patch must be a JSON object (RFC 7396 merge patch)".to_owned()));
    }
    json_patch::merge(&mut row.state, &patch);
    let payload = payloads::StateEdited { patch, state: row.state.clone() };
    tx.record(row, actor, None, payload).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus};

    #[tokio::test]
    async fn edit_state_applies_a_merge_patch_and_records_it() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let checkpoints = world.checkpoints(waiting.id).await;
        let patch = json!({"table": 4, "note": {"crusts": false, "seeds": true}});
        let edited = world.act(waiting.id, Command::EditState { patch: patch.clone() }).await.expect("edited");
        assert_eq!(edited.state, patch);
        let removed = json!({"note": {"seeds": null}, "table": null});
        let edited = world.act(waiting.id, Command::EditState { patch: removed.clone() }).await.expect("edited");
        assert_eq!(edited.state, json!({"note": {"crusts": false}}));
        assert_eq!((edited.status, edited.current_step.as_deref()), (ExecutionStatus::Waiting, Some("ask")));

        let events = world.events_after(waiting.id, waiting.last_seq).await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!((events[1].event_type, events[1].actor.as_str()), (EventType::StateEdited, "admin"));
        assert_eq!(events[1].payload, json!({"patch": removed, "state": {"note": {"crusts": false}}}));
        assert_eq!(world.checkpoints(waiting.id).await, checkpoints, "an edit records no checkpoint");
        world.the_pending(waiting.id).await;

        world.assert_refused(waiting.id, Command::EditState { patch: json!([1]) }, ErrorCode::BadInput).await;
        let done = world.in_status(ExecutionStatus::Completed).await;
        world.assert_refused(done.id, Command::EditState { patch: json!({"late": true}) }, ErrorCode::Conflict).await;
    }

    /// The edited state is what the next step reads.
    #[tokio::test]
    async fn edit_state_is_seen_by_the_steps_that_follow() {
        let world = World::start().await;
        let running = world.in_status(ExecutionStatus::Running).await;
        let edited = world.act(running.id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("edited");
        assert_eq!(edited.status, ExecutionStatus::Running, "an edit does not cut the backoff short");
        let done = world.act(running.id, Command::Retry).await.expect("retried");
        assert_eq!(done.steps["fragile"], json!({"ok": true}));
    }
}
