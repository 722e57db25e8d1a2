//! What vigil does when it cannot go on: a panic, or an error that leaves the event loop
//! blind (the signal pipe cannot be read). Both end vigil with exit code 70
//! ([`exit::INTERNAL`]), as the exit-code table promises, never 101 (an unwinding panic)
//! or 134 (the release profile's `panic = "abort"`).
//!
//! - [`install_panic_hook`], first thing in `main`: on a panic, on any thread, the hook
//!   writes the panic message to stderr, SIGKILLs the process group of every child vigil
//!   knows to be live, and `_exit(70)`s. It runs before std unwinds or aborts, so the
//!   `_exit` wins in both profiles.
//! - [`die`]: the same for a fatal error that is not a panic.
//! - The registry of live process groups: [`register_live_group`] right after each
//!   successful spawn (`os::spawn`), [`forget_live_group`] when the reaper reaps the
//!   pid (`os::reaper`). A fixed table of atomics, so that the hook reads it
//!   without a lock (a lock held by the panicking thread would block it for ever) and
//!   without allocating.
//!
//! Must never (in the hook and [`die`]): allocate, take a lock, block, or run vigil's
//! ordinary code paths (logging, destructors): the state they rely on may be what broke.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::exit;
use crate::os::sys::{self, Pid};
use crate::spec::Signal;

/// How many live process groups the registry holds (16 KiB). Children beyond it are
/// counted but not killed by the hook; each still gets SIGKILL from the kernel when vigil
/// exits (its parent-death signal), only the rest of its group does not.
pub const LIVE_GROUP_SLOTS: usize = 4096;

/// Pids (= process group ids) of live children; 0 is a free slot.
static LIVE_GROUPS: [AtomicI32; LIVE_GROUP_SLOTS] = [const { AtomicI32::new(0) }; LIVE_GROUP_SLOTS];

/// Slots `0..HIGH_WATER` may be in use: readers scan no further.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// Children that found the table full (never decremented: an upper bound).
static OVERFLOWED: AtomicUsize = AtomicUsize::new(0);

/// Records `pid`, a child just spawned in a process group of its own, as live.
pub fn register_live_group(pid: Pid) {
    if pid <= 1 {
        return;
    }
    for (i, slot) in LIVE_GROUPS.iter().enumerate() {
        if slot
            .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            HIGH_WATER.fetch_max(i + 1, Ordering::SeqCst);
            return;
        }
    }
    OVERFLOWED.fetch_add(1, Ordering::SeqCst);
}

/// Forgets `pid` once it is reaped (a pid vigil never registered, an adopted orphan, is
/// simply not found). Never blocks or panics: it runs on the reap path.
pub fn forget_live_group(pid: Pid) {
    if pid <= 1 {
        return;
    }
    let end = HIGH_WATER.load(Ordering::SeqCst).min(LIVE_GROUP_SLOTS);
    for slot in &LIVE_GROUPS[..end] {
        if slot
            .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

/// The process groups registered as live right now (for tests and diagnostics).
pub fn live_groups() -> Vec<Pid> {
    let end = HIGH_WATER.load(Ordering::SeqCst).min(LIVE_GROUP_SLOTS);
    LIVE_GROUPS[..end]
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&p| p > 1)
        .collect()
}

/// SIGKILLs every registered live process group; returns how many were signalled.
/// Lock-free and allocation-free.
fn kill_live_groups() -> usize {
    let end = HIGH_WATER.load(Ordering::SeqCst).min(LIVE_GROUP_SLOTS);
    LIVE_GROUPS[..end]
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&p| p > 1 && sys::killpg(p, Signal::KILL).is_ok())
        .count()
}

/// Installs the panic hook (see the module documentation). Call it first thing in
/// `main`, for every command.
///
/// In debug builds only, it also reads the test-only variable
/// `VIGIL_TEST_PANIC_ON_EXIT_CODE` (see [`test_panic_on_exit`]); release builds have no
/// such trigger.
pub fn install_panic_hook() {
    #[cfg(debug_assertions)]
    if let Some(code) = std::env::var("VIGIL_TEST_PANIC_ON_EXIT_CODE")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
    {
        TEST_PANIC_EXIT_CODE.store(code, Ordering::SeqCst);
    }
    std::panic::set_hook(Box::new(|info| {
        end(format_args!("internal error: {info}"), true);
    }));
}

/// Ends vigil because of a fatal error that is not a panic: `what` on stderr, SIGKILL to
/// the process group of every live child, exit 70. For callers that cannot stop the tree
/// in order any more.
pub fn die(what: fmt::Arguments<'_>) -> ! {
    end(format_args!("fatal error: {what}"), false)
}

fn end(what: fmt::Arguments<'_>, bug: bool) -> ! {
    // Kill first: a stderr nobody reads may block the writes below, and the children must
    // not outlive vigil's failure whatever happens to its log.
    let killed = kill_live_groups();
    let mut line = StackText::new();
    let _ = writeln!(line, "vigil: {what}");
    sys::write_stderr(line.as_bytes());
    let overflowed = OVERFLOWED.load(Ordering::SeqCst);
    let mut line = StackText::new();
    let _ = write!(
        line,
        "vigil: sent SIGKILL to the process groups of {killed} live children"
    );
    if overflowed > 0 {
        let _ = write!(
            line,
            " (up to {overflowed} more were beyond the table of {LIVE_GROUP_SLOTS} and get \
             SIGKILL from the kernel as vigil exits, without the rest of their group)"
        );
    }
    let _ = write!(line, "; exiting with {} (internal error)", exit::INTERNAL);
    if bug {
        let _ = write!(
            line,
            ". This is a bug in vigil: please report it with the lines above"
        );
    }
    let _ = writeln!(line);
    sys::write_stderr(line.as_bytes());
    sys::exit_now(exit::INTERNAL)
}

/// A line formatted on the stack: text beyond its capacity is cut off, never allocated.
struct StackText {
    buf: [u8; 1024],
    len: usize,
}

impl StackText {
    fn new() -> StackText {
        StackText {
            buf: [0; 1024],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        // Keep formatting (and dropping) the rest: a cut-off message beats none.
        Ok(())
    }
}

/// The exit code that makes [`test_panic_on_exit`] panic; -1: never.
#[cfg(debug_assertions)]
static TEST_PANIC_EXIT_CODE: AtomicI32 = AtomicI32::new(-1);

/// **Test-only, debug builds only**: production code has no panic that a test can
/// trigger, so with `VIGIL_TEST_PANIC_ON_EXIT_CODE=N` in vigil's environment the reaper
/// panics when it reports a process that exited with code `N` (before it is reaped, as a
/// panic in the engine's handling of that exit would). The integration tests use it to
/// check that a panic exits 70 and kills the children's groups. The variable is read
/// once, by [`install_panic_hook`]; release builds do not contain this function.
#[cfg(debug_assertions)]
pub fn test_panic_on_exit(pid: Pid, status: crate::spec::ExitStatus) {
    let want = TEST_PANIC_EXIT_CODE.load(Ordering::SeqCst);
    if want >= 0 && status == crate::spec::ExitStatus::Code(want) {
        panic!("test-only panic (VIGIL_TEST_PANIC_ON_EXIT_CODE={want}): pid {pid} exited {want}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_adds_and_forgets_and_ignores_bad_pids() {
        // Pids no test process has (above pid_max's default of 4 million is not
        // guaranteed, so these are only ever compared, never signalled).
        let (a, b) = (2_000_000_001, 2_000_000_002);
        register_live_group(a);
        register_live_group(b);
        register_live_group(1);
        register_live_group(0);
        let live = live_groups();
        assert!(live.contains(&a) && live.contains(&b), "{live:?}");
        assert!(!live.contains(&1) && !live.contains(&0));
        forget_live_group(a);
        forget_live_group(42); // never registered: nothing happens
        let live = live_groups();
        assert!(!live.contains(&a) && live.contains(&b), "{live:?}");
        forget_live_group(b);
        assert!(!live_groups().contains(&b));
    }

    #[test]
    fn stack_text_cuts_off_instead_of_allocating() {
        let mut t = StackText::new();
        let long = "x".repeat(3000);
        write!(t, "{long}").unwrap();
        assert_eq!(t.as_bytes().len(), 1024);
        let mut t = StackText::new();
        write!(t, "pid {} exited", 42).unwrap();
        assert_eq!(t.as_bytes(), b"pid 42 exited");
    }
}
