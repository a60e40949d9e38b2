//! Runtimes: deploying a package as a runtime version (validated, limited, its webhooks on
//! the environment's allow-list), and reading runtimes and their compiled definitions.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::SqlErr;

use crate::engine::access::{Access, Resource, authorize, readable};
use crate::engine::definition::Definition;
use crate::engine::types::{Environment, Principal, Runtime};
use crate::engine::{Engine, Error, Result, records, tx, webhook};
use crate::package::{self, LoadedPackage, Package, Problem};
use crate::store;
use crate::store::entity::runtime;

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// Defaults to `<package>-v<major version>`.
    pub runtime_id: Option<String>,
    pub environment: Environment,
    pub package: LoadedPackage,
}

impl Engine {
    /// Validates a package and deploys it as a new version of a runtime. A runtime id belongs to
    /// one package: another package under it is a CONFLICT naming both, and the same package
    /// document as the latest version is that version (deploying is idempotent).
    pub async fn deploy(&self, principal: &Principal, request: DeployRequest) -> Result<Runtime> {
        let package = package::validate(&request.package).map_err(|problems| Error::InvalidPackage { problems })?;
        let problems = package::limits::check(&request.package, &package, &self.inner.config.limits);
        if !problems.is_empty() {
            return Err(Error::InvalidPackage { problems });
        }
        let runtime_id = match request.runtime_id {
            Some(id) => id,
            None => format!("{}-v{}", package.package, package.version.split('.').next().unwrap_or("0")),
        };
        check_slug(&runtime_id)?;
        authorize(principal, request.environment, Access::Write, Resource::Runtime)?;
        self.check_webhooks(&package, request.environment, &request.package)?;
        for _ in 0..5 {
            match self.insert_runtime(principal, &runtime_id, request.environment, &package).await {
                Err(Error::Store(error)) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    continue;
                }
                other => return other,
            }
        }
        Err(Error::Conflict(format!("runtime `{runtime_id}` is being deployed concurrently; try again")))
    }

    fn check_webhooks(&self, package: &Package, environment: Environment, loaded: &LoadedPackage) -> Result<()> {
        let allow_list = self.inner.config.webhook_allow_list(environment);
        let mut problems = Vec::new();
        let mut check = |pointer: String, url: &Option<String>| {
            if let Some(url) = url
                && !webhook::allowed(allow_list, url)
            {
                let (file, path) = loaded.sources.locate(&pointer);
                problems.push(Problem::at(
                    &file,
                    &path,
                    format!("webhook URL `{url}` is not on the {environment} allow-list"),
                ));
            }
        };
        for (index, operation) in package.operations.iter().enumerate() {
            check(format!("/operations/{index}/url"), &operation.implementation.url);
        }
        for (index, playbook) in package.playbooks.iter().enumerate() {
            for (step_index, step) in playbook.steps.iter().enumerate() {
                check(format!("/playbooks/{index}/steps/{step_index}/url"), &step.implementation.url);
            }
        }
        // Simulation never calls out, so its webhooks need no allow-list.
        if problems.is_empty() || environment == Environment::Simulation {
            Ok(())
        } else {
            Err(Error::InvalidPackage { problems })
        }
    }

    async fn insert_runtime(
        &self,
        principal: &Principal,
        runtime_id: &str,
        environment: Environment,
        package: &Package,
    ) -> Result<Runtime> {
        let (runtime, compiled) = tx::Tx::run(&self.inner, async |tx| {
            let latest = store::runtimes::find(tx.db(), runtime_id, None).await?;
            if let Some(latest) = &latest {
                let existing: Environment = latest.environment;
                if existing != environment {
                    return Err(Error::EnvironmentMismatch {
                        runtime: runtime_id.to_owned(),
                        existing,
                        requested: environment,
                    });
                }
                // Otherwise any package could take over a runtime and become its next version.
                if latest.package_name != package.package {
                    return Err(Error::RuntimeTaken {
                        runtime: runtime_id.to_owned(),
                        existing: latest.package_name.clone(),
                        requested: package.package.clone(),
                    });
                }
            }
            // The canonical document (the typed package serialised, so formatting, key order
            // and YAML versus JSON do not count) decides whether anything changed.
            let definition = serde_json::to_value(package).map_err(|error| Error::Internal(error.to_string()))?;
            // Unchanged from the version new executions use: that version. (After a rollback or
            // a retirement, the same document as a retired version is a new version.)
            let current = store::runtimes::current(tx.db(), runtime_id).await?;
            if let Some(current) =
                current.filter(|current| current.retired_at.is_none() && current.definition == definition)
            {
                return Ok((records::runtime(current)?, None));
            }
            let model = runtime::Model {
                id: runtime_id.to_owned(),
                version: latest.map_or(1, |latest| latest.version + 1),
                environment,
                package_name: package.package.clone(),
                package_version: package.version.clone(),
                definition,
                deployed_by: principal.id.clone(),
                deployed_at: Utc::now(),
                retired_at: None,
                retired_by: None,
            };
            store::runtimes::insert(tx.db(), model.clone()).await?;
            let runtime = records::runtime(model)?;
            // Compiling before commit means a deployed version always compiles.
            let compiled = Arc::new(Definition::compile(runtime.clone())?);
            Ok((runtime, Some(compiled)))
        })
        .await?;
        if let Some(compiled) = compiled {
            self.inner.cache(compiled);
        }
        Ok(runtime)
    }

    /// The latest version of every runtime, optionally of one environment, ordered by id.
    pub async fn runtimes(&self, principal: &Principal, environment: Option<Environment>) -> Result<Vec<Runtime>> {
        if let Some(environment) = environment {
            authorize(principal, environment, Access::Read, Resource::Runtime)?;
        }
        let readable = readable(principal, Resource::Runtime, environment);
        // Rows come by id, newest first: keep each runtime's newest version that is not
        // retired, or its newest if all are.
        let mut current: Vec<runtime::Model> = Vec::new();
        for row in store::runtimes::all_in(self.inner.store.connection(), readable).await? {
            match current.last_mut() {
                Some(kept) if kept.id == row.id => {
                    if kept.retired_at.is_some() && row.retired_at.is_none() {
                        *kept = row;
                    }
                }
                _ => current.push(row),
            }
        }
        current.into_iter().map(records::runtime).collect()
    }

    /// A runtime at a version, or its latest.
    pub async fn runtime(&self, principal: &Principal, id: &str, version: Option<i32>) -> Result<Runtime> {
        Ok(self.definition(principal, id, version, Resource::Runtime).await?.runtime.clone())
    }

    /// The compiled definition of a runtime at a version, or its latest.
    pub async fn definition(
        &self,
        principal: &Principal,
        id: &str,
        version: Option<i32>,
        resource: Resource,
    ) -> Result<Arc<Definition>> {
        let definition = self.inner.runtime_definition(id, version).await?;
        authorize(principal, definition.runtime.environment, Access::Read, resource)?;
        Ok(definition)
    }
}

fn check_slug(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !id.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "runtime id `{id}` must be 1–63 lowercase letters, digits or hyphens, not starting with a hyphen"
        )))
    }
}
