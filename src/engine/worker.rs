//! Workers run the steps of RUNNING executions. An execution is worked by at most one worker:
//! in one process the `active` set guarantees it, across processes the lease in its row. A
//! worker reads the row, runs the current step outside any transaction, and commits the result
//! only if nobody moved the execution meanwhile (see [`Tx::guarded`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};

use crate::engine::agent::AgentRequest;
use crate::engine::definition::{CompiledPlaybook, CompiledStep, Definition};
use crate::engine::error::{Error, Result};
use crate::engine::progress::{self, complete_step, fail_step, request_intervention, skip_step, start_child};
use crate::engine::records::parse;
use crate::engine::tx::{Row, Tx, context};
use crate::engine::types::{Environment, EventType, ExecutionStatus, InterventionKind, Mode, Principal};
use crate::engine::webhook;
use crate::engine::{Inner, WorkFailure};
use crate::package::StepKind;
use crate::schema;
use crate::store::entity::execution;

/// What running a step came to.
enum Outcome {
    Output(Value),
    Failed(String),
    Park(InterventionKind, Option<String>),
    Child(Value),
    Skipped(String),
    /// A person moved the execution while the step was being prepared; nothing to commit.
    Superseded,
}

/// What a step needs: nothing beyond the database (its outcome is known), or a call outside
/// the process (a webhook or a model), which a worker makes outside any transaction.
enum Prepared {
    Ready(Outcome),
    Call(Call),
}

struct Call {
    input: Value,
    prompt: Option<String>,
    context: Value,
}

/// The most steps one transaction runs inline before leaving the rest to a worker (which also
/// happens once the transaction's pending rows are large: [`Tx::is_full`]).
pub(crate) const INLINE_STEPS: usize = 256;

/// Works one execution until it parks, finishes, waits for a retry, or is taken elsewhere.
pub(crate) async fn drive(engine: &Arc<Inner>, id: &str) -> Result<()> {
    if !claim(engine, id).await? {
        return Ok(());
    }
    let result = drive_claimed(engine, id).await;
    release(engine, id).await?;
    result
}

async fn drive_claimed(engine: &Arc<Inner>, id: &str) -> Result<()> {
    loop {
        let Some(row) = execution::Entity::find_by_id(id.to_owned()).one(engine.store.connection()).await? else {
            return Ok(());
        };
        if row.status != ExecutionStatus::Running.as_str() {
            return Ok(());
        }
        if let Some(wake_at) = row.wake_at
            && wake_at > Utc::now()
        {
            engine.enqueue_at(id, wake_at);
            return Ok(());
        }
        let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
        let playbook = definition.playbook(&row.playbook)?.clone();
        let step = playbook.steps.get(row.current_step_index as usize);
        let outcome = match step {
            // Every step has run but the execution did not finish (a person reopened it):
            // the transaction below finishes it.
            None => Outcome::Superseded,
            Some(step) => match prepare(engine, &definition, step, &row)? {
                Prepared::Ready(outcome) => outcome,
                Prepared::Call(call) => match call_out(engine, step, &row, call).await? {
                    Outcome::Superseded => continue,
                    outcome => outcome,
                },
            },
        };
        // Commit only if nobody moved the execution while the step ran; the commit runs the
        // steps that follow inline (see `advance_inline`).
        let Some((mut tx, mut row)) = Tx::guarded(engine, &row).await? else { continue };
        let applied = match step {
            Some(step) => apply(&mut tx, &mut row, &definition, &playbook, step, outcome).await,
            None => progress::finish(&mut tx, &mut row, &playbook).await,
        };
        if let Err(error) = applied {
            tx.abandon().await;
            return Err(error);
        }
        renew(engine, &mut row);
        tx.save(row).await?;
        tx.commit().await?;
    }
}

/// Runs, inside `tx`, the steps of execution `id` that need nothing outside the database
/// (transforms, conditions, parking on a person, starting a child), until it parks, finishes,
/// reaches a call (a webhook or a model: `true`, a worker's job) or spends `budget`. The
/// transaction that woke the execution thus commits its progress to the next durable stop in
/// one go. Returns the row if it moved.
pub(crate) async fn advance_inline(tx: &mut Tx, id: &str, budget: &mut usize) -> Result<(Option<Row>, bool)> {
    let engine = tx.engine.clone();
    let mut row = tx.lock_row(id).await?;
    let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
    let playbook = definition.playbook(&row.playbook)?.clone();
    let mut moved = false;
    let needs_worker = loop {
        tx.unwake(id);
        if row.status != ExecutionStatus::Running.as_str() {
            break false;
        }
        if row.wake_at.is_some_and(|wake_at| wake_at > tx.now) || *budget == 0 || tx.is_full() {
            break true;
        }
        *budget -= 1;
        match playbook.steps.get(row.current_step_index as usize) {
            None => progress::finish(tx, &mut row, &playbook).await?,
            Some(step) => match prepare(&engine, &definition, step, &row)? {
                Prepared::Ready(outcome) => apply(tx, &mut row, &definition, &playbook, step, outcome).await?,
                Prepared::Call(_) => break true,
            },
        }
        moved = true;
    };
    if moved {
        tx.save(row.clone()).await?;
    }
    Ok((moved.then_some(row), needs_worker))
}

/// Records what the current step came to, inside the caller's transaction.
async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    definition: &Definition,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    outcome: Outcome,
) -> Result<()> {
    match checked(step, outcome, tx.engine.config.max_output_bytes) {
        Outcome::Output(output) => complete_step(tx, row, playbook, step, output, Principal::SYSTEM).await,
        Outcome::Skipped(reason) => skip_step(tx, row, playbook, step, None, &reason, Principal::SYSTEM).await,
        Outcome::Failed(error) => fail_step(tx, row, playbook, step, &error, Principal::SYSTEM).await,
        Outcome::Park(kind, prompt) => {
            let form = match kind {
                InterventionKind::Checkpoint => json!({"type": "object"}),
                _ => step.output_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
            };
            request_intervention(tx, row, playbook, step, kind, prompt, form).await
        }
        Outcome::Child(input) => {
            // The deploy-time check bounds new runtimes; this one also holds for versions
            // deployed before it or under a larger limit.
            let limit = tx.engine.config.limits.nesting_depth;
            let depth = progress::nesting_depth(tx, row, limit).await?;
            if depth >= limit {
                let error = format!(
                    "starting playbook `{}` would nest executions {} deep; playbooks may nest at most {limit} deep \
                     (--max-nesting-depth)",
                    step.playbook.as_deref().unwrap_or_default(),
                    depth + 1
                );
                return fail_step(tx, row, playbook, step, &error, Principal::SYSTEM).await;
            }
            let child = definition.playbook(step.playbook.as_deref().unwrap_or_default())?.clone();
            start_child(tx, row, step, &child, input).await
        }
        Outcome::Superseded => Ok(()),
    }
}

/// An output larger than `--max-output-bytes`, or that does not fit the step's output schema,
/// fails the step: it is never stored.
fn checked(step: &CompiledStep, outcome: Outcome, max_bytes: usize) -> Outcome {
    if let Outcome::Output(output) = &outcome {
        let size = json_size(output, max_bytes);
        if size > max_bytes {
            return Outcome::Failed(format!(
                "the step's output is larger than {max_bytes} bytes of JSON (--max-output-bytes); \
                 it was not stored"
            ));
        }
    }
    match (outcome, &step.output_validator) {
        (Outcome::Output(output), Some(validator)) => match schema::validate(validator, &output) {
            Ok(()) => Outcome::Output(output),
            Err(errors) => Outcome::Failed(format!(
                "the output does not fit the step's output schema: {}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
        },
        (outcome, _) => outcome,
    }
}

/// What the current step comes to without leaving the process: its condition, MANUAL mode's
/// gate, its input, then the step itself, unless it calls out.
fn prepare(engine: &Inner, definition: &Definition, step: &CompiledStep, row: &Row) -> Result<Prepared> {
    let context = context(row);
    if let Some(condition) = &step.when {
        match condition.test(&context) {
            Ok(true) => {}
            Ok(false) => return Ok(Prepared::Ready(Outcome::Skipped("its condition is false".to_owned()))),
            Err(error) => {
                return Ok(Prepared::Ready(Outcome::Failed(format!("the step's condition failed: {error}"))));
            }
        }
    }
    if row.mode == Mode::Manual.as_str() && !row.gate_open {
        let prompt =
            format!("Approve step `{}` ({}) to run it, or skip, jump or abort.", step.name, step.kind.as_str());
        return Ok(Prepared::Ready(Outcome::Park(InterventionKind::Checkpoint, Some(prompt))));
    }
    let environment: Environment = parse(&row.environment)?;
    let input = match step_input(step, &context) {
        Ok(input) => input,
        Err(error) => return Ok(Prepared::Ready(Outcome::Failed(error))),
    };
    let simulated = (environment == Environment::Simulation).then(|| step.simulated_output.clone()).flatten();
    let prompt = match &step.prompt {
        Some(template) => match template.render(&context) {
            Ok(prompt) => Some(prompt),
            Err(error) => return Ok(Prepared::Ready(Outcome::Failed(format!("the step's prompt failed: {error}")))),
        },
        None => None,
    };
    let outcome = match step.kind {
        StepKind::Transform => match &step.program {
            Some(program) => match program.one(&input) {
                Ok(output) => Outcome::Output(output),
                Err(error) => Outcome::Failed(format!("the program failed: {error}")),
            },
            None => Outcome::Failed("the step has no program".to_owned()),
        },
        StepKind::Human => match simulated {
            Some(output) => Outcome::Output(output),
            None => Outcome::Park(InterventionKind::Task, prompt),
        },
        StepKind::Agent => match (simulated, &engine.model) {
            (Some(output), _) => Outcome::Output(output),
            (None, Some(_)) if environment != Environment::Simulation => {
                return Ok(Prepared::Call(Call { input, prompt, context }));
            }
            (None, _) => Outcome::Park(InterventionKind::Agent, prompt),
        },
        StepKind::Webhook => {
            if environment == Environment::Simulation {
                // Nothing leaves the server in simulation.
                Outcome::Output(simulated.unwrap_or(Value::Null))
            } else if !webhook::allowed(
                engine.config.webhook_allow_list(environment),
                step.url.as_deref().unwrap_or_default(),
            ) {
                Outcome::Failed(format!("the webhook URL is not on the {environment} allow-list"))
            } else {
                return Ok(Prepared::Call(Call { input, prompt, context }));
            }
        }
        StepKind::Playbook => {
            let name = step.playbook.as_deref().unwrap_or_default();
            definition.playbook(name)?;
            Outcome::Child(input)
        }
    };
    Ok(Prepared::Ready(outcome))
}

/// The length of `value` as JSON, counted without building the text, up to just past `limit`.
pub(crate) fn json_size(value: &Value, limit: usize) -> usize {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.written += bytes.len();
            if self.written > self.limit {
                // Stops the serialiser: the size is known to be over the limit.
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    let _ = serde_json::to_writer(&mut counter, value);
    counter.written
}

fn renew(engine: &Inner, row: &mut Row) {
    if row.status == ExecutionStatus::Running.as_str() {
        row.lease_owner = Some(engine.replica_id.clone());
        row.lease_until = Some(Utc::now() + chrono::Duration::from_std(engine.config.lease).unwrap_or_default());
    }
}

/// The step's input: its `input` program over the context, or the context itself (for a
/// `playbook` step, the execution's input); checked against the step's input schema.
fn step_input(step: &CompiledStep, context: &Value) -> Result<Value, String> {
    let input = match (&step.input, step.kind) {
        (Some(program), _) => {
            program.one(context).map_err(|error| format!("the step's input program failed: {error}"))?
        }
        (None, StepKind::Playbook) => context.get("input").cloned().unwrap_or(Value::Null),
        (None, _) => context.clone(),
    };
    if let (Some(validator), Some(_)) = (&step.input_validator, &step.input) {
        schema::validate(validator, &input).map_err(|errors| {
            format!(
                "the step's input does not fit its input schema: {}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )
        })?;
    }
    Ok(input)
}

/// Makes a step's call outside the process, after committing STEP_STARTED so that the attempt
/// (and with it the idempotency key) is durable first.
async fn call_out(engine: &Arc<Inner>, step: &CompiledStep, row: &Row, call: Call) -> Result<Outcome> {
    if !started(engine, row, step).await? {
        return Ok(Outcome::Superseded);
    }
    Ok(match (step.kind, &engine.model) {
        (StepKind::Agent, Some(model)) => {
            let request = AgentRequest {
                prompt: call.prompt.unwrap_or_default(),
                output_schema: step.output_schema.clone().unwrap_or_else(|| json!({})),
                context: call.context,
                timeout: step.timeout,
            };
            match model.complete(request).await {
                Ok(output) => Outcome::Output(output),
                Err(error) => Outcome::Failed(error),
            }
        }
        (StepKind::Webhook, _) => {
            let url = step.url.as_deref().unwrap_or_default();
            let key = format!("{}:{}:{}", row.id, step.name, row.attempt);
            match webhook::call(&engine.http, url, &call.input, &key, step.timeout, engine.config.max_output_bytes)
                .await
            {
                Ok(output) => Outcome::Output(output),
                Err(error) => Outcome::Failed(error),
            }
        }
        (kind, _) => Outcome::Failed(format!("a {} step makes no call", kind.as_str())),
    })
}

/// Commits STEP_STARTED before a call with side effects. False if the execution moved.
async fn started(engine: &Arc<Inner>, row: &Row, step: &CompiledStep) -> Result<bool> {
    if row.step_started {
        return Ok(true);
    }
    let Some((mut tx, mut current)) = Tx::guarded(engine, row).await? else { return Ok(false) };
    if let Err(error) = progress::start_step(&mut tx, &mut current, step).await {
        tx.abandon().await;
        return Err(error);
    }
    renew(engine, &mut current);
    tx.save(current).await?;
    tx.commit().await?;
    Ok(true)
}

/// Takes the execution's lease, unless another replica holds a live one.
async fn claim(engine: &Arc<Inner>, id: &str) -> Result<bool> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(engine.config.lease).unwrap_or_default();
    let tx = Tx::begin(engine).await?;
    let result = execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(engine.replica_id.clone()))
        .col_expr(execution::Column::LeaseUntil, Expr::value(until))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::Status.eq(ExecutionStatus::Running.as_str()))
        .filter(
            Condition::any()
                .add(execution::Column::LeaseOwner.is_null())
                .add(execution::Column::LeaseOwner.eq(engine.replica_id.clone()))
                .add(execution::Column::LeaseUntil.lt(now)),
        )
        .exec(tx.db())
        .await;
    match result {
        Ok(result) => {
            tx.commit().await?;
            Ok(result.rows_affected == 1)
        }
        Err(error) => {
            tx.abandon().await;
            Err(error.into())
        }
    }
}

async fn release(engine: &Arc<Inner>, id: &str) -> Result<()> {
    let tx = Tx::begin(engine).await?;
    let result = execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::LeaseOwner.eq(engine.replica_id.clone()))
        .exec(tx.db())
        .await;
    match result {
        Ok(_) => tx.commit().await,
        Err(error) => {
            tx.abandon().await;
            Err(error.into())
        }
    }
}

/// Claims runnable executions whose lease is free or expired (a replica died, or this one
/// restarted), `FOR UPDATE SKIP LOCKED` on PostgreSQL so that replicas split the work.
pub(crate) async fn sweep(engine: &Arc<Inner>, limit: u64) -> Result<Vec<String>> {
    let now = Utc::now();
    let tx = Tx::begin(engine).await?;
    let rows = execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::Status.eq(ExecutionStatus::Running.as_str()))
        .filter(
            Condition::any().add(execution::Column::LeaseUntil.is_null()).add(execution::Column::LeaseUntil.lt(now)),
        )
        .filter(Condition::any().add(execution::Column::WakeAt.is_null()).add(execution::Column::WakeAt.lte(now)))
        .order_by_asc(execution::Column::Id)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_tuple::<String>()
        .all(tx.db())
        .await?;
    if !rows.is_empty() {
        let until = now + chrono::Duration::from_std(engine.config.lease).unwrap_or_default();
        execution::Entity::update_many()
            .col_expr(execution::Column::LeaseOwner, Expr::value(engine.replica_id.clone()))
            .col_expr(execution::Column::LeaseUntil, Expr::value(until))
            .filter(execution::Column::Id.is_in(rows.clone()))
            .exec(tx.db())
            .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// How often the sweeper looks for work nobody holds.
pub(crate) fn sweep_interval(lease: Duration) -> Duration {
    (lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// Fails the steps of WAITING executions whose AGENT intervention expired.
pub(crate) async fn expire(engine: &Arc<Inner>, limit: u64) -> Result<()> {
    let now = Utc::now();
    let ids: Vec<String> = execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::Status.eq(ExecutionStatus::Waiting.as_str()))
        .filter(execution::Column::WakeAt.lte(now))
        .limit(limit)
        .into_tuple()
        .all(engine.store.connection())
        .await?;
    for id in ids {
        // One execution that cannot be expired must not hold up the others: it is retried on
        // the next pass, and failed as poison if it keeps failing.
        if let Err(error) = expire_one(engine, &id).await {
            let failure = match error {
                Error::Store(error) => WorkFailure::Store(error.to_string()),
                error => WorkFailure::Engine(error.to_string()),
            };
            engine.poisoned(&id, failure).await;
        }
    }
    Ok(())
}

async fn expire_one(engine: &Arc<Inner>, id: &str) -> Result<()> {
    let (mut tx, mut row) = Tx::lock(engine, id).await?;
    let expired = async {
        let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
        let playbook = definition.playbook(&row.playbook)?.clone();
        progress::expire(&mut tx, &mut row, &playbook).await
    }
    .await;
    match expired {
        Ok(true) => {
            tx.save(row).await?;
            tx.commit().await
        }
        Ok(false) => {
            tx.abandon().await;
            Ok(())
        }
        Err(error) => {
            tx.abandon().await;
            Err(error)
        }
    }
}

/// Fails a poison execution (see `Inner::poisoned`): through the usual path, so that a parent
/// waiting on it sees its step fail; if even that fails, the execution alone is marked
/// FAILED with its reason, so that nothing picks it up again.
pub(crate) async fn fail_poisoned(engine: &Arc<Inner>, id: &str, reason: &str) -> Result<()> {
    let (mut tx, mut row) = Tx::lock(engine, id).await?;
    if progress::status(&row)?.is_finished() {
        tx.abandon().await;
        return Ok(());
    }
    row.epoch += 1;
    let failed = progress::fail_execution(&mut tx, &mut row, reason, Principal::SYSTEM).await;
    let committed = match failed {
        Ok(()) => match tx.save(row).await {
            Ok(()) => tx.commit().await,
            Err(error) => {
                tx.abandon().await;
                Err(error)
            }
        },
        Err(error) => {
            tx.abandon().await;
            Err(error)
        }
    };
    let Err(error) = committed else { return Ok(()) };
    tracing::error!(execution_id = id, %error, "failing a poison execution with its parent failed; failing it alone");
    let (mut tx, mut row) = Tx::lock(engine, id).await?;
    row.epoch += 1;
    row.error = Some(reason.to_owned());
    progress::set_status(&mut row, ExecutionStatus::Failed);
    let alone = async {
        tx.cancel_interventions(&row.id).await?;
        tx.record(&mut row, EventType::ExecutionFailed, Principal::SYSTEM, None, json!({"error": reason})).await?;
        Ok::<(), Error>(())
    }
    .await;
    match alone {
        Ok(()) => {
            tx.save(row).await?;
            tx.commit().await
        }
        Err(error) => {
            tx.abandon().await;
            Err(error)
        }
    }
}
