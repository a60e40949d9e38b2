//! The semantic checks of a package's `tests`: each names a playbook of the package, its input
//! fits that playbook's input schema, its expected output fits the output schema, and every
//! step output it supplies names a step that exists (and fits that step's output schema).

use serde_json::Value;

use super::validate::effective;
use super::{ExpectedStatus, Package, Playbook};
use crate::schema;

/// Every problem of `package.tests`, as (JSON pointer, message).
pub(crate) fn check(package: &Package) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut names = std::collections::HashMap::new();
    for (index, test) in package.tests.iter().enumerate() {
        let at = format!("/tests/{index}");
        if let Some(first) = names.insert(test.name.as_str(), index) {
            found
                .push((format!("{at}/name"), format!("duplicate test name `{}` (first at /tests/{first})", test.name)));
        }
        let Some(playbook) = find(package, &test.playbook) else {
            let known: Vec<&str> = package.playbooks.iter().map(|playbook| playbook.name.as_str()).collect();
            found.push((
                format!("{at}/playbook"),
                format!("unknown playbook `{}`; the package defines {}", test.playbook, known.join(", ")),
            ));
            continue;
        };
        fits(
            &mut found,
            &format!("{at}/input"),
            playbook.input_schema.as_ref(),
            &test.input,
            "the playbook's input schema",
        );
        if let Some(output) = &test.expect.output {
            if test.expect.status != ExpectedStatus::Completed {
                found.push((format!("{at}/expect/output"), "only a COMPLETED run has an output".to_owned()));
            }
            fits(
                &mut found,
                &format!("{at}/expect/output"),
                playbook.output_schema.as_ref(),
                output,
                "the playbook's output schema",
            );
        }
        for (key, output) in &test.outputs {
            let pointer = format!("{at}/outputs/{}", key.replace('~', "~0").replace('/', "~1"));
            let (owner, step_name) = match key.split_once('/') {
                Some((owner, step)) => (find(package, owner), step),
                None => (Some(playbook), key.as_str()),
            };
            let Some(owner) = owner else {
                found.push((pointer, format!("`{key}` names no playbook of the package")));
                continue;
            };
            let Some(step) = owner.steps.iter().find(|step| step.name == step_name) else {
                found.push((pointer, format!("playbook `{}` has no step `{step_name}`", owner.name)));
                continue;
            };
            let operation = step.operation.as_ref().and_then(|name| {
                package
                    .operations
                    .iter()
                    .find(|operation| &operation.name == name)
                    .map(|operation| &operation.implementation)
            });
            let effective = effective(operation, &step.implementation);
            fits(&mut found, &pointer, effective.output_schema.as_ref(), output, "the step's output schema");
        }
    }
    found
}

fn find<'p>(package: &'p Package, name: &str) -> Option<&'p Playbook> {
    package.playbooks.iter().find(|playbook| playbook.name == name)
}

/// Reports every way `value` breaks `schema` (if the schema compiles; a broken one is reported
/// where it is defined).
fn fits(found: &mut Vec<(String, String)>, at: &str, schema: Option<&Value>, value: &Value, what: &str) {
    let Some(validator) = schema.and_then(|schema| schema::compile(schema).ok()) else { return };
    for error in schema::check(&validator, value) {
        found.push((format!("{at}{}", error.pointer), format!("does not fit {what}: {}", error.message)));
    }
}
