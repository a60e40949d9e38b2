//! One run of a playbook: the row a parked execution is reduced to.

use sea_orm::entity::prelude::*;

use crate::engine::{Environment, ExecutionStatus, Mode};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub runtime_id: String,
    pub runtime_version: i32,
    pub environment: Environment,
    pub playbook: String,
    pub status: ExecutionStatus,
    pub mode: Mode,
    pub input: Json,
    pub state: Json,
    pub steps: Json,
    pub current_step_index: i32,
    pub attempt: i32,
    /// STEP_STARTED was recorded for the current attempt.
    pub step_started: bool,
    /// MANUAL mode: the checkpoint before the current step was approved.
    pub gate_open: bool,
    /// A retry waits until then.
    pub wake_at: Option<DateTimeUtc>,
    /// Bumped whenever a person or a child moves the execution, so that a worker whose step
    /// was overtaken discards its result.
    pub epoch: i64,
    pub output: Option<Json>,
    pub error: Option<String>,
    pub parent_id: Option<String>,
    pub parent_step_index: Option<i32>,
    pub parent_epoch: Option<i64>,
    /// The status to return to on RESUME.
    pub paused_from: Option<ExecutionStatus>,
    pub started_by: String,
    pub idempotency_key: Option<String>,
    pub last_seq: i64,
    /// How many times `next` rules sent the execution to each step, by step name (`null`
    /// until one first did).
    pub visits: Option<Json>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
