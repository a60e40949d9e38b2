//! SKIP: skip the current step, optionally supplying its output, which must fit the step's
//! output schema.

use serde_json::Value;

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::progress::{current_step, leave_position, skip_step};
use crate::engine::transition::reopen;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::Action;
use crate::schema;

pub(super) async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    output: Option<Value>,
    actor: &str,
) -> Result<()> {
    let step = current_step(row, playbook, Action::Skip)?;
    if let (Some(output), Some(validator)) = (&output, &step.output_validator) {
        schema::validate(validator, output)
            .map_err(|errors| Error::invalid(format!("the output of step `{}`", step.name), errors))?;
    }
    leave_position(tx, row, actor).await?;
    reopen(row);
    skip_step(tx, row, playbook, step, output, &format!("skipped by {actor}"), actor).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus};

    #[tokio::test]
    async fn skip_moves_past_the_step_with_the_supplied_output() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;
        let invalid = Command::Skip { output: Some(json!({"answer": "many"})) };
        let error = world.assert_refused(waiting.id, invalid, ErrorCode::BadInput).await;
        assert_eq!(error.field_errors()[0].pointer, "/answer");

        let done = world.act(waiting.id, Command::Skip { output: Some(json!({"answer": 41})) }).await.expect("skipped");
        assert_eq!(done.status, ExecutionStatus::Completed);
        assert_eq!(done.output, Some(json!({"sum": 42})), "the next step read the supplied output");
        let events = world.events_after(waiting.id, waiting.last_seq).await;
        assert_eq!((events[0].event_type, events[0].actor.as_str()), (EventType::StepSkipped, "admin"));
        assert_eq!(events[0].step.as_deref(), Some("ask"));
        assert_eq!(events[0].payload, json!({"stepIndex": 1, "reason": "skipped by admin", "output": {"answer": 41}}));
        assert_eq!(world.intervention(intervention.id).await.status, InterventionStatus::Cancelled);
        let checkpoints = world.checkpoints(waiting.id).await;
        let after_ask = checkpoints.iter().find(|checkpoint| checkpoint.step_index == 2).expect("checkpoint");
        assert_eq!(after_ask.seq, events[0].seq, "the skip is the checkpoint's event");

        world.assert_refused(waiting.id, Command::Skip { output: None }, ErrorCode::Conflict).await;
    }

    /// Skipping without an output leaves the step's output empty, and reopens a failed run.
    #[tokio::test]
    async fn skip_without_an_output_reopens_a_failed_execution() {
        let world = World::start().await;
        let failed = world.in_status(ExecutionStatus::Failed).await;
        let done = world.act(failed.id, Command::Skip { output: None }).await.expect("skipped");
        assert_eq!((done.status, done.error.as_deref()), (ExecutionStatus::Completed, None));
        assert!(done.steps.get("fragile").is_none(), "{:?}", done.steps);
        let events = world.events_after(failed.id, failed.last_seq).await;
        assert_eq!(events[0].payload["output"], json!(null));
    }
}
