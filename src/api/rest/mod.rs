//! REST at `/api/v1`, generated from the catalogue: each route gathers its GraphQL variables
//! from the path, query and body, runs the operation's document in-process, and answers with
//! one field of the result. Validation and permissions are therefore the engine's. Errors are
//! `application/problem+json`, mapped from GraphQL error codes in [`problem`].

pub mod openapi;
mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};
use serde_json::{Map, Value, json};

use crate::api::catalog::{self, Rest, Source};
use crate::api::context::{AppState, bearer, caller};
use crate::api::graphql::OrgataSchema;
use crate::api::runner::{Failure, check_arguments};
use crate::api::shapes::{OperationShape, Shapes};
use crate::engine::ErrorCode;
use crate::schema;

/// The most a client may wait on `GET /executions/{id}?wait=`.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// One generated route.
pub struct Route {
    pub operation: &'static catalog::Operation,
    pub rest: Rest,
    pub shape: OperationShape,
    /// JSON Schema of the JSON body, if the route takes body fields.
    pub body: Option<Value>,
    body_validator: Option<schema::Validator>,
}

impl Route {
    /// The query parameters the route accepts, from its catalogue row: the variables bound to
    /// the query, and `wait` where the route offers it. Anything else is refused, so a
    /// misspelt filter is an error rather than an answer about other data.
    pub fn query_parameters(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .rest
            .binds
            .iter()
            .filter_map(|bind| match bind.from {
                Source::Query(name) => Some(name),
                _ => None,
            })
            .collect();
        if self.rest.wait {
            names.push("wait");
        }
        names
    }
}

/// The REST API: its routes and OpenAPI document, generated once.
pub struct RestApi {
    pub routes: Vec<Route>,
    pub openapi: Value,
}

impl RestApi {
    pub fn new(graphql: &OrgataSchema) -> Result<RestApi, String> {
        let shapes = Shapes::new(graphql)?;
        let mut routes = Vec::new();
        for operation in catalog::OPERATIONS {
            let Some(rest) = operation.rest else { continue };
            let shape = shapes.operation(operation.document).map_err(|error| format!("{}: {error}", operation.name))?;
            for bind in rest.binds {
                if !shape.variables.contains_key(bind.variable) {
                    return Err(format!(
                        "{}: the route binds `{}`, which the document does not declare",
                        operation.name, bind.variable
                    ));
                }
            }
            let body = body_schema(&rest, &shape);
            let body_validator = body.as_ref().map(schema::compile).transpose()?;
            routes.push(Route { operation, rest, shape, body, body_validator });
        }
        let openapi = openapi::document(&routes);
        Ok(RestApi { routes, openapi })
    }
}

/// The JSON body's schema: each `Body` bind's variable schema at its pointer.
fn body_schema(rest: &Rest, shape: &OperationShape) -> Option<Value> {
    crate::api::shapes::arguments_schema(rest.binds, shape)
}

/// The router for `/api/v1`: the generated routes, the OpenAPI document and the WebSocket.
pub fn router(api: Arc<RestApi>) -> Router<AppState> {
    let mut methods: HashMap<&'static str, MethodRouter<AppState>> = HashMap::new();
    for (index, route) in api.routes.iter().enumerate() {
        let filter = match route.rest.method {
            catalog::Method::Get => MethodFilter::GET,
            catalog::Method::Post => MethodFilter::POST,
        };
        let shared = api.clone();
        let handler = move |state: State<AppState>,
                            params: Result<Path<HashMap<String, String>>, PathRejection>,
                            query: Result<Query<HashMap<String, String>>, QueryRejection>,
                            headers: HeaderMap,
                            body: Result<Bytes, BytesRejection>| {
            let api = shared.clone();
            async move {
                let (params, query, body) = match readable(params, query, body, state.max_body_bytes) {
                    Ok(parts) => parts,
                    Err(response) => return *response,
                };
                handle(&api.routes[index], state.0, params, query, &headers, body).await
            }
        };
        let entry = methods.remove(route.rest.path).unwrap_or_default();
        methods.insert(route.rest.path, entry.on(filter, handler));
    }
    let document = api.openapi.clone();
    let mut router = Router::new()
        .route("/openapi.json", get(move || async move { axum::Json(document) }))
        .route("/ws", get(ws::upgrade));
    for (path, method_router) in methods {
        router = router.route(path, method_router);
    }
    router.fallback(not_found).method_not_allowed_fallback(method_not_allowed)
}

/// 404 for a path no route serves, as a problem like every other REST error.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    problem("NOT_FOUND", &format!("no route serves `{}`; see /api/v1/openapi.json", uri.path()), &[])
}

/// 405 for a method the path does not serve; axum adds the `Allow` header.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    problem("METHOD_NOT_ALLOWED", &format!("`{}` does not serve {method}", uri.path()), &[])
}

type Parts = (HashMap<String, String>, HashMap<String, String>, Bytes);

/// The path parameters, query and body, or the problem with them: 413 for a body over the
/// limit, 400 for what does not decode (such as percent-encoded bytes that are not UTF-8).
fn readable(
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
    max_body_bytes: usize,
) -> Result<Parts, Box<Response>> {
    let params = params.map_err(|rejection| {
        Box::new(problem("BAD_INPUT", "the path is not valid", &[("path", &rejection.body_text())]))
    })?;
    let query = query.map_err(|rejection| {
        Box::new(problem("BAD_INPUT", "the query string is not valid", &[("?", &rejection.body_text())]))
    })?;
    let body = body.map_err(|rejection| {
        Box::new(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            problem(
                ErrorCode::PayloadTooLarge.as_str(),
                &format!("the body is larger than {max_body_bytes} bytes"),
                &[],
            )
        } else {
            problem("BAD_INPUT", "the body could not be read", &[("", &rejection.body_text())])
        })
    })?;
    Ok((params.0, query.0, body))
}

async fn handle(
    route: &Route,
    state: AppState,
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match caller(&state, bearer(headers).as_deref()).await {
        Ok(principal) => principal,
        Err(error) => return problem(error.code().as_str(), &error.public_message(), &[]),
    };
    let variables = match variables(route, &params, &query, headers, &body) {
        Ok(variables) => variables,
        Err(response) => return *response,
    };
    if route.rest.wait
        && let Some(wait) = query.get("wait")
    {
        let seconds = match wait.parse::<u64>() {
            Ok(seconds) => seconds.min(MAX_WAIT_SECONDS),
            Err(_) => {
                return problem("BAD_INPUT", "`wait` must be a whole number of seconds", &[("?wait", "not a number")]);
            }
        };
        if let Some(Value::String(id)) = variables.get("id")
            && let Ok(id) = id.parse()
        {
            // Errors (an unknown id) surface from the document below.
            let _ = state.engine.settle(&principal, id, Duration::from_secs(seconds)).await;
        }
    }
    let data = match state.runner.run(route.operation, variables, principal).await {
        Ok(data) => data,
        Err(failure) => return problem_of(&failure),
    };
    let result = data.pointer(route.rest.result).cloned().unwrap_or(Value::Null);
    let status = StatusCode::from_u16(route.rest.status).unwrap_or(StatusCode::OK);
    let mut response = (status, axum::Json(&result)).into_response();
    if let Some(template) = route.rest.location {
        let location = fill(template, &result);
        if let Ok(value) = HeaderValue::from_str(&format!("/api/v1{location}")) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
    response
}

/// `{field}` placeholders filled from the response body.
fn fill(template: &str, result: &Value) -> String {
    let mut text = template.to_owned();
    if let Value::Object(object) = result {
        for (key, value) in object {
            if let Some(value) = value.as_str() {
                text = text.replace(&format!("{{{key}}}"), value);
            } else if let Some(value) = value.as_i64() {
                text = text.replace(&format!("{{{key}}}"), &value.to_string());
            }
        }
    }
    text
}

/// The GraphQL variables of a request, or the problem response explaining what is wrong.
fn variables(
    route: &Route,
    params: &HashMap<String, String>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, Box<Response>> {
    let accepted = route.query_parameters();
    let mut unknown: Vec<&str> = query.keys().map(String::as_str).filter(|name| !accepted.contains(name)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let accepted_text = if accepted.is_empty() {
            "none".to_owned()
        } else {
            accepted.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
        };
        let message = format!("unknown query parameter; this route accepts {accepted_text}");
        let pointers: Vec<String> = unknown.iter().map(|name| format!("?{name}")).collect();
        let fields: Vec<(&str, &str)> = pointers.iter().map(|pointer| (pointer.as_str(), message.as_str())).collect();
        return Err(Box::new(problem(
            "BAD_INPUT",
            &format!(
                "unknown query parameter{} {}; this route accepts {accepted_text}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
            &fields,
        )));
    }
    let mut variables = Map::new();
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("application/json");
    let takes_document = route.rest.binds.iter().any(|bind| matches!(bind.from, Source::Document(..)));
    let json_body: Option<Value> = if body.is_empty() || takes_document {
        None
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => Some(value),
            Err(error) => {
                return Err(Box::new(problem(
                    "BAD_INPUT",
                    &format!("the body is not JSON: {error}"),
                    &[("", "not JSON")],
                )));
            }
        }
    };
    if let (Some(validator), Some(body)) = (&route.body_validator, &json_body) {
        check_arguments(validator, body, "the body does not fit the operation's schema")
            .map_err(|failure| Box::new(problem_of(&failure)))?;
    } else if route.body_validator.is_some() && json_body.is_none() && route.body.as_ref().is_some_and(has_required) {
        return Err(Box::new(problem("BAD_INPUT", "this operation needs a JSON body", &[("", "missing")])));
    }
    for bind in route.rest.binds {
        let schema = route.shape.variables.get(bind.variable).map(|(schema, _)| schema);
        match bind.from {
            Source::Path(name) => {
                if let Some(value) = params.get(name) {
                    variables.insert(bind.variable.to_owned(), Value::String(value.clone()));
                }
            }
            Source::Query(name) => {
                if let Some(text) = query.get(name) {
                    let value = coerce(text, schema).map_err(|message| {
                        Box::new(problem(
                            "BAD_INPUT",
                            &format!("query parameter `{name}`: {message}"),
                            &[(&format!("?{name}"), &message)],
                        ))
                    })?;
                    variables.insert(bind.variable.to_owned(), value);
                }
            }
            Source::Body(pointer) => {
                if let Some(value) = json_body.as_ref().and_then(|body| body.pointer(pointer)) {
                    variables.insert(bind.variable.to_owned(), value.clone());
                }
            }
            Source::Document(json_variable, text_variable) => {
                if body.is_empty() {
                    return Err(Box::new(problem("BAD_INPUT", "the body must hold the package", &[("", "missing")])));
                }
                if content_type.starts_with("application/json") {
                    match serde_json::from_slice::<Value>(body) {
                        Ok(document) => variables.insert(json_variable.to_owned(), document),
                        Err(error) => {
                            return Err(Box::new(problem(
                                "BAD_INPUT",
                                &format!("the body is not JSON: {error}"),
                                &[("", "not JSON")],
                            )));
                        }
                    };
                } else {
                    match std::str::from_utf8(body) {
                        Ok(text) => variables.insert(text_variable.to_owned(), Value::String(text.to_owned())),
                        Err(_) => {
                            return Err(Box::new(problem(
                                "BAD_INPUT",
                                "the body is not UTF-8 text",
                                &[("", "not UTF-8")],
                            )));
                        }
                    };
                }
            }
        }
    }
    Ok(variables)
}

fn has_required(schema: &Value) -> bool {
    schema["required"].as_array().is_some_and(|required| !required.is_empty())
}

/// A query parameter's text as the JSON its variable expects.
fn coerce(text: &str, schema: Option<&Value>) -> Result<Value, String> {
    let kind = schema.map(primitive_type).unwrap_or("string");
    match kind {
        "integer" => text.parse::<i64>().map(Value::from).map_err(|_| format!("`{text}` is not an integer")),
        "boolean" => text.parse::<bool>().map(Value::from).map_err(|_| format!("`{text}` is not true or false")),
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// The JSON type of a (possibly nullable) schema.
pub(crate) fn primitive_type(schema: &Value) -> &str {
    if let Some(kind) = schema["type"].as_str() {
        return kind;
    }
    schema["anyOf"]
        .as_array()
        .and_then(|options| options.iter().filter_map(|option| option["type"].as_str()).find(|kind| *kind != "null"))
        .unwrap_or("string")
}

/// A failed operation as a problem: its code, message and field errors.
pub fn problem_of(failure: &Failure) -> Response {
    let fields: Vec<(&str, &str)> =
        failure.errors.iter().map(|error| (error.pointer.as_str(), error.message.as_str())).collect();
    problem(failure.code.as_str(), &failure.message, &fields)
}

/// The one mapping from error codes to HTTP: an `application/problem+json` response.
pub fn problem(code: &str, detail: &str, fields: &[(&str, &str)]) -> Response {
    let (status, title) = match code {
        "BAD_INPUT" => (StatusCode::BAD_REQUEST, "Bad input"),
        "NOT_FOUND" => (StatusCode::NOT_FOUND, "Not found"),
        "CONFLICT" => (StatusCode::CONFLICT, "Conflict"),
        "UNAUTHENTICATED" => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
        "FORBIDDEN" => (StatusCode::FORBIDDEN, "Forbidden"),
        "PAYLOAD_TOO_LARGE" => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
        "METHOD_NOT_ALLOWED" => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        "UNSUPPORTED_MEDIA_TYPE" => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    };
    let code = if status == StatusCode::INTERNAL_SERVER_ERROR { "INTERNAL" } else { code };
    let body = json!({
        "type": format!("urn:orgata:problem:{}", code.to_lowercase().replace('_', "-")),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "errors": fields.iter().map(|(pointer, message)| json!({"pointer": pointer, "message": message})).collect::<Vec<_>>(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}
