//! What clients send: the mutation inputs and list filters (also serde and schemars, so REST and
//! MCP accept exactly what GraphQL does), and API keys.

use async_graphql::{InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::*;
use crate::engine as core;

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
    /// BACK and JUMP: restore the target checkpoint's state and step outputs (RESTORE, the
    /// default) or keep the current ones (KEEP). The JUMPED event records which, and whether
    /// restoring discarded anything.
    pub state: Option<StateOnMove>,
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
