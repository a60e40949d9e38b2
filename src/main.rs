//! The `orgata` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Orgata: business processes with people in the loop.
#[derive(Debug, Parser)]
#[command(name = "orgata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with packages.
    #[command(subcommand)]
    Package(PackageCommand),
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
        Command::Package(PackageCommand::Validate { path }) => validate(&path),
        Command::Package(PackageCommand::Schema { out }) => schema(out),
    }
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
