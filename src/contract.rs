//! The frontend contract: the files under `frontend-contract/` that frontends generate from,
//! written by `orgata contract export` and checked for drift by the tests and CI.

use std::path::Path;

/// Every file of the contract, with its text.
pub fn files() -> Vec<(&'static str, String)> {
    let openapi = crate::api::rest::RestApi::new(&crate::api::graphql::bare())
        .map(|api| pretty(&api.openapi))
        .unwrap_or_else(|error| format!("the REST API could not be generated: {error}\n"));
    let tools = crate::api::mcp::McpApi::new(&crate::api::graphql::bare())
        .map(|api| pretty(&api.catalogue()))
        .unwrap_or_else(|error| format!("the MCP tools could not be generated: {error}\n"));
    vec![
        ("schema.graphql", crate::api::graphql::sdl()),
        ("openapi.json", openapi),
        ("mcp-tools.json", tools),
        ("package.schema.json", crate::package::schema_text()),
    ]
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
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
