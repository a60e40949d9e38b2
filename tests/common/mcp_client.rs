//! An rmcp client for the tests, on either protocol revision.

#![allow(dead_code, deprecated)]

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, JsonObject,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::Value;

/// A client that answers the server's requests from a script.
#[derive(Clone, Default)]
pub struct Client {
    pub config: ClientConfig,
    /// The answer to `elicitation/create` (the person's form), if the client supports it.
    pub elicit: Option<Value>,
    /// The model's reply text to `sampling/createMessage`, if the client supports sampling.
    pub sample: Option<String>,
    /// Root URIs, if the client declares roots.
    pub roots: Option<Vec<String>>,
    /// Refuse `roots/list` with an error although roots are declared.
    pub refuse_roots: bool,
    /// Where `notifications/resources/updated` URIs go.
    pub updates: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        let text = self.sample.clone().unwrap_or_default();
        Ok(rmcp::model::CreateMessageResult::new(
            rmcp::model::SamplingMessage::assistant_text(text),
            "test-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        _request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        Ok(match &self.elicit {
            Some(answer) => {
                rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Accept).with_content(answer.clone())
            }
            None => rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Decline),
        })
    }

    async fn list_roots(
        &self,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, rmcp::ErrorData> {
        if self.refuse_roots {
            return Err(rmcp::ErrorData::internal_error("the roots are not available", None));
        }
        let roots = self.roots.clone().unwrap_or_default();
        Ok(rmcp::model::ListRootsResult::new(roots.into_iter().map(rmcp::model::Root::new).collect()))
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if let Some(updates) = &self.updates {
            let _ = updates.send(params.uri);
        }
    }
}

/// A client with the capabilities its script answers for.
pub fn scripted(elicit: Option<Value>, sample: Option<String>, roots: Option<Vec<String>>) -> Client {
    let mut declared = serde_json::Map::new();
    if elicit.is_some() {
        declared.insert("elicitation".to_owned(), serde_json::json!({}));
    }
    if sample.is_some() {
        declared.insert("sampling".to_owned(), serde_json::json!({}));
    }
    if roots.is_some() {
        declared.insert("roots".to_owned(), serde_json::json!({"listChanged": true}));
    }
    let capabilities: ClientCapabilities = serde_json::from_value(Value::Object(declared)).expect("capabilities");
    Client {
        config: ClientConfig::new(capabilities, Implementation::new("orgata-test", "1.0")),
        elicit,
        sample,
        roots,
        refuse_roots: false,
        updates: None,
    }
}

pub type Session = RunningService<RoleClient, Client>;

pub const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

pub async fn connect(base: &str, revision: &str, token: Option<&str>) -> Result<Session, String> {
    connect_with(base, revision, token, Client::default()).await
}

/// Connects with a given client on a revision.
pub async fn connect_with(base: &str, revision: &str, token: Option<&str>, client: Client) -> Result<Session, String> {
    let mut transport = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    if let Some(token) = token {
        transport = transport.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(transport);
    let version = if revision == "2026-07-28" { ProtocolVersion::V_2026_07_28 } else { ProtocolVersion::V_2025_11_25 };
    let mut client = client;
    let capabilities = client.config.capabilities.clone();
    client.config = ClientConfig::new(capabilities, Implementation::new("orgata-test", "1.0"))
        .with_protocol_version(version.clone());
    let session = if revision == "2026-07-28" {
        client
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover { preferred_versions: vec![version.clone()] },
            )
            .await
    } else {
        client.serve(transport).await
    };
    let session = session.map_err(|error| error.to_string())?;
    let negotiated = session.peer_info().map(|info| info.protocol_version.to_string());
    assert_eq!(negotiated.as_deref(), Some(revision), "negotiated revision");
    Ok(session)
}

pub fn arguments(value: Value) -> JsonObject {
    value.as_object().cloned().expect("an object")
}

pub async fn call(session: &Session, tool: &str, args: Value) -> CallToolResult {
    session
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments(args)))
        .await
        .expect("the call completes")
}

/// A successful call's structured content.
pub async fn ok(session: &Session, tool: &str, args: Value) -> Value {
    let result = call(session, tool, args.clone()).await;
    assert_ne!(result.is_error, Some(true), "{tool} {args} failed: {:?}", result.content);
    result.structured_content.expect("structured content")
}

/// A tool error's code, message and field errors (the JSON text of its content).
pub fn failure(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "a tool error: {result:?}");
    let text = result.content.first().and_then(|content| content.as_text()).map(|text| text.text.clone());
    serde_json::from_str(&text.unwrap_or_default()).expect("the error as JSON")
}
