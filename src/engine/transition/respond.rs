//! RESPOND: answer a pending intervention. The answer is checked against the intervention's
//! form and the responder's role; it completes the step (TASK, AGENT, FAILURE) or opens the
//! MANUAL-mode gate (CHECKPOINT). Answering twice is a CONFLICT.

use chrono::Utc;
use serde_json::Value;

use crate::engine::access::authorize_steering;
use crate::engine::definition::CompiledPlaybook;
use crate::engine::error::{Error, Result};
use crate::engine::payloads;
use crate::engine::progress::{complete_step, current_step, set_status};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{Action, ExecutionStatus, InterventionId, InterventionKind, InterventionStatus, Principal};
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
    let status: InterventionStatus = found.status;
    if status != InterventionStatus::Pending || found.epoch != row.epoch {
        return Err(Error::InterventionClosed { id, status });
    }
    let environment: crate::engine::types::Environment = found.environment;
    authorize_steering(principal, environment, Action::Respond, found.role.as_deref())?;
    let kind: InterventionKind = found.kind;
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
    let mut resolved = found.clone();
    resolved.status = InterventionStatus::Resolved;
    resolved.response = Some(response.clone());
    resolved.notes = notes.clone();
    resolved.resolved_by = Some(principal.id.clone());
    resolved.resolved_at = Some(Utc::now());
    store::interventions::save(tx.db(), resolved).await?;
    let payload =
        payloads::InterventionResolved { intervention_id: id.to_string(), kind, response: response.clone(), notes };
    tx.record(row, &principal.id, Some(&step.name), payload).await?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::engine::transition::tests::World;
    use crate::engine::{Command, ErrorCode, EventType, ExecutionStatus, InterventionId, InterventionStatus};

    #[tokio::test]
    async fn respond_completes_the_step_with_the_answer() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let intervention = world.the_pending(waiting.id).await;
        let answer = |response| Command::Respond {
            intervention_id: intervention.id,
            response,
            notes: Some("checked twice".into()),
        };
        let invalid = world.assert_refused(waiting.id, answer(json!({"answer": "x"})), ErrorCode::BadInput).await;
        assert_eq!(invalid.field_errors()[0].pointer, "/answer");
        let unknown = Command::Respond { intervention_id: InterventionId::new(), response: json!({}), notes: None };
        world.assert_refused(waiting.id, unknown, ErrorCode::NotFound).await;

        let done = world.act(waiting.id, answer(json!({"answer": 41}))).await.expect("answered");
        // The last step needs nothing outside the database, so it ran before the answer returned.
        assert_eq!(done.status, ExecutionStatus::Completed);
        assert_eq!(done.output, Some(json!({"sum": 42})));
        assert_eq!(done.steps["ask"], json!({"answer": 41}));

        let events = world.events_after(waiting.id, waiting.last_seq).await;
        let resolved = &events[0];
        assert_eq!((resolved.event_type, resolved.actor.as_str()), (EventType::InterventionResolved, "admin"));
        assert_eq!(resolved.step.as_deref(), Some("ask"));
        assert_eq!(
            resolved.payload,
            json!({"interventionId": intervention.id.to_string(), "kind": "TASK", "response": {"answer": 41}, "notes": "checked twice"})
        );
        let completed = &events[1];
        assert_eq!((completed.event_type, completed.step.as_deref()), (EventType::StepCompleted, Some("ask")));
        assert_eq!(completed.payload["output"], json!({"answer": 41}));
        assert_eq!(completed.actor, "admin", "the person who answered completed the step");
        assert_eq!(events.last().map(|event| event.event_type), Some(EventType::ExecutionCompleted));

        let resolved = world.intervention(intervention.id).await;
        assert_eq!(resolved.status, InterventionStatus::Resolved);
        assert_eq!(resolved.response, Some(json!({"answer": 41})));
        assert_eq!(resolved.resolved_by.as_deref(), Some("admin"));
        let checkpoints = world.checkpoints(waiting.id).await;
        let after_ask =
            checkpoints.iter().find(|checkpoint| checkpoint.step_index == 2).expect("a checkpoint after ask");
        assert_eq!(after_ask.steps["ask"], json!({"answer": 41}));

        // Answering again is refused: the execution is finished.
        world.assert_refused(waiting.id, answer(json!({"answer": 1})), ErrorCode::Conflict).await;
    }

    /// An intervention closed by a move (here RETRY asks again) cannot be answered any more.
    #[tokio::test]
    async fn respond_refuses_an_intervention_that_is_no_longer_pending() {
        let world = World::start().await;
        let waiting = world.in_status(ExecutionStatus::Waiting).await;
        let first = world.the_pending(waiting.id).await;
        world.act(waiting.id, Command::Retry).await.expect("asked again");
        let second = world.the_pending(waiting.id).await;
        assert_ne!(first.id, second.id);
        let stale = Command::Respond { intervention_id: first.id, response: json!({"answer": 1}), notes: None };
        world.assert_refused(waiting.id, stale, ErrorCode::Conflict).await;

        let running = world.in_status(ExecutionStatus::Running).await;
        let early = Command::Respond { intervention_id: second.id, response: json!({"answer": 1}), notes: None };
        world.assert_refused(running.id, early, ErrorCode::Conflict).await;
    }
}
