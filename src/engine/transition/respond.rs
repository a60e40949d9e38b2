//! RESPOND: answer a pending intervention. The answer is checked against the intervention's
//! form and the responder's role; it completes the step (TASK, AGENT, FAILURE) or opens the
//! MANUAL-mode gate (CHECKPOINT). Answering twice is a CONFLICT.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::engine::access::authorize_steering;
use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::progress::{complete_step, current_step, set_status};
use crate::engine::records::parse;
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{
    Action, EventType, ExecutionStatus, InterventionId, InterventionKind, InterventionStatus, Principal,
};
use crate::schema;
use crate::store;

pub(super) async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    principal: &Principal,
    id: InterventionId,
    response: Value,
    notes: Option<String>,
) -> Result<()> {
    let found = store::interventions::find(tx.db(), &id.to_string()).await?;
    let Some(found) = found.filter(|found| found.execution_id == row.id) else {
        return Err(Error::InterventionNotFound(id));
    };
    let status: InterventionStatus = parse(&found.status)?;
    if status != InterventionStatus::Pending || found.epoch != row.epoch {
        return Err(Error::InterventionClosed { id, status });
    }
    let environment: crate::engine::types::Environment = parse(&found.environment)?;
    authorize_steering(principal, environment, Action::Respond, found.role.as_deref())?;
    let kind: InterventionKind = parse(&found.kind)?;
    let step = current_step(row, playbook, Action::Respond)?;
    let form_errors = match (&step.output_validator, kind) {
        (Some(validator), InterventionKind::Task | InterventionKind::Agent | InterventionKind::Failure) => {
            schema::check(validator, &response)
        }
        _ => schema::compile(&found.form_schema)
            .map(|validator| schema::check(&validator, &response))
            .map_err(Error::Internal)?,
    };
    if !form_errors.is_empty() {
        return Err(Error::invalid(format!("the response to intervention {id}"), form_errors));
    }
    let mut resolved = found.clone().into_active_model();
    resolved.status = Set(InterventionStatus::Resolved.as_str().to_owned());
    resolved.response = Set(Some(response.clone()));
    resolved.notes = Set(notes.clone());
    resolved.resolved_by = Set(Some(principal.id.clone()));
    resolved.resolved_at = Set(Some(Utc::now()));
    resolved.update(tx.db()).await?;
    let payload =
        json!({"interventionId": id.to_string(), "kind": kind.as_str(), "response": response, "notes": notes});
    tx.record(row, EventType::InterventionResolved, &principal.id, Some(&step.name), payload).await?;
    row.epoch += 1;
    match kind {
        InterventionKind::Checkpoint => {
            row.gate_open = true;
            set_status(row, ExecutionStatus::Running);
            tx.wake(&row.id);
            Ok(())
        }
        InterventionKind::Task | InterventionKind::Agent | InterventionKind::Failure => {
            complete_step(tx, row, playbook, step, response, &principal.id).await
        }
    }
}
