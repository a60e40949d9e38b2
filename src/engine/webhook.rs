//! `webhook` steps: the step's input sent (POST, PUT or PATCH, with the step's headers, secrets
//! resolved from the server's configuration) to an allow-listed URL, carrying an
//! `Idempotency-Key` of `execution:step:attempt` so a receiver can apply each attempt once even
//! though steps run at least once.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;

use crate::engine::agent::without_url;
use crate::engine::config::Secrets;
use crate::package::{HeaderValue, HttpMethod};

/// Whether `url` is on the allow-list: same scheme and host, the same port unless the entry
/// names none, and a path under the entry's path.
pub fn allowed(allow_list: &[String], url: &str) -> bool {
    let Ok(url) = url.parse::<reqwest::Url>() else { return false };
    allow_list.iter().any(|entry| {
        let Ok(entry) = entry.parse::<reqwest::Url>() else { return false };
        entry.scheme() == url.scheme()
            && entry.host_str() == url.host_str()
            && (entry.port().is_none() || entry.port_or_known_default() == url.port_or_known_default())
            && under(url.path(), entry.path())
            && url.username().is_empty()
            && url.password().is_none()
    })
}

/// Whether `path` is `prefix` or inside it, segment-wise: `/hooks` holds `/hooks/a`, not
/// `/hooks-admin`.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// One call of a `webhook` step.
pub struct Request<'a> {
    pub url: &'a str,
    pub method: HttpMethod,
    /// Resolved, secrets included (see [`headers`]).
    pub headers: HeaderMap,
    pub body: &'a Value,
    pub idempotency_key: &'a str,
    pub timeout: Duration,
    /// The largest reply read.
    pub max_bytes: usize,
}

/// The step's headers with each secret replaced by its value from `secrets`, marked
/// sensitive. A missing secret, or a value HTTP cannot carry, is an error that names the
/// header and the secret, never a value.
pub fn headers(headers: &BTreeMap<String, HeaderValue>, secrets: &Secrets) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("the webhook header `{name}` is not a valid header name"))?;
        let value = match value {
            HeaderValue::Text(text) => reqwest::header::HeaderValue::from_str(text)
                .map_err(|_| format!("the webhook header `{name}` has a value HTTP cannot carry"))?,
            HeaderValue::Secret { secret } => {
                let text = secrets.get(secret).ok_or_else(|| {
                    format!(
                        "the webhook header `{name}` needs the secret `{secret}`, which this server does not have \
                         (--secrets-file)"
                    )
                })?;
                let mut value = reqwest::header::HeaderValue::from_str(text)
                    .map_err(|_| format!("the secret `{secret}` is not a value HTTP can carry in a header"))?;
                value.set_sensitive(true);
                value
            }
        };
        map.insert(header, value);
    }
    Ok(map)
}

/// Sends the step's input and returns the JSON reply.
pub async fn call(client: &reqwest::Client, request: Request<'_>) -> Result<Value, String> {
    let method = match request.method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
    };
    let max_bytes = request.max_bytes;
    let response = client
        .request(method, request.url)
        .timeout(request.timeout)
        .headers(request.headers)
        .header("Idempotency-Key", request.idempotency_key)
        .json(request.body)
        .send()
        .await
        .map_err(|error| format!("the webhook did not answer: {}", without_url(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the webhook answered HTTP {status}"));
    }
    // Read in chunks and stop at the cap: a reply is never held whole beyond it.
    let too_large = || format!("the webhook's reply is larger than {max_bytes} bytes (--max-output-bytes)");
    if response.content_length().is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let mut response = response;
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("the webhook's reply could not be read: {}", without_url(&error)))?
    {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|error| format!("the webhook's reply is not JSON: {error}"))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn allow_list_matches_scheme_host_port_and_path() {
        let list = vec!["http://127.0.0.1".to_owned(), "https://api.example.com/hooks/".to_owned()];
        assert!(allowed(&list, "http://127.0.0.1:9090/crm"));
        assert!(allowed(&list, "https://api.example.com/hooks/a"));
        assert!(!allowed(&list, "https://api.example.com/other"));
        assert!(!allowed(&list, "http://127.0.0.1.evil.test/"));
        assert!(!allowed(&list, "https://127.0.0.1/"));
        assert!(!allowed(&list, "http://user:pw@127.0.0.1/"));
        assert!(!allowed(&list, "not a url"));
    }
}
