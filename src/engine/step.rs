//! What the current step comes to. A step is *prepared* without leaving the process (its
//! condition, MANUAL mode's gate, its input, then a transform, parking on a person, or
//! starting a child) or needs a *call* (a webhook or a model), which a worker makes outside
//! any transaction. Either way its outcome is then *applied* inside a transaction.

use serde_json::{Value, json};

use crate::engine::Inner;
use crate::engine::children::{nesting_depth, start_child};
use crate::engine::definition::{CompiledPlaybook, CompiledStep, Definition, StepRun};
use crate::engine::error::{Error, Result};
use crate::engine::progress::{complete_step, fail_step, request_intervention, skip_step};
use crate::engine::tx::{Row, Tx, context};
use crate::engine::types::{Environment, InterventionKind, Mode, Principal};
use crate::engine::webhook;
use crate::jq::{Allowance, Stopped};
use crate::schema;

/// What running a step came to.
pub(crate) enum Outcome {
    Output(Value),
    Failed(String),
    Park(InterventionKind, Option<String>),
    Child(Value),
    Skipped(String),
    /// A person moved the execution while the step was being prepared; nothing to commit.
    Superseded,
}

/// What a step needs: nothing beyond the database (its outcome is known), or a call outside
/// the process (a webhook or a model), which a worker makes outside any transaction.
pub(crate) enum Prepared {
    Ready(Outcome),
    Call(Call),
    /// One of its programs spent the slice it may run for inside a transaction: a worker
    /// prepares the step again with the whole budget, outside any transaction.
    SliceSpent,
}

pub(crate) struct Call {
    pub(crate) input: Value,
    pub(crate) prompt: Option<String>,
    pub(crate) context: Value,
}

/// Records what the current step came to, inside the caller's transaction.
pub(crate) async fn apply(
    tx: &mut Tx,
    row: &mut Row,
    definition: &Definition,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    outcome: Outcome,
) -> Result<()> {
    match checked(step, outcome, tx.engine.config.max_output_bytes) {
        Outcome::Output(output) => complete_step(tx, row, playbook, step, output, Principal::SYSTEM).await,
        Outcome::Skipped(reason) => skip_step(tx, row, playbook, step, None, &reason, Principal::SYSTEM).await,
        Outcome::Failed(error) => fail_step(tx, row, playbook, step, &error, Principal::SYSTEM).await,
        Outcome::Park(kind, prompt) => {
            let form = match kind {
                InterventionKind::Checkpoint => json!({"type": "object"}),
                _ => step.output_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
            };
            request_intervention(tx, row, playbook, step, kind, prompt, form).await
        }
        Outcome::Child(input) => {
            let StepRun::Playbook { playbook: name } = &step.run else {
                return Err(Error::Internal(format!("step `{}` starts no playbook", step.name)));
            };
            // The deploy-time check bounds new runtimes; this one also holds for versions
            // deployed before it or under a larger limit.
            let limit = tx.engine.config.limits.nesting_depth;
            let depth = nesting_depth(tx, row, limit).await?;
            if depth >= limit {
                let error = format!(
                    "starting playbook `{name}` would nest executions {} deep; playbooks may nest at most {limit} deep \
                     (--max-nesting-depth)",
                    depth + 1
                );
                return fail_step(tx, row, playbook, step, &error, Principal::SYSTEM).await;
            }
            let child = definition.playbook(name)?.clone();
            start_child(tx, row, step, &child, input).await
        }
        Outcome::Superseded => Ok(()),
    }
}

/// An output larger than `--max-output-bytes`, or that does not fit the step's output schema,
/// fails the step: it is never stored.
fn checked(step: &CompiledStep, outcome: Outcome, max_bytes: usize) -> Outcome {
    if let Outcome::Output(output) = &outcome {
        let size = json_size(output, max_bytes);
        if size > max_bytes {
            return Outcome::Failed(format!(
                "the step's output is larger than {max_bytes} bytes of JSON (--max-output-bytes); \
                 it was not stored"
            ));
        }
    }
    match (outcome, &step.output_validator) {
        (Outcome::Output(output), Some(validator)) => match schema::validate(validator, &output) {
            Ok(()) => Outcome::Output(output),
            Err(errors) => Outcome::Failed(format!(
                "the output does not fit the step's output schema: {}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
        },
        (outcome, _) => outcome,
    }
}

/// What the current step comes to without leaving the process: its condition, MANUAL mode's
/// gate, its input, then the step itself, unless it calls out. Its programs run within
/// `allowance`: inside a transaction, a slice (see [`Prepared::SliceSpent`]).
pub(crate) fn prepare(
    engine: &Inner,
    definition: &Definition,
    step: &CompiledStep,
    row: &Row,
    allowance: Allowance,
) -> Result<Prepared> {
    match prepared(engine, definition, step, row, allowance) {
        Ok(prepared) => Ok(prepared),
        Err(Early::Failed(error)) => Ok(Prepared::Ready(Outcome::Failed(error))),
        Err(Early::SliceSpent) => Ok(Prepared::SliceSpent),
        Err(Early::Engine(error)) => Err(error),
    }
}

/// Why [`prepared`] stopped before the step itself: the step comes to something already (it
/// failed, or a program spent its slice), or the engine failed.
enum Early {
    /// The step fails, for this reason.
    Failed(String),
    /// A program spent its slice (see [`Prepared::SliceSpent`]).
    SliceSpent,
    Engine(Error),
}

impl From<Error> for Early {
    fn from(error: Error) -> Early {
        Early::Engine(error)
    }
}

/// The value of an evaluation; a failure fails the step, saying `what` failed.
fn evaluated<T>(result: std::result::Result<T, Stopped>, what: &str) -> std::result::Result<T, Early> {
    result.map_err(|stopped| match stopped {
        Stopped::SliceSpent => Early::SliceSpent,
        Stopped::Failed(error) => Early::Failed(format!("{what}: {error}")),
    })
}

fn prepared(
    engine: &Inner,
    definition: &Definition,
    step: &CompiledStep,
    row: &Row,
    allowance: Allowance,
) -> std::result::Result<Prepared, Early> {
    let context = context(row);
    if let Some(condition) = &step.when
        && !evaluated(condition.test_in(&context, allowance), "the step's condition failed")?
    {
        return Ok(Prepared::Ready(Outcome::Skipped("its condition is false".to_owned())));
    }
    if row.mode == Mode::Manual && !row.gate_open {
        let prompt =
            format!("Approve step `{}` ({}) to run it, or skip, jump or abort.", step.name, step.run.kind().as_str());
        return Ok(Prepared::Ready(Outcome::Park(InterventionKind::Checkpoint, Some(prompt))));
    }
    let environment: Environment = row.environment;
    let input = step_input(step, &context, allowance)?;
    let simulated = (environment == Environment::Simulation).then(|| step.simulated_output.clone()).flatten();
    let prompt = match &step.prompt {
        Some(template) => Some(evaluated(template.render_in(&context, allowance), "the step's prompt failed")?),
        None => None,
    };
    let outcome = match &step.run {
        StepRun::Transform { program } => {
            Outcome::Output(evaluated(program.one_in(&input, allowance), "the program failed")?)
        }
        StepRun::Human => match simulated {
            Some(output) => Outcome::Output(output),
            None => Outcome::Park(InterventionKind::Task, prompt),
        },
        StepRun::Agent { .. } => match (simulated, &engine.model) {
            (Some(output), _) => Outcome::Output(output),
            (None, Some(_)) if environment != Environment::Simulation => {
                return Ok(Prepared::Call(Call { input, prompt, context }));
            }
            (None, _) => Outcome::Park(InterventionKind::Agent, prompt),
        },
        StepRun::Webhook { url, .. } => {
            if environment == Environment::Simulation {
                // Nothing leaves the server in simulation.
                Outcome::Output(simulated.unwrap_or(Value::Null))
            } else if !webhook::allowed(engine.config.webhook_allow_list(environment), url) {
                Outcome::Failed(format!("the webhook URL is not on the {environment} allow-list"))
            } else {
                return Ok(Prepared::Call(Call { input, prompt, context }));
            }
        }
        StepRun::Playbook { playbook } => {
            definition.playbook(playbook)?;
            Outcome::Child(input)
        }
    };
    Ok(Prepared::Ready(outcome))
}

/// The length of `value` as JSON, counted without building the text, up to just past `limit`.
pub(crate) fn json_size(value: &Value, limit: usize) -> usize {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.written += bytes.len();
            if self.written > self.limit {
                // Stops the serialiser: the size is known to be over the limit.
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    let _ = serde_json::to_writer(&mut counter, value);
    counter.written
}

/// The step's input: its `input` program over the context, or the context itself (for a
/// `playbook` step, the execution's input); checked against the step's input schema.
fn step_input(step: &CompiledStep, context: &Value, allowance: Allowance) -> std::result::Result<Value, Early> {
    let input = match (&step.input, &step.run) {
        (Some(program), _) => evaluated(program.one_in(context, allowance), "the step's input program failed")?,
        (None, StepRun::Playbook { .. }) => context.get("input").cloned().unwrap_or(Value::Null),
        (None, _) => context.clone(),
    };
    if let (Some(validator), Some(_)) = (&step.input_validator, &step.input)
        && let Err(errors) = schema::validate(validator, &input)
    {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let error = format!("the step's input does not fit its input schema: {}", errors.join("; "));
        return Err(Early::Failed(error));
    }
    Ok(input)
}
