//! Workers run the steps of RUNNING executions. An execution is worked by at most one worker:
//! in one process the `active` set guarantees it, across processes the lease in its row. A
//! worker reads the row, runs the current step outside any transaction, and commits the result
//! only if nobody moved the execution meanwhile (see [`Tx::guarded`]).

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::engine::agent::AgentRequest;
use crate::engine::definition::{CompiledStep, StepRun};
use crate::engine::error::{Error, Result};
use crate::engine::lease::Lease;
use crate::engine::progress;
use crate::engine::step::{Call, Outcome, Prepared, apply, prepare};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::ExecutionStatus;
use crate::engine::webhook;
use crate::engine::{Inner, advance};
use crate::store;

/// Works one execution until it parks, finishes, waits for a retry, or is taken elsewhere.
pub(crate) async fn drive(engine: &Arc<Inner>, id: &str) -> Result<()> {
    let lease = Lease::of(engine);
    if !Tx::run(engine, async |tx| lease.claim(tx.db(), id, Utc::now()).await).await? {
        return Ok(());
    }
    let result = drive_claimed(engine, id).await;
    Tx::run(engine, async |tx| lease.release(tx.db(), id).await).await?;
    result
}

async fn drive_claimed(engine: &Arc<Inner>, id: &str) -> Result<()> {
    loop {
        let Some(row) = store::executions::find(engine.store.connection(), id).await? else {
            return Ok(());
        };
        if row.status != ExecutionStatus::Running {
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
        let index = row.current_step_index as usize;
        // Programs run here with the whole budget, on the blocking pool, outside any
        // transaction: a slow one holds up nobody else.
        let work = match playbook.steps.get(index) {
            // Every step has run but the execution did not finish (a person reopened it, or
            // its output program needed more than the inline slice).
            None => {
                let (row, playbook, allowance) = (row.clone(), playbook.clone(), engine.config.jq_whole());
                let output = off_thread(move || progress::playbook_output(&row, &playbook, allowance)).await?;
                Work::Finish(output.map_err(|stopped| stopped.to_string()))
            }
            Some(step) => {
                let (inner, compiled, steps) = (engine.clone(), definition.clone(), playbook.clone());
                let (current, allowance) = (row.clone(), engine.config.jq_whole());
                let prepared = off_thread(move || match steps.steps.get(index) {
                    Some(step) => prepare(&inner, &compiled, step, &current, allowance),
                    None => Err(Error::Internal(format!("step {index} of a playbook is gone"))),
                })
                .await??;
                let outcome = match prepared {
                    Prepared::Ready(outcome) => outcome,
                    Prepared::Call(call) => match call_out(engine, step, &row, call).await? {
                        Outcome::Superseded => continue,
                        outcome => outcome,
                    },
                    // The whole budget has no slice to spend.
                    Prepared::SliceSpent => Outcome::Failed("a program ran out of its slice of the budget".to_owned()),
                };
                Work::Step(step, outcome)
            }
        };
        // Commit only if nobody moved the execution while the step ran; the commit runs the
        // steps that follow inline (see `advance`).
        let Some((tx, mut row)) = Tx::guarded(engine, &row).await? else { continue };
        advance::run(tx, async |tx| {
            match work {
                Work::Step(step, outcome) => apply(tx, &mut row, &definition, &playbook, step, outcome).await?,
                Work::Finish(output) => progress::finish(tx, &mut row, output).await?,
            }
            Lease::of(engine).renew(&mut row, Utc::now());
            tx.save(row).await
        })
        .await?;
    }
}

/// What a worker commits: a step's outcome, or the execution's output once every step has run.
enum Work<'a> {
    Step(&'a CompiledStep, Outcome),
    Finish(std::result::Result<serde_json::Value, String>),
}

/// Runs `work` on the blocking pool (jq evaluations block their thread until they end).
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(format!("a step's evaluation stopped: {error}")))
}

/// Makes a step's call outside the process, after committing STEP_STARTED so that the attempt
/// (and with it the idempotency key) is durable first.
async fn call_out(engine: &Arc<Inner>, step: &CompiledStep, row: &Row, call: Call) -> Result<Outcome> {
    if !started(engine, row, step).await? {
        return Ok(Outcome::Superseded);
    }
    Ok(match (&step.run, &engine.model) {
        (StepRun::Agent { model: choice }, Some(model)) => {
            let request = AgentRequest {
                choice: choice.clone(),
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
        (StepRun::Webhook { url, method, headers }, _) => {
            let key = format!("{}:{}:{}", row.id, step.name, row.attempt);
            let request = webhook::Request {
                url,
                method: *method,
                headers: match webhook::headers(headers, &engine.config.secrets) {
                    Ok(headers) => headers,
                    Err(error) => return Ok(Outcome::Failed(error)),
                },
                body: &call.input,
                idempotency_key: &key,
                timeout: step.timeout,
                max_bytes: engine.config.max_output_bytes,
            };
            match webhook::call(&engine.http, request).await {
                Ok(output) => Outcome::Output(output),
                Err(error) => Outcome::Failed(error),
            }
        }
        (run, _) => Outcome::Failed(format!("a {} step makes no call", run.kind().as_str())),
    })
}

/// Commits STEP_STARTED before a call with side effects. False if the execution moved.
async fn started(engine: &Arc<Inner>, row: &Row, step: &CompiledStep) -> Result<bool> {
    if row.step_started {
        return Ok(true);
    }
    let Some((tx, mut current)) = Tx::guarded(engine, row).await? else { return Ok(false) };
    advance::run(tx, async |tx| {
        progress::start_step(tx, &mut current, step).await?;
        Lease::of(engine).renew(&mut current, Utc::now());
        tx.save(current).await
    })
    .await?;
    Ok(true)
}
