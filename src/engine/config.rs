//! How the engine runs: its configuration, with the defaults an embedded engine starts from.

use std::collections::HashMap;
use std::time::Duration;

use crate::engine::auth;
use crate::engine::types::Environment;
use crate::package;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `sqlite://path?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// On PostgreSQL, the schema that holds Orgata's tables (default: `public`).
    pub database_schema: Option<String>,
    /// Database connections in the pool.
    pub pool_size: u32,
    /// Steps run concurrently at most; 0 runs no workers at all (for administration tools).
    pub workers: usize,
    /// How long a replica's claim on a running execution lasts without renewal.
    pub lease: Duration,
    /// An OpenAI-compatible endpoint for agent steps; without one they become interventions.
    pub model: Option<ModelConfig>,
    /// URL prefixes webhook steps may call, per environment.
    pub webhook_allow: HashMap<Environment, Vec<String>>,
    /// Secrets webhook headers reference by name (`--secrets-file`).
    pub secrets: Secrets,
    /// JWT verification, if bearer JWTs are accepted.
    pub jwt: Option<auth::JwtConfig>,
    /// What one package may hold, and how deep playbooks may nest (checked at deploy over
    /// the call graph, and when a child execution starts).
    pub limits: package::Limits,
    /// The largest step output stored (a webhook's reply included), in bytes of JSON; a
    /// larger one fails its step.
    pub max_output_bytes: usize,
    /// About how many bytes of compiled definitions stay in memory; the least recently used
    /// runtime versions are dropped beyond it (and compiled again when next needed).
    pub definition_cache_bytes: usize,
    /// What one jq program may spend (`--jq-max-steps`, `--jq-timeout-ms`,
    /// `--jq-max-value-bytes`).
    pub jq_budget: crate::jq::Budget,
    /// What a jq program may spend inside a write transaction (where it holds SQLite's write
    /// turn, and every other writer waits). A program that needs more is evaluated again by a
    /// worker with the whole [`EngineConfig::jq_budget`], outside any transaction.
    pub jq_inline_slice: crate::jq::Slice,
}

/// Secrets by name, for webhook headers. Their values never leave this type except into a
/// request's header (marked sensitive): `Debug` prints only the names.
#[derive(Clone, Default)]
pub struct Secrets(HashMap<String, String>);

impl Secrets {
    pub fn new(secrets: HashMap<String, String>) -> Secrets {
        Secrets(secrets)
    }

    /// Reads `NAME=VALUE` lines (blank lines and `#` comments skipped); an error names the line,
    /// never a value.
    pub fn parse(text: &str) -> Result<Secrets, String> {
        let mut secrets = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {} of the secrets file is not NAME=VALUE", number + 1))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("line {} of the secrets file has no name", number + 1));
            }
            secrets.insert(name.to_owned(), value.trim().to_owned());
        }
        Ok(Secrets(secrets))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        formatter.debug_tuple("Secrets").field(&names).finish()
    }
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
}

impl EngineConfig {
    /// Defaults: 8 workers, a 30 s lease, loopback webhooks in development and simulation.
    pub fn new(database_url: impl Into<String>) -> EngineConfig {
        let loopback: Vec<String> =
            ["http://127.0.0.1", "http://localhost", "http://[::1]"].map(str::to_owned).to_vec();
        EngineConfig {
            database_url: database_url.into(),
            database_schema: None,
            pool_size: 16,
            workers: 8,
            lease: Duration::from_secs(30),
            model: None,
            webhook_allow: HashMap::from([
                (Environment::Development, loopback.clone()),
                (Environment::Simulation, loopback),
            ]),
            secrets: Secrets::default(),
            jwt: None,
            limits: package::Limits::DEFAULT,
            max_output_bytes: 4 * 1024 * 1024,
            definition_cache_bytes: 256 * 1024 * 1024,
            jq_budget: crate::jq::Budget::DEFAULT,
            jq_inline_slice: crate::jq::Slice { steps: 20_000, time: Duration::from_millis(25) },
        }
    }

    /// The database the test suites run on: a fresh schema of `ORGATA_TEST_DATABASE_URL`
    /// (PostgreSQL, as `.ci/run` sets it) or, without it, a SQLite file in `directory`. One
    /// place for the rule, so the engine's unit tests and the integration suites agree.
    #[doc(hidden)]
    pub fn for_test_database(directory: &std::path::Path) -> EngineConfig {
        match std::env::var("ORGATA_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let mut config = EngineConfig::new(url);
                config.database_schema = Some(format!("t_{}", uuid::Uuid::now_v7().simple()));
                config
            }
            _ => EngineConfig::new(crate::store::sqlite_url(&directory.join("orgata.db"))),
        }
    }

    /// What an evaluation inside a write transaction may spend.
    pub(crate) fn jq_inline(&self) -> crate::jq::Allowance {
        crate::jq::Allowance::sliced(self.jq_budget, self.jq_inline_slice)
    }

    /// What an evaluation outside any transaction may spend.
    pub(crate) fn jq_whole(&self) -> crate::jq::Allowance {
        crate::jq::Allowance::whole(self.jq_budget)
    }

    pub fn webhook_allow_list(&self, environment: Environment) -> &[String] {
        self.webhook_allow.get(&environment).map_or(&[], Vec::as_slice)
    }
}
