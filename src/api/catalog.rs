//! The catalogue: every externally visible operation once, with its GraphQL document
//! (`schema/operations/<name>.graphql`) and its REST binding. The REST router, the OpenAPI
//! document and the contract are generated from this table; nothing is reachable over REST
//! that is not in it (a test checks).

/// The HTTP methods the catalogue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Where a GraphQL variable's value comes from in a REST request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A path segment `{name}`.
    Path(&'static str),
    /// A query parameter.
    Query(&'static str),
    /// A field of the JSON body, by JSON pointer (`/executionOptions/mode`).
    Body(&'static str),
    /// The whole request body: a JSON document, or YAML text when the content type says so.
    /// JSON goes to the first variable named, text to the second.
    Document(&'static str, &'static str),
}

/// One GraphQL variable and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Bind {
    pub variable: &'static str,
    pub from: Source,
}

/// How an operation is served over REST.
#[derive(Debug, Clone, Copy)]
pub struct Rest {
    pub method: Method,
    /// Under `/api/v1`, with `{name}` path parameters.
    pub path: &'static str,
    pub binds: &'static [Bind],
    /// JSON pointer into `data` of the part that is the response body.
    pub result: &'static str,
    /// The success status: 200, or 201 when something is created.
    pub status: u16,
    /// For 201: the created resource's path, `{field}` filled from the response body.
    pub location: Option<&'static str>,
    /// `GET …?wait=<seconds>`: answer once the execution is no longer RUNNING.
    pub wait: bool,
}

/// How an operation is served as an MCP tool. Arguments map to variables like a REST body
/// (`Source::Body` pointers into the arguments object).
#[derive(Debug, Clone, Copy)]
pub struct Mcp {
    pub tool: &'static str,
    pub description: &'static str,
    pub binds: &'static [Bind],
    /// Variables fixed or defaulted for this tool: (variable, JSON), used when the argument
    /// is absent.
    pub defaults: &'static [(&'static str, &'static str)],
    /// JSON pointer into `data` of the tool's result.
    pub result: &'static str,
}

/// One externally visible operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The operation's name, also the GraphQL operation name and the OpenAPI `operationId`.
    pub name: &'static str,
    pub summary: &'static str,
    /// The GraphQL document that implements it.
    pub document: &'static str,
    pub rest: Option<Rest>,
    pub mcp: Option<Mcp>,
}

const fn path(name: &'static str) -> Bind {
    Bind { variable: name, from: Source::Path(name) }
}

const fn query(name: &'static str) -> Bind {
    Bind { variable: name, from: Source::Query(name) }
}

const fn body(variable: &'static str, pointer: &'static str) -> Bind {
    Bind { variable, from: Source::Body(pointer) }
}

const fn arg(variable: &'static str, pointer: &'static str) -> Bind {
    Bind { variable, from: Source::Body(pointer) }
}

const fn tool(tool: &'static str, description: &'static str, binds: &'static [Bind], result: &'static str) -> Mcp {
    Mcp { tool, description, binds, defaults: &[], result }
}

const fn rest(method: Method, path: &'static str, binds: &'static [Bind], result: &'static str) -> Rest {
    Rest { method, path, binds, result, status: 200, location: None, wait: false }
}

macro_rules! document {
    ($name:literal) => {
        include_str!(concat!("../../schema/operations/", $name, ".graphql"))
    };
}

#[rustfmt::skip]
pub static OPERATIONS: &[Operation] = &[
    // Definitions: what is deployed, and the schemas frontends render forms from.
    Operation { name: "listRuntimes", summary: "List the latest version of every runtime",
        document: document!("listRuntimes"),
        rest: Some(rest(Method::Get, "/runtimes", &[query("environment")], "/runtimes")), mcp: Some(tool("list_runtimes", "List the runtimes you may see, optionally of one environment", &[arg("environment", "/environment")], "/runtimes")) },
    Operation { name: "deployRuntime", summary: "Deploy a package (JSON, or YAML with content-type application/yaml) as a new runtime version",
        document: document!("deployRuntime"),
        rest: Some(Rest { status: 201, location: Some("/runtimes/{id}"),
            ..rest(Method::Post, "/runtimes", &[query("environment"), query("runtimeId"), Bind { variable: "package", from: Source::Document("package", "source") }], "/deployRuntime") }), mcp: Some(tool("deploy_runtime", "Validate a package and deploy it as a new version of a runtime", &[arg("runtimeId", "/runtimeId"), arg("environment", "/environment"), arg("package", "/package"), arg("source", "/source")], "/deployRuntime")) },
    Operation { name: "getRuntime", summary: "A runtime with its playbooks, roles and operations",
        document: document!("getRuntime"),
        rest: Some(rest(Method::Get, "/runtimes/{id}", &[path("id"), query("version")], "/runtime")), mcp: Some(tool("get_runtime", "A runtime with its playbooks, roles and operations", &[arg("id", "/runtimeId"), arg("version", "/version")], "/runtime")) },
    Operation { name: "listRuntimeVersions", summary: "Every version of a runtime, newest first, with the one new executions use",
        document: document!("listRuntimeVersions"),
        rest: Some(rest(Method::Get, "/runtimes/{id}/versions", &[path("id")], "/runtimeVersions")), mcp: Some(tool("list_runtime_versions", "Every version of a runtime, newest first, with the one new executions use and which are retired", &[arg("id", "/runtimeId")], "/runtimeVersions")) },
    Operation { name: "retireRuntime", summary: "Retire a runtime version, or every version: no new executions, running ones finish",
        document: document!("retireRuntime"),
        rest: Some(rest(Method::Post, "/runtimes/{id}/retire", &[path("id"), body("version", "/version")], "/retireRuntime")), mcp: Some(tool("retire_runtime", "Retire one version of a runtime, or all of them (no version): they start no new executions; running ones finish on their versions", &[arg("id", "/runtimeId"), arg("version", "/version")], "/retireRuntime")) },
    Operation { name: "rollbackRuntime", summary: "Make an earlier version the one new executions use, retiring every later version",
        document: document!("rollbackRuntime"),
        rest: Some(rest(Method::Post, "/runtimes/{id}/rollback", &[path("id"), body("version", "/version")], "/rollbackRuntime")), mcp: Some(tool("rollback_runtime", "Make an earlier version of a runtime the one new executions use, retiring every later version", &[arg("id", "/runtimeId"), arg("version", "/version")], "/rollbackRuntime")) },
    Operation { name: "listPlaybooks", summary: "The playbooks of a runtime",
        document: document!("listPlaybooks"),
        rest: Some(rest(Method::Get, "/runtimes/{id}/playbooks", &[path("id")], "/runtime/playbooks")), mcp: None },
    Operation { name: "getPlaybookSchema", summary: "A playbook's input and output schemas, form fields and steps",
        document: document!("getPlaybookSchema"),
        rest: Some(rest(Method::Get, "/runtimes/{id}/playbooks/{name}/schema", &[path("id"), path("name")], "/playbook")), mcp: Some(tool("get_playbook_schema", "A playbook's input schema, form fields and steps", &[arg("id", "/runtimeId"), arg("name", "/playbookName")], "/playbook")) },
    Operation { name: "getRole", summary: "A role of a runtime",
        document: document!("getRole"),
        rest: Some(rest(Method::Get, "/runtimes/{id}/roles/{name}", &[path("id"), path("name")], "/role")), mcp: None },
    Operation { name: "getOperation", summary: "An operation of a runtime, with its schemas",
        document: document!("getOperation"),
        rest: Some(rest(Method::Get, "/runtimes/{id}/operations/{name}", &[path("id"), path("name")], "/operation")), mcp: None },

    // Executions: start one, find them, read one and its history.
    Operation { name: "startExecution", summary: "Start a playbook; returns the execution handle",
        document: document!("startExecution"),
        rest: Some(Rest { status: 201, location: Some("/executions/{executionId}"),
            ..rest(Method::Post, "/runtimes/{id}/executions", &[path("id"), body("playbookName", "/playbookName"), body("input", "/input"),
                body("mode", "/executionOptions/mode"), body("idempotencyKey", "/executionOptions/idempotencyKey")], "/executePlaybook") }), mcp: Some(tool("execute_playbook", "Start a playbook of a runtime with an input that fits its input schema", &[arg("id", "/runtimeId"), arg("playbookName", "/playbookName"), arg("input", "/input"), arg("mode", "/executionOptions/mode"), arg("idempotencyKey", "/executionOptions/idempotencyKey")], "/executePlaybook")) },
    Operation { name: "listExecutions", summary: "Executions, newest first, a page at a time",
        document: document!("listExecutions"),
        rest: Some(rest(Method::Get, "/executions", &[query("environment"), query("runtimeId"), query("playbook"), query("status"), query("parentId"), query("first"), query("after")], "/executions")), mcp: Some(tool("list_executions", "Executions, newest first, a page at a time; `parentId` lists the children a playbook step started", &[arg("environment", "/environment"), arg("runtimeId", "/runtimeId"), arg("playbook", "/playbook"), arg("status", "/status"), arg("parentId", "/parentId"), arg("first", "/first"), arg("after", "/after")], "/executions")) },
    Operation { name: "getExecution", summary: "An execution; with ?wait=<seconds>, once it is no longer RUNNING",
        document: document!("getExecution"),
        rest: Some(Rest { wait: true, ..rest(Method::Get, "/executions/{id}", &[path("id")], "/execution") }), mcp: Some(tool("get_execution", "An execution: status, input, state, step outputs, output", &[arg("id", "/executionId")], "/execution")) },
    Operation { name: "getHistory", summary: "An execution's history after a seq",
        document: document!("getHistory"),
        rest: Some(rest(Method::Get, "/executions/{id}/history", &[path("id"), query("afterSeq"), query("first")], "/execution/history")), mcp: Some(tool("get_history", "An execution's history after a seq", &[arg("id", "/executionId"), arg("afterSeq", "/afterSeq"), arg("first", "/first")], "/execution/history")) },

    Operation { name: "getCheckpoints", summary: "An execution's checkpoints: where BACK and JUMP can return to, with the context saved there",
        document: document!("getCheckpoints"),
        rest: Some(rest(Method::Get, "/executions/{id}/checkpoints", &[path("id")], "/execution/checkpoints")), mcp: Some(tool("get_checkpoints", "An execution's checkpoints: the step and the context (steps, state) saved after each step, which BACK and JUMP return to", &[arg("id", "/executionId")], "/execution/checkpoints")) },

    // Steering: act on a running execution; each returns the execution as it now stands.
    Operation { name: "pauseExecution", summary: "Pause an execution",
        document: document!("pauseExecution"),
        rest: Some(rest(Method::Post, "/executions/{id}/pause", &[path("id")], "/pauseExecution")), mcp: Some(tool("pause_execution", "Pause an execution", &[arg("id", "/executionId")], "/pauseExecution")) },
    Operation { name: "resumeExecution", summary: "Resume a paused execution",
        document: document!("resumeExecution"),
        rest: Some(rest(Method::Post, "/executions/{id}/resume", &[path("id")], "/resumeExecution")), mcp: Some(tool("resume_execution", "Resume a paused execution", &[arg("id", "/executionId")], "/resumeExecution")) },
    Operation { name: "abortExecution", summary: "Abort an execution, with a reason",
        document: document!("abortExecution"),
        rest: Some(rest(Method::Post, "/executions/{id}/abort", &[path("id"), body("reason", "/reason")], "/abortExecution")), mcp: Some(tool("abort_execution", "Abort an execution, with a reason", &[arg("id", "/executionId"), arg("reason", "/reason")], "/abortExecution")) },
    Operation { name: "interveneExecution", summary: "Retry, skip, go back, jump, edit state, pause, resume, abort or respond",
        document: document!("interveneExecution"),
        rest: Some(rest(Method::Post, "/executions/{id}/actions", &[path("id"), body("action", "/action"), body("step", "/step"), body("state", "/state"), body("output", "/output"),
            body("patch", "/patch"), body("reason", "/reason"), body("interventionId", "/interventionId"), body("response", "/response"), body("notes", "/notes")], "/interveneExecution")), mcp: Some(Mcp { defaults: &[("action", "\"RESPOND\"")], ..tool("intervene_execution",
            "Answer a pending intervention (TASK, AGENT, FAILURE or CHECKPOINT) with a response that fits its form, or steer the execution with an action: RETRY, SKIP, BACK, JUMP, EDIT_STATE, PAUSE, RESUME, ABORT",
            &[arg("id", "/executionId"), arg("interventionId", "/interventionId"), arg("response", "/response"), arg("notes", "/notes"), arg("action", "/action"),
              arg("step", "/step"), arg("state", "/state"), arg("output", "/output"), arg("patch", "/patch"), arg("reason", "/reason")], "/interveneExecution") }) },

    // Interventions: what waits for people, and their answers.
    Operation { name: "listExecutionInterventions", summary: "An execution's interventions, with their forms",
        document: document!("listExecutionInterventions"),
        rest: Some(rest(Method::Get, "/executions/{id}/interventions", &[path("id"), query("status")], "/execution/interventions")), mcp: None },
    Operation { name: "respondToIntervention", summary: "Answer a pending intervention",
        document: document!("respondToIntervention"),
        rest: Some(rest(Method::Post, "/executions/{id}/interventions/{interventionId}", &[path("id"), path("interventionId"), body("response", "/response"), body("notes", "/notes")], "/respondToIntervention")), mcp: None },
    Operation { name: "listInterventions", summary: "Interventions across executions (pending unless a status is given)",
        document: document!("listInterventions"),
        rest: Some(rest(Method::Get, "/interventions", &[query("environment"), query("executionId"), query("runtimeId"), query("kind"), query("status"), query("mine"), query("first")], "/interventions")), mcp: Some(Mcp { defaults: &[("status", "\"PENDING\""), ("mine", "true")], ..tool("get_pending_interventions",
            "Pending interventions you may answer (human tasks and AGENT steps waiting for a model), with their form schemas",
            &[arg("executionId", "/executionId"), arg("environment", "/environment"), arg("runtimeId", "/runtimeId"), arg("kind", "/kind")], "/interventions") }) },

    // Live: served over the WebSocket at /api/v1/ws, not as a REST route.
    Operation { name: "executionEvents", summary: "An execution's events after a seq, then live",
        document: document!("executionEvents"), rest: None, mcp: None },
];

/// The operation named `name`.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|operation| operation.name == name)
}
