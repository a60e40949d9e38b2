//! `orgata package test`: runs a package's declared tests (`tests:` in the package) in the
//! `simulation` environment of a throwaway engine, and says for each whether it ended as
//! expected — and if not, the step and the JSON path that broke.
//!
//! Each test deploys the package once, as its own runtime, with the test's `outputs` written
//! over those steps' `simulated_output`, so a test can take any branch (a person declines, a
//! webhook refuses) without a person or a network. Nothing leaves the process: simulation
//! never calls out. The engine is the real one, on a temporary SQLite database, so a test
//! passes exactly when the same run would pass on a server.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::engine::{
    DeployRequest, Engine, EngineConfig, Environment, EventType, ExecuteRequest, Execution, ExecutionStatus, Grants,
    Mode, Principal,
};
use crate::package::{LoadedPackage, Package, PackageTest, Problem};

/// How one test went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub playbook: String,
    /// `None` when it ended as expected; otherwise what broke, naming the step and path.
    pub failure: Option<String>,
}

/// What `orgata package test` reports.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Steps no test ran, as `playbook/step`.
    pub uncovered: Vec<String>,
    /// Playbooks no test runs.
    pub untested: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|outcome| outcome.failure.is_none())
    }
}

/// Why the tests could not run at all.
#[derive(Debug)]
pub enum Failure {
    /// The package does not load or validate.
    Problems(Vec<Problem>),
    Engine(String),
}

/// Loads, validates and runs the tests of the package at `path`; each run may take `timeout`.
pub async fn run(path: &Path, timeout: Duration) -> Result<Report, Failure> {
    let loaded = crate::package::load_path(path).map_err(Failure::Problems)?;
    let package = crate::package::validate(&loaded).map_err(Failure::Problems)?;
    let directory = std::env::temp_dir().join(format!("orgata-package-test-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&directory)
        .map_err(|error| Failure::Engine(format!("{}: {error}", directory.display())))?;
    let engine = Engine::start(EngineConfig::new(crate::store::sqlite_url(&directory.join("tests.db"))))
        .await
        .map_err(|error| Failure::Engine(error.to_string()));
    let report = match engine {
        Ok(engine) => {
            let report = run_all(&engine, &loaded, &package, timeout).await;
            engine.stop();
            Ok(report)
        }
        Err(failure) => Err(failure),
    };
    let _ = std::fs::remove_dir_all(&directory);
    report
}

async fn run_all(engine: &Engine, loaded: &LoadedPackage, package: &Package, timeout: Duration) -> Report {
    let tester = Principal::new("package-test", Vec::<String>::new(), Grants::all());
    let mut report = Report::default();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    for (index, test) in package.tests.iter().enumerate() {
        let failure = match run_one(engine, &tester, loaded, package, index, test, timeout).await {
            Ok((execution, steps)) => {
                ran.extend(steps);
                judge(test, &execution)
            }
            Err(message) => Some(message),
        };
        report.outcomes.push(Outcome { name: test.name.clone(), playbook: test.playbook.clone(), failure });
    }
    for playbook in &package.playbooks {
        if !package.tests.iter().any(|test| test.playbook == playbook.name) {
            report.untested.push(playbook.name.clone());
            continue;
        }
        for step in &playbook.steps {
            let key = format!("{}/{}", playbook.name, step.name);
            if !ran.contains(&key) {
                report.uncovered.push(key);
            }
        }
    }
    report
}

/// Deploys the package for test `index` and runs it until it stops; returns the execution and
/// the steps that ran.
async fn run_one(
    engine: &Engine,
    tester: &Principal,
    loaded: &LoadedPackage,
    package: &Package,
    index: usize,
    test: &PackageTest,
    timeout: Duration,
) -> Result<(Execution, Vec<String>), String> {
    let mut document = loaded.document.clone();
    for (key, output) in &test.outputs {
        let (playbook, step) = key.split_once('/').unwrap_or((test.playbook.as_str(), key.as_str()));
        let target = package.playbooks.iter().position(|candidate| candidate.name == playbook).and_then(|at| {
            let step = package.playbooks[at].steps.iter().position(|candidate| candidate.name == step)?;
            document.pointer_mut(&format!("/playbooks/{at}/steps/{step}"))
        });
        if let Some(Value::Object(step)) = target {
            step.insert("simulated_output".to_owned(), output.clone());
        }
    }
    let runtime_id = format!("test-{index}");
    let request = DeployRequest {
        runtime_id: Some(runtime_id.clone()),
        environment: Environment::Simulation,
        package: LoadedPackage { document, sources: loaded.sources.clone() },
    };
    engine.deploy(tester, request).await.map_err(|error| format!("could not be deployed: {error}"))?;
    let started = engine
        .execute(
            tester,
            ExecuteRequest {
                runtime_id,
                playbook: test.playbook.clone(),
                input: test.input.clone(),
                mode: Mode::Auto,
                idempotency_key: None,
            },
        )
        .await
        .map_err(|error| format!("could not start: {error}"))?;
    let deadline = Instant::now() + timeout;
    let mut execution = started;
    while !stopped(engine, tester, &execution).await {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still {} at step `{}` after {} s",
                execution.status,
                execution.current_step.as_deref().unwrap_or("-"),
                timeout.as_secs()
            ));
        }
        execution = engine
            .settle(tester, execution.id, left.min(Duration::from_millis(500)))
            .await
            .map_err(|error| error.to_string())?;
    }
    let (steps, last) = completed_steps(engine, tester, &execution).await.map_err(|error| error.to_string())?;
    let execution = Execution { current_step: last.or(execution.current_step.clone()), ..execution };
    Ok((execution, steps))
}

/// The steps that completed in `execution` and in the children it started, as
/// `playbook/step` (a skipped step does not count: its work never ran), and the last step of
/// `execution` itself that completed or failed. Each history is read once.
async fn completed_steps(
    engine: &Engine,
    tester: &Principal,
    execution: &Execution,
) -> crate::engine::Result<(Vec<String>, Option<String>)> {
    let mut steps = Vec::new();
    let mut last = None;
    let mut work = vec![(execution.id, execution.playbook.clone())];
    while let Some((id, playbook)) = work.pop() {
        let history = engine.history(tester, id, 0, crate::engine::MAX_PAGE).await?;
        if id == execution.id {
            last = last_step(&history);
        }
        for event in history {
            if event.event_type == EventType::StepCompleted
                && let Some(step) = event.step
            {
                steps.push(format!("{playbook}/{step}"));
            }
        }
        let children = crate::engine::ExecutionFilter { parent_id: Some(id), ..Default::default() };
        for child in engine.executions(tester, &children, crate::engine::MAX_PAGE, None).await?.items {
            work.push((child.id, child.playbook));
        }
    }
    Ok((steps, last))
}

/// Finished, or waiting for a person (not for a child execution, which is still running).
async fn stopped(engine: &Engine, tester: &Principal, execution: &Execution) -> bool {
    match execution.status {
        ExecutionStatus::Running => false,
        ExecutionStatus::Waiting => {
            let filter = crate::engine::InterventionFilter {
                execution_id: Some(execution.id),
                status: Some(crate::engine::InterventionStatus::Pending),
                ..Default::default()
            };
            engine.interventions(tester, &filter, 1).await.is_ok_and(|pending| !pending.is_empty())
        }
        _ => true,
    }
}

/// The last step that completed or failed: where a run that broke at its end broke.
fn last_step(history: &[crate::engine::Event]) -> Option<String> {
    history
        .iter()
        .rev()
        .find(|event| matches!(event.event_type, EventType::StepCompleted | EventType::StepFailed))
        .and_then(|event| event.step.clone())
}

/// Whether the run ended as the test expects; what differs if not.
fn judge(test: &PackageTest, execution: &Execution) -> Option<String> {
    let at = execution.current_step.as_deref().unwrap_or("-");
    let expected = test.expect.status.as_str();
    if execution.status.as_str() != expected {
        let why = execution.error.as_deref().map(|error| format!(": {error}")).unwrap_or_default();
        return Some(format!("expected {expected}, ended {} at step `{at}`{why}", execution.status));
    }
    if let Some(text) = &test.expect.error
        && !execution.error.as_deref().unwrap_or_default().contains(text.as_str())
    {
        return Some(format!(
            "the error at step `{at}` does not contain `{text}`: {}",
            execution.error.as_deref().unwrap_or("(none)")
        ));
    }
    if let Some(expected) = &test.expect.output {
        let actual = execution.output.clone().unwrap_or(Value::Null);
        if let Some((pointer, want, got)) = difference(expected, &actual, String::new()) {
            return Some(format!(
                "the output differs at {}: expected {want}, got {got} (last step `{at}`)",
                if pointer.is_empty() { "/" } else { &pointer }
            ));
        }
    }
    None
}

/// The first place (JSON pointer) where `actual` differs from `expected`, with both values.
fn difference(expected: &Value, actual: &Value, at: String) -> Option<(String, String, String)> {
    let shown = |value: Option<&Value>| value.map_or_else(|| "nothing".to_owned(), Value::to_string);
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            keys.into_iter().find_map(|key| {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (want.get(key), got.get(key)) {
                    (Some(want), Some(got)) => difference(want, got, pointer),
                    (want, got) => Some((pointer, shown(want), shown(got))),
                }
            })
        }
        (Value::Array(want), Value::Array(got)) if want.len() == got.len() => want
            .iter()
            .zip(got)
            .enumerate()
            .find_map(|(index, (want, got))| difference(want, got, format!("{at}/{index}"))),
        _ if expected == actual => None,
        _ => Some((at, expected.to_string(), actual.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_first_path() {
        let want = serde_json::json!({"a": {"b": [1, 2]}, "c": "x"});
        assert_eq!(difference(&want, &want, String::new()), None);
        let got = serde_json::json!({"a": {"b": [1, 3]}, "c": "x"});
        assert_eq!(difference(&want, &got, String::new()), Some(("/a/b/1".to_owned(), "2".to_owned(), "3".to_owned())));
        let missing = serde_json::json!({"a": {"b": [1, 2]}});
        assert_eq!(
            difference(&want, &missing, String::new()),
            Some(("/c".to_owned(), "\"x\"".to_owned(), "nothing".to_owned()))
        );
    }
}
