//! Elicitation: `intervene_execution` on a pending TASK intervention, without a `response`,
//! asks the person at the client to fill in the form. On 2025-11-25 the server sends
//! `elicitation/create`; on 2026-07-28 it answers with an input-required result and the client
//! retries with the answer. Only flat forms (primitive fields) can be elicited; nested ones
//! are answered with a `response`.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, JsonObject,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Map, Value, json};

use crate::api::mcp::error::tool as tool_error;
use crate::api::mcp::{OrgataMcp, error, is_stateless};
use crate::api::runner::Failure;
use crate::engine::{InterventionKind, InterventionStatus, Principal};
use crate::schema::FieldError;

/// The key of the elicitation in an input-required round trip.
const KEY: &str = "form";

pub enum Answer {
    /// The person's answer, to send as the response.
    Response(Value),
    /// Ask the client (2026-07-28): it fulfils the request and calls again.
    Ask(CallToolResponse),
    /// Nothing to ask, or the person declined: a tool error.
    Refused(CallToolResponse),
}

/// Whether the arguments answer an intervention without giving the response.
pub fn wanted(arguments: &JsonObject) -> bool {
    let responding = arguments.get("action").is_none_or(|action| action == "RESPOND");
    responding && arguments.get("response").is_none() && arguments.get("interventionId").is_some()
}

/// The form as an elicitation schema: only flat object forms with primitive fields qualify.
fn flat_schema(form: &Value) -> Option<Value> {
    let properties = form.get("properties")?.as_object()?;
    let mut clean = Map::new();
    for (name, property) in properties {
        let kind = property.get("type").and_then(Value::as_str);
        let enumerated = property.get("enum").and_then(Value::as_array);
        let mut field = Map::new();
        match (kind, enumerated) {
            (_, Some(values)) if values.iter().all(Value::is_string) => {
                field.insert("type".to_owned(), json!("string"));
                field.insert("enum".to_owned(), Value::Array(values.clone()));
            }
            (Some(kind @ ("string" | "number" | "integer" | "boolean")), None) => {
                field.insert("type".to_owned(), json!(kind));
            }
            _ => return None,
        }
        for key in ["title", "description", "minimum", "maximum", "minLength", "maxLength", "format", "default"] {
            if let Some(value) = property.get(key) {
                field.insert(key.to_owned(), value.clone());
            }
        }
        clean.insert(name.clone(), Value::Object(field));
    }
    Some(json!({"type": "object", "properties": clean, "required": form.get("required").cloned().unwrap_or(json!([]))}))
}

pub async fn response(
    server: &OrgataMcp,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
    principal: &Principal,
    arguments: &JsonObject,
) -> Result<Answer, McpError> {
    let refuse = |message: &str| {
        let field = FieldError { pointer: "/response".to_owned(), message: message.to_owned() };
        Answer::Refused(tool_error(&Failure::bad_input(message, vec![field])))
    };
    let Some(id) = arguments.get("interventionId").and_then(Value::as_str).and_then(|id| id.parse().ok()) else {
        return Ok(refuse("`interventionId` is not an intervention id"));
    };
    let intervention = match server.state.engine.intervention(principal, id).await {
        Ok(intervention) => intervention,
        Err(error) => {
            return Ok(Answer::Refused(tool_error(&Failure::from_engine(&error))));
        }
    };
    if intervention.kind != InterventionKind::Task || intervention.status != InterventionStatus::Pending {
        return Ok(refuse("only a pending TASK intervention can be answered by asking the person; give `response`"));
    }
    let Some(schema) = flat_schema(&intervention.form_schema) else {
        return Ok(refuse("this form has nested fields, which elicitation cannot ask for; give `response`"));
    };
    let Ok(requested_schema) = serde_json::from_value::<ElicitationSchema>(schema) else {
        return Ok(refuse("this form cannot be expressed as an elicitation; give `response`"));
    };
    let message =
        intervention.prompt.clone().unwrap_or_else(|| format!("Step `{}` needs your answer", intervention.step));
    let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema };
    let reply: Value = if is_stateless(context) {
        match request.input_responses.as_ref().and_then(|responses| responses.get(KEY)) {
            Some(reply) => reply.clone(),
            None => {
                let mut requests = InputRequests::new();
                requests.insert(KEY.to_owned(), InputRequest::Elicitation(ElicitRequest::new(params)));
                return Ok(Answer::Ask(InputRequiredResult::new(Some(requests), Some(id.to_string())).into()));
            }
        }
    } else {
        if context.client_capabilities().is_none_or(|capabilities| capabilities.elicitation.is_none()) {
            return Ok(refuse("this client does not support elicitation; give `response`"));
        }
        let result = context
            .peer
            .create_elicitation(params)
            .await
            .map_err(|failure| error::internal(format!("elicitation: {failure}")))?;
        if result.action != ElicitationAction::Accept {
            return Ok(Answer::Refused(tool_error(&declined())));
        }
        return Ok(Answer::Response(result.content.unwrap_or(json!({}))));
    };
    match reply.get("action").and_then(Value::as_str) {
        Some("accept") => Ok(Answer::Response(reply.get("content").cloned().unwrap_or(json!({})))),
        _ => Ok(Answer::Refused(tool_error(&declined()))),
    }
}

/// The person said no (or closed the form): the answer cannot be given now.
fn declined() -> Failure {
    Failure {
        code: crate::engine::ErrorCode::Conflict,
        message: "the person declined to answer".to_owned(),
        errors: Vec::new(),
    }
}
