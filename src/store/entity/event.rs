//! The append-only history: rows are inserted, never updated or deleted.

use sea_orm::entity::prelude::*;

use crate::engine::{Environment, EventType};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub event_type: EventType,
    pub at: DateTimeUtc,
    pub actor: String,
    pub step: Option<String>,
    pub payload: Json,
    pub runtime_id: String,
    pub environment: Environment,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
