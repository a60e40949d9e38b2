//! Carrying executions to their next durable stop. A transition is acknowledged with its
//! executions parked, finished or at a call: before its transaction commits, the steps that
//! need nothing outside the database run inline for every execution it woke (and for those
//! these wake in turn: a child, its parent), and finished children's outcomes reach their
//! parents. Whoever commits a transition goes through [`run`]; [`Tx`] itself only stores.

use std::collections::HashMap;

use crate::engine::children;
use crate::engine::error::Result;
use crate::engine::progress;
use crate::engine::step::{Prepared, apply, prepare};
use crate::engine::tx::{Row, Tx};
use crate::engine::types::ExecutionStatus;
use crate::jq::Stopped;

/// The most steps one transaction runs inline before leaving the rest to a worker (which also
/// happens once the transaction's pending rows are large: [`Tx::is_full`]).
pub(crate) const INLINE_STEPS: usize = 256;

/// The rows of the executions that a commit's inline steps moved, as they stand at commit.
#[derive(Default)]
pub(crate) struct Moved(HashMap<String, Row>);

impl Moved {
    /// `row` as it stands at commit: the caller's copy is stale if inline steps moved it.
    pub(crate) fn latest(mut self, row: Row) -> Row {
        self.0.remove(&row.id).unwrap_or(row)
    }
}

/// Runs `work` in `tx`, carries every execution it woke to its next durable stop, and
/// commits. If anything fails, the transaction is rolled back once, at once (see [`Tx::end`]).
pub(crate) async fn run<T>(mut tx: Tx, work: impl AsyncFnOnce(&mut Tx) -> Result<T>) -> Result<(T, Moved)> {
    let outcome = match work(&mut tx).await {
        Ok(value) => settle(&mut tx).await.map(|moved| (value, moved)),
        Err(error) => Err(error),
    };
    tx.end(outcome).await
}

/// Runs the inline steps of every woken execution (and of those they wake: a child, its
/// parent), within one budget, and delivers finished children's outcomes to their parents;
/// leaves woken only what needs a worker, which the commit hands over. A work list: nothing
/// here recurses, however deep executions nest.
async fn settle(tx: &mut Tx) -> Result<Moved> {
    let mut budget = INLINE_STEPS;
    let mut for_workers: Vec<String> = Vec::new();
    let mut moved: HashMap<String, Row> = HashMap::new();
    loop {
        // Reports first: a parent's row must be current before it is advanced again.
        if let Some(report) = tx.next_report() {
            let parent_id = report.parent_id.clone();
            children::deliver(tx, report).await?;
            // The caller's copy of the parent (if it read one) is stale now.
            moved.remove(&parent_id);
            if let Some(row) = tx.read_row(&parent_id).await? {
                moved.insert(parent_id, row);
            }
            continue;
        }
        let Some(id) = tx.next_woken() else { break };
        if for_workers.contains(&id) {
            continue;
        }
        let (row, needs_worker) = advance_inline(tx, &id, &mut budget).await?;
        if needs_worker {
            for_workers.push(id.clone());
        }
        if let Some(row) = row {
            moved.insert(id, row);
        }
    }
    for id in for_workers {
        tx.wake(&id);
    }
    Ok(Moved(moved))
}

/// Runs, inside `tx`, the steps of execution `id` that need nothing outside the database
/// (transforms, conditions, parking on a person, starting a child), until it parks, finishes,
/// reaches a call (a webhook or a model: `true`, a worker's job), a program that needs more
/// than the inline slice of the jq budget (also a worker's, which runs it outside any
/// transaction, so that a slow program never holds the write turn) or spends `budget`. The
/// transaction that woke the execution thus commits its progress to the next durable stop in
/// one go. Returns the row if it moved.
async fn advance_inline(tx: &mut Tx, id: &str, budget: &mut usize) -> Result<(Option<Row>, bool)> {
    let engine = tx.engine.clone();
    let mut row = tx.lock_row(id).await?;
    let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
    let playbook = definition.playbook(&row.playbook)?.clone();
    let mut moved = false;
    let needs_worker = loop {
        tx.unwake(id);
        if row.status != ExecutionStatus::Running {
            break false;
        }
        if row.wake_at.is_some_and(|wake_at| wake_at > tx.now) || *budget == 0 || tx.is_full() {
            break true;
        }
        *budget -= 1;
        let allowance = engine.config.jq_inline();
        match playbook.steps.get(row.current_step_index as usize) {
            None => match progress::playbook_output(&row, &playbook, allowance) {
                Err(Stopped::SliceSpent) => break true,
                output => progress::finish(tx, &mut row, output.map_err(|stopped| stopped.to_string())).await?,
            },
            Some(step) => match prepare(&engine, &definition, step, &row, allowance)? {
                Prepared::Ready(outcome) => apply(tx, &mut row, &definition, &playbook, step, outcome).await?,
                Prepared::Call(_) | Prepared::SliceSpent => break true,
            },
        }
        moved = true;
    };
    if moved {
        tx.save(row.clone()).await?;
    }
    Ok((moved.then_some(row), needs_worker))
}
