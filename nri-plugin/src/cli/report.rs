//! `nodeguard report`: what the last compliance audit found running.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::compliance::report::{self, DEFAULT_REPORT, Filter};

use super::output::{emit, unusable};

/// The arguments of `nodeguard report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The report file `nodeguard serve` writes (the same flag as serve's; `--file` too).
    #[arg(long = "report-file", alias = "file", env = "NODEGUARD_REPORT", default_value = DEFAULT_REPORT)]
    pub file: PathBuf,
    /// Output format: text (a table of what needs attention; `table` too), or the
    /// PolicyReport JSON.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Show passing results too.
    #[arg(long)]
    pub all: bool,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// What needs attention, as a table (the name every command uses for its text output).
    #[value(alias = "table")]
    Text,
    /// The PolicyReport JSON.
    Json,
}

/// Prints the report. Exit status: 0 nothing fails, 1 a container fails a rule, 2 no readable
/// report.
pub fn run(args: &ReportArgs) -> ExitCode {
    let file = match report::read(&args.file) {
        Ok(file) => file,
        Err(e) => return unusable(e),
    };
    let filter = Filter {
        namespace: args.namespace.clone(),
        all: args.all,
    };
    match args.format {
        ReportFormat::Text => emit(&report::render_table(&file, &filter)),
        ReportFormat::Json => match serde_json::to_string_pretty(&filter.apply(&file)) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(e) => return unusable(e),
        },
    }
    let scoped = Filter {
        namespace: args.namespace.clone(),
        all: true,
    }
    .apply(&file);
    ExitCode::from(u8::from(report::total(&scoped).fail > 0))
}
