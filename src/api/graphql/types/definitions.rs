//! What is deployed, as GraphQL publishes it: runtimes, playbooks, steps, roles, operations.

use async_graphql::{Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;
use crate::api::graphql::{ApiResult, to_graphql};
use crate::api::schema_fields::{FieldDescriptor, fields_of};
use crate::engine as core;
use crate::engine::definition::{CompiledStep, Definition};

/// One version of a runtime, and whether new executions use it.
#[derive(SimpleObject)]
pub struct RuntimeVersion {
    pub runtime_id: String,
    /// Deployment number: 1, 2, 3…
    pub version: i32,
    pub environment: Environment,
    /// The package's slug and semantic version.
    pub package: String,
    pub package_version: String,
    pub deployed_by: String,
    pub deployed_at: DateTime<Utc>,
    /// Set once the version is retired: it starts no new executions (running ones finish on
    /// it).
    pub retired_at: Option<DateTime<Utc>>,
    pub retired_by: Option<String>,
    /// Whether new executions use this version: the newest that is not retired.
    pub current: bool,
}

impl From<core::RuntimeVersion> for RuntimeVersion {
    fn from(version: core::RuntimeVersion) -> RuntimeVersion {
        RuntimeVersion {
            runtime_id: version.runtime_id,
            version: version.version,
            environment: version.environment.into(),
            package: version.package,
            package_version: version.package_version,
            deployed_by: version.deployed_by,
            deployed_at: version.deployed_at,
            retired_at: version.retired_at,
            retired_by: version.retired_by,
            current: version.current,
        }
    }
}

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
    /// Where the step goes once it completes: the first rule whose `when` holds; none holds,
    /// or none given: the next step in order.
    pub next: Vec<StepRoute>,
    /// How many times `next` rules may send one execution to this step.
    pub max_visits: i32,
}

/// One of a step's `next` rules.
#[derive(SimpleObject)]
pub struct StepRoute {
    /// The jq condition; absent: always.
    pub when: Option<String>,
    /// The step it goes to, or `$end`.
    pub goto: String,
}

impl Step {
    fn new(compiled: &CompiledStep, step: &crate::package::Step) -> Step {
        Step {
            name: compiled.name.clone(),
            description: step.description.clone(),
            kind: compiled.run.kind().into(),
            operation: step.operation.clone(),
            role: compiled.role.clone(),
            when: step.when.clone(),
            output_schema: compiled.output_schema.clone(),
            fields: compiled.output_schema.as_ref().map(fields_of).unwrap_or_default(),
            max_attempts: compiled.max_attempts() as i32,
            ui: compiled.ui.clone(),
            next: step
                .next
                .iter()
                .map(|route| StepRoute { when: route.when.clone(), goto: route.goto.clone() })
                .collect(),
            max_visits: i32::try_from(compiled.max_visits).unwrap_or(i32::MAX),
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
