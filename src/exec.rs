//! `vigil exec [--signal-child-only] [--grace D] -- CMD ARGS...`: one command with vigil
//! as its init, a drop-in for tini and dumb-init (`ENTRYPOINT ["vigil", "exec", "--"]`).
//!
//! What it does, in order:
//!
//! 1. Unblock any signal vigil inherited blocked (it would never reach the handlers). If
//!    not PID 1, become a child subreaper (warn with the consequence and the fix if that
//!    fails). Mark inherited descriptors close-on-exec. Remember the working directory,
//!    then `chdir("/")` so vigil never pins it; the child starts there. (This is
//!    [`crate::runtime::prepare_process`], shared with `vigil run`.)
//! 2. Install signal handlers (before spawning, so nothing sent early is dropped by a
//!    PID 1), then start CMD in a process group of its own, with every signal at its
//!    default and an empty mask. If vigil owns the foreground of the terminal on stdin,
//!    the child's group takes it over. Once the child runs, close every descriptor beyond
//!    0-2 that vigil inherited (listed first thing, before vigil opened any of its own;
//!    the child did not get them either, they were close-on-exec): a parent that waits
//!    for EOF on a pipe it passed (s6's readiness descriptor, a test harness) sees it as
//!    soon as the child runs, not when vigil exits.
//! 3. Loop on signals: SIGCHLD drains the reaper (the child's status when its pid shows
//!    up; any other pid is an adopted orphan, reaped and counted); every other signal in
//!    [`forwardable`] goes to the child's process group (`kill(-pgid)`), or to the child
//!    alone with `--signal-child-only`. SIGCHLD is never forwarded.
//! 4. When the child has exited: SIGTERM every remaining descendant, wait up to
//!    `--grace` (default 5s), SIGKILL the rest, and exit as soon as none remain (tini and
//!    dumb-init leave them behind). Exit with the child's status: its code, or 128 +
//!    the signal that killed it. A command that is not found exits 127, one that cannot
//!    be executed 126, each with a one-line message saying how to fix it. If the
//!    terminal was handed to the child, vigil takes it back first, so the shell that
//!    started vigil finds it as it left it.
//!
//! # Job-control signals
//!
//! - SIGTSTP is forwarded, like tini: a `kill -TSTP` sent to vigil suspends the child.
//!   (Ctrl-Z on a terminal goes to the foreground group, which is the child's.)
//! - SIGTTIN and SIGTTOU are forwarded to the child too. vigil itself never stops on
//!   them: it has handlers installed, and as PID 1 the kernel would not stop it anyway.
//!   When vigil has handed the terminal to the child it also blocks them for itself
//!   ([`crate::os::sys::block_tty_job_signals`]), so a log line written to the terminal from
//!   the background (`stty tostop`) can neither stop vigil nor loop; in that mode they
//!   are not forwarded, which is moot since only the kernel sends them there.
//! - SIGCONT is forwarded like any other signal.
//!
//! # Under systemd
//!
//! With `NOTIFY_SOCKET` set (a `Type=notify` unit), vigil sends `READY=1` once the child
//! is spawned, `WATCHDOG=1` every `WATCHDOG_USEC / 2` while its loop runs, and
//! `STOPPING=1` when it forwards SIGTERM/SIGINT or the child exits
//! ([`crate::runtime::notify`]). The child does not inherit those variables.
//!
//! If the signals can no longer be read, vigil can see neither the child exit nor a stop
//! request: it SIGKILLs the child's group and every descendant and exits 70.
//!
//! Must never: forward SIGCHLD, signal the child's pid after it has been reaped (pids
//! are reused), wait for processes other than through the reaper, or exit while a
//! descendant it could still stop is alive.
//!
//! [`forwardable`]: crate::os::signals::forwardable

use std::path::PathBuf;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::cli::ExecArgs;
use crate::exit;
use crate::os::reaper::{self, Remaining};
use crate::os::signals::{self, Signals};
use crate::os::spawn::{self, SpawnOptions};
use crate::os::sweep;
use crate::os::sys::{self, Pid};
use crate::runtime::notify::Notifier;
use crate::spec::{Backoff, ProcessSpec, Signal};

/// The name used for the command in messages.
const NAME: &str = "vigil exec";

/// Runs `vigil exec`: the child's status as vigil's exit code, or why it could not run.
pub fn exec_main(args: &ExecArgs) -> Result<u8, exit::Error> {
    // Before vigil opens anything (the event loop, the signal pipe): every descriptor >= 3
    // open now was inherited, and is closed once the child runs.
    let inherited = sys::InheritedFds::snapshot().unwrap_or_else(|e| {
        warn!(
            "{e}; vigil keeps the descriptors it inherited open while it runs, so a parent \
             waiting for EOF on a pipe it passed waits until vigil exits"
        );
        sys::InheritedFds::default()
    });
    // Shared with `vigil run`: unblock inherited signals, subreaper (or a warning),
    // descriptors close-on-exec, chdir("/").
    let start_dir = crate::runtime::prepare_process();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| exit::Error::Internal(format!("{NAME}: cannot start the event loop: {e}")))?;
    runtime.block_on(run(args, start_dir, inherited))
}

/// The signals `vigil exec` handles: everything it forwards, plus SIGCHLD.
fn handled_signals() -> Vec<Signal> {
    let mut all = signals::forwardable();
    all.push(signals::CHLD);
    all
}

async fn run(
    args: &ExecArgs,
    start_dir: PathBuf,
    inherited: sys::InheritedFds,
) -> Result<u8, exit::Error> {
    let mut signals = Signals::new(&handled_signals()).map_err(|e| {
        exit::Error::Internal(format!("{NAME}: cannot install signal handlers: {e}"))
    })?;
    let foreground = sys::stdin_is_foreground_tty();
    let spec = ProcessSpec {
        command: args.command.clone(),
        stop_signal: signals::TERM,
        leftovers: Default::default(),
        success_exit_codes: vec![0],
        env: Vec::new(),
        cwd: None,
        user: None,
        group: None,
        no_new_privileges: false,
        capabilities: None,
        output: Default::default(),
        backoff: Backoff::None,
        ready: None,
        health: None,
    };
    let options = SpawnOptions {
        foreground_tty: foreground,
        ..SpawnOptions::default()
    };
    // Spawned synchronously: the pid is known before the first await below.
    let child = match spawn::spawn_with(NAME, &spec, &start_dir, options) {
        Ok(pid) => pid,
        Err(e) => {
            error!("{e}");
            return Ok(e.exec_exit_code());
        }
    };
    // The child has what it needs; vigil keeps nothing it inherited beyond 0-2.
    debug!(fds = ?inherited.fds(), "closing inherited descriptors");
    inherited.close();
    if foreground && let Err(e) = sys::block_tty_job_signals() {
        debug!("cannot block SIGTTIN/SIGTTOU: {e}");
    }
    info!(pid = child, command = ?args.command, "child started");
    // Under a `Type=notify` unit: ready once the child runs (vigil cannot know more).
    let mut notify = Notifier::from_env();
    notify.ready(Some(&format!("running {}", args.command.join(" "))));

    let mut orphans: u64 = 0;
    let status = loop {
        let sig = tokio::select! {
            sig = signals.recv() => sig,
            () = notify.watchdog_tick() => continue,
        };
        let sig = match sig {
            Ok(sig) => sig,
            Err(e) => {
                // Blind: neither the child's exit nor a stop request can be seen any more.
                error!(
                    "{NAME}: {e}; killing the child (pid {child}) and every descendant and \
                     exiting {}",
                    exit::INTERNAL
                );
                let _ = sys::killpg(child, Signal::KILL);
                let _ = sys::kill(child, Signal::KILL);
                sweep::kill_all_now();
                if foreground {
                    sys::reclaim_terminal_foreground();
                }
                return Ok(exit::INTERNAL);
            }
        };
        if sig != signals::CHLD {
            if sig == signals::TERM || sig == signals::INT {
                notify.stopping(&format!("stopping: {sig} forwarded to the child"));
            }
            forward(child, sig, args.signal_child_only);
            continue;
        }
        let mut status = None;
        let result = reaper::drain(&mut |pid, st| {
            if pid == child {
                status = Some(st);
            } else {
                orphans += 1;
                debug!(pid, status = %st, "reaped adopted orphan");
            }
        });
        if let Some(st) = status {
            break st;
        }
        match result {
            Ok(Remaining::Some) => {}
            Ok(Remaining::None) => {
                // Cannot happen: the child is ours until we reap it.
                error!("{NAME}: the child (pid {child}) vanished without an exit status");
                return Ok(exit::INTERNAL);
            }
            Err(e) => error!("{NAME}: reaping failed: {e}"),
        }
    };
    info!(pid = child, %status, "child exited");
    notify.stopping(&format!("stopping: the child exited ({status})"));
    if foreground {
        sys::reclaim_terminal_foreground();
    }

    let report = sweep::sweep(
        &mut signals,
        args.grace,
        sweep::KILL_WAIT,
        &mut |pid, st| {
            orphans += 1;
            debug!(pid, status = %st, "reaped descendant");
        },
    )
    .await;
    debug!(
        orphans,
        terminated = report.terminated,
        killed = report.killed,
        "orphans reaped"
    );
    Ok(status.shell_code())
}

/// Forwards `sig` to the child's process group, or to the child alone. The child has not
/// been reaped yet (this runs only before its exit is seen), so its pid and group id are
/// still its own.
fn forward(child: Pid, sig: Signal, child_only: bool) {
    let result = if child_only {
        sys::kill(child, sig)
    } else {
        // If the child moved to another group (setsid), its old group may be empty.
        sys::killpg(child, sig).or_else(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                sys::kill(child, sig)
            } else {
                Err(e)
            }
        })
    };
    match result {
        Ok(()) => debug!(signal = %sig, pid = child, "forwarded"),
        Err(e) => debug!(signal = %sig, pid = child, "not forwarded: {e}"),
    }
}

/// How long `vigil exec` waits for leftover descendants by default (`--grace`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_chld_and_every_forwardable_signal() {
        let h = handled_signals();
        assert!(h.contains(&signals::CHLD));
        assert!(h.contains(&signals::TERM));
        assert!(!h.contains(&signals::KILL));
        assert_eq!(h.len(), signals::forwardable().len() + 1);
    }

    #[test]
    fn cli_default_grace_matches() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["vigil", "exec", "--", "true"]).unwrap();
        let crate::cli::Command::Exec(args) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(args.grace, DEFAULT_GRACE);
        assert!(!args.signal_child_only);
    }
}
