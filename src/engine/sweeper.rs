//! The sweeper: every few seconds, claims RUNNING executions that nobody holds (a replica
//! died, or this one restarted) and fails the steps of WAITING executions whose AGENT
//! intervention expired. Also the claim and release of one execution's lease by a worker.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::engine::error::{Error, Result};
use crate::engine::progress;
use crate::engine::tx::Tx;
use crate::engine::types::ExecutionStatus;
use crate::engine::{Inner, WorkFailure, advance};
use crate::store::entity::execution;

/// Runs the sweeper until the engine stops.
pub(crate) async fn run(engine: Arc<Inner>) {
    let interval = sweep_interval(engine.config.lease);
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

/// Takes the execution's lease, unless another replica holds a live one.
pub(crate) async fn claim(engine: &Arc<Inner>, id: &str) -> Result<bool> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(engine.config.lease).unwrap_or_default();
    Tx::run(engine, async |tx| {
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
            .await?;
        Ok(result.rows_affected == 1)
    })
    .await
}

pub(crate) async fn release(engine: &Arc<Inner>, id: &str) -> Result<()> {
    Tx::run(engine, async |tx| {
        execution::Entity::update_many()
            .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .filter(execution::Column::Id.eq(id))
            .filter(execution::Column::LeaseOwner.eq(engine.replica_id.clone()))
            .exec(tx.db())
            .await?;
        Ok(())
    })
    .await
}

/// Claims runnable executions whose lease is free or expired (a replica died, or this one
/// restarted), `FOR UPDATE SKIP LOCKED` on PostgreSQL so that replicas split the work.
pub(crate) async fn sweep(engine: &Arc<Inner>, limit: u64) -> Result<Vec<String>> {
    let now = Utc::now();
    Tx::run(engine, async |tx| {
        let rows = execution::Entity::find()
            .select_only()
            .column(execution::Column::Id)
            .filter(execution::Column::Status.eq(ExecutionStatus::Running.as_str()))
            .filter(
                Condition::any()
                    .add(execution::Column::LeaseUntil.is_null())
                    .add(execution::Column::LeaseUntil.lt(now)),
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
        Ok(rows)
    })
    .await
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
