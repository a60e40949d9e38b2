//! ABORT: the execution ends for good, with a reason. Pending interventions are cancelled and
//! child executions aborted; a parent waiting on this execution sees its step fail.

use crate::engine::children::{abort, fail_parent_step};
use crate::engine::error::{Error, Result};
use crate::engine::tx::{Row, Tx};

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, reason: &str, actor: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::BadInput("an abort needs a reason".to_owned()));
    }
    abort(tx, row, reason, actor).await?;
    fail_parent_step(tx, row, &format!("child execution {} was aborted: {reason}", row.id)).await
}
