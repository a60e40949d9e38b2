//! The engine's vocabulary: identifiers, lifecycles and the records it hands out.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and published spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        /// Serialised as its published spelling, as it is stored.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "enum": [$($text),+]})
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "`{text}` is not a {}; expected one of {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// Every runtime lives in exactly one environment; environments isolate data and
    /// permissions.
    Environment {
        Production = "production",
        Staging = "staging",
        Simulation = "simulation",
        Development = "development",
    }
}

string_enum! {
    /// The lifecycle of an execution.
    ExecutionStatus {
        /// A worker may run its current step.
        Running = "RUNNING",
        /// Parked on an intervention or a child execution; costs a row, not a task.
        Waiting = "WAITING",
        /// Stopped by a person; nothing runs until it is resumed.
        Paused = "PAUSED",
        Completed = "COMPLETED",
        Failed = "FAILED",
        Aborted = "ABORTED",
    }
}

impl ExecutionStatus {
    /// Completed and aborted executions never change again. A failed one may be reopened by a
    /// person (retry, skip, back, jump) unless it is a child execution.
    pub fn is_finished(self) -> bool {
        matches!(self, ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Aborted)
    }
}

string_enum! {
    /// AUTO runs steps one after another; MANUAL asks a person before every step.
    Mode {
        Auto = "AUTO",
        Manual = "MANUAL",
    }
}

string_enum! {
    /// What a history event records.
    EventType {
        ExecutionStarted = "EXECUTION_STARTED",
        StepStarted = "STEP_STARTED",
        StepCompleted = "STEP_COMPLETED",
        StepSkipped = "STEP_SKIPPED",
        StepFailed = "STEP_FAILED",
        InterventionRequested = "INTERVENTION_REQUESTED",
        InterventionResolved = "INTERVENTION_RESOLVED",
        Paused = "PAUSED",
        Resumed = "RESUMED",
        StateEdited = "STATE_EDITED",
        Jumped = "JUMPED",
        Retried = "RETRIED",
        ExecutionCompleted = "EXECUTION_COMPLETED",
        ExecutionFailed = "EXECUTION_FAILED",
        ExecutionAborted = "EXECUTION_ABORTED",
    }
}

string_enum! {
    /// Why a person (or a model) is asked.
    InterventionKind {
        /// A human step's form.
        Task = "TASK",
        /// An agent step waiting for a model's answer.
        Agent = "AGENT",
        /// A failed step whose `on_failure` is `human`.
        Failure = "FAILURE",
        /// MANUAL mode: approve the next step.
        Checkpoint = "CHECKPOINT",
    }
}

string_enum! {
    /// What BACK and JUMP do with the execution's `state` and step outputs: bring back the
    /// target checkpoint's (RESTORE; an EDIT_STATE made since is undone, and the JUMPED event
    /// says so), or keep the current ones and move only the position (KEEP).
    #[derive(Default)]
    StateOnMove {
        #[default]
        Restore = "RESTORE",
        Keep = "KEEP",
    }
}

string_enum! {
    InterventionStatus {
        Pending = "PENDING",
        Resolved = "RESOLVED",
        Cancelled = "CANCELLED",
    }
}

string_enum! {
    /// What a person may do to an execution that is not finished.
    Action {
        Respond = "RESPOND",
        Retry = "RETRY",
        Skip = "SKIP",
        Back = "BACK",
        Jump = "JUMP",
        EditState = "EDIT_STATE",
        Pause = "PAUSE",
        Resume = "RESUME",
        Abort = "ABORT",
    }
}

/// An execution's id: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(pub Uuid);

/// An intervention's id (UUID v7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterventionId(pub Uuid);

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        impl $name {
            pub fn new() -> $name {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(formatter)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                Uuid::parse_str(text)
                    .map($name)
                    .map_err(|error| format!("`{}` is not a valid {} id: {error}", bounded(text), $what))
            }
        }
    };
}

/// The most of a client's value an error message repeats.
pub const ECHO_BYTES: usize = 80;

/// A client's value as an error message repeats it: at most [`ECHO_BYTES`] bytes (cut on a
/// character boundary, marked with `…`), so a huge value is never sent back.
pub fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= ECHO_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = ECHO_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

uuid_id!(ExecutionId, "execution");
uuid_id!(InterventionId, "intervention");

/// Who did something: a person, a key, or `system` for the engine itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable id, recorded as the actor of history events.
    pub id: String,
    /// Package roles the principal holds (e.g. `cook`).
    pub roles: BTreeSet<String>,
    /// What the principal may do, per environment.
    pub grants: crate::engine::access::Grants,
}

impl Principal {
    pub const SYSTEM: &'static str = "system";

    /// The engine itself: everything everywhere.
    pub fn system() -> Principal {
        Principal {
            id: Principal::SYSTEM.to_owned(),
            roles: BTreeSet::new(),
            grants: crate::engine::access::Grants::all(),
        }
    }

    pub fn new(
        id: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
        grants: crate::engine::access::Grants,
    ) -> Principal {
        Principal { id: id.into(), roles: roles.into_iter().map(Into::into).collect(), grants }
    }

    /// The local user of a loopback server with no keys: development and simulation only.
    pub fn developer() -> Principal {
        let grants = crate::engine::access::Grants::parse(&["development", "simulation"]).unwrap_or_default();
        Principal::new("developer", Vec::<String>::new(), grants)
    }

    /// Whether the principal may answer an intervention assigned to `role` in `environment`:
    /// it holds the role, or administers the environment.
    pub fn may_answer(&self, role: Option<&str>, environment: Environment) -> bool {
        crate::engine::access::AnswerRule::of(self).allows(role, environment)
    }
}

/// A deployed package version in an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    pub id: String,
    pub version: i32,
    pub environment: Environment,
    pub package: crate::package::Package,
    pub deployed_by: String,
    pub deployed_at: DateTime<Utc>,
}

/// One deployed version of a runtime, and whether new executions use it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeVersion {
    pub runtime_id: String,
    pub version: i32,
    pub environment: Environment,
    pub package: String,
    pub package_version: String,
    pub deployed_by: String,
    pub deployed_at: DateTime<Utc>,
    /// A retired version starts no new executions; running ones finish on it.
    pub retired_at: Option<DateTime<Utc>>,
    pub retired_by: Option<String>,
    /// Whether this is the version new executions use: the newest that is not retired.
    pub current: bool,
}

/// One run of a playbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: ExecutionId,
    pub runtime_id: String,
    pub runtime_version: i32,
    pub environment: Environment,
    pub playbook: String,
    pub status: ExecutionStatus,
    pub mode: Mode,
    pub input: Value,
    pub state: Value,
    /// Output of every step that has run, by step name.
    pub steps: Value,
    /// Index of the step that runs next (or is waiting); equal to the step count when done.
    pub current_step_index: i32,
    /// Name of that step, if there is one.
    pub current_step: Option<String>,
    pub attempt: i32,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub parent_id: Option<ExecutionId>,
    pub started_by: String,
    pub idempotency_key: Option<String>,
    /// The seq of the last history event.
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of an execution's append-only history.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub execution_id: ExecutionId,
    /// 1, 2, 3… per execution, without gaps, in commit order.
    pub seq: i64,
    pub event_type: EventType,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub step: Option<String>,
    pub payload: Value,
    /// Runtime and environment, so that streams over many executions can filter.
    pub runtime_id: String,
    pub environment: Environment,
}

/// A step index and context snapshot recorded after every step, so any earlier point can be
/// returned to.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub execution_id: ExecutionId,
    /// The history event that recorded it.
    pub seq: i64,
    /// The step that runs from here.
    pub step_index: i32,
    pub step: Option<String>,
    pub steps: Value,
    pub state: Value,
    pub at: DateTime<Utc>,
}

/// A request for a person (or a model).
#[derive(Debug, Clone, PartialEq)]
pub struct Intervention {
    pub id: InterventionId,
    pub execution_id: ExecutionId,
    pub runtime_id: String,
    pub environment: Environment,
    pub step: String,
    pub step_index: i32,
    pub kind: InterventionKind,
    pub status: InterventionStatus,
    pub prompt: Option<String>,
    /// JSON Schema of the answer, with UI hints.
    pub form_schema: Value,
    pub allowed_actions: Vec<Action>,
    pub role: Option<String>,
    pub response: Option<Value>,
    pub notes: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
