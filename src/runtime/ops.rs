//! The loop's side of the operations interface: answering control requests and HTTP
//! endpoints from the engine's state, turning commands into [`Input::Control`], keeping
//! `wait-ready` waiters, counting metrics, and writing post-mortems.
//!
//! Runs only on the loop (it is an `impl Loop`): the engine is never touched from a
//! connection's task. It never blocks: a command's answer is sent when the engine reports
//! [`Event::ControlDone`], a waiter's when the tree is ready, both from the loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::handle::Loop;
use super::metrics::{self, Metrics};
use super::postmortem::{self, History};
pub use crate::control::Query;
use crate::control::protocol::{self, ErrorKind, NodeStatus, Request, Response};
use crate::control::{Endpoint, HttpReply, http, server};
use crate::core::{Command, ControlError, Done, End, Event, Input, Time};
use crate::exit;
use crate::spec::{NodeId, Ops as OpsSpec, Signal, Tree};

/// How many queries may wait for the loop before connections wait to send theirs.
const QUEUE: usize = 64;

/// A `wait-ready` request waiting for the tree.
struct Waiter {
    node: NodeId,
    reply: oneshot::Sender<Response>,
}

/// The operations state of the loop.
pub struct Ops {
    started: Instant,
    next_id: u64,
    /// Commands handed to the engine, by id: the answer and the name, for the message.
    replies: HashMap<u64, oneshot::Sender<Response>>,
    waiters: Vec<Waiter>,
    pub(super) history: History,
    metrics: Option<Metrics>,
    /// Where the root's post-mortem goes, and whether to create the file.
    termination_log: (PathBuf, bool),
    termination_written: bool,
    /// The most recent give-up's post-mortem.
    latest_report: Option<String>,
    /// The control socket (its file is removed when this is dropped).
    socket: Option<server::Bound>,
}

/// Sets up what `tree.ops` asks for (call inside the runtime, before the first spawn).
/// Returns the state and the queries' receiver (none when nothing listens). `Err` is a
/// message for a fatal problem: an explicitly configured socket or HTTP address that
/// cannot be used.
pub fn setup(
    tree: &Tree,
    socket_flag: Option<&Path>,
) -> Result<(Ops, Option<mpsc::Receiver<Query>>), String> {
    let spec: &OpsSpec = &tree.ops;
    if let Some(p) = &spec.termination_log {
        postmortem::check_termination_log(p)?;
    }
    let mut socket = None;
    if spec.control_enabled {
        let sp = crate::control::socket_path(socket_flag, spec.control_socket.as_deref());
        match server::bind(&sp.path) {
            Ok(b) => socket = Some(b),
            Err(e) if sp.explicit => {
                let hint = match e {
                    server::BindError::InUse(_) => {
                        "stop the other vigil, or give this one \
                         another path (--socket, VIGIL_SOCKET or [control] socket)"
                    }
                    server::BindError::Io { .. } => {
                        "fix the path (--socket, VIGIL_SOCKET or \
                         [control] socket), or set [control] enabled = false"
                    }
                };
                return Err(format!("{e}; {hint}"));
            }
            Err(e) => warn!(
                "{e}; vigil runs without a control socket (set [control] socket or \
                 VIGIL_SOCKET to another path, or [control] enabled = false to silence this)"
            ),
        }
    }
    let http_listener = match spec.http_listen {
        Some(addr) => Some(http::bind(addr).map_err(|e| {
            format!(
                "cannot listen for HTTP on {addr}: {e}; choose a free address and port in \
                 [http] listen"
            )
        })?),
        None => None,
    };
    let mut rx = None;
    if socket.is_some() || http_listener.is_some() {
        let (tx, r) = mpsc::channel(QUEUE);
        rx = Some(r);
        // One pool: the descriptor reserve counts both listeners' clients.
        let pool = crate::control::limits::Pool::new();
        if let Some(b) = &mut socket {
            server::spawn(b, tx.clone(), &pool, spec.control_max_connections)
                .map_err(|e| format!("control socket: {e}"))?;
            info!(
                path = %b.path().display(),
                max_connections = spec.control_max_connections,
                "control socket listening"
            );
        }
        if let Some(l) = http_listener {
            http::spawn(l, tx, &pool, spec.http_max_connections)
                .map_err(|e| format!("http: {e}"))?;
        }
    }
    let termination_log = match &spec.termination_log {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(OpsSpec::DEFAULT_TERMINATION_LOG), false),
    };
    Ok((
        Ops {
            started: Instant::now(),
            next_id: 0,
            replies: HashMap::new(),
            waiters: Vec::new(),
            history: History::new(tree),
            metrics: spec.http_listen.is_some().then(|| Metrics::new(tree)),
            termination_log,
            termination_written: false,
            latest_report: None,
            socket,
        },
        rx,
    ))
}

/// The next query, or never when nothing listens.
pub(super) async fn recv(rx: &mut Option<mpsc::Receiver<Query>>) -> Option<Query> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Loop {
    /// Answers one query (or, for a command or a wait, arranges for it to be answered).
    pub(super) fn on_query(&mut self, q: Query, now: Time) {
        match q {
            Query::Control { request, reply } => self.on_request(request, reply, now),
            Query::Http { endpoint, reply } => {
                let _ = reply.send(self.http(endpoint));
            }
        }
    }

    fn on_request(&mut self, request: Request, reply: oneshot::Sender<Response>, now: Time) {
        debug!(?request, "control request");
        let command = match request {
            Request::Status {} => {
                let mut r = Response::ok("status");
                r.status = Some(Box::new(self.status()));
                let _ = reply.send(r);
                return;
            }
            Request::WaitReady { name, timeout_ms } => {
                let node = match name {
                    None => NodeId::ROOT,
                    Some(n) => match self.lookup(&n) {
                        Ok(id) => id,
                        Err(r) => {
                            let _ = reply.send(r);
                            return;
                        }
                    },
                };
                if self.engine.is_ready(node) || self.engine.is_stopping() || timeout_ms == 0 {
                    let _ = reply.send(self.readiness(node));
                } else {
                    self.ops.waiters.push(Waiter { node, reply });
                }
                return;
            }
            Request::Stop { name } => self.lookup(&name).map(Command::Stop),
            Request::Start { name } => self.lookup(&name).map(Command::Start),
            Request::Restart { name } => self.lookup(&name).map(Command::Restart),
            Request::Signal { name, signal } => match Signal::parse(&signal) {
                None => Err(Response::error(
                    ErrorKind::BadRequest,
                    format!(
                        "unknown signal {signal:?}; give a name such as HUP, SIGUSR1 or a number 1-64"
                    ),
                )),
                Some(sig) => self.lookup(&name).map(|id| Command::Signal(id, sig)),
            },
        };
        let command = match command {
            Ok(c) => c,
            Err(r) => {
                let _ = reply.send(r);
                return;
            }
        };
        self.ops.next_id += 1;
        let id = self.ops.next_id;
        self.ops.replies.insert(id, reply);
        info!(
            command = command.verb(),
            name = %self.name(command.target()),
            "control command"
        );
        self.feed(Input::Control { id, command }, now);
    }

    fn lookup(&self, name: &str) -> Result<NodeId, Response> {
        self.tree.find(name).ok_or_else(|| {
            let known: Vec<&str> = self.tree.nodes.iter().map(|n| n.name.as_str()).collect();
            Response::error(
                ErrorKind::UnknownName,
                format!(
                    "no process or supervisor is named {name:?}; known names: {}",
                    known.join(", ")
                ),
            )
        })
    }

    /// The answer to `wait-ready` for `node` as of now.
    fn readiness(&self, node: NodeId) -> Response {
        let name = self.name(node);
        if self.engine.is_ready(node) {
            return Response::ok(format!("{name} is ready"));
        }
        if self.engine.is_stopping() {
            return Response::error(ErrorKind::Stopping, "vigil is stopping the tree");
        }
        Response::error(
            ErrorKind::TimedOut,
            format!("{name} is not ready: {}", self.unready_text(node)),
        )
    }

    fn unready_text(&self, node: NodeId) -> String {
        let reasons: Vec<String> = self
            .engine
            .unready(node)
            .into_iter()
            .map(|(n, state)| format!("{} is {}", self.name(n), state.as_str()))
            .collect();
        reasons.join(", ")
    }

    /// Answers the waiters whose node is ready (or that can never be, vigil stopping),
    /// and forgets those whose client has gone. Runs after every batch of actions.
    pub(super) fn answer_waiters(&mut self) {
        if self.ops.waiters.is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut self.ops.waiters);
        for w in waiters {
            if w.reply.is_closed() {
                continue;
            }
            if self.engine.is_ready(w.node) || self.engine.is_stopping() {
                let _ = w.reply.send(self.readiness(w.node));
            } else {
                self.ops.waiters.push(w);
            }
        }
    }

    /// Keeps the history and the metrics, answers commands; called for every event
    /// before it is logged.
    pub(super) fn observe(&mut self, event: &Event, now: Time) {
        let at = postmortem::Stamp::at(now);
        let tree = &self.tree;
        let m = self.ops.metrics.as_ref();
        match event {
            Event::Exited {
                node,
                status,
                expected,
                ..
            } => {
                let what = if *expected {
                    format!("{status} (stopped by vigil)")
                } else {
                    status.to_string()
                };
                self.ops.history.exited(*node, what, at);
                if let Some(m) = m {
                    m.exit(&tree.node(*node).name, *status);
                }
            }
            Event::SpawnFailed { node, error } => {
                self.ops.history.spawn_failed(*node, error, at);
                if let Some(m) = m {
                    m.spawn_failure(&tree.node(*node).name);
                }
            }
            Event::RestartScheduled {
                node, supervisor, ..
            } => {
                self.ops.history.restart_counted(*supervisor, *node, at);
                if let Some(m) = m {
                    m.restart(&tree.node(*node).name);
                }
            }
            Event::GaveUp {
                supervisor,
                offender,
            } => {
                if let Some(m) = m {
                    m.give_up(&tree.node(*supervisor).name);
                }
                let report = self.ops.history.report(tree, *supervisor, *offender, at);
                error!(
                    "post-mortem of supervisor {}:\n{report}",
                    tree.node(*supervisor).name
                );
                self.ops.latest_report = Some(report.clone());
                if *supervisor == NodeId::ROOT {
                    self.write_termination_log(&report);
                }
            }
            Event::Stopping { supervisor, end } if *supervisor != NodeId::ROOT => {
                let what = match end {
                    End::Stopped => None,
                    End::GaveUp { offender } => Some(format!(
                        "gave up: restart intensity exceeded by {}",
                        tree.node(*offender).name
                    )),
                    End::AutoShutdown { trigger, .. } => Some(format!(
                        "shut down: significant child {} ended",
                        tree.node(*trigger).name
                    )),
                    End::StartFailed { offender } => Some(format!(
                        "failed to start: {} failed to start",
                        tree.node(*offender).name
                    )),
                };
                if let Some(what) = what {
                    self.ops.history.exited(*supervisor, what, at);
                }
            }
            Event::ControlDone {
                id,
                command,
                result,
            } => {
                let response = self.control_response(*command, *result);
                if response.ok {
                    info!(
                        command = command.verb(),
                        name = %self.name(command.target()),
                        "{}", response.message
                    );
                } else {
                    warn!(
                        command = command.verb(),
                        name = %self.name(command.target()),
                        "{}", response.message
                    );
                }
                if let Some(reply) = self.ops.replies.remove(id) {
                    let _ = reply.send(response);
                }
            }
            _ => {}
        }
    }

    fn control_response(&self, command: Command, result: Result<Done, ControlError>) -> Response {
        let c = command.target();
        let name = self.name(c);
        let verb = command.verb();
        match result {
            Ok(Done::Stopped) => Response::ok(format!("{name} stopped")),
            Ok(Done::Started) if matches!(command, Command::Restart(_)) => {
                Response::ok(format!("{name} restarted"))
            }
            Ok(Done::Started) => Response::ok(format!("{name} started")),
            Ok(Done::Signalled(n)) => {
                let sig = match command {
                    Command::Signal(_, s) => s.name(),
                    _ => String::new(),
                };
                Response::ok(format!(
                    "sent {sig} to {name} ({n} process group{})",
                    if n == 1 { "" } else { "s" }
                ))
            }
            Err(e) => {
                let (kind, msg) = match e {
                    ControlError::NotFound => (ErrorKind::UnknownName, format!("no node {name:?}")),
                    ControlError::Root => (
                        ErrorKind::Refused,
                        format!(
                            "the root supervisor cannot be {} this way; send SIGTERM to vigil \
                             (pid {}) to stop the tree",
                            match command {
                                Command::Stop(_) => "stopped",
                                Command::Start(_) => "started",
                                _ => "restarted",
                            },
                            std::process::id()
                        ),
                    ),
                    ControlError::Stopping => (
                        ErrorKind::Stopping,
                        "vigil is stopping the tree; nothing is started or stopped any more"
                            .to_string(),
                    ),
                    ControlError::Running => (
                        ErrorKind::Refused,
                        format!("{name} is already running; `vigil restart {name}` restarts it"),
                    ),
                    ControlError::Restarting => (
                        ErrorKind::Refused,
                        format!(
                            "{name} is restarting (waiting out its backoff delay); `vigil restart \
                             {name}` restarts it now, `vigil stop {name}` cancels the restart"
                        ),
                    ),
                    ControlError::Removed => (
                        ErrorKind::Refused,
                        format!(
                            "{name} is a temporary child that has ended; it comes back only when \
                             its supervisor {} restarts",
                            self.name(self.tree.node(c).parent.unwrap_or(NodeId::ROOT))
                        ),
                    ),
                    ControlError::SupervisorNotRunning(s) => (
                        ErrorKind::Refused,
                        format!(
                            "{name}'s supervisor {} is not running ({}); start it first with \
                             `vigil start {}`",
                            self.name(s),
                            self.engine.view(s).state,
                            self.name(s)
                        ),
                    ),
                    ControlError::NotRunning => (
                        ErrorKind::Refused,
                        format!("no process of {name} is running; nothing was signalled"),
                    ),
                    ControlError::StartFailed => (
                        ErrorKind::Failed,
                        match self.ops.history.spawn_error(c) {
                            Some(err) if self.tree.node(c).as_process().is_some() => format!(
                                "{name} failed to start: {err}; it stays stopped (nothing was \
                                 retried or counted)"
                            ),
                            _ => format!(
                                "{name} failed to start; it stays stopped (nothing was retried or \
                                 counted); vigil's log says why"
                            ),
                        },
                    ),
                    ControlError::Interrupted(s) => (
                        ErrorKind::Failed,
                        format!(
                            "{} began restarting or stopping its children before `{verb} {name}` \
                             completed; check `vigil status`",
                            self.name(s)
                        ),
                    ),
                };
                Response::error(kind, msg)
            }
        }
    }

    /// The tree as the protocol describes it.
    pub(super) fn status(&self) -> protocol::Status {
        protocol::Status {
            pid: std::process::id(),
            uptime_ms: self.ops.started.elapsed().as_millis() as u64,
            stopping: self.engine.is_stopping(),
            ready: self.engine.is_ready(NodeId::ROOT),
            orphans_reaped: self.stats.orphans,
            orphans: self
                .stats
                .known_orphans
                .iter()
                .map(|(&pid, o)| protocol::OrphanStatus {
                    pid,
                    from: o.from.map(|n| self.name(n).to_string()),
                    state: if o.kept {
                        "kept"
                    } else if self.engine.is_leftover(pid) {
                        "stopping"
                    } else {
                        "adopted"
                    }
                    .to_string(),
                })
                .collect(),
            tree: self.node_status(NodeId::ROOT, super::now()),
        }
    }

    fn node_status(&self, id: NodeId, now: Time) -> NodeStatus {
        let n = self.tree.node(id);
        let view = self.engine.view(id);
        let last = self.ops.history.last_exit(id);
        NodeStatus {
            name: n.name.clone(),
            kind: if n.as_supervisor().is_some() {
                "supervisor"
            } else {
                "process"
            }
            .to_string(),
            state: view.state.to_string(),
            ready: self.engine.is_ready(id),
            restart: (id != NodeId::ROOT).then(|| n.restart.as_str().to_string()),
            pid: view.pid,
            uptime_ms: self
                .engine
                .running_since(id)
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            restarts: self.ops.history.restarts(id),
            last_exit: last.map(|e| e.what.clone()),
            last_exit_at: last.map(|e| postmortem::time(e.at)),
            children: self
                .tree
                .children(id)
                .iter()
                .map(|&c| self.node_status(c, now))
                .collect(),
        }
    }

    fn http(&mut self, endpoint: Endpoint) -> HttpReply {
        const TEXT: &str = "text/plain; charset=utf-8";
        match endpoint {
            Endpoint::Livez => HttpReply {
                status: 200,
                content_type: TEXT,
                body: "ok\n".into(),
            },
            Endpoint::Readyz if self.engine.is_ready(NodeId::ROOT) => HttpReply {
                status: 200,
                content_type: TEXT,
                body: "ready\n".into(),
            },
            Endpoint::Readyz => HttpReply {
                status: 503,
                content_type: TEXT,
                body: format!("not ready: {}\n", self.unready_text(NodeId::ROOT)),
            },
            Endpoint::Status => HttpReply {
                status: 200,
                content_type: "application/json",
                body: serde_json::to_string(&self.status()).unwrap_or_default() + "\n",
            },
            Endpoint::Metrics => {
                let uptime = self.ops.started.elapsed().as_secs_f64();
                let orphans = self.stats.orphans;
                match &mut self.ops.metrics {
                    Some(m) => HttpReply {
                        status: 200,
                        content_type: metrics::CONTENT_TYPE,
                        body: m.encode(&self.engine, orphans, uptime),
                    },
                    None => HttpReply {
                        status: 500,
                        content_type: TEXT,
                        body: "metrics are not kept\n".into(),
                    },
                }
            }
        }
    }

    /// vigil is about to exit with `code`: a give-up that reached the root through
    /// `auto_shutdown` (exit 75 without a root give-up) still leaves its report.
    pub(super) fn at_exit(&mut self, code: u8) {
        if code != exit::GAVE_UP || self.ops.termination_written {
            return;
        }
        if let Some(report) = self.ops.latest_report.clone() {
            self.write_termination_log(&report);
        }
    }

    fn write_termination_log(&mut self, report: &str) {
        let (path, create) = &self.ops.termination_log;
        match postmortem::write_termination_log(path, *create, report) {
            Ok(()) => {
                self.ops.termination_written = true;
                info!(path = %path.display(), "post-mortem written to the termination log");
            }
            Err(e) if !*create && e.kind() == std::io::ErrorKind::NotFound => {
                debug!(path = %path.display(), "no termination log file; post-mortem not written there");
            }
            Err(e) => warn!(
                path = %path.display(),
                "cannot write the post-mortem to the termination log: {e}"
            ),
        }
    }

    /// The loop has ended: pending answers can no longer come; the socket is removed.
    pub(super) fn close_ops(&mut self) {
        self.ops.replies.clear();
        self.ops.waiters.clear();
        self.ops.socket = None;
    }
}
