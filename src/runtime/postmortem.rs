//! What the loop remembers about each node for `vigil status` and for post-mortems: the
//! last few exits with their times, restarts counted, and each supervisor's recent
//! restarts. When a supervisor gives up, [`History::report`] writes the short report that
//! vigil logs and, for the root, puts in the Kubernetes termination message file.
//!
//! Plain bookkeeping: bounded memory (a few entries per node), no decisions. The only
//! I/O is [`write_termination_log`].
//!
//! Two clocks: each record is stamped ([`Stamp`]) with the loop's monotonic time, the
//! engine's clock, which decides what lies inside a supervisor's period (so the report
//! counts the restarts the engine counted, whatever the wall clock did meanwhile: NTP
//! steps, a VM resumed, `date -s`), and with the wall clock, which is only printed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

use nix::fcntl::OFlag;
use std::time::{Duration, SystemTime};

use crate::core::Time;
use crate::os::dirfd;
use crate::spec::{NodeId, Tree, humanize};

/// Exits kept per node.
const EXITS_KEPT: usize = 5;
/// Restart times kept per supervisor (beyond its intensity, they cannot matter).
const RESTARTS_KEPT: usize = 16;
/// Kubernetes reads at most this many bytes of the termination message.
pub const TERMINATION_LOG_MAX: usize = 4096;

/// When something was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// On the loop's monotonic clock (`runtime::now()`): for windows.
    pub mono: Time,
    /// On the wall clock: for printing only.
    pub wall: SystemTime,
}

impl Stamp {
    /// `mono` (the loop's time of the event) with the wall clock's time now.
    pub fn at(mono: Time) -> Stamp {
        Stamp {
            mono,
            wall: SystemTime::now(),
        }
    }
}

/// One remembered end of a run.
#[derive(Clone, Debug)]
pub struct ExitRecord {
    /// When it was observed, on the wall clock (printed only).
    pub at: SystemTime,
    /// `exit code 1`, `killed by SIGKILL`, `failed to start: ...`, `gave up (...)`.
    pub what: String,
}

/// Per node.
#[derive(Clone, Debug, Default)]
struct NodeHistory {
    exits: VecDeque<ExitRecord>,
    restarts: u64,
    /// The last spawn error, for the answer to a failed `vigil start`.
    spawn_error: Option<String>,
    /// Supervisors: times and children of the last restarts counted.
    counted: VecDeque<(Stamp, NodeId)>,
    /// Supervisors: the report of the last give-up.
    report: Option<String>,
}

/// The loop's memory of every node.
#[derive(Debug)]
pub struct History {
    nodes: Vec<NodeHistory>,
}

impl History {
    /// Empty, for `tree`.
    pub fn new(tree: &Tree) -> History {
        History {
            nodes: vec![NodeHistory::default(); tree.nodes.len()],
        }
    }

    /// `node`'s run ended (`what` says how), at `at`.
    pub fn exited(&mut self, node: NodeId, what: String, at: Stamp) {
        let h = &mut self.nodes[node.index()];
        if h.exits.len() == EXITS_KEPT {
            h.exits.pop_front();
        }
        h.exits.push_back(ExitRecord { at: at.wall, what });
    }

    /// A spawn of `node` failed with `error`, at `at`.
    pub fn spawn_failed(&mut self, node: NodeId, error: &str, at: Stamp) {
        self.nodes[node.index()].spawn_error = Some(error.to_string());
        self.exited(node, format!("failed to start: {error}"), at);
    }

    /// `supervisor` counted a restart of `child` at `at` (the engine's time of it).
    pub fn restart_counted(&mut self, supervisor: NodeId, child: NodeId, at: Stamp) {
        self.nodes[child.index()].restarts += 1;
        let c = &mut self.nodes[supervisor.index()].counted;
        if c.len() == RESTARTS_KEPT {
            c.pop_front();
        }
        c.push_back((at, child));
    }

    /// Restarts of `node` counted so far.
    pub fn restarts(&self, node: NodeId) -> u64 {
        self.nodes[node.index()].restarts
    }

    /// The last exit of `node`.
    pub fn last_exit(&self, node: NodeId) -> Option<&ExitRecord> {
        self.nodes[node.index()].exits.back()
    }

    /// The last spawn error of `node`.
    pub fn spawn_error(&self, node: NodeId) -> Option<&str> {
        self.nodes[node.index()].spawn_error.as_deref()
    }

    /// Writes, remembers and returns the post-mortem of `supervisor` giving up on
    /// `offender` at `now`. When the offender is a supervisor, its own last report
    /// follows. The restarts listed are those within the period on the monotonic clock,
    /// the ones the engine counted.
    pub fn report(
        &mut self,
        tree: &Tree,
        supervisor: NodeId,
        offender: NodeId,
        now: Stamp,
    ) -> String {
        let sup = tree.node(supervisor);
        let spec = sup.as_supervisor();
        let (intensity, period) = spec.map_or((0, Duration::ZERO), |s| (s.intensity, s.period));
        let off = tree.node(offender);
        let kind = if off.as_supervisor().is_some() {
            "supervisor"
        } else {
            "process"
        };
        let mut r = String::new();
        let _ = writeln!(
            r,
            "vigil: supervisor {} gave up at {}: more than {intensity} restart{} in {}",
            sup.name,
            time(now.wall),
            if intensity == 1 { "" } else { "s" },
            humanize(period)
        );
        let _ = writeln!(
            r,
            "offender: {} ({kind}, {})",
            off.name,
            off.restart.as_str()
        );
        let h = &self.nodes[offender.index()];
        if !h.exits.is_empty() {
            let _ = writeln!(r, "last exits of {}, oldest first:", off.name);
            for e in &h.exits {
                let _ = writeln!(r, "  {}  {}", time(e.at), e.what);
            }
        }
        let counted: Vec<&(Stamp, NodeId)> = self.nodes[supervisor.index()]
            .counted
            .iter()
            .filter(|(t, _)| now.mono.saturating_duration_since(t.mono) <= period)
            .collect();
        let _ = writeln!(
            r,
            "restarts counted by {} in the last {}: {} (intensity {intensity})",
            sup.name,
            humanize(period),
            counted.len()
        );
        for (t, c) in counted {
            let _ = writeln!(r, "  {}  {}", time(t.wall), tree.node(*c).name);
        }
        if let Some(inner) = self.nodes[offender.index()].report.as_deref() {
            let _ = write!(r, "before that, {inner}");
        }
        self.nodes[supervisor.index()].report = Some(r.clone());
        r
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Writes `report` (cut to [`TERMINATION_LOG_MAX`] bytes) to `path`. `create`: make the
/// file if it does not exist (a configured path); otherwise (the default
/// `/dev/termination-log`) write only to a file that already exists.
///
/// The file is opened as [`crate::os::dirfd`] does (no symbolic link that another user
/// could have made is followed, only a regular file with one name is written), in a
/// directory that only root or vigil's user can write, and truncated only once checked:
/// a child cannot get vigil to truncate or write any other file. A missing file or
/// directory is `NotFound`.
pub fn write_termination_log(path: &Path, create: bool, report: &str) -> io::Result<()> {
    let mut end = report.len().min(TERMINATION_LOG_MAX);
    while !report.is_char_boundary(end) {
        end -= 1;
    }
    let (dir_path, name) = dirfd::split(path)?;
    let dir = dirfd::open_dir(dir_path, false)?;
    if let Some(why) = dir.others_can_write(false)? {
        return Err(shared_directory(dir_path, &why));
    }
    let extra = if create {
        OFlag::O_CREAT
    } else {
        OFlag::empty()
    };
    let mut f = dir.open_regular(name, extra, 0o644)?;
    f.set_len(0)?;
    f.write_all(&report.as_bytes()[..end])
}

/// At start-up, for a configured `termination_log`: refuses (with the fix) a directory
/// that another user than root or vigil's can write, so the problem shows before anything
/// runs rather than when the tree gives up. A directory that does not exist yet is left
/// to the write.
pub fn check_termination_log(path: &Path) -> Result<(), String> {
    let refused = |e: io::Error| {
        format!(
            "cannot use termination_log `{}`: {e}; set termination_log to a file in a \
             directory that only root or vigil's user can write",
            path.display()
        )
    };
    let (dir_path, _) = dirfd::split(path).map_err(refused)?;
    let dir = match dirfd::open_dir(dir_path, false) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refused(e)),
    };
    match dir.others_can_write(false).map_err(refused)? {
        Some(why) => Err(refused(shared_directory(dir_path, &why))),
        None => Ok(()),
    }
}

fn shared_directory(dir: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "its directory {} {why}, so another user could replace the file with a link to one \
             vigil must not write (make the directory belong to root or vigil's user and \
             writable only by its owner)",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree whose root allows 3 restarts in 5 s, with one process `web`.
    fn tree() -> Tree {
        let toml = "intensity = 3\nperiod = \"5s\"\nchildren = [\"web\"]\n\
                    [process.web]\ncommand = [\"web\"]\n";
        crate::config::parse(toml, Path::new("t.toml"))
            .expect("a valid tree")
            .tree
    }

    /// A stamp `mono_ms` into the run, with the wall clock at `wall_s` seconds of epoch.
    fn stamp(mono_ms: u64, wall_s: u64) -> Stamp {
        Stamp {
            mono: Time::from_origin(Duration::from_millis(mono_ms)),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(wall_s),
        }
    }

    /// Three restarts 1 s apart, then the give-up 1 s after the last, while the wall
    /// clock jumps by an hour (forwards: an NTP step, a resumed VM; backwards: `date -s`).
    /// The report counts and lists the three restarts the engine counted, whatever the
    /// jump. Before, the window was taken on the wall clock: forwards it said
    /// "restarts counted ...: 0 (intensity 3)" in the report of a supervisor that had
    /// just given up for more than 3.
    #[test]
    fn the_window_is_on_the_monotonic_clock_whatever_the_wall_clock_does() {
        let t = tree();
        let web = t.ids().find(|&id| t.node(id).name == "web").unwrap();
        let base = 1_800_000_000;
        for jump in [3600_i64, -3600, 0] {
            let mut h = History::new(&t);
            for i in 0..3 {
                h.exited(web, "exit code 1".into(), stamp(i * 1000, base + i));
                h.restart_counted(NodeId::ROOT, web, stamp(i * 1000, base + i));
            }
            // A restart 10 s before, outside the window however the wall clock moved.
            let mut old = History::new(&t);
            old.restart_counted(NodeId::ROOT, web, stamp(0, base));
            let now = stamp(3000, base.saturating_add_signed(3 + jump));
            let r = h.report(&t, NodeId::ROOT, web, now);
            assert!(
                r.contains("restarts counted by root in the last 5s: 3 (intensity 3)"),
                "jump {jump}: {r}"
            );
            for i in 0..3 {
                let wall = time(SystemTime::UNIX_EPOCH + Duration::from_secs(base + i));
                assert!(r.contains(&format!("  {wall}  web")), "jump {jump}: {r}");
            }
            assert!(r.contains(&time(now.wall)), "{r}");
            let r = old.report(&t, NodeId::ROOT, web, stamp(10_001, base + 10 - 3600));
            assert!(
                r.contains("in the last 5s: 0 (intensity 3)"),
                "jump {jump}: {r}"
            );
        }
    }

    #[test]
    fn termination_log_is_cut_at_4096_bytes_on_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let long = "é".repeat(3000);
        write_termination_log(&p, true, &long).unwrap();
        let got = std::fs::read_to_string(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(long.starts_with(&got));
        // Not created when asked not to.
        let q = dir.path().join("absent");
        assert!(write_termination_log(&q, false, "x").is_err());
        assert!(!q.exists());
    }
}
