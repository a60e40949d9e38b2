//! Statements on execution rows, named for what they do. The engine decides; these only
//! read and write.

use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
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
