//! Starting and stopping an engine: connect, clear what an earlier run left, spawn the
//! workers, the replica listener and the sweeper; stop them as a crash would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use crate::engine::agent::{Model, OpenAiModel};
use crate::engine::{Engine, EngineConfig, Error, Inner, Result, cache, events, lease, replicas, sweeper};
use crate::store::{Backend, Store};

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
            lease::void_all(store.connection()).await?;
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
        tasks.push(tokio::spawn(sweeper::run(inner.clone())));
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
}
