//! What the loop remembers about each node for `vigil status` and for post-mortems: the
//! last few exits with their times, restarts counted, and each supervisor's recent
//! restarts. When a supervisor gives up, [`History::report`] writes the short report that
//! vigil logs and, for the root, puts in the Kubernetes termination message file.
//!
//! Plain bookkeeping: bounded memory (a few entries per node), no decisions. The only
//! I/O is [`write_termination_log`].

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;

use nix::fcntl::OFlag;
use std::time::{Duration, SystemTime};

use crate::os::dirfd;
use crate::spec::{NodeId, Tree, humanize};

/// Exits kept per node.
const EXITS_KEPT: usize = 5;
/// Restart times kept per supervisor (beyond its intensity, they cannot matter).
const RESTARTS_KEPT: usize = 16;
/// Kubernetes reads at most this many bytes of the termination message.
pub const TERMINATION_LOG_MAX: usize = 4096;

/// One remembered end of a run.
#[derive(Clone, Debug)]
pub struct ExitRecord {
    /// When it was observed.
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
    counted: VecDeque<(SystemTime, NodeId)>,
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

    /// `node`'s run ended (`what` says how).
    pub fn exited(&mut self, node: NodeId, what: String) {
        let h = &mut self.nodes[node.index()];
        if h.exits.len() == EXITS_KEPT {
            h.exits.pop_front();
        }
        h.exits.push_back(ExitRecord {
            at: SystemTime::now(),
            what,
        });
    }

    /// A spawn of `node` failed with `error`.
    pub fn spawn_failed(&mut self, node: NodeId, error: &str) {
        self.nodes[node.index()].spawn_error = Some(error.to_string());
        self.exited(node, format!("failed to start: {error}"));
    }

    /// `supervisor` counted a restart of `child`.
    pub fn restart_counted(&mut self, supervisor: NodeId, child: NodeId) {
        self.nodes[child.index()].restarts += 1;
        let c = &mut self.nodes[supervisor.index()].counted;
        if c.len() == RESTARTS_KEPT {
            c.pop_front();
        }
        c.push_back((SystemTime::now(), child));
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
    /// `offender`. When the offender is a supervisor, its own last report follows.
    pub fn report(&mut self, tree: &Tree, supervisor: NodeId, offender: NodeId) -> String {
        let now = SystemTime::now();
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
            time(now),
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
        let counted: Vec<&(SystemTime, NodeId)> = self.nodes[supervisor.index()]
            .counted
            .iter()
            .filter(|(t, _)| now.duration_since(*t).unwrap_or_default() <= period)
            .collect();
        let _ = writeln!(
            r,
            "restarts counted by {} in the last {}: {} (intensity {intensity})",
            sup.name,
            humanize(period),
            counted.len()
        );
        for (t, c) in counted {
            let _ = writeln!(r, "  {}  {}", time(*t), tree.node(*c).name);
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
