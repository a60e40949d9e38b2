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
    /// Work with the frontend contract.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Work with packages.
    #[command(subcommand)]
    Package(PackageCommand),
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
        Some(Command::Package(PackageCommand::Validate { path })) => validate(&path),
        Some(Command::Package(PackageCommand::Schema { out })) => schema(out),
    }
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

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" { builder.json().init() } else { builder.init() }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let checked = orgata::package::load_path(path).and_then(|loaded| orgata::package::validate(&loaded));
    match checked {
        Ok(package) => {
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
