//! The reaper: the only code in vigil that collects exit statuses.
//!
//! Invariants (see also `clippy.toml`, which bans every other way to wait):
//!
//! 1. **Only this module waits**: `next` peeks and [`reap`] reaps; [`peek`] (the event
//!    loop, one exit at a time) and [`drain`] (`vigil exec`, the sweep) are built on
//!    them. Nothing else may call `waitpid`,
//!    `waitid`, `Child::wait`/`try_wait`/`output`/`status`, or create a
//!    `tokio::process::Child`. As PID 1 (or a subreaper) a second waiter would steal
//!    statuses: ours with `waitid(P_ALL)`, or theirs, and std even panics on ECHILD.
//! 2. **Callers register a pid before the loop can see its exit.** Spawning happens
//!    synchronously on the loop's thread, so the pid is known before the next `.await`;
//!    any pid the caller does not know is an adopted orphan (reap it, count it).
//! 3. **Drain everything on every SIGCHLD.** SIGCHLDs coalesce: one signal may stand for
//!    many exits, so [`drain`] loops until nothing is left to reap.
//! 4. **Peek, dispatch, then reap** (systemd's order). The exit is reported while the
//!    process is still a zombie, so its pid and process group cannot be reused yet: the
//!    caller may `killpg(pid, SIGKILL)` what is left of the group, or read `/proc/<pid>`,
//!    without hitting an unrelated process.
//! 5. **Forget what is reaped.** A reaped pid leaves [`crate::fatal`]'s registry of live
//!    process groups (which `runtime::spawn` fills), so the panic hook never kills a
//!    group whose id may have been reused.
//!
//! Must never: block, panic (except the test-only trigger of debug builds,
//! `crate::fatal::test_panic_on_exit`), request stopped/continued states, or set `SIG_IGN` /
//! `SA_NOCLDWAIT` on SIGCHLD (the kernel would then reap by itself).

use nix::errno::Errno;

use crate::os::sys::Pid;
use crate::spec::ExitStatus;

/// Whether any child is left after a [`drain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remaining {
    /// Children exist that have not exited yet.
    Some,
    /// No children at all (`ECHILD`): every child and adopted orphan is reaped.
    None,
}

/// Reaps every child that has exited, calling `on_exit(pid, status)` for each one while it
/// is still a zombie, then reaping it.
///
/// Returns [`Remaining::None`] once vigil has no children left at all, else
/// [`Remaining::Some`]. Never blocks. `EINTR` is retried; any other error (which the
/// kernel does not produce for these arguments) is returned after the exits already
/// reported.
pub fn drain(on_exit: &mut dyn FnMut(Pid, ExitStatus)) -> nix::Result<Remaining> {
    loop {
        let (pid, status) = match next()? {
            Next::Exited(pid, status) => (pid, status),
            Next::Running => return Ok(Remaining::Some),
            Next::NoChildren => return Ok(Remaining::None),
        };
        on_exit(pid, status);
        reap(pid)?;
    }
}

/// The next child that has exited, still a zombie (its pid and process group id stay
/// reserved until [`reap`]), or `None` when none has. Never blocks. With [`reap`], the
/// loop's way of draining: each exit is handled completely (the engine's actions carried
/// out) while its process is still a zombie. Call [`reap`] for the pid before peeking
/// again, or the same zombie comes back.
pub fn peek() -> nix::Result<Option<(Pid, ExitStatus)>> {
    Ok(match next()? {
        Next::Exited(pid, status) => Some((pid, status)),
        Next::Running | Next::NoChildren => None,
    })
}

/// What a peek found.
enum Next {
    /// This child has exited; it is still a zombie.
    Exited(Pid, ExitStatus),
    /// Children exist, none has exited.
    Running,
    /// No children at all (`ECHILD`).
    NoChildren,
}

/// Peeks without reaping (`WNOWAIT`): the zombie keeps its pid and pgid reserved.
#[expect(
    clippy::disallowed_methods,
    reason = "the reaper is the sole owner of wait status"
)]
fn next() -> nix::Result<Next> {
    use crate::os::sys::waitid_exited;
    loop {
        return match waitid_exited(None, true) {
            Ok(Some((pid, status))) => {
                #[cfg(debug_assertions)]
                crate::fatal::test_panic_on_exit(pid, status);
                Ok(Next::Exited(pid, status))
            }
            Ok(None) => Ok(Next::Running),
            Err(Errno::ECHILD) => Ok(Next::NoChildren),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(e),
        };
    }
}

/// Reaps the zombie `pid` that [`peek`] returned. Cannot block (WNOHANG).
#[expect(
    clippy::disallowed_methods,
    reason = "the reaper is the sole owner of wait status"
)]
pub fn reap(pid: Pid) -> nix::Result<()> {
    use crate::os::sys::waitid_exited;
    loop {
        match waitid_exited(Some(pid), false) {
            Ok(_) | Err(Errno::ECHILD) => {
                // Gone: the panic hook must not kill its (reusable) process group any more.
                crate::fatal::forget_live_group(pid);
                return Ok(());
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
