//! GraphQL types: the engine's records as the API publishes them. Inputs also derive serde and
//! schemars, so that REST and MCP describe and accept exactly what GraphQL does.

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::graphql::{ApiResult, engine, principal, to_graphql};
use crate::api::schema_fields::{FieldDescriptor, fields_of};
use crate::engine as core;
use crate::engine::definition::{CompiledStep, Definition};

/// Mirrors an engine enum as a GraphQL enum (and a serde/schemars one), converting both ways.
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident => $engine:path { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl From<$name> for $engine {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => <$engine>::$variant),+ }
            }
        }

        impl From<$engine> for $name {
            fn from(value: $engine) -> Self {
                match value { $(<$engine>::$variant => $name::$variant),+ }
            }
        }
    };
}

api_enum!(
    /// Every runtime lives in exactly one environment.
    Environment => core::Environment { Production, Staging, Simulation, Development }
);
api_enum!(
    /// The lifecycle of an execution.
    ExecutionStatus => core::ExecutionStatus { Running, Waiting, Paused, Completed, Failed, Aborted }
);
api_enum!(
    /// AUTO runs steps one after another; MANUAL asks a person before every step.
    Mode => core::Mode { Auto, Manual }
);
api_enum!(
    /// What a history event records.
    EventType => core::EventType {
        ExecutionStarted, StepStarted, StepCompleted, StepSkipped, StepFailed, InterventionRequested,
        InterventionResolved, Paused, Resumed, StateEdited, Jumped, Retried, ExecutionCompleted,
        ExecutionFailed, ExecutionAborted,
    }
);
api_enum!(
    /// Why a person (or a model) is asked.
    InterventionKind => core::InterventionKind { Task, Agent, Failure, Checkpoint }
);
api_enum!(
    InterventionStatus => core::InterventionStatus { Pending, Resolved, Cancelled }
);
api_enum!(
    /// What a person may do to an execution that is not finished.
    InterventionAction => core::Action { Respond, Retry, Skip, Back, Jump, EditState, Pause, Resume, Abort }
);

/// What runs for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepKind {
    Transform,
    Human,
    Agent,
    Webhook,
    Playbook,
}

impl From<crate::package::StepKind> for StepKind {
    fn from(kind: crate::package::StepKind) -> Self {
        use crate::package::StepKind as Kind;
        match kind {
            Kind::Transform => StepKind::Transform,
            Kind::Human => StepKind::Human,
            Kind::Agent => StepKind::Agent,
            Kind::Webhook => StepKind::Webhook,
            Kind::Playbook => StepKind::Playbook,
        }
    }
}

// ----- Definitions ------------------------------------------------------------------------------

/// A deployed package version in an environment.
pub struct Runtime(pub std::sync::Arc<Definition>);

#[Object]
impl Runtime {
    /// The runtime's slug, e.g. `kitchen-v1`.
    async fn id(&self) -> &str {
        &self.0.runtime.id
    }
    /// Deployment number of this runtime: 1, 2, 3…
    async fn version(&self) -> i32 {
        self.0.runtime.version
    }
    async fn environment(&self) -> Environment {
        self.0.runtime.environment.into()
    }
    /// The package's slug.
    async fn package(&self) -> &str {
        &self.0.runtime.package.package
    }
    /// The package's semantic version.
    async fn package_version(&self) -> &str {
        &self.0.runtime.package.version
    }
    async fn description(&self) -> &str {
        &self.0.runtime.package.description
    }
    async fn deployed_by(&self) -> &str {
        &self.0.runtime.deployed_by
    }
    async fn deployed_at(&self) -> DateTime<Utc> {
        self.0.runtime.deployed_at
    }
    async fn playbooks(&self) -> Vec<Playbook> {
        self.0
            .runtime
            .package
            .playbooks
            .iter()
            .map(|playbook| Playbook { definition: self.0.clone(), name: playbook.name.clone() })
            .collect()
    }
    async fn roles(&self) -> Vec<Role> {
        self.0.runtime.package.roles.iter().map(|role| Role::new(&self.0, role)).collect()
    }
    async fn operations(&self) -> Vec<Operation> {
        self.0.runtime.package.operations.iter().map(|operation| Operation::new(&self.0, operation)).collect()
    }
    /// The package document this version was deployed from.
    async fn definition(&self) -> ApiResult<Value> {
        serde_json::to_value(&self.0.runtime.package)
            .map_err(|error| to_graphql(core::Error::Internal(error.to_string())))
    }
}

/// A process: steps run in order.
pub struct Playbook {
    pub definition: std::sync::Arc<Definition>,
    pub name: String,
}

impl Playbook {
    fn source(&self) -> Option<&crate::package::Playbook> {
        self.definition.runtime.package.playbooks.iter().find(|playbook| playbook.name == self.name)
    }
}

#[Object]
impl Playbook {
    async fn runtime_id(&self) -> &str {
        &self.definition.runtime.id
    }
    async fn name(&self) -> &str {
        &self.name
    }
    async fn description(&self) -> &str {
        self.source().map_or("", |playbook| playbook.description.as_str())
    }
    /// The role that owns the process.
    async fn role(&self) -> Option<&str> {
        self.source().and_then(|playbook| playbook.role.as_deref())
    }
    /// JSON Schema of the execution's input.
    async fn input_schema(&self) -> Option<Value> {
        self.source().and_then(|playbook| playbook.input_schema.clone())
    }
    /// JSON Schema of the execution's output.
    async fn output_schema(&self) -> Option<Value> {
        self.source().and_then(|playbook| playbook.output_schema.clone())
    }
    /// The input form as a flat list of fields, for frontends that render forms.
    async fn fields(&self) -> Vec<FieldDescriptor> {
        self.source().and_then(|playbook| playbook.input_schema.as_ref()).map(fields_of).unwrap_or_default()
    }
    async fn steps(&self) -> Vec<Step> {
        let Ok(playbook) = self.definition.playbook(&self.name) else { return Vec::new() };
        let Some(source) = self.source() else { return Vec::new() };
        playbook.steps.iter().zip(&source.steps).map(|(compiled, step)| Step::new(compiled, step)).collect()
    }
}

/// One step of a playbook, with its operation merged in.
#[derive(SimpleObject)]
pub struct Step {
    pub name: String,
    pub description: String,
    pub kind: StepKind,
    pub operation: Option<String>,
    /// The role that answers this step's interventions.
    pub role: Option<String>,
    pub when: Option<String>,
    pub output_schema: Option<Value>,
    /// The step's output (for a human step, its form) as fields.
    pub fields: Vec<FieldDescriptor>,
    pub max_attempts: i32,
    pub ui: Option<Value>,
}

impl Step {
    fn new(compiled: &CompiledStep, step: &crate::package::Step) -> Step {
        Step {
            name: compiled.name.clone(),
            description: step.description.clone(),
            kind: compiled.kind.into(),
            operation: step.operation.clone(),
            role: compiled.role.clone(),
            when: step.when.clone(),
            output_schema: compiled.output_schema.clone(),
            fields: compiled.output_schema.as_ref().map(fields_of).unwrap_or_default(),
            max_attempts: compiled.max_attempts() as i32,
            ui: compiled.ui.clone(),
        }
    }
}

/// A role people play.
#[derive(SimpleObject)]
pub struct Role {
    pub runtime_id: String,
    pub name: String,
    pub description: String,
    pub capabilities: Vec<String>,
}

impl Role {
    pub fn new(definition: &Definition, role: &crate::package::Role) -> Role {
        Role {
            runtime_id: definition.runtime.id.clone(),
            name: role.name.clone(),
            description: role.description.clone(),
            capabilities: role.capabilities.clone(),
        }
    }
}

/// A reusable step implementation.
#[derive(SimpleObject)]
pub struct Operation {
    pub runtime_id: String,
    pub name: String,
    pub description: String,
    pub kind: Option<StepKind>,
    pub role: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub input_fields: Vec<FieldDescriptor>,
    pub output_fields: Vec<FieldDescriptor>,
    pub estimated_time: Option<String>,
    pub ui: Option<Value>,
}

impl Operation {
    pub fn new(definition: &Definition, operation: &crate::package::Operation) -> Operation {
        let implementation = &operation.implementation;
        Operation {
            runtime_id: definition.runtime.id.clone(),
            name: operation.name.clone(),
            description: operation.description.clone(),
            kind: implementation.kind.map(Into::into),
            role: implementation.role.clone(),
            input_schema: implementation.input_schema.clone(),
            output_schema: implementation.output_schema.clone(),
            input_fields: implementation.input_schema.as_ref().map(fields_of).unwrap_or_default(),
            output_fields: implementation.output_schema.as_ref().map(fields_of).unwrap_or_default(),
            estimated_time: implementation.estimated_time.clone(),
            ui: implementation.ui.clone(),
        }
    }
}

// ----- Executions -------------------------------------------------------------------------------

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

// ----- Inputs -------------------------------------------------------------------------------------

/// Deploys a package as a new version of a runtime.
#[derive(Debug, Clone, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployRuntimeInput {
    /// Defaults to `<package>-v<major version>`.
    pub runtime_id: Option<String>,
    pub environment: Environment,
    /// The package document as JSON; or give `source`.
    pub package: Option<Value>,
    /// The package document as YAML or JSON text; or give `package`.
    pub source: Option<String>,
}

/// Starts a playbook.
#[derive(Debug, Clone, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutePlaybookInput {
    pub runtime_id: String,
    pub playbook: String,
    /// Must fit the playbook's input schema (default `{}`).
    pub input: Option<Value>,
    /// AUTO (default) or MANUAL.
    pub mode: Option<Mode>,
    /// Starting twice with the same key returns the first execution.
    pub idempotency_key: Option<String>,
}

/// Answers a pending intervention.
#[derive(Debug, Clone, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RespondToInterventionInput {
    #[schemars(with = "String")]
    pub execution_id: async_graphql::ID,
    #[schemars(with = "String")]
    pub intervention_id: async_graphql::ID,
    /// Must fit the intervention's form schema.
    pub response: Value,
    pub notes: Option<String>,
}

/// Steers an execution.
#[derive(Debug, Clone, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterveneExecutionInput {
    #[schemars(with = "String")]
    pub execution_id: async_graphql::ID,
    pub action: InterventionAction,
    /// JUMP: the step to go to.
    pub step: Option<String>,
    /// SKIP: the skipped step's output (optional, validated).
    pub output: Option<Value>,
    /// EDIT_STATE: an RFC 7396 merge patch.
    pub patch: Option<Value>,
    /// ABORT: why.
    pub reason: Option<String>,
    /// RESPOND: the intervention answered.
    #[schemars(with = "Option<String>")]
    pub intervention_id: Option<async_graphql::ID>,
    /// RESPOND: the answer.
    pub response: Option<Value>,
    /// RESPOND: notes kept with the answer.
    pub notes: Option<String>,
}

/// Which executions to list.
#[derive(Debug, Clone, Default, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    pub playbook: Option<String>,
    pub status: Option<ExecutionStatus>,
    #[schemars(with = "Option<String>")]
    pub parent_id: Option<async_graphql::ID>,
}

/// Which interventions to list.
#[derive(Debug, Clone, Default, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterventionFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    #[schemars(with = "Option<String>")]
    pub execution_id: Option<async_graphql::ID>,
    /// Defaults to PENDING.
    pub status: Option<InterventionStatus>,
    pub kind: Option<InterventionKind>,
    /// Only those the caller may answer.
    #[serde(default)]
    #[graphql(default)]
    pub mine: bool,
}

/// An API key, without its secret.
#[derive(SimpleObject)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub grants: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<core::auth::ApiKey> for ApiKey {
    fn from(key: core::auth::ApiKey) -> Self {
        ApiKey {
            id: key.id,
            name: key.name,
            roles: key.roles,
            grants: key.grants,
            created_by: key.created_by,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key and its secret token, shown this once.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// `Authorization: Bearer <token>`; it is not stored and cannot be shown again.
    pub token: String,
}

/// A key to create.
#[derive(Debug, Clone, InputObject, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKeyInput {
    pub name: String,
    #[graphql(default)]
    #[serde(default)]
    pub roles: Vec<String>,
    /// `environment[:read|write|admin[:resource]]`, e.g. `production:read`.
    pub grants: Vec<String>,
}
