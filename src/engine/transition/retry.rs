//! RETRY: run the current step again, as a new attempt (so a webhook gets a new idempotency
//! key). Whatever the step was waiting on is cancelled.

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::Result;
use crate::engine::payloads;
use crate::engine::progress::{current_step, leave_position, set_status};
use crate::engine::transition::reopen;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{Action, ExecutionStatus};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook, actor: &str) -> Result<()> {
    let step = current_step(row, playbook, Action::Retry)?;
    leave_position(tx, row, actor).await?;
    row.attempt += 1;
    row.step_started = false;
    row.wake_at = None;
    // A person asked for this run, so MANUAL mode does not ask again.
    row.gate_open = true;
    let payload = payloads::Retried { step_index: step.index as i64, attempt: i64::from(row.attempt) };
    tx.record(row, actor, Some(&step.name), payload).await?;
    reopen(row);
    set_status(row, ExecutionStatus::Running);
    tx.wake(&row.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionStatus};

    /// RETRY runs the step again at once, as a new attempt, without waiting for the backoff.
    #[tokio::test]
    async fn retry_runs_the_current_step_again_as_a_new_attempt() {
        let world = World::start().await;
        let running = world.in_status(ExecutionStatus::Running).await;
        let fixed = world.act(running.id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("edited");
        assert_eq!(fixed.attempt, 2, "the backoff is still ten minutes away");

        let done = world.act(running.id, Command::Retry).await.expect("retried");
        assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
        assert_eq!(done.steps["fragile"], json!({"ok": true}));
        let events = world.events_after(running.id, fixed.last_seq).await;
        assert_eq!((events[0].event_type, events[0].actor.as_str()), (EventType::Retried, "admin"));
        assert_eq!(events[0].step.as_deref(), Some("fragile"));
        assert_eq!(events[0].payload, json!({"stepIndex": 1, "attempt": 3}));
        assert_eq!(events[1].event_type, EventType::StepStarted);
        assert_eq!(events[1].payload["attempt"], 3);

        world.assert_refused(running.id, Command::Retry, ErrorCode::Conflict).await;
    }

    /// A failed execution is reopened: the error is cleared and the step runs again.
    #[tokio::test]
    async fn retry_reopens_a_failed_execution() {
        let world = World::start().await;
        let failed = world.in_status(ExecutionStatus::Failed).await;
        assert!(failed.error.as_deref().unwrap_or_default().contains("on fire"), "{failed:?}");
        let again = world.act(failed.id, Command::Retry).await.expect("retried");
        // Nothing was fixed, so the second attempt fails the execution again, with its own events.
        assert_eq!((again.status, again.attempt), (ExecutionStatus::Failed, 2));
        let types: Vec<EventType> =
            world.events_after(failed.id, failed.last_seq).await.iter().map(|event| event.event_type).collect();
        assert_eq!(
            types,
            [EventType::Retried, EventType::StepStarted, EventType::StepFailed, EventType::ExecutionFailed]
        );

        world.act(failed.id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("edited");
        let done = world.act(failed.id, Command::Retry).await.expect("retried");
        assert_eq!((done.status, done.error.as_deref()), (ExecutionStatus::Completed, None));
    }

    /// On a person's step, RETRY cancels the open task and asks again.
    #[tokio::test]
    async fn retry_asks_a_person_again() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let first = world.the_pending(waiting.id).await;
        let again = world.act(waiting.id, Command::Retry).await.expect("retried");
        assert_eq!((again.status, again.attempt), (ExecutionStatus::Waiting, 2));
        assert_eq!(world.intervention(first.id).await.status, InterventionStatus::Cancelled);
        let second = world.the_pending(waiting.id).await;
        assert_eq!(second.step, "ask");
    }
}
