//! Resources: `orgata://runtime/{runtime-id}`, `orgata://playbook/{runtime-id}/{name}`,
//! `orgata://role/{runtime-id}/{name}`, `orgata://operation/{runtime-id}/{name}` and
//! `orgata://execution/{execution-id}`, read through the catalogue's GraphQL documents.

use rmcp::ErrorData as McpError;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use serde_json::{Map, Value, json};

use crate::api::catalog;
use crate::api::mcp::{OrgataMcp, error};
use crate::engine::{ErrorCode, ExecutionFilter, Principal};

/// How many resources one `resources/list` page holds.
const PAGE: usize = 50;

pub fn templates() -> ListResourceTemplatesResult {
    let template = |uri: &str, name: &str, description: &str| {
        ResourceTemplate::new(uri, name).with_description(description).with_mime_type("application/json")
    };
    ListResourceTemplatesResult::with_all_items(vec![
        template("orgata://runtime/{runtime-id}", "runtime", "A runtime with its playbooks, roles and operations"),
        template("orgata://playbook/{runtime-id}/{name}", "playbook", "A playbook's schemas, form fields and steps"),
        template("orgata://role/{runtime-id}/{name}", "role", "A role of a runtime"),
        template("orgata://operation/{runtime-id}/{name}", "operation", "An operation with its schemas"),
        template("orgata://execution/{execution-id}", "execution", "An execution's status, state and output"),
    ])
}

/// Every resource the caller may see, a page at a time: runtimes and their definitions, then
/// the latest executions.
pub async fn list(
    server: &OrgataMcp,
    cursor: Option<String>,
    principal: Principal,
) -> Result<ListResourcesResult, McpError> {
    let start: usize = match cursor {
        None => 0,
        Some(cursor) => {
            cursor.parse().map_err(|_| error::bad_input(format!("cursor `{cursor}` is not one this server gave")))?
        }
    };
    let engine = &server.state.engine;
    let runtimes = engine.runtimes(&principal, None).await.map_err(error::from_engine)?;
    let mut all = Vec::new();
    for runtime in &runtimes {
        all.push(
            Resource::new(format!("orgata://runtime/{}", runtime.id), runtime.id.clone())
                .with_mime_type("application/json"),
        );
        for playbook in &runtime.package.playbooks {
            all.push(
                Resource::new(
                    format!("orgata://playbook/{}/{}", runtime.id, playbook.name),
                    format!("{} / {}", runtime.id, playbook.name),
                )
                .with_mime_type("application/json"),
            );
        }
        for role in &runtime.package.roles {
            all.push(
                Resource::new(
                    format!("orgata://role/{}/{}", runtime.id, role.name),
                    format!("{} / role {}", runtime.id, role.name),
                )
                .with_mime_type("application/json"),
            );
        }
        for operation in &runtime.package.operations {
            all.push(
                Resource::new(
                    format!("orgata://operation/{}/{}", runtime.id, operation.name),
                    format!("{} / operation {}", runtime.id, operation.name),
                )
                .with_mime_type("application/json"),
            );
        }
    }
    let executions =
        engine.executions(&principal, &ExecutionFilter::default(), 200, None).await.map_err(error::from_engine)?;
    for execution in executions.items {
        all.push(
            Resource::new(
                format!("orgata://execution/{}", execution.id),
                format!("{} {} ({})", execution.playbook, execution.id, execution.status),
            )
            .with_mime_type("application/json"),
        );
    }
    let page: Vec<Resource> = all.iter().skip(start).take(PAGE).cloned().collect();
    let mut result = ListResourcesResult::with_all_items(page);
    if start + PAGE < all.len() {
        result.next_cursor = Some((start + PAGE).to_string());
    }
    Ok(result)
}

/// Reads one resource as JSON.
pub async fn read(server: &OrgataMcp, uri: &str, principal: Principal) -> Result<ReadResourceResponse, McpError> {
    let context = || {
        let mut context = Map::new();
        context.insert("uri".to_owned(), Value::from(uri));
        context
    };
    let not_found = || error::protocol(ErrorCode::NotFound, format!("no resource `{uri}`"), Value::Null, context());
    let path = uri.strip_prefix("orgata://").ok_or_else(not_found)?;
    let parts: Vec<&str> = path.split('/').collect();
    let (operation, variables, pointer) = match parts.as_slice() {
        ["runtime", id] => ("getRuntime", json!({"id": id}), "/runtime"),
        ["playbook", id, name] => ("getPlaybookSchema", json!({"id": id, "name": name}), "/playbook"),
        ["role", id, name] => ("getRole", json!({"id": id, "name": name}), "/role"),
        ["operation", id, name] => ("getOperation", json!({"id": id, "name": name}), "/operation"),
        ["execution", id] => ("getExecution", json!({"id": id}), "/execution"),
        _ => return Err(not_found()),
    };
    let operation = catalog::operation(operation).ok_or_else(not_found)?;
    let variables = variables.as_object().cloned().unwrap_or_default();
    match server.state.runner.run(operation, variables, principal).await {
        Ok(data) => {
            let value = data.pointer(pointer).cloned().unwrap_or(Value::Null);
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, uri.to_owned()).with_mime_type("application/json"),
            ])
            .into())
        }
        Err(failure) => Err(error::from_failure(&failure, context())),
    }
}
