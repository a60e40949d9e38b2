//! Statements on runtime versions, which are only ever inserted.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use crate::store::entity::runtime;

pub(crate) async fn insert(db: &impl ConnectionTrait, row: runtime::Model) -> Result<(), DbErr> {
    runtime::Entity::insert(row.into_active_model()).exec_without_returning(db).await?;
    Ok(())
}

/// Runtime `id` at `version`, or its latest version.
pub(crate) async fn find(
    db: &impl ConnectionTrait,
    id: &str,
    version: Option<i32>,
) -> Result<Option<runtime::Model>, DbErr> {
    let mut query = runtime::Entity::find().filter(runtime::Column::Id.eq(id));
    if let Some(version) = version {
        query = query.filter(runtime::Column::Version.eq(version));
    }
    query.order_by_desc(runtime::Column::Version).one(db).await
}

/// Every version of runtime `id`, newest first.
pub(crate) async fn versions(db: &impl ConnectionTrait, id: &str) -> Result<Vec<runtime::Model>, DbErr> {
    runtime::Entity::find().filter(runtime::Column::Id.eq(id)).order_by_desc(runtime::Column::Version).all(db).await
}

/// Every version of every runtime in one of `environments`, by id, each newest first.
pub(crate) async fn all_in(db: &impl ConnectionTrait, environments: Vec<&str>) -> Result<Vec<runtime::Model>, DbErr> {
    runtime::Entity::find()
        .filter(runtime::Column::Environment.is_in(environments))
        .order_by_asc(runtime::Column::Id)
        .order_by_desc(runtime::Column::Version)
        .all(db)
        .await
}
