//! A request for a person or a model.

use sea_orm::entity::prelude::*;

use crate::engine::{Environment, InterventionKind, InterventionStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "interventions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub execution_id: String,
    pub runtime_id: String,
    pub environment: Environment,
    pub step: String,
    pub step_index: i32,
    /// The execution's epoch when it was requested.
    pub epoch: i64,
    pub kind: InterventionKind,
    pub status: InterventionStatus,
    pub prompt: Option<String>,
    pub form_schema: Json,
    pub allowed_actions: Json,
    pub role: Option<String>,
    pub response: Option<Json>,
    pub notes: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
