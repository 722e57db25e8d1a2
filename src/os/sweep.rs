//! The last act before vigil exits: stop every descendant still alive.
//!
//! When the tree (or `vigil exec`'s child) is gone, daemons it double-forked, leftover
//! workers and orphans may remain. tini and dumb-init exit and leave them to the kernel's
//! SIGKILL; vigil stops them in order: SIGTERM (and SIGCONT, so stopped processes can act
//! on it) to every descendant, wait until none is left or the grace has passed, then
//! SIGKILL to whatever remains, and wait until none is left, but at most [`KILL_WAIT`]
//! (3 s). Exiting as soon as vigil has no children left (the reaper reports `ECHILD`);
//! never a fixed sleep.
//!
//! The wait after SIGKILL is bounded because SIGKILL does not always end a process:
//! one in uninterruptible sleep (state D, a hung disk or network filesystem) dies only
//! when that wait ends; a non-root vigil may not signal a descendant that became another
//! user (a set-user-ID program: EPERM); and a vigil that is not PID 1 and sees the `/proc`
//! of another PID namespace cannot list its descendants at all. In each case the sweep
//! logs which pids are left and why, and returns. A stop signal (SIGTERM, SIGINT,
//! SIGQUIT) during the grace skips to SIGKILL; one during the wait after SIGKILL ends the
//! sweep at once.
//!
//! Descendants are found in `/proc`: every process whose parent chain reaches vigil
//! (as PID 1, that is every other process in the namespace). Processes that are not
//! vigil's direct children yet still get the signal; only direct children can be reaped
//! by vigil, which is why "none left" is the reaper's `Remaining::None`.
//!
//! Must never: signal anything that is not a descendant (the `/proc` in view must be
//! vigil's own PID namespace's, else nothing is scanned), poll, sleep for a fixed time,
//! or wait without a bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::procfs;
use super::reaper::{self, Remaining};
use super::signals::{self, Signals};
use crate::os::sys::{self, Pid};
use crate::spec::{ExitStatus, Signal};

/// Every live process whose parent chain reaches vigil, in pid order (zombies included).
///
/// Returns nothing if `/proc` cannot be read or belongs to another PID namespace (its
/// `/proc/self` is not vigil's pid), so vigil never signals a stranger.
pub fn descendants() -> Vec<Pid> {
    let me = std::process::id() as Pid;
    if !proc_is_ours(me) {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent: HashMap<Pid, Pid> = HashMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<Pid>().ok())
        else {
            continue;
        };
        // A process may exit between readdir and read: skip it.
        if let Some(st) = procfs::stat(pid) {
            parent.insert(pid, st.ppid);
        }
    }
    descendants_of(me, &parent)
}

/// Whether `/proc` shows vigil's own PID namespace.
fn proc_is_ours(me: Pid) -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<Pid>().ok()))
        == Some(me)
}

/// Every pid in `parent` whose chain of parents reaches `root` (excluding `root`), sorted.
fn descendants_of(root: Pid, parent: &HashMap<Pid, Pid>) -> Vec<Pid> {
    let mut known: HashMap<Pid, bool> = HashMap::new();
    let mut out = Vec::new();
    for &pid in parent.keys() {
        if pid == root {
            continue;
        }
        // Walk up until the answer is known, then record it for the whole path.
        let mut path = Vec::new();
        let mut cur = pid;
        let answer = loop {
            if cur == root {
                break true;
            }
            if let Some(&k) = known.get(&cur) {
                break k;
            }
            // Guard against cycles from racing reads (pids reused mid-scan).
            if path.len() > parent.len() {
                break false;
            }
            path.push(cur);
            match parent.get(&cur) {
                Some(&p) if p > 0 => cur = p,
                _ => break false,
            }
        };
        for p in path {
            known.insert(p, answer);
        }
        if answer {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// How long the sweep waits, after it has sent SIGKILL, for the last descendants to be
/// reaped before it gives up on them, says which are left and why, and returns: 3
/// seconds. SIGKILL ends any process that can be ended within milliseconds, even on a
/// loaded machine; what is still there after 3 s is stuck (see the module documentation)
/// and would keep vigil, and the container or unit, from ever exiting.
pub const KILL_WAIT: Duration = Duration::from_secs(3);

/// [`KILL_WAIT`], except in debug builds with the test-only variable
/// `VIGIL_TEST_KILL_WAIT` (a duration such as `60s`) in vigil's environment: the
/// integration tests lengthen the wait to signal vigil during it without a race against
/// 3 s. Release builds always use [`KILL_WAIT`].
fn kill_wait() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(d) = std::env::var("VIGIL_TEST_KILL_WAIT")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
    {
        return d;
    }
    KILL_WAIT
}

/// At most this many leftover descendants are logged one by one.
const MAX_LISTED: usize = 20;

/// Sends `sig` to each pid; returns how many were signalled (gone ones are skipped).
pub fn signal_all(pids: &[Pid], sig: Signal) -> usize {
    signal_each(pids, sig, &mut HashSet::new())
}

/// [`signal_all`], adding to `refused` every pid vigil may not signal (EPERM).
fn signal_each(pids: &[Pid], sig: Signal, refused: &mut HashSet<Pid>) -> usize {
    pids.iter()
        .filter(|&&pid| match sys::kill(pid, sig) {
            Ok(()) => true,
            Err(e) => {
                if e.raw_os_error() == Some(libc::EPERM) {
                    refused.insert(pid);
                }
                if e.raw_os_error() != Some(libc::ESRCH) {
                    debug!(pid, signal = %sig, "cannot signal descendant: {e}");
                }
                false
            }
        })
        .count()
}

/// SIGKILLs every descendant at once, without waiting (as PID 1 with no usable `/proc`:
/// every other process of the namespace). For a caller that can no longer wait for
/// exits (its signals failed). Returns how many were signalled.
pub fn kill_all_now() -> usize {
    let targets = descendants();
    if targets.is_empty() && sys::is_pid1() {
        kill_namespace(signals::KILL);
        return 0;
    }
    signal_all(&targets, signals::KILL)
}

/// How a [`sweep`] ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SweepEnd {
    /// No child was left (the usual end).
    #[default]
    AllReaped,
    /// Children were still there [`KILL_WAIT`] after SIGKILL.
    TimedOut,
    /// A stop signal arrived while the sweep waited after SIGKILL.
    StopSignal,
    /// The signals could no longer be read; what was left got SIGKILL, without waiting.
    SignalsFailed,
}

/// What a [`sweep`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Descendants sent SIGTERM.
    pub terminated: usize,
    /// Descendants sent SIGKILL after the grace.
    pub killed: usize,
    /// Processes reaped during the sweep.
    pub reaped: usize,
    /// Descendants `/proc` still listed when the sweep gave up (0 when it did not, or
    /// when `/proc` cannot list them).
    pub left: usize,
    /// How it ended.
    pub end: SweepEnd,
}

/// Stops every remaining descendant: SIGTERM (+ SIGCONT) to all of them, wait until vigil
/// has no children left or `grace` has passed, then SIGKILL to whatever remains and wait
/// until no child is left, at most [`KILL_WAIT`]. Returns as soon as the reaper reports
/// no children, or when the wait after SIGKILL ends, after logging which descendants
/// are left and why.
///
/// `signals` must include SIGCHLD: the sweep wakes only on SIGCHLD or its deadlines.
/// SIGTERM, SIGINT or SIGQUIT during the grace ends the grace at once (SIGKILL follows);
/// during the wait after SIGKILL it ends the sweep at once. Other signals that arrive
/// meanwhile are logged and dropped. If the signals cannot be read, what is left gets
/// SIGKILL and the sweep returns without waiting. Every exit reaped is passed to
/// `on_exit`. Must run inside the tokio runtime (it uses its timer).
///
/// `wait_cap` bounds the wait after SIGKILL below [`KILL_WAIT`] (`vigil run` passes what
/// is left of `shutdown_timeout`, so that the timeout is a promise).
pub async fn sweep(
    signals: &mut Signals,
    grace: Duration,
    wait_cap: Duration,
    on_exit: &mut dyn FnMut(Pid, ExitStatus),
) -> SweepReport {
    let mut report = SweepReport::default();
    let mut reap = |report: &mut SweepReport| -> bool {
        let mut count = 0;
        let result = reaper::drain(&mut |pid, status| {
            count += 1;
            on_exit(pid, status);
        });
        report.reaped += count;
        match result {
            Ok(Remaining::None) => true,
            Ok(Remaining::Some) => false,
            Err(e) => {
                error!("reaping failed during the sweep: {e}");
                false
            }
        }
    };
    if reap(&mut report) {
        return report;
    }

    let mut refused: HashSet<Pid> = HashSet::new();
    let targets = descendants();
    report.terminated = if targets.is_empty() && sys::is_pid1() {
        // No usable /proc: as PID 1, "every other process" is exactly the descendants.
        kill_namespace(signals::TERM);
        kill_namespace(signals::CONT);
        0
    } else {
        let n = signal_each(&targets, signals::TERM, &mut refused);
        signal_all(&targets, signals::CONT);
        n
    };
    info!(
        signalled = report.terminated,
        grace = %crate::spec::humanize(grace),
        "sweep: sent SIGTERM to remaining descendants"
    );

    // Phase 1: wait for them to go, until the grace deadline.
    let deadline = tokio::time::Instant::now() + grace;
    let mut signals_ok = true;
    loop {
        if reap(&mut report) {
            return report;
        }
        tokio::select! {
            sig = signals.recv() => match sig {
                Ok(sig) if is_stop(sig) => {
                    // Someone wants vigil gone now: skip the rest of the grace.
                    warn!(signal = %sig, "sweep: stop signal during the grace; killing what is left");
                    break;
                }
                Ok(sig) => note_other(sig),
                Err(e) => {
                    error!("sweep: {e}; killing what is left without waiting for it");
                    signals_ok = false;
                    break;
                }
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }

    // Phase 2: SIGKILL whatever is left, again on every SIGCHLD for processes forked
    // meanwhile, until no child is left or KILL_WAIT has passed.
    let mut killed: HashSet<Pid> = HashSet::new();
    let wait = kill_wait().min(wait_cap);
    let deadline = tokio::time::Instant::now() + wait;
    let mut kill_fresh = |report: &mut SweepReport, refused: &mut HashSet<Pid>| {
        let targets = descendants();
        if targets.is_empty() && sys::is_pid1() && killed.is_empty() {
            kill_namespace(signals::KILL);
        }
        let fresh: Vec<Pid> = targets
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        report.killed += signal_each(&fresh, signals::KILL, refused);
        killed.extend(fresh);
    };
    kill_fresh(&mut report, &mut refused);
    warn!(
        killed = report.killed,
        wait = %crate::spec::humanize(wait),
        "sweep: grace over, sent SIGKILL to remaining descendants"
    );
    let end = loop {
        if reap(&mut report) {
            return report;
        }
        if !signals_ok {
            break SweepEnd::SignalsFailed;
        }
        tokio::select! {
            sig = signals.recv() => match sig {
                Ok(signals::CHLD) => kill_fresh(&mut report, &mut refused),
                Ok(sig) if is_stop(sig) => {
                    kill_fresh(&mut report, &mut refused);
                    if reap(&mut report) {
                        return report;
                    }
                    warn!(signal = %sig, "sweep: stop signal while waiting for the last descendants; not waiting any longer");
                    break SweepEnd::StopSignal;
                }
                Ok(sig) => note_other(sig),
                Err(e) => {
                    error!("sweep: {e}; not waiting for the last descendants");
                    kill_fresh(&mut report, &mut refused);
                    signals_ok = false;
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                if reap(&mut report) {
                    return report;
                }
                break SweepEnd::TimedOut;
            }
        }
    };
    report.end = end;
    report.left = report_left(end, wait, &refused);
    report
}

fn is_stop(sig: Signal) -> bool {
    [signals::TERM, signals::INT, signals::QUIT].contains(&sig)
}

/// Logs which descendants the sweep leaves behind, and why; returns how many `/proc`
/// lists.
fn report_left(end: SweepEnd, wait: Duration, refused: &HashSet<Pid>) -> usize {
    let left = descendants();
    let me = std::process::id() as Pid;
    for &pid in left.iter().take(MAX_LISTED) {
        let state = procfs::stat(pid).map(|s| s.state);
        warn!(
            pid,
            state = %state.map_or_else(|| "gone".to_string(), String::from),
            "sweep: descendant left behind: {}",
            why_left(state, refused.contains(&pid))
        );
    }
    if left.len() > MAX_LISTED {
        warn!(
            "sweep: and {} more descendants left behind",
            left.len() - MAX_LISTED
        );
    }
    if left.is_empty() {
        if proc_is_ours(me) {
            warn!("sweep: vigil still has children that /proc does not list");
        } else {
            warn!(
                "sweep: vigil still has children but cannot list or signal them: the /proc it \
                 sees belongs to another PID namespace; mount that namespace's own /proc (e.g. \
                 `unshare --pid --fork --mount-proc`), or run vigil as its PID 1"
            );
        }
    }
    let why = match end {
        SweepEnd::AllReaped => "",
        SweepEnd::TimedOut => "they did not go within the wait after SIGKILL",
        SweepEnd::StopSignal => "a stop signal asked vigil not to wait",
        SweepEnd::SignalsFailed => "vigil can no longer see them exit",
    };
    let after = if sys::is_pid1() {
        "the kernel kills it as vigil, PID 1, exits"
    } else {
        "it is reparented to the init of vigil's PID namespace when vigil exits"
    };
    error!(
        left = left.len(),
        wait = %crate::spec::humanize(wait),
        "sweep: exiting without waiting for what is left ({why}); {after}"
    );
    left.len()
}

/// Why a descendant is still there after SIGKILL, from its state letter in
/// `/proc/<pid>/stat` (`None`: gone by now) and whether vigil was refused the right to
/// signal it.
fn why_left(state: Option<char>, refused: bool) -> &'static str {
    if refused {
        return "vigil may not signal it (EPERM): it runs as another user, e.g. a \
                set-user-ID program, and vigil is not root";
    }
    match state {
        None => "it has just exited",
        Some('D') => {
            "it is in uninterruptible sleep (state D), usually waiting on a disk or a \
             network filesystem; SIGKILL takes effect when that wait ends"
        }
        Some('Z') => "it is a zombie its own parent (another descendant) has not reaped",
        Some(_) => "it did not exit after SIGKILL (yet)",
    }
}

fn note_other(sig: Signal) {
    if sig != signals::CHLD {
        debug!(signal = %sig, "signal ignored: descendants are being stopped");
    }
}

fn kill_namespace(sig: Signal) {
    if let Err(e) = sys::kill_all_in_namespace(sig) {
        debug!(signal = %sig, "kill(-1) failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why_a_descendant_is_left_behind() {
        assert!(why_left(Some('S'), true).contains("EPERM"));
        assert!(why_left(Some('D'), false).contains("uninterruptible"));
        assert!(why_left(Some('Z'), false).contains("zombie"));
        assert!(why_left(Some('R'), false).contains("did not exit"));
        assert!(why_left(None, false).contains("exited"));
    }
    #[test]
    fn finds_descendants_through_any_depth_only() {
        // 10 is "us"; 11, 12 children; 13 grandchild via 12; 14 great-grandchild;
        // 20 unrelated with its own child 21; 30 a cycle that must not loop.
        let parent: HashMap<Pid, Pid> = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 12),
            (14, 13),
            (20, 1),
            (21, 20),
            (30, 31),
            (31, 30),
        ]
        .into_iter()
        .collect();
        assert_eq!(descendants_of(10, &parent), vec![11, 12, 13, 14]);
        assert_eq!(descendants_of(1, &parent), vec![10, 11, 12, 13, 14, 20, 21]);
    }

    #[test]
    fn the_test_process_has_no_stray_descendants_listed_wrongly() {
        // Every listed pid really has us in its parent chain (live check on /proc).
        for pid in descendants() {
            assert_ne!(pid, std::process::id() as Pid);
        }
    }
}
