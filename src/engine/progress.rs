//! How an execution moves: a step completes, is skipped or fails; interventions are requested;
//! child executions start and report back; the execution finishes. The worker and the steering
//! transitions both move executions through these functions, inside a [`Tx`]. Nested
//! executions (children, their reports, aborting descendants) are in `children`.

use serde_json::{Map, Value, json};

use crate::engine::children::{ChildOutcome, abort_children, fail_parent_step};
use crate::engine::definition::{CompiledPlaybook, CompiledStep};
use crate::engine::error::{Error, Result};
use crate::engine::lease;
use crate::engine::payloads;
use crate::engine::routing;
use crate::engine::tx::{Row, Tx, context};
use crate::engine::types::{
    Action, Environment, ExecutionId, ExecutionStatus, InterventionId, InterventionKind, InterventionStatus, Mode,
    Principal,
};
use crate::jq::{Allowance, Stopped};
use crate::package::Fallback;
use crate::schema;
use crate::store;
use crate::store::entity::{execution, intervention};

/// Sets the status an execution moves to, keeping it paused if a person paused it: a paused
/// execution records progress but runs nothing until it is resumed.
pub(crate) fn set_status(row: &mut Row, status: ExecutionStatus) {
    let finished = status.is_finished();
    if row.status == ExecutionStatus::Paused && !finished {
        row.paused_from = Some(status);
    } else {
        row.status = status;
        if finished {
            row.paused_from = None;
        }
    }
    if status != ExecutionStatus::Running {
        lease::release_row(row);
    }
}

/// Positions the execution at the start of step `index`, with a fresh attempt.
pub(crate) fn position(row: &mut Row, index: i32) {
    row.current_step_index = index;
    row.attempt = 1;
    row.step_started = false;
    row.gate_open = false;
    row.wake_at = None;
}

fn steps_mut(row: &mut Row) -> &mut Map<String, Value> {
    if !row.steps.is_object() {
        row.steps = Value::Object(Map::new());
    }
    match &mut row.steps {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

async fn record_started(tx: &mut Tx, row: &mut Row, step: &CompiledStep) -> Result<()> {
    if !row.step_started {
        row.step_started = true;
        // The attempt begins: a retry's wait is over, and `wake_at` must not outlive it (the
        // sweeper reads it as an AGENT deadline once the execution waits; see `expire`).
        row.wake_at = None;
        let payload = payloads::StepStarted {
            step_index: step.index as i64,
            attempt: i64::from(row.attempt),
            kind: step.run.kind().as_str().to_owned(),
            child_execution_id: None,
            playbook: None,
        };
        tx.record(row, Principal::SYSTEM, Some(&step.name), payload).await?;
    }
    Ok(())
}

/// Records STEP_STARTED for a step whose work happens outside the transaction (a webhook or
/// model call), so that the attempt, and with it the idempotency key, is durable first.
pub(crate) async fn start_step(tx: &mut Tx, row: &mut Row, step: &CompiledStep) -> Result<()> {
    record_started(tx, row, step).await
}

/// The current step produced `output`: record it and move on.
pub(crate) async fn complete_step(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    output: Value,
    actor: &str,
) -> Result<()> {
    record_started(tx, row, step).await?;
    let previous = steps_mut(row).insert(step.name.clone(), output.clone());
    let next = match routing::route(row, playbook, step, tx.engine.config.jq_inline()) {
        Ok(next) => next,
        Err(error) => {
            // The output is not kept: the step failed to say where to go.
            match previous {
                Some(previous) => steps_mut(row).insert(step.name.clone(), previous),
                None => steps_mut(row).remove(&step.name),
            };
            return fail_step(tx, row, playbook, step, &error, Principal::SYSTEM).await;
        }
    };
    let routed_to = next.map(|target| target.name(playbook).to_owned());
    let payload =
        payloads::StepCompleted { step_index: step.index as i64, attempt: i64::from(row.attempt), output, routed_to };
    let seq = tx.record(row, actor, Some(&step.name), payload).await?;
    match next {
        None => advance(tx, row, playbook, seq).await,
        Some(target) => move_to(tx, row, playbook, seq, target.index(playbook)).await,
    }
}

/// The current step is skipped, by its condition or by a person (optionally with an output).
pub(crate) async fn skip_step(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    output: Option<Value>,
    reason: &str,
    actor: &str,
) -> Result<()> {
    if let Some(output) = &output {
        steps_mut(row).insert(step.name.clone(), output.clone());
    }
    let payload = payloads::StepSkipped { step_index: step.index as i64, reason: reason.to_owned(), output };
    let seq = tx.record(row, actor, Some(&step.name), payload).await?;
    advance(tx, row, playbook, seq).await
}

async fn advance(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook, seq: i64) -> Result<()> {
    move_to(tx, row, playbook, seq, row.current_step_index as usize + 1).await
}

/// Moves on to step `index` (past the last: the execution finishes) after the event at `seq`.
async fn move_to(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook, seq: i64, index: usize) -> Result<()> {
    position(row, i32::try_from(index).unwrap_or(i32::MAX));
    let next = playbook.steps.get(row.current_step_index as usize).map(|step| step.name.as_str());
    tx.checkpoint(row, seq, next).await?;
    // Past the last step too: finishing evaluates the output program, which the commit's
    // inline steps do within their slice (see `advance`).
    set_status(row, ExecutionStatus::Running);
    tx.wake(&row.id);
    Ok(())
}

/// The playbook's output once every step has run: its output program over the context
/// (within `allowance`), or the last step's output; checked against its output schema.
pub(crate) fn playbook_output(
    row: &Row,
    playbook: &CompiledPlaybook,
    allowance: Allowance,
) -> std::result::Result<Value, Stopped> {
    let output = match &playbook.output {
        Some(program) => program.one_in(&context(row), allowance).map_err(|stopped| match stopped {
            Stopped::Failed(error) => Stopped::Failed(format!("the playbook's output program failed: {error}")),
            spent => spent,
        })?,
        None => last_output(row, playbook),
    };
    if let Some(validator) = &playbook.output_validator
        && let Err(errors) = schema::validate(validator, &output)
    {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(Stopped::Failed(format!(
            "the output does not fit the playbook's output schema: {}",
            errors.join("; ")
        )));
    }
    Ok(output)
}

/// Every step has run: complete with `output` (see [`playbook_output`]) or fail with its
/// error, and tell the parent.
pub(crate) async fn finish(tx: &mut Tx, row: &mut Row, output: std::result::Result<Value, String>) -> Result<()> {
    match output {
        Err(error) => fail_execution(tx, row, &error, Principal::SYSTEM).await,
        Ok(output) => {
            row.output = Some(output.clone());
            row.error = None;
            set_status(row, ExecutionStatus::Completed);
            tx.record(row, Principal::SYSTEM, None, payloads::ExecutionCompleted { output: output.clone() }).await?;
            tx.report_to_parent(row, ChildOutcome::Completed(output));
            Ok(())
        }
    }
}

/// The output of the last step that produced one.
fn last_output(row: &Row, playbook: &CompiledPlaybook) -> Value {
    playbook.steps.iter().rev().find_map(|step| row.steps.get(&step.name).cloned()).unwrap_or(Value::Null)
}

/// The current step failed: retry with backoff, or apply the step's fallback.
pub(crate) async fn fail_step(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    error: &str,
    actor: &str,
) -> Result<()> {
    record_started(tx, row, step).await?;
    let attempt = u32::try_from(row.attempt).unwrap_or(u32::MAX);
    let max_attempts = step.max_attempts();
    if attempt < max_attempts {
        let delay = step.backoff(attempt + 1);
        let payload = payloads::StepFailed {
            step_index: step.index as i64,
            attempt: i64::from(attempt),
            error: error.to_owned(),
            will_retry: true,
            retry_in_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        };
        tx.record(row, actor, Some(&step.name), payload).await?;
        row.attempt += 1;
        row.step_started = false;
        row.wake_at =
            (!delay.is_zero()).then(|| tx.now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero()));
        set_status(row, ExecutionStatus::Running);
        tx.wake(&row.id);
        return Ok(());
    }
    let payload = payloads::StepFailed {
        step_index: step.index as i64,
        attempt: i64::from(attempt),
        error: error.to_owned(),
        will_retry: false,
        retry_in_ms: None,
    };
    tx.record(row, actor, Some(&step.name), payload).await?;
    match step.fallback() {
        Fallback::Fail => fail_execution(tx, row, &format!("step `{}` failed: {error}", step.name), actor).await,
        Fallback::Human => {
            let form = step.output_schema.clone().unwrap_or_else(|| json!({"type": "object"}));
            let prompt = format!(
                "Step `{}` failed after {attempt} attempt(s): {error}. Retry it, skip it, supply its output, or abort.",
                step.name
            );
            request_intervention(tx, row, playbook, step, InterventionKind::Failure, Some(prompt), form).await
        }
    }
}

/// The execution fails; a parent waiting on it sees its step fail.
pub(crate) async fn fail_execution(tx: &mut Tx, row: &mut Row, error: &str, actor: &str) -> Result<()> {
    row.error = Some(error.to_owned());
    set_status(row, ExecutionStatus::Failed);
    tx.cancel_interventions(&row.id).await?;
    tx.record(row, actor, None, payloads::ExecutionFailed { error: error.to_owned() }).await?;
    fail_parent_step(tx, row, &format!("child execution {} failed: {error}", row.id)).await
}

/// The actions a person is offered on each kind of intervention.
fn offered(kind: InterventionKind) -> Vec<Action> {
    match kind {
        InterventionKind::Task | InterventionKind::Agent => {
            vec![Action::Respond, Action::Skip, Action::Retry, Action::Abort]
        }
        InterventionKind::Failure => vec![Action::Retry, Action::Skip, Action::Respond, Action::Abort],
        InterventionKind::Checkpoint => vec![Action::Respond, Action::Skip, Action::Jump, Action::Abort],
    }
}

/// Parks the execution on a new intervention for the current step.
pub(crate) async fn request_intervention(
    tx: &mut Tx,
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    kind: InterventionKind,
    prompt: Option<String>,
    form_schema: Value,
) -> Result<()> {
    if kind != InterventionKind::Checkpoint {
        record_started(tx, row, step).await?;
    }
    let id = InterventionId::new().to_string();
    let role = step.role.clone().or_else(|| playbook.role.clone());
    let allowed: Vec<&str> = offered(kind).into_iter().map(Action::as_str).collect();
    let model = intervention::Model {
        id: id.clone(),
        execution_id: row.id.clone(),
        runtime_id: row.runtime_id.clone(),
        environment: row.environment,
        step: step.name.clone(),
        step_index: row.current_step_index,
        epoch: row.epoch,
        kind,
        status: InterventionStatus::Pending,
        prompt: prompt.clone(),
        form_schema: form_schema.clone(),
        allowed_actions: json!(allowed),
        role: role.clone(),
        response: None,
        notes: None,
        resolved_by: None,
        resolved_at: None,
        created_at: tx.now,
    };
    store::interventions::insert(tx.db(), model).await?;
    let payload = payloads::InterventionRequested {
        intervention_id: id,
        kind,
        role,
        prompt,
        form_schema,
        allowed_actions: offered(kind),
    };
    tx.record(row, Principal::SYSTEM, Some(&step.name), payload).await?;
    set_status(row, ExecutionStatus::Waiting);
    // A WAITING execution's `wake_at` is only ever its AGENT intervention's deadline: the
    // sweeper fails the step once it passes (see `expire`). Anything else is cleared here, so
    // that no earlier wake-up (a retry's backoff) is mistaken for one.
    row.wake_at = (kind == InterventionKind::Agent && step.timeout_explicit)
        .then(|| tx.now + chrono::Duration::from_std(step.timeout).unwrap_or_default());
    Ok(())
}

/// What a new execution needs besides its definition.
pub(crate) struct NewExecution<'a> {
    pub runtime_id: &'a str,
    pub runtime_version: i32,
    pub environment: Environment,
    pub playbook: &'a CompiledPlaybook,
    pub input: Value,
    pub mode: Mode,
    pub started_by: &'a str,
    pub idempotency_key: Option<String>,
    /// (parent row, its epoch, its step index) for a child execution.
    pub parent: Option<(&'a str, i64, i32)>,
}

/// Inserts a new RUNNING execution with its first event and checkpoint.
pub(crate) async fn create_execution(tx: &mut Tx, new: NewExecution<'_>) -> Result<Row> {
    let id = ExecutionId::new().to_string();
    let mut row = execution::Model {
        id: id.clone(),
        runtime_id: new.runtime_id.to_owned(),
        runtime_version: new.runtime_version,
        environment: new.environment,
        playbook: new.playbook.name.clone(),
        status: ExecutionStatus::Running,
        mode: new.mode,
        input: new.input.clone(),
        state: json!({}),
        steps: json!({}),
        current_step_index: 0,
        attempt: 1,
        step_started: false,
        gate_open: false,
        wake_at: None,
        epoch: 0,
        output: None,
        error: None,
        parent_id: new.parent.map(|(parent, _, _)| parent.to_owned()),
        parent_epoch: new.parent.map(|(_, epoch, _)| epoch),
        parent_step_index: new.parent.map(|(_, _, step)| step),
        paused_from: None,
        started_by: new.started_by.to_owned(),
        idempotency_key: new.idempotency_key,
        last_seq: 0,
        visits: None,
        lease_owner: None,
        lease_until: None,
        created_at: tx.now,
        updated_at: tx.now,
    };
    tx.insert_execution(row.clone()).await?;
    let payload = payloads::ExecutionStarted {
        input: new.input,
        mode: new.mode,
        playbook: new.playbook.name.clone(),
        runtime: new.runtime_id.to_owned(),
        version: i64::from(new.runtime_version),
        parent_id: new.parent.map(|(parent, _, _)| parent.to_owned()),
    };
    let seq = tx.record(&mut row, new.started_by, None, payload).await?;
    let first = new.playbook.steps.first().map(|step| step.name.as_str());
    tx.checkpoint(&row, seq, first).await?;
    tx.save(row.clone()).await?;
    tx.wake(&id);
    Ok(row)
}

/// Leaves the current position: pending interventions are cancelled, running children
/// aborted, and a worker still running the old step will find its result stale.
pub(crate) async fn leave_position(tx: &mut Tx, row: &mut Row, actor: &str) -> Result<()> {
    tx.cancel_interventions(&row.id).await?;
    abort_children(tx, &row.id, "the parent execution moved on", actor).await?;
    row.epoch += 1;
    Ok(())
}

/// The step an execution stands on, or a conflict if it has run them all.
pub(crate) fn current_step<'p>(row: &Row, playbook: &'p CompiledPlaybook, action: Action) -> Result<&'p CompiledStep> {
    playbook.steps.get(row.current_step_index as usize).ok_or_else(|| {
        Error::Conflict(format!("execution {} has no current step to {}", row.id, action.as_str().to_lowercase()))
    })
}

/// Whether a WAITING execution's deadline (its AGENT intervention's; see
/// `request_intervention`) has passed at `now`.
pub(crate) fn deadline_passed(row: &Row, now: chrono::DateTime<chrono::Utc>) -> bool {
    row.status == ExecutionStatus::Waiting && row.wake_at.is_some_and(|wake_at| wake_at <= now)
}

/// An AGENT intervention nobody answered in time: it is cancelled and the step fails, so its
/// `on_failure` applies (retry, a person, or failing the execution).
pub(crate) async fn expire(tx: &mut Tx, row: &mut Row, playbook: &CompiledPlaybook) -> Result<bool> {
    let Some(wake_at) = row.wake_at else { return Ok(false) };
    if row.status != ExecutionStatus::Waiting || wake_at > tx.now {
        return Ok(false);
    }
    let Some(step) = playbook.steps.get(row.current_step_index as usize) else { return Ok(false) };
    // Only an AGENT intervention expires; a person's intervention (TASK, FAILURE, CHECKPOINT)
    // waits however long it takes, whatever `wake_at` says.
    if tx.cancel_agent_interventions(&row.id).await? == 0 {
        row.wake_at = None;
        return Ok(true);
    }
    row.epoch += 1;
    row.wake_at = None;
    let message = format!("no model or assistant answered within {} ms", step.timeout.as_millis());
    fail_step(tx, row, playbook, step, &message, Principal::SYSTEM).await?;
    Ok(true)
}
