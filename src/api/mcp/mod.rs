//! MCP (rmcp): tools derived from the catalogue, resources, and prompts, over Streamable HTTP at
//! `/mcp` and over stdio (`orgata mcp`). A tool call validates its arguments against the tool's
//! `inputSchema` (rmcp does not), runs the operation's GraphQL document in-process as the
//! caller, and returns the result as `structuredContent` and text. Both current protocol
//! revisions are served: 2025-11-25 clients get sessions, 2026-07-28 clients are stateless.

mod elicit;
pub mod error;
mod prompts;
mod resources;
mod session;
mod transport;

pub use session::SessionLimits;
pub(crate) use transport::routes;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse,
    Implementation, JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use crate::api::catalog::{self, Mcp, Source};
use crate::api::context::AppState;
use crate::api::runner::{bind_arguments, check_arguments};
use crate::api::shapes::{self, Shapes};
use crate::engine::Principal;
use crate::schema;

/// One tool, generated from a catalogue row.
pub struct ToolEntry {
    pub operation: &'static catalog::Operation,
    pub mcp: Mcp,
    pub tool: Tool,
    validator: schema::Validator,
    /// Results that are not objects are wrapped as `{"items": …}` (structured content is an
    /// object).
    wraps: bool,
}

/// The tools, generated once.
pub struct McpApi {
    pub tools: Vec<ToolEntry>,
}

impl McpApi {
    pub fn new(graphql: &crate::api::graphql::OrgataSchema) -> Result<McpApi, String> {
        let shapes = Shapes::new(graphql)?;
        let mut tools = Vec::new();
        for operation in catalog::OPERATIONS {
            let Some(mcp) = operation.mcp else { continue };
            let shape = shapes.operation(operation.document).map_err(|error| format!("{}: {error}", operation.name))?;
            let mut input = shapes::arguments_schema(mcp.binds, &shape)
                .unwrap_or_else(|| json!({"type": "object", "properties": {}, "additionalProperties": false}));
            // A variable with a tool default is optional in the tool's arguments.
            let defaulted: Vec<&str> = mcp
                .defaults
                .iter()
                .filter_map(|(variable, _)| mcp.binds.iter().find(|bind| bind.variable == *variable))
                .filter_map(|bind| match bind.from {
                    Source::Body(pointer) => Some(pointer.trim_start_matches('/')),
                    _ => None,
                })
                .collect();
            if let Some(required) = input["required"].as_array_mut() {
                required.retain(|name| !defaulted.contains(&name.as_str().unwrap_or_default()));
            }
            let result = shapes::schema_at(&shape.result, mcp.result);
            let wraps = shapes::non_null(&result)["type"] != "object";
            let output = if wraps {
                json!({"type": "object", "properties": {"items": result}, "required": ["items"], "additionalProperties": false})
            } else {
                shapes::non_null(&result).clone()
            };
            let validator = schema::compile(&input).map_err(|error| format!("{}: {error}", mcp.tool))?;
            let object = |value: Value| -> Arc<JsonObject> { Arc::new(value.as_object().cloned().unwrap_or_default()) };
            let tool = Tool::new(mcp.tool, mcp.description, object(input)).with_raw_output_schema(object(output));
            tools.push(ToolEntry { operation, mcp, tool, validator, wraps });
        }
        Ok(McpApi { tools })
    }

    /// The tools as published, for the contract.
    pub fn catalogue(&self) -> Value {
        Value::Array(self.tools.iter().map(|entry| serde_json::to_value(&entry.tool).unwrap_or(Value::Null)).collect())
    }
}

/// The MCP server. Cheap to clone: rmcp makes one per session (or per stateless request).
#[derive(Clone)]
pub struct OrgataMcp {
    pub state: AppState,
    /// Over stdio there are no HTTP requests to authenticate: the process acts as this.
    pub fixed: Option<Principal>,
    session: Arc<session::Session>,
}

/// Whether the request came by the stateless 2026-07-28 revision, which forbids requests from
/// the server to the client (they become input-required results instead).
pub(crate) fn is_stateless(context: &RequestContext<RoleServer>) -> bool {
    context.protocol_version().is_some_and(|version| version.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

impl OrgataMcp {
    /// The caller: the principal the `/mcp` middleware authenticated, or the stdio one.
    pub(crate) fn principal(&self, context: &RequestContext<RoleServer>) -> Result<Principal, McpError> {
        if let Some(principal) = &self.fixed {
            return Ok(principal.clone());
        }
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned())
            .ok_or_else(|| {
                error::protocol(
                    crate::engine::ErrorCode::Unauthenticated,
                    "the request carries no authenticated principal",
                    Value::Null,
                    Map::new(),
                )
            })
    }

    async fn call(&self, entry: &ToolEntry, arguments: JsonObject, principal: Principal) -> CallToolResponse {
        let arguments = Value::Object(arguments);
        if let Err(failure) =
            check_arguments(&entry.validator, &arguments, "the arguments do not fit the tool's inputSchema")
        {
            return error::tool(&failure);
        }
        let variables = bind_arguments(entry.mcp.binds, &arguments, entry.mcp.defaults);
        match self.state.runner.run(entry.operation, variables, principal).await {
            Err(failure) => error::tool(&failure),
            Ok(data) => {
                let result = data.pointer(entry.mcp.result).cloned().unwrap_or(Value::Null);
                let structured = if entry.wraps { json!({"items": result}) } else { result };
                let mut output = CallToolResult::structured(structured.clone());
                output.content = vec![ContentBlock::text(structured.to_string())];
                output.into()
            }
        }
    }

    fn api(&self) -> &McpApi {
        &self.state.mcp
    }
}

impl ServerHandler for OrgataMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("orgata", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Orgata runs business processes. Discover runtimes and playbooks with list_runtimes and the \
                 orgata:// resources, start one with execute_playbook, and answer what waits for people or models \
                 with get_pending_interventions and intervene_execution.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.api().tools.iter().map(|entry| entry.tool.clone()).collect()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.api().tools.iter().find(|entry| entry.tool.name == name).map(|entry| entry.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = self.caller(&context).await?;
        let Some(entry) = self.api().tools.iter().find(|entry| entry.tool.name == request.name) else {
            return Err(error::bad_input(format!("unknown tool `{}`", request.name)));
        };
        let mut arguments = request.arguments.clone().unwrap_or_default();
        // An answer without a response asks the person at the client (elicitation).
        if entry.mcp.tool == "intervene_execution" && elicit::wanted(&arguments) {
            match elicit::response(self, &request, &context, &principal, &arguments).await? {
                elicit::Answer::Response(response) => {
                    arguments.insert("response".to_owned(), response);
                }
                elicit::Answer::Ask(input_required) => return Ok(input_required),
                elicit::Answer::Refused(error) => return Ok(error),
            }
        }
        Ok(self.call(entry, arguments, principal).await)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscribe_resource(request, context).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.unsubscribe_resource(request);
        Ok(())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(self.accepted(requested))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        self.listen_resources(context).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.offer_sampling(&context);
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        self.forget_roots();
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        resources::list(self, request.and_then(|request| request.cursor), self.caller(&context).await?).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        resources::read(self, &request.uri, self.caller(&context).await?).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(prompts::list())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompts::get(self, request, self.caller(&context).await?).await
    }
}

/// Serves MCP over standard input and output until the client hangs up, as `principal`.
pub async fn serve_stdio(state: AppState, principal: Principal) -> Result<(), String> {
    use rmcp::ServiceExt;
    let server = OrgataMcp { state, fixed: Some(principal), session: Arc::default() };
    let running = server.serve(rmcp::transport::stdio()).await.map_err(|error| format!("MCP over stdio: {error}"))?;
    running.waiting().await.map_err(|error| format!("MCP over stdio: {error}"))?;
    Ok(())
}
