//! The control protocol: one request per connection, one JSON object per line each way.
//!
//! ```text
//! client → {"op":"stop","name":"web"}\n
//! vigil  → {"ok":true,"message":"web stopped"}\n          (then closes)
//! ```
//!
//! Requests: `status`, `stop`, `start`, `restart` (with `name`), `signal` (with `name`
//! and `signal`), `wait_ready` (optional `name`, `timeout_ms`). Unknown fields are
//! rejected. A request is at most [`MAX_REQUEST`] bytes and must arrive within
//! [`READ_TIMEOUT`]. This module owns the wire types and the human rendering of a status;
//! it does no I/O.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// How long vigil waits for a connected client's request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The state of the whole tree (a struct variant, so that unknown fields are
    /// rejected like everywhere else).
    Status {},
    /// OTP `terminate_child`: stop a process or subtree; it stays stopped.
    Stop {
        /// A process or supervisor name.
        name: String,
    },
    /// OTP `restart_child`: start a stopped process or subtree.
    Start {
        /// A process or supervisor name.
        name: String,
    },
    /// Stop (if running), then start.
    Restart {
        /// A process or supervisor name.
        name: String,
    },
    /// Send a signal to the process group of every running process of `name`.
    Signal {
        /// A process or supervisor name.
        name: String,
        /// `HUP`, `SIGHUP` or `1`.
        signal: String,
    },
    /// Answer once `name` (default: the whole tree) is ready, or after `timeout_ms`.
    WaitReady {
        /// A process or supervisor name; `None` is the root.
        #[serde(default)]
        name: Option<String>,
        /// How long to wait; 0 answers at once.
        timeout_ms: u64,
    },
}

/// What kind of failure a response reports; the client's exit code follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was not valid JSON, not a known request, or too long or too slow.
    BadRequest,
    /// The peer's uid is neither vigil's nor root's.
    PermissionDenied,
    /// No process or supervisor has that name.
    UnknownName,
    /// The operation does not apply in the current state (already running, ...).
    Refused,
    /// The operation was attempted and failed (a start failed, ...).
    Failed,
    /// `wait_ready` ran out of time.
    TimedOut,
    /// vigil is stopping or exiting.
    Stopping,
    /// vigil serves as many control connections as it may (`[control] max_connections`,
    /// or its descriptors are kept for its children); try again.
    Busy,
}

/// A response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Whether the operation succeeded.
    pub ok: bool,
    /// One human-readable sentence: what was done, or what went wrong and how to fix it.
    pub message: String,
    /// The kind of failure, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// The tree, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
}

impl Response {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: message.into(),
            error: None,
            status: None,
        }
    }

    /// A failure.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            error: Some(kind),
            status: None,
        }
    }

    /// The response as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"ok":false,"message":"cannot encode the response: {e}","error":"failed"}}"#
            )
        });
        s.push('\n');
        s
    }
}

/// The whole tree, as `vigil status --json` prints it and `/status` serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// vigil's pid.
    pub pid: u32,
    /// How long vigil has been running, in milliseconds.
    pub uptime_ms: u64,
    /// Whether vigil is stopping the tree.
    pub stopping: bool,
    /// Whether the tree is ready (what `/readyz` and `vigil wait-ready` check).
    pub ready: bool,
    /// Adopted orphans reaped so far.
    pub orphans_reaped: u64,
    /// Adopted orphans alive now that vigil knows of (at most a few thousand are listed).
    #[serde(default)]
    pub orphans: Vec<OrphanStatus>,
    /// The root supervisor and, below it, every node in start order.
    pub tree: NodeStatus,
}

/// A live adopted orphan: a process vigil did not start that was reparented to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrphanStatus {
    /// Its pid.
    pub pid: i32,
    /// The process whose exit left it behind, when vigil could tell.
    pub from: Option<String>,
    /// `kept` (`leftovers = "keep"`), `stopping` (being stopped as a leftover), or
    /// `adopted` (of unknown origin: it will be stopped when vigil stops).
    pub state: String,
}

/// One supervisor or process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// `supervisor` or `process`.
    pub kind: String,
    /// `running`, `stopped`, `restarting`, `stopping`, `exited` or `removed`.
    pub state: String,
    /// Whether it is ready (a process: running and, if it has a readiness check, ready).
    pub ready: bool,
    /// Its restart type (`permanent`, `transient`, `temporary`); the root has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// The pid of a running (or stopping) process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// How long its current run has lasted, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// Restarts of this node counted by its supervisor since vigil started.
    pub restarts: u64,
    /// How its last run ended (`exit code 1`, `killed by SIGKILL`, `gave up`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// When, in RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_at: Option<String>,
    /// Children in start order (supervisors only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NodeStatus>,
}

/// The human rendering of a status: a tree, one line per node.
pub fn render(status: &Status) -> String {
    let mut rows = Vec::new();
    row(&mut rows, &status.tree, "", "");
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let state = if status.stopping {
        "stopping"
    } else if status.ready {
        "ready"
    } else {
        "not ready"
    };
    let _ = writeln!(
        out,
        "vigil pid {}, up {}, {state}, {} orphans reaped",
        status.pid,
        short_duration(status.uptime_ms),
        status.orphans_reaped
    );
    for (name, detail) in rows {
        let pad = width - name.chars().count();
        let _ = writeln!(out, "{name}{:pad$}  {detail}", "");
    }
    if !status.orphans.is_empty() {
        let _ = writeln!(out, "adopted orphans:");
        for o in &status.orphans {
            let from = o.from.as_deref().map(|f| format!(", left by {f}"));
            let _ = writeln!(
                out,
                "  pid {} ({}{})",
                o.pid,
                o.state,
                from.unwrap_or_default()
            );
        }
    }
    out
}

fn row(rows: &mut Vec<(String, String)>, n: &NodeStatus, lead: &str, cont: &str) {
    let mut detail = format!("{:<10} {:<10}", n.kind, n.state);
    if let Some(pid) = n.pid {
        let _ = write!(detail, " pid {pid}");
    }
    if let Some(up) = n.uptime_ms {
        let _ = write!(detail, " up {}", short_duration(up));
    }
    if n.state == "running" && !n.ready {
        detail.push_str(" (not ready)");
    }
    if n.restarts > 0 {
        let _ = write!(detail, " restarts {}", n.restarts);
    }
    if let Some(exit) = &n.last_exit {
        let _ = write!(detail, " last: {exit}");
        if let Some(at) = &n.last_exit_at {
            let _ = write!(detail, " at {at}");
        }
    }
    rows.push((format!("{lead}{}", n.name), detail.trim_end().to_string()));
    let last = n.children.len().saturating_sub(1);
    for (i, c) in n.children.iter().enumerate() {
        let (l, k) = if i == last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        row(rows, c, &format!("{cont}{l}"), &format!("{cont}{k}"));
    }
}

/// `3h12m`, `4m5s`, `12s`, `850ms`: two units at most.
fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_reject_unknown_fields() {
        let r: Request = serde_json::from_str(r#"{"op":"stop","name":"web"}"#).unwrap();
        assert_eq!(r, Request::Stop { name: "web".into() });
        let r: Request = serde_json::from_str(r#"{"op":"wait_ready","timeout_ms":5}"#).unwrap();
        assert_eq!(
            r,
            Request::WaitReady {
                name: None,
                timeout_ms: 5
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"stop","name":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        let line = serde_json::to_string(&Request::Status {}).unwrap();
        assert_eq!(line, r#"{"op":"status"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"op":"status","x":1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"status"}"#).unwrap(),
            Request::Status {}
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(850), "850ms");
        assert_eq!(short_duration(12_000), "12s");
        assert_eq!(short_duration(245_000), "4m5s");
        assert_eq!(short_duration(3 * 3_600_000 + 12 * 60_000), "3h12m");
    }
}
