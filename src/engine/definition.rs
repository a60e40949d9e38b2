//! A runtime version compiled for running: jq programs compiled, schemas compiled, operations
//! merged into steps. Built once per runtime version and cached, so no step re-reads or
//! re-compiles its definition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::engine::error::{Error, Result};
use crate::engine::types::Runtime;
use crate::jq::{Program, Template};
use crate::package::validate::effective;
use crate::package::{
    DEFAULT_MAX_VISITS, Fallback, HeaderValue, HttpMethod, ModelChoice, OnFailure, Package, Route, StepKind,
};
use crate::schema::{self, Validator};

/// How long a webhook or model call may take when the step does not say.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Definition {
    pub runtime: Runtime,
    pub playbooks: HashMap<String, Arc<CompiledPlaybook>>,
    /// About how many bytes it holds in memory (see [`Definition::approximate_bytes`]).
    bytes: usize,
}

#[derive(Debug)]
pub struct CompiledPlaybook {
    pub name: String,
    pub role: Option<String>,
    pub input_schema: Option<Value>,
    pub input_validator: Option<Validator>,
    pub output_validator: Option<Validator>,
    pub output: Option<Program>,
    pub steps: Vec<CompiledStep>,
}

/// What a step does, by kind. A new kind of step is one variant here and one arm where
/// steps are prepared (`engine::step`) and, if it calls out, one where workers call
/// (`engine::worker`).
#[derive(Debug)]
pub enum StepRun {
    /// Runs a jq program over the step's input.
    Transform { program: Program },
    /// Asks a person: a TASK intervention with the step's form.
    Human,
    /// Asks the configured model (with the step's model choice), or an assistant through an
    /// AGENT intervention.
    Agent { model: ModelChoice },
    /// Sends the step's input to `url` with `method` and `headers` (secrets by name, resolved
    /// at call time from the server's configuration).
    Webhook { url: String, method: HttpMethod, headers: BTreeMap<String, HeaderValue> },
    /// Starts `playbook` of the same runtime version as a child execution.
    Playbook { playbook: String },
}

impl StepRun {
    pub fn kind(&self) -> StepKind {
        match self {
            StepRun::Transform { .. } => StepKind::Transform,
            StepRun::Human => StepKind::Human,
            StepRun::Agent { .. } => StepKind::Agent,
            StepRun::Webhook { .. } => StepKind::Webhook,
            StepRun::Playbook { .. } => StepKind::Playbook,
        }
    }

    /// The step's program, for a transform.
    fn program(&self) -> Option<&Program> {
        match self {
            StepRun::Transform { program } => Some(program),
            _ => None,
        }
    }
}

/// One rule of a step's `next`: when `when` holds (or always, without one), go to `goto`.
#[derive(Debug)]
pub struct CompiledRoute {
    pub when: Option<Program>,
    /// The index of the step to go to; `None` finishes the execution.
    pub goto: Option<usize>,
}

#[derive(Debug)]
pub struct CompiledStep {
    pub name: String,
    pub index: usize,
    /// What the step does: one variant per kind, holding exactly what that kind needs.
    pub run: StepRun,
    /// The role a person must hold to answer this step's interventions.
    pub role: Option<String>,
    pub prompt: Option<Template>,
    pub when: Option<Program>,
    pub input: Option<Program>,
    /// Where to go once the step completes (see [`CompiledRoute`]); empty: the next step.
    pub next: Vec<CompiledRoute>,
    /// How many times `next` rules may send one execution to this step.
    pub max_visits: u32,
    pub input_validator: Option<Validator>,
    pub output_schema: Option<Value>,
    pub output_validator: Option<Validator>,
    pub on_failure: OnFailure,
    pub simulated_output: Option<Value>,
    pub timeout: Duration,
    /// The package set `timeout_ms`: an AGENT intervention then expires after it, and the
    /// step falls back per `on_failure`. Without it, an AGENT intervention waits.
    pub timeout_explicit: bool,
    pub ui: Option<Value>,
}

impl CompiledStep {
    /// Attempts in all before the fallback applies.
    pub fn max_attempts(&self) -> u32 {
        self.on_failure.retry.as_ref().map_or(1, |retry| retry.max_attempts.max(1))
    }

    /// The wait before attempt `next_attempt` (2, 3, …): the backoff, doubled each time.
    pub fn backoff(&self, next_attempt: u32) -> Duration {
        let base = self.on_failure.retry.as_ref().map_or(0, |retry| retry.backoff_ms);
        let factor = 1u64 << next_attempt.saturating_sub(2).min(16);
        Duration::from_millis(base.saturating_mul(factor).min(86_400_000))
    }

    pub fn fallback(&self) -> Fallback {
        self.on_failure.then
    }
}

impl CompiledPlaybook {
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.name == name)
    }
}

/// What a JSON value costs in memory, parsed or compiled, per byte of its JSON text.
const JSON_FACTOR: usize = 8;

fn json_bytes(value: Option<&Value>) -> usize {
    value.map_or(0, |value| value.to_string().len() * JSON_FACTOR)
}

fn approximate_bytes(runtime: &Runtime, playbooks: &HashMap<String, Arc<CompiledPlaybook>>) -> usize {
    let package = serde_json::to_string(&runtime.package).map_or(0, |text| text.len() * JSON_FACTOR);
    let programs: usize = playbooks
        .values()
        .map(|playbook| {
            playbook.output.as_ref().map_or(0, Program::bytes)
                + json_bytes(playbook.input_schema.as_ref())
                + playbook
                    .steps
                    .iter()
                    .map(|step| {
                        [step.run.program(), step.when.as_ref(), step.input.as_ref()]
                            .into_iter()
                            .chain(step.next.iter().map(|route| route.when.as_ref()))
                            .flatten()
                            .map(Program::bytes)
                            .sum::<usize>()
                            + step.prompt.as_ref().map_or(0, Template::bytes)
                            + 2 * json_bytes(step.output_schema.as_ref())
                            + std::mem::size_of::<CompiledStep>()
                    })
                    .sum::<usize>()
        })
        .sum();
    package + programs
}

fn compile_schema(value: Option<&Value>) -> Result<Option<Validator>> {
    value.map(|value| schema::compile(value).map_err(Error::Internal)).transpose()
}

fn compile_program(code: Option<&str>) -> Result<Option<Program>> {
    code.map(|code| Program::compile(code).map_err(Error::Internal)).transpose()
}

impl Definition {
    /// Compiles a validated package. Errors here mean the package was not validated first.
    pub fn compile(runtime: Runtime) -> Result<Definition> {
        let package: &Package = &runtime.package;
        let mut playbooks = HashMap::new();
        for playbook in &package.playbooks {
            let mut steps = Vec::with_capacity(playbook.steps.len());
            for (index, step) in playbook.steps.iter().enumerate() {
                let operation = step
                    .operation
                    .as_ref()
                    .and_then(|name| package.operations.iter().find(|operation| &operation.name == name));
                let implementation =
                    effective(operation.map(|operation| &operation.implementation), &step.implementation);
                let kind =
                    implementation.kind.ok_or_else(|| Error::Internal(format!("step `{}` has no kind", step.name)))?;
                // Validation guarantees what each kind needs; a package that was not validated
                // fails here, naming the step.
                let missing =
                    |what: &str| Error::Internal(format!("{} step `{}` has no {what}", kind.as_str(), step.name));
                let run = match kind {
                    StepKind::Transform => StepRun::Transform {
                        program: compile_program(implementation.program.as_deref())?
                            .ok_or_else(|| missing("program"))?,
                    },
                    StepKind::Human => StepRun::Human,
                    StepKind::Agent => StepRun::Agent { model: implementation.model.clone().unwrap_or_default() },
                    StepKind::Webhook => StepRun::Webhook {
                        url: implementation.url.clone().ok_or_else(|| missing("url"))?,
                        method: implementation.method.unwrap_or_default(),
                        headers: implementation.headers.clone(),
                    },
                    StepKind::Playbook => StepRun::Playbook {
                        playbook: implementation.playbook.clone().ok_or_else(|| missing("playbook"))?,
                    },
                };
                let on_failure = step.on_failure.clone().unwrap_or_default();
                steps.push(CompiledStep {
                    name: step.name.clone(),
                    index,
                    run,
                    role: implementation.role.clone().or_else(|| playbook.role.clone()),
                    prompt: implementation
                        .prompt
                        .as_deref()
                        .map(|prompt| Template::compile(prompt).map_err(Error::Internal))
                        .transpose()?,
                    when: compile_program(step.when.as_deref())?,
                    next: step
                        .next
                        .iter()
                        .map(|route| {
                            let goto = match route.goto.as_str() {
                                Route::END => None,
                                name => {
                                    Some(playbook.steps.iter().position(|step| step.name == name).ok_or_else(|| {
                                        Error::Internal(format!("step `{}` goes to unknown step `{name}`", step.name))
                                    })?)
                                }
                            };
                            Ok(CompiledRoute { when: compile_program(route.when.as_deref())?, goto })
                        })
                        .collect::<Result<_>>()?,
                    max_visits: step.max_visits.unwrap_or(DEFAULT_MAX_VISITS),
                    input: compile_program(step.input.as_deref())?,
                    input_validator: compile_schema(implementation.input_schema.as_ref())?,
                    output_validator: compile_schema(implementation.output_schema.as_ref())?,
                    output_schema: implementation.output_schema.clone(),
                    on_failure,
                    simulated_output: implementation.simulated_output.clone(),
                    timeout: implementation.timeout_ms.map_or(DEFAULT_CALL_TIMEOUT, Duration::from_millis),
                    timeout_explicit: implementation.timeout_ms.is_some(),
                    ui: implementation.ui.clone(),
                });
            }
            playbooks.insert(
                playbook.name.clone(),
                Arc::new(CompiledPlaybook {
                    name: playbook.name.clone(),
                    role: playbook.role.clone(),
                    input_schema: playbook.input_schema.clone(),
                    input_validator: compile_schema(playbook.input_schema.as_ref())?,
                    output_validator: compile_schema(playbook.output_schema.as_ref())?,
                    output: compile_program(playbook.output.as_deref())?,
                    steps,
                }),
            );
        }
        let bytes = approximate_bytes(&runtime, &playbooks);
        Ok(Definition { runtime, playbooks, bytes })
    }

    /// About how many bytes the definition holds: its compiled programs as measured when they
    /// were compiled, plus its package and schemas by their JSON size (times a factor for the
    /// parsed and compiled forms). An estimate for the cache's bound, not an exact figure.
    pub fn approximate_bytes(&self) -> usize {
        self.bytes
    }

    pub fn playbook(&self, name: &str) -> Result<&Arc<CompiledPlaybook>> {
        self.playbooks
            .get(name)
            .ok_or_else(|| Error::PlaybookNotFound { runtime: self.runtime.id.clone(), playbook: name.to_owned() })
    }
}
