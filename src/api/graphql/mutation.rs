//! Mutations: deploy, start, and steer. Each is one engine call.

use async_graphql::{Context, ID, Object};

use crate::api::graphql::types::{
    ApiKey, CreateApiKeyInput, CreatedApiKey, DeployRuntimeInput, ExecutePlaybookInput, Execution,
    InterveneExecutionInput, InterventionAction, RespondToInterventionInput, Runtime, RuntimeVersion,
};
use crate::api::graphql::{ApiResult, engine, parse_id, principal, to_graphql};
use crate::engine::{self as core, Command, Error};
use crate::package::LoadedPackage;
use crate::package::load::{Format, load_document};
use crate::schema::FieldError;

pub struct Mutation;

/// A missing argument that the chosen action needs.
fn missing(pointer: &str, why: &str) -> async_graphql::Error {
    to_graphql(Error::InvalidValue {
        what: "the input".to_owned(),
        errors: vec![FieldError { pointer: pointer.to_owned(), message: why.to_owned() }],
    })
}

#[Object]
impl Mutation {
    /// Validates a package and deploys it as a new version of a runtime.
    async fn deploy_runtime(&self, context: &Context<'_>, input: DeployRuntimeInput) -> ApiResult<Runtime> {
        let package: LoadedPackage = match (input.package, input.source) {
            (Some(document), None) => LoadedPackage::from_value("package", document),
            (None, Some(source)) => {
                let format = if source.trim_start().starts_with('{') { Format::Json } else { Format::Yaml };
                load_document("source", &source, format)
                    .map_err(|problems| to_graphql(Error::InvalidPackage { problems }))?
            }
            _ => {
                return Err(missing(
                    "/package",
                    "give exactly one of `package` (JSON) and `source` (YAML or JSON text)",
                ));
            }
        };
        let engine = engine(context)?;
        let request =
            core::DeployRequest { runtime_id: input.runtime_id, environment: input.environment.into(), package };
        let principal = principal(context)?;
        let runtime = engine.deploy(principal, request).await.map_err(to_graphql)?;
        Ok(Runtime(
            engine
                .definition(principal, &runtime.id, Some(runtime.version), core::Resource::Runtime)
                .await
                .map_err(to_graphql)?,
        ))
    }

    /// Starts a playbook on the latest version of a runtime.
    async fn execute_playbook(&self, context: &Context<'_>, input: ExecutePlaybookInput) -> ApiResult<Execution> {
        let request = core::ExecuteRequest {
            runtime_id: input.runtime_id,
            playbook: input.playbook,
            input: input.input.unwrap_or_else(|| serde_json::json!({})),
            mode: input.mode.map_or(core::Mode::Auto, Into::into),
            idempotency_key: input.idempotency_key,
        };
        Ok(engine(context)?.execute(principal(context)?, request).await.map_err(to_graphql)?.into())
    }

    async fn pause_execution(&self, context: &Context<'_>, id: ID) -> ApiResult<Execution> {
        act(context, &id, "/id", Command::Pause).await
    }

    async fn resume_execution(&self, context: &Context<'_>, id: ID) -> ApiResult<Execution> {
        act(context, &id, "/id", Command::Resume).await
    }

    async fn abort_execution(&self, context: &Context<'_>, id: ID, reason: String) -> ApiResult<Execution> {
        act(context, &id, "/id", Command::Abort { reason }).await
    }

    /// Answers a pending intervention.
    async fn respond_to_intervention(
        &self,
        context: &Context<'_>,
        input: RespondToInterventionInput,
    ) -> ApiResult<Execution> {
        let intervention_id = parse_id(&input.intervention_id, "/interventionId")?;
        let command = Command::Respond { intervention_id, response: input.response, notes: input.notes };
        act(context, &input.execution_id, "/executionId", command).await
    }

    /// Creates an API key (admins of every environment it grants). The token is shown once.
    async fn create_api_key(&self, context: &Context<'_>, input: CreateApiKeyInput) -> ApiResult<CreatedApiKey> {
        let (key, token) = engine(context)?
            .create_key(principal(context)?, &input.name, &input.roles, &input.grants)
            .await
            .map_err(to_graphql)?;
        Ok(CreatedApiKey { key: key.into(), token })
    }

    /// Revokes an API key at once.
    async fn revoke_api_key(&self, context: &Context<'_>, id: String) -> ApiResult<ApiKey> {
        Ok(engine(context)?.revoke_key(principal(context)?, &id).await.map_err(to_graphql)?.into())
    }

    /// Retires one version of a runtime, or (without `version`) all of them: they start no new
    /// executions, and running ones finish on their versions. Returns every version.
    async fn retire_runtime(
        &self,
        context: &Context<'_>,
        id: String,
        version: Option<i32>,
    ) -> ApiResult<Vec<RuntimeVersion>> {
        let versions = engine(context)?.retire_runtime(principal(context)?, &id, version).await.map_err(to_graphql)?;
        Ok(versions.into_iter().map(Into::into).collect())
    }

    /// Makes an earlier version the one new executions use, retiring every later version.
    /// Returns every version.
    async fn rollback_runtime(
        &self,
        context: &Context<'_>,
        id: String,
        version: i32,
    ) -> ApiResult<Vec<RuntimeVersion>> {
        let versions =
            engine(context)?.rollback_runtime(principal(context)?, &id, version).await.map_err(to_graphql)?;
        Ok(versions.into_iter().map(Into::into).collect())
    }

    /// Steers an execution: any action, with the arguments that action needs.
    async fn intervene_execution(&self, context: &Context<'_>, input: InterveneExecutionInput) -> ApiResult<Execution> {
        let command = command(input.clone())?;
        act(context, &input.execution_id, "/executionId", command).await
    }
}

/// The engine command an `interveneExecution` input asks for.
pub fn command(input: InterveneExecutionInput) -> ApiResult<Command> {
    Ok(match input.action {
        InterventionAction::Respond => Command::Respond {
            intervention_id: parse_id(
                input
                    .intervention_id
                    .as_ref()
                    .ok_or_else(|| missing("/interventionId", "RESPOND needs the intervention answered"))?,
                "/interventionId",
            )?,
            response: input.response.ok_or_else(|| missing("/response", "RESPOND needs a response"))?,
            notes: input.notes,
        },
        InterventionAction::Retry => Command::Retry,
        InterventionAction::Skip => Command::Skip { output: input.output },
        InterventionAction::Back => Command::Back { state: input.state.map(Into::into).unwrap_or_default() },
        InterventionAction::Jump => Command::Jump {
            step: input.step.ok_or_else(|| missing("/step", "JUMP needs the step to go to"))?,
            state: input.state.map(Into::into).unwrap_or_default(),
        },
        InterventionAction::EditState => Command::EditState {
            patch: input.patch.ok_or_else(|| missing("/patch", "EDIT_STATE needs a merge patch"))?,
        },
        InterventionAction::Pause => Command::Pause,
        InterventionAction::Resume => Command::Resume,
        InterventionAction::Abort => {
            Command::Abort { reason: input.reason.ok_or_else(|| missing("/reason", "ABORT needs a reason"))? }
        }
    })
}

async fn act(context: &Context<'_>, id: &ID, pointer: &str, command: Command) -> ApiResult<Execution> {
    let id = parse_id(id, pointer)?;
    let execution = engine(context)?.act(principal(context)?, id, command).await.map_err(to_graphql)?;
    Ok(execution.into())
}
