//! RETRY: run the current step again, as a new attempt (so a webhook gets a new idempotency
//! key). Whatever the step was waiting on is cancelled.

use serde_json::json;

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::Result;
use crate::engine::progress::{current_step, leave_position, set_status};
use crate::engine::transition::reopen;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{Action, EventType, ExecutionStatus};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook, actor: &str) -> Result<()> {
    let step = current_step(row, playbook, Action::Retry)?;
    leave_position(tx, row, actor).await?;
    row.attempt += 1;
    row.step_started = false;
    row.wake_at = None;
    // A person asked for this run, so MANUAL mode does not ask again.
    row.gate_open = true;
    tx.record(
        row,
        EventType::Retried,
        actor,
        Some(&step.name),
        json!({"stepIndex": step.index, "attempt": row.attempt}),
    )
    .await?;
    reopen(row);
    set_status(row, ExecutionStatus::Running);
    tx.wake(&row.id);
    Ok(())
}
