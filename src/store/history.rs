//! Statements on history (events) and checkpoints, which are only ever inserted.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use crate::store::entity::{checkpoint, event};

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values; an event has nine).
const INSERT_CHUNK: usize = 500;

/// Appends history rows, in multi-row inserts. The rows are moved into the statements chunk
/// by chunk, not cloned: they can be large.
pub(crate) async fn append_events(db: &impl ConnectionTrait, mut events: Vec<event::Model>) -> Result<(), DbErr> {
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(INSERT_CHUNK));
        let chunk = std::mem::replace(&mut events, rest);
        event::Entity::insert_many(chunk.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Writes checkpoints, in multi-row inserts (see [`append_events`]).
pub(crate) async fn write_checkpoints(
    db: &impl ConnectionTrait,
    mut checkpoints: Vec<checkpoint::Model>,
) -> Result<(), DbErr> {
    while !checkpoints.is_empty() {
        let rest = checkpoints.split_off(checkpoints.len().min(INSERT_CHUNK));
        let chunk = std::mem::replace(&mut checkpoints, rest);
        checkpoint::Entity::insert_many(chunk.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The latest checkpoint of `execution_id` recorded before step `step_index` (BACK's target).
pub(crate) async fn latest_checkpoint_before(
    db: &impl ConnectionTrait,
    execution_id: &str,
    step_index: i32,
) -> Result<Option<checkpoint::Model>, DbErr> {
    checkpoint::Entity::find()
        .filter(checkpoint::Column::ExecutionId.eq(execution_id))
        .filter(checkpoint::Column::StepIndex.lt(step_index))
        .order_by_desc(checkpoint::Column::Seq)
        .one(db)
        .await
}

/// The checkpoint at or nearest before step `step_index`, the latest of those (JUMP's
/// context).
pub(crate) async fn nearest_checkpoint_at_or_before(
    db: &impl ConnectionTrait,
    execution_id: &str,
    step_index: i32,
) -> Result<Option<checkpoint::Model>, DbErr> {
    checkpoint::Entity::find()
        .filter(checkpoint::Column::ExecutionId.eq(execution_id))
        .filter(checkpoint::Column::StepIndex.lte(step_index))
        .order_by_desc(checkpoint::Column::StepIndex)
        .order_by_desc(checkpoint::Column::Seq)
        .one(db)
        .await
}
