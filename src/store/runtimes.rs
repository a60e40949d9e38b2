//! Statements on runtime versions: inserted on deploy, marked retired (or brought back by a
//! rollback) and read.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
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

/// The version of runtime `id` new executions use: its newest version that is not retired, or
/// (all retired) its newest version.
pub(crate) async fn current(db: &impl ConnectionTrait, id: &str) -> Result<Option<runtime::Model>, DbErr> {
    let active = runtime::Entity::find()
        .filter(runtime::Column::Id.eq(id))
        .filter(runtime::Column::RetiredAt.is_null())
        .order_by_desc(runtime::Column::Version)
        .one(db)
        .await?;
    match active {
        Some(active) => Ok(Some(active)),
        None => find(db, id, None).await,
    }
}

/// Which versions of a runtime [`retire`] marks.
pub(crate) enum Versions {
    All,
    One(i32),
    /// Every version after this one.
    After(i32),
}

/// Marks the chosen versions of runtime `id` that are not retired yet as retired at `at` by
/// `by`; how many it marked.
pub(crate) async fn retire(
    db: &impl ConnectionTrait,
    id: &str,
    versions: Versions,
    at: DateTime<Utc>,
    by: &str,
) -> Result<u64, DbErr> {
    let mut update = runtime::Entity::update_many()
        .col_expr(runtime::Column::RetiredAt, Expr::value(at))
        .col_expr(runtime::Column::RetiredBy, Expr::value(by))
        .filter(runtime::Column::Id.eq(id))
        .filter(runtime::Column::RetiredAt.is_null());
    update = match versions {
        Versions::All => update,
        Versions::One(version) => update.filter(runtime::Column::Version.eq(version)),
        Versions::After(version) => update.filter(runtime::Column::Version.gt(version)),
    };
    Ok(update.exec(db).await?.rows_affected)
}

/// Brings version `version` of runtime `id` back into use (no longer retired).
pub(crate) async fn reinstate(db: &impl ConnectionTrait, id: &str, version: i32) -> Result<(), DbErr> {
    runtime::Entity::update_many()
        .col_expr(runtime::Column::RetiredAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(runtime::Column::RetiredBy, Expr::value(Option::<String>::None))
        .filter(runtime::Column::Id.eq(id))
        .filter(runtime::Column::Version.eq(version))
        .exec(db)
        .await?;
    Ok(())
}
