//! RESUME: back to the status the execution would have now had it not been paused; a running
//! one is handed to the workers again. Parked executions hold no task, so nothing else wakes.

use serde_json::json;

use crate::engine::error::Result;
use crate::engine::records::parse;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{EventType, ExecutionStatus};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, actor: &str) -> Result<()> {
    let to: ExecutionStatus = match row.paused_from.take() {
        Some(from) => parse(&from)?,
        None => ExecutionStatus::Running,
    };
    row.status = to.as_str().to_owned();
    tx.record(row, EventType::Resumed, actor, None, json!({"to": to.as_str()})).await?;
    if to == ExecutionStatus::Running {
        tx.wake(&row.id);
    }
    Ok(())
}
