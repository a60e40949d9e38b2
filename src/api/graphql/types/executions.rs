//! What runs, as GraphQL publishes it: executions, their history, checkpoints and interventions,
//! and the caller.

use async_graphql::{ComplexObject, Context, SimpleObject};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::api::graphql::{ApiResult, engine, principal, to_graphql};
use crate::api::schema_fields::{FieldDescriptor, fields_of};
use crate::engine as core;

/// One run of a playbook.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Execution {
    pub id: async_graphql::ID,
    pub runtime_id: String,
    pub runtime_version: i32,
    pub environment: Environment,
    pub playbook: String,
    pub status: ExecutionStatus,
    pub mode: Mode,
    pub input: Value,
    /// Free-form JSON that people may edit.
    pub state: Value,
    /// The output of every step that ran, by step name.
    pub steps: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// The step that runs next or is waiting; null once every step has run.
    pub current_step: Option<String>,
    pub current_step_index: i32,
    pub attempt: i32,
    pub parent_id: Option<async_graphql::ID>,
    pub started_by: String,
    pub idempotency_key: Option<String>,
    /// The seq of the latest history event; resume subscriptions after it.
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub execution_id: core::ExecutionId,
    #[graphql(skip)]
    pub record: core::Execution,
}

impl From<core::Execution> for Execution {
    fn from(execution: core::Execution) -> Self {
        let record = execution.clone();
        Execution {
            id: async_graphql::ID(execution.id.to_string()),
            execution_id: execution.id,
            runtime_id: execution.runtime_id,
            runtime_version: execution.runtime_version,
            environment: execution.environment.into(),
            playbook: execution.playbook,
            status: execution.status.into(),
            mode: execution.mode.into(),
            input: execution.input,
            state: execution.state,
            steps: execution.steps,
            output: execution.output,
            error: execution.error,
            current_step: execution.current_step,
            current_step_index: execution.current_step_index,
            attempt: execution.attempt,
            parent_id: execution.parent_id.map(|id| async_graphql::ID(id.to_string())),
            started_by: execution.started_by,
            idempotency_key: execution.idempotency_key,
            last_seq: execution.last_seq,
            created_at: execution.created_at,
            updated_at: execution.updated_at,
            record,
        }
    }
}

#[ComplexObject]
impl Execution {
    /// History events after `afterSeq`, in order.
    async fn history(
        &self,
        context: &Context<'_>,
        #[graphql(default = 0)] after_seq: i64,
        #[graphql(default = 1000)] first: i32,
    ) -> ApiResult<Vec<Event>> {
        let events = engine(context)?
            .history(principal(context)?, self.execution_id, after_seq, first.max(1) as u64)
            .await
            .map_err(to_graphql)?;
        Ok(events.into_iter().map(Event::from).collect())
    }

    /// Snapshots recorded after every step; BACK and JUMP return to them.
    async fn checkpoints(&self, context: &Context<'_>) -> ApiResult<Vec<Checkpoint>> {
        let checkpoints =
            engine(context)?.checkpoints(principal(context)?, self.execution_id).await.map_err(to_graphql)?;
        Ok(checkpoints.into_iter().map(Checkpoint::from).collect())
    }

    async fn interventions(
        &self,
        context: &Context<'_>,
        status: Option<InterventionStatus>,
    ) -> ApiResult<Vec<Intervention>> {
        let loader = context
            .data::<async_graphql::dataloader::DataLoader<crate::api::graphql::loaders::InterventionsByExecution>>()?;
        let all = loader.load_one(self.execution_id).await?.unwrap_or_default();
        Ok(all.into_iter().filter(|intervention| status.is_none_or(|status| intervention.status == status)).collect())
    }

    /// Exactly what the caller may do to this execution now (RESPOND is listed on each
    /// pending intervention).
    async fn allowed_actions(&self, context: &Context<'_>) -> ApiResult<Vec<InterventionAction>> {
        let actions = engine(context)?.allowed_actions(principal(context)?, &self.record).await.map_err(to_graphql)?;
        Ok(actions.into_iter().map(Into::into).collect())
    }

    /// Child executions started by `playbook` steps.
    async fn children(&self, context: &Context<'_>) -> ApiResult<Vec<Execution>> {
        let filter = core::ExecutionFilter { parent_id: Some(self.execution_id), ..Default::default() };
        let page = engine(context)?
            .executions(principal(context)?, &filter, core::MAX_PAGE, None)
            .await
            .map_err(to_graphql)?;
        Ok(page.items.into_iter().map(Execution::from).collect())
    }
}

/// One entry of an execution's append-only history.
#[derive(SimpleObject, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub execution_id: String,
    /// 1, 2, 3… per execution, without gaps.
    pub seq: i64,
    #[graphql(name = "type")]
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub at: DateTime<Utc>,
    /// The principal who acted, or `system`.
    pub actor: String,
    pub step: Option<String>,
    /// What the event says; its shape depends on `type` and is published, per type, in the
    /// contract's `events.schema.json`.
    pub payload: Value,
    pub runtime_id: String,
    pub environment: Environment,
}

impl From<core::Event> for Event {
    fn from(event: core::Event) -> Self {
        Event {
            execution_id: event.execution_id.to_string(),
            seq: event.seq,
            event_type: event.event_type.into(),
            at: event.at,
            actor: event.actor,
            step: event.step,
            payload: event.payload,
            runtime_id: event.runtime_id,
            environment: event.environment.into(),
        }
    }
}

/// A step index and context snapshot.
#[derive(SimpleObject)]
pub struct Checkpoint {
    pub seq: i64,
    pub step_index: i32,
    pub step: Option<String>,
    pub steps: Value,
    pub state: Value,
    pub at: DateTime<Utc>,
}

impl From<core::Checkpoint> for Checkpoint {
    fn from(checkpoint: core::Checkpoint) -> Self {
        Checkpoint {
            seq: checkpoint.seq,
            step_index: checkpoint.step_index,
            step: checkpoint.step,
            steps: checkpoint.steps,
            state: checkpoint.state,
            at: checkpoint.at,
        }
    }
}

/// A request for a person (or a model).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Intervention {
    pub id: async_graphql::ID,
    pub execution_id: async_graphql::ID,
    pub runtime_id: String,
    pub environment: Environment,
    pub step: String,
    pub kind: InterventionKind,
    pub status: InterventionStatus,
    pub prompt: Option<String>,
    /// JSON Schema of the answer, with UI hints.
    pub form_schema: Value,
    #[graphql(skip)]
    pub record: core::Intervention,
    /// Only principals holding this role (or admins) may answer.
    pub role: Option<String>,
    pub response: Option<Value>,
    pub notes: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[ComplexObject]
impl Intervention {
    /// The form as a flat list of fields.
    async fn fields(&self) -> Vec<FieldDescriptor> {
        fields_of(&self.form_schema)
    }

    /// Whether the caller may answer it.
    async fn answerable(&self, context: &Context<'_>) -> ApiResult<bool> {
        let actions = engine(context)?.intervention_actions(principal(context)?, &self.record);
        Ok(actions.contains(&core::Action::Respond))
    }

    /// Exactly what the caller may do about it now: what its kind offers while it is pending,
    /// as far as the caller's grants and roles allow (empty once it is resolved or cancelled).
    async fn allowed_actions(&self, context: &Context<'_>) -> ApiResult<Vec<InterventionAction>> {
        let actions = engine(context)?.intervention_actions(principal(context)?, &self.record);
        Ok(actions.into_iter().map(Into::into).collect())
    }
}

impl From<core::Intervention> for Intervention {
    fn from(intervention: core::Intervention) -> Self {
        let record = intervention.clone();
        Intervention {
            id: async_graphql::ID(intervention.id.to_string()),
            execution_id: async_graphql::ID(intervention.execution_id.to_string()),
            runtime_id: intervention.runtime_id,
            environment: intervention.environment.into(),
            step: intervention.step,
            kind: intervention.kind.into(),
            status: intervention.status.into(),
            prompt: intervention.prompt,
            form_schema: intervention.form_schema,
            role: intervention.role,
            response: intervention.response,
            notes: intervention.notes,
            resolved_by: intervention.resolved_by,
            resolved_at: intervention.resolved_at,
            created_at: intervention.created_at,
            record,
        }
    }
}

/// Who is calling.
#[derive(SimpleObject)]
pub struct Me {
    pub id: String,
    /// Package roles held, e.g. `cook`.
    pub roles: Vec<String>,
    /// Grants, as `environment:access[:resource]`.
    pub grants: Vec<String>,
    /// Environments the caller administers.
    pub administers: Vec<Environment>,
}
