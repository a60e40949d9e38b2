//! Workers run the steps of RUNNING executions. An execution is worked by at most one worker:
//! in one process the `active` set guarantees it, across processes the lease in its row. A
//! worker reads the row, runs the current step outside any transaction, and commits the result
//! only if nobody moved the execution meanwhile (see [`Tx::guarded`]).

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::engine::agent::AgentRequest;
use crate::engine::definition::CompiledStep;
use crate::engine::error::Result;
use crate::engine::lease::Lease;
use crate::engine::progress;
use crate::engine::step::{Call, Outcome, Prepared, apply, prepare};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::ExecutionStatus;
use crate::engine::webhook;
use crate::engine::{Inner, advance};
use crate::package::StepKind;
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
        // steps that follow inline (see `advance`).
        let Some((tx, mut row)) = Tx::guarded(engine, &row).await? else { continue };
        advance::run(tx, async |tx| {
            match step {
                Some(step) => apply(tx, &mut row, &definition, &playbook, step, outcome).await?,
                None => progress::finish(tx, &mut row, &playbook).await?,
            }
            Lease::of(engine).renew(&mut row, Utc::now());
            tx.save(row).await
        })
        .await?;
    }
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
    let Some((tx, mut current)) = Tx::guarded(engine, row).await? else { return Ok(false) };
    advance::run(tx, async |tx| {
        progress::start_step(tx, &mut current, step).await?;
        Lease::of(engine).renew(&mut current, Utc::now());
        tx.save(current).await
    })
    .await?;
    Ok(true)
}
