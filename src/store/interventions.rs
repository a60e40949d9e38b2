//! Statements on intervention rows. Statuses and kinds come from the engine as the text it
//! stores; nothing here knows what they mean.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};

use crate::store::entity::intervention;

/// The SQL form of the engine's answer rule (`engine::access::AnswerRule`): rows in an
/// environment the principal administers, for no role, or for a role it holds.
pub(crate) fn answerable_by(administered: &[&str], roles: &[String]) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(intervention::Column::Environment.is_in(administered.iter().copied()))
        .add(intervention::Column::Role.is_null())
        .add(intervention::Column::Role.is_in(roles.iter().cloned()))
}

pub(crate) async fn insert(db: &impl ConnectionTrait, row: intervention::Model) -> Result<(), DbErr> {
    intervention::Entity::insert(row.into_active_model()).exec_without_returning(db).await?;
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
