//! The last act before vigil exits: stop every descendant still alive.
//!
//! When the tree (or `vigil exec`'s child) is gone, daemons it double-forked, leftover
//! workers and orphans may remain. tini and dumb-init exit and leave them to the kernel's
//! SIGKILL; vigil stops them in order: SIGTERM (and SIGCONT, so stopped processes can act
//! on it) to every descendant, wait until none is left or the grace has passed, then
//! SIGKILL to whatever remains, and wait until none is left. Exiting as soon as vigil has
//! no children left (the reaper reports `ECHILD`); never a fixed sleep.
//!
//! Descendants are found in `/proc`: every process whose parent chain reaches vigil
//! (as PID 1, that is every other process in the namespace). Processes that are not
//! vigil's direct children yet still get the signal; only direct children can be reaped
//! by vigil, which is why "none left" is the reaper's `Remaining::None`.
//!
//! Must never: signal anything that is not a descendant (the `/proc` in view must be
//! vigil's own PID namespace's, else nothing is scanned), poll, or sleep for a fixed time.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::reaper::{self, Remaining};
use super::signals::{self, Signals};
use crate::spec::{ExitStatus, Signal};
use crate::sys::{self, Pid};

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
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(ppid) = parse_ppid(&stat)
        {
            parent.insert(pid, ppid);
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

/// The ppid field of a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`, where comm
/// may itself contain spaces and parentheses (so parse from the last `)`).
fn parse_ppid(stat: &str) -> Option<Pid> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
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

/// Sends `sig` to each pid; returns how many were signalled (gone ones are skipped).
pub fn signal_all(pids: &[Pid], sig: Signal) -> usize {
    pids.iter()
        .filter(|&&pid| match sys::kill(pid, sig) {
            Ok(()) => true,
            Err(e) => {
                if e.raw_os_error() != Some(libc::ESRCH) {
                    debug!(pid, signal = %sig, "cannot signal descendant: {e}");
                }
                false
            }
        })
        .count()
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
}

/// Stops every remaining descendant: SIGTERM (+ SIGCONT) to all of them, wait until vigil
/// has no children left or `grace` has passed, then SIGKILL to whatever remains and wait
/// until no child is left. Returns as soon as the reaper reports no children.
///
/// `signals` must include SIGCHLD: the sweep wakes only on SIGCHLD or the grace deadline.
/// SIGTERM, SIGINT or SIGQUIT during the grace ends it at once (SIGKILL follows); other
/// signals that arrive meanwhile are logged and dropped. Every exit reaped is
/// passed to `on_exit`. Must run inside the tokio runtime (it uses its timer).
pub async fn sweep(
    signals: &mut Signals,
    grace: Duration,
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

    let targets = descendants();
    report.terminated = if targets.is_empty() && sys::is_pid1() {
        // No usable /proc: as PID 1, "every other process" is exactly the descendants.
        kill_namespace(signals::TERM);
        kill_namespace(signals::CONT);
        0
    } else {
        let n = signal_all(&targets, signals::TERM);
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
    loop {
        if reap(&mut report) {
            return report;
        }
        tokio::select! {
            sig = signals.recv() => {
                if [signals::TERM, signals::INT, signals::QUIT].contains(&sig) {
                    // Someone wants vigil gone now: skip the rest of the grace.
                    warn!(signal = %sig, "sweep: stop signal during the grace; killing what is left");
                    break;
                }
                note_other(sig);
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }

    // Phase 2: SIGKILL whatever is left, again on every SIGCHLD for processes forked
    // meanwhile, until no child is left.
    let mut killed: HashSet<Pid> = HashSet::new();
    let mut announced = false;
    loop {
        let targets = descendants();
        if targets.is_empty() && sys::is_pid1() && killed.is_empty() {
            kill_namespace(signals::KILL);
        }
        let fresh: Vec<Pid> = targets
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        report.killed += signal_all(&fresh, signals::KILL);
        killed.extend(fresh);
        if !announced {
            announced = true;
            warn!(
                killed = report.killed,
                "sweep: grace over, sent SIGKILL to remaining descendants"
            );
        }
        if reap(&mut report) {
            return report;
        }
        loop {
            let sig = signals.recv().await;
            if sig == signals::CHLD {
                break;
            }
            note_other(sig);
        }
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
    fn parses_ppid_even_with_odd_process_names() {
        assert_eq!(parse_ppid("42 (sleep) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("42 (a) b (c)) R 9 1 1"), Some(9));
        assert_eq!(parse_ppid("42 (my prog) Z 1 0"), Some(1));
        assert_eq!(parse_ppid("garbage"), None);
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
