//! Leases: which replica works a RUNNING execution. A worker claims the execution's lease
//! before it runs a step, renews it with every commit while the execution runs, and releases it
//! when it stops; a lease nobody renewed within `--lease-seconds` has lapsed, and the sweeper
//! claims the execution for this replica. All lease arithmetic and every lease condition is
//! here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::engine::Inner;
use crate::engine::error::Result;
use crate::engine::tx::Row;
use crate::engine::types::ExecutionStatus;
use crate::store::entity::execution;

/// This replica's claim on executions: who holds it, and how long it lasts unrenewed.
pub(crate) struct Lease<'a> {
    owner: &'a str,
    duration: Duration,
}

impl Lease<'_> {
    pub(crate) fn of(engine: &Inner) -> Lease<'_> {
        Lease { owner: &engine.replica_id, duration: engine.config.lease }
    }

    /// When a lease taken or renewed at `now` lapses.
    pub(crate) fn until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.duration).unwrap_or_default()
    }

    /// Renews the lease on a row about to be saved, while its execution runs (a row that
    /// left RUNNING was released by [`release_row`]).
    pub(crate) fn renew(&self, row: &mut Row, now: DateTime<Utc>) {
        if row.status == ExecutionStatus::Running.as_str() {
            row.lease_owner = Some(self.owner.to_owned());
            row.lease_until = Some(self.until(now));
        }
    }

    /// How often the sweeper looks for executions whose lease lapsed: a quarter of a lease,
    /// between 200 ms and 5 s.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Takes the lease of RUNNING execution `id`, unless another replica holds a live one.
    pub(crate) async fn claim(&self, db: &impl ConnectionTrait, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let result = execution::Entity::update_many()
            .col_expr(execution::Column::LeaseOwner, Expr::value(self.owner))
            .col_expr(execution::Column::LeaseUntil, Expr::value(self.until(now)))
            .filter(execution::Column::Id.eq(id))
            .filter(execution::Column::Status.eq(ExecutionStatus::Running.as_str()))
            .filter(
                Condition::any()
                    .add(execution::Column::LeaseOwner.is_null())
                    .add(execution::Column::LeaseOwner.eq(self.owner))
                    .add(execution::Column::LeaseUntil.lt(now)),
            )
            .exec(db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Gives up the lease of execution `id`, if this replica still holds it.
    pub(crate) async fn release(&self, db: &impl ConnectionTrait, id: &str) -> Result<()> {
        execution::Entity::update_many()
            .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(execution::Column::Id.eq(id))
            .filter(execution::Column::LeaseOwner.eq(self.owner))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Claims up to `limit` runnable executions (RUNNING, due) whose lease is free or lapsed,
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL so that replicas split the work.
    pub(crate) async fn claim_lapsed(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<String>> {
        let ids = execution::Entity::find()
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
            .all(db)
            .await?;
        if !ids.is_empty() {
            execution::Entity::update_many()
                .col_expr(execution::Column::LeaseOwner, Expr::value(self.owner))
                .col_expr(execution::Column::LeaseUntil, Expr::value(self.until(now)))
                .filter(execution::Column::Id.is_in(ids.clone()))
                .exec(db)
                .await?;
        }
        Ok(ids)
    }
}

/// An execution that leaves RUNNING is held by nobody: no worker runs its steps.
pub(crate) fn release_row(row: &mut Row) {
    row.lease_owner = None;
    row.lease_until = None;
}

/// Voids every lease (SQLite at start: one process owns the file, so leases an earlier run
/// left are nobody's).
pub(crate) async fn void_all(db: &impl ConnectionTrait) -> Result<()> {
    execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(execution::Column::LeaseOwner.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}
