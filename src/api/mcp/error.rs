//! The one mapping from Orgata's error codes to MCP, used by every handler in `src/api/mcp/`.
//!
//! A tool that ran and failed answers with a tool result whose `isError` is set and whose
//! content is the JSON text `{code, message, errors}` ([`tool`]), as the MCP specification asks
//! for execution errors. Every other failure (resources, prompts, subscriptions, the request
//! itself) is a JSON-RPC error ([`protocol`]) whose numeric code follows JSON-RPC and MCP where
//! they name the condition (invalid params, resource not found, internal error) and otherwise
//! uses the server range (-32000 to -32099); its `data.code` is always the Orgata code, the
//! same string GraphQL puts in `extensions.code` and REST in the problem's `code`.

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode as RpcCode};
use serde_json::{Map, Value, json};

use crate::api::runner::Failure;
use crate::engine::{self, ErrorCode};

/// JSON-RPC codes for the conditions JSON-RPC and MCP do not name.
pub const UNAUTHENTICATED: RpcCode = RpcCode(-32001);
pub const FORBIDDEN: RpcCode = RpcCode(-32003);
pub const CONFLICT: RpcCode = RpcCode(-32009);
pub const PAYLOAD_TOO_LARGE: RpcCode = RpcCode(-32013);

/// The JSON-RPC code of an Orgata error code.
pub fn rpc_code(code: ErrorCode) -> RpcCode {
    match code {
        ErrorCode::BadInput => RpcCode::INVALID_PARAMS,
        ErrorCode::NotFound => RpcCode::RESOURCE_NOT_FOUND,
        ErrorCode::Conflict => CONFLICT,
        ErrorCode::Unauthenticated => UNAUTHENTICATED,
        ErrorCode::Forbidden => FORBIDDEN,
        ErrorCode::PayloadTooLarge => PAYLOAD_TOO_LARGE,
        ErrorCode::Internal => RpcCode::INTERNAL_ERROR,
    }
}

/// A JSON-RPC error: `data` holds the Orgata code, the field errors when there are any, and
/// `context` (such as the resource's `uri`).
pub fn protocol(code: ErrorCode, message: impl Into<String>, errors: Value, context: Map<String, Value>) -> McpError {
    let mut data = context;
    data.insert("code".to_owned(), Value::from(code.as_str()));
    if errors.as_array().is_some_and(|list| !list.is_empty()) {
        data.insert("errors".to_owned(), errors);
    }
    McpError::new(rpc_code(code), message.into(), Some(Value::Object(data)))
}

/// An engine error as a JSON-RPC error; internal errors are logged and hidden.
pub fn from_engine(error: engine::Error) -> McpError {
    if error.code() == ErrorCode::Internal {
        tracing::error!(%error, "internal error");
    }
    from_failure(&Failure::from_engine(&error), Map::new())
}

/// A failed catalogue operation as a JSON-RPC error, with `context` (such as the resource's
/// `uri`) beside the code in `data`.
pub fn from_failure(failure: &Failure, context: Map<String, Value>) -> McpError {
    protocol(failure.code, failure.message.clone(), failure.errors_json(), context)
}

/// Bad input from the client, with no field errors.
pub fn bad_input(message: impl Into<String>) -> McpError {
    protocol(ErrorCode::BadInput, message, Value::Null, Map::new())
}

/// Something the client named does not exist.
pub fn not_found(message: impl Into<String>) -> McpError {
    protocol(ErrorCode::NotFound, message, Value::Null, Map::new())
}

/// A failure of the server's own (talking to the client, for instance); logged.
pub fn internal(message: impl Into<String>) -> McpError {
    let message = message.into();
    tracing::error!(%message, "internal error");
    protocol(ErrorCode::Internal, "internal error; the server log has the details", Value::Null, Map::new())
}

/// A tool that ran and failed: an `isError` result with the same code and field pointers as
/// GraphQL, as the JSON text of its content. Not as `structuredContent`: that is the tool's
/// result, which clients check against the `outputSchema` (the TypeScript SDK 1.x even on
/// errors).
pub fn tool(failure: &Failure) -> CallToolResponse {
    let body = json!({"code": failure.code.as_str(), "message": failure.message, "errors": failure.errors_json()});
    CallToolResult::error(vec![ContentBlock::text(body.to_string())]).into()
}

/// A JSON-RPC error object for a message rmcp never sees (it cannot be read): `id` is the
/// request's when it could be read, else `null`.
pub fn rpc_body(id: Value, code: RpcCode, message: &str, orgata: ErrorCode) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code.0, "message": message, "data": {"code": orgata.as_str()}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_has_its_own_rpc_code() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
            assert!(seen.insert(rpc_code(code).0), "{code:?} shares its JSON-RPC code");
        }
    }
}
