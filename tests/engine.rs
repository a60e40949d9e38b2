//! The engine suite: every step kind, every intervention action, MANUAL mode, conditions,
//! retries and fallbacks, sub-playbooks, simulation, live history and recovery — through the
//! engine's own API, on SQLite (default) or PostgreSQL (`ORGATA_TEST_DATABASE_URL`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::StreamExt;
use orgata::engine::{
    Command, DeployRequest, Environment, Error, ErrorCode, EventType, ExecuteRequest, ExecutionFilter, ExecutionId,
    ExecutionStatus, InterventionKind, InterventionStatus, Mode, ModelConfig, StateOnMove,
};
use orgata::jq::Budget;
use orgata::package::load_path;
use serde_json::{Value, json};

use common::{Harness, PATIENCE, admin, assert_sound, example, serve, wait_until};

fn start(runtime: &str, playbook: &str, input: Value) -> ExecuteRequest {
    ExecuteRequest {
        runtime_id: runtime.into(),
        playbook: playbook.into(),
        input,
        mode: Mode::Auto,
        idempotency_key: None,
    }
}

async fn run(harness: &Harness, runtime: &str, playbook: &str, input: Value) -> ExecutionId {
    harness.engine.execute(&admin(), start(runtime, playbook, input)).await.expect("execution starts").id
}

async fn respond(
    harness: &Harness,
    id: ExecutionId,
    response: Value,
) -> orgata::engine::Result<orgata::engine::Execution> {
    let intervention = harness.wait_intervention(id).await;
    harness
        .engine
        .act(&admin(), id, Command::Respond { intervention_id: intervention.id, response, notes: Some("ok".into()) })
        .await
}

/// A one-playbook package; `steps` is YAML for the step list, indented by four spaces.
fn package(name: &str, steps: &str) -> String {
    format!(
        "package: {name}\nversion: 1.0.0\nroles:\n  - name: clerk\nplaybooks:\n  - name: main\n    role: clerk\n    steps:\n{steps}"
    )
}

#[tokio::test]
async fn pbj_sandwich_runs_to_completion_through_a_person() {
    let harness = Harness::start().await;
    let runtime = harness.deploy_path(&example("kitchen"), Environment::Development).await;
    assert_eq!((runtime.id.as_str(), runtime.version), ("kitchen-v1", 1));

    let id = run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})).await;
    let intervention = harness.wait_intervention(id).await;
    assert_eq!(intervention.kind, InterventionKind::Task);
    assert_eq!(intervention.role.as_deref(), Some("cook"));
    assert_eq!(intervention.step, "choose-jelly");
    assert_eq!(intervention.prompt.as_deref(), Some("Which jelly flavour for this classic sandwich?"));
    assert_eq!(
        intervention.form_schema["properties"]["jelly_flavor"]["enum"],
        json!(["grape", "strawberry", "apricot"])
    );
    let waiting = harness.engine.execution(&admin(), id).await.expect("execution");
    assert_eq!(waiting.current_step.as_deref(), Some("choose-jelly"));
    assert_eq!(waiting.steps["gather-ingredients"], json!({"bread_slices": 2, "peanut_butter": true, "jelly": true}));

    let cook = common::person("casey", &["cook"]);
    harness
        .engine
        .act(
            &cook,
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "grape"}),
                notes: None,
            },
        )
        .await
        .expect("the cook answers");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"name": "PB&J", "flavor": "grape"})));

    let history = harness.history(id).await;
    assert_sound(&history, false);
    use EventType::*;
    let types: Vec<EventType> = history.iter().map(|event| event.event_type).collect();
    assert_eq!(
        types,
        vec![
            ExecutionStarted,
            StepStarted,
            StepCompleted,
            StepStarted,
            InterventionRequested,
            InterventionResolved,
            StepCompleted,
            StepStarted,
            StepCompleted,
            StepStarted,
            StepCompleted,
            ExecutionCompleted
        ]
    );
    let resolved = history.iter().find(|event| event.event_type == InterventionResolved).expect("resolved event");
    assert_eq!(resolved.actor, "casey");
    // One checkpoint at the start and one after each of the four steps.
    let checkpoints = harness.engine.checkpoints(&admin(), id).await.expect("checkpoints");
    assert_eq!(checkpoints.iter().map(|checkpoint| checkpoint.step_index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn bad_input_reports_every_field_with_its_pointer() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("onboarding.yaml"), Environment::Development).await;
    let error = harness
        .engine
        .execute(
            &admin(),
            start("onboarding-v1", "onboard-client", json!({"country": "usa", "contact_email": 3, "plan": "gold"})),
        )
        .await
        .expect_err("invalid input");
    assert_eq!(error.code(), ErrorCode::BadInput);
    let pointers: Vec<String> = error.field_errors().into_iter().map(|field| field.pointer).collect();
    for expected in ["/company", "/country", "/contact_email", "/plan"] {
        assert!(pointers.contains(&expected.to_owned()), "missing {expected:?} in {pointers:?}");
    }
    let missing =
        harness.engine.execute(&admin(), start("nope-v1", "x", json!({}))).await.expect_err("unknown runtime");
    assert_eq!(missing.code(), ErrorCode::NotFound);
    let missing =
        harness.engine.execute(&admin(), start("onboarding-v1", "x", json!({}))).await.expect_err("unknown playbook");
    assert!(matches!(missing, Error::PlaybookNotFound { .. }));
}

#[tokio::test]
async fn responses_are_validated_role_checked_and_answered_once() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let id = run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "deluxe"})).await;
    let intervention = harness.wait_intervention(id).await;

    let invalid = harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "mango"}),
                notes: None,
            },
        )
        .await
        .expect_err("mango is not on the form");
    assert_eq!(invalid.code(), ErrorCode::BadInput);
    assert_eq!(invalid.field_errors()[0].pointer, "/jelly_flavor");

    let stranger = common::person("sam", &["waiter"]);
    let forbidden = harness
        .engine
        .act(
            &stranger,
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "grape"}),
                notes: None,
            },
        )
        .await
        .expect_err("not a cook");
    assert_eq!(forbidden.code(), ErrorCode::Forbidden);

    harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "apricot"}),
                notes: None,
            },
        )
        .await
        .expect("answered");
    let twice = harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "grape"}),
                notes: None,
            },
        )
        .await
        .expect_err("answered already");
    assert_eq!(twice.code(), ErrorCode::Conflict);
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output.expect("output")["flavor"], "apricot");
    assert_eq!(
        harness.engine.intervention(&admin(), intervention.id).await.expect("intervention").status,
        InterventionStatus::Resolved
    );
}

#[tokio::test]
async fn conditions_skip_steps() {
    let harness = Harness::start().await;
    let yaml = package(
        "cond",
        r#"      - name: a
        kind: transform
        program: '{go: .input.go}'
      - name: b
        kind: transform
        when: '.steps.a.go'
        program: '{ran: true}'
      - name: c
        kind: transform
        program: '{b_ran: (.steps.b != null)}'
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let skipped = run(&harness, "cond-v1", "main", json!({"go": false})).await;
    let ran = run(&harness, "cond-v1", "main", json!({"go": true})).await;
    let skipped = harness.wait_status(skipped, ExecutionStatus::Completed).await;
    let ran = harness.wait_status(ran, ExecutionStatus::Completed).await;
    assert_eq!(skipped.output, Some(json!({"b_ran": false})));
    assert_eq!(ran.output, Some(json!({"b_ran": true})));
    assert!(harness.types(skipped.id).await.contains(&EventType::StepSkipped));
}

/// A program that needs more than the inline slice of the jq budget is evaluated by a worker
/// outside any transaction: while it runs for seconds, starting executions and answering an
/// unrelated intervention commit at once, and the slow execution completes afterwards.
#[tokio::test]
async fn a_slow_transform_does_not_hold_up_an_unrelated_answer() {
    let harness = Harness::start_with(|config| {
        config.jq_budget = Budget { steps: 10_000_000, time: Duration::from_secs(300), ..Budget::DEFAULT };
    })
    .await;
    let yaml = r#"package: slow
version: 1.0.0
roles:
  - name: clerk
playbooks:
  - name: count
    role: clerk
    steps:
      - name: count
        kind: transform
        program: 'reduce range(0; 1500000) as $i (0; . + 1)'
  - name: ask
    role: clerk
    steps:
      - name: ask
        kind: human
        output_schema: {type: object}
"#;
    harness.deploy_yaml(yaml, Environment::Development).await.expect("deploys");
    let asked = run(&harness, "slow-v1", "ask", json!({})).await;
    let intervention = harness.wait_intervention(asked).await;
    let slow = run(&harness, "slow-v1", "count", json!({})).await;
    let started = harness.engine.execution(&admin(), slow).await.expect("reads");
    assert_eq!(started.status, ExecutionStatus::Running, "the start committed before the program ran");
    harness
        .engine
        .act(&admin(), asked, Command::Respond { intervention_id: intervention.id, response: json!({}), notes: None })
        .await
        .expect("answers");
    assert_eq!(harness.engine.execution(&admin(), asked).await.expect("reads").status, ExecutionStatus::Completed);
    let meanwhile = harness.engine.execution(&admin(), slow).await.expect("reads");
    assert_eq!(meanwhile.status, ExecutionStatus::Running, "the answer waited for the slow program");
    let done = harness.wait_status(slow, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!(1_500_000)));
}

/// `next` rules route a completed step: a loop runs until the state says stop (each pass is in
/// history, the event saying where it routed), `$end` finishes early, and `max_visits` stops a
/// loop that would run away by failing the step that would loop once more.
#[tokio::test]
async fn next_rules_loop_branch_and_stop_a_runaway_loop() {
    let harness = Harness::start().await;
    let yaml = package(
        "loops",
        r#"      - name: count
        kind: transform
        program: '{n: ((.steps.count.n // 0) + 1)}'
        max_visits: 5
        next:
          - when: '.steps.count.n < .input.times'
            goto: count
          - when: '.input.early'
            goto: $end
      - name: after
        kind: transform
        program: '{after: .steps.count.n}'
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let looped = run(&harness, "loops-v1", "main", json!({"times": 3, "early": false})).await;
    let early = run(&harness, "loops-v1", "main", json!({"times": 1, "early": true})).await;
    let runaway = run(&harness, "loops-v1", "main", json!({"times": 1000, "early": false})).await;

    let looped = harness.wait_status(looped, ExecutionStatus::Completed).await;
    assert_eq!(looped.output, Some(json!({"after": 3})));
    let routed: Vec<Value> = harness
        .history(looped.id)
        .await
        .into_iter()
        .filter(|event| event.event_type == EventType::StepCompleted && event.step.as_deref() == Some("count"))
        .map(|event| event.payload["routedTo"].clone())
        .collect();
    assert_eq!(routed, [json!("count"), json!("count"), Value::Null], "two loops, then on in order");

    let early = harness.wait_status(early, ExecutionStatus::Completed).await;
    assert_eq!(early.output, Some(json!({"n": 1})), "`$end` finished before `after`");

    let runaway = harness.wait_status(runaway, ExecutionStatus::Failed).await;
    let error = runaway.error.clone().unwrap_or_default();
    assert!(error.contains("`max_visits`") && error.contains("step `count`"), "{error}");
    // Five loops were allowed; the sixth run's output is not kept, since the step failed.
    assert_eq!(runaway.steps["count"], json!({"n": 5}), "{:?}", runaway.steps);
}

/// A human step's answer routes too: a person's "again" sends the execution back.
#[tokio::test]
async fn a_persons_answer_routes_the_execution() {
    let harness = Harness::start().await;
    let yaml = package(
        "ask-again",
        r#"      - name: ask
        kind: human
        output_schema: {type: object, properties: {again: {type: boolean}}}
        next:
          - when: '.steps.ask.again'
            goto: ask
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "ask-again-v1", "main", json!({})).await;
    respond(&harness, id, json!({"again": true})).await.expect("answers");
    let again = harness.wait_intervention(id).await;
    assert_eq!(again.step, "ask");
    harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond { intervention_id: again.id, response: json!({"again": false}), notes: None },
        )
        .await
        .expect("answers");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"again": false})));
}

#[tokio::test]
async fn retries_back_off_then_fall_back_to_a_person() {
    let harness = Harness::start().await;
    let yaml = package(
        "flaky",
        r#"      - name: fragile
        kind: transform
        program: 'if .state.fixed then {ok: true} else error("the printer is on fire") end'
        output_schema: {type: object, required: [ok]}
        on_failure: {retry: {max_attempts: 3, backoff_ms: 20}, then: human}
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "flaky-v1", "main", json!({})).await;
    let failure = harness.wait_intervention(id).await;
    assert_eq!(failure.kind, InterventionKind::Failure);
    assert!(failure.prompt.as_deref().unwrap_or_default().contains("the printer is on fire"));
    let failed: Vec<Value> = harness
        .history(id)
        .await
        .into_iter()
        .filter(|event| event.event_type == EventType::StepFailed)
        .map(|event| event.payload)
        .collect();
    assert_eq!(failed.len(), 3, "three attempts: {failed:?}");
    assert_eq!(failed[0]["willRetry"], true);
    assert_eq!(failed[1]["retryInMs"], 40, "the backoff doubles");
    assert_eq!(failed[2]["willRetry"], false);

    // A person fixes the cause and retries: a fourth attempt, which succeeds.
    harness.engine.act(&admin(), id, Command::EditState { patch: json!({"fixed": true}) }).await.expect("state edited");
    harness.engine.act(&admin(), id, Command::Retry).await.expect("retried");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"ok": true})));
    assert_eq!(
        harness.engine.intervention(&admin(), failure.id).await.expect("intervention").status,
        InterventionStatus::Cancelled
    );
    let types = harness.types(id).await;
    assert!(types.contains(&EventType::Retried) && types.contains(&EventType::StateEdited));
    assert_sound(&harness.history(id).await, true);
}

/// Regression (issue 15, item 2): the wake-up time a retry's backoff left behind was read by
/// the sweeper as an AGENT deadline once the execution waited on its FAILURE intervention, which
/// it then cancelled with a false "no model answered" and replaced. The sweeper must run past
/// that old time here: probes whose AGENT deadline lies later are expired by it, one after the
/// other, so a whole pass covering the old time has finished before the checks.
#[tokio::test]
async fn a_failure_intervention_after_backoff_outlives_the_sweeper() {
    let harness = Harness::start_with(|config| config.lease = Duration::from_secs(1)).await;
    let yaml = r#"package: stale
version: 1.0.0
roles:
  - name: clerk
playbooks:
  - name: main
    role: clerk
    steps:
      - name: fragile
        kind: transform
        program: 'error("the printer is on fire")'
        on_failure: {retry: {max_attempts: 3, backoff_ms: 20}, then: human}
  - name: probe
    role: clerk
    steps:
      - name: think
        kind: agent
        prompt: Classify this
        timeout_ms: 100
        output_schema: {type: object}
        on_failure: {then: fail}
"#;
    harness.deploy_yaml(yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "stale-v1", "main", json!({})).await;
    let failure = harness.wait_intervention(id).await;
    assert_eq!(failure.kind, InterventionKind::Failure);
    for _ in 0..2 {
        let probe = run(&harness, "stale-v1", "probe", json!({})).await;
        harness.wait_status(probe, ExecutionStatus::Failed).await;
    }
    let pending = harness.pending(id).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].id, failure.id, "the FAILURE intervention was replaced");
    let history = harness.history(id).await;
    let failed: Vec<&Value> =
        history.iter().filter(|event| event.event_type == EventType::StepFailed).map(|event| &event.payload).collect();
    assert_eq!(failed.len(), 3, "three attempts and no invented timeout: {failed:?}");
    assert!(failed.iter().all(|payload| payload["error"].as_str().unwrap_or_default().contains("on fire")));
    let answered = harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond { intervention_id: failure.id, response: json!({"by": "hand"}), notes: None },
        )
        .await
        .expect("the first FAILURE intervention is still the one to answer");
    assert_eq!(answered.status, ExecutionStatus::Completed);
    assert_sound(&harness.history(id).await, true);
}

#[tokio::test]
async fn a_failure_without_fallback_fails_the_execution_and_can_be_reopened() {
    let harness = Harness::start().await;
    let yaml = package(
        "fragile",
        r#"      - name: only
        kind: transform
        program: 'error("no")'
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "fragile-v1", "main", json!({})).await;
    let failed = harness.wait_status(id, ExecutionStatus::Failed).await;
    assert!(failed.error.as_deref().unwrap_or_default().contains("no"), "{:?}", failed.error);
    // Skipping the failed step with a supplied output reopens and completes it.
    harness.engine.act(&admin(), id, Command::Skip { output: Some(json!({"manual": 1})) }).await.expect("skipped");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"manual": 1})));
    let pause = harness.engine.act(&admin(), id, Command::Pause).await.expect_err("finished");
    assert_eq!(pause.code(), ErrorCode::Conflict);
}

#[tokio::test]
async fn skip_back_and_jump_move_through_checkpoints() {
    let harness = Harness::start().await;
    let yaml = package(
        "steer",
        r#"      - name: one
        kind: transform
        program: '{n: 1}'
      - name: ask
        kind: human
        output_schema: {type: object, required: [answer], properties: {answer: {type: integer}}}
      - name: three
        kind: transform
        program: '{sum: (.steps.one.n + .steps.ask.answer)}'
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "steer-v1", "main", json!({})).await;
    let first = harness.wait_intervention(id).await;

    // SKIP with an output that breaks the step's schema is refused and changes nothing.
    let invalid = harness
        .engine
        .act(&admin(), id, Command::Skip { output: Some(json!({"answer": "x"})) })
        .await
        .expect_err("invalid");
    assert_eq!(invalid.field_errors()[0].pointer, "/answer");
    assert_eq!(harness.pending(id).await.len(), 1);

    // BACK returns to the checkpoint before `ask`: `one` runs again, then `ask` asks again.
    harness.engine.act(&admin(), id, Command::Back { state: StateOnMove::Restore }).await.expect("back");
    let second = harness.wait_intervention(id).await;
    assert_ne!(first.id, second.id);
    assert_eq!(
        harness.engine.intervention(&admin(), first.id).await.expect("first").status,
        InterventionStatus::Cancelled
    );

    // JUMP to `three` with the nearest checkpoint before it: `ask` never answered.
    harness
        .engine
        .act(&admin(), id, Command::Jump { step: "ask".into(), state: StateOnMove::Restore })
        .await
        .expect("jump to the same step");
    harness.wait_intervention(id).await;
    harness.engine.act(&admin(), id, Command::Skip { output: Some(json!({"answer": 41})) }).await.expect("skip");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"sum": 42})));

    // Jumping to an unknown step is NOT_FOUND; BACK at the first step is a CONFLICT.
    let id = run(&harness, "steer-v1", "main", json!({})).await;
    harness.wait_intervention(id).await;
    let unknown = harness
        .engine
        .act(&admin(), id, Command::Jump { step: "nine".into(), state: StateOnMove::Restore })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), ErrorCode::NotFound);
    harness
        .engine
        .act(&admin(), id, Command::Jump { step: "one".into(), state: StateOnMove::Restore })
        .await
        .expect("jump to the start");
    harness.wait_intervention(id).await;
    let history = harness.history(id).await;
    let jumps: Vec<&Value> =
        history.iter().filter(|event| event.event_type == EventType::Jumped).map(|event| &event.payload).collect();
    assert_eq!(jumps.len(), 1);
    assert_eq!(jumps[0]["to"], "one");
    assert_sound(&history, true);
}

#[tokio::test]
async fn pause_resume_edit_state_and_abort() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let id = run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})).await;
    let intervention = harness.wait_intervention(id).await;

    let paused = harness.engine.act(&admin(), id, Command::Pause).await.expect("paused");
    assert_eq!(paused.status, ExecutionStatus::Paused);
    let again = harness.engine.act(&admin(), id, Command::Pause).await.expect_err("already paused");
    assert_eq!(again.code(), ErrorCode::Conflict);

    // An answer while paused is recorded, but nothing runs until RESUME.
    harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "strawberry"}),
                notes: None,
            },
        )
        .await
        .expect("answer while paused");
    // The sleep is the check: a worker that ran the next step anyway would do so in this time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = harness.engine.execution(&admin(), id).await.expect("execution");
    assert_eq!(still.status, ExecutionStatus::Paused);
    assert_eq!(still.current_step.as_deref(), Some("assemble-sandwich"));

    let edited = harness
        .engine
        .act(&admin(), id, Command::EditState { patch: json!({"table": 4, "note": "no crusts"}) })
        .await
        .expect("edit");
    assert_eq!(edited.state, json!({"table": 4, "note": "no crusts"}));
    let edited = harness
        .engine
        .act(&admin(), id, Command::EditState { patch: json!({"note": null}) })
        .await
        .expect("merge patch removes");
    assert_eq!(edited.state, json!({"table": 4}));
    let bad =
        harness.engine.act(&admin(), id, Command::EditState { patch: json!([1]) }).await.expect_err("not an object");
    assert_eq!(bad.code(), ErrorCode::BadInput);

    harness.engine.act(&admin(), id, Command::Resume).await.expect("resumed");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output.expect("output")["flavor"], "strawberry");

    // ABORT needs a reason, cancels what is pending, and is final.
    let id = run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})).await;
    let pending = harness.wait_intervention(id).await;
    let no_reason = harness.engine.act(&admin(), id, Command::Abort { reason: " ".into() }).await.expect_err("reason");
    assert_eq!(no_reason.code(), ErrorCode::BadInput);
    let aborted =
        harness.engine.act(&admin(), id, Command::Abort { reason: "out of bread".into() }).await.expect("aborted");
    assert_eq!(aborted.status, ExecutionStatus::Aborted);
    assert_eq!(
        harness.engine.intervention(&admin(), pending.id).await.expect("intervention").status,
        InterventionStatus::Cancelled
    );
    let late = harness.engine.act(&admin(), id, Command::Resume).await.expect_err("finished");
    assert_eq!(late.code(), ErrorCode::Conflict);
    let types = harness.types(id).await;
    assert_eq!(types.last(), Some(&EventType::ExecutionAborted));
}

#[tokio::test]
async fn manual_mode_asks_before_every_step() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let mut request = start("kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"}));
    request.mode = Mode::Manual;
    let id = harness.engine.execute(&admin(), request).await.expect("starts").id;
    let mut checkpoints = 0;
    loop {
        let execution =
            harness.wait_for(id, "parked or done", |execution| execution.status != ExecutionStatus::Running).await;
        if execution.status == ExecutionStatus::Completed {
            break;
        }
        let intervention = harness.wait_intervention(id).await;
        let response = match intervention.kind {
            InterventionKind::Checkpoint => {
                checkpoints += 1;
                assert_eq!(Some(intervention.step.as_str()), execution.current_step.as_deref());
                json!({})
            }
            InterventionKind::Task => json!({"jelly_flavor": "grape"}),
            other => panic!("unexpected {other}"),
        };
        harness
            .engine
            .act(&admin(), id, Command::Respond { intervention_id: intervention.id, response, notes: None })
            .await
            .expect("answered");
    }
    assert_eq!(checkpoints, 4, "one checkpoint before each step");
}

#[tokio::test]
async fn sub_playbooks_run_as_children_and_report_back() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("onboarding.yaml"), Environment::Development).await;
    let hooks = Arc::new(Mutex::new(Vec::<String>::new()));
    // The example's CRM is not running: its webhook fails, retries, then asks a person.
    let id = run(
        &harness,
        "onboarding-v1",
        "onboard-client",
        json!({"company": "Acme", "country": "BR", "contact_email": "a@acme.test"}),
    )
    .await;

    // High risk: the child kyc-check waits for compliance.
    let parent = harness.wait_status(id, ExecutionStatus::Waiting).await;
    assert_eq!(parent.current_step.as_deref(), Some("kyc"));
    let children = harness
        .engine
        .executions(&admin(), &ExecutionFilter { parent_id: Some(id), ..Default::default() }, 10, None)
        .await
        .expect("children");
    assert_eq!(children.items.len(), 1);
    let child = children.items[0].id;
    let review = harness.wait_intervention(child).await;
    assert_eq!(review.role.as_deref(), Some("compliance"));
    let compliance = common::person("cora", &["compliance"]);
    harness
        .engine
        .act(
            &compliance,
            child,
            Command::Respond {
                intervention_id: review.id,
                response: json!({"approved": true, "notes": "funds documented"}),
                notes: None,
            },
        )
        .await
        .expect("reviewed");
    let child = harness.wait_status(child, ExecutionStatus::Completed).await;
    assert_eq!(child.output, Some(json!({"risk": "high", "reviewer_notes": "funds documented"})));

    // Back in the parent: approval, then the CRM webhook fails into a FAILURE intervention.
    let approve = harness.wait_intervention(id).await;
    assert_eq!(approve.step, "approve");
    respond(&harness, id, json!({"approved": true})).await.expect("approved");
    let failure = harness.wait_intervention(id).await;
    assert_eq!((failure.kind, failure.step.as_str()), (InterventionKind::Failure, "create-account"));
    respond(&harness, id, json!({"accountId": "CRM-7"})).await.expect("account supplied by a person");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"accountId": "CRM-7", "risk": "high"})));
    assert!(hooks.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_failed_child_fails_the_parents_step_and_abort_reaches_children() {
    let harness = Harness::start().await;
    let yaml = r#"package: family
version: 1.0.0
roles:
  - name: clerk
playbooks:
  - name: child
    role: clerk
    steps:
      - name: ask
        kind: human
        output_schema: {type: object}
  - name: broken
    steps:
      - name: fail
        kind: transform
        program: 'error("child broke")'
  - name: parent
    steps:
      - name: call
        kind: playbook
        playbook: child
  - name: parent-of-broken
    steps:
      - name: call
        kind: playbook
        playbook: broken
"#;
    harness.deploy_yaml(yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "family-v1", "parent-of-broken", json!({})).await;
    let failed = harness.wait_status(id, ExecutionStatus::Failed).await;
    assert!(failed.error.as_deref().unwrap_or_default().contains("child broke"), "{:?}", failed.error);

    let id = run(&harness, "family-v1", "parent", json!({})).await;
    harness.wait_status(id, ExecutionStatus::Waiting).await;
    let child = harness
        .engine
        .executions(&admin(), &ExecutionFilter { parent_id: Some(id), ..Default::default() }, 10, None)
        .await
        .expect("children")
        .items[0]
        .id;
    harness.wait_intervention(child).await;
    harness.engine.act(&admin(), id, Command::Abort { reason: "not needed".into() }).await.expect("aborted");
    let child = harness.engine.execution(&admin(), child).await.expect("child");
    assert_eq!(child.status, ExecutionStatus::Aborted);
    assert!(harness.pending(child.id).await.is_empty());
}

#[tokio::test]
async fn agent_steps_wait_for_an_answer_without_a_model() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("expenses.yaml"), Environment::Development).await;
    let id = run(
        &harness,
        "expenses-v2",
        "approve-expense",
        json!({"employee": "Ann", "description": "Team lunch", "amount": 80, "currency": "EUR"}),
    )
    .await;
    let agent = harness.wait_intervention(id).await;
    assert_eq!(agent.kind, InterventionKind::Agent);
    assert!(agent.prompt.as_deref().unwrap_or_default().contains("Team lunch (80 EUR)"));
    let wrong = respond(&harness, id, json!({"category": "food"})).await.expect_err("not on the schema");
    assert_eq!(wrong.code(), ErrorCode::BadInput);
    respond(&harness, id, json!({"category": "meals", "flagged": false})).await.expect("an assistant answers");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"decision": "paid", "category": "meals"})));
}

/// A fake OpenAI-compatible endpoint: answers from a script, one reply per call.
async fn model_endpoint(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(Mutex::new(replies));
    let seen = requests.clone();
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            let replies = replies.clone();
            async move {
                seen.lock().expect("lock").push(body);
                let mut replies = replies.lock().expect("lock");
                let reply = if replies.is_empty() { "{}" } else { replies.remove(0) };
                Json(json!({"choices": [{"message": {"role": "assistant", "content": reply}}]}))
            }
        }),
    );
    (format!("{}/v1", serve(router).await), requests)
}

#[tokio::test]
async fn agent_steps_ask_a_configured_model_and_retry_bad_answers() {
    let (url, requests) =
        model_endpoint(vec!["not json", r#"{"category": "travel", "flagged": true, "reason": "first class"}"#]).await;
    let harness = Harness::start_with(|config| {
        config.model =
            Some(ModelConfig { url: url.clone(), model: "test-model".into(), api_key: Some("sk-test".into()) })
    })
    .await;
    harness.deploy_path(&example("expenses.yaml"), Environment::Development).await;
    let id = run(
        &harness,
        "expenses-v2",
        "approve-expense",
        json!({"employee": "Bo", "description": "Flight", "amount": 300, "currency": "USD"}),
    )
    .await;
    // Flagged by the model: a manager must approve.
    let approval = harness.wait_intervention(id).await;
    assert_eq!((approval.kind, approval.step.as_str()), (InterventionKind::Task, "manager-approval"));
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2, "one bad answer, one retry");
    assert_eq!(requests[0]["model"], "test-model");
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(requests[0]["response_format"]["json_schema"]["schema"]["required"], json!(["category", "flagged"]));
    respond(&harness, id, json!({"approved": false})).await.expect("manager answers");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"decision": "rejected", "category": "travel"})));
}

/// An agent step chooses its model, temperature, system prompt and token limit; a step that
/// chooses nothing gets the server's model and the endpoint's defaults.
#[tokio::test]
async fn an_agent_step_chooses_its_model_and_how_to_ask_it() {
    let (url, requests) = model_endpoint(vec![r#"{"summary": "ok"}"#, "{}"]).await;
    let harness = Harness::start_with(|config| {
        config.model = Some(ModelConfig { url: url.clone(), model: "default-model".into(), api_key: None })
    })
    .await;
    let yaml = package(
        "agents",
        r#"      - name: summarize
        kind: agent
        prompt: 'Summarize {{ .input.text }}'
        output_schema: {type: object, required: [summary], properties: {summary: {type: string}}}
        model: {name: careful-model, temperature: 0.2, system: 'You are terse.', max_tokens: 200}
      - name: plain
        kind: agent
        prompt: 'Again'
        output_schema: {type: object}
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "agents-v1", "main", json!({"text": "a long memo"})).await;
    harness.wait_status(id, ExecutionStatus::Completed).await;
    let requests = requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    let chosen = &requests[0];
    assert_eq!(
        (&chosen["model"], &chosen["temperature"], &chosen["max_tokens"]),
        (&json!("careful-model"), &json!(0.2), &json!(200))
    );
    let system = chosen["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.starts_with("You are terse.") && system.contains("JSON Schema"), "{system}");
    let plain = &requests[1];
    assert_eq!(plain["model"], "default-model");
    assert!(plain.get("temperature").is_none() && plain.get("max_tokens").is_none(), "{plain}");
}

/// A webhook receiver that counts idempotency keys and fails the first `failures` calls.
async fn webhook_receiver(failures: usize) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let keys = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let calls = Arc::new(Mutex::new(0usize));
    let seen = keys.clone();
    let router = axum::Router::new().route(
        "/crm/accounts",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen.clone();
            let calls = calls.clone();
            async move {
                let key =
                    headers.get("idempotency-key").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
                *seen.lock().expect("lock").entry(key).or_default() += 1;
                let mut calls = calls.lock().expect("lock");
                *calls += 1;
                if *calls <= failures {
                    return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "busy"})));
                }
                (
                    StatusCode::OK,
                    Json(json!({"accountId": format!("ACC-{}", body["company"].as_str().unwrap_or_default())})),
                )
            }
        }),
    );
    (serve(router).await, keys)
}

fn webhook_package(url: &str) -> String {
    package(
        "hooks",
        &format!(
            r#"      - name: create
        kind: webhook
        url: {url}/crm/accounts
        input: '{{company: .input.company}}'
        output_schema: {{type: object, required: [accountId]}}
        simulated_output: {{accountId: SIMULATED}}
        on_failure: {{retry: {{max_attempts: 3, backoff_ms: 10}}, then: fail}}
"#
        ),
    )
}

#[tokio::test]
async fn webhooks_post_with_idempotency_keys_and_retry() {
    let (url, keys) = webhook_receiver(1).await;
    let harness = Harness::start().await;
    harness.deploy_yaml(&webhook_package(&url), Environment::Development).await.expect("deploys");
    let id = run(&harness, "hooks-v1", "main", json!({"company": "Initech"})).await;
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"accountId": "ACC-Initech"})));
    let keys = keys.lock().expect("lock").clone();
    let expected: HashMap<String, usize> = [(format!("{id}:create:1"), 1), (format!("{id}:create:2"), 1)].into();
    assert_eq!(keys, expected, "one call per attempt, each with its own key");
}

/// A webhook step chooses its method and headers; a header may name a secret the server is
/// configured with, whose value reaches the receiver and nothing else (not history, not the
/// definition). A secret the server lacks fails the step with the names, never a value.
#[tokio::test]
async fn webhooks_send_their_method_headers_and_secrets() {
    let seen = Arc::new(Mutex::new(Vec::<(String, HeaderMap)>::new()));
    let recorded = seen.clone();
    let router = axum::Router::new().route(
        "/crm/accounts",
        axum::routing::any(move |method: axum::http::Method, headers: HeaderMap| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().expect("lock").push((method.to_string(), headers));
                Json(json!({"ok": true}))
            }
        }),
    );
    let url = serve(router).await;
    let harness = Harness::start_with(|config| {
        config.secrets =
            orgata::engine::Secrets::new(HashMap::from([("crm-token".to_owned(), "s3cr3t-value".to_owned())]))
    })
    .await;
    let yaml = package(
        "headers",
        &format!(
            r#"      - name: update
        kind: webhook
        url: {url}/crm/accounts
        method: PUT
        headers:
          Authorization: {{secret: crm-token}}
          X-Tenant: acme
        input: '{{company: .input.company}}'
      - name: missing
        kind: webhook
        url: {url}/crm/accounts
        headers:
          Authorization: {{secret: no-such-secret}}
        input: '{{}}'
"#
        ),
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "headers-v1", "main", json!({"company": "Initech"})).await;
    let failed = harness.wait_status(id, ExecutionStatus::Failed).await;
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("`Authorization`") && error.contains("`no-such-secret`"), "{error}");
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1, "the step without its secret never called");
    let (method, headers) = &calls[0];
    assert_eq!(method, "PUT");
    assert_eq!(headers.get("authorization").and_then(|value| value.to_str().ok()), Some("s3cr3t-value"));
    assert_eq!(headers.get("x-tenant").and_then(|value| value.to_str().ok()), Some("acme"));
    assert!(headers.get("idempotency-key").is_some());
    let history =
        serde_json::to_string(&harness.history(id).await.iter().map(|event| &event.payload).collect::<Vec<_>>())
            .expect("JSON");
    assert!(!history.contains("s3cr3t-value"), "a secret reached history");
    assert!(!format!("{:?}", harness.config).contains("s3cr3t-value"), "a secret shows in the configuration's Debug");
}

#[tokio::test]
async fn webhooks_must_be_on_the_allow_list() {
    let harness = Harness::start().await;
    let error = harness
        .deploy_yaml(&webhook_package("http://10.1.2.3:8080"), Environment::Development)
        .await
        .expect_err("not allowed");
    assert_eq!(error.code(), ErrorCode::BadInput);
    assert!(error.to_string().contains("/playbooks/0/steps/0/url"), "{error}");
    let production = harness
        .deploy_yaml(&webhook_package("http://127.0.0.1:9"), Environment::Production)
        .await
        .expect_err("empty list");
    assert!(production.to_string().contains("production allow-list"), "{production}");
}

#[tokio::test]
async fn simulation_never_calls_out() {
    let (url, keys) = webhook_receiver(0).await;
    let harness = Harness::start().await;
    harness.deploy_yaml(&webhook_package(&url), Environment::Simulation).await.expect("deploys to simulation");
    let id = run(&harness, "hooks-v1", "main", json!({"company": "Globex"})).await;
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"accountId": "SIMULATED"})));
    assert!(keys.lock().expect("lock").is_empty(), "no webhook left the server");

    // Human and agent steps with simulated outputs are answered automatically.
    for path in ["onboarding.yaml", "expenses.yaml"] {
        let loaded = load_path(&example(path)).expect("loads");
        harness
            .engine
            .deploy(&admin(), DeployRequest { runtime_id: None, environment: Environment::Simulation, package: loaded })
            .await
            .expect("deploys");
    }
    let onboarding = run(
        &harness,
        "onboarding-v1",
        "onboard-client",
        json!({"company": "Umbrella", "country": "ZZ", "contact_email": "u@u.test", "plan": "premium"}),
    )
    .await;
    let expense = run(
        &harness,
        "expenses-v2",
        "approve-expense",
        json!({"employee": "Cy", "description": "Laptop", "amount": 2500, "currency": "GBP"}),
    )
    .await;
    let onboarding = harness.wait_status(onboarding, ExecutionStatus::Completed).await;
    assert_eq!(onboarding.output, Some(json!({"accountId": "SIM-0001", "risk": "high"})));
    let expense = harness.wait_status(expense, ExecutionStatus::Completed).await;
    assert_eq!(expense.output, Some(json!({"decision": "paid", "category": "meals"})));
}

#[tokio::test]
async fn subscriptions_replay_then_go_live_without_gaps_or_duplicates() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let id = run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})).await;
    let intervention = harness.wait_intervention(id).await;
    let before = harness.history(id).await.len() as i64;

    let mut from_start = Box::pin(harness.engine.subscribe(id, 0));
    let mut from_middle = Box::pin(harness.engine.subscribe(id, 3));
    harness
        .engine
        .act(
            &admin(),
            id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "grape"}),
                notes: None,
            },
        )
        .await
        .expect("answered");
    harness.wait_status(id, ExecutionStatus::Completed).await;
    let total = harness.history(id).await.len() as i64;
    assert!(total > before);

    let mut seen = Vec::new();
    while seen.len() < total as usize {
        let event = tokio::time::timeout(Duration::from_secs(10), from_start.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("event");
        seen.push(event.seq);
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    let mut seen = Vec::new();
    while seen.len() < (total - 3) as usize {
        let event = tokio::time::timeout(Duration::from_secs(10), from_middle.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("event");
        seen.push(event.seq);
    }
    assert_eq!(seen, (4..=total).collect::<Vec<_>>());
    // Nothing more arrives: no duplicates.
    assert!(tokio::time::timeout(Duration::from_millis(200), from_start.next()).await.is_err());
}

#[tokio::test]
async fn deployments_are_versioned_and_executions_stay_pinned() {
    let harness = Harness::start().await;
    let yaml = |value: i64| {
        package(
            "pinned",
            &format!(
                "      - name: wait\n        kind: human\n        output_schema: {{type: object}}\n      - name: value\n        kind: transform\n        program: '{{value: {value}}}'\n"
            ),
        )
    };
    let first = harness.deploy_yaml(&yaml(1), Environment::Development).await.expect("v1");
    let old = run(&harness, "pinned-v1", "main", json!({})).await;
    harness.wait_intervention(old).await;
    let second = harness.deploy_yaml(&yaml(2), Environment::Development).await.expect("v2");
    assert_eq!((first.version, second.version), (1, 2));
    let new = run(&harness, "pinned-v1", "main", json!({})).await;
    for id in [old, new] {
        respond(&harness, id, json!({})).await.expect("answered");
    }
    assert_eq!(harness.wait_status(old, ExecutionStatus::Completed).await.output, Some(json!({"value": 1})));
    let new = harness.wait_status(new, ExecutionStatus::Completed).await;
    assert_eq!((new.output, new.runtime_version), (Some(json!({"value": 2})), 2));

    // The same package again is not a new version.
    let loaded =
        orgata::package::load::load_document("p.yaml", &yaml(2), orgata::package::load::Format::Yaml).expect("parses");
    let same = harness
        .engine
        .deploy(
            &admin(),
            DeployRequest { runtime_id: None, environment: Environment::Development, package: loaded.clone() },
        )
        .await
        .expect("unchanged");
    assert_eq!(same.version, 2);
    let elsewhere = harness
        .engine
        .deploy(
            &admin(),
            DeployRequest { runtime_id: None, environment: Environment::Production, package: loaded.clone() },
        )
        .await
        .expect_err("one environment per runtime id");
    assert_eq!(elsewhere.code(), ErrorCode::Conflict);
    let bad_id = harness
        .engine
        .deploy(
            &admin(),
            DeployRequest { runtime_id: Some("Bad Id".into()), environment: Environment::Development, package: loaded },
        )
        .await
        .expect_err("bad slug");
    assert_eq!(bad_id.code(), ErrorCode::BadInput);
    let versions = harness.engine.runtime_versions(&admin(), "pinned-v1").await.expect("versions");
    assert_eq!(versions.iter().map(|runtime| runtime.version).collect::<Vec<_>>(), vec![2, 1]);
    let invalid =
        harness.deploy_yaml("package: x\nversion: one\n", Environment::Development).await.expect_err("invalid");
    assert!(matches!(invalid, Error::InvalidPackage { .. }));
}

/// Versions: rolling back makes an earlier version the one new executions use (later ones
/// retired), a running execution finishes on its version, retiring the whole runtime stops new
/// executions with a CONFLICT, and deploying again brings it back as a new version.
#[tokio::test]
async fn runtimes_retire_and_roll_back_while_running_executions_finish() {
    let harness = Harness::start().await;
    let version = |answer: &str| {
        format!(
            "package: lifecycle\nversion: 1.0.0\nroles:\n  - name: clerk\nplaybooks:\n  - name: main\n    role: clerk\n    steps:\n      - name: ask\n        kind: human\n        output_schema: {{type: object}}\n      - name: answer\n        kind: transform\n        program: '{{v: \"{answer}\"}}'\n"
        )
    };
    harness.deploy_yaml(&version("one"), Environment::Development).await.expect("v1");
    harness.deploy_yaml(&version("two"), Environment::Development).await.expect("v2");
    let on_two = run(&harness, "lifecycle-v1", "main", json!({})).await;
    harness.wait_intervention(on_two).await;

    let versions = harness.engine.rollback_runtime(&admin(), "lifecycle-v1", 1).await.expect("rolls back");
    let shown: Vec<(i32, bool, bool)> =
        versions.iter().map(|version| (version.version, version.retired_at.is_some(), version.current)).collect();
    assert_eq!(shown, [(2, true, false), (1, false, true)]);
    assert_eq!(versions[0].retired_by.as_deref(), Some("admin"));
    let on_one = run(&harness, "lifecycle-v1", "main", json!({})).await;
    respond(&harness, on_one, json!({})).await.expect("answers");
    assert_eq!(harness.wait_status(on_one, ExecutionStatus::Completed).await.output, Some(json!({"v": "one"})));
    respond(&harness, on_two, json!({})).await.expect("answers");
    let finished = harness.wait_status(on_two, ExecutionStatus::Completed).await;
    assert_eq!(
        (finished.runtime_version, finished.output),
        (2, Some(json!({"v": "two"}))),
        "it finished on its version"
    );

    harness.engine.retire_runtime(&admin(), "lifecycle-v1", None).await.expect("retires");
    let refused =
        harness.engine.execute(&admin(), start("lifecycle-v1", "main", json!({}))).await.expect_err("retired");
    assert_eq!(refused.code(), ErrorCode::Conflict);
    assert!(refused.to_string().contains("retired"), "{refused}");
    let unknown = harness.engine.rollback_runtime(&admin(), "lifecycle-v1", 9).await.expect_err("no such version");
    assert_eq!(unknown.code(), ErrorCode::NotFound);

    let again = harness.deploy_yaml(&version("one"), Environment::Development).await.expect("deploys again");
    assert_eq!(again.version, 3, "the same document as a retired version is a new version");
    let current: Vec<i32> = harness
        .engine
        .runtime_versions(&admin(), "lifecycle-v1")
        .await
        .expect("versions")
        .iter()
        .filter(|version| version.current)
        .map(|version| version.version)
        .collect();
    assert_eq!(current, [3]);
    run(&harness, "lifecycle-v1", "main", json!({})).await;
}

#[tokio::test]
async fn idempotency_keys_return_the_same_execution() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let mut request = start("kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"}));
    request.idempotency_key = Some("order-17".into());
    let first = harness.engine.execute(&admin(), request.clone()).await.expect("first");
    let again = harness.engine.execute(&admin(), request.clone()).await.expect("again");
    assert_eq!(first.id, again.id);
    request.input = json!({"sandwichType": "deluxe"});
    let clash = harness.engine.execute(&admin(), request).await.expect_err("different input");
    assert_eq!(clash.code(), ErrorCode::Conflict);
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run(&harness, "kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})).await);
    }
    ids.reverse();
    let filter = ExecutionFilter { runtime_id: Some("kitchen-v1".into()), ..Default::default() };
    let first = harness.engine.executions(&admin(), &filter, 2, None).await.expect("page 1");
    assert!(first.has_next_page);
    let second = harness
        .engine
        .executions(&admin(), &filter, 2, first.items.last().map(|execution| execution.id))
        .await
        .expect("page 2");
    let third = harness
        .engine
        .executions(&admin(), &filter, 2, second.items.last().map(|execution| execution.id))
        .await
        .expect("page 3");
    assert!(!third.has_next_page);
    let listed: Vec<ExecutionId> =
        [first.items, second.items, third.items].concat().iter().map(|execution| execution.id).collect();
    assert_eq!(listed, ids);
}

/// A webhook receiver that takes its time, so that an engine can be stopped mid-step: the
/// calls it has begun to answer, and the idempotency keys of those it finished.
async fn slow_receiver() -> (String, Arc<AtomicUsize>, Arc<Mutex<HashMap<String, usize>>>) {
    let keys = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (seen, counted) = (keys.clone(), arrived.clone());
    let router = axum::Router::new().route(
        "/crm/accounts",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let (seen, counted) = (seen.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // The slowness is the point: the engine is stopped while calls are in flight.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let key =
                    headers.get("idempotency-key").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
                *seen.lock().expect("lock").entry(key).or_default() += 1;
                Json(json!({"accountId": body["company"]}))
            }
        }),
    );
    (serve(router).await, arrived, keys)
}

#[tokio::test]
async fn a_new_engine_finishes_what_a_stopped_one_left_mid_flight() {
    let (url, arrived, keys) = slow_receiver().await;
    let mut harness = Harness::start_with(|config| config.lease = Duration::from_secs(1)).await;
    harness.deploy_yaml(&webhook_package(&url), Environment::Development).await.expect("deploys");
    let mut ids = Vec::new();
    for index in 0..12 {
        ids.push(run(&harness, "hooks-v1", "main", json!({"company": format!("c{index}")})).await);
    }
    // Once some webhook calls are in flight, stop the engine as a crash would.
    wait_until(PATIENCE, "a webhook call to arrive", || async { (arrived.load(Ordering::SeqCst) > 0).then_some(()) })
        .await;
    harness.restart().await;
    for id in &ids {
        let done = harness.wait_status(*id, ExecutionStatus::Completed).await;
        assert_eq!(
            done.output.expect("output")["accountId"].as_str().map(|company| company.starts_with('c')),
            Some(true)
        );
        assert_sound(&harness.history(*id).await, false);
    }
    // Steps are at least once; a repeated call carries the same key, so the receiver can
    // apply it once. Every execution's step was received under its first attempt's key.
    let keys = keys.lock().expect("lock").clone();
    for id in &ids {
        assert!(keys.contains_key(&format!("{id}:create:1")), "{id} missing from {keys:?}");
    }
}

#[tokio::test]
async fn an_unanswered_agent_step_falls_back_after_its_timeout() {
    let harness = Harness::start_with(|config| config.lease = Duration::from_secs(1)).await;
    let yaml = package(
        "slowmodel",
        r#"      - name: think
        kind: agent
        prompt: Classify this
        timeout_ms: 150
        output_schema: {type: object, required: [label], properties: {label: {type: string}}}
        on_failure: {then: human}
"#,
    );
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "slowmodel-v1", "main", json!({})).await;
    let agent = harness.wait_intervention(id).await;
    assert_eq!(agent.kind, InterventionKind::Agent);
    // Nobody answers: the AGENT intervention expires and a person is asked instead.
    let failure = harness
        .wait_for(id, "asking a person", |execution| {
            execution.status == ExecutionStatus::Waiting && execution.attempt == 1
        })
        .await;
    let pending = wait_until(PATIENCE, "a FAILURE intervention", || async {
        let pending = harness.pending(failure.id).await;
        pending.first().is_some_and(|intervention| intervention.kind == InterventionKind::Failure).then_some(pending)
    })
    .await;
    assert!(pending[0].prompt.as_deref().unwrap_or_default().contains("no model or assistant answered"), "{pending:?}");
    assert_eq!(
        harness.engine.intervention(&admin(), agent.id).await.expect("agent").status,
        InterventionStatus::Cancelled
    );
    respond(&harness, id, json!({"label": "by hand"})).await.expect("a person supplies it");
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.output, Some(json!({"label": "by hand"})));
}

/// Steps that need nothing outside the database run in the transaction that reaches them, so
/// the answer to a start or a response already shows where the execution stopped; and many
/// concurrent transitions (one shared database transaction on SQLite: group commit) each
/// land whole, once, in order.
#[tokio::test]
async fn concurrent_transitions_commit_whole_and_run_pure_steps_inline() {
    let harness = Harness::start().await;
    harness.deploy_path(&example("kitchen"), Environment::Development).await;
    let engine = &harness.engine;
    let principal = admin();
    let principal = &principal;

    let started = futures::future::join_all((0..40).map(|_| async move {
        engine.execute(principal, start("kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"}))).await
    }))
    .await;
    let mut ids = Vec::new();
    for execution in started {
        let execution = execution.expect("execution starts");
        // gather-ingredients ran inline: the start's own answer waits for the cook.
        assert_eq!(execution.status, ExecutionStatus::Waiting, "{execution:?}");
        assert_eq!(execution.current_step.as_deref(), Some("choose-jelly"));
        ids.push(execution.id);
    }

    let harness = &harness;
    let answered = futures::future::join_all(ids.iter().map(|id| async move {
        let intervention = harness.pending(*id).await.pop().expect("a pending intervention");
        engine
            .act(
                principal,
                *id,
                Command::Respond {
                    intervention_id: intervention.id,
                    response: json!({"jelly_flavor": "apricot"}),
                    notes: None,
                },
            )
            .await
    }))
    .await;
    for execution in answered {
        // assemble-sandwich and cleanup ran inline: the answer shows the finished execution.
        let execution = execution.expect("the answer is taken");
        assert_eq!(execution.status, ExecutionStatus::Completed, "{execution:?}");
        assert_eq!(execution.output, Some(json!({"name": "PB&J", "flavor": "apricot"})));
    }
    for id in ids {
        let history = harness.history(id).await;
        assert_sound(&history, false);
        assert_eq!(history.last().map(|event| event.event_type), Some(EventType::ExecutionCompleted));
        let checkpoints = engine.checkpoints(&admin(), id).await.expect("checkpoints");
        assert_eq!(checkpoints.len(), 5, "one at the start and one after each of four steps");
    }

    // A step that fails inline rolls back nothing of its neighbours: a bad answer is refused
    // while others in the same moment are taken.
    let bad = engine
        .execute(&admin(), start("kitchen-v1", "pbj-sandwich", json!({"sandwichType": "classic"})))
        .await
        .expect("execution starts");
    let intervention = harness.pending(bad.id).await.pop().expect("a pending intervention");
    let refused = engine
        .act(
            &admin(),
            bad.id,
            Command::Respond {
                intervention_id: intervention.id,
                response: json!({"jelly_flavor": "mud"}),
                notes: None,
            },
        )
        .await;
    assert!(matches!(refused, Err(Error::InvalidValue { .. })), "{refused:?}");
    assert_eq!(harness.pending(bad.id).await.len(), 1, "the refused answer changed nothing");
}

/// A long run of steps over a growing state spans many transactions (each stops advancing
/// inline once its pending rows are about 1 MiB), and nothing is lost or repeated between them.
#[tokio::test]
async fn long_runs_over_large_state_span_bounded_transactions() {
    let harness = Harness::start().await;
    let steps = 120;
    let mut yaml = String::from("package: wide\nversion: 1.0.0\nplaybooks:\n  - name: main\n    steps:\n");
    for step in 0..steps {
        let previous = if step == 0 { "0".to_owned() } else { format!(".steps.s{}.i", step - 1) };
        // Each output carries 4 KB, so the checkpoints of a few dozen steps pass 1 MiB.
        yaml.push_str(&format!(
            "      - name: s{step}\n        kind: transform\n        program: '{{i: ({previous} + 1), pad: ([range(100)] | map(\"0123456789012345678901234567890123456789\") | add)}}'\n"
        ));
    }
    harness.deploy_yaml(&yaml, Environment::Development).await.expect("deploys");
    let id = run(&harness, "wide-v1", "main", json!({})).await;
    let done = harness.wait_status(id, ExecutionStatus::Completed).await;
    assert_eq!(done.steps[format!("s{}", steps - 1)]["i"], json!(steps));
    let history = harness.history(id).await;
    let seqs: Vec<i64> = history.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "history without gaps or repeats");
    let completed: Vec<String> = history
        .iter()
        .filter(|event| event.event_type == EventType::StepCompleted)
        .filter_map(|event| event.step.clone())
        .collect();
    assert_eq!(completed, (0..steps).map(|step| format!("s{step}")).collect::<Vec<_>>());
    let checkpoints = harness.engine.checkpoints(&admin(), id).await.expect("checkpoints");
    let mut checkpoint_seqs: Vec<i64> = checkpoints.iter().map(|checkpoint| checkpoint.seq).collect();
    checkpoint_seqs.dedup();
    assert_eq!(checkpoint_seqs.len(), checkpoints.len(), "no checkpoint written twice");
    assert!(checkpoints.len() >= steps, "a checkpoint per step: {}", checkpoints.len());
}

/// A step's output over `max_output_bytes` fails the step with the reason and is not stored,
/// whether a webhook replied it (with a length, or streamed without one) or a program built it.
#[tokio::test]
async fn outputs_and_webhook_replies_over_the_cap_fail_their_step() {
    let blob = "x".repeat(200_000);
    let sized = blob.clone();
    let router = axum::Router::new()
        .route(
            "/sized",
            post(move || {
                let blob = sized.clone();
                async move { Json(json!({"blob": blob})) }
            }),
        )
        .route(
            "/streamed",
            post(move || {
                let blob = blob.clone();
                async move {
                    // Chunks without a Content-Length: the cap must hold while reading.
                    let chunks = (0..50).map(move |_| Ok::<_, std::io::Error>(blob[..10_000].to_owned()));
                    let body = axum::body::Body::from_stream(futures::stream::iter(
                        std::iter::once(Ok("\"".to_owned())).chain(chunks).chain(std::iter::once(Ok("\"".to_owned()))),
                    ));
                    axum::response::Response::builder()
                        .header("content-type", "application/json")
                        .body(body)
                        .expect("response")
                }
            }),
        );
    let url = serve(router).await;
    let harness = Harness::start_with(|config| config.max_output_bytes = 64 * 1024).await;
    for (name, path) in [("sized", "/sized"), ("streamed", "/streamed")] {
        let steps = format!(
            "      - name: call\n        kind: webhook\n        url: {url}{path}\n        input: '{{}}'\n        on_failure: {{then: fail}}\n"
        );
        harness.deploy_yaml(&package(name, &steps), Environment::Development).await.expect("deploys");
        let id = run(&harness, &format!("{name}-v1"), "main", json!({})).await;
        let failed = harness.wait_status(id, ExecutionStatus::Failed).await;
        let error = failed.error.unwrap_or_default();
        assert!(error.contains("larger than 65536 bytes"), "{name}: {error}");
        assert!(failed.steps.get("call").is_none(), "{name}: the reply was stored");
    }
    let steps = "      - name: build\n        kind: transform\n        program: '{blob: ([range(2000)] | map(\"0123456789012345678901234567890123456789\") | add)}'\n        on_failure: {then: fail}\n";
    harness.deploy_yaml(&package("built", steps), Environment::Development).await.expect("deploys");
    let id = run(&harness, "built-v1", "main", json!({})).await;
    let failed = harness.wait_status(id, ExecutionStatus::Failed).await;
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("output is larger than 65536 bytes"), "{error}");
}

/// The inbox's "mine" filter (SQL) and the answer check (Rust) are one rule: for every
/// principal, the interventions listed as answerable are exactly those it may answer.
#[tokio::test]
async fn the_inbox_lists_exactly_what_the_answer_rule_allows() {
    let harness = Harness::start().await;
    // A TASK for each role, and a CHECKPOINT (MANUAL mode) on a step that names no role.
    let yaml = r#"
package: inbox
version: 1.0.0
roles:
  - name: clerk
  - name: manager
playbooks:
  - name: for-clerk
    steps:
      - {name: ask, kind: human, role: clerk, output_schema: {type: object}}
  - name: for-manager
    steps:
      - {name: ask, kind: human, role: manager, output_schema: {type: object}}
  - name: for-anyone
    steps:
      - {name: shape, kind: transform, program: '{}'}
"#;
    harness.deploy_yaml(yaml, Environment::Development).await.expect("the package deploys");
    for (playbook, mode) in [("for-clerk", Mode::Auto), ("for-manager", Mode::Auto), ("for-anyone", Mode::Manual)] {
        let request = ExecuteRequest { mode, ..start("inbox-v1", playbook, json!({})) };
        let execution = harness.engine.execute(&admin(), request).await.expect("starts");
        harness.wait_status(execution.id, ExecutionStatus::Waiting).await;
    }
    let pending =
        orgata::engine::InterventionFilter { status: Some(InterventionStatus::Pending), ..Default::default() };
    let all = harness.engine.interventions(&admin(), &pending, 100).await.expect("lists");
    assert_eq!(all.len(), 3);
    assert!(all.iter().any(|intervention| intervention.role.is_none()), "one asks no role: {all:?}");
    let principals = [
        common::person("clerk", &["clerk"]),
        common::person("manager", &["manager"]),
        common::person("both", &["clerk", "manager"]),
        common::person("nobody", &[]),
        admin(),
    ];
    for principal in principals {
        let mine = orgata::engine::InterventionFilter { answerable_by: Some(principal.clone()), ..pending.clone() };
        let mut listed: Vec<String> = harness
            .engine
            .interventions(&principal, &mine, 100)
            .await
            .expect("lists")
            .into_iter()
            .map(|intervention| intervention.step_index.to_string() + &intervention.execution_id.to_string())
            .collect();
        let mut allowed: Vec<String> = all
            .iter()
            .filter(|intervention| principal.may_answer(intervention.role.as_deref(), intervention.environment))
            .map(|intervention| intervention.step_index.to_string() + &intervention.execution_id.to_string())
            .collect();
        listed.sort();
        allowed.sort();
        assert_eq!(listed, allowed, "{}", principal.id);
    }
}
