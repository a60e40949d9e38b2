//! The frontend contract: the files under `frontend-contract/` that frontends generate from,
//! written by `orgata contract export` and checked for drift by the tests and CI.

use std::path::Path;

/// Every file of the contract, with its text.
pub fn files() -> Vec<(&'static str, String)> {
    vec![("schema.graphql", crate::api::graphql::sdl()), ("package.schema.json", crate::package::schema_text())]
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
