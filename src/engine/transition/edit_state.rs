//! EDIT_STATE: apply an RFC 7396 merge patch to the execution's `state`, which stays an object.

use serde_json::{Value, json};

use crate::engine::error::{Error, Result};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::EventType;

pub(super) async fn apply(tx: &mut Tx, row: &mut Row, patch: Value, actor: &str) -> Result<()> {
    if !patch.is_object() {
        return Err(Error::BadInput("the state patch must be a JSON object (RFC 7396 merge patch)".to_owned()));
    }
    json_patch::merge(&mut row.state, &patch);
    let payload = json!({"patch": patch, "state": row.state});
    tx.record(row, EventType::StateEdited, actor, None, payload).await?;
    Ok(())
}
