//! Architecture checks that keep the layers honest.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(directory).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every line of code (comments left out) under `src/<directory>` that names one of `names`.
fn lines_naming(directory: &str, names: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(directory);
    let mut offences = Vec::new();
    for file in rust_files(&root) {
        let text = fs::read_to_string(&file).expect("readable source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in names {
                if code.contains(name) {
                    offences.push(format!("{}:{}: names `{name}`", file.display(), number + 1));
                }
            }
        }
    }
    offences
}

/// The engine is plain async Rust: no protocol crate may appear in it, so that GraphQL, REST
/// and MCP stay thin layers over one implementation of every rule.
#[test]
fn the_engine_names_no_protocol_crate() {
    let offences = lines_naming("engine", &["axum", "async_graphql", "rmcp", "http::", "hyper", "tower"]);
    assert!(offences.is_empty(), "the engine must not depend on protocols:\n{}", offences.join("\n"));
}

/// The engine says what it stores; `src/store` says how. No query builder, entity column or
/// raw statement appears in the engine, so that a store can change its SQL (or how it runs
/// it) without touching engine logic.
#[test]
fn the_engine_holds_no_query_builders() {
    let builders = [
        "Entity::",
        "Column::",
        "sea_query",
        "QueryFilter",
        "QueryOrder",
        "QuerySelect",
        "ActiveModel",
        "Statement",
        "execute_raw",
        "update_many",
        "insert_many",
    ];
    let offences = lines_naming("engine", &builders);
    assert!(offences.is_empty(), "the engine must leave statements to src/store:\n{}", offences.join("\n"));
}

/// Every module says what it is for.
#[test]
fn every_module_starts_with_a_doc_comment() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for file in rust_files(&source) {
        let text = fs::read_to_string(&file).expect("readable source file");
        if !text.trim_start().starts_with("//!") {
            missing.push(file.display().to_string());
        }
    }
    assert!(missing.is_empty(), "modules without a `//!` comment:\n{}", missing.join("\n"));
}

/// The protocols under `src/api/` take what they share from `api::context`; `server` only
/// assembles them. An import the other way would make the two layers one again.
#[test]
fn the_api_layer_never_imports_the_server() {
    let offences = lines_naming("api", &["crate::server", "orgata::server", "super::server"]);
    assert!(offences.is_empty(), "src/api must not import src/server.rs:\n{}", offences.join("\n"));
}

/// No hand-written source file grows past what a newcomer reads in one sitting: a file that
/// does is holding more than one concern and wants splitting along its seams.
#[test]
fn no_source_file_is_over_500_lines() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long: Vec<String> = rust_files(&source)
        .into_iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(&file).expect("readable source file").lines().count();
            (lines > 500).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "files over 500 lines:\n{}", long.join("\n"));
}
