//! Statements on intervention rows. Statuses and kinds come from the engine as the text it
//! stores; nothing here knows what they mean.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::store::entity::intervention;

/// The SQL form of the engine's answer rule (`engine::access::AnswerRule`): rows in an
/// environment the principal administers, for no role, or for a role it holds.
pub(crate) fn answerable_by(administered: &[&str], roles: &[String]) -> Condition {
    Condition::any()
        .add(intervention::Column::Environment.is_in(administered.iter().copied()))
        .add(intervention::Column::Role.is_null())
        .add(intervention::Column::Role.is_in(roles.iter().cloned()))
}

pub(crate) async fn insert(db: &impl ConnectionTrait, row: intervention::Model) -> Result<(), DbErr> {
    intervention::Entity::insert(row.into_active_model()).exec_without_returning(db).await?;
    Ok(())
}

/// Writes every column of the row back.
pub(crate) async fn save(db: &impl ConnectionTrait, row: intervention::Model) -> Result<(), DbErr> {
    row.into_active_model().reset_all().update(db).await?;
    Ok(())
}

pub(crate) async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<intervention::Model>, DbErr> {
    intervention::Entity::find_by_id(id.to_owned()).one(db).await
}

/// Which interventions of one execution [`close`] closes.
pub(crate) struct Closing<'a> {
    pub execution_id: &'a str,
    /// Only those of this kind, if given.
    pub kind: Option<&'a str>,
    /// The status they have now, and the one they get.
    pub from: &'a str,
    pub to: &'a str,
    pub at: DateTime<Utc>,
}

/// Moves an execution's interventions from one status to another, recording when; returns
/// how many moved.
pub(crate) async fn close(db: &impl ConnectionTrait, closing: Closing<'_>) -> Result<u64, DbErr> {
    let mut update = intervention::Entity::update_many()
        .col_expr(intervention::Column::Status, Expr::value(closing.to))
        .col_expr(intervention::Column::ResolvedAt, Expr::value(closing.at))
        .filter(intervention::Column::ExecutionId.eq(closing.execution_id))
        .filter(intervention::Column::Status.eq(closing.from));
    if let Some(kind) = closing.kind {
        update = update.filter(intervention::Column::Kind.eq(kind));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Which interventions [`list`] returns: oldest first, in one of `environments`, narrowed by
/// the other fields when given.
pub(crate) struct Listing<'a> {
    pub environments: Vec<&'a str>,
    pub runtime_id: Option<&'a str>,
    pub execution_id: Option<String>,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Only those a principal may answer: the environments it administers and its roles
    /// (see [`answerable_by`]).
    pub answerable_by: Option<(Vec<&'a str>, &'a [String])>,
    pub limit: u64,
}

pub(crate) async fn list(db: &impl ConnectionTrait, listing: Listing<'_>) -> Result<Vec<intervention::Model>, DbErr> {
    let mut condition = Condition::all().add(intervention::Column::Environment.is_in(listing.environments));
    if let Some(runtime_id) = listing.runtime_id {
        condition = condition.add(intervention::Column::RuntimeId.eq(runtime_id));
    }
    if let Some(execution_id) = listing.execution_id {
        condition = condition.add(intervention::Column::ExecutionId.eq(execution_id));
    }
    if let Some(status) = listing.status {
        condition = condition.add(intervention::Column::Status.eq(status));
    }
    if let Some(kind) = listing.kind {
        condition = condition.add(intervention::Column::Kind.eq(kind));
    }
    if let Some((administered, roles)) = &listing.answerable_by {
        condition = condition.add(answerable_by(administered, roles));
    }
    intervention::Entity::find()
        .filter(condition)
        .order_by_asc(intervention::Column::Id)
        .limit(listing.limit)
        .all(db)
        .await
}

/// Every intervention of each of `executions` in one of `environments`, oldest first.
pub(crate) async fn of_executions(
    db: &impl ConnectionTrait,
    executions: Vec<String>,
    environments: Vec<&str>,
) -> Result<Vec<intervention::Model>, DbErr> {
    intervention::Entity::find()
        .filter(intervention::Column::ExecutionId.is_in(executions))
        .filter(intervention::Column::Environment.is_in(environments))
        .order_by_asc(intervention::Column::Id)
        .all(db)
        .await
}
