//! Where an execution goes once a step completes: the first of the step's `next` rules that
//! holds, and the guard that keeps a loop from running away (each step's `max_visits`, counted
//! per execution in its row). A step without rules, or whose rules all fail to hold, moves on
//! to the next step in order.
//!
//! The conditions run inside the transaction that records the step, within the inline slice
//! of the jq budget: a routing condition is a cheap test of the state, and one that needs more
//! fails the step with a message that says so (see ARCHITECTURE.md, jq outside the write turn).

use serde_json::{Map, Value};

use crate::engine::definition::{CompiledPlaybook, CompiledStep};
use crate::engine::tx::{Row, context};
use crate::jq::{Allowance, Stopped};
use crate::package::Route;

/// Where a rule sends the execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Step(usize),
    /// Past the last step: the execution finishes.
    End,
}

impl Target {
    /// The step index the execution moves to (for [`Target::End`], one past the last).
    pub(crate) fn index(self, playbook: &CompiledPlaybook) -> usize {
        match self {
            Target::Step(index) => index,
            Target::End => playbook.steps.len(),
        }
    }

    /// The target as a package names it: a step's name, or `$end`.
    pub(crate) fn name(self, playbook: &CompiledPlaybook) -> &str {
        match self {
            Target::Step(index) => playbook.steps.get(index).map_or(Route::END, |step| step.name.as_str()),
            Target::End => Route::END,
        }
    }
}

/// Where the completed `step` sends the execution (its output already in `row.steps`):
/// `None` for the next step in order. Counts the visit of a step a rule sends it to; an error
/// (a condition that fails, or a visit past the target's `max_visits`) fails the step.
pub(crate) fn route(
    row: &mut Row,
    playbook: &CompiledPlaybook,
    step: &CompiledStep,
    allowance: Allowance,
) -> Result<Option<Target>, String> {
    let mut context_value: Option<Value> = None;
    for (rule, route) in step.next.iter().enumerate() {
        if let Some(condition) = &route.when {
            let context = context_value.get_or_insert_with(|| context(row));
            match condition.test_in(context, allowance) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(Stopped::Failed(error)) => {
                    return Err(format!("the condition of `next` rule {rule} failed: {error}"));
                }
                Err(Stopped::SliceSpent) => {
                    return Err(format!(
                        "the condition of `next` rule {rule} needs more than the inline slice of the jq budget; \
                         `next` conditions run inside the transaction that records the step and must be cheap"
                    ));
                }
            }
        }
        let target = route.goto.map_or(Target::End, Target::Step);
        if let Target::Step(index) = target {
            visit(row, playbook, rule, index)?;
        }
        return Ok(Some(target));
    }
    Ok(None)
}

/// Counts a visit of step `index`, unless it would be one more than the step allows.
fn visit(row: &mut Row, playbook: &CompiledPlaybook, rule: usize, index: usize) -> Result<(), String> {
    let Some(target) = playbook.steps.get(index) else {
        return Err(format!("`next` rule {rule} goes to step {index}, which the playbook does not have"));
    };
    let mut visits = match row.visits.take() {
        Some(Value::Object(visits)) => visits,
        _ => Map::new(),
    };
    let count = visits.get(&target.name).and_then(Value::as_u64).unwrap_or(0) + 1;
    let result = if count > u64::from(target.max_visits) {
        Err(format!(
            "`next` rule {rule} would send the execution to step `{}` a {}th time; `next` rules may send it there at \
             most {} times (`max_visits`), so the loop stops here",
            target.name, count, target.max_visits
        ))
    } else {
        visits.insert(target.name.clone(), Value::from(count));
        Ok(())
    };
    row.visits = Some(Value::Object(visits));
    result
}
