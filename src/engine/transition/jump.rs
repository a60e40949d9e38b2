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
