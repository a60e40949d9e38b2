//! The frontend contract never drifts from the server: every generated file is compared with
//! what the server produces now, and a breaking change is caught until it is regenerated.

use std::path::Path;

fn contract() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend-contract")
}

#[test]
fn the_committed_contract_matches_the_server() {
    let drift = orgata::contract::drift(&contract());
    assert!(
        drift.is_empty(),
        "the contract is out of date ({}); run codegen/generate.sh and commit the result",
        drift.join("; ")
    );
}

/// A breaking change to a GraphQL type — here `Execution.currentStep` disappearing — makes the
/// committed contract differ from the server's: the drift check names the file and line, and
/// CI fails until `codegen/generate.sh` is run (which also regenerates `types.ts`, so the
/// example client's type check then fails wherever it used the field).
#[test]
fn a_breaking_change_is_caught_by_the_drift_check() {
    let copy = tempfile::tempdir().expect("directory");
    orgata::contract::export(copy.path()).expect("exported");
    let schema = copy.path().join("schema.graphql");
    let sdl = std::fs::read_to_string(&schema).expect("SDL");
    assert!(sdl.contains("\tcurrentStep: String\n"), "the field this test removes exists");
    // The committed contract of a server that still has the field, against a server without
    // it, is the same comparison as this one the other way round.
    std::fs::write(&schema, sdl.replace("\tcurrentStep: String\n", "")).expect("written");
    let drift = orgata::contract::drift(copy.path());
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].starts_with("schema.graphql: differs from line"), "{drift:?}");
}
