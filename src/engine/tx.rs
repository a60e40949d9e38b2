//! One transition = one database transaction, a plain unit of work: lock the execution row,
//! append events with the next `seq`, record checkpoints, save rows; at commit, write the
//! history and checkpoints in multi-row inserts, commit, and only then publish the events and
//! hand the woken executions to the workers. A transaction ends exactly once, through
//! [`Tx::end`]: committed if its work succeeded, else rolled back at once. Carrying woken
//! executions further before the commit is `advance`'s job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde_json::{Value, json};

use crate::engine::Inner;
use crate::engine::children::{ChildOutcome, ChildReport};
use crate::engine::error::{Error, Result};
use crate::engine::payloads::Payload;
use crate::engine::records;
use crate::engine::types::{Event, ExecutionId, ExecutionStatus, InterventionKind, InterventionStatus};
use crate::store::entity::{checkpoint, event, execution};
use crate::store::{self, Write};

pub(crate) type Row = execution::Model;

pub(crate) struct Tx {
    pub(crate) engine: Arc<Inner>,
    /// Open until [`Tx::end`]; a Tx dropped on an error path rolls back at once (see `Drop`),
    /// since a dropped SeaORM transaction only queues its rollback and SQLite keeps the write
    /// lock until then.
    db: Option<Write>,
    pub(crate) now: DateTime<Utc>,
    events: Vec<Event>,
    /// History rows and checkpoints, written together when the transaction commits: nothing
    /// reads them back inside the transaction that appends them.
    pending_events: Vec<event::Model>,
    pending_checkpoints: Vec<checkpoint::Model>,
    /// About how many bytes the pending rows hold: inline advancing stops past
    /// [`Tx::PENDING_BYTES`], so a long run of steps over a large state is many transactions
    /// of bounded size, not one whose memory grows with steps × state.
    pending_bytes: usize,
    /// Executions to move on: `advance` runs their inline steps before the commit; the commit
    /// hands what is left to the workers.
    wake: Vec<String>,
    /// Finished children's outcomes for their parents, delivered by `advance` before commit.
    reports: Vec<ChildReport>,
}

impl Tx {
    pub(crate) async fn begin(engine: &Arc<Inner>) -> Result<Tx> {
        Ok(Tx {
            engine: engine.clone(),
            db: Some(engine.store.write().await?),
            now: Utc::now(),
            events: Vec::new(),
            pending_events: Vec::new(),
            pending_checkpoints: Vec::new(),
            pending_bytes: 0,
            wake: Vec::new(),
            reports: Vec::new(),
        })
    }

    /// Runs `work` in a new transaction and commits it; if anything fails, rolls back once,
    /// at once. For work that moves no execution (a transition commits through
    /// `advance::run`, which carries what it woke further first).
    pub(crate) async fn run<T>(engine: &Arc<Inner>, work: impl AsyncFnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let mut tx = Tx::begin(engine).await?;
        let outcome = work(&mut tx).await;
        tx.end(outcome).await
    }

    /// Begins a transaction and locks the execution row.
    pub(crate) async fn lock(engine: &Arc<Inner>, id: &str) -> Result<(Tx, Row)> {
        let tx = Tx::begin(engine).await?;
        match tx.lock_row(id).await {
            Ok(row) => Ok((tx, row)),
            Err(error) => tx.end(Err(error)).await,
        }
    }

    /// Begins a transaction and locks the execution row, if `wanted` says the row is still
    /// worth working on; otherwise gives up at once (a rollback, since SQLite keeps its write
    /// lock until then) and returns `None`.
    pub(crate) async fn lock_if(
        engine: &Arc<Inner>,
        id: &str,
        wanted: impl FnOnce(&Row) -> Result<bool>,
    ) -> Result<Option<(Tx, Row)>> {
        let (tx, row) = Tx::lock(engine, id).await?;
        match wanted(&row) {
            Ok(true) => Ok(Some((tx, row))),
            Ok(false) => {
                tx.rollback().await;
                Ok(None)
            }
            Err(error) => tx.end(Err(error)).await,
        }
    }

    /// Begins a transaction only if the execution is still where a worker saw it: same epoch,
    /// step and attempt, and not finished. Otherwise a person moved it meanwhile, and the
    /// worker's result is stale.
    pub(crate) async fn guarded(engine: &Arc<Inner>, seen: &Row) -> Result<Option<(Tx, Row)>> {
        Tx::lock_if(engine, &seen.id, |row| {
            let status: ExecutionStatus = row.status;
            Ok(row.epoch == seen.epoch
                && row.current_step_index == seen.current_step_index
                && row.attempt == seen.attempt
                && matches!(status, ExecutionStatus::Running | ExecutionStatus::Paused))
        })
        .await
    }

    /// Ends the transaction, the one way every transaction ends: if `outcome` is a success,
    /// writes what is pending and commits (an error there rolls back too); otherwise rolls back
    /// at once, so that no error path keeps SQLite's write lock.
    pub(crate) async fn end<T>(mut self, outcome: Result<T>) -> Result<T> {
        let outcome = match outcome {
            Ok(value) => self.write_pending().await.map(|()| value),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(error) => {
                self.rollback().await;
                Err(error)
            }
        }
    }

    /// Rolls back at once: dropping a transaction only queues the rollback, and on SQLite the
    /// write lock stays held until then.
    async fn rollback(mut self) {
        if let Some(db) = self.db.take()
            && let Err(error) = db.rollback().await
        {
            tracing::warn!(%error, "rolling back a transaction failed");
        }
    }

    /// The open transaction.
    pub(crate) fn db(&self) -> &DatabaseTransaction {
        self.db.as_ref().expect("a Tx holds its transaction until `end` consumes it").db()
    }

    /// The execution row, locked for the rest of the transaction (`FOR UPDATE` on PostgreSQL;
    /// on SQLite the IMMEDIATE transaction already holds the write lock).
    pub(crate) async fn lock_row(&self, id: &str) -> Result<Row> {
        store::executions::lock_for_update(self.db(), id).await?.ok_or_else(|| match id.parse::<ExecutionId>() {
            Ok(id) => Error::ExecutionNotFound(id),
            Err(error) => Error::BadInput(error),
        })
    }

    /// The execution row as this transaction sees it, without locking it again.
    pub(crate) async fn read_row(&self, id: &str) -> Result<Option<Row>> {
        Ok(store::executions::find(self.db(), id).await?)
    }
    /// Appends one history event with the next `seq`; the row's lock makes `seq` order the
    /// commit order.
    pub(crate) async fn record<P: Payload>(
        &mut self,
        row: &mut Row,
        actor: &str,
        step: Option<&str>,
        payload: P,
    ) -> Result<i64> {
        let event_type = P::TYPE;
        let payload = serde_json::to_value(payload)
            .map_err(|error| Error::Internal(format!("writing a {event_type} payload: {error}")))?;
        row.last_seq += 1;
        let model = event::Model {
            execution_id: row.id.clone(),
            seq: row.last_seq,
            event_type,
            at: self.now,
            actor: actor.to_owned(),
            step: step.map(str::to_owned),
            payload,
            runtime_id: row.runtime_id.clone(),
            environment: row.environment,
        };
        self.pending_bytes += estimated_bytes(&model.payload);
        self.events.push(records::event(model.clone())?);
        self.pending_events.push(model);
        Ok(row.last_seq)
    }

    /// The pending rows (as JSON text; in memory a `Value` takes about ten times that) past
    /// which a transaction stops advancing executions inline.
    pub(crate) const PENDING_BYTES: usize = 1 << 20;

    /// Whether this transaction holds enough pending rows to stop advancing inline.
    pub(crate) fn is_full(&self) -> bool {
        self.pending_bytes >= Tx::PENDING_BYTES
    }

    /// Records where the execution stands, so that BACK and JUMP can return here.
    pub(crate) async fn checkpoint(&mut self, row: &Row, seq: i64, step: Option<&str>) -> Result<()> {
        let model = checkpoint::Model {
            execution_id: row.id.clone(),
            seq,
            step_index: row.current_step_index,
            step: step.map(str::to_owned),
            steps: row.steps.clone(),
            state: row.state.clone(),
            at: self.now,
        };
        self.pending_bytes += estimated_bytes(&model.steps) + estimated_bytes(&model.state);
        self.pending_checkpoints.push(model);
        Ok(())
    }

    pub(crate) async fn insert_execution(&mut self, row: Row) -> Result<()> {
        Ok(store::executions::insert(self.db(), row).await?)
    }

    /// Writes every column of the row back.
    pub(crate) async fn save(&mut self, mut row: Row) -> Result<()> {
        row.updated_at = self.now;
        Ok(store::executions::save(self.db(), row).await?)
    }

    /// Cancels the execution's pending interventions.
    pub(crate) async fn cancel_interventions(&mut self, execution_id: &str) -> Result<u64> {
        self.cancel_pending(execution_id, None).await
    }

    /// Cancels the execution's pending AGENT interventions (the ones that expire).
    pub(crate) async fn cancel_agent_interventions(&mut self, execution_id: &str) -> Result<u64> {
        self.cancel_pending(execution_id, Some(InterventionKind::Agent)).await
    }

    async fn cancel_pending(&mut self, execution_id: &str, kind: Option<InterventionKind>) -> Result<u64> {
        let closing = store::interventions::Closing {
            execution_id,
            kind: kind.map(InterventionKind::as_str),
            from: InterventionStatus::Pending.as_str(),
            to: InterventionStatus::Cancelled.as_str(),
            at: self.now,
        };
        Ok(store::interventions::close(self.db(), closing).await?)
    }

    /// Asks for this execution to be moved on: before the commit, `advance` runs its steps
    /// that need nothing outside the database; a worker takes the rest once the transaction
    /// has committed.
    pub(crate) fn wake(&mut self, id: &str) {
        self.wake.push(id.to_owned());
    }

    pub(crate) fn unwake(&mut self, id: &str) {
        self.wake.retain(|woken| woken != id);
    }

    /// The execution woken last, taken off the list.
    pub(crate) fn next_woken(&mut self) -> Option<String> {
        self.wake.pop()
    }

    /// Queues a finished child's outcome for the parent waiting on it (if it has one);
    /// `advance` delivers it before the transaction commits.
    pub(crate) fn report_to_parent(&mut self, child: &Row, outcome: ChildOutcome) {
        if let Some(report) = ChildReport::of(child, outcome) {
            self.reports.push(report);
        }
    }

    /// The child's report queued last, taken off the list.
    pub(crate) fn next_report(&mut self) -> Option<ChildReport> {
        self.reports.pop()
    }

    /// Writes what the transaction appended (history rows and checkpoints, in few statements)
    /// and, on PostgreSQL, the NOTIFY that other replicas' listeners receive at commit.
    async fn write_pending(&mut self) -> Result<()> {
        if !self.reports.is_empty() {
            // A report left here would leave its parent waiting forever.
            return Err(Error::Internal(
                "a transaction with undelivered child reports must commit through `advance::run`".to_owned(),
            ));
        }
        // Moved into the statements, not cloned: they can be large.
        let events = std::mem::take(&mut self.pending_events);
        store::history::append_events(self.db(), events).await?;
        let checkpoints = std::mem::take(&mut self.pending_checkpoints);
        store::history::write_checkpoints(self.db(), checkpoints).await?;
        self.pending_bytes = 0;
        if self.engine.store.backend() == crate::store::Backend::Postgres {
            // Delivered at commit, to every replica's listener (see `engine::replicas`).
            for payload in crate::engine::replicas::payloads(&self.engine.replica_id, &self.events) {
                store::notify(self.db(), &self.engine.notify_channel(), payload).await?;
            }
        }
        Ok(())
    }

    /// Commits; once the work is durable, publishes the events and hands the woken executions
    /// to the workers.
    async fn commit(mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            db.commit().await?;
        }
        for event in std::mem::take(&mut self.events) {
            self.engine.publish(event);
        }
        for id in std::mem::take(&mut self.wake) {
            self.engine.enqueue(&id);
        }
        Ok(())
    }
}

/// About how many bytes `value` takes as JSON text: its strings and keys, plus a little per
/// value. Walks the value once, as cloning it does.
fn estimated_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|item| estimated_bytes(item) + 1).sum::<usize>(),
        Value::Object(fields) => {
            2 + fields.iter().map(|(key, item)| key.len() + 4 + estimated_bytes(item)).sum::<usize>()
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            db.rollback_later();
        }
    }
}

/// The context jq programs, conditions and prompts see.
pub(crate) fn context(row: &Row) -> Value {
    json!({
        "input": row.input,
        "steps": row.steps,
        "state": row.state,
        "execution": {
            "id": row.id,
            "runtime": row.runtime_id,
            "playbook": row.playbook,
            "environment": row.environment,
        },
    })
}
