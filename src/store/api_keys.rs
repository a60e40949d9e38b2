//! Statements on API keys. Secrets are never stored, only their hashes.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use crate::store::entity::api_key;

/// Whether any key is not revoked.
pub(crate) async fn any_active(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let active = api_key::Entity::find()
        .select_only()
        .column(api_key::Column::Id)
        .filter(api_key::Column::RevokedAt.is_null())
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(active.is_some())
}

pub(crate) async fn insert(db: &impl ConnectionTrait, row: api_key::Model) -> Result<(), DbErr> {
    api_key::Entity::insert(row.into_active_model()).exec_without_returning(db).await?;
    Ok(())
}

pub(crate) async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<api_key::Model>, DbErr> {
    api_key::Entity::find_by_id(id.to_owned()).one(db).await
}

/// Every key, newest first.
pub(crate) async fn all(db: &impl ConnectionTrait) -> Result<Vec<api_key::Model>, DbErr> {
    api_key::Entity::find().order_by_desc(api_key::Column::CreatedAt).all(db).await
}

/// Marks key `id` revoked at `at`.
pub(crate) async fn revoke(db: &impl ConnectionTrait, id: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(at))
        .filter(api_key::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
