//! A context snapshot recorded after every step, keyed by the event that recorded it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub step_index: i32,
    pub step: Option<String>,
    pub steps: Json,
    pub state: Json,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
