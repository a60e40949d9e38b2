//! The compiled definitions kept in memory: bounded by an estimate of their size, the least
//! recently used runtime versions dropped first. A dropped version is compiled again from the
//! database when next needed, so the bound trades some compile time for memory that stays
//! flat however many versions and steps are deployed. Executions hold their definition by
//! `Arc` while they use it, so dropping one here never pulls it from under a step.

use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::engine::definition::Definition;
use crate::engine::{Error, Inner, Result, records};
use crate::store;

type Key = (String, i32);

pub(crate) struct DefinitionCache {
    inner: Mutex<Entries>,
    capacity_bytes: usize,
}

struct Entries {
    entries: LruCache<Key, Arc<Definition>>,
    bytes: usize,
}

impl DefinitionCache {
    pub(crate) fn new(capacity_bytes: usize) -> DefinitionCache {
        DefinitionCache { inner: Mutex::new(Entries { entries: LruCache::unbounded(), bytes: 0 }), capacity_bytes }
    }

    pub(crate) fn get(&self, id: &str, version: i32) -> Option<Arc<Definition>> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.get(&(id.to_owned(), version)).cloned()
    }

    /// Keeps `definition`, then drops the least recently used ones until the estimate fits
    /// (the newest always stays, even alone over the bound).
    pub(crate) fn insert(&self, definition: Arc<Definition>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (definition.runtime.id.clone(), definition.runtime.version);
        let size = definition.approximate_bytes();
        if let Some(previous) = inner.entries.put(key, definition) {
            inner.bytes = inner.bytes.saturating_sub(previous.approximate_bytes());
        }
        inner.bytes += size;
        while inner.bytes > self.capacity_bytes && inner.entries.len() > 1 {
            let Some((_, evicted)) = inner.entries.pop_lru() else { break };
            inner.bytes = inner.bytes.saturating_sub(evicted.approximate_bytes());
        }
    }
}

impl Inner {
    pub(crate) fn cache(&self, definition: Arc<Definition>) {
        self.definitions.insert(definition);
    }

    /// A compiled runtime version, from the cache or compiled once from the database.
    pub(crate) async fn definition(&self, id: &str, version: i32) -> Result<Arc<Definition>> {
        self.runtime_definition(id, Some(version)).await
    }

    pub(crate) async fn runtime_definition(&self, id: &str, version: Option<i32>) -> Result<Arc<Definition>> {
        if let Some(version) = version
            && let Some(definition) = self.definitions.get(id, version)
        {
            return Ok(definition);
        }
        let row = match version {
            Some(version) => store::runtimes::find(self.store.connection(), id, Some(version)).await?,
            None => store::runtimes::current(self.store.connection(), id).await?,
        };
        let row = row.ok_or_else(|| Error::RuntimeNotFound(id.to_owned()))?;
        self.compiled(row)
    }

    /// The version new executions of runtime `id` use, compiled; a CONFLICT if every version
    /// is retired.
    pub(crate) async fn startable_definition(&self, id: &str) -> Result<Arc<Definition>> {
        let row = store::runtimes::current(self.store.connection(), id)
            .await?
            .ok_or_else(|| Error::RuntimeNotFound(id.to_owned()))?;
        if row.retired_at.is_some() {
            return Err(Error::Conflict(format!(
                "runtime `{id}` is retired (every version is), so it starts no executions; deploy it again, or roll \
                 back to a version"
            )));
        }
        self.compiled(row)
    }

    /// A version's row compiled, or its definition from the cache.
    fn compiled(&self, row: crate::store::entity::runtime::Model) -> Result<Arc<Definition>> {
        if let Some(definition) = self.definitions.get(&row.id, row.version) {
            return Ok(definition);
        }
        let definition = Arc::new(Definition::compile(records::runtime(row)?)?);
        self.cache(definition.clone());
        Ok(definition)
    }
}
