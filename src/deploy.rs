//! `orgata deploy`: a package (a directory of files or one YAML/JSON file) into an environment,
//! either into a database on this machine or to a running server over REST.
//!
//! Either way the package is loaded and validated here first, so every problem is reported at
//! once with its file and path before anything is sent. A server's own refusals (a webhook
//! outside the environment's allow-list, a runtime id that belongs to another package) come
//! back as problems whose JSON pointers are mapped to the files they came from.

use crate::engine::{DeployRequest, Engine, EngineConfig, Environment, Grants, Principal};
use crate::package::{LoadedPackage, Problem};

/// Where a package goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A database on this machine, as its operator (all grants).
    Local(Box<EngineConfig>),
    /// A running server's REST API at `url` (e.g. `http://127.0.0.1:8080`), as the holder of
    /// `token` (none: the keyless loopback developer).
    Remote { url: String, token: Option<String> },
}

/// What was deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub runtime_id: String,
    pub version: i64,
    pub environment: String,
}

/// Why a deploy failed: problems with file and path, or one message.
#[derive(Debug)]
pub enum Failure {
    Problems(Vec<Problem>),
    Message(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Message(message) => formatter.write_str(message),
            Failure::Problems(problems) => {
                for problem in problems {
                    writeln!(formatter, "{problem}")?;
                }
                write!(formatter, "{} problem(s)", problems.len())
            }
        }
    }
}

/// Loads and validates the package at `path`, then deploys it into `environment` as a new
/// version of `runtime_id` (default: the package's name and major version).
pub async fn deploy(
    path: &std::path::Path,
    environment: Environment,
    runtime_id: Option<String>,
    target: Target,
) -> Result<Deployed, Failure> {
    let loaded = crate::package::load_path(path).map_err(Failure::Problems)?;
    crate::package::validate(&loaded).map_err(Failure::Problems)?;
    match target {
        Target::Local(config) => local(loaded, environment, runtime_id, *config).await,
        Target::Remote { url, token } => remote(loaded, environment, runtime_id, &url, token.as_deref()).await,
    }
}

async fn local(
    loaded: LoadedPackage,
    environment: Environment,
    runtime_id: Option<String>,
    mut config: EngineConfig,
) -> Result<Deployed, Failure> {
    config.workers = 0;
    let engine = Engine::start(config).await.map_err(|error| Failure::Message(error.to_string()))?;
    // Whoever can run this command on the machine owns its database.
    let operator = Principal::new("operator", Vec::<String>::new(), Grants::all());
    let deployed = engine.deploy(&operator, DeployRequest { runtime_id, environment, package: loaded }).await;
    engine.stop();
    match deployed {
        Ok(runtime) => Ok(Deployed {
            runtime_id: runtime.id,
            version: i64::from(runtime.version),
            environment: runtime.environment.as_str().to_owned(),
        }),
        Err(crate::engine::Error::InvalidPackage { problems }) => Err(Failure::Problems(problems)),
        Err(error) => Err(Failure::Message(error.public_message())),
    }
}

async fn remote(
    loaded: LoadedPackage,
    environment: Environment,
    runtime_id: Option<String>,
    url: &str,
    token: Option<&str>,
) -> Result<Deployed, Failure> {
    let mut endpoint = reqwest::Url::parse(url)
        .and_then(|base| base.join("/api/v1/runtimes"))
        .map_err(|error| Failure::Message(format!("`{url}` is not a URL: {error}")))?;
    endpoint.query_pairs_mut().append_pair("environment", &environment.as_str().to_uppercase());
    if let Some(runtime_id) = &runtime_id {
        endpoint.query_pairs_mut().append_pair("runtimeId", runtime_id);
    }
    let mut request = reqwest::Client::new().post(endpoint.clone()).json(&loaded.document);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response =
        request.send().await.map_err(|error| Failure::Message(format!("cannot reach {endpoint}: {error}")))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|error| Failure::Message(format!("{endpoint} answered {status} without JSON: {error}")))?;
    if status.is_success() {
        return Ok(Deployed {
            runtime_id: body["id"].as_str().unwrap_or_default().to_owned(),
            version: body["version"].as_i64().unwrap_or_default(),
            environment: body["environment"].as_str().unwrap_or_default().to_lowercase(),
        });
    }
    let detail = body["detail"].as_str().unwrap_or("the server refused the package");
    let problems: Vec<Problem> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|error| {
            // The server names the document it received; the pointer leads back to our files.
            let (file, path) = loaded.sources.locate(error["pointer"].as_str().unwrap_or_default());
            let message = error["message"].as_str().unwrap_or_default();
            // A JSON body is the document the server calls `package`.
            Problem::at(&file, &path, message.strip_prefix("package: ").unwrap_or(message))
        })
        .collect();
    if problems.is_empty() {
        Err(Failure::Message(format!("{status}: {detail}")))
    } else {
        Err(Failure::Problems(problems))
    }
}
