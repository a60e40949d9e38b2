//! Nested executions: a `playbook` step starts a child and parks its parent on it; a finished
//! child reports its outcome to the parent's step; aborting an execution aborts its
//! descendants; nesting depth is bounded. Everything that walks the tree of executions is a
//! work list, never a recursion as deep as the data.

use std::sync::Arc;

use serde_json::Value;

use crate::engine::definition::{CompiledPlaybook, CompiledStep};
use crate::engine::error::{Error, Result};
use crate::engine::payloads;
use crate::engine::progress::{NewExecution, complete_step, create_execution, fail_step, set_status};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::{ExecutionStatus, Principal};
use crate::store;

/// What a finished child tells the parent that waits on it.
#[derive(Debug)]
pub(crate) enum ChildOutcome {
    Completed(Value),
    /// Failed or aborted: the message the parent's step fails with.
    Failed(String),
}

/// A child's outcome on its way to the parent's step it ran for. Reports are queued in the
/// transaction and delivered by [`Tx`]'s settle loop rather than by the child's own call
/// stack: a chain of nested playbooks finishing at once is then a loop, never a recursion as
/// deep as the chain (which overflowed a worker's stack and aborted the process).
#[derive(Debug)]
pub(crate) struct ChildReport {
    pub child_id: String,
    pub parent_id: String,
    pub parent_step_index: i32,
    pub parent_epoch: i64,
    pub outcome: ChildOutcome,
}

impl ChildReport {
    pub(crate) fn of(child: &Row, outcome: ChildOutcome) -> Option<ChildReport> {
        Some(ChildReport {
            child_id: child.id.clone(),
            parent_id: child.parent_id.clone()?,
            parent_step_index: child.parent_step_index?,
            parent_epoch: child.parent_epoch?,
            outcome,
        })
    }
}

/// Delivers a child's outcome: the parent's step completes or fails, if the parent still
/// waits on this child (same epoch and step, not finished); otherwise it is dropped.
pub(crate) async fn deliver(tx: &mut Tx, report: ChildReport) -> Result<()> {
    let Some((mut parent, playbook)) = waiting_parent(tx, &report).await? else { return Ok(()) };
    let Some(step) = playbook.steps.get(parent.current_step_index as usize) else {
        return Err(Error::Internal(format!(
            "execution {} waits on child {} at step {}, which its playbook lacks",
            parent.id, report.child_id, parent.current_step_index
        )));
    };
    match report.outcome {
        ChildOutcome::Completed(output) => {
            complete_step(tx, &mut parent, &playbook, step, output, Principal::SYSTEM).await?;
        }
        ChildOutcome::Failed(message) => {
            fail_step(tx, &mut parent, &playbook, step, &message, Principal::SYSTEM).await?
        }
    }
    tx.save(parent).await
}

/// The parent execution, locked, if it is still waiting on this child.
async fn waiting_parent(tx: &mut Tx, report: &ChildReport) -> Result<Option<(Row, Arc<CompiledPlaybook>)>> {
    let (parent_id, step_index, epoch) = (&report.parent_id, report.parent_step_index, report.parent_epoch);
    let parent = tx.lock_row(parent_id).await?;
    let parent_status = parent.status;
    let waiting = parent.epoch == epoch && parent.current_step_index == step_index && !parent_status.is_finished();
    if !waiting {
        return Ok(None);
    }
    let definition = tx.engine.definition(&parent.runtime_id, parent.runtime_version).await?;
    let playbook = definition.playbook(&parent.playbook)?.clone();
    Ok(Some((parent, playbook)))
}

/// A child that failed or was aborted fails its parent's step, if the parent still waits on it
/// (delivered when the transaction settles; see [`ChildReport`]).
pub(crate) async fn fail_parent_step(tx: &mut Tx, child: &Row, message: &str) -> Result<()> {
    tx.report_to_parent(child, ChildOutcome::Failed(message.to_owned()));
    Ok(())
}

/// Starts the child execution of a `playbook` step and parks the parent on it.
pub(crate) async fn start_child(
    tx: &mut Tx,
    row: &mut Row,
    step: &CompiledStep,
    child_playbook: &CompiledPlaybook,
    input: Value,
) -> Result<()> {
    let child = create_execution(
        tx,
        NewExecution {
            runtime_id: &row.runtime_id,
            runtime_version: row.runtime_version,
            environment: row.environment,
            playbook: child_playbook,
            input,
            mode: row.mode,
            started_by: Principal::SYSTEM,
            idempotency_key: None,
            parent: Some((&row.id, row.epoch, row.current_step_index)),
        },
    )
    .await?;
    // STEP_STARTED names the child, so the parent's history shows what it waits on.
    row.step_started = true;
    let payload = payloads::StepStarted {
        step_index: step.index as i64,
        attempt: i64::from(row.attempt),
        kind: step.run.kind().as_str().to_owned(),
        child_execution_id: Some(child.id.clone()),
        playbook: Some(child_playbook.name.clone()),
    };
    tx.record(row, Principal::SYSTEM, Some(&step.name), payload).await?;
    set_status(row, ExecutionStatus::Waiting);
    // Waiting on a child has no deadline (see `request_intervention`).
    row.wake_at = None;
    Ok(())
}

/// How many ancestors execution `row` has, counted up to `limit` (enough to refuse a deeper
/// child): a loop over `parent_id`, one primary-key read per level.
pub(crate) async fn nesting_depth(tx: &Tx, row: &Row, limit: usize) -> Result<usize> {
    let mut depth = 0;
    let mut parent = row.parent_id.clone();
    while let Some(id) = parent {
        depth += 1;
        if depth >= limit {
            break;
        }
        parent = store::executions::parent_of(tx.db(), &id).await?;
    }
    Ok(depth)
}

/// Aborts every unfinished descendant of `parent_id`, generation by generation: a work list,
/// not a recursion, so however deep the nesting the stack stays flat.
pub(crate) async fn abort_children(tx: &mut Tx, parent_id: &str, reason: &str, actor: &str) -> Result<()> {
    let mut parents = vec![parent_id.to_owned()];
    while let Some(parent_id) = parents.pop() {
        let unfinished =
            [ExecutionStatus::Running, ExecutionStatus::Waiting, ExecutionStatus::Paused, ExecutionStatus::Failed]
                .map(ExecutionStatus::as_str);
        let children = store::executions::children_in(tx.db(), &parent_id, &unfinished).await?;
        for child in children {
            let mut row = tx.lock_row(&child).await?;
            abort_one(tx, &mut row, reason, actor).await?;
            tx.save(row).await?;
            parents.push(child);
        }
    }
    Ok(())
}

/// Aborts an execution and its descendants.
pub(crate) async fn abort(tx: &mut Tx, row: &mut Row, reason: &str, actor: &str) -> Result<()> {
    abort_children(tx, &row.id.clone(), reason, actor).await?;
    abort_one(tx, row, reason, actor).await
}

/// Aborts one execution, leaving its children to the caller.
pub(crate) async fn abort_one(tx: &mut Tx, row: &mut Row, reason: &str, actor: &str) -> Result<()> {
    tx.cancel_interventions(&row.id).await?;
    row.epoch += 1;
    row.error = Some(format!("aborted: {reason}"));
    set_status(row, ExecutionStatus::Aborted);
    tx.record(row, actor, None, payloads::ExecutionAborted { reason: reason.to_owned() }).await?;
    Ok(())
}
