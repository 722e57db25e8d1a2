//! The `vigil` binary: parse the command line, set up logging, dispatch, and turn the
//! outcome into an exit code. The exit-code policy lives here and in [`vigil::exit`];
//! a panic exits 70 through [`vigil::fatal`]'s hook, installed before anything else.

use std::process::ExitCode;

use clap::Parser;
use vigil::cli::{self, Cli, Command, LogFormat};
use vigil::control::protocol::Request;
use vigil::exit;

fn main() -> ExitCode {
    // First: a panic anywhere from here on exits 70 after killing the children's groups.
    vigil::fatal::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // `vigil run` logs through its stderr writer thread; the others write directly.
    let daemon_log = matches!(cli.command, Command::Run { .. });
    init_logging(cli.log_format, daemon_log);
    // `VIGIL_SOCKET=` (set but empty) is unset, as `--socket` alone would say.
    let socket = cli.socket.clone().or_else(|| cli::env_path("VIGIL_SOCKET"));
    let socket = socket.as_deref();
    let client =
        |request, json| vigil::client::client_main(socket, request, json).map(|()| exit::OK);
    // Which way a failure is told: the daemon's through its log (human or JSON), the
    // others plainly on stderr.
    let daemon = matches!(cli.command, Command::Run { .. } | Command::Exec(_));
    let result = match cli.command {
        Command::Run { config, exit_with } => {
            vigil::runtime::run_main(&cli::config_path(config), exit_with.as_deref(), socket)
        }
        Command::Check { config } => {
            vigil::config::check_main(&cli::config_path(config)).map(|()| exit::OK)
        }
        Command::Exec(args) => vigil::exec::exec_main(&args),
        Command::Status { json } => client(Request::Status {}, json),
        Command::Stop { name } => client(Request::Stop { name }, false),
        Command::Start { name } => client(Request::Start { name }, false),
        Command::Restart { name } => client(Request::Restart { name }, false),
        Command::Signal { name, signal } => client(Request::Signal { name, signal }, false),
        Command::WaitReady { name, timeout } => client(
            Request::WaitReady {
                name,
                timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            },
            false,
        ),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            report(&e, daemon);
            e.code()
        }
    };
    // The last log lines, if stderr takes them (bounded: nobody may be reading it).
    vigil::runtime::stderr::drain(vigil::runtime::stderr::EXIT_PATIENCE);
    ExitCode::from(code)
}

/// Tells why a command failed: configuration diagnostics as they are (every error with
/// its file, line:col and key path), usage errors and the client's plainly, the daemon's
/// other failures through its log.
fn report(e: &exit::Error, daemon: bool) {
    match e {
        exit::Error::Config(diagnostics) => eprint!("{diagnostics}"),
        exit::Error::Usage(m) => eprintln!("error: {m}"),
        _ if daemon => tracing::error!("{e}"),
        _ => eprintln!("vigil: {e}"),
    }
}

/// Logs go to stderr, coloured only on a terminal: children inherit stdout and stderr, and vigil's lines must not
/// mix with a child's stdout. `RUST_LOG` overrides the default level (`info`): a level, or
/// `target=level` directives separated by commas; an unparsable value means `info`.
/// (`Targets`, not `EnvFilter`: the latter links a regex engine, about 0.3 MB of resident
/// text for span/field filters vigil does not need.)
///
/// `daemon` (`vigil run`): each line is queued for the `vigil-stderr` thread and never
/// waits for stderr; a line the bounded queue cannot take is dropped and counted
/// (`vigil::runtime::stderr`). Otherwise lines are written directly: `vigil exec` logs a
/// line when its child starts and one when it exits, the other commands are short-lived.
fn init_logging(format: LogFormat, daemon: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let (writer, no_thread) = if daemon {
        match vigil::runtime::stderr::start() {
            Ok(w) => (
                BoxMakeWriter::new(vigil::runtime::stderr::LogLines(w)),
                None,
            ),
            Err(e) => (BoxMakeWriter::new(std::io::stderr), Some(e)),
        }
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    // Colour only for a person at a terminal; files, pipes and journald get plain text.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // A log line that cannot be written (stderr's reader is gone: EPIPE) is lost, and
        // that is all: tracing-subscriber would otherwise report it with `eprintln!`,
        // which panics on the same broken stderr and would take the supervisor down.
        .log_internal_errors(false);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).init(),
    }
    if let Some(e) = no_thread {
        tracing::warn!("{e}; vigil writes its log itself, so a stderr nobody reads stalls it");
    }
}
