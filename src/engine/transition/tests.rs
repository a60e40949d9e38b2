//! The table's own checks, the coverage of every (status, action) pair through
//! `Engine::act`, and the world the transition tests beside each action share: an engine on
//! a fresh database with one package whose playbooks bring an execution into every status.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::*;
use crate::engine::{
    Checkpoint, DeployRequest, Engine, EngineConfig, Environment, ErrorCode, Event, EventType, ExecuteRequest,
    InterventionFilter, Mode,
};
use crate::package::load::{Format, load_document};

#[test]
fn every_action_has_a_row_in_the_table() {
    for action in Action::ALL {
        assert!(LEGAL.iter().any(|(legal, _)| legal == action), "{action} has no row");
    }
}

#[test]
fn finished_executions_accept_nothing_but_what_the_table_says() {
    for action in Action::ALL {
        assert!(!is_legal(*action, ExecutionStatus::Completed));
        assert!(!is_legal(*action, ExecutionStatus::Aborted));
    }
}

/// Playbooks that park, retry, fail and finish, so that every status can be reached:
/// - `ask`: a transform, a person's step (index 1), then a transform that adds them up;
/// - `flaky`: a transform, then one that fails until `state.fixed` is set and retries ten
///   minutes later, so the execution stays RUNNING;
/// - `broken`: the same step without retries, so the execution FAILS at index 1;
/// - `first`: a person's step at index 0, where there is nothing to go back to;
/// - `parent`: runs `broken` as a child execution.
const PACKAGE: &str = r#"package: steer
version: 1.0.0
roles:
  - name: clerk
playbooks:
  - name: ask
    role: clerk
    steps:
      - name: one
        kind: transform
        program: '{n: 1}'
      - name: ask
        kind: human
        prompt: What should be added?
        output_schema: {type: object, required: [answer], properties: {answer: {type: integer}}}
      - name: three
        kind: transform
        program: '{sum: (.steps.one.n + (.steps.ask.answer // 0))}'
  - name: flaky
    steps:
      - name: one
        kind: transform
        program: '{n: 1}'
      - name: fragile
        kind: transform
        program: 'if .state.fixed then {ok: true} else error("the printer is on fire") end'
        on_failure: {retry: {max_attempts: 3, backoff_ms: 600000}, then: fail}
  - name: broken
    steps:
      - name: one
        kind: transform
        program: '{n: 1}'
      - name: fragile
        kind: transform
        program: 'if .state.fixed then {ok: true} else error("the printer is on fire") end'
  - name: first
    role: clerk
    steps:
      - name: ask
        kind: human
        output_schema: {type: object}
      - name: done
        kind: transform
        program: '{done: true}'
  - name: parent
    steps:
      - name: call
        kind: playbook
        playbook: broken
"#;

/// A principal that may do anything; its id is the actor of what it does.
pub(super) fn admin() -> Principal {
    Principal::new("admin", Vec::<String>::new(), crate::engine::Grants::all())
}

/// An engine on a fresh database (SQLite, or a fresh schema of `ORGATA_TEST_DATABASE_URL`)
/// with [`PACKAGE`] deployed as `steer-v1`.
pub(super) struct World {
    pub(super) engine: Engine,
    _directory: tempfile::TempDir,
}

impl World {
    pub(super) async fn start() -> World {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut config = EngineConfig::for_test_database(directory.path());
        config.pool_size = 4;
        config.workers = 2;
        let engine = Engine::start(config).await.expect("engine starts");
        let package = load_document("steer.yaml", PACKAGE, Format::Yaml).expect("the package parses");
        let request = DeployRequest { runtime_id: None, environment: Environment::Development, package };
        let runtime = engine.deploy(&admin(), request).await.expect("the package deploys");
        assert_eq!(runtime.id, "steer-v1");
        World { engine, _directory: directory }
    }

    /// Starts `playbook`; returns the execution as the start acknowledged it (its pure
    /// steps have run inline, so it is parked, finished, or waiting to retry).
    pub(super) async fn run(&self, playbook: &str) -> Execution {
        let request = ExecuteRequest {
            runtime_id: "steer-v1".into(),
            playbook: playbook.into(),
            input: json!({}),
            mode: Mode::Auto,
            idempotency_key: None,
        };
        self.engine.execute(&admin(), request).await.expect("the execution starts")
    }

    pub(super) async fn act(&self, id: ExecutionId, command: Command) -> Result<Execution> {
        self.engine.act(&admin(), id, command).await
    }

    pub(super) async fn execution(&self, id: ExecutionId) -> Execution {
        self.engine.execution(&admin(), id).await.expect("the execution exists")
    }

    /// The events after `seq`, oldest first.
    pub(super) async fn events_after(&self, id: ExecutionId, seq: i64) -> Vec<Event> {
        self.engine.history(&admin(), id, seq, 10_000).await.expect("history")
    }

    pub(super) async fn checkpoints(&self, id: ExecutionId) -> Vec<Checkpoint> {
        self.engine.checkpoints(&admin(), id).await.expect("checkpoints")
    }

    pub(super) async fn pending(&self, id: ExecutionId) -> Vec<Intervention> {
        let filter = InterventionFilter {
            execution_id: Some(id),
            status: Some(InterventionStatus::Pending),
            ..Default::default()
        };
        self.engine.interventions(&admin(), &filter, 100).await.expect("interventions")
    }

    /// The one pending intervention of a parked execution.
    pub(super) async fn the_pending(&self, id: ExecutionId) -> Intervention {
        let mut pending = self.pending(id).await;
        assert_eq!(pending.len(), 1, "exactly one pending intervention: {pending:?}");
        pending.remove(0)
    }

    pub(super) async fn intervention(&self, id: InterventionId) -> Intervention {
        self.engine.intervention(&admin(), id).await.expect("the intervention exists")
    }

    /// The execution once `done` holds, woken by its events rather than by polling; fails
    /// with where it stands after ten seconds.
    pub(super) async fn wait_for(&self, id: ExecutionId, what: &str, done: impl Fn(&Execution) -> bool) -> Execution {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let execution = self.execution(id).await;
                if done(&execution) {
                    return execution;
                }
                let events = self.engine.subscribe(id, execution.last_seq);
                let mut events = std::pin::pin!(events);
                events.next().await;
            }
        })
        .await;
        match waited {
            Ok(execution) => execution,
            Err(_) => {
                let execution = self.execution(id).await;
                panic!("execution {id} never became {what}: {execution:?}")
            }
        }
    }

    /// An execution standing in `status`. No wildcard: a new status does not compile
    /// until it has a way in here.
    pub(super) async fn in_status(&self, status: ExecutionStatus) -> Execution {
        let execution = match status {
            ExecutionStatus::Running => {
                // `fragile` failed once and waits ten minutes for its second attempt.
                let execution = self.run("flaky").await;
                assert_eq!(execution.attempt, 2, "{execution:?}");
                execution
            }
            ExecutionStatus::Waiting => self.run("ask").await,
            ExecutionStatus::Paused => {
                let waiting = self.run("ask").await;
                self.act(waiting.id, Command::Pause).await.expect("paused")
            }
            ExecutionStatus::Completed => {
                let waiting = self.run("ask").await;
                let intervention = self.the_pending(waiting.id).await;
                let respond =
                    Command::Respond { intervention_id: intervention.id, response: json!({"answer": 1}), notes: None };
                self.act(waiting.id, respond).await.expect("answered")
            }
            ExecutionStatus::Failed => self.run("broken").await,
            ExecutionStatus::Aborted => {
                let waiting = self.run("ask").await;
                self.act(waiting.id, Command::Abort { reason: "not needed".into() }).await.expect("aborted")
            }
        };
        assert_eq!(execution.status, status, "{execution:?}");
        execution
    }

    /// Asserts that `command` is refused with `code` and leaves the execution as it was.
    pub(super) async fn assert_refused(&self, id: ExecutionId, command: Command, code: ErrorCode) -> Error {
        let before = self.execution(id).await;
        let error = self.act(id, command.clone()).await.expect_err("the action is refused");
        assert_eq!(error.code(), code, "{command:?} on a {} execution: {error}", before.status);
        let after = self.execution(id).await;
        assert_eq!(
            (after.status, after.last_seq, &after.state, after.current_step_index),
            (before.status, before.last_seq, &before.state, before.current_step_index),
            "a refused {command:?} changed the execution"
        );
        error
    }
}

/// Arguments that make `action` valid on `execution` (a RESPOND answers its pending
/// intervention, or names a made-up one where there is none). No wildcard: a new action
/// does not compile until the coverage test can take it.
async fn command_for(world: &World, action: Action, execution: &Execution) -> Command {
    match action {
        Action::Respond => {
            let pending = world.pending(execution.id).await;
            let intervention_id = pending.first().map_or_else(InterventionId::new, |found| found.id);
            Command::Respond { intervention_id, response: json!({"answer": 41}), notes: None }
        }
        Action::Retry => Command::Retry,
        Action::Skip => Command::Skip { output: Some(json!({"answer": 41})) },
        Action::Back => Command::Back { state: StateOnMove::Restore },
        Action::Jump => Command::Jump { step: "one".into(), state: StateOnMove::Restore },
        Action::EditState => Command::EditState { patch: json!({"note": "checked"}) },
        Action::Pause => Command::Pause,
        Action::Resume => Command::Resume,
        Action::Abort => Command::Abort { reason: "coverage".into() },
    }
}

/// Every (status, action) pair through `Engine::act`: what `LEGAL` allows is accepted and
/// recorded, everything else is a CONFLICT that changes nothing.
#[tokio::test]
async fn every_status_and_action_pair_behaves_as_the_table_says() {
    let world = World::start().await;
    let mut accepted = 0;
    let mut refused = 0;
    for status in ExecutionStatus::ALL.iter().copied() {
        // One execution in this status takes every refusal: a refusal changes nothing.
        let standing = world.in_status(status).await;
        for action in Action::ALL.iter().copied() {
            if is_legal(action, status) {
                let execution = world.in_status(status).await;
                let command = command_for(&world, action, &execution).await;
                let after = world
                    .act(execution.id, command.clone())
                    .await
                    .unwrap_or_else(|error| panic!("{command:?} on a {status} execution was refused: {error}"));
                assert!(after.last_seq > execution.last_seq, "{command:?} on {status} recorded nothing");
                let recorded = world.events_after(execution.id, execution.last_seq).await;
                let expected = match action {
                    Action::Respond => EventType::InterventionResolved,
                    Action::Retry => EventType::Retried,
                    Action::Skip => EventType::StepSkipped,
                    Action::Back | Action::Jump => EventType::Jumped,
                    Action::EditState => EventType::StateEdited,
                    Action::Pause => EventType::Paused,
                    Action::Resume => EventType::Resumed,
                    Action::Abort => EventType::ExecutionAborted,
                };
                assert_eq!(recorded[0].event_type, expected, "{command:?} on {status}: {recorded:?}");
                assert_eq!(recorded[0].actor, "admin");
                accepted += 1;
            } else {
                let command = command_for(&world, action, &standing).await;
                let error = world.assert_refused(standing.id, command, ErrorCode::Conflict).await;
                assert!(matches!(error, Error::WrongState { .. }), "{error:?}");
                refused += 1;
            }
        }
    }
    let legal: usize = LEGAL.iter().map(|(_, from)| from.len()).sum();
    assert_eq!((accepted, refused), (legal, ExecutionStatus::ALL.len() * Action::ALL.len() - legal));
}

/// A failed child is not reopened by a move (its parent has handled the failure), though
/// it may still be edited or aborted.
#[tokio::test]
async fn a_failed_child_refuses_the_moves_that_would_reopen_it() {
    let world = World::start().await;
    let parent = world.run("parent").await;
    world.wait_for(parent.id, "FAILED", |parent| parent.status == ExecutionStatus::Failed).await;
    let filter = crate::engine::ExecutionFilter { parent_id: Some(parent.id), ..Default::default() };
    let children = world.engine.executions(&admin(), &filter, 10, None).await.expect("children").items;
    let child = children.first().expect("the child execution");
    assert_eq!(child.status, ExecutionStatus::Failed);
    for command in [
        Command::Retry,
        Command::Skip { output: None },
        Command::Back { state: StateOnMove::Restore },
        Command::Jump { step: "one".into(), state: StateOnMove::Restore },
    ] {
        world.assert_refused(child.id, command, ErrorCode::Conflict).await;
    }
    world.act(child.id, Command::EditState { patch: json!({"seen": true}) }).await.expect("edited");
    let aborted = world.act(child.id, Command::Abort { reason: "done with it".into() }).await.expect("aborted");
    assert_eq!(aborted.status, ExecutionStatus::Aborted);
}
