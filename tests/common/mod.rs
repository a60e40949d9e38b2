//! The engine test harness: a real engine on a real database — a fresh SQLite file, or, when
//! `ORGATA_TEST_DATABASE_URL` is set, a fresh schema in that PostgreSQL database — plus small
//! loopback servers standing in for webhooks and model endpoints.

#![allow(dead_code)]

pub mod wait;

use std::path::Path;
use std::time::Duration;

use orgata::engine::{
    DeployRequest, Engine, EngineConfig, Environment, Event, EventType, Execution, ExecutionId, ExecutionStatus,
    Intervention, InterventionFilter, InterventionStatus, Principal, Runtime,
};
use orgata::package::load::{Format, load_document};
use orgata::package::load_path;

pub use wait::{PATIENCE, wait_until};

pub struct Harness {
    pub engine: Engine,
    pub config: EngineConfig,
    _directory: tempfile::TempDir,
}

/// A principal that may do anything.
pub fn admin() -> Principal {
    Principal::new("admin", Vec::<String>::new(), orgata::engine::Grants::all())
}

/// A principal with the default development grants (not an admin of anything else) and roles.
pub fn person(id: &str, roles: &[&str]) -> Principal {
    let grants = orgata::engine::Grants::parse(&["development:write:execution", "development:write:intervention"])
        .expect("grants");
    Principal::new(id, roles.iter().copied(), grants)
}

/// The example packages, relative to the crate root.
pub fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut EngineConfig)) -> Harness {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut config = EngineConfig::for_test_database(directory.path());
        config.pool_size = 8;
        config.workers = 4;
        configure(&mut config);
        let engine = Engine::start(config.clone()).await.expect("engine starts");
        Harness { engine, config, _directory: directory }
    }

    /// Another engine on the same database, as after a restart.
    pub async fn restart(&mut self) {
        self.engine.stop();
        self.engine = Engine::start(self.config.clone()).await.expect("engine restarts");
    }

    pub async fn deploy_path(&self, path: &Path, environment: Environment) -> Runtime {
        let loaded = load_path(path).expect("example loads");
        self.engine
            .deploy(&admin(), DeployRequest { runtime_id: None, environment, package: loaded })
            .await
            .expect("example deploys")
    }

    pub async fn deploy_yaml(&self, yaml: &str, environment: Environment) -> orgata::engine::Result<Runtime> {
        let loaded = load_document("test.yaml", yaml, Format::Yaml).expect("test package parses");
        self.engine.deploy(&admin(), DeployRequest { runtime_id: None, environment, package: loaded }).await
    }

    /// Polls until the execution satisfies `done` (20 s at most).
    pub async fn wait_for(&self, id: ExecutionId, what: &str, done: impl Fn(&Execution) -> bool) -> Execution {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let execution = self.engine.execution(&admin(), id).await.expect("execution exists");
            if done(&execution) {
                return execution;
            }
            if tokio::time::Instant::now() > deadline {
                let history = self.engine.history(&admin(), id, 0, 1000).await.unwrap_or_default();
                let types: Vec<String> = history
                    .iter()
                    .map(|event| format!("{} {:?} {}", event.event_type, event.step, event.payload))
                    .collect();
                panic!(
                    "execution {id} never became {what}; it is {:?} at {:?}\n{}",
                    execution.status,
                    execution.current_step,
                    types.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_status(&self, id: ExecutionId, status: ExecutionStatus) -> Execution {
        self.wait_for(id, status.as_str(), |execution| execution.status == status).await
    }

    /// Waits until the execution is parked on a pending intervention, and returns it.
    pub async fn wait_intervention(&self, id: ExecutionId) -> Intervention {
        self.wait_status(id, ExecutionStatus::Waiting).await;
        let mut pending = self.pending(id).await;
        assert_eq!(pending.len(), 1, "exactly one pending intervention: {pending:?}");
        pending.remove(0)
    }

    pub async fn pending(&self, id: ExecutionId) -> Vec<Intervention> {
        let filter = InterventionFilter {
            execution_id: Some(id),
            status: Some(InterventionStatus::Pending),
            ..Default::default()
        };
        self.engine.interventions(&admin(), &filter, 100).await.expect("interventions")
    }

    pub async fn history(&self, id: ExecutionId) -> Vec<Event> {
        self.engine.history(&admin(), id, 0, 10_000).await.expect("history")
    }

    pub async fn types(&self, id: ExecutionId) -> Vec<EventType> {
        self.history(id).await.iter().map(|event| event.event_type).collect()
    }
}

/// History `seq` runs 1, 2, 3… without gaps, and (for executions nobody steered) no step
/// completed twice.
pub fn assert_sound(events: &[Event], steered: bool) {
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.seq, index as i64 + 1, "seq has a gap or repeat at {index}: {events:?}");
    }
    if !steered {
        let mut completed = std::collections::HashSet::new();
        for event in events.iter().filter(|event| event.event_type == EventType::StepCompleted) {
            let step = event.step.clone().unwrap_or_default();
            assert!(completed.insert(step.clone()), "step {step} completed twice");
        }
    }
}

/// Serves `router` on a random loopback port; returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}
