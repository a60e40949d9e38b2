//! The in-process runner: how REST routes, the REST WebSocket, MCP tools and MCP resources run
//! a catalogue operation. Each catalogue document is parsed once, when the server starts (a
//! document that does not parse stops the start); a run hands async-graphql the parsed
//! document, so a request costs the document's validation against its variables and its
//! execution, never its parsing. Every failure comes back as one [`Failure`], which each
//! protocol maps once (REST: `rest::problem_of`; MCP: `mcp::error::tool` and `from_failure`).

use std::collections::HashMap;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Variables};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::api::catalog::{self, Bind, Operation, Source};
use crate::api::graphql::{OrgataSchema, caller_data};
use crate::engine::{Engine, ErrorCode, Principal};
use crate::schema::{self, FieldError};

/// Why an operation failed: the first error's code, message, and field errors (JSON pointer and
/// message each), the same on every protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    pub errors: Vec<FieldError>,
}

impl Failure {
    /// Input that does not fit: every field error at once.
    pub fn bad_input(message: impl Into<String>, errors: Vec<FieldError>) -> Failure {
        Failure { code: ErrorCode::BadInput, message: message.into(), errors }
    }

    /// An engine error as a failure (for the few calls the catalogue does not make).
    pub fn from_engine(error: &crate::engine::Error) -> Failure {
        Failure { code: error.code(), message: error.public_message(), errors: error.field_errors() }
    }

    /// The field errors as JSON: `[{pointer, message}]`.
    pub fn errors_json(&self) -> Value {
        Value::Array(
            self.errors
                .iter()
                .map(|error| serde_json::json!({"pointer": error.pointer, "message": error.message}))
                .collect(),
        )
    }
}

impl From<&async_graphql::ServerError> for Failure {
    /// Every GraphQL error carries a code (see `graphql::ErrorCodes`); one without is the
    /// client's input.
    fn from(error: &async_graphql::ServerError) -> Failure {
        let extension = |key: &str| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get(key))
                .and_then(|value| value.clone().into_json().ok())
        };
        let code =
            extension("code").and_then(|code| code.as_str().map(ErrorCode::parse)).unwrap_or(ErrorCode::BadInput);
        let errors = extension("errors")
            .and_then(|errors| serde_json::from_value::<Vec<FieldError>>(errors).ok())
            .unwrap_or_default();
        Failure { code, message: error.message.clone(), errors }
    }
}

/// Runs catalogue operations in-process as a principal.
pub struct Runner {
    schema: OrgataSchema,
    engine: Engine,
    /// Each operation's document, parsed once.
    parsed: HashMap<&'static str, ExecutableDocument>,
}

impl Runner {
    /// Parses every catalogue document; fails naming the first that does not parse.
    pub fn new(schema: OrgataSchema, engine: Engine) -> Result<Runner, String> {
        Ok(Runner { schema, engine, parsed: parse_catalogue()? })
    }

    fn request(&self, operation: &Operation, variables: Map<String, Value>, principal: Principal) -> Request {
        let mut request = Request::new(operation.document)
            .operation_name(operation.name)
            .variables(Variables::from_json(Value::Object(variables)));
        request.data = caller_data(&self.engine, principal);
        if let Some(document) = self.parsed.get(operation.name) {
            request.set_parsed_query(document.clone());
        }
        request
    }

    /// Runs a query or mutation; `data`, or the first error.
    pub async fn run(
        &self,
        operation: &Operation,
        variables: Map<String, Value>,
        principal: Principal,
    ) -> Result<Value, Failure> {
        let response = self.schema.execute(self.request(operation, variables, principal)).await;
        match response.errors.first() {
            Some(error) => Err(Failure::from(error)),
            None => Ok(response.data.into_json().unwrap_or(Value::Null)),
        }
    }

    /// Runs a subscription: each result's `data`, or the first error (the stream ends after it).
    pub fn stream(
        &self,
        operation: &Operation,
        variables: Map<String, Value>,
        principal: Principal,
    ) -> BoxStream<'static, Result<Value, Failure>> {
        let responses = self.schema.execute_stream(self.request(operation, variables, principal));
        responses
            .map(|response| match response.errors.first() {
                Some(error) => Err(Failure::from(error)),
                None => Ok(response.data.into_json().unwrap_or(Value::Null)),
            })
            .scan(false, |ended, result| {
                // Nothing after the first error.
                if *ended {
                    return std::future::ready(None);
                }
                *ended = result.is_err();
                std::future::ready(Some(result))
            })
            .boxed()
    }
}

/// Every catalogue document, parsed; fails naming the first that does not parse.
fn parse_catalogue() -> Result<HashMap<&'static str, ExecutableDocument>, String> {
    let mut parsed = HashMap::new();
    for operation in catalog::OPERATIONS {
        let document = async_graphql::parser::parse_query(operation.document)
            .map_err(|error| format!("catalogue document `{}` does not parse: {error}", operation.name))?;
        parsed.insert(operation.name, document);
    }
    Ok(parsed)
}

/// The variables an arguments object (an MCP tool's arguments, a REST body) gives through
/// `Body` binds, then each default for a variable still missing.
pub fn bind_arguments(binds: &[Bind], arguments: &Value, defaults: &[(&str, &str)]) -> Map<String, Value> {
    let mut variables = Map::new();
    for bind in binds {
        if let Source::Body(pointer) = bind.from
            && let Some(value) = arguments.pointer(pointer)
        {
            variables.insert(bind.variable.to_owned(), value.clone());
        }
    }
    for (variable, default) in defaults {
        if !variables.contains_key(*variable)
            && let Ok(value) = serde_json::from_str(default)
        {
            variables.insert((*variable).to_owned(), value);
        }
    }
    variables
}

/// Checks arguments against their schema: every problem at once, as BAD_INPUT with `message`.
pub fn check_arguments(validator: &schema::Validator, arguments: &Value, message: &str) -> Result<(), Failure> {
    let errors = schema::check(validator, arguments);
    if errors.is_empty() { Ok(()) } else { Err(Failure::bad_input(message, errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_document_parses_once() {
        let parsed = parse_catalogue().expect("the catalogue parses");
        assert_eq!(parsed.len(), catalog::OPERATIONS.len());
    }

    #[test]
    fn binds_take_pointers_then_defaults() {
        let binds = [
            Bind { variable: "id", from: Source::Body("/executionId") },
            Bind { variable: "mode", from: Source::Body("/options/mode") },
        ];
        let arguments = serde_json::json!({"executionId": "e1", "options": {}});
        let variables = bind_arguments(&binds, &arguments, &[("mode", "\"LIVE\""), ("id", "\"ignored\"")]);
        assert_eq!(Value::Object(variables), serde_json::json!({"id": "e1", "mode": "LIVE"}));
    }

    #[test]
    fn graphql_errors_keep_their_code_and_fields() {
        let mut error = async_graphql::ServerError::new("no such execution", None);
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", "NOT_FOUND");
        error.extensions = Some(extensions);
        let failure = Failure::from(&error);
        assert_eq!((failure.code, failure.message.as_str()), (ErrorCode::NotFound, "no such execution"));
        let bare = Failure::from(&async_graphql::ServerError::new("unknown field", None));
        assert_eq!(bare.code, ErrorCode::BadInput);
    }
}
