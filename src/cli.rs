//! The command line: `vigil run`, `vigil check`, `vigil exec`.
//!
//! This module only describes arguments (clap derive). It never acts on them:
//! `main` dispatches, and owns the mapping from outcomes to exit codes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Where `vigil run` and `vigil check` look for the tree when no path is given
/// and `$VIGIL_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = "/etc/vigil/vigil.toml";

/// A supervisor of OS processes with Erlang/OTP semantics, fit to be PID 1.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Supervise the tree in CONFIG until it stops.
    Run {
        /// The tree (default: $VIGIL_CONFIG, else /etc/vigil/vigil.toml).
        config: Option<PathBuf>,
        /// Test-stack mode: run until the process (or supervisor) NAME ends, then stop
        /// everything in order and exit with its status. Makes NAME significant and
        /// temporary, and its supervisors' auto_shutdown "any_significant".
        #[arg(long, value_name = "NAME")]
        exit_with: Option<String>,
    },
    /// Validate CONFIG and print the resolved tree with effective settings (exit 0),
    /// or print every error (exit 78). Starts nothing.
    Check {
        /// The tree (default: $VIGIL_CONFIG, else /etc/vigil/vigil.toml).
        config: Option<PathBuf>,
    },
    /// Run one command as its init: forward signals, reap everything, exit with its status.
    Exec(ExecArgs),
}

/// Options of `vigil exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Forward signals to the child alone instead of its whole process group.
    #[arg(long)]
    pub signal_child_only: bool,

    /// How long remaining descendants get between SIGTERM and SIGKILL once the child has exited.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub grace: Duration,

    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Resolves the config path: the argument, else `$VIGIL_CONFIG`, else [`DEFAULT_CONFIG`].
pub fn config_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("VIGIL_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}
