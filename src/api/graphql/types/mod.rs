//! GraphQL types: the engine's records as the API publishes them. Inputs also derive serde and
//! schemars, so that REST and MCP describe and accept exactly what GraphQL does.

use async_graphql::Enum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine as core;

/// Mirrors an engine enum as a GraphQL enum (and a serde/schemars one), converting both ways.
macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident => $engine:path { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl From<$name> for $engine {
            fn from(value: $name) -> Self {
                match value { $($name::$variant => <$engine>::$variant),+ }
            }
        }

        impl From<$engine> for $name {
            fn from(value: $engine) -> Self {
                match value { $(<$engine>::$variant => $name::$variant),+ }
            }
        }
    };
}

api_enum!(
    /// Every runtime lives in exactly one environment.
    Environment => core::Environment { Production, Staging, Simulation, Development }
);
api_enum!(
    /// The lifecycle of an execution.
    ExecutionStatus => core::ExecutionStatus { Running, Waiting, Paused, Completed, Failed, Aborted }
);
api_enum!(
    /// AUTO runs steps one after another; MANUAL asks a person before every step.
    Mode => core::Mode { Auto, Manual }
);
api_enum!(
    /// What a history event records.
    EventType => core::EventType {
        ExecutionStarted, StepStarted, StepCompleted, StepSkipped, StepFailed, InterventionRequested,
        InterventionResolved, Paused, Resumed, StateEdited, Jumped, Retried, ExecutionCompleted,
        ExecutionFailed, ExecutionAborted,
    }
);
api_enum!(
    /// Why a person (or a model) is asked.
    InterventionKind => core::InterventionKind { Task, Agent, Failure, Checkpoint }
);
api_enum!(
    InterventionStatus => core::InterventionStatus { Pending, Resolved, Cancelled }
);
api_enum!(
    /// What BACK and JUMP do with the execution's state and step outputs: RESTORE the target
    /// checkpoint's (an EDIT_STATE made since is undone) or KEEP the current ones.
    StateOnMove => core::StateOnMove { Restore, Keep }
);
api_enum!(
    /// What a person may do to an execution that is not finished.
    InterventionAction => core::Action { Respond, Retry, Skip, Back, Jump, EditState, Pause, Resume, Abort }
);

/// What runs for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepKind {
    Transform,
    Human,
    Agent,
    Webhook,
    Playbook,
}

impl From<crate::package::StepKind> for StepKind {
    fn from(kind: crate::package::StepKind) -> Self {
        use crate::package::StepKind as Kind;
        match kind {
            Kind::Transform => StepKind::Transform,
            Kind::Human => StepKind::Human,
            Kind::Agent => StepKind::Agent,
            Kind::Webhook => StepKind::Webhook,
            Kind::Playbook => StepKind::Playbook,
        }
    }
}

mod definitions;
mod executions;
mod inputs;

pub use definitions::*;
pub use executions::*;
pub use inputs::*;
