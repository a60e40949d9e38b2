//! The engine: deploys packages, runs playbooks durably, stops for people, lets people steer,
//! keeps history and streams it. Plain async Rust: nothing here knows HTTP, GraphQL or MCP.
//!
//! Every transition is one database transaction ([`tx::Tx`]); workers ([`worker`]) run steps of
//! RUNNING executions; parked executions are rows, not tasks.

pub mod access;
pub mod agent;
pub mod auth;
mod cache;
pub mod definition;
pub mod error;
mod events;
pub mod payloads;
mod progress;
mod records;
mod replicas;
pub mod transition;
pub(crate) mod tx;
pub mod types;
pub mod webhook;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, SqlErr};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

pub use access::{Access, Grants, Resource};
pub use error::{Error, ErrorCode, Result};
pub use events::EventFilter;
pub use transition::Command;
pub use types::*;

use crate::engine::access::authorize;

use crate::engine::agent::{Model, OpenAiModel};
use crate::engine::definition::Definition;
use crate::package::{self, LoadedPackage, Package, Problem};
use crate::store::entity::{checkpoint, execution, intervention, runtime};
use crate::store::{Backend, Store};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `sqlite://path?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// On PostgreSQL, the schema that holds Orgata's tables (default: `public`).
    pub database_schema: Option<String>,
    /// Database connections in the pool.
    pub pool_size: u32,
    /// Steps run concurrently at most; 0 runs no workers at all (for administration tools).
    pub workers: usize,
    /// How long a replica's claim on a running execution lasts without renewal.
    pub lease: Duration,
    /// An OpenAI-compatible endpoint for agent steps; without one they become interventions.
    pub model: Option<ModelConfig>,
    /// URL prefixes webhook steps may call, per environment.
    pub webhook_allow: HashMap<Environment, Vec<String>>,
    /// JWT verification, if bearer JWTs are accepted.
    pub jwt: Option<auth::JwtConfig>,
    /// What one package may hold, and how deep playbooks may nest (checked at deploy over
    /// the call graph, and when a child execution starts).
    pub limits: package::Limits,
    /// The largest step output stored (a webhook's reply included), in bytes of JSON; a
    /// larger one fails its step.
    pub max_output_bytes: usize,
    /// About how many bytes of compiled definitions stay in memory; the least recently used
    /// runtime versions are dropped beyond it (and compiled again when next needed).
    pub definition_cache_bytes: usize,
}

/// How many times working one execution may fail inside the engine (not in its steps) before
/// it is failed as poison rather than retried.
pub const POISON_ATTEMPTS: u32 = 3;

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
}

impl EngineConfig {
    /// Defaults: 8 workers, a 30 s lease, loopback webhooks in development and simulation.
    pub fn new(database_url: impl Into<String>) -> EngineConfig {
        let loopback: Vec<String> =
            ["http://127.0.0.1", "http://localhost", "http://[::1]"].map(str::to_owned).to_vec();
        EngineConfig {
            database_url: database_url.into(),
            database_schema: None,
            pool_size: 16,
            workers: 8,
            lease: Duration::from_secs(30),
            model: None,
            webhook_allow: HashMap::from([
                (Environment::Development, loopback.clone()),
                (Environment::Simulation, loopback),
            ]),
            jwt: None,
            limits: package::Limits::DEFAULT,
            max_output_bytes: 4 * 1024 * 1024,
            definition_cache_bytes: 256 * 1024 * 1024,
        }
    }

    pub fn webhook_allow_list(&self, environment: Environment) -> &[String] {
        self.webhook_allow.get(&environment).map_or(&[], Vec::as_slice)
    }
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// Defaults to `<package>-v<major version>`.
    pub runtime_id: Option<String>,
    pub environment: Environment,
    pub package: LoadedPackage,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    pub runtime_id: String,
    pub playbook: String,
    pub input: Value,
    pub mode: Mode,
    /// A client that repeats a start with the same key gets the same execution back.
    pub idempotency_key: Option<String>,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    pub playbook: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub parent_id: Option<ExecutionId>,
}

/// Which interventions to list.
#[derive(Debug, Clone, Default)]
pub struct InterventionFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    pub execution_id: Option<ExecutionId>,
    pub status: Option<InterventionStatus>,
    pub kind: Option<InterventionKind>,
    /// Only interventions this principal may answer.
    pub answerable_by: Option<Principal>,
}

/// One page of a list ordered newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

/// The most items one page may hold.
pub const MAX_PAGE: u64 = 500;

/// A running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    pub(crate) replica_id: String,
    pub(crate) http: reqwest::Client,
    pub(crate) model: Option<Arc<dyn Model>>,
    definitions: cache::DefinitionCache,
    events: broadcast::Sender<Arc<Event>>,
    /// Per-execution channels, for subscribers of one execution (see `events::Hub`).
    watchers: events::Hub,
    queue: mpsc::UnboundedSender<String>,
    /// Executions a worker of this process holds, and whether they were woken again since.
    active: Mutex<HashMap<String, bool>>,
    /// Consecutive engine failures per execution (see [`Inner::poisoned`]).
    failures: Mutex<HashMap<String, u32>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Connects to the database, applies migrations, and starts the workers, which pick up
    /// every execution that was running when the engine last stopped.
    pub async fn start(config: EngineConfig) -> Result<Engine> {
        let store = Store::connect(&config.database_url, config.pool_size, config.database_schema.as_deref()).await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| Error::Internal(format!("HTTP client: {error}")))?;
        let model: Option<Arc<dyn Model>> = config.model.as_ref().map(|model| {
            Arc::new(OpenAiModel::new(http.clone(), &model.url, &model.model, model.api_key.clone())) as Arc<dyn Model>
        });
        Engine::start_with(config, store, http, model).await
    }

    /// Like [`Engine::start`], with a store and model of the caller's choosing.
    pub async fn start_with(
        config: EngineConfig,
        store: Store,
        http: reqwest::Client,
        model: Option<Arc<dyn Model>>,
    ) -> Result<Engine> {
        if store.backend() == Backend::Sqlite && config.workers > 0 {
            // One process owns a SQLite file, so leases left by an earlier run are void. An
            // administration tool (no workers) may run beside a live server and leaves them.
            execution::Entity::update_many()
                .col_expr(execution::Column::LeaseOwner, Expr::value(Option::<String>::None))
                .col_expr(execution::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(execution::Column::LeaseOwner.is_not_null())
                .exec(store.connection())
                .await?;
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(events::BROADCAST_CAPACITY);
        let inner = Arc::new(Inner {
            store,
            replica_id: format!("replica-{}", uuid::Uuid::now_v7()),
            http,
            model,
            definitions: cache::DefinitionCache::new(config.definition_cache_bytes),
            events,
            watchers: events::Hub::default(),
            queue,
            active: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            config,
        });
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let mut tasks = Vec::new();
        if inner.config.workers == 0 {
            return Ok(Engine { inner });
        }
        for _ in 0..inner.config.workers {
            let engine = inner.clone();
            let receiver = receiver.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(id) = receiver.lock().await.recv().await else { return };
                    engine.work(&id).await;
                }
            }));
        }
        if inner.store.backend() == Backend::Postgres {
            tasks.push(tokio::spawn(replicas::listen(inner.clone(), inner.config.database_url.clone())));
        }
        let engine = inner.clone();
        tasks.push(tokio::spawn(async move {
            let interval = worker::sweep_interval(engine.config.lease);
            loop {
                match worker::sweep(&engine, 256).await {
                    Ok(ids) => ids.iter().for_each(|id| engine.enqueue(id)),
                    Err(error) => tracing::warn!(%error, "sweeping for runnable executions failed"),
                }
                if let Err(error) = worker::expire(&engine, 256).await {
                    tracing::warn!(%error, "expiring unanswered AGENT interventions failed");
                }
                tokio::time::sleep(interval).await;
            }
        }));
        inner.tasks.lock().map_err(|_| Error::Internal("task list poisoned".into()))?.extend(tasks);
        Ok(Engine { inner })
    }

    /// Stops the workers at once, as a crash would: steps under way are abandoned and run
    /// again by whichever engine next claims their executions.
    pub fn stop(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    // ----- Runtimes -------------------------------------------------------------------------

    /// Validates a package and deploys it as a new version of a runtime. A runtime id belongs to
    /// one package: another package under it is a CONFLICT naming both, and the same package
    /// document as the latest version is that version (deploying is idempotent).
    pub async fn deploy(&self, principal: &Principal, request: DeployRequest) -> Result<Runtime> {
        let package = package::validate(&request.package).map_err(|problems| Error::InvalidPackage { problems })?;
        let problems = package::limits::check(&request.package, &package, &self.inner.config.limits);
        if !problems.is_empty() {
            return Err(Error::InvalidPackage { problems });
        }
        let runtime_id = match request.runtime_id {
            Some(id) => id,
            None => format!("{}-v{}", package.package, package.version.split('.').next().unwrap_or("0")),
        };
        check_slug(&runtime_id)?;
        authorize(principal, request.environment, Access::Write, Resource::Runtime)?;
        self.check_webhooks(&package, request.environment, &request.package)?;
        for _ in 0..5 {
            match self.insert_runtime(principal, &runtime_id, request.environment, &package).await {
                Err(Error::Store(error)) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    continue;
                }
                other => return other,
            }
        }
        Err(Error::Conflict(format!("runtime `{runtime_id}` is being deployed concurrently; try again")))
    }

    fn check_webhooks(&self, package: &Package, environment: Environment, loaded: &LoadedPackage) -> Result<()> {
        let allow_list = self.inner.config.webhook_allow_list(environment);
        let mut problems = Vec::new();
        let mut check = |pointer: String, url: &Option<String>| {
            if let Some(url) = url
                && !webhook::allowed(allow_list, url)
            {
                let (file, path) = loaded.sources.locate(&pointer);
                problems.push(Problem::at(
                    &file,
                    &path,
                    format!("webhook URL `{url}` is not on the {environment} allow-list"),
                ));
            }
        };
        for (index, operation) in package.operations.iter().enumerate() {
            check(format!("/operations/{index}/url"), &operation.implementation.url);
        }
        for (index, playbook) in package.playbooks.iter().enumerate() {
            for (step_index, step) in playbook.steps.iter().enumerate() {
                check(format!("/playbooks/{index}/steps/{step_index}/url"), &step.implementation.url);
            }
        }
        // Simulation never calls out, so its webhooks need no allow-list.
        if problems.is_empty() || environment == Environment::Simulation {
            Ok(())
        } else {
            Err(Error::InvalidPackage { problems })
        }
    }

    async fn insert_runtime(
        &self,
        principal: &Principal,
        runtime_id: &str,
        environment: Environment,
        package: &Package,
    ) -> Result<Runtime> {
        let tx = tx::Tx::begin(&self.inner).await?;
        let latest = runtime::Entity::find()
            .filter(runtime::Column::Id.eq(runtime_id))
            .order_by_desc(runtime::Column::Version)
            .one(tx.db())
            .await?;
        if let Some(latest) = &latest {
            let existing: Environment = records::parse(&latest.environment)?;
            if existing != environment {
                tx.abandon().await;
                return Err(Error::EnvironmentMismatch {
                    runtime: runtime_id.to_owned(),
                    existing,
                    requested: environment,
                });
            }
            // Otherwise any package could take over a runtime and become its next version.
            if latest.package_name != package.package {
                tx.abandon().await;
                return Err(Error::RuntimeTaken {
                    runtime: runtime_id.to_owned(),
                    existing: latest.package_name.clone(),
                    requested: package.package.clone(),
                });
            }
        }
        // The canonical document (the typed package serialised, so formatting, key order and
        // YAML versus JSON do not count) decides whether anything changed.
        let definition = serde_json::to_value(package).map_err(|error| Error::Internal(error.to_string()))?;
        if let Some(latest) = latest.as_ref().filter(|latest| latest.definition == definition) {
            tx.commit().await?;
            return records::runtime(latest.clone());
        }
        let model = runtime::Model {
            id: runtime_id.to_owned(),
            version: latest.map_or(1, |latest| latest.version + 1),
            environment: environment.as_str().to_owned(),
            package_name: package.package.clone(),
            package_version: package.version.clone(),
            definition,
            deployed_by: principal.id.clone(),
            deployed_at: Utc::now(),
        };
        runtime::Entity::insert(model.clone().into_active_model()).exec_without_returning(tx.db()).await?;
        let runtime = records::runtime(model)?;
        // Compiling before commit means a deployed version always compiles.
        let definition = Arc::new(Definition::compile(runtime.clone())?);
        tx.commit().await?;
        self.inner.cache(definition);
        Ok(runtime)
    }

    /// The latest version of every runtime, optionally of one environment, ordered by id.
    pub async fn runtimes(&self, principal: &Principal, environment: Option<Environment>) -> Result<Vec<Runtime>> {
        if let Some(environment) = environment {
            authorize(principal, environment, Access::Read, Resource::Runtime)?;
        }
        let readable = readable(principal, Resource::Runtime, environment);
        let query = runtime::Entity::find()
            .filter(runtime::Column::Environment.is_in(readable))
            .order_by_asc(runtime::Column::Id)
            .order_by_desc(runtime::Column::Version);
        let mut seen = HashSet::new();
        query
            .all(self.inner.store.connection())
            .await?
            .into_iter()
            .filter(|row| seen.insert(row.id.clone()))
            .map(records::runtime)
            .collect()
    }

    /// A runtime at a version, or its latest.
    pub async fn runtime(&self, principal: &Principal, id: &str, version: Option<i32>) -> Result<Runtime> {
        Ok(self.definition(principal, id, version, Resource::Runtime).await?.runtime.clone())
    }

    /// Every version of a runtime, newest first.
    pub async fn runtime_versions(&self, principal: &Principal, id: &str) -> Result<Vec<Runtime>> {
        self.definition(principal, id, None, Resource::Runtime).await?;
        let rows = runtime::Entity::find()
            .filter(runtime::Column::Id.eq(id))
            .order_by_desc(runtime::Column::Version)
            .all(self.inner.store.connection())
            .await?;
        if rows.is_empty() {
            return Err(Error::RuntimeNotFound(id.to_owned()));
        }
        rows.into_iter().map(records::runtime).collect()
    }

    /// The compiled definition of a runtime at a version, or its latest.
    pub async fn definition(
        &self,
        principal: &Principal,
        id: &str,
        version: Option<i32>,
        resource: Resource,
    ) -> Result<Arc<Definition>> {
        let definition = self.inner.runtime_definition(id, version).await?;
        authorize(principal, definition.runtime.environment, Access::Read, resource)?;
        Ok(definition)
    }

    // ----- Executions -----------------------------------------------------------------------

    /// Starts a playbook on the latest version of a runtime. The input is checked against the
    /// playbook's input schema, with every error reported.
    pub async fn execute(&self, principal: &Principal, request: ExecuteRequest) -> Result<Execution> {
        let definition = self.inner.runtime_definition(&request.runtime_id, None).await?;
        authorize(principal, definition.runtime.environment, Access::Write, Resource::Execution)?;
        let playbook = definition.playbook(&request.playbook)?.clone();
        if let Some(validator) = &playbook.input_validator {
            crate::schema::validate(validator, &request.input)
                .map_err(|errors| Error::invalid(format!("the input of playbook `{}`", playbook.name), errors))?;
        }
        if let Some(key) = &request.idempotency_key {
            if key.is_empty() || key.len() > 200 {
                return Err(Error::BadInput("an idempotency key has 1 to 200 characters".to_owned()));
            }
            if let Some(existing) = self.find_idempotent(&request.runtime_id, key).await? {
                return self.same_request(existing, &request);
            }
        }
        let runtime = &definition.runtime;
        let created = async {
            let mut tx = tx::Tx::begin(&self.inner).await?;
            let created = progress::create_execution(
                &mut tx,
                progress::NewExecution {
                    runtime_id: &runtime.id,
                    runtime_version: runtime.version,
                    environment: runtime.environment.as_str(),
                    playbook: &playbook,
                    input: request.input.clone(),
                    mode: request.mode,
                    started_by: &principal.id,
                    idempotency_key: request.idempotency_key.clone(),
                    parent: None,
                },
            )
            .await;
            let row = match created {
                Ok(row) => row,
                Err(error) => {
                    tx.abandon().await;
                    return Err(error);
                }
            };
            // The first steps run inline at commit; answer with where they left it.
            let moved = tx.commit_reading(Some(&row.id)).await?;
            Ok::<_, Error>(moved.unwrap_or(row))
        }
        .await;
        let row = match created {
            Err(Error::Store(error)) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                // Another request with the same idempotency key won the race.
                let key = request.idempotency_key.as_deref().unwrap_or_default();
                let existing = self.find_idempotent(&request.runtime_id, key).await?.ok_or(Error::Store(error))?;
                return self.same_request(existing, &request);
            }
            other => other?,
        };
        self.inner.to_execution(&row).await
    }

    async fn find_idempotent(&self, runtime_id: &str, key: &str) -> Result<Option<Execution>> {
        let row = execution::Entity::find()
            .filter(execution::Column::RuntimeId.eq(runtime_id))
            .filter(execution::Column::IdempotencyKey.eq(key))
            .one(self.inner.store.connection())
            .await?;
        match row {
            Some(row) => Ok(Some(self.inner.to_execution(&row).await?)),
            None => Ok(None),
        }
    }

    fn same_request(&self, existing: Execution, request: &ExecuteRequest) -> Result<Execution> {
        if existing.playbook == request.playbook && existing.input == request.input {
            Ok(existing)
        } else {
            Err(Error::Conflict(format!(
                "idempotency key was already used by execution {} with a different playbook or input",
                existing.id
            )))
        }
    }

    pub async fn execution(&self, principal: &Principal, id: ExecutionId) -> Result<Execution> {
        let row = execution::Entity::find_by_id(id.to_string())
            .one(self.inner.store.connection())
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        authorize(principal, records::parse(&row.environment)?, Access::Read, Resource::Execution)?;
        self.inner.to_execution(&row).await
    }

    /// Executions newest first; `after` is the id of the last item of the previous page.
    pub async fn executions(
        &self,
        principal: &Principal,
        filter: &ExecutionFilter,
        first: u64,
        after: Option<ExecutionId>,
    ) -> Result<Page<Execution>> {
        let first = first.clamp(1, MAX_PAGE);
        if let Some(environment) = filter.environment {
            authorize(principal, environment, Access::Read, Resource::Execution)?;
        }
        let mut condition = Condition::all().add(execution::Column::Environment.is_in(readable(
            principal,
            Resource::Execution,
            filter.environment,
        )));
        if let Some(runtime_id) = &filter.runtime_id {
            condition = condition.add(execution::Column::RuntimeId.eq(runtime_id.as_str()));
        }
        if let Some(playbook) = &filter.playbook {
            condition = condition.add(execution::Column::Playbook.eq(playbook.as_str()));
        }
        if let Some(status) = filter.status {
            condition = condition.add(execution::Column::Status.eq(status.as_str()));
        }
        if let Some(parent) = filter.parent_id {
            condition = condition.add(execution::Column::ParentId.eq(parent.to_string()));
        }
        if let Some(after) = after {
            condition = condition.add(execution::Column::Id.lt(after.to_string()));
        }
        let mut rows = execution::Entity::find()
            .filter(condition)
            .order_by_desc(execution::Column::Id)
            .limit(first + 1)
            .all(self.inner.store.connection())
            .await?;
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(first as usize);
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.inner.to_execution(row).await?);
        }
        Ok(Page { items, has_next_page })
    }

    /// How many executions there are in each status.
    pub async fn execution_counts(&self) -> Result<Vec<(ExecutionStatus, i64)>> {
        let rows: Vec<(String, i64)> = execution::Entity::find()
            .select_only()
            .column(execution::Column::Status)
            .column_as(execution::Column::Id.count(), "count")
            .group_by(execution::Column::Status)
            .into_tuple()
            .all(self.inner.store.connection())
            .await?;
        rows.into_iter().map(|(status, count)| Ok((records::parse(&status)?, count))).collect()
    }

    /// History after `after_seq`, at most `limit` events.
    pub async fn history(
        &self,
        principal: &Principal,
        id: ExecutionId,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<Event>> {
        self.readable_execution(principal, id).await?;
        events::read(&self.inner, id, after_seq, None, limit.clamp(1, 10_000)).await
    }

    pub async fn checkpoints(&self, principal: &Principal, id: ExecutionId) -> Result<Vec<Checkpoint>> {
        self.readable_execution(principal, id).await?;
        checkpoint::Entity::find()
            .filter(checkpoint::Column::ExecutionId.eq(id.to_string()))
            .order_by_asc(checkpoint::Column::Seq)
            .all(self.inner.store.connection())
            .await?
            .into_iter()
            .map(records::checkpoint)
            .collect()
    }

    async fn readable_execution(&self, principal: &Principal, id: ExecutionId) -> Result<()> {
        let environment = execution::Entity::find_by_id(id.to_string())
            .select_only()
            .column(execution::Column::Environment)
            .into_tuple::<String>()
            .one(self.inner.store.connection())
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        authorize(principal, records::parse(&environment)?, Access::Read, Resource::Execution)
    }

    // ----- Interventions and steering ---------------------------------------------------------

    pub async fn intervention(&self, principal: &Principal, id: InterventionId) -> Result<Intervention> {
        let row = intervention::Entity::find_by_id(id.to_string())
            .one(self.inner.store.connection())
            .await?
            .ok_or(Error::InterventionNotFound(id))?;
        let intervention = records::intervention(row)?;
        authorize(principal, intervention.environment, Access::Read, Resource::Intervention)?;
        Ok(intervention)
    }

    /// Interventions, oldest first.
    pub async fn interventions(
        &self,
        principal: &Principal,
        filter: &InterventionFilter,
        limit: u64,
    ) -> Result<Vec<Intervention>> {
        if let Some(environment) = filter.environment {
            authorize(principal, environment, Access::Read, Resource::Intervention)?;
        }
        let mut condition = Condition::all().add(intervention::Column::Environment.is_in(readable(
            principal,
            Resource::Intervention,
            filter.environment,
        )));
        if let Some(runtime_id) = &filter.runtime_id {
            condition = condition.add(intervention::Column::RuntimeId.eq(runtime_id.as_str()));
        }
        if let Some(execution_id) = filter.execution_id {
            condition = condition.add(intervention::Column::ExecutionId.eq(execution_id.to_string()));
        }
        if let Some(status) = filter.status {
            condition = condition.add(intervention::Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = filter.kind {
            condition = condition.add(intervention::Column::Kind.eq(kind.as_str()));
        }
        if let Some(answerer) = &filter.answerable_by {
            // Admins of an environment answer anything in it; others what their roles cover.
            let administered: Vec<&str> = Environment::ALL
                .iter()
                .copied()
                .filter(|environment| answerer.grants.is_admin(*environment))
                .map(Environment::as_str)
                .collect();
            let roles: Vec<String> = answerer.roles.iter().cloned().collect();
            condition = condition.add(
                Condition::any()
                    .add(intervention::Column::Environment.is_in(administered))
                    .add(intervention::Column::Role.is_null())
                    .add(intervention::Column::Role.is_in(roles)),
            );
        }
        intervention::Entity::find()
            .filter(condition)
            .order_by_asc(intervention::Column::Id)
            .limit(limit.clamp(1, MAX_PAGE))
            .all(self.inner.store.connection())
            .await?
            .into_iter()
            .map(records::intervention)
            .collect()
    }

    /// Every intervention of each of `executions`, oldest first, in one query.
    pub async fn interventions_of(
        &self,
        executions: &[ExecutionId],
    ) -> Result<HashMap<ExecutionId, Vec<Intervention>>> {
        let ids: Vec<String> = executions.iter().map(ToString::to_string).collect();
        let rows = intervention::Entity::find()
            .filter(intervention::Column::ExecutionId.is_in(ids))
            .order_by_asc(intervention::Column::Id)
            .all(self.inner.store.connection())
            .await?;
        let mut found: HashMap<ExecutionId, Vec<Intervention>> = HashMap::new();
        for row in rows {
            let intervention = records::intervention(row)?;
            found.entry(intervention.execution_id).or_default().push(intervention);
        }
        Ok(found)
    }

    /// What `principal` may do to `execution` now: the actions legal in its status that the
    /// steering rule lets this caller take (RESPOND is listed per intervention).
    pub async fn allowed_actions(&self, principal: &Principal, execution: &Execution) -> Result<Vec<Action>> {
        let definition = self.inner.definition(&execution.runtime_id, execution.runtime_version).await?;
        let role = transition::role_at(definition.playbook(&execution.playbook)?, execution.current_step_index);
        let is_child = execution.parent_id.is_some();
        Ok(Action::ALL
            .iter()
            .copied()
            .filter(|action| *action != Action::Respond)
            .filter(|action| transition::is_legal_for(*action, execution.status, is_child))
            .filter(|action| access::may_steer(principal, execution.environment, *action, role))
            .collect())
    }

    /// What `principal` may do to `intervention` now; see [`transition::allowed_on`].
    pub fn intervention_actions(&self, principal: &Principal, intervention: &Intervention) -> Vec<Action> {
        transition::allowed_on(principal, intervention)
    }

    /// Applies a person's action to an execution; see [`transition::LEGAL`].
    pub async fn act(&self, principal: &Principal, id: ExecutionId, command: Command) -> Result<Execution> {
        transition::apply(&self.inner, principal, id, command).await
    }
}

/// The environments where `principal` may read `resource`, narrowed to `only` if given.
fn readable(principal: &Principal, resource: Resource, only: Option<Environment>) -> Vec<&'static str> {
    principal
        .grants
        .readable(resource)
        .into_iter()
        .filter(|environment| only.is_none_or(|only| only == *environment))
        .map(Environment::as_str)
        .collect()
}

/// Why working an execution failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkFailure {
    #[error("{0}")]
    Engine(String),
    #[error("database error: {0}")]
    Store(String),
    #[error("processing it panicked: {0}")]
    Panic(String),
}

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn check_slug(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !id.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "runtime id `{id}` must be 1–63 lowercase letters, digits or hyphens, not starting with a hyphen"
        )))
    }
}

impl Inner {
    /// The NOTIFY channel of this database schema: replicas of one deployment share it.
    pub(crate) fn notify_channel(&self) -> String {
        format!("orgata_events_{}", self.config.database_schema.as_deref().unwrap_or("public"))
    }

    pub(crate) fn publish(&self, event: Event) {
        // No receiver is fine: nobody is listening.
        let event = Arc::new(event);
        self.watchers.publish(&event);
        let _ = self.events.send(event);
    }

    /// Hands an execution to the workers; if a worker of this process already holds it, that
    /// worker looks again when it is done.
    pub(crate) fn enqueue(&self, id: &str) {
        let Ok(mut active) = self.active.lock() else { return };
        match active.get_mut(id) {
            Some(again) => *again = true,
            None => {
                active.insert(id.to_owned(), false);
                let _ = self.queue.send(id.to_owned());
            }
        }
    }

    /// Enqueues an execution once `at` has come (a retry's backoff).
    pub(crate) fn enqueue_at(self: &Arc<Self>, id: &str, at: DateTime<Utc>) {
        let engine = Arc::downgrade(self);
        let id = id.to_owned();
        let delay = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(engine) = engine.upgrade() {
                engine.enqueue(&id);
            }
        });
    }

    async fn work(self: &Arc<Self>, id: &str) {
        loop {
            // A panic while working one execution must not take a worker (or the process) with
            // it: it is caught here and the execution failed as poison.
            let driven = std::panic::AssertUnwindSafe(worker::drive(self, id)).catch_unwind().await;
            let failure = match driven {
                Ok(Ok(())) => None,
                Ok(Err(Error::Store(error))) => Some(WorkFailure::Store(error.to_string())),
                Ok(Err(error)) => Some(WorkFailure::Engine(error.to_string())),
                Err(panic) => Some(WorkFailure::Panic(panic_message(&panic))),
            };
            if let Some(failure) = failure {
                self.poisoned(id, failure).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Ok(mut active) = self.active.lock() else { return };
                active.remove(id);
                drop(active);
                // The sweeper picks it up again once its lease lapses.
                return;
            }
            if let Ok(mut failures) = self.failures.lock() {
                failures.remove(id);
            }
            let Ok(mut active) = self.active.lock() else { return };
            match active.get_mut(id) {
                Some(again) if *again => *again = false,
                _ => {
                    active.remove(id);
                    return;
                }
            }
        }
    }

    /// Working execution `id` failed inside the engine. Stored data must never make the
    /// server loop or crash (see ARCHITECTURE.md): after [`POISON_ATTEMPTS`] failures in a row
    /// (at once for a panic; twice as many for database errors, so that a brief outage does
    /// not fail work that would have gone through) the execution is failed with the reason,
    /// and logged.
    pub(crate) async fn poisoned(self: &Arc<Self>, id: &str, failure: WorkFailure) {
        let failures = {
            let Ok(mut failures) = self.failures.lock() else { return };
            let count = failures.entry(id.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let allowed = match failure {
            WorkFailure::Panic(_) => 1,
            WorkFailure::Engine(_) => POISON_ATTEMPTS,
            WorkFailure::Store(_) => 2 * POISON_ATTEMPTS,
        };
        let error = failure.to_string();
        if failures < allowed {
            tracing::error!(execution_id = id, %error, attempt = failures, "working an execution failed; it will be retried");
            return;
        }
        tracing::error!(
            execution_id = id, %error, attempts = failures,
            "working an execution keeps failing; failing it as poison instead of retrying it forever"
        );
        let reason = format!("the engine could not process this execution ({failures} attempt(s)): {error}");
        match worker::fail_poisoned(self, id, &reason).await {
            Ok(()) => {
                if let Ok(mut failures) = self.failures.lock() {
                    failures.remove(id);
                }
            }
            Err(failed) => tracing::error!(execution_id = id, error = %failed, "failing a poison execution failed"),
        }
    }

    fn cache(&self, definition: Arc<Definition>) {
        self.definitions.insert(definition);
    }

    /// A compiled runtime version, from the cache or compiled once from the database.
    pub(crate) async fn definition(&self, id: &str, version: i32) -> Result<Arc<Definition>> {
        self.runtime_definition(id, Some(version)).await
    }

    async fn runtime_definition(&self, id: &str, version: Option<i32>) -> Result<Arc<Definition>> {
        if let Some(version) = version
            && let Some(definition) = self.definitions.get(id, version)
        {
            return Ok(definition);
        }
        let mut query = runtime::Entity::find().filter(runtime::Column::Id.eq(id));
        if let Some(version) = version {
            query = query.filter(runtime::Column::Version.eq(version));
        }
        let row = query
            .order_by_desc(runtime::Column::Version)
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::RuntimeNotFound(id.to_owned()))?;
        if let Some(definition) = self.definitions.get(&row.id, row.version) {
            return Ok(definition);
        }
        let definition = Arc::new(Definition::compile(records::runtime(row)?)?);
        self.cache(definition.clone());
        Ok(definition)
    }

    pub(crate) async fn to_execution(&self, row: &execution::Model) -> Result<Execution> {
        let definition = self.definition(&row.runtime_id, row.runtime_version).await?;
        let names: Vec<String> = definition
            .playbook(&row.playbook)
            .map(|playbook| playbook.steps.iter().map(|step| step.name.clone()).collect())
            .unwrap_or_default();
        records::execution(row, &names)
    }
}
