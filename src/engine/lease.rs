//! Leases: which replica works a RUNNING execution. A worker claims the execution's lease
//! before it runs a step, renews it with every commit while the execution runs, and releases it
//! when it stops; a lease nobody renewed within `--lease-seconds` has lapsed, and the sweeper
//! claims the execution for this replica. All lease arithmetic and every lease condition is
//! here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::engine::Inner;
use crate::engine::error::Result;
use crate::engine::tx::Row;
use crate::engine::types::ExecutionStatus;
use crate::store;

/// This replica's claim on executions: who holds it, and how long it lasts unrenewed.
pub(crate) struct Lease<'a> {
    owner: &'a str,
    duration: Duration,
}

impl Lease<'_> {
    pub(crate) fn of(engine: &Inner) -> Lease<'_> {
        Lease { owner: &engine.replica_id, duration: engine.config.lease }
    }

    /// When a lease taken or renewed at `now` lapses.
    pub(crate) fn until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.duration).unwrap_or_default()
    }

    /// Renews the lease on a row about to be saved, while its execution runs (a row that
    /// left RUNNING was released by [`release_row`]).
    pub(crate) fn renew(&self, row: &mut Row, now: DateTime<Utc>) {
        if row.status == ExecutionStatus::Running {
            row.lease_owner = Some(self.owner.to_owned());
            row.lease_until = Some(self.until(now));
        }
    }

    /// How often the sweeper looks for executions whose lease lapsed: a quarter of a lease,
    /// between 200 ms and 5 s.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    fn taking(&self, now: DateTime<Utc>) -> store::leases::Taking<'_> {
        store::leases::Taking {
            owner: self.owner,
            until: self.until(now),
            now,
            status: ExecutionStatus::Running.as_str(),
        }
    }

    /// Takes the lease of RUNNING execution `id`, unless another replica holds a live one.
    pub(crate) async fn claim(&self, db: &impl ConnectionTrait, id: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(store::leases::claim(db, id, self.taking(now)).await?)
    }

    /// Gives up the lease of execution `id`, if this replica still holds it.
    pub(crate) async fn release(&self, db: &impl ConnectionTrait, id: &str) -> Result<()> {
        Ok(store::leases::release(db, id, self.owner).await?)
    }

    /// Claims up to `limit` runnable executions (RUNNING, due) whose lease is free or lapsed,
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL so that replicas split the work.
    pub(crate) async fn claim_lapsed(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<String>> {
        Ok(store::leases::claim_lapsed(db, self.taking(now), limit).await?)
    }
}

/// An execution that leaves RUNNING is held by nobody: no worker runs its steps.
pub(crate) fn release_row(row: &mut Row) {
    row.lease_owner = None;
    row.lease_until = None;
}

/// Voids every lease (SQLite at start: one process owns the file, so leases an earlier run
/// left are nobody's).
pub(crate) async fn void_all(db: &impl ConnectionTrait) -> Result<()> {
    Ok(store::leases::void_all(db).await?)
}
