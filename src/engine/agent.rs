//! Models for `agent` steps. With a model configured, the engine asks it directly; without one,
//! an agent step becomes a pending AGENT intervention that a person or an assistant answers.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::package::ModelChoice;

/// What an agent step asks a model.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// The step's prompt, rendered from the execution context.
    pub prompt: String,
    /// The JSON Schema the answer must fit.
    pub output_schema: Value,
    /// The execution context, for the model to read.
    pub context: Value,
    pub timeout: Duration,
    /// The step's model, temperature, system prompt and token limit, where it sets them.
    pub choice: ModelChoice,
}

/// Something that answers agent steps with JSON.
#[async_trait]
pub trait Model: Send + Sync + std::fmt::Debug {
    /// The model's answer, parsed as JSON; the engine validates it against the schema.
    async fn complete(&self, request: AgentRequest) -> Result<Value, String>;
}

/// An OpenAI-compatible chat-completions endpoint, asked for a JSON-schema response.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    client: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:8000/v1`; `/chat/completions` is appended.
    url: String,
    model: String,
    api_key: Option<String>,
}

impl OpenAiModel {
    pub fn new(client: reqwest::Client, url: &str, model: &str, api_key: Option<String>) -> OpenAiModel {
        OpenAiModel { client, url: url.trim_end_matches('/').to_owned(), model: model.to_owned(), api_key }
    }
}

#[async_trait]
impl Model for OpenAiModel {
    async fn complete(&self, request: AgentRequest) -> Result<Value, String> {
        let choice = &request.choice;
        let answer_as_json = "You carry out one step of a business process. Answer with a single JSON value that fits \
                              the given JSON Schema, and nothing else.";
        let system = match &choice.system {
            Some(system) => format!("{system}\n\n{answer_as_json}"),
            None => answer_as_json.to_owned(),
        };
        let mut body = json!({
            "model": choice.name.as_deref().unwrap_or(&self.model),
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": format!("{}\n\nExecution context:\n{}", request.prompt, request.context)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "step_output", "schema": request.output_schema},
            },
        });
        if let Some(temperature) = choice.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(max_tokens) = choice.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        let mut call = self.client.post(format!("{}/chat/completions", self.url)).timeout(request.timeout).json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response =
            call.send().await.map_err(|error| format!("the model endpoint did not answer: {}", without_url(&error)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the model endpoint answered HTTP {status}"));
        }
        let reply: Value = response
            .json()
            .await
            .map_err(|error| format!("the model endpoint's reply is not JSON: {}", without_url(&error)))?;
        let content = reply
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or("the model's reply has no choices[0].message.content")?;
        serde_json::from_str(content.trim()).map_err(|error| format!("the model did not answer with JSON: {error}"))
    }
}

/// reqwest errors may carry the URL; messages stored in history should not.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_decode() {
        "could not decode the body"
    } else {
        "request failed"
    };
    kind.to_owned()
}
