//! Group commit for SQLite: concurrent write transactions share one database transaction, and
//! so one `fsync` of the write-ahead log.
//!
//! SQLite runs one write transaction at a time anyway, so nothing is lost by serialising the
//! writers in the process: each logical transaction takes its turn inside the open database
//! transaction as a `SAVEPOINT`, which it releases (keeps) or rolls back (discards) on its own.
//! A turn that ends with nobody queued behind it, or that fills the batch, commits the database
//! transaction for the whole batch; every member learns the outcome of that one commit before
//! its caller is told the work is durable. A member's work is therefore acknowledged only once
//! it is on disk, exactly as with one transaction each.
//!
//! Ending a batch never depends on a request staying alive: the commit runs on a task of its
//! own, and a member whose batch nobody ended in time ends it itself (see [`Turn::commit`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// The most logical transactions one database transaction carries.
const MAX_BATCH: usize = 64;
/// How long a batch may stay open while turns keep coming.
const MAX_BATCH_AGE: Duration = Duration::from_millis(4);
/// How long a member waits for somebody else to end its batch before ending it itself.
const ORPHAN_AFTER: Duration = Duration::from_millis(20);

type Outcome = Result<(), DbErr>;

#[derive(Default)]
struct Batch {
    open: Option<DatabaseTransaction>,
    opened_at: Option<Instant>,
    members: Vec<oneshot::Sender<Outcome>>,
}

/// The writers of one SQLite database.
#[derive(Clone, Default)]
pub struct Group {
    batch: Arc<Mutex<Batch>>,
    /// Turns waiting for the batch lock: while any wait, a finishing turn leaves the batch open.
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Group").field("queued", &self.queued.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// One logical transaction's hold on the batch. Its statements run on the savepoint returned
/// with it; it ends with [`Turn::commit`] or [`Turn::rollback`].
pub struct Turn {
    group: Group,
    batch: OwnedMutexGuard<Batch>,
}

/// Counts a turn as queued until it holds the lock, even if the waiting future is dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Group {
    /// Waits for this writer's turn and opens its savepoint, beginning the database
    /// transaction (`BEGIN IMMEDIATE`) if no batch is open.
    pub async fn begin(&self, db: &DatabaseConnection) -> Result<(Turn, DatabaseTransaction), DbErr> {
        let mut batch = {
            self.queued.fetch_add(1, Ordering::AcqRel);
            let _queued = Queued(&self.queued);
            self.batch.clone().lock_owned().await
        };
        if batch.open.is_none() {
            batch.open = Some(super::begin_immediate(db).await?);
            batch.opened_at = Some(Instant::now());
        }
        let savepoint = match &batch.open {
            Some(open) => open.begin().await?,
            None => return Err(DbErr::Custom("the group's transaction is not open".to_owned())),
        };
        Ok((Turn { group: self.clone(), batch }, savepoint))
    }
}

impl Turn {
    /// Keeps this turn's work and returns once the batch that holds it is durable (or failed:
    /// then none of the batch was written). Runs on a task of its own, so a caller that gives
    /// up waiting cannot leave the batch half-ended.
    pub async fn commit(self, savepoint: DatabaseTransaction) -> Outcome {
        let (sender, mut receiver) = oneshot::channel();
        let group = self.group.clone();
        tokio::spawn(async move {
            let Turn { group, mut batch } = self;
            match savepoint.commit().await {
                Ok(()) => {
                    batch.members.push(sender);
                    if should_end(&group, &batch) {
                        end(&mut batch).await;
                    }
                }
                Err(error) => {
                    // The savepoint's state is unknown: end the batch without this member's
                    // work rather than risk keeping half of it.
                    let _ = sender.send(Err(error));
                    abort(&mut batch).await;
                }
            }
        });
        loop {
            match tokio::time::timeout(ORPHAN_AFTER, &mut receiver).await {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(_)) => return Err(DbErr::Custom("the group commit ended without an outcome".to_owned())),
                Err(_) => {
                    // Whoever queued behind this turn went away without ending the batch.
                    let mut batch = group.batch.clone().lock_owned().await;
                    match receiver.try_recv() {
                        Ok(outcome) => return outcome,
                        Err(oneshot::error::TryRecvError::Empty) => {
                            tokio::spawn(async move { end(&mut batch).await });
                        }
                        Err(oneshot::error::TryRecvError::Closed) => {
                            return Err(DbErr::Custom("the group commit ended without an outcome".to_owned()));
                        }
                    }
                }
            }
        }
    }

    /// Discards this turn's work; the rest of the batch is unaffected. Runs on a task of its
    /// own, like `commit`; the returned handle may be awaited or dropped.
    pub fn rollback(self, savepoint: DatabaseTransaction) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.discard(savepoint))
    }

    async fn discard(self, savepoint: DatabaseTransaction) {
        let Turn { group, mut batch } = self;
        if let Err(error) = savepoint.rollback().await {
            tracing::warn!(%error, "rolling back to a savepoint failed; ending the batch without it");
            abort(&mut batch).await;
            return;
        }
        if group.queued.load(Ordering::Acquire) == 0 {
            if batch.members.is_empty() {
                if let Some(open) = batch.open.take()
                    && let Err(error) = open.rollback().await
                {
                    tracing::warn!(%error, "closing an empty batch failed");
                }
            } else {
                end(&mut batch).await;
            }
        }
    }
}

fn should_end(group: &Group, batch: &Batch) -> bool {
    group.queued.load(Ordering::Acquire) == 0
        || batch.members.len() >= MAX_BATCH
        || batch.opened_at.is_some_and(|opened| opened.elapsed() >= MAX_BATCH_AGE)
}

/// Commits the batch and tells every member.
async fn end(batch: &mut Batch) {
    let outcome = match batch.open.take() {
        Some(open) => open.commit().await,
        None => Err(DbErr::Custom("the group's transaction was already closed".to_owned())),
    };
    batch.opened_at = None;
    for member in batch.members.drain(..) {
        let _ = member.send(outcome.clone());
    }
}

/// Rolls the batch back and tells every member it failed.
async fn abort(batch: &mut Batch) {
    if let Some(open) = batch.open.take()
        && let Err(error) = open.rollback().await
    {
        tracing::warn!(%error, "rolling back a batch failed");
    }
    batch.opened_at = None;
    for member in batch.members.drain(..) {
        let _ = member.send(Err(DbErr::Custom("the batch holding this transaction was rolled back".to_owned())));
    }
}
