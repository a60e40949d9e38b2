//! Validation before deployment: the package's JSON Schema first, then the semantic checks the
//! schema cannot express (names, references, jq programs, step schemas, playbook cycles). Every
//! problem names its file and JSON path, and all of them are reported at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;

use super::{Implementation, LoadedPackage, Package, Route, StepKind};
use crate::{jq, schema};

/// One thing wrong with a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file it is in.
    pub file: String,
    /// JSON pointer within that file (`""` for the whole file).
    pub path: String,
    /// What was expected.
    pub message: String,
}

impl Problem {
    pub fn file(file: &str, message: impl Into<String>) -> Problem {
        Problem { file: file.to_owned(), path: String::new(), message: message.into() }
    }

    pub fn at(file: &str, path: &str, message: impl Into<String>) -> Problem {
        Problem { file: file.to_owned(), path: path.to_owned(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(formatter, "{}: {}", self.file, self.message)
        } else {
            write!(formatter, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

static PACKAGE_SCHEMA: LazyLock<schema::Validator> = LazyLock::new(|| {
    schema::compile(&super::json_schema()).expect("the package schema generated from our own types is valid")
});

/// Validates a loaded package; on success returns it typed.
///
/// Every problem is reported in one run: the structural errors (the package's JSON Schema),
/// and the semantic checks over every role, operation, playbook and step that could still be
/// read, so that fixing what is listed does not reveal more.
pub fn validate(loaded: &LoadedPackage) -> Result<Package, Vec<Problem>> {
    let locate = |pointer: &str, message: String| {
        let (file, path) = loaded.sources.locate(pointer);
        Problem { file, path, message }
    };
    let mut problems: Vec<Problem> = schema::check(&PACKAGE_SCHEMA, &loaded.document)
        .into_iter()
        .map(|error| locate(&error.pointer, error.message))
        .collect();
    let (package, positions) = if problems.is_empty() {
        let package: Package = serde_json::from_value(loaded.document.clone())
            .map_err(|error| vec![locate("", format!("does not match the package format: {error}"))])?;
        let positions = Positions::of(&package);
        (package, positions)
    } else {
        readable_parts(&loaded.document)
    };
    let names = Names::of(&loaded.document);
    let mut checker = Checker {
        package: &package,
        sources: &loaded.sources,
        positions: &positions,
        names: &names,
        found: Vec::new(),
    };
    checker.check_all();
    problems.extend(checker.found.into_iter().map(|(pointer, message)| locate(&pointer, message)));
    if problems.is_empty() { Ok(package) } else { Err(problems) }
}

/// Where each element the checker sees sits in the document: with structural errors, the
/// elements that cannot be read are left out, and pointers must still name the right index.
struct Positions {
    roles: Vec<usize>,
    operations: Vec<usize>,
    playbooks: Vec<usize>,
    /// Per playbook (in the checker's order), the document index of each of its steps.
    steps: Vec<Vec<usize>>,
}

impl Positions {
    fn of(package: &Package) -> Positions {
        Positions {
            roles: (0..package.roles.len()).collect(),
            operations: (0..package.operations.len()).collect(),
            playbooks: (0..package.playbooks.len()).collect(),
            steps: package.playbooks.iter().map(|playbook| (0..playbook.steps.len()).collect()).collect(),
        }
    }
}

/// The names the document defines, whether or not the element around them can be read, so
/// that a broken role is not also reported as unknown wherever it is used.
struct Names {
    roles: HashSet<String>,
    operations: HashSet<String>,
    playbooks: HashSet<String>,
}

impl Names {
    fn of(document: &Value) -> Names {
        let names = |key: &str| -> HashSet<String> {
            document[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|element| element["name"].as_str().map(str::to_owned))
                .collect()
        };
        Names { roles: names("roles"), operations: names("operations"), playbooks: names("playbooks") }
    }
}

/// The parts of a structurally invalid package that can still be read: each role, operation,
/// playbook and step on its own, with its position in the document.
fn readable_parts(document: &Value) -> (Package, Positions) {
    fn elements<'d>(document: &'d Value, key: &str) -> impl Iterator<Item = (usize, &'d Value)> {
        document[key].as_array().into_iter().flatten().enumerate()
    }
    let text = |key: &str| document[key].as_str().unwrap_or_default().to_owned();
    let mut package = Package {
        package: text("package"),
        version: text("version"),
        description: text("description"),
        roles: Vec::new(),
        operations: Vec::new(),
        playbooks: Vec::new(),
        tests: Vec::new(),
    };
    let mut positions =
        Positions { roles: Vec::new(), operations: Vec::new(), playbooks: Vec::new(), steps: Vec::new() };
    for (index, element) in elements(document, "roles") {
        if let Ok(role) = serde_json::from_value(element.clone()) {
            package.roles.push(role);
            positions.roles.push(index);
        }
    }
    for (index, element) in elements(document, "operations") {
        if let Ok(operation) = serde_json::from_value(element.clone()) {
            package.operations.push(operation);
            positions.operations.push(index);
        }
    }
    for (index, element) in elements(document, "playbooks") {
        // The playbook without its steps, then each step alone: one broken step leaves the
        // others checked.
        let mut shell = element.clone();
        if let Some(object) = shell.as_object_mut() {
            object.insert("steps".to_owned(), Value::Array(Vec::new()));
        }
        let Ok(mut playbook) = serde_json::from_value::<super::Playbook>(shell) else { continue };
        let mut steps = Vec::new();
        for (step_index, step) in element["steps"].as_array().into_iter().flatten().enumerate() {
            if let Ok(step) = serde_json::from_value(step.clone()) {
                playbook.steps.push(step);
                steps.push(step_index);
            }
        }
        package.playbooks.push(playbook);
        positions.playbooks.push(index);
        positions.steps.push(steps);
    }
    (package, positions)
}

struct Checker<'a> {
    package: &'a Package,
    sources: &'a super::SourceMap,
    positions: &'a Positions,
    names: &'a Names,
    found: Vec<(String, String)>,
}

impl Checker<'_> {
    fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.found.push((pointer, message.into()));
    }

    fn check_all(&mut self) {
        let package = self.package;
        let positions = self.positions;
        self.duplicates("/roles", package.roles.iter().map(|role| role.name.as_str()), &positions.roles, "role");
        self.duplicates(
            "/operations",
            package.operations.iter().map(|operation| operation.name.as_str()),
            &positions.operations,
            "operation",
        );
        self.duplicates(
            "/playbooks",
            package.playbooks.iter().map(|playbook| playbook.name.as_str()),
            &positions.playbooks,
            "playbook",
        );

        for (operation, index) in package.operations.iter().zip(&positions.operations) {
            let at = format!("/operations/{index}");
            self.implementation(&at, &operation.implementation);
        }
        for ((playbook, index), step_indices) in
            package.playbooks.iter().zip(&positions.playbooks).zip(&positions.steps)
        {
            let at = format!("/playbooks/{index}");
            self.role(&format!("{at}/role"), playbook.role.as_deref());
            self.schema(&format!("{at}/input_schema"), playbook.input_schema.as_ref());
            self.schema(&format!("{at}/output_schema"), playbook.output_schema.as_ref());
            self.program(&format!("{at}/output"), playbook.output.as_deref());
            self.duplicates(
                &format!("{at}/steps"),
                playbook.steps.iter().map(|step| step.name.as_str()),
                step_indices,
                "step",
            );
            for (step, step_index) in playbook.steps.iter().zip(step_indices) {
                let step_at = format!("{at}/steps/{step_index}");
                self.program(&format!("{step_at}/when"), step.when.as_deref());
                self.program(&format!("{step_at}/input"), step.input.as_deref());
                for (rule, route) in step.next.iter().enumerate() {
                    self.program(&format!("{step_at}/next/{rule}/when"), route.when.as_deref());
                    let known = route.goto == Route::END || playbook.steps.iter().any(|other| other.name == route.goto);
                    if !known {
                        self.problem(
                            format!("{step_at}/next/{rule}/goto"),
                            format!(
                                "unknown step `{}`; playbook `{}` has {}, or `{}` to finish",
                                route.goto,
                                playbook.name,
                                list(playbook.steps.iter().map(|step| step.name.as_str())),
                                Route::END
                            ),
                        );
                    }
                }
                self.implementation(&step_at, &step.implementation);
                let operation = match &step.operation {
                    None => None,
                    Some(name) => match package.operations.iter().find(|operation| &operation.name == name) {
                        Some(operation) => Some(&operation.implementation),
                        // Defined, but unreadable: already reported where it is defined.
                        None if self.names.operations.contains(name) => continue,
                        None => {
                            self.problem(
                                format!("{step_at}/operation"),
                                format!(
                                    "unknown operation `{name}`; the package defines {}",
                                    list(package.operations.iter().map(|o| o.name.as_str()))
                                ),
                            );
                            continue;
                        }
                    },
                };
                let effective = effective(operation, &step.implementation);
                self.effective_step(&step_at, &effective, playbook.role.as_deref());
            }
        }
        self.cycles();
        self.found.extend(super::tests_check::check(package));
    }

    fn duplicates<'n>(&mut self, at: &str, names: impl Iterator<Item = &'n str>, positions: &[usize], what: &str) {
        let mut seen = HashMap::new();
        for (name, index) in names.zip(positions.iter().copied()) {
            if let Some(first) = seen.insert(name, index) {
                let (file, path) = self.sources.locate(&format!("{at}/{first}"));
                self.problem(
                    format!("{at}/{index}/name"),
                    format!("duplicate {what} name `{name}` (first defined in {file} at {path:?})"),
                );
            }
        }
    }

    fn role(&mut self, at: &str, role: Option<&str>) {
        if let Some(role) = role
            && !self.names.roles.contains(role)
        {
            let known = list(self.package.roles.iter().map(|known| known.name.as_str()));
            self.problem(at.to_owned(), format!("unknown role `{role}`; the package defines {known}"));
        }
    }

    fn schema(&mut self, at: &str, value: Option<&Value>) {
        if let Some(value) = value
            && let Err(errors) = schema::compile_all(value)
        {
            for error in errors {
                self.problem(
                    format!("{at}{}", error.pointer),
                    format!("is not a valid JSON Schema: {}", error.message),
                );
            }
        }
    }

    fn program(&mut self, at: &str, code: Option<&str>) {
        if let Some(code) = code
            && let Err(error) = jq::Program::compile(code)
        {
            self.problem(at.to_owned(), format!("jq program does not compile: {error}"));
        }
    }

    /// Checks the fields an operation or a step sets itself.
    fn implementation(&mut self, at: &str, implementation: &Implementation) {
        self.role(&format!("{at}/role"), implementation.role.as_deref());
        self.schema(&format!("{at}/input_schema"), implementation.input_schema.as_ref());
        self.schema(&format!("{at}/output_schema"), implementation.output_schema.as_ref());
        self.program(&format!("{at}/program"), implementation.program.as_deref());
        if let Some(prompt) = &implementation.prompt {
            for error in jq::Template::problems(prompt) {
                self.problem(format!("{at}/prompt"), format!("prompt placeholder does not compile: {error}"));
            }
        }
        if let Some(url) = &implementation.url {
            match url.parse::<reqwest::Url>() {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                Ok(parsed) => {
                    self.problem(format!("{at}/url"), format!("must be an http or https URL, not {}", parsed.scheme()))
                }
                Err(error) => self.problem(format!("{at}/url"), format!("is not a URL: {error}")),
            }
        }
        for (name, message) in super::webhooks::header_problems(&implementation.headers) {
            self.problem(format!("{at}/headers/{name}"), message);
        }
        if let Some(name) = &implementation.playbook
            && !self.names.playbooks.contains(name)
        {
            let known = list(self.package.playbooks.iter().map(|playbook| playbook.name.as_str()));
            self.problem(format!("{at}/playbook"), format!("unknown playbook `{name}`; the package defines {known}"));
        }
    }

    /// Checks what a step needs once the operation it references is merged in.
    fn effective_step(&mut self, at: &str, step: &Implementation, playbook_role: Option<&str>) {
        let Some(kind) = step.kind else {
            self.problem(format!("{at}/kind"), "is missing: set `kind` (transform, human, agent, webhook or playbook) or reference an operation that does");
            return;
        };
        let needs = |field: &str| format!("a {} step needs `{field}`", kind.as_str());
        match kind {
            StepKind::Transform if step.program.is_none() => self.problem(format!("{at}/program"), needs("program")),
            StepKind::Human if step.output_schema.is_none() => self.problem(
                format!("{at}/output_schema"),
                format!("{} (the form a person fills in)", needs("output_schema")),
            ),
            StepKind::Human if step.role.is_none() && playbook_role.is_none() => {
                self.problem(format!("{at}/role"), format!("{}, or its playbook a role", needs("role")))
            }
            StepKind::Agent if step.output_schema.is_none() => {
                self.problem(format!("{at}/output_schema"), needs("output_schema"))
            }
            StepKind::Agent if step.prompt.is_none() => self.problem(format!("{at}/prompt"), needs("prompt")),
            StepKind::Webhook if step.url.is_none() => self.problem(format!("{at}/url"), needs("url")),
            StepKind::Playbook if step.playbook.is_none() => self.problem(format!("{at}/playbook"), needs("playbook")),
            _ => {}
        }
        let unused: [(&str, bool, StepKind); 6] = [
            ("program", step.program.is_some(), StepKind::Transform),
            ("url", step.url.is_some(), StepKind::Webhook),
            ("playbook", step.playbook.is_some(), StepKind::Playbook),
            ("model", step.model.is_some(), StepKind::Agent),
            ("method", step.method.is_some(), StepKind::Webhook),
            ("headers", !step.headers.is_empty(), StepKind::Webhook),
        ];
        for (field, set, owner) in unused {
            if set && kind != owner {
                self.problem(
                    format!("{at}/{field}"),
                    format!("`{field}` is only used by {} steps, and this step is {}", owner.as_str(), kind.as_str()),
                );
            }
        }
        if let (Some(simulated), Some(output_schema)) = (&step.simulated_output, &step.output_schema)
            && let Ok(validator) = schema::compile(output_schema)
        {
            for error in schema::check(&validator, simulated) {
                self.problem(
                    format!("{at}/simulated_output{}", error.pointer),
                    format!("does not fit the output schema: {}", error.message),
                );
            }
        }
    }

    /// Playbook steps may call other playbooks, but never in a circle.
    fn cycles(&mut self) {
        let package = self.package;
        let operation_playbook: HashMap<&str, &str> = package
            .operations
            .iter()
            .filter_map(|operation| Some((operation.name.as_str(), operation.implementation.playbook.as_deref()?)))
            .collect();
        // For each playbook, the playbooks it calls and the step that calls each.
        let mut calls: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
        let positions = self.positions;
        for ((playbook, index), step_indices) in
            package.playbooks.iter().zip(&positions.playbooks).zip(&positions.steps)
        {
            let entry = calls.entry(playbook.name.as_str()).or_default();
            for (step, step_index) in playbook.steps.iter().zip(step_indices) {
                let callee = step.implementation.playbook.as_deref().or_else(|| {
                    step.operation.as_deref().and_then(|operation| operation_playbook.get(operation).copied())
                });
                if let Some(callee) = callee {
                    entry.push((callee, format!("/playbooks/{index}/steps/{step_index}")));
                }
            }
        }
        let mut reported = HashSet::new();
        for start in calls.keys() {
            let mut path = vec![*start];
            self.walk(&calls, &mut path, &mut reported);
        }
    }

    fn walk<'n>(
        &mut self,
        calls: &BTreeMap<&'n str, Vec<(&'n str, String)>>,
        path: &mut Vec<&'n str>,
        reported: &mut HashSet<String>,
    ) {
        let Some(current) = path.last().copied() else { return };
        for (callee, at) in calls.get(current).into_iter().flatten() {
            if let Some(position) = path.iter().position(|name| name == callee) {
                let mut cycle: Vec<&str> = path[position..].to_vec();
                cycle.push(callee);
                // Report each cycle once, at the step that closes it when walked from its
                // alphabetically first playbook.
                let mut key: Vec<&str> = path[position..].to_vec();
                key.sort_unstable();
                if reported.insert(key.join(",")) {
                    self.problem(
                        format!("{at}/playbook"),
                        format!("playbook calls form a cycle: {}", cycle.join(" → ")),
                    );
                }
            } else if path.len() < 64 {
                path.push(callee);
                self.walk(calls, path, reported);
                path.pop();
            }
        }
    }
}

/// The step's implementation with the operation's fields filled in where the step sets none.
pub fn effective(operation: Option<&Implementation>, step: &Implementation) -> Implementation {
    let Some(operation) = operation else { return step.clone() };
    let step = step.clone();
    Implementation {
        kind: step.kind.or(operation.kind),
        role: step.role.or_else(|| operation.role.clone()),
        prompt: step.prompt.or_else(|| operation.prompt.clone()),
        program: step.program.or_else(|| operation.program.clone()),
        url: step.url.or_else(|| operation.url.clone()),
        playbook: step.playbook.or_else(|| operation.playbook.clone()),
        input_schema: step.input_schema.or_else(|| operation.input_schema.clone()),
        output_schema: step.output_schema.or_else(|| operation.output_schema.clone()),
        simulated_output: step.simulated_output.or_else(|| operation.simulated_output.clone()),
        timeout_ms: step.timeout_ms.or(operation.timeout_ms),
        estimated_time: step.estimated_time.or_else(|| operation.estimated_time.clone()),
        ui: step.ui.or_else(|| operation.ui.clone()),
        model: step.model.or_else(|| operation.model.clone()),
        method: step.method.or(operation.method),
        headers: if step.headers.is_empty() { operation.headers.clone() } else { step.headers },
    }
}

fn list<'n>(names: impl Iterator<Item = &'n str>) -> String {
    let names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}
