//! What each history event says: one Rust type per [`EventType`], so an event is written from a
//! type (never a hand-made JSON object) and read back as one (never by key). Their JSON Schemas
//! are published in the contract (`frontend-contract/events.schema.json`), so a frontend
//! renders a timeline from the schema of each type.
//!
//! The JSON of every payload is exactly what history has always stored: fields are camelCase,
//! optional ones are `null` when absent, and nothing is renamed, so stored history reads back.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::types::{Action, EventType, ExecutionStatus, InterventionKind, Mode, StateOnMove};

/// A history event's payload: the type it is recorded as.
pub trait Payload: Serialize + DeserializeOwned + JsonSchema {
    const TYPE: EventType;
}

macro_rules! payloads {
    ($($(#[$meta:meta])* $variant:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? })+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
            #[serde(rename_all = "camelCase")]
            pub struct $variant { $($(#[$field_meta])* pub $field: $ty),* }

            impl Payload for $variant {
                const TYPE: EventType = EventType::$variant;
            }
        )+

        /// The JSON Schema of every event type's payload, by its published name.
        pub fn schemas() -> Value {
            let mut all = serde_json::Map::new();
            $(all.insert(EventType::$variant.as_str().to_owned(), schemars::schema_for!($variant).to_value());)+
            Value::Object(all)
        }

        /// Every event type has a payload type: adding a type without one does not compile.
        #[allow(dead_code)]
        fn covered(event_type: EventType) {
            match event_type { $(EventType::$variant => {})+ }
        }
    };
}

payloads! {
    /// An execution started: its input, mode and where it comes from.
    ExecutionStarted {
        input: Value,
        mode: Mode,
        playbook: String,
        runtime: String,
        version: i64,
        /// The execution whose `playbook` step started this one.
        parent_id: Option<String>,
    }
    /// A step's attempt started. For a `playbook` step, the child it waits on.
    StepStarted {
        step_index: i64,
        attempt: i64,
        /// The step's kind (`transform`, `human`, `agent`, `webhook`, `playbook`).
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child_execution_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playbook: Option<String>,
    }
    /// A step finished with its output; `routedTo` names where its `next` rules sent the
    /// execution (a step, or `$end`), absent when it moved on in order.
    StepCompleted {
        step_index: i64,
        attempt: i64,
        output: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        routed_to: Option<String>,
    }
    /// A step was skipped, by its condition or by a person (who may supply its output).
    StepSkipped {
        step_index: i64,
        reason: String,
        output: Option<Value>,
    }
    /// An attempt failed; whether it will be tried again, and when.
    StepFailed {
        step_index: i64,
        attempt: i64,
        error: String,
        will_retry: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_in_ms: Option<u64>,
    }
    /// A person (or a model) is asked: the form and what may be done.
    InterventionRequested {
        intervention_id: String,
        kind: InterventionKind,
        role: Option<String>,
        prompt: Option<String>,
        form_schema: Value,
        allowed_actions: Vec<Action>,
    }
    /// A pending intervention was answered.
    InterventionResolved {
        intervention_id: String,
        kind: InterventionKind,
        response: Value,
        notes: Option<String>,
    }
    /// A person paused the execution; `from` is the status it will resume to.
    Paused {
        from: ExecutionStatus,
    }
    /// A person resumed the execution.
    Resumed {
        to: ExecutionStatus,
    }
    /// A person edited the state with a merge patch; `state` is the result.
    StateEdited {
        patch: Value,
        state: Value,
    }
    /// BACK (`back: true`) or JUMP: the execution moved to another step, with the context of the
    /// checkpoint recorded at `checkpointSeq` (`state: RESTORE`) or its own (`state: KEEP`).
    Jumped {
        from: Option<String>,
        from_index: i64,
        to: Option<String>,
        to_index: i64,
        checkpoint_seq: i64,
        back: bool,
        /// What the move did with the state (moves recorded before the choice existed
        /// restored).
        #[serde(default)]
        state: StateOnMove,
        /// Whether restoring replaced a state or step outputs that differed from the
        /// checkpoint's (an EDIT_STATE or a step's output made since was undone).
        #[serde(default)]
        state_discarded: bool,
    }
    /// A person asked for the current step to run again.
    Retried {
        step_index: i64,
        attempt: i64,
    }
    /// The execution finished with its output.
    ExecutionCompleted {
        output: Value,
    }
    /// The execution failed.
    ExecutionFailed {
        error: String,
    }
    /// A person aborted the execution.
    ExecutionAborted {
        reason: String,
    }
}

/// Reads a stored payload as `T`; `None` when the event is of another type or does not fit.
pub fn read<T: Payload>(event_type: EventType, payload: &Value) -> Option<T> {
    (event_type == T::TYPE).then(|| T::deserialize(payload).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_schema() {
        let schemas = schemas();
        for event_type in EventType::ALL {
            assert!(schemas.get(event_type.as_str()).is_some(), "{event_type} has no payload schema");
        }
    }

    #[test]
    fn payloads_keep_the_stored_spelling() {
        let stored = serde_json::json!({
            "interventionId": "0b5f4f6e-5b1c-4a57-9d55-0e0d3c1a2b3c", "kind": "TASK", "role": "chef",
            "prompt": null, "formSchema": {"type": "object"}, "allowedActions": ["RESPOND", "ABORT"],
        });
        let read: InterventionRequested = read(EventType::InterventionRequested, &stored).expect("it reads");
        assert_eq!(read.kind, InterventionKind::Task);
        assert_eq!(read.allowed_actions, vec![Action::Respond, Action::Abort]);
        assert_eq!(serde_json::to_value(&read).expect("it writes"), stored);
        assert!(super::read::<Paused>(EventType::Resumed, &serde_json::json!({"from": "RUNNING"})).is_none());
    }
}
