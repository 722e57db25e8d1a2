//! vigil's own exit codes (sysexits), how the root's end becomes one ([`for_end`]), and the
//! one error type every command returns ([`Error`]). `main` is the only place that turns
//! an outcome or an error into a code.
//!
//! A root shut down by a significant child, and `vigil exec`, exit with the child's own
//! status instead (its code, or 128 + signal); see [`crate::spec::ExitStatus::shell_code`].

/// Clean stop (SIGTERM/SIGINT, or every child done).
pub const OK: u8 = 0;
/// Command-line usage error (clap's own code).
pub const USAGE: u8 = 2;
/// `EX_UNAVAILABLE`: a child failed to start during the initial start, or the control
/// socket or HTTP address the configuration asks for cannot be used; nothing was started.
pub const START_FAILED: u8 = 69;
/// `EX_SOFTWARE`: internal error in vigil.
pub const INTERNAL: u8 = 70;
/// `EX_TEMPFAIL`: the root's restart intensity was exceeded; the container should be restarted.
pub const GAVE_UP: u8 = 75;
/// `EX_CONFIG`: invalid configuration; nothing was started.
pub const CONFIG: u8 = 78;
/// `vigil exec`: the command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// `vigil exec`: the command was not found.
pub const NOT_FOUND: u8 = 127;

// Client verbs (`vigil status|stop|start|restart|signal|wait-ready`).

/// The operation was refused or failed (unknown name, already running, start failed...).
pub const REFUSED: u8 = 1;
/// `EX_UNAVAILABLE`: no vigil is listening on the control socket.
pub const NO_DAEMON: u8 = 69;
/// `EX_TEMPFAIL`: `wait-ready` ran out of time.
pub const TIMED_OUT: u8 = 75;
/// `EX_NOPERM`: the control socket refused this user.
pub const NO_PERMISSION: u8 = 77;

/// The exit code of `vigil run` once the root has finished with `end`.
///
/// `stop_signal` is the first stop signal vigil received, if any; `exit_with` is whether
/// `--exit-with` was given. A run stopped by a signal exits 0 (a clean stop), except a
/// `--exit-with` run whose process had not ended: it exits 128 + the signal, as a shell
/// does, so a cancelled test run never reads as a pass.
pub fn for_end(
    end: crate::core::End,
    stop_signal: Option<crate::spec::Signal>,
    exit_with: bool,
) -> u8 {
    use crate::core::End;
    match end {
        End::Stopped => match stop_signal {
            Some(signal) if exit_with => crate::spec::ExitStatus::Signaled(signal).shell_code(),
            _ => OK,
        },
        End::GaveUp { .. } => GAVE_UP,
        End::StartFailed { .. } => START_FAILED,
        End::AutoShutdown { gave_up: true, .. } => GAVE_UP,
        End::AutoShutdown { status, .. } => status.map_or(OK, crate::spec::ExitStatus::shell_code),
    }
}

/// Why a `vigil` command could not do its job. Every command returns one (or its
/// outcome's code); `main` alone prints it and turns it into the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command-line usage (2).
    Usage(String),
    /// Invalid configuration (78): the rendered diagnostics, every error with its file,
    /// line:col and key path.
    Config(String),
    /// Something vigil needs is unavailable (69): the control socket or HTTP address
    /// cannot be used, or (client) no vigil is listening.
    Unavailable(String),
    /// Internal error in vigil (70).
    Internal(String),
    /// Client: the daemon refused or could not do the operation (1).
    Refused(String),
    /// Client: `wait-ready` ran out of time (75).
    TimedOut(String),
    /// Client: the control socket refused this user (77).
    NoPermission(String),
}

impl Error {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Error::Usage(_) => USAGE,
            Error::Config(_) => CONFIG,
            Error::Unavailable(_) => NO_DAEMON,
            Error::Internal(_) => INTERNAL,
            Error::Refused(_) => REFUSED,
            Error::TimedOut(_) => TIMED_OUT,
            Error::NoPermission(_) => NO_PERMISSION,
        }
    }

    /// What went wrong, for a person.
    pub fn message(&self) -> &str {
        match self {
            Error::Usage(m)
            | Error::Config(m)
            | Error::Unavailable(m)
            | Error::Internal(m)
            | Error::Refused(m)
            | Error::TimedOut(m)
            | Error::NoPermission(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}
