//! An rmcp client for the tests, on either protocol revision.

#![allow(dead_code)]

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, JsonObject,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    pub config: ClientConfig,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }
}

pub type Session = RunningService<RoleClient, Client>;

pub const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

pub async fn connect(base: &str, revision: &str, token: Option<&str>) -> Result<Session, String> {
    let mut transport = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    if let Some(token) = token {
        transport = transport.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(transport);
    let version = if revision == "2026-07-28" { ProtocolVersion::V_2026_07_28 } else { ProtocolVersion::V_2025_11_25 };
    let client = Client {
        config: ClientConfig::new(ClientCapabilities::default(), Implementation::new("orgata-test", "1.0"))
            .with_protocol_version(version.clone()),
    };
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
    assert_ne!(result.is_error, Some(true), "{tool} {args} failed: {:?}", result.structured_content);
    result.structured_content.expect("structured content")
}
