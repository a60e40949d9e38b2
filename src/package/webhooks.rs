//! What validation says about `webhook` steps beyond their URL: headers that cannot be sent or
//! that Orgata sets itself, and the warning that a step without an `input` mapping posts the
//! whole execution context.

use std::collections::BTreeMap;

use super::validate::effective;
use super::{HeaderValue, LoadedPackage, Package, Problem, StepKind};

/// Headers Orgata sets on every webhook call (or that HTTP itself owns).
const RESERVED: [&str; 6] =
    ["content-type", "content-length", "host", "idempotency-key", "transfer-encoding", "connection"];

/// What is wrong with `headers`: `(header name, message)` pairs.
pub(crate) fn header_problems(headers: &BTreeMap<String, HeaderValue>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push((name.clone(), format!("`{name}` is not a valid HTTP header name")));
        } else if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            problems.push((
                name.clone(),
                format!("`{name}` is set by Orgata on every webhook call; it cannot be set here"),
            ));
        }
        if let HeaderValue::Text(text) = value
            && reqwest::header::HeaderValue::from_str(text).is_err()
        {
            problems.push((name.clone(), "is not a valid HTTP header value (visible ASCII only)".to_owned()));
        }
    }
    problems
}

/// Warnings for a valid package (`package` read from `loaded`) that could be better: a webhook
/// step without an `input` mapping posts the whole execution context (input, state and every
/// step's output) to another system. Each with its file and path.
pub fn warnings(loaded: &LoadedPackage, package: &Package) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for (index, playbook) in package.playbooks.iter().enumerate() {
        for (step_index, step) in playbook.steps.iter().enumerate() {
            let operation = step
                .operation
                .as_ref()
                .and_then(|name| package.operations.iter().find(|operation| &operation.name == name));
            let implementation = effective(operation.map(|operation| &operation.implementation), &step.implementation);
            if implementation.kind == Some(StepKind::Webhook) && step.input.is_none() {
                let (file, path) = loaded.sources.locate(&format!("/playbooks/{index}/steps/{step_index}"));
                warnings.push(Problem {
                    file,
                    path,
                    message: format!(
                        "webhook step `{}` has no `input` mapping, so it posts the whole execution context (input, \
                         state and every step's output); map only what the receiver needs",
                        step.name
                    ),
                });
            }
        }
    }
    warnings
}
