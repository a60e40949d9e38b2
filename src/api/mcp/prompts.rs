//! Prompts built from real metadata and history: an operation's prompt, a playbook review, and
//! improvement suggestions from an execution's history.

use rmcp::ErrorData as McpError;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, ListPromptsResult, Prompt, PromptArgument,
    PromptMessage, Role,
};
use serde_json::Value;

use crate::api::mcp::{OrgataMcp, error};
use crate::engine::{EventType, Principal, Resource};

pub fn list() -> ListPromptsResult {
    let argument =
        |name: &str, description: &str| PromptArgument::new(name).with_description(description).with_required(true);
    ListPromptsResult::with_all_items(vec![
        Prompt::new(
            "generate_operation_prompt",
            Some("Instructions for carrying out an operation, from its metadata and schemas"),
            Some(vec![
                argument("runtimeId", "The runtime, e.g. kitchen-v1"),
                argument("operation", "The operation's name"),
            ]),
        ),
        Prompt::new(
            "validate_business_logic",
            Some("Review a playbook's steps, conditions and fallbacks for mistakes"),
            Some(vec![argument("runtimeId", "The runtime"), argument("playbook", "The playbook's name")]),
        ),
        Prompt::new(
            "suggest_process_improvements",
            Some("Suggest improvements from an execution's real history: durations, retries, interventions"),
            Some(vec![argument("executionId", "The execution")]),
        ),
    ])
}

fn argument<'a>(request: &'a GetPromptRequestParams, name: &str) -> Result<&'a str, McpError> {
    request
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| error::bad_input(format!("the prompt needs the argument `{name}` (a string)")))
}

pub async fn get(
    server: &OrgataMcp,
    request: GetPromptRequestParams,
    principal: Principal,
) -> Result<GetPromptResponse, McpError> {
    let engine = &server.state.engine;
    let text = match request.name.as_str() {
        "generate_operation_prompt" => {
            let runtime = argument(&request, "runtimeId")?;
            let name = argument(&request, "operation")?;
            let definition =
                engine.definition(&principal, runtime, None, Resource::Operation).await.map_err(error::from_engine)?;
            let operation = definition
                .runtime
                .package
                .operations
                .iter()
                .find(|operation| operation.name == name)
                .ok_or_else(|| error::not_found(format!("runtime `{runtime}` has no operation `{name}`")))?;
            let implementation = &operation.implementation;
            format!(
                "You are carrying out the operation `{name}` of the `{}` package: {}\n\nKind: {}. Role: {}. Expected time: {}.\n\nInput it receives (JSON Schema):\n{}\n\nAnswer with JSON that fits this output schema exactly:\n{}\n{}",
                definition.runtime.package.package,
                operation.description,
                implementation.kind.map_or("unspecified", |kind| kind.as_str()),
                implementation.role.as_deref().unwrap_or("any"),
                implementation.estimated_time.as_deref().unwrap_or("not given"),
                pretty(implementation.input_schema.as_ref()),
                pretty(implementation.output_schema.as_ref()),
                implementation
                    .prompt
                    .as_deref()
                    .map(|prompt| format!("\nThe package's own instructions: {prompt}"))
                    .unwrap_or_default(),
            )
        }
        "validate_business_logic" => {
            let runtime = argument(&request, "runtimeId")?;
            let name = argument(&request, "playbook")?;
            let definition =
                engine.definition(&principal, runtime, None, Resource::Playbook).await.map_err(error::from_engine)?;
            let playbook = definition
                .runtime
                .package
                .playbooks
                .iter()
                .find(|playbook| playbook.name == name)
                .ok_or_else(|| error::not_found(format!("runtime `{runtime}` has no playbook `{name}`")))?;
            format!(
                "Review the business logic of the playbook `{name}` ({}). Check that every step's input is available when it runs, that `when` conditions cover the cases the input schema allows, that failures have sensible retries and fallbacks, that human steps go to the right roles, and that the output program produces what the output schema demands. List concrete problems first, then suggestions.\n\nThe playbook:\n{}",
                playbook.description,
                serde_json::to_string_pretty(playbook).unwrap_or_default()
            )
        }
        "suggest_process_improvements" => {
            let id = argument(&request, "executionId")?
                .parse()
                .map_err(|message: String| error::bad_input(format!("`executionId`: {message}")))?;
            let execution = engine.execution(&principal, id).await.map_err(error::from_engine)?;
            let history = engine.history(&principal, id, 0, 10_000).await.map_err(error::from_engine)?;
            let mut lines = Vec::new();
            let mut started: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
                std::collections::HashMap::new();
            let (mut retries, mut interventions) = (0, 0);
            for event in &history {
                let step = event.step.clone().unwrap_or_default();
                match event.event_type {
                    EventType::StepStarted => {
                        started.entry(step).or_insert(event.at);
                    }
                    EventType::StepCompleted | EventType::StepSkipped => {
                        if let Some(start) = started.remove(&step) {
                            lines.push(format!(
                                "- {step}: {} ms ({})",
                                (event.at - start).num_milliseconds(),
                                event.event_type
                            ));
                        }
                    }
                    EventType::StepFailed => retries += 1,
                    EventType::InterventionRequested => interventions += 1,
                    _ => {}
                }
            }
            let total = match (history.first(), history.last()) {
                (Some(first), Some(last)) => (last.at - first.at).num_milliseconds(),
                _ => 0,
            };
            format!(
                "Suggest improvements to the process `{}` from this execution's real history. Status: {}. Total time: {total} ms. Failed attempts: {retries}. Interventions (people or models asked): {interventions}.\n\nStep durations:\n{}\n\nSuggest where automation, better conditions, retries or clearer forms would make it faster or more reliable.",
                execution.playbook,
                execution.status,
                lines.join("\n")
            )
        }
        other => return Err(error::bad_input(format!("unknown prompt `{other}`"))),
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
}

fn pretty(value: Option<&Value>) -> String {
    value.map_or_else(|| "(none)".to_owned(), |value| serde_json::to_string_pretty(value).unwrap_or_default())
}
