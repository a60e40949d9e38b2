//! Steering: what a person may do to an execution. Each action is one transition, in one file,
//! and is one history event (RESPOND adds the step it completes). The table below is the whole
//! set of legal moves; anything else is a CONFLICT.

mod abort;
mod back;
mod edit_state;
mod jump;
mod pause;
mod respond;
mod resume;
mod retry;
mod skip;

use std::sync::Arc;

use serde_json::Value;

use crate::engine::access::{Access, Resource, authorize, authorize_steering, may_steer};
use crate::engine::error::{Error, Result};
use crate::engine::records;
use crate::engine::tx::Tx;
use crate::engine::types::{
    Action, Execution, ExecutionId, ExecutionStatus, Intervention, InterventionId, InterventionStatus, Principal,
    StateOnMove,
};
use crate::engine::{Inner, advance};

use ExecutionStatus::{Failed, Paused, Running, Waiting};

/// An action with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Answer a pending intervention; validated against its form.
    Respond {
        intervention_id: InterventionId,
        response: Value,
        notes: Option<String>,
    },
    /// Run the current step again.
    Retry,
    /// Skip the current step, optionally supplying its output (validated).
    Skip {
        output: Option<Value>,
    },
    /// Return to the previous checkpoint, restoring its state or keeping the current one.
    Back {
        state: StateOnMove,
    },
    /// Go to any step, with the context of the nearest checkpoint before it, or keeping the
    /// current one.
    Jump {
        step: String,
        state: StateOnMove,
    },
    /// Apply an RFC 7396 merge patch to `state`.
    EditState {
        patch: Value,
    },
    Pause,
    Resume,
    Abort {
        reason: String,
    },
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Command::Respond { .. } => Action::Respond,
            Command::Retry => Action::Retry,
            Command::Skip { .. } => Action::Skip,
            Command::Back { .. } => Action::Back,
            Command::Jump { .. } => Action::Jump,
            Command::EditState { .. } => Action::EditState,
            Command::Pause => Action::Pause,
            Command::Resume => Action::Resume,
            Command::Abort { .. } => Action::Abort,
        }
    }
}

/// The statuses from which each action is legal. A failed execution may be reopened by a move
/// (retry, skip, back, jump) unless it is a child, whose parent has already handled the failure.
#[rustfmt::skip]
pub const LEGAL: &[(Action, &[ExecutionStatus])] = &[
    (Action::Respond,   &[Waiting, Paused]),
    (Action::Retry,     &[Running, Waiting, Paused, Failed]),
    (Action::Skip,      &[Running, Waiting, Paused, Failed]),
    (Action::Back,      &[Running, Waiting, Paused, Failed]),
    (Action::Jump,      &[Running, Waiting, Paused, Failed]),
    (Action::EditState, &[Running, Waiting, Paused, Failed]),
    (Action::Pause,     &[Running, Waiting]),
    (Action::Resume,    &[Paused]),
    (Action::Abort,     &[Running, Waiting, Paused, Failed]),
];

pub fn is_legal(action: Action, status: ExecutionStatus) -> bool {
    LEGAL.iter().any(|(legal, from)| *legal == action && from.contains(&status))
}

/// [`is_legal`], and a failed child is not reopened: its parent has handled the failure.
pub fn is_legal_for(action: Action, status: ExecutionStatus, is_child: bool) -> bool {
    let reopens_child =
        status == Failed && is_child && matches!(action, Action::Retry | Action::Skip | Action::Back | Action::Jump);
    is_legal(action, status) && !reopens_child
}

/// What `principal` may do to `intervention` now: the actions its kind offers while it is
/// pending, as far as the steering rule lets this caller.
pub fn allowed_on(principal: &Principal, intervention: &Intervention) -> Vec<Action> {
    if intervention.status != InterventionStatus::Pending {
        return Vec::new();
    }
    let role = intervention.role.as_deref();
    let offered = intervention.allowed_actions.iter().copied();
    offered.filter(|action| may_steer(principal, intervention.environment, *action, role)).collect()
}

/// The role of the step an execution stands at (the step's own, else the playbook's): whoever
/// decides for that step must hold it.
pub fn role_at(playbook: &crate::engine::definition::CompiledPlaybook, index: i32) -> Option<&str> {
    let step = usize::try_from(index).ok().and_then(|index| playbook.steps.get(index));
    step.and_then(|step| step.role.as_deref()).or(playbook.role.as_deref())
}

/// Applies one action in one transaction and returns the execution as it now stands.
pub(crate) async fn apply(
    engine: &Arc<Inner>,
    principal: &Principal,
    id: ExecutionId,
    command: Command,
) -> Result<Execution> {
    let action = command.action();
    let (tx, mut row) = Tx::lock(engine, &id.to_string()).await?;
    // Any error rolls back at once (see `Tx::end`): a transaction merely dropped would keep
    // SQLite's write lock until its connection is next used.
    let ((row, step_names), moved) = advance::run(tx, async |tx| {
        let playbook = steer(engine, principal, id, command, action, tx, &mut row).await?;
        let step_names: Vec<String> = playbook.steps.iter().map(|step| step.name.clone()).collect();
        tx.save(row.clone()).await?;
        Ok((row, step_names))
    })
    .await?;
    // The steps that follow ran inline at commit; answer with where they left it.
    records::execution(&moved.latest(row), &step_names)
}

/// Checks and applies one action inside the caller's transaction.
async fn steer(
    engine: &Arc<Inner>,
    principal: &Principal,
    id: ExecutionId,
    command: Command,
    action: Action,
    tx: &mut Tx,
    row: &mut crate::engine::tx::Row,
) -> Result<Arc<crate::engine::definition::CompiledPlaybook>> {
    let environment = row.environment;
    authorize(principal, environment, Access::Write, Resource::Execution)?;
    let current = row.status;
    if !is_legal_for(action, current, row.parent_id.is_some()) {
        return Err(Error::WrongState { id, status: current, action });
    }
    let definition = engine.definition(&row.runtime_id, row.runtime_version).await?;
    let playbook = definition.playbook(&row.playbook)?.clone();
    if action == Action::Respond {
        // The intervention's own role is checked once it is found.
        authorize(principal, environment, Access::Write, Resource::Intervention)?;
    } else {
        authorize_steering(principal, environment, action, role_at(&playbook, row.current_step_index))?;
    }
    let actor = principal.id.as_str();
    match command {
        Command::Respond { intervention_id, response, notes } => {
            respond::apply(tx, row, &playbook, principal, intervention_id, response, notes).await?
        }
        Command::Retry => retry::apply(tx, row, &playbook, actor).await?,
        Command::Skip { output } => skip::apply(tx, row, &playbook, output, actor).await?,
        Command::Back { state } => back::apply(tx, row, &playbook, state, actor).await?,
        Command::Jump { step, state } => jump::apply(tx, row, &playbook, &step, state, actor).await?,
        Command::EditState { patch } => edit_state::apply(tx, row, patch, actor).await?,
        Command::Pause => pause::apply(tx, row, current, actor).await?,
        Command::Resume => resume::apply(tx, row, actor).await?,
        Command::Abort { reason } => abort::apply(tx, row, &reason, actor).await?,
    }
    Ok(playbook)
}

/// Where BACK and JUMP go: a step, the checkpoint whose context they may restore, and what
/// they do with the current state.
pub(crate) struct Move {
    pub target: i32,
    pub checkpoint: crate::store::entity::checkpoint::Model,
    pub state: StateOnMove,
    pub back: bool,
}

/// Moves to a checkpoint share this: the context comes back (or, with KEEP, stays), the
/// position moves, and the move is recorded as JUMPED, saying which, with a checkpoint of its
/// own.
pub(crate) async fn restore(
    tx: &mut Tx,
    row: &mut crate::engine::tx::Row,
    playbook: &crate::engine::definition::CompiledPlaybook,
    to: Move,
    actor: &str,
) -> Result<()> {
    use crate::engine::progress::{leave_position, position, set_status};

    let Move { target, checkpoint, state, back } = to;
    let from = row.current_step_index;
    leave_position(tx, row, actor).await?;
    let state_discarded = match state {
        StateOnMove::Restore => {
            let discarded = row.state != checkpoint.state || row.steps != checkpoint.steps;
            row.steps = checkpoint.steps;
            row.state = checkpoint.state;
            discarded
        }
        StateOnMove::Keep => false,
    };
    row.error = None;
    position(row, target);
    let step = playbook.steps.get(target as usize).map(|step| step.name.clone());
    let payload = crate::engine::payloads::Jumped {
        from: playbook.steps.get(from as usize).map(|step| step.name.clone()),
        from_index: i64::from(from),
        to: step.clone(),
        to_index: i64::from(target),
        checkpoint_seq: checkpoint.seq,
        back,
        state,
        state_discarded,
    };
    let seq = tx.record(row, actor, step.as_deref(), payload).await?;
    tx.checkpoint(row, seq, step.as_deref()).await?;
    reopen(row);
    set_status(row, ExecutionStatus::Running);
    tx.wake(&row.id);
    Ok(())
}

/// A failed execution that a person moves runs again.
pub(crate) fn reopen(row: &mut crate::engine::tx::Row) {
    if row.status == Failed {
        row.status = Running;
        row.error = None;
    }
}

#[cfg(test)]
mod tests;
