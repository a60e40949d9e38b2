//! Queries: definitions, executions, interventions and the caller.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Object};

use crate::api::graphql::types::{
    Environment, Execution, ExecutionFilter, Intervention, InterventionFilter, InterventionStatus, Me, Operation,
    Playbook, Role, Runtime, RuntimeVersion,
};
use crate::api::graphql::{ApiResult, engine, parse_id, principal, to_graphql};
use crate::engine::{self as core, Error, Resource};

pub struct Query;

#[Object]
impl Query {
    /// The environments, in order from production to development.
    async fn environments(&self) -> Vec<Environment> {
        core::Environment::ALL.iter().map(|environment| (*environment).into()).collect()
    }

    /// The latest version of every runtime, optionally of one environment.
    async fn runtimes(&self, context: &Context<'_>, environment: Option<Environment>) -> ApiResult<Vec<Runtime>> {
        let engine = engine(context)?;
        let principal = principal(context)?;
        let runtimes = engine.runtimes(principal, environment.map(Into::into)).await.map_err(to_graphql)?;
        let mut found = Vec::with_capacity(runtimes.len());
        for runtime in runtimes {
            found.push(Runtime(
                engine
                    .definition(principal, &runtime.id, Some(runtime.version), Resource::Runtime)
                    .await
                    .map_err(to_graphql)?,
            ));
        }
        Ok(found)
    }

    /// Every version of a runtime, newest first, with the one new executions use.
    async fn runtime_versions(&self, context: &Context<'_>, id: String) -> ApiResult<Vec<RuntimeVersion>> {
        let versions = engine(context)?.runtime_versions(principal(context)?, &id).await.map_err(to_graphql)?;
        Ok(versions.into_iter().map(Into::into).collect())
    }

    /// A runtime at a version, or the one new executions use.
    async fn runtime(&self, context: &Context<'_>, id: String, version: Option<i32>) -> ApiResult<Runtime> {
        Ok(Runtime(
            engine(context)?
                .definition(principal(context)?, &id, version, Resource::Runtime)
                .await
                .map_err(to_graphql)?,
        ))
    }

    /// A playbook of the latest version of a runtime.
    async fn playbook(&self, context: &Context<'_>, runtime_id: String, name: String) -> ApiResult<Playbook> {
        let definition = engine(context)?
            .definition(principal(context)?, &runtime_id, None, Resource::Playbook)
            .await
            .map_err(to_graphql)?;
        definition.playbook(&name).map_err(to_graphql)?;
        Ok(Playbook { definition, name })
    }

    async fn role(&self, context: &Context<'_>, runtime_id: String, name: String) -> ApiResult<Role> {
        let definition = engine(context)?
            .definition(principal(context)?, &runtime_id, None, Resource::Role)
            .await
            .map_err(to_graphql)?;
        let role = definition.runtime.package.roles.iter().find(|role| role.name == name).ok_or_else(|| {
            to_graphql(Error::DefinitionNotFound { runtime: runtime_id.clone(), kind: "role", name: name.clone() })
        })?;
        Ok(Role::new(&definition, role))
    }

    async fn operation(&self, context: &Context<'_>, runtime_id: String, name: String) -> ApiResult<Operation> {
        let definition = engine(context)?
            .definition(principal(context)?, &runtime_id, None, Resource::Operation)
            .await
            .map_err(to_graphql)?;
        let operation =
            definition.runtime.package.operations.iter().find(|operation| operation.name == name).ok_or_else(|| {
                to_graphql(Error::DefinitionNotFound {
                    runtime: runtime_id.clone(),
                    kind: "operation",
                    name: name.clone(),
                })
            })?;
        Ok(Operation::new(&definition, operation))
    }

    /// Executions, newest first, as a Relay connection; `after` is an `endCursor`.
    async fn executions(
        &self,
        context: &Context<'_>,
        filter: Option<ExecutionFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> ApiResult<Connection<String, Execution, EmptyFields, EmptyFields>> {
        let filter = filter.unwrap_or_default();
        let after = after.map(|cursor| parse_id::<core::ExecutionId>(&ID(cursor), "/after")).transpose()?;
        let parent_id = filter.parent_id.as_ref().map(|id| parse_id(id, "/filter/parentId")).transpose()?;
        let filter = core::ExecutionFilter {
            environment: filter.environment.map(Into::into),
            runtime_id: filter.runtime_id,
            playbook: filter.playbook,
            status: filter.status.map(Into::into),
            parent_id,
        };
        if first < 1 {
            return Err(to_graphql(Error::BadInput("`first` must be at least 1".to_owned())));
        }
        let page =
            engine(context)?.executions(principal(context)?, &filter, first as u64, after).await.map_err(to_graphql)?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.items.into_iter().map(|execution| Edge::new(execution.id.to_string(), Execution::from(execution))),
        );
        Ok(connection)
    }

    async fn execution(&self, context: &Context<'_>, id: ID) -> ApiResult<Execution> {
        let id = parse_id(&id, "/id")?;
        Ok(engine(context)?.execution(principal(context)?, id).await.map_err(to_graphql)?.into())
    }

    /// Interventions, oldest first; pending ones unless a status is given.
    async fn interventions(
        &self,
        context: &Context<'_>,
        filter: Option<InterventionFilter>,
        #[graphql(default = 100)] first: i32,
    ) -> ApiResult<Vec<Intervention>> {
        let filter = filter.unwrap_or_default();
        let execution_id = filter.execution_id.as_ref().map(|id| parse_id(id, "/filter/executionId")).transpose()?;
        let filter = core::InterventionFilter {
            environment: filter.environment.map(Into::into),
            runtime_id: filter.runtime_id,
            execution_id,
            status: Some(filter.status.unwrap_or(InterventionStatus::Pending).into()),
            kind: filter.kind.map(Into::into),
            answerable_by: filter.mine.then(|| principal(context)).transpose()?.cloned(),
        };
        let found = engine(context)?
            .interventions(principal(context)?, &filter, first.max(1) as u64)
            .await
            .map_err(to_graphql)?;
        Ok(found.into_iter().map(Intervention::from).collect())
    }

    async fn intervention(&self, context: &Context<'_>, id: ID) -> ApiResult<Intervention> {
        let id = parse_id(&id, "/id")?;
        Ok(engine(context)?.intervention(principal(context)?, id).await.map_err(to_graphql)?.into())
    }

    /// API keys, without secrets (for admins).
    async fn api_keys(&self, context: &Context<'_>) -> ApiResult<Vec<crate::api::graphql::types::ApiKey>> {
        let keys = engine(context)?.keys(principal(context)?).await.map_err(to_graphql)?;
        Ok(keys.into_iter().map(Into::into).collect())
    }

    /// The caller.
    async fn me(&self, context: &Context<'_>) -> ApiResult<Me> {
        let principal = principal(context)?;
        Ok(Me {
            id: principal.id.clone(),
            roles: principal.roles.iter().cloned().collect(),
            grants: principal.grants.to_strings(),
            administers: principal
                .grants
                .environments()
                .filter(|environment| principal.grants.is_admin(*environment))
                .map(Into::into)
                .collect(),
        })
    }
}
