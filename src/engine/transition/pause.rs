//! PAUSE: nothing runs until RESUME. A step already running completes and is recorded, but the
//! execution does not move past it.

use serde_json::json;

use crate::engine::error::Result;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{EventType, ExecutionStatus};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, from: ExecutionStatus, actor: &str) -> Result<()> {
    row.paused_from = Some(from.as_str().to_owned());
    row.status = ExecutionStatus::Paused.as_str().to_owned();
    tx.record(row, EventType::Paused, actor, None, json!({"from": from.as_str()})).await?;
    Ok(())
}
