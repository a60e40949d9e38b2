//! The server's configuration: one clap struct, every field also read from the environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::engine::{EngineConfig, Environment, ModelConfig};

/// How `orgata serve` (and `orgata mcp`) run.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. Without API keys only loopback addresses are allowed.
    #[arg(long, env = "ORGATA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://orgata.db?mode=rwc` (default: `orgata.db` in the working
    /// directory, created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "ORGATA_DATABASE_URL")]
    pub database_url: Option<String>,

    /// PostgreSQL schema that holds Orgata's tables (default `public`).
    #[arg(long, env = "ORGATA_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,

    /// Database connections in the pool.
    #[arg(long, env = "ORGATA_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,

    /// Deploy the packages in `--examples-dir` into `development` at start-up (idempotent).
    #[arg(long, env = "ORGATA_EXAMPLES", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub examples: bool,

    /// Do not deploy the example packages.
    #[arg(long, conflicts_with = "examples")]
    pub no_examples: bool,

    /// Where the example packages are.
    #[arg(long, env = "ORGATA_EXAMPLES_DIR", default_value = "examples")]
    pub examples_dir: PathBuf,

    /// Steps run concurrently at most.
    #[arg(long, env = "ORGATA_WORKERS", default_value_t = 8)]
    pub workers: usize,

    /// Seconds a replica's claim on a running execution lasts without renewal.
    #[arg(long, env = "ORGATA_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,

    /// Base URL of an OpenAI-compatible endpoint for agent steps (e.g.
    /// `http://127.0.0.1:8000/v1`); without it agent steps become AGENT interventions.
    #[arg(long, env = "ORGATA_MODEL_URL")]
    pub model_url: Option<String>,

    /// Model name sent to the endpoint.
    #[arg(long, env = "ORGATA_MODEL_NAME", default_value = "default")]
    pub model_name: String,

    /// Bearer token for the model endpoint.
    #[arg(long, env = "ORGATA_MODEL_API_KEY", hide_env_values = true)]
    pub model_api_key: Option<String>,

    /// Webhook allow-list entries, `environment=url-prefix`, comma-separated or repeated
    /// (default: loopback in development and simulation).
    #[arg(long, env = "ORGATA_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,

    /// A file of `NAME=VALUE` lines: the secrets webhook headers reference as `{secret: NAME}`.
    /// Values never appear in packages, history or logs.
    #[arg(long, env = "ORGATA_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ORGATA_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Evaluation steps one jq program may take (each term evaluated, native call and value a
    /// generator yields) before it is stopped and its step fails; at most 10,000,000. Like
    /// `--jq-timeout-ms`, it holds for the whole process.
    #[arg(long, env = "ORGATA_JQ_MAX_STEPS", default_value_t = crate::jq::Budget::DEFAULT.steps)]
    pub jq_max_steps: u64,

    /// Milliseconds one jq program may run before it is stopped and its step fails.
    #[arg(long, env = "ORGATA_JQ_TIMEOUT_MS", default_value_t = crate::jq::Budget::DEFAULT.time.as_millis() as u64)]
    pub jq_timeout_ms: u64,

    /// How deep playbooks may nest (a `playbook` step's child, its child, …): checked at
    /// deploy over the package's calls, and again when a child execution starts.
    #[arg(long, env = "ORGATA_MAX_NESTING_DEPTH", default_value_t = crate::package::Limits::DEFAULT.nesting_depth)]
    pub max_nesting_depth: usize,

    /// Steps one playbook may have; larger packages are refused at deploy.
    #[arg(long, env = "ORGATA_MAX_STEPS_PER_PLAYBOOK", default_value_t = crate::package::Limits::DEFAULT.steps_per_playbook)]
    pub max_steps_per_playbook: usize,

    /// jq programs one package may hold (step programs, conditions, inputs, outputs, prompt
    /// placeholders); larger packages are refused at deploy.
    #[arg(long, env = "ORGATA_MAX_PROGRAMS_PER_PACKAGE", default_value_t = crate::package::Limits::DEFAULT.programs)]
    pub max_programs_per_package: usize,

    /// The largest step output stored, a webhook's reply included, in bytes of JSON; a larger
    /// one fails its step with the reason.
    #[arg(long, env = "ORGATA_MAX_OUTPUT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_output_bytes: usize,

    /// Megabytes of compiled definitions kept in memory; the least recently used runtime
    /// versions are dropped beyond it and compiled again when next needed.
    #[arg(long, env = "ORGATA_DEFINITION_CACHE_MB", default_value_t = 256)]
    pub definition_cache_mb: usize,

    /// Bytes of values one jq program may build (measured as it runs); a program that builds
    /// more is stopped and its step fails. Like `--jq-max-steps`, it holds for the whole process.
    #[arg(long, env = "ORGATA_JQ_MAX_VALUE_BYTES", default_value_t = crate::jq::Budget::DEFAULT.bytes)]
    pub jq_max_value_bytes: usize,

    /// Seconds a WebSocket message may wait for a client that does not read before the
    /// connection is closed.
    #[arg(long, env = "ORGATA_WS_SEND_TIMEOUT_SECONDS", default_value_t = 30)]
    pub ws_send_timeout_seconds: u64,

    /// Seconds a new WebSocket may take to say who it is (`connection_init` on `/graphql/ws`, the
    /// first subscription on `/api/v1/ws`) before it is closed with 4408.
    #[arg(long, env = "ORGATA_WS_INIT_TIMEOUT_SECONDS", default_value_t = 10)]
    pub ws_init_timeout_seconds: u64,

    /// Seconds between checks of an open WebSocket's credential (also checked on every new
    /// subscription); a revoked key or an expired JWT closes the socket (4403) within this.
    #[arg(long, env = "ORGATA_WS_REAUTHENTICATE_SECONDS", default_value_t = 30)]
    pub ws_reauthenticate_seconds: u64,

    /// Seconds a client may take to send a request's headers before its connection is closed.
    #[arg(long, env = "ORGATA_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,

    /// MCP sessions (2025-11-25 clients) open at most, in all.
    #[arg(long, env = "ORGATA_MCP_MAX_SESSIONS", default_value_t = 1000)]
    pub mcp_max_sessions: usize,

    /// MCP sessions open at most per principal.
    #[arg(long, env = "ORGATA_MCP_MAX_SESSIONS_PER_PRINCIPAL", default_value_t = 32)]
    pub mcp_max_sessions_per_principal: usize,

    /// A bearer token that may read `/metrics` (for a scraper without an API key). Otherwise
    /// `/metrics` needs a valid credential, like every other route, once credentials exist.
    #[arg(long, env = "ORGATA_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Accept HS256 JWT bearer tokens signed with this secret.
    #[arg(long, env = "ORGATA_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// Accept RS256 JWT bearer tokens verified with the PEM public key in this file.
    #[arg(long, env = "ORGATA_JWT_RS256_PUBLIC_KEY_FILE")]
    pub jwt_rs256_public_key_file: Option<PathBuf>,

    /// Required `iss` of JWTs.
    #[arg(long, env = "ORGATA_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of JWTs.
    #[arg(long, env = "ORGATA_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Seconds of clock skew tolerated when checking a JWT's `exp` and `nbf`.
    #[arg(long, env = "ORGATA_JWT_LEEWAY_SECONDS", default_value_t = 30)]
    pub jwt_leeway_seconds: u64,

    /// Origins browsers may call from (CORS), comma-separated; none by default.
    #[arg(long, env = "ORGATA_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,

    /// Host names (optionally `name:port`) every route and socket answers, comma-separated;
    /// default: localhost, 127.0.0.1, ::1 and the listen address. `*` accepts any (behind a
    /// proxy that checks `Host`). Other hosts get 403, which stops DNS rebinding.
    #[arg(long, env = "ORGATA_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Former name of `--allowed-hosts` (which now covers every route, not only MCP); its
    /// entries are added to it.
    #[arg(long, env = "ORGATA_MCP_ALLOWED_HOSTS", value_delimiter = ',', hide = true)]
    pub mcp_allowed_hosts: Vec<String>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "ORGATA_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    /// A configuration for tests and embedding: loopback, the given database, no examples.
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: Some(database_url.into()),
            database_schema: None,
            pool_size: 8,
            examples: false,
            no_examples: true,
            examples_dir: PathBuf::from("examples"),
            workers: 8,
            lease_seconds: 30,
            model_url: None,
            model_name: "default".to_owned(),
            model_api_key: None,
            webhook_allow: Vec::new(),
            secrets_file: None,
            max_body_bytes: 8 * 1024 * 1024,
            jq_max_steps: crate::jq::Budget::DEFAULT.steps,
            jq_timeout_ms: crate::jq::Budget::DEFAULT.time.as_millis() as u64,
            max_nesting_depth: crate::package::Limits::DEFAULT.nesting_depth,
            max_steps_per_playbook: crate::package::Limits::DEFAULT.steps_per_playbook,
            max_programs_per_package: crate::package::Limits::DEFAULT.programs,
            max_output_bytes: 4 * 1024 * 1024,
            definition_cache_mb: 256,
            jq_max_value_bytes: crate::jq::Budget::DEFAULT.bytes,
            ws_send_timeout_seconds: 30,
            ws_init_timeout_seconds: 10,
            ws_reauthenticate_seconds: 30,
            header_read_timeout_seconds: 10,
            mcp_max_sessions: 1000,
            mcp_max_sessions_per_principal: 32,
            metrics_token: None,
            jwt_hs256_secret: None,
            jwt_rs256_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_seconds: 30,
            cors_allow_origin: Vec::new(),
            allowed_hosts: Vec::new(),
            mcp_allowed_hosts: Vec::new(),
            log_format: "text".to_owned(),
        }
    }

    pub fn deploys_examples(&self) -> bool {
        self.examples && !self.no_examples
    }

    /// What one jq program may spend.
    pub fn jq_budget(&self) -> crate::jq::Budget {
        crate::jq::Budget {
            steps: self.jq_max_steps.max(1),
            time: Duration::from_millis(self.jq_timeout_ms.max(1)),
            bytes: self.jq_max_value_bytes.max(1),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| crate::store::sqlite_url(std::path::Path::new("orgata.db")))
    }

    /// The engine's part of the configuration.
    pub fn engine(&self) -> Result<EngineConfig, String> {
        let mut engine = EngineConfig::new(self.database_url());
        engine.database_schema = self.database_schema.clone();
        engine.pool_size = self.pool_size;
        engine.workers = self.workers;
        engine.lease = Duration::from_secs(self.lease_seconds.max(1));
        engine.limits = crate::package::Limits {
            steps_per_playbook: self.max_steps_per_playbook,
            programs: self.max_programs_per_package,
            nesting_depth: self.max_nesting_depth,
        };
        engine.max_output_bytes = self.max_output_bytes;
        engine.definition_cache_bytes = self.definition_cache_mb.saturating_mul(1024 * 1024);
        engine.jq_budget = self.jq_budget();
        engine.model = self.model_url.as_ref().map(|url| ModelConfig {
            url: url.clone(),
            model: self.model_name.clone(),
            api_key: self.model_api_key.clone(),
        });
        if self.jwt_hs256_secret.is_some() || self.jwt_rs256_public_key_file.is_some() {
            let rs256_public_key = match &self.jwt_rs256_public_key_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|error| format!("cannot read the JWT public key {}: {error}", path.display()))?,
                ),
                None => None,
            };
            engine.jwt = Some(crate::engine::auth::JwtConfig {
                hs256_secret: self.jwt_hs256_secret.clone(),
                rs256_public_key,
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                leeway_seconds: self.jwt_leeway_seconds,
            });
        }
        if let Some(path) = &self.secrets_file {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read the secrets file {}: {error}", path.display()))?;
            engine.secrets =
                crate::engine::Secrets::parse(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        }
        if !self.webhook_allow.is_empty() {
            let mut allow: HashMap<Environment, Vec<String>> = HashMap::new();
            for entry in &self.webhook_allow {
                let (environment, prefix) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("webhook allow-list entry `{entry}` must be environment=url-prefix"))?;
                let environment: Environment = environment.trim().parse()?;
                allow.entry(environment).or_default().push(prefix.trim().to_owned());
            }
            engine.webhook_allow = allow;
        }
        Ok(engine)
    }
}
