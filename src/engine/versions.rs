//! The lifecycle of a runtime's versions: list them, retire a version or the whole runtime (no
//! new executions; running ones finish on their version), and roll back (make an earlier
//! version the one new executions use, retiring those after it). The version new executions
//! use is always the newest that is not retired; every change says who made it and when.

use chrono::Utc;

use crate::engine::access::{Access, Resource, authorize};
use crate::engine::types::{Principal, RuntimeVersion};
use crate::engine::{Engine, Error, Result, records, tx};
use crate::store;
use crate::store::runtimes::Versions;

impl Engine {
    /// Every version of a runtime, newest first, with which one new executions use.
    pub async fn runtime_versions(&self, principal: &Principal, id: &str) -> Result<Vec<RuntimeVersion>> {
        let rows = store::runtimes::versions(self.inner.store.connection(), id).await?;
        let Some(newest) = rows.first() else { return Err(Error::RuntimeNotFound(id.to_owned())) };
        authorize(principal, newest.environment, Access::Read, Resource::Runtime)?;
        let current = rows.iter().find(|row| row.retired_at.is_none()).map(|row| row.version);
        Ok(rows
            .into_iter()
            .map(|row| {
                let is_current = Some(row.version) == current;
                records::runtime_version(row, is_current)
            })
            .collect())
    }

    /// Retires one version of a runtime, or (without `version`) all of them. Retiring what is
    /// already retired changes nothing; an unknown version is NOT_FOUND.
    pub async fn retire_runtime(
        &self,
        principal: &Principal,
        id: &str,
        version: Option<i32>,
    ) -> Result<Vec<RuntimeVersion>> {
        self.writable(principal, id, version).await?;
        let versions = version.map_or(Versions::All, Versions::One);
        tx::Tx::run(&self.inner, async |tx| {
            Ok(store::runtimes::retire(tx.db(), id, versions, Utc::now(), &principal.id).await?)
        })
        .await?;
        self.runtime_versions(principal, id).await
    }

    /// Makes `version` the one new executions use: it is no longer retired, and every later
    /// version is retired. Executions already running stay on their versions.
    pub async fn rollback_runtime(&self, principal: &Principal, id: &str, version: i32) -> Result<Vec<RuntimeVersion>> {
        self.writable(principal, id, Some(version)).await?;
        tx::Tx::run(&self.inner, async |tx| {
            store::runtimes::retire(tx.db(), id, Versions::After(version), Utc::now(), &principal.id).await?;
            Ok(store::runtimes::reinstate(tx.db(), id, version).await?)
        })
        .await?;
        self.runtime_versions(principal, id).await
    }

    /// Checks that runtime `id` (at `version`, if given) exists and that `principal` may
    /// change its versions (as it may deploy).
    async fn writable(&self, principal: &Principal, id: &str, version: Option<i32>) -> Result<()> {
        let row = store::runtimes::find(self.inner.store.connection(), id, version).await?;
        let row = row.ok_or_else(|| match version {
            Some(version) => Error::NotFound(format!("runtime `{id}` has no version {version}")),
            None => Error::RuntimeNotFound(id.to_owned()),
        })?;
        authorize(principal, row.environment, Access::Write, Resource::Runtime)
    }
}
