//! Statements on the lease columns of execution rows. What a lease means, how long it lasts
//! and when it lapses is the engine's (`engine::lease`); these only read and write.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::store::entity::execution;

/// Who takes a lease, until when, and the status an execution must have to be leased.
pub(crate) struct Taking<'a> {
    pub owner: &'a str,
    pub until: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub status: &'a str,
}

/// Takes the lease of execution `id` if it is in `taking.status` and its lease is free, held
/// by the same owner, or lapsed; whether it was taken.
pub(crate) async fn claim(db: &impl ConnectionTrait, id: &str, taking: Taking<'_>) -> Result<bool, DbErr> {
    let result = execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(taking.owner))
        .col_expr(execution::Column::LeaseUntil, Expr::value(taking.until))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::Status.eq(taking.status))
        .filter(
            Condition::any()
                .add(execution::Column::LeaseOwner.is_null())
                .add(execution::Column::LeaseOwner.eq(taking.owner))
                .add(execution::Column::LeaseUntil.lt(taking.now)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Clears the lease of execution `id` if `owner` holds it.
pub(crate) async fn release(db: &impl ConnectionTrait, id: &str, owner: &str) -> Result<(), DbErr> {
    execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(execution::Column::Id.eq(id))
        .filter(execution::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// Takes the leases of up to `limit` executions in `taking.status`, due by `taking.now`,
/// whose lease is free or lapsed (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so that replicas
/// split them); their ids.
pub(crate) async fn claim_lapsed(
    db: &impl ConnectionTrait,
    taking: Taking<'_>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let now = taking.now;
    let ids = execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::Status.eq(taking.status))
        .filter(
            Condition::any().add(execution::Column::LeaseUntil.is_null()).add(execution::Column::LeaseUntil.lt(now)),
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
            .col_expr(execution::Column::LeaseOwner, Expr::value(taking.owner))
            .col_expr(execution::Column::LeaseUntil, Expr::value(taking.until))
            .filter(execution::Column::Id.is_in(ids.clone()))
            .exec(db)
            .await?;
    }
    Ok(ids)
}

/// Clears every lease.
pub(crate) async fn void_all(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    execution::Entity::update_many()
        .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(execution::Column::LeaseOwner.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}
