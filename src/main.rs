//! The `orgata` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Orgata: business processes with people in the loop.
#[derive(Debug, Parser)]
#[command(name = "orgata", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `serve`'s options, when no subcommand is given.
    #[command(flatten)]
    serve: orgata::Config,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<orgata::Config>),
    /// Serve MCP over standard input and output, running the engine in-process.
    Mcp(Box<McpOptions>),
    /// Manage API keys (the secret is printed once, at creation).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with the frontend contract.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Work with packages.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Deploy a package (a directory or one YAML/JSON file) into an environment: into the
    /// database on this machine, or to a running server with `--url`.
    Deploy(Box<DeployOptions>),
}

/// `orgata deploy`.
#[derive(Debug, clap::Args)]
struct DeployOptions {
    /// The package directory or file.
    path: PathBuf,
    /// The environment: production, staging, simulation or development.
    #[arg(long, default_value = "development")]
    environment: String,
    /// Deploy as a new version of this runtime (default: the package's name and major version).
    #[arg(long)]
    runtime_id: Option<String>,
    /// A running server to deploy to, e.g. `http://127.0.0.1:8080` (default: the database here).
    #[arg(long, env = "ORGATA_URL")]
    url: Option<String>,
    /// The API key or JWT to deploy with on `--url` (without one: the keyless loopback developer).
    #[arg(long, env = "ORGATA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    database: Database,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it once.
    Create {
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// Package roles the key holds (e.g. cook); repeat or separate with commas.
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// Grants, `environment[:read|write|admin[:resource]]`; repeat or separate with commas.
        #[arg(long = "grant", value_delimiter = ',', required = true)]
        grants: Vec<String>,
        #[command(flatten)]
        database: Database,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        database: Database,
    },
    /// Revoke a key; requests with it are refused at once.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
        #[command(flatten)]
        database: Database,
    },
}

/// `orgata mcp`: the engine's options, and who the process acts as.
#[derive(Debug, clap::Args)]
struct McpOptions {
    #[command(flatten)]
    config: orgata::Config,
    /// Act as the holder of this API key or JWT; without one, the local operator (all grants).
    #[arg(long, env = "ORGATA_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The database an administration command works on.
#[derive(Debug, Clone, clap::Args)]
struct Database {
    /// Database URL (default: `orgata.db` in the working directory).
    #[arg(long, env = "ORGATA_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL schema that holds Orgata's tables.
    #[arg(long, env = "ORGATA_DATABASE_SCHEMA")]
    database_schema: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// Write the contract files (schema.graphql, package.schema.json) into a directory.
    Export {
        #[arg(long, default_value = "frontend-contract")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Validate a package (a directory or one YAML/JSON file); prints every problem with its
    /// file and JSON path, and exits non-zero if there is any.
    Validate {
        /// The package directory or file.
        path: PathBuf,
    },
    /// Run the package's tests (`tests:`) in simulation on a throwaway database; prints each
    /// result, the steps no test ran, and exits non-zero if any test fails.
    Test {
        /// The package directory or file.
        path: PathBuf,
        /// How long one test's run may take.
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u64,
    },
    /// Print the JSON Schema of the package format (committed as schema/package.schema.json).
    Schema {
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(config)) => serve(*config),
        Some(Command::Contract(ContractCommand::Export { out })) => match orgata::contract::export(&out) {
            Ok(written) => {
                written.iter().for_each(|path| println!("wrote {path}"));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot write the contract into {}: {error}", out.display());
                ExitCode::FAILURE
            }
        },
        Some(Command::Keys(command)) => keys(command),
        Some(Command::Mcp(options)) => mcp(*options),
        Some(Command::Package(PackageCommand::Validate { path })) => validate(&path),
        Some(Command::Package(PackageCommand::Schema { out })) => schema(out),
        Some(Command::Package(PackageCommand::Test { path, timeout_seconds })) => test(&path, timeout_seconds),
        Some(Command::Deploy(options)) => deploy(*options),
    }
}

/// `orgata deploy`: validates here, then deploys locally or to `--url`.
fn deploy(options: DeployOptions) -> ExitCode {
    let environment = match options.environment.to_lowercase().parse::<orgata::engine::Environment>() {
        Ok(environment) => environment,
        Err(message) => {
            eprintln!("orgata deploy: --environment: {message}");
            return ExitCode::FAILURE;
        }
    };
    let target = match options.url {
        Some(url) => orgata::deploy::Target::Remote { url, token: options.token },
        None => orgata::deploy::Target::Local(Box::new(engine_config(options.database))),
    };
    let shown = options.path.display().to_string();
    block_on("orgata deploy", async {
        let deployed = orgata::deploy::deploy(&options.path, environment, options.runtime_id, target)
            .await
            .map_err(|failure| format!("{shown}:\n{failure}"))?;
        println!("deployed {} version {} into {}", deployed.runtime_id, deployed.version, deployed.environment);
        Ok(())
    })
}

/// An engine configuration for an administration command on `database`.
fn engine_config(database: Database) -> orgata::engine::EngineConfig {
    let mut config = orgata::engine::EngineConfig::new(
        database.database_url.unwrap_or_else(|| orgata::store::sqlite_url(std::path::Path::new("orgata.db"))),
    );
    config.database_schema = database.database_schema;
    config
}

fn serve(config: orgata::Config) -> ExitCode {
    init_tracing(&config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.listen))?;
        orgata::serve(listener, config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("orgata: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// MCP over stdio. Logs go to standard error: standard output carries the protocol.
fn mcp(options: McpOptions) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    block_on("orgata mcp", async {
        let engine_config = options.config.engine()?;
        let engine = orgata::engine::Engine::start(engine_config).await.map_err(|error| error.to_string())?;
        // Like `serve`: an MCP client started over stdio finds the examples it was pointed at.
        if options.config.deploys_examples() {
            orgata::server::deploy_examples(&engine, &options.config).await;
        }
        let principal = match &options.token {
            Some(token) => engine.authenticate(Some(token), false).await.map_err(|error| error.public_message())?,
            // Whoever can run this command on the server owns its database.
            None => orgata::engine::Principal::new("operator", Vec::<String>::new(), orgata::engine::Grants::all()),
        };
        let state = orgata::api::context::AppState::new(engine.clone(), true)?;
        let served = orgata::api::mcp::serve_stdio(state, principal).await;
        engine.stop();
        served
    })
}

/// Runs a key command on an engine with no workers, as the command line's own principal.
fn keys(command: KeysCommand) -> ExitCode {
    let database = match &command {
        KeysCommand::Create { database, .. }
        | KeysCommand::List { database }
        | KeysCommand::Revoke { database, .. } => database.clone(),
    };
    block_on("orgata keys", async {
        let mut config = engine_config(database);
        config.workers = 0;
        let engine = orgata::engine::Engine::start(config).await.map_err(|error| error.to_string())?;
        // Whoever can run this command on the server owns its database.
        let operator = orgata::engine::Principal::new("operator", Vec::<String>::new(), orgata::engine::Grants::all());
        match command {
            KeysCommand::Create { name, roles, grants, .. } => {
                let (key, token) =
                    engine.create_key(&operator, &name, &roles, &grants).await.map_err(|error| error.to_string())?;
                println!("created key {} ({}) with grants {}", key.id, key.name, key.grants.join(","));
                println!("{token}");
                eprintln!("This is the only time the key is shown; store it now.");
            }
            KeysCommand::List { .. } => {
                for key in engine.keys(&operator).await.map_err(|error| error.to_string())? {
                    let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                    println!(
                        "{}\t{}\t{}\troles={}\tgrants={}",
                        key.id,
                        key.name,
                        state,
                        key.roles.join(","),
                        key.grants.join(",")
                    );
                }
            }
            KeysCommand::Revoke { id, .. } => {
                let key = engine.revoke_key(&operator, &id).await.map_err(|error| error.to_string())?;
                println!("revoked key {} ({})", key.id, key.name);
            }
        }
        Ok(())
    })
}

/// Runs `work` on a new async runtime; its error is printed after `what:`.
fn block_on(what: &str, work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let result = tokio::runtime::Runtime::new()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
        .and_then(|runtime| runtime.block_on(work));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{what}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" { builder.json().init() } else { builder.init() }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let checked = orgata::package::load_path(path).and_then(|loaded| {
        let package = orgata::package::validate(&loaded)?;
        Ok((orgata::package::webhooks::warnings(&loaded, &package), package))
    });
    match checked {
        Ok((warnings, package)) => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: package {} {} is valid ({} roles, {} operations, {} playbooks)",
                path.display(),
                package.package,
                package.version,
                package.roles.len(),
                package.operations.len(),
                package.playbooks.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            ExitCode::FAILURE
        }
    }
}

/// `orgata package test`: one line per test, then coverage, then the count.
fn test(path: &std::path::Path, timeout_seconds: u64) -> ExitCode {
    let shown = path.display().to_string();
    let timeout = std::time::Duration::from_secs(timeout_seconds.max(1));
    block_on("orgata package test", async {
        let report = match orgata::package_tests::run(path, timeout).await {
            Ok(report) => report,
            Err(orgata::package_tests::Failure::Problems(problems)) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(format!("{shown}:\n{}\n{} problem(s)", lines.join("\n"), problems.len()));
            }
            Err(orgata::package_tests::Failure::Engine(message)) => return Err(message),
        };
        for outcome in &report.outcomes {
            match &outcome.failure {
                None => println!("PASS {} ({})", outcome.name, outcome.playbook),
                Some(failure) => println!("FAIL {} ({}): {failure}", outcome.name, outcome.playbook),
            }
        }
        for playbook in &report.untested {
            println!("untested playbook: {playbook}");
        }
        for step in &report.uncovered {
            println!("not covered: {step}");
        }
        let failed = report.outcomes.iter().filter(|outcome| outcome.failure.is_some()).count();
        println!("{} passed, {failed} failed", report.outcomes.len() - failed);
        if report.passed() { Ok(()) } else { Err(format!("{failed} test(s) failed")) }
    })
}

fn schema(out: Option<PathBuf>) -> ExitCode {
    let text = orgata::package::schema_text();
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("cannot write {}: {error}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}
