//! The sweeper: every few seconds, claims RUNNING executions that nobody holds (a replica
//! died, or this one restarted) and fails the steps of WAITING executions whose AGENT
//! intervention expired.

use std::sync::Arc;

use chrono::Utc;

use crate::engine::error::{Error, Result};
use crate::engine::lease::Lease;
use crate::engine::progress;
use crate::engine::tx::Tx;
use crate::engine::types::ExecutionStatus;
use crate::engine::{Inner, WorkFailure, advance};
use crate::store;

/// Runs the sweeper until the engine stops.
pub(crate) async fn run(engine: Arc<Inner>) {
    let interval = Lease::of(&engine).sweep_interval();
    loop {
        match sweep(&engine, 256).await {
            Ok(ids) => ids.iter().for_each(|id| engine.enqueue(id)),
            Err(error) => tracing::warn!(%error, "sweeping for runnable executions failed"),
        }
        if let Err(error) = expire(&engine, 256).await {
            tracing::warn!(%error, "expiring unanswered AGENT interventions failed");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Claims runnable executions whose lease is free or expired (a replica died, or this one
/// restarted), `FOR UPDATE SKIP LOCKED` on PostgreSQL so that replicas split the work.
pub(crate) async fn sweep(engine: &Arc<Inner>, limit: u64) -> Result<Vec<String>> {
    let now = Utc::now();
    Tx::run(engine, async |tx| Lease::of(engine).claim_lapsed(tx.db(), now, limit).await).await
}

/// Fails the steps of WAITING executions whose AGENT intervention expired.
pub(crate) async fn expire(engine: &Arc<Inner>, limit: u64) -> Result<()> {
    let now = Utc::now();
    let waiting = ExecutionStatus::Waiting.as_str();
    let ids = store::executions::due_in_status(engine.store.connection(), waiting, now, limit).await?;
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
    // Somebody answered or moved it since the sweeper looked: nothing to expire.
    let now = Utc::now();
    let Some((tx, mut row)) = Tx::lock_if(engine, id, |row| Ok(progress::deadline_passed(row, now))).await? else {
        return Ok(());
    };
    advance::run(tx, async |tx| {
        let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
        let playbook = definition.playbook(&row.playbook)?.clone();
        if progress::expire(tx, &mut row, &playbook).await? {
            tx.save(row).await?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}
