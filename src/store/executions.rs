//! Statements on execution rows, named for what they do. The engine decides; these only
//! read and write.

use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::store::entity::execution;

/// The execution row, locked until the transaction ends (`FOR UPDATE` on PostgreSQL; on
/// SQLite the IMMEDIATE transaction already holds the write lock).
pub(crate) async fn lock_for_update(db: &impl ConnectionTrait, id: &str) -> Result<Option<execution::Model>, DbErr> {
    execution::Entity::find_by_id(id.to_owned()).lock(LockType::Update).one(db).await
}

/// The execution row, unlocked.
pub(crate) async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<execution::Model>, DbErr> {
    execution::Entity::find_by_id(id.to_owned()).one(db).await
}

pub(crate) async fn insert(db: &impl ConnectionTrait, row: execution::Model) -> Result<(), DbErr> {
    execution::Entity::insert(row.into_active_model()).exec_without_returning(db).await?;
    Ok(())
}

/// Writes every column of the row back.
pub(crate) async fn save(db: &impl ConnectionTrait, row: execution::Model) -> Result<(), DbErr> {
    row.into_active_model().reset_all().update(db).await?;
    Ok(())
}

/// The parent of execution `id`, if it has one (`None` also if the row is gone).
pub(crate) async fn parent_of(db: &impl ConnectionTrait, id: &str) -> Result<Option<String>, DbErr> {
    let parent = execution::Entity::find_by_id(id.to_owned())
        .select_only()
        .column(execution::Column::ParentId)
        .into_tuple::<Option<String>>()
        .one(db)
        .await?;
    Ok(parent.flatten())
}

/// Up to `limit` executions in `status` whose `wake_at` has come by `now` (for a WAITING
/// execution, its AGENT deadline).
pub(crate) async fn due_in_status(
    db: &impl ConnectionTrait,
    status: &str,
    now: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::Status.eq(status))
        .filter(execution::Column::WakeAt.lte(now))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// The ids of `parent_id`'s children whose status is one of `statuses`.
pub(crate) async fn children_in(
    db: &impl ConnectionTrait,
    parent_id: &str,
    statuses: &[&str],
) -> Result<Vec<String>, DbErr> {
    execution::Entity::find()
        .select_only()
        .column(execution::Column::Id)
        .filter(execution::Column::ParentId.eq(parent_id))
        .filter(execution::Column::Status.is_in(statuses.iter().copied()))
        .into_tuple()
        .all(db)
        .await
}

/// Which executions [`list`] returns: newest first, in one of `environments`, narrowed by
/// the other fields when given.
pub(crate) struct Listing<'a> {
    pub environments: Vec<&'a str>,
    pub runtime_id: Option<&'a str>,
    pub playbook: Option<&'a str>,
    pub status: Option<&'a str>,
    pub parent_id: Option<String>,
    /// Only ids below this one (the last of the previous page).
    pub before_id: Option<String>,
    pub limit: u64,
}

pub(crate) async fn list(db: &impl ConnectionTrait, listing: Listing<'_>) -> Result<Vec<execution::Model>, DbErr> {
    let mut condition = Condition::all().add(execution::Column::Environment.is_in(listing.environments));
    if let Some(runtime_id) = listing.runtime_id {
        condition = condition.add(execution::Column::RuntimeId.eq(runtime_id));
    }
    if let Some(playbook) = listing.playbook {
        condition = condition.add(execution::Column::Playbook.eq(playbook));
    }
    if let Some(status) = listing.status {
        condition = condition.add(execution::Column::Status.eq(status));
    }
    if let Some(parent) = listing.parent_id {
        condition = condition.add(execution::Column::ParentId.eq(parent));
    }
    if let Some(before) = listing.before_id {
        condition = condition.add(execution::Column::Id.lt(before));
    }
    execution::Entity::find().filter(condition).order_by_desc(execution::Column::Id).limit(listing.limit).all(db).await
}

/// The execution a client started on `runtime_id` with idempotency key `key`.
pub(crate) async fn by_idempotency_key(
    db: &impl ConnectionTrait,
    runtime_id: &str,
    key: &str,
) -> Result<Option<execution::Model>, DbErr> {
    execution::Entity::find()
        .filter(execution::Column::RuntimeId.eq(runtime_id))
        .filter(execution::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// How many executions there are in each status.
pub(crate) async fn count_by_status(db: &impl ConnectionTrait) -> Result<Vec<(String, i64)>, DbErr> {
    execution::Entity::find()
        .select_only()
        .column(execution::Column::Status)
        .column_as(execution::Column::Id.count(), "count")
        .group_by(execution::Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// The environment of execution `id` (`None` if there is no such execution).
pub(crate) async fn environment_of(db: &impl ConnectionTrait, id: &str) -> Result<Option<String>, DbErr> {
    execution::Entity::find_by_id(id.to_owned())
        .select_only()
        .column(execution::Column::Environment)
        .into_tuple::<String>()
        .one(db)
        .await
}
