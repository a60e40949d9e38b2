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

use crate::engine::Inner;
use crate::engine::agent::AgentRequest;
use crate::engine::definition::{CompiledPlaybook, CompiledStep, Definition};
use crate::engine::error::Result;
use crate::engine::progress::{self, complete_step, fail_step, request_intervention, skip_step, start_child};
use crate::engine::records::parse;
use crate::engine::tx::{Row, Tx, context};
use crate::engine::types::{Environment, ExecutionStatus, InterventionKind, Mode, Principal};
use crate::engine::webhook;
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
        let Some(step) = playbook.steps.get(row.current_step_index as usize) else {
            // Every step has run but the execution did not finish (a person reopened it).
            if let Some((mut tx, mut row)) = Tx::guarded(engine, &row).await? {
                if let Err(error) = progress::finish(&mut tx, &mut row, &playbook).await {
                    tx.abandon().await;
                    return Err(error);
                }
                tx.save(row).await?;
                tx.commit().await?;
            }
            continue;
        };
        step_once(engine, &definition, &playbook, step, row).await?;
    }
}

/// Takes one step forward and commits it.
async fn step_once(
    engine: &Arc<Inner>,
    definition: &Definition,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    row: Row,
) -> Result<()> {
    let outcome = decide(engine, definition, step, &row).await?;
    let outcome = match outcome {
        Outcome::Output(output) => match &step.output_validator {
            Some(validator) => match schema::validate(validator, &output) {
                Ok(()) => Outcome::Output(output),
                Err(errors) => Outcome::Failed(format!(
                    "the output does not fit the step's output schema: {}",
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                )),
            },
            None => Outcome::Output(output),
        },
        Outcome::Superseded => return Ok(()),
        other => other,
    };
    // Commit only if nobody moved the execution while the step ran.
    let Some((mut tx, mut row)) = Tx::guarded(engine, &row).await? else { return Ok(()) };
    let (tx_ref, row_ref) = (&mut tx, &mut row);
    let applied: Result<()> = async {
        match outcome {
            Outcome::Output(output) => {
                complete_step(tx_ref, row_ref, playbook, step, output, Principal::SYSTEM).await?
            }
            Outcome::Skipped(reason) => {
                skip_step(tx_ref, row_ref, playbook, step, None, &reason, Principal::SYSTEM).await?
            }
            Outcome::Failed(error) => fail_step(tx_ref, row_ref, playbook, step, &error, Principal::SYSTEM).await?,
            Outcome::Park(kind, prompt) => {
                let form = match kind {
                    InterventionKind::Checkpoint => json!({"type": "object"}),
                    _ => step.output_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
                };
                request_intervention(tx_ref, row_ref, playbook, step, kind, prompt, form).await?
            }
            Outcome::Child(input) => {
                let child = definition.playbook(step.playbook.as_deref().unwrap_or_default())?.clone();
                start_child(tx_ref, row_ref, step, &child, input).await?
            }
            Outcome::Superseded => {}
        }
        Ok(())
    }
    .await;
    if let Err(error) = applied {
        tx.abandon().await;
        return Err(error);
    }
    renew(engine, &mut row);
    tx.save(row).await?;
    tx.commit().await
}

/// What the current step comes to: its condition, MANUAL mode's gate, then the step itself.
async fn decide(engine: &Arc<Inner>, definition: &Definition, step: &CompiledStep, row: &Row) -> Result<Outcome> {
    let context = context(row);
    if let Some(condition) = &step.when {
        match condition.test(&context) {
            Ok(true) => {}
            Ok(false) => return Ok(Outcome::Skipped("its condition is false".to_owned())),
            Err(error) => return Ok(Outcome::Failed(format!("the step's condition failed: {error}"))),
        }
    }
    if row.mode == Mode::Manual.as_str() && !row.gate_open {
        let prompt =
            format!("Approve step `{}` ({}) to run it, or skip, jump or abort.", step.name, step.kind.as_str());
        return Ok(Outcome::Park(InterventionKind::Checkpoint, Some(prompt)));
    }
    let environment: Environment = parse(&row.environment)?;
    match step_input(step, &context) {
        Err(error) => Ok(Outcome::Failed(error)),
        Ok(input) => run(engine, definition, step, row, environment, input, &context).await,
    }
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

async fn run(
    engine: &Arc<Inner>,
    definition: &Definition,
    step: &CompiledStep,
    row: &Row,
    environment: Environment,
    input: Value,
    context: &Value,
) -> Result<Outcome> {
    let simulated = (environment == Environment::Simulation).then(|| step.simulated_output.clone()).flatten();
    let prompt = match &step.prompt {
        Some(template) => match template.render(context) {
            Ok(prompt) => Some(prompt),
            Err(error) => return Ok(Outcome::Failed(format!("the step's prompt failed: {error}"))),
        },
        None => None,
    };
    Ok(match step.kind {
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
            (None, Some(model)) if environment != Environment::Simulation => {
                if !started(engine, row, step).await? {
                    return Ok(Outcome::Superseded);
                }
                let request = AgentRequest {
                    prompt: prompt.unwrap_or_default(),
                    output_schema: step.output_schema.clone().unwrap_or_else(|| json!({})),
                    context: context.clone(),
                    timeout: step.timeout,
                };
                match model.complete(request).await {
                    Ok(output) => Outcome::Output(output),
                    Err(error) => Outcome::Failed(error),
                }
            }
            (None, _) => Outcome::Park(InterventionKind::Agent, prompt),
        },
        StepKind::Webhook => {
            if environment == Environment::Simulation {
                // Nothing leaves the server in simulation.
                return Ok(Outcome::Output(simulated.unwrap_or(Value::Null)));
            }
            let url = step.url.as_deref().unwrap_or_default();
            let allow_list = engine.config.webhook_allow_list(environment);
            if !webhook::allowed(allow_list, url) {
                return Ok(Outcome::Failed(format!("the webhook URL is not on the {environment} allow-list")));
            }
            if !started(engine, row, step).await? {
                return Ok(Outcome::Superseded);
            }
            let key = format!("{}:{}:{}", row.id, step.name, row.attempt);
            match webhook::call(&engine.http, url, &input, &key, step.timeout).await {
                Ok(output) => Outcome::Output(output),
                Err(error) => Outcome::Failed(error),
            }
        }
        StepKind::Playbook => {
            let name = step.playbook.as_deref().unwrap_or_default();
            definition.playbook(name)?;
            Outcome::Child(input)
        }
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
        .exec(engine.store.connection())
        .await?;
    Ok(result.rows_affected == 1)
}

async fn release(engine: &Arc<Inner>, id: &str) -> Result<()> {
    execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::LeaseOwner.eq(engine.replica_id.clone()))
        .exec(engine.store.connection())
        .await?;
    Ok(())
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
        let (mut tx, mut row) = Tx::lock(engine, &id).await?;
        let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
        let playbook = definition.playbook(&row.playbook)?.clone();
        match progress::expire(&mut tx, &mut row, &playbook).await {
            Ok(true) => {
                tx.save(row).await?;
                tx.commit().await?;
            }
            Ok(false) => tx.abandon().await,
            Err(error) => {
                tx.abandon().await;
                return Err(error);
            }
        }
    }
    Ok(())
}
