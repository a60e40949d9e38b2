//! Conversions from stored rows to the records the engine hands out. Stored enums arrive typed
//! (see `store::columns`); ids are parsed here, and a value the engine did not write is an
//! internal error, never a panic.

use std::str::FromStr;

use serde_json::Value;

use crate::engine::error::{Error, Result};
use crate::engine::types::{
    Action, Checkpoint, Event, Execution, ExecutionId, Intervention, InterventionId, Runtime, RuntimeVersion,
};
use crate::store::entity::{checkpoint, event, execution, intervention, runtime};

pub(crate) fn parse<T: FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(|error| Error::Internal(format!("stored value: {error}")))
}

pub(crate) fn runtime(row: runtime::Model) -> Result<Runtime> {
    Ok(Runtime {
        package: serde_json::from_value(row.definition)
            .map_err(|error| Error::Internal(format!("stored package of runtime {}: {error}", row.id)))?,
        environment: row.environment,
        id: row.id,
        version: row.version,
        deployed_by: row.deployed_by,
        deployed_at: row.deployed_at,
    })
}

/// A version's row as a [`RuntimeVersion`]; `current` says whether new executions use it.
pub(crate) fn runtime_version(row: runtime::Model, current: bool) -> RuntimeVersion {
    RuntimeVersion {
        package: row.package_name,
        package_version: row.package_version,
        runtime_id: row.id,
        version: row.version,
        environment: row.environment,
        deployed_by: row.deployed_by,
        deployed_at: row.deployed_at,
        retired_at: row.retired_at,
        retired_by: row.retired_by,
        current,
    }
}

pub(crate) fn execution(row: &execution::Model, step_names: &[String]) -> Result<Execution> {
    Ok(Execution {
        id: parse(&row.id)?,
        runtime_id: row.runtime_id.clone(),
        runtime_version: row.runtime_version,
        environment: row.environment,
        playbook: row.playbook.clone(),
        status: row.status,
        mode: row.mode,
        input: row.input.clone(),
        state: row.state.clone(),
        steps: row.steps.clone(),
        current_step_index: row.current_step_index,
        current_step: usize::try_from(row.current_step_index).ok().and_then(|index| step_names.get(index).cloned()),
        attempt: row.attempt,
        output: row.output.clone(),
        error: row.error.clone(),
        parent_id: row.parent_id.as_deref().map(parse::<ExecutionId>).transpose()?,
        started_by: row.started_by.clone(),
        idempotency_key: row.idempotency_key.clone(),
        last_seq: row.last_seq,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub(crate) fn event(row: event::Model) -> Result<Event> {
    Ok(Event {
        execution_id: parse(&row.execution_id)?,
        seq: row.seq,
        event_type: row.event_type,
        at: row.at,
        actor: row.actor,
        step: row.step,
        payload: row.payload,
        runtime_id: row.runtime_id,
        environment: row.environment,
    })
}

pub(crate) fn checkpoint(row: checkpoint::Model) -> Result<Checkpoint> {
    Ok(Checkpoint {
        execution_id: parse(&row.execution_id)?,
        seq: row.seq,
        step_index: row.step_index,
        step: row.step,
        steps: row.steps,
        state: row.state,
        at: row.at,
    })
}

pub(crate) fn intervention(row: intervention::Model) -> Result<Intervention> {
    let allowed_actions = match &row.allowed_actions {
        Value::Array(actions) => {
            actions.iter().filter_map(Value::as_str).map(parse::<Action>).collect::<Result<Vec<_>>>()?
        }
        _ => Vec::new(),
    };
    Ok(Intervention {
        id: parse::<InterventionId>(&row.id)?,
        execution_id: parse(&row.execution_id)?,
        runtime_id: row.runtime_id,
        environment: row.environment,
        step: row.step,
        step_index: row.step_index,
        kind: row.kind,
        status: row.status,
        prompt: row.prompt,
        form_schema: row.form_schema,
        allowed_actions,
        role: row.role,
        response: row.response,
        notes: row.notes,
        resolved_by: row.resolved_by,
        resolved_at: row.resolved_at,
        created_at: row.created_at,
    })
}
