//! The OpenAPI 3.1 document, generated from the same routes the router serves.

use serde_json::{Map, Value, json};

use crate::api::catalog::Source;
use crate::api::rest::Route;

/// The response schema of a route: the part of the document's result its pointer selects.
pub fn response_schema(route: &Route) -> Value {
    crate::api::shapes::schema_at(&route.shape.result, route.rest.result)
}

use crate::api::shapes::non_null;

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "detail", "code", "errors"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"enum": ["BAD_INPUT", "NOT_FOUND", "CONFLICT", "UNAUTHENTICATED", "FORBIDDEN", "PAYLOAD_TOO_LARGE", "METHOD_NOT_ALLOWED", "INTERNAL"]},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["pointer", "message"],
                "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}}
            }}
        }
    })
}

pub fn document(routes: &[Route]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in routes {
        let mut parameters = Vec::new();
        let mut document_body = false;
        for bind in route.rest.binds {
            let schema =
                route.shape.variables.get(bind.variable).map(|(schema, _)| schema.clone()).unwrap_or(json!({}));
            match bind.from {
                Source::Path(name) => {
                    parameters.push(json!({"name": name, "in": "path", "required": true, "schema": non_null(&schema)}))
                }
                Source::Query(name) => {
                    parameters.push(json!({"name": name, "in": "query", "required": false, "schema": schema}))
                }
                Source::Document(..) => document_body = true,
                Source::Body(_) => {}
            }
        }
        if route.rest.wait {
            parameters.push(json!({
                "name": "wait", "in": "query", "required": false,
                "description": "Answer once the execution is no longer RUNNING, or after this many seconds (at most 60).",
                "schema": {"type": "integer", "minimum": 0, "maximum": super::MAX_WAIT_SECONDS}
            }));
        }
        let mut operation = json!({
            "operationId": route.operation.name,
            "summary": route.operation.summary,
            "parameters": parameters,
            "responses": {
                route.rest.status.to_string(): {
                    "description": route.operation.summary,
                    "content": {"application/json": {"schema": response_schema(route)}}
                },
                "400": {"$ref": "#/components/responses/Problem"},
                "401": {"$ref": "#/components/responses/Problem"},
                "403": {"$ref": "#/components/responses/Problem"},
                "404": {"$ref": "#/components/responses/Problem"},
                "409": {"$ref": "#/components/responses/Problem"},
                "500": {"$ref": "#/components/responses/Problem"},
            }
        });
        if route.rest.method == crate::api::catalog::Method::Post {
            operation["responses"]["413"] = json!({"$ref": "#/components/responses/Problem"});
        }
        if route.rest.location.is_some() {
            operation["responses"][route.rest.status.to_string()]["headers"] =
                json!({"Location": {"description": "The created resource", "schema": {"type": "string"}}});
        }
        if let Some(body) = &route.body {
            let required = body["required"].as_array().is_some_and(|required| !required.is_empty());
            operation["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": body}}});
        }
        if document_body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Package"}},
                    "application/yaml": {"schema": {"type": "string", "description": "The package as YAML text"}}
                }
            });
        }
        let method = route.rest.method.as_str().to_lowercase();
        let entry = paths.entry(route.rest.path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let mut package = crate::package::json_schema();
    // Inside components the package schema's own definitions must be addressed from the root.
    let definitions = package.as_object_mut().and_then(|object| object.remove("$defs")).unwrap_or(json!({}));
    let package_text = package.to_string().replace("#/$defs/", "#/components/schemas/");
    let mut schemas: Map<String, Value> = Map::new();
    schemas.insert("Problem".to_owned(), problem_schema());
    schemas.insert("Package".to_owned(), serde_json::from_str(&package_text).unwrap_or(json!({})));
    if let Value::Object(definitions) = definitions {
        for (name, definition) in definitions {
            let text = definition.to_string().replace("#/$defs/", "#/components/schemas/");
            schemas.insert(name, serde_json::from_str(&text).unwrap_or(json!({})));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Orgata REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Thin routes over Orgata's GraphQL operations. Errors are application/problem+json, including 404 for an unknown path and 405 for a method a path does not serve; a query parameter a route does not list is refused with 400."
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Problem": {
                    "description": "What went wrong, with the offending fields as JSON pointers",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }
            }
        }
    })
}
