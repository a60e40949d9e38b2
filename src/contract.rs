//! The frontend contract: the files under `frontend-contract/` that frontends generate from,
//! written by `orgata contract export` and checked for drift by the tests and CI.

use std::path::Path;

const README: &str = "# Orgata's frontend contract

Everything a frontend team builds on, generated from the running code and checked for drift
in CI (`codegen/generate.sh` regenerates all of it; never edit these files by hand).

| file | what it is |
|---|---|
| `schema.graphql` | The GraphQL schema (SDL) served at `/graphql`: queries, mutations, subscriptions. |
| `openapi.json` | The OpenAPI 3.1 document of the REST routes under `/api/v1`, as served at `/api/v1/openapi.json`. |
| `mcp-tools.json` | The MCP tools served at `/mcp`, with their input and output JSON Schemas. |
| `package.schema.json` | The JSON Schema of the package format (roles, operations, playbooks). |
| `events.schema.json` | The JSON Schema of each history event type's `payload` (`Event.payload`), by event type, for rendering timelines. |
| `types.ts` | TypeScript types of the schema and typed documents for the operations in `schema/operations/`, made by GraphQL Code Generator (`codegen/`). |
| `example/` | A TypeScript client that uses only `types.ts`, `fetch` and `graphql-ws`: it runs the pbj-sandwich flow end to end. |

Forms are data: `Playbook.fields`, `Step.fields`, `Operation.inputFields` and
`Intervention.fields` list `FieldDescriptor`s (name, JSON pointer, type, required, enum,
label, description, widget, default, order). Package authors steer them with the JSON Schema
annotations `title`, `description`, `default`, `x-orgata-label`, `x-orgata-widget` and
`x-orgata-order`.
";

/// Every file the server writes into the contract, with its text (`types.ts` is made from
/// them by `codegen/`).
pub fn files() -> Vec<(&'static str, String)> {
    let openapi = crate::api::rest::RestApi::new(&crate::api::graphql::bare())
        .map(|api| pretty(&api.openapi))
        .unwrap_or_else(|error| format!("the REST API could not be generated: {error}\n"));
    let tools = crate::api::mcp::McpApi::new(&crate::api::graphql::bare())
        .map(|api| pretty(&api.catalogue()))
        .unwrap_or_else(|error| format!("the MCP tools could not be generated: {error}\n"));
    vec![
        ("README.md", README.to_owned()),
        ("schema.graphql", crate::api::graphql::sdl()),
        ("openapi.json", openapi),
        ("mcp-tools.json", tools),
        ("package.schema.json", crate::package::schema_text()),
        ("events.schema.json", events_schema()),
    ]
}

/// One document: `properties` maps each event type to its payload's schema, so a frontend
/// looks up `properties[event.type]` and renders `event.payload` with it.
fn events_schema() -> String {
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Orgata history event payloads",
        "description": "The payload of each history event type, by its `type` (EventType).",
        "type": "object",
        "properties": crate::engine::payloads::schemas(),
    });
    pretty(&schema)
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The files of `directory` that differ from what the server generates, each with the first
/// line that differs.
pub fn drift(directory: &Path) -> Vec<String> {
    let mut differences = Vec::new();
    for (name, expected) in files() {
        let committed = std::fs::read_to_string(directory.join(name)).unwrap_or_default();
        if committed != expected {
            let line = committed
                .lines()
                .zip(expected.lines())
                .position(|(committed, expected)| committed != expected)
                .map_or_else(|| committed.lines().count().min(expected.lines().count()) + 1, |index| index + 1);
            differences.push(format!("{name}: differs from line {line}"));
        }
    }
    differences
}

/// Writes the contract into `directory`, creating it if needed.
pub fn export(directory: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(directory)?;
    let mut written = Vec::new();
    for (name, text) in files() {
        let path = directory.join(name);
        std::fs::write(&path, text)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
