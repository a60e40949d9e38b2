//! Statements on history (events) and checkpoints, which are only ever inserted.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::store::entity::{checkpoint, event};

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values; an event has nine).
const INSERT_CHUNK: usize = 500;

/// Appends history rows, in multi-row inserts (see [`insert_chunked`]).
pub(crate) async fn append_events(db: &impl ConnectionTrait, events: Vec<event::Model>) -> Result<(), DbErr> {
    insert_chunked(db, events).await
}

/// Writes checkpoints, in multi-row inserts (see [`insert_chunked`]).
pub(crate) async fn write_checkpoints(
    db: &impl ConnectionTrait,
    checkpoints: Vec<checkpoint::Model>,
) -> Result<(), DbErr> {
    insert_chunked(db, checkpoints).await
}

/// Inserts `rows` in multi-row statements of [`INSERT_CHUNK`] rows. The rows are moved into the
/// statements chunk by chunk, not cloned: they can be large.
async fn insert_chunked<M, A>(db: &impl ConnectionTrait, mut rows: Vec<M>) -> Result<(), DbErr>
where
    M: IntoActiveModel<A> + Send,
    A: ActiveModelTrait + Send,
{
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
        let chunk = std::mem::replace(&mut rows, rest);
        <A::Entity as EntityTrait>::insert_many(chunk.into_iter().map(IntoActiveModel::into_active_model))
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

/// Every checkpoint of `execution_id`, in the order they were written.
pub(crate) async fn checkpoints(
    db: &impl ConnectionTrait,
    execution_id: &str,
) -> Result<Vec<checkpoint::Model>, DbErr> {
    checkpoint::Entity::find()
        .filter(checkpoint::Column::ExecutionId.eq(execution_id))
        .order_by_asc(checkpoint::Column::Seq)
        .all(db)
        .await
}

/// Up to `limit` events of `execution_id` with `after < seq <= until`, in order.
pub(crate) async fn events_between(
    db: &impl ConnectionTrait,
    execution_id: &str,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> Result<Vec<event::Model>, DbErr> {
    let mut query =
        event::Entity::find().filter(event::Column::ExecutionId.eq(execution_id)).filter(event::Column::Seq.gt(after));
    if let Some(until) = until {
        query = query.filter(event::Column::Seq.lte(until));
    }
    query.order_by_asc(event::Column::Seq).limit(limit).all(db).await
}
