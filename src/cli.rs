//! The command line: `vigil run`, `vigil check`, `vigil exec`, and the client verbs
//! `status`, `stop`, `start`, `restart`, `signal`, `wait-ready`.
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

    /// The control socket, for `run` and the client verbs (default: $VIGIL_SOCKET if set and
    /// not empty, else the [control] socket of the config (for the client verbs: of
    /// $VIGIL_CONFIG, else /etc/vigil/vigil.toml), else /run/vigil/control.sock as root, else
    /// $XDG_RUNTIME_DIR/vigil/control.sock).
    // Not clap's `env`: it takes `VIGIL_SOCKET=` (set but empty) for an empty value and
    // fails every command with exit 2; `main` reads it through [`env_path`].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

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
    /// Show every supervisor and process of the running vigil.
    Status {
        /// Print the tree as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a process or supervisor (OTP terminate_child); it stays stopped until started.
    Stop {
        /// A process or supervisor name.
        name: String,
    },
    /// Start a stopped process or supervisor (OTP restart_child).
    Start {
        /// A process or supervisor name.
        name: String,
    },
    /// Stop a process or supervisor if it runs, then start it.
    Restart {
        /// A process or supervisor name.
        name: String,
    },
    /// Send a signal to the process group of every running process of NAME.
    Signal {
        /// A process or supervisor name.
        name: String,
        /// A signal name (HUP, SIGHUP) or number.
        signal: String,
    },
    /// Wait until NAME (default: the whole tree) is ready; exit 75 if TIMEOUT passes.
    WaitReady {
        /// A process or supervisor name (default: every permanent child of the tree).
        name: Option<String>,
        /// How long to wait.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        timeout: Duration,
    },
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
    arg.or_else(|| env_path("VIGIL_CONFIG"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// A path from the environment variable `var`; set but empty counts as unset (as shells
/// and container runtimes write "no value").
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
