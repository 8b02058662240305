//! `nodeguard policy convert`: the `NodePolicy` documents closest to Gatekeeper and Azure
//! Policy constraints, to migrate or to read what nodeguard understood of them.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ops::policy_files::PolicyPath;
use crate::ops::size;

/// The arguments of `nodeguard policy convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Files or directories of constraints (`NodePolicy` documents among them are left out).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The most the files may hold together (`4MiB`, `512KiB`).
    #[arg(long, default_value = "4MiB", value_parser = size::parse_size)]
    pub max_policy_size: u64,
}

/// Prints the converted documents. Exit status: 0 converted, 2 invalid or unreadable input.
pub fn run(args: &ConvertArgs) -> ExitCode {
    let path = PolicyPath {
        paths: args.paths.clone(),
        profile: None,
        max_size: args.max_policy_size,
        strict: false,
    };
    let sources = match path.read() {
        Ok(sources) => sources,
        Err(e) => {
            eprintln!("{}: {e}", path.describe());
            return ExitCode::from(2);
        }
    };
    let names: Vec<String> = sources
        .0
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .zip(&sources.0)
        .map(|(n, (_, t))| (n.as_str(), t.as_str()))
        .collect();
    match policy_core::Policy::convert(pairs) {
        Ok(text) if text.is_empty() => {
            eprintln!("{}: no Gatekeeper constraint to convert", path.describe());
            ExitCode::from(2)
        }
        Ok(text) => {
            super::output::emit(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
