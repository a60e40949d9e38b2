//! The engine: deploys packages, runs playbooks durably, stops for people, lets people steer,
//! keeps history and streams it. Plain async Rust: nothing here knows HTTP, GraphQL or MCP.
//!
//! Every transition is one database transaction ([`tx::Tx`]); workers ([`worker`]) run steps of
//! RUNNING executions; parked executions are rows, not tasks. The public API is [`Engine`]'s
//! methods, grouped by what they act on: [`lifecycle`], [`runtimes`], [`executions`],
//! [`interventions`]; [`queue`] hands executions to the workers.

pub mod access;
mod advance;
pub mod agent;
pub mod auth;
mod cache;
mod children;
mod config;
pub mod definition;
pub mod error;
mod events;
mod executions;
mod interventions;
mod lease;
mod lifecycle;
pub mod payloads;
mod progress;
mod queue;
mod records;
mod replicas;
mod routing;
mod runtimes;
mod step;
mod sweeper;
pub mod transition;
pub(crate) mod tx;
pub mod types;
mod versions;
pub mod webhook;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

pub use access::{Access, Grants, Resource};
pub use config::{EngineConfig, ModelConfig, Secrets};
pub use error::{Error, ErrorCode, Result};
pub use events::EventFilter;
pub use executions::{ExecuteRequest, ExecutionFilter, MAX_PAGE, Page};
pub use interventions::InterventionFilter;
pub use queue::POISON_ATTEMPTS;
pub use runtimes::DeployRequest;
pub use transition::Command;
pub use types::*;

pub(crate) use queue::WorkFailure;

use crate::engine::agent::Model;
use crate::store::Store;

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
