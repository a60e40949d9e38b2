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
