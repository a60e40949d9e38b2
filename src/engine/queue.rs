//! The work queue: executions handed to this process's workers (each held by one worker at
//! a time), retries after a backoff, poison handling, and publishing committed events.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;

use crate::engine::tx::{Row, Tx};
use crate::engine::types::{Event, ExecutionStatus, Principal};
use crate::engine::{Error, Inner, Result, advance, payloads, progress, worker};

/// How many times working one execution may fail inside the engine (not in its steps) before
/// it is failed as poison rather than retried.
pub const POISON_ATTEMPTS: u32 = 3;

/// Why working an execution failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkFailure {
    #[error("{0}")]
    Engine(String),
    #[error("database error: {0}")]
    Store(String),
    #[error("processing it panicked: {0}")]
    Panic(String),
}

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Inner {
    /// The NOTIFY channel of this database schema: replicas of one deployment share it.
    pub(crate) fn notify_channel(&self) -> String {
        format!("orgata_events_{}", self.config.database_schema.as_deref().unwrap_or("public"))
    }

    pub(crate) fn publish(&self, event: Event) {
        // No receiver is fine: nobody is listening.
        let event = Arc::new(event);
        self.watchers.publish(&event);
        let _ = self.events.send(event);
    }

    /// Hands an execution to the workers; if a worker of this process already holds it, that
    /// worker looks again when it is done.
    pub(crate) fn enqueue(&self, id: &str) {
        let Ok(mut active) = self.active.lock() else { return };
        match active.get_mut(id) {
            Some(again) => *again = true,
            None => {
                active.insert(id.to_owned(), false);
                let _ = self.queue.send(id.to_owned());
            }
        }
    }

    /// Enqueues an execution once `at` has come (a retry's backoff).
    pub(crate) fn enqueue_at(self: &Arc<Self>, id: &str, at: DateTime<Utc>) {
        let engine = Arc::downgrade(self);
        let id = id.to_owned();
        let delay = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(engine) = engine.upgrade() {
                engine.enqueue(&id);
            }
        });
    }

    pub(crate) async fn work(self: &Arc<Self>, id: &str) {
        loop {
            // A panic while working one execution must not take a worker (or the process) with
            // it: it is caught here and the execution failed as poison.
            let driven = std::panic::AssertUnwindSafe(worker::drive(self, id)).catch_unwind().await;
            let failure = match driven {
                Ok(Ok(())) => None,
                Ok(Err(Error::Store(error))) => Some(WorkFailure::Store(error.to_string())),
                Ok(Err(error)) => Some(WorkFailure::Engine(error.to_string())),
                Err(panic) => Some(WorkFailure::Panic(panic_message(&panic))),
            };
            if let Some(failure) = failure {
                self.poisoned(id, failure).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Ok(mut active) = self.active.lock() else { return };
                active.remove(id);
                drop(active);
                // The sweeper picks it up again once its lease lapses.
                return;
            }
            if let Ok(mut failures) = self.failures.lock() {
                failures.remove(id);
            }
            let Ok(mut active) = self.active.lock() else { return };
            match active.get_mut(id) {
                Some(again) if *again => *again = false,
                _ => {
                    active.remove(id);
                    return;
                }
            }
        }
    }

    /// Working execution `id` failed inside the engine. Stored data must never make the
    /// server loop or crash (see ARCHITECTURE.md): after [`POISON_ATTEMPTS`] failures in a row
    /// (at once for a panic; twice as many for database errors, so that a brief outage does
    /// not fail work that would have gone through) the execution is failed with the reason,
    /// and logged.
    pub(crate) async fn poisoned(self: &Arc<Self>, id: &str, failure: WorkFailure) {
        let failures = {
            let Ok(mut failures) = self.failures.lock() else { return };
            let count = failures.entry(id.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let allowed = match failure {
            WorkFailure::Panic(_) => 1,
            WorkFailure::Engine(_) => POISON_ATTEMPTS,
            WorkFailure::Store(_) => 2 * POISON_ATTEMPTS,
        };
        let error = failure.to_string();
        if failures < allowed {
            tracing::error!(execution_id = id, %error, attempt = failures, "working an execution failed; it will be retried");
            return;
        }
        tracing::error!(
            execution_id = id, %error, attempts = failures,
            "working an execution keeps failing; failing it as poison instead of retrying it forever"
        );
        let reason = format!("the engine could not process this execution ({failures} attempt(s)): {error}");
        match fail_poisoned(self, id, &reason).await {
            Ok(()) => {
                if let Ok(mut failures) = self.failures.lock() {
                    failures.remove(id);
                }
            }
            Err(failed) => tracing::error!(execution_id = id, error = %failed, "failing a poison execution failed"),
        }
    }
}

/// Fails a poison execution (see `Inner::poisoned`): through the usual path, so that a parent
/// waiting on it sees its step fail; if even that fails, the execution alone is marked
/// FAILED with its reason, so that nothing picks it up again.
pub(crate) async fn fail_poisoned(engine: &Arc<Inner>, id: &str, reason: &str) -> Result<()> {
    let unfinished = |row: &Row| Ok(!row.status.is_finished());
    let Some((tx, mut row)) = Tx::lock_if(engine, id, unfinished).await? else { return Ok(()) };
    let failed = advance::run(tx, async |tx| {
        row.epoch += 1;
        progress::fail_execution(tx, &mut row, reason, Principal::SYSTEM).await?;
        tx.save(row).await
    })
    .await;
    let Err(error) = failed else { return Ok(()) };
    tracing::error!(execution_id = id, %error, "failing a poison execution with its parent failed; failing it alone");
    let (tx, mut row) = Tx::lock(engine, id).await?;
    advance::run(tx, async |tx| {
        row.epoch += 1;
        row.error = Some(reason.to_owned());
        progress::set_status(&mut row, ExecutionStatus::Failed);
        tx.cancel_interventions(&row.id).await?;
        tx.record(&mut row, Principal::SYSTEM, None, payloads::ExecutionFailed { error: reason.to_string() }).await?;
        tx.save(row).await
    })
    .await?;
    Ok(())
}
