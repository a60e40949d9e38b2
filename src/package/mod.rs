//! The package format: what an organisation writes to describe its work.
//!
//! These types are the single definition of the format. `schema/package.schema.json` is generated
//! from them (`orgata package schema`), every package is validated against that schema before
//! the semantic checks in [`validate`], and the engine compiles the validated package into its
//! own runtime definition.

pub mod limits;
pub mod load;
mod tests_check;
pub mod validate;
pub mod webhooks;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use limits::Limits;
pub use load::{LoadedPackage, SourceMap, load_document, load_path};
pub use validate::{Problem, validate};

/// A package: the roles people play, the operations they know how to do, and the playbooks
/// that sequence operations into a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Orgata package")]
pub struct Package {
    /// The package's slug, e.g. `kitchen`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub package: String,
    /// Semantic version of the package, e.g. `1.0.0`.
    #[schemars(regex(pattern = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"))]
    pub version: String,
    /// What the package is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The roles people play.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Reusable step implementations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// Processes: sequences of steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playbooks: Vec<Playbook>,
    /// Example runs, checked by `orgata package test`: each runs a playbook in the
    /// `simulation` environment and compares how it ends with what is expected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<PackageTest>,
}

/// One example run of a playbook, with what it must end with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageTest {
    /// The test's name, unique in the package.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_ -]{0,62}$"))]
    pub name: String,
    /// The playbook it runs.
    pub playbook: String,
    /// The execution's input; it must fit the playbook's input schema.
    #[serde(default)]
    pub input: Value,
    /// Step outputs for this run, by step name (`step` in the playbook run, `playbook/step` in
    /// another playbook of the package, such as a child's): they replace the steps'
    /// `simulated_output`, so a test can take a branch (a person declines, a webhook refuses).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub outputs: serde_json::Map<String, Value>,
    /// How the run must end.
    #[serde(default)]
    pub expect: Expectation,
}

/// How a test's run must end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The status it must end in.
    #[serde(default)]
    pub status: ExpectedStatus,
    /// The output it must produce, exactly (checked when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Text the execution's error must contain (for an expected failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a test's run must stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExpectedStatus {
    /// It finished with an output.
    #[default]
    Completed,
    /// It failed.
    Failed,
    /// It waits for a person (a human step without an output for this run).
    Waiting,
}

impl ExpectedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectedStatus::Completed => "COMPLETED",
            ExpectedStatus::Failed => "FAILED",
            ExpectedStatus::Waiting => "WAITING",
        }
    }
}

/// A role people play; human steps are assigned to roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The role's name, unique in the package.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What people in this role do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What people in this role can do, as free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// What runs for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A jq program over the execution context.
    Transform,
    /// A person fills in a form (the step's output schema).
    Human,
    /// A model answers with JSON that fits the step's output schema.
    Agent,
    /// An HTTP POST to an allow-listed URL; the JSON reply is the output.
    Webhook,
    /// A child execution of another playbook of the same package.
    Playbook,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Transform => "transform",
            StepKind::Human => "human",
            StepKind::Agent => "agent",
            StepKind::Webhook => "webhook",
            StepKind::Playbook => "playbook",
        }
    }
}

/// The parts of a step implementation that an operation and a playbook step share. A step that
/// references an operation inherits every field it does not set itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Implementation {
    /// What runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
    /// The role a human step is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Instructions for the person or model. `{{ jq }}` placeholders are filled from the
    /// execution context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The jq program of a `transform` step, run over the step's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The URL a `webhook` step POSTs to; it must be on the environment's allow-list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The playbook a `playbook` step runs as a child execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// JSON Schema (draft 2020-12) of the step's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// JSON Schema (draft 2020-12) of the step's output; for a human step, its form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The output used in the `simulation` environment instead of calling out (webhook,
    /// agent) or asking a person (human).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_output: Option<Value>,
    /// How long a webhook or model call may take, in milliseconds (default 30 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub timeout_ms: Option<u64>,
    /// Expected duration, as free text for people (e.g. `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_time: Option<String>,
    /// Presentation hints for generated frontends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Value>,
    /// An `agent` step's model and how to ask it; the server's OpenAI-compatible endpoint
    /// (`--model-url`) serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelChoice>,
    /// A `webhook` step's HTTP method (default POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// Headers a `webhook` step sends: text, or `{secret: NAME}` for a secret the server is
    /// configured with (`--secrets-file`). Secret values never appear in packages, history or
    /// logs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: BTreeMap<String, HeaderValue>,
}

/// The methods a `webhook` step may use; each sends the step's input as a JSON body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// A webhook header's value: text as written, or a secret by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Secret {
        /// The name of a secret in the server's `--secrets-file`.
        #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"))]
        secret: String,
    },
}

/// Which model an `agent` step asks, and how. Unset fields leave the endpoint's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelChoice {
    /// The model's name at the endpoint (default: the server's `--model-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Instructions for the model, sent as the system message ahead of Orgata's own (which
    /// asks for one JSON value that fits the step's output schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20_000))]
    pub system: Option<String>,
    /// The most tokens the answer may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tokens: Option<u32>,
}

/// A named, reusable step implementation.
// serde cannot combine `deny_unknown_fields` with `flatten`; the JSON Schema, which every
// package is checked against first, rejects unknown fields instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("additionalProperties" = false))]
pub struct Operation {
    /// The operation's name, unique in the package.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What the operation does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(flatten)]
    pub implementation: Implementation,
}

/// A process: steps run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// The playbook's name, unique in the package.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What the process achieves.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The role that owns the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// JSON Schema (draft 2020-12) of the execution's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// JSON Schema (draft 2020-12) of the execution's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// A jq program over the execution context that computes the output; by default the
    /// output of the last step that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The steps, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
}

/// One step of a playbook.
// serde cannot combine `deny_unknown_fields` with `flatten`; the JSON Schema, which every
// package is checked against first, rejects unknown fields instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("additionalProperties" = false))]
pub struct Step {
    /// The step's name, unique in the playbook; its output is `.steps["<name>"]`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What the step does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The operation this step runs; fields set on the step override the operation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A jq program over the execution context that computes the step's input; by default
    /// the context itself (for a `playbook` step, the execution's input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// A jq condition over the execution context; when it is `false` or `null` the step is
    /// skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What happens when the step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// Where to go once the step completes: the first rule whose `when` holds (a rule without
    /// `when` always does) sends the execution to its `goto` step, earlier or later (`$end`
    /// finishes the execution); when none holds, the next step in order runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub next: Vec<Route>,
    /// How many times `next` rules may send one execution to this step: a loop's guard. One
    /// more fails the step whose rule would send it (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_visits: Option<u32>,
    #[serde(flatten)]
    pub implementation: Implementation,
}

/// One rule of a step's `next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A jq condition over the execution context, this step's output included; the rule
    /// applies when it is neither `false` nor `null`. It runs inside the transaction that
    /// records the step, so it must be cheap (within the inline slice of the jq budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The step to go to, by name, in the same playbook; or `$end` to finish the execution.
    #[schemars(regex(pattern = r"^(\$end|[A-Za-z0-9][A-Za-z0-9_-]{0,62})$"))]
    pub goto: String,
}

impl Route {
    /// The `goto` that finishes the execution.
    pub const END: &'static str = "$end";
}

/// How many times `next` rules may send one execution to a step, unless it says.
pub const DEFAULT_MAX_VISITS: u32 = 100;

/// Retries with backoff, then a fallback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    /// Run the step again before falling back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// What happens once the attempts are used up.
    #[serde(default)]
    pub then: Fallback,
}

/// How often, and how far apart, a failed step is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included.
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles for each further attempt.
    #[serde(default)]
    #[schemars(range(max = 86_400_000))]
    pub backoff_ms: u64,
}

/// What happens when a step has failed for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// The execution fails.
    #[default]
    Fail,
    /// A FAILURE intervention asks a person to retry, skip, supply the output or abort.
    Human,
}

/// The JSON Schema of the package format, as committed at `schema/package.schema.json`.
pub fn json_schema() -> Value {
    schemars::schema_for!(Package).to_value()
}

/// The committed text of `schema/package.schema.json`: pretty JSON with a final newline.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}
