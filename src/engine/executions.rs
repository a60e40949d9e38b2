//! Executions: starting a playbook (idempotently, with a client's key), and reading
//! executions, their history and their checkpoints.

use sea_orm::SqlErr;
use serde_json::Value;

use crate::engine::access::{Access, Resource, authorize, readable};
use crate::engine::types::{Checkpoint, Environment, Event, Execution, ExecutionId, ExecutionStatus, Mode, Principal};
use crate::engine::{Engine, Error, Inner, Result, advance, events, progress, records, tx};
use crate::store;
use crate::store::entity::execution;

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

/// One page of a list ordered newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

/// The most items one page may hold.
pub const MAX_PAGE: u64 = 500;

impl Engine {
    /// Starts a playbook on the latest version of a runtime. The input is checked against the
    /// playbook's input schema, with every error reported.
    pub async fn execute(&self, principal: &Principal, request: ExecuteRequest) -> Result<Execution> {
        let definition = self.inner.startable_definition(&request.runtime_id).await?;
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
            let tx = tx::Tx::begin(&self.inner).await?;
            let (row, moved) = advance::run(tx, async |tx| {
                progress::create_execution(
                    tx,
                    progress::NewExecution {
                        runtime_id: &runtime.id,
                        runtime_version: runtime.version,
                        environment: runtime.environment,
                        playbook: &playbook,
                        input: request.input.clone(),
                        mode: request.mode,
                        started_by: &principal.id,
                        idempotency_key: request.idempotency_key.clone(),
                        parent: None,
                    },
                )
                .await
            })
            .await?;
            // The first steps run inline at commit; answer with where they left it.
            Ok::<_, Error>(moved.latest(row))
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
        let row = store::executions::by_idempotency_key(self.inner.store.connection(), runtime_id, key).await?;
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
        let row = store::executions::find(self.inner.store.connection(), &id.to_string())
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        authorize(principal, row.environment, Access::Read, Resource::Execution)?;
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
        let listing = store::executions::Listing {
            environments: readable(principal, Resource::Execution, filter.environment),
            runtime_id: filter.runtime_id.as_deref(),
            playbook: filter.playbook.as_deref(),
            status: filter.status.map(ExecutionStatus::as_str),
            parent_id: filter.parent_id.map(|parent| parent.to_string()),
            before_id: after.map(|after| after.to_string()),
            limit: first + 1,
        };
        let mut rows = store::executions::list(self.inner.store.connection(), listing).await?;
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
        let rows = store::executions::count_by_status(self.inner.store.connection()).await?;
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
        store::history::checkpoints(self.inner.store.connection(), &id.to_string())
            .await?
            .into_iter()
            .map(records::checkpoint)
            .collect()
    }

    async fn readable_execution(&self, principal: &Principal, id: ExecutionId) -> Result<()> {
        let environment = store::executions::environment_of(self.inner.store.connection(), &id.to_string())
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        authorize(principal, records::parse(&environment)?, Access::Read, Resource::Execution)
    }
}

impl Inner {
    pub(crate) async fn to_execution(&self, row: &execution::Model) -> Result<Execution> {
        let definition = self.definition(&row.runtime_id, row.runtime_version).await?;
        let names: Vec<String> = definition
            .playbook(&row.playbook)
            .map(|playbook| playbook.steps.iter().map(|step| step.name.clone()).collect())
            .unwrap_or_default();
        records::execution(row, &names)
    }
}
