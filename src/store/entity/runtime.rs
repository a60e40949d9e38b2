//! A deployed package version. A new deployment is a new version; a row changes only when
//! its version is retired (or brought back by a rollback).

use sea_orm::entity::prelude::*;

use crate::engine::Environment;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "runtimes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    pub environment: Environment,
    pub package_name: String,
    pub package_version: String,
    pub definition: Json,
    pub deployed_by: String,
    pub deployed_at: DateTimeUtc,
    /// Retired versions start no new executions.
    pub retired_at: Option<DateTimeUtc>,
    pub retired_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
