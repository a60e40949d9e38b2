//! The edge policy: one layer, in front of every route and socket (GraphQL, REST, MCP, health,
//! metrics), that decides whether a request may reach a handler at all. A web page in the
//! user's browser can send requests to a loopback server, and that server may be keyless (the
//! local user acts as `developer`), so the policy closes the three ways a page gets in:
//!
//! - **Host**: the `Host` header (or HTTP/2 `:authority`) must name an allowed host, loopback
//!   names by default, so a DNS-rebound name that resolves to 127.0.0.1 is refused (403).
//! - **Origin**: a request that changes something (any method but GET, HEAD and OPTIONS) and
//!   every WebSocket upgrade may carry an `Origin` only if it is this server itself or one of
//!   the CORS origins (403). Clients that are not browsers send no `Origin` and pass.
//! - **Bodies**: a request body must be JSON (`application/json` or `…+json`), or YAML where a
//!   route documents it (deploying a package as text). Forms and `text/plain`, which a page may
//!   send without a CORS preflight, are refused with 415, and so is a body without a type.
//!
//! Refusals are answered in the shape of the protocol asked: GraphQL errors under `/graphql`,
//! a JSON error under `/mcp`, `application/problem+json` everywhere else.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Host names a server accepts when none are configured: the loopback names.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The policy, built once from the configuration.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    /// Allowed hosts: a name and, if given, the one port it is allowed on. Empty with
    /// `any_host` set.
    hosts: Vec<(String, Option<u16>)>,
    any_host: bool,
    /// Browser origins allowed (the CORS list), normalised: lower case, no trailing slash.
    origins: Vec<String>,
    /// POST routes whose body may be YAML (the path templates, `{name}` for a segment).
    yaml_routes: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    MissingHost,
    Host(String),
    Origin(String),
    MediaType(String),
}

impl EdgePolicy {
    /// `hosts` are names, optionally `name:port`, or `*` for any host (a server behind a proxy
    /// that checks `Host` itself); empty means the loopback names. `origins` is the CORS list.
    pub fn new(hosts: &[String], origins: &[String], yaml_routes: Vec<String>) -> EdgePolicy {
        let any_host = hosts.iter().any(|host| host.trim() == "*");
        let hosts: Vec<(String, Option<u16>)> = if hosts.is_empty() {
            LOOPBACK_HOSTS.iter().map(|host| ((*host).to_owned(), None)).collect()
        } else {
            hosts.iter().filter(|host| host.trim() != "*").filter_map(|host| authority(host.trim())).collect()
        };
        let origins = origins.iter().map(|origin| normalise_origin(origin)).collect();
        EdgePolicy { hosts, any_host, origins, yaml_routes }
    }

    /// Adds a host (the address a server listens on, when it is a specific one).
    pub fn allow_host(&mut self, host: &str) {
        if let Some(entry) = authority(host) {
            self.hosts.push(entry);
        }
    }

    /// The verdict on a request's method, path and headers.
    pub fn check(&self, method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|authority| authority.as_str().to_owned()))
            .ok_or(Refusal::MissingHost)?;
        let Some((name, port)) = authority(&host) else { return Err(Refusal::Host(host)) };
        let allowed = self.any_host
            || self.hosts.iter().any(|(allowed, allowed_port)| {
                *allowed == name && allowed_port.is_none_or(|allowed_port| Some(allowed_port) == port)
            });
        if !allowed {
            return Err(Refusal::Host(host));
        }
        let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
        if (unsafe_method || upgrade)
            && let Some(origin) = headers.get(header::ORIGIN)
        {
            let origin = origin.to_str().unwrap_or("(not text)");
            let normalised = normalise_origin(origin);
            let same_origin = normalised
                .split_once("://")
                .is_some_and(|(_, rest)| authority(rest) == authority(&host) && !rest.is_empty());
            if !same_origin && !self.origins.contains(&normalised) {
                return Err(Refusal::Origin(origin.to_owned()));
            }
        }
        if unsafe_method {
            self.check_body(method, uri.path(), headers)?;
        }
        Ok(())
    }

    fn check_body(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|length| length.trim() != "0");
        let media = headers
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("(not text)").split(';').next().unwrap_or_default().trim());
        let Some(media) = media else {
            return if has_body { Err(Refusal::MediaType("a body without Content-Type".to_owned())) } else { Ok(()) };
        };
        let lower = media.to_ascii_lowercase();
        let json = lower == "application/json" || (lower.starts_with("application/") && lower.ends_with("+json"));
        let yaml = matches!(lower.as_str(), "application/yaml" | "application/x-yaml" | "text/yaml");
        if json || (yaml && *method == Method::POST && self.yaml_routes.iter().any(|route| matches(route, path))) {
            Ok(())
        } else {
            Err(Refusal::MediaType(media.to_owned()))
        }
    }
}

/// A host and optional port, lower case and without IPv6 brackets; None if it does not parse.
fn authority(text: &str) -> Option<(String, Option<u16>)> {
    let parsed = text.parse::<axum::http::uri::Authority>().ok()?;
    if parsed.as_str().contains('@') {
        return None;
    }
    let host = parsed.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    Some((host, parsed.port_u16()))
}

fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `path` fits the template (`{name}` matches one segment).
fn matches(template: &str, path: &str) -> bool {
    let mut template = template.split('/');
    let mut path = path.trim_end_matches('/').split('/');
    loop {
        match (template.next(), path.next()) {
            (None, None) => return true,
            (Some(expected), Some(actual)) => {
                let placeholder = expected.starts_with('{') && expected.ends_with('}') && !actual.is_empty();
                if !placeholder && expected != actual {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The layer: refuses what the policy refuses, in the shape of the protocol asked.
pub async fn enforce(State(policy): State<Arc<EdgePolicy>>, request: Request, next: Next) -> Response {
    match policy.check(request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let (status, code, message) = match &refusal {
                Refusal::MissingHost => {
                    (StatusCode::BAD_REQUEST, "BAD_INPUT", "the request has no Host header".to_owned())
                }
                Refusal::Host(host) => (
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    format!("host `{}` is not served here (see --allowed-hosts)", crate::engine::bounded(host)),
                ),
                Refusal::Origin(origin) => (
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    format!(
                        "origin `{}` may not change anything here (see --cors-allow-origin)",
                        crate::engine::bounded(origin)
                    ),
                ),
                Refusal::MediaType(media) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UNSUPPORTED_MEDIA_TYPE",
                    format!(
                        "request bodies are JSON (Content-Type: application/json), not {}",
                        crate::engine::bounded(media)
                    ),
                ),
            };
            tracing::info!(?refusal, path = request.uri().path(), "request refused by the edge policy");
            refuse(request.uri().path(), status, code, &message)
        }
    }
}

/// A refusal in the shape of the protocol at `path`.
fn refuse(path: &str, status: StatusCode, code: &str, message: &str) -> Response {
    if path == "/graphql" || path.starts_with("/graphql/") {
        let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
        return (status, axum::Json(body)).into_response();
    }
    if path == "/mcp" || path.starts_with("/mcp/") {
        return (status, axum::Json(json!({"error": message, "code": code}))).into_response();
    }
    let mut response = crate::api::rest::problem(code, message, &[]);
    *response.status_mut() = status;
    response
}

/// A request's span: method and path, and the query with credentials (`?token=`, which
/// browsers use on WebSockets) blanked, so debug logs never hold a secret.
pub(crate) fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %redacted(request.uri()),
        version = ?request.version(),
    )
}

/// The URI's path and query, with the values of credential parameters replaced by `***`.
pub(crate) fn redacted(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else { return uri.path().to_owned() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if ["token", "access_token"].contains(&name.to_ascii_lowercase().as_str()) => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().expect("header value"));
        }
        headers
    }

    #[test]
    fn the_policy_table() {
        let policy = EdgePolicy::new(&[], &["https://app.example.test".to_owned()], vec!["/api/v1/runtimes".into()]);
        let uri = |path: &str| path.parse::<axum::http::Uri>().expect("uri");
        let json = [("host", "127.0.0.1:8080"), ("content-type", "application/json"), ("content-length", "2")];
        assert_eq!(policy.check(&Method::POST, &uri("/graphql"), &headers(&json)), Ok(()));
        assert_eq!(policy.check(&Method::GET, &uri("/healthz"), &headers(&[("host", "localhost")])), Ok(()));
        assert_eq!(policy.check(&Method::GET, &uri("/healthz"), &headers(&[("host", "[::1]:80")])), Ok(()));
        assert!(matches!(
            policy.check(&Method::GET, &uri("/healthz"), &headers(&[("host", "rebound.example.test:8080")])),
            Err(Refusal::Host(_))
        ));
        let form = [("host", "localhost"), ("content-type", "application/x-www-form-urlencoded")];
        assert!(matches!(policy.check(&Method::POST, &uri("/api/v1/x"), &headers(&form)), Err(Refusal::MediaType(_))));
        let untyped = [("host", "localhost"), ("content-length", "5")];
        assert!(matches!(
            policy.check(&Method::POST, &uri("/api/v1/x"), &headers(&untyped)),
            Err(Refusal::MediaType(_))
        ));
        let empty = [("host", "localhost"), ("content-length", "0")];
        assert_eq!(policy.check(&Method::POST, &uri("/api/v1/executions/1/pause"), &headers(&empty)), Ok(()));
        let yaml = [("host", "localhost"), ("content-type", "application/yaml")];
        assert_eq!(policy.check(&Method::POST, &uri("/api/v1/runtimes"), &headers(&yaml)), Ok(()));
        assert!(policy.check(&Method::POST, &uri("/api/v1/runtimes/x/executions"), &headers(&yaml)).is_err());
        let same =
            [("host", "localhost:8080"), ("origin", "http://localhost:8080"), ("content-type", "application/json")];
        assert_eq!(policy.check(&Method::POST, &uri("/graphql"), &headers(&same)), Ok(()));
        let listed = [("host", "localhost:8080"), ("origin", "https://app.example.test"), ("upgrade", "websocket")];
        assert_eq!(policy.check(&Method::GET, &uri("/graphql/ws"), &headers(&listed)), Ok(()));
        let foreign = [("host", "localhost:8080"), ("origin", "https://evil.example.test"), ("upgrade", "websocket")];
        assert!(matches!(policy.check(&Method::GET, &uri("/graphql/ws"), &headers(&foreign)), Err(Refusal::Origin(_))));
        let null = [("host", "localhost:8080"), ("origin", "null"), ("content-type", "application/json")];
        assert!(matches!(policy.check(&Method::POST, &uri("/graphql"), &headers(&null)), Err(Refusal::Origin(_))));
        // A plain GET from another origin (a link, an image) reads nothing it could see.
        let read = [("host", "localhost:8080"), ("origin", "https://evil.example.test")];
        assert_eq!(policy.check(&Method::GET, &uri("/healthz"), &headers(&read)), Ok(()));
        let any = EdgePolicy::new(&["*".to_owned()], &[], Vec::new());
        assert_eq!(any.check(&Method::GET, &uri("/healthz"), &headers(&[("host", "orgata.example.test")])), Ok(()));
    }

    #[test]
    fn credentials_in_the_query_are_blanked_in_spans() {
        let uri: axum::http::Uri = "/api/v1/ws?after=1&token=orgata_abc_secret&TOKEN=x".parse().expect("uri");
        assert_eq!(redacted(&uri), "/api/v1/ws?after=1&token=***&TOKEN=***");
    }
}
