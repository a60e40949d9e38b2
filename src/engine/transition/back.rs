//! BACK: return to the previous checkpoint — the latest one recorded before the current step —
//! with its context. History keeps everything; the move is a JUMPED event.

use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::transition::restore;
use crate::engine::tx::{Row, Tx};
use crate::store;

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook, actor: &str) -> Result<()> {
    let previous =
        store::history::latest_checkpoint_before(tx.db(), &row.id, row.current_step_index).await?.ok_or_else(|| {
            Error::Conflict(format!("execution {} is at its first step; there is no earlier checkpoint", row.id))
        })?;
    let target = previous.step_index;
    restore(tx, row, playbook, previous, target, true, actor).await
}
