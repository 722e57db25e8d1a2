//! Manual control of the tree: OTP's `terminate_child/2` and `restart_child/2`, a
//! restart of one child or subtree, signals, and the readiness predicate behind
//! `vigil wait-ready` and `/readyz`.
//!
//! A submodule of [`super::engine`] (declared there), so it works on the engine's own
//! state; it owns the semantics of operator commands and must never do I/O, read a clock
//! or touch the OS: like the rest of the core, it returns actions and events.
//!
//! # Semantics (otp-supervisor.md sections 1.6, 1.11, 1.12)
//!
//! A command is queued in the mailbox of the target's supervisor, as an OTP `handle_call`
//! queues behind the supervisor's current work: it runs once that supervisor has finished
//! its current program (a group restart, a start, a stop), in order with the exits that
//! arrived before it. Its outcome is reported once, as [`Event::ControlDone`] with the
//! caller's id, when it has completed (the child is down, or up) or has been refused.
//! Manual operations never count against any intensity and never trigger `auto_shutdown`.
//!
//! - `Stop` (`terminate_child`): the child, or the whole subtree of a supervisor, is
//!   stopped per its shutdown spec and stays stopped: not restarted, whatever its restart
//!   type. Idempotent. A temporary child is removed, as OTP deletes its spec. Stopping a
//!   child that waits out its backoff cancels that restart; the siblings its strategy had
//!   stopped for it (`one_for_all`, `rest_for_one`) are started at once without it.
//!   As in OTP, a later group restart of its supervisor starts a stopped child again
//!   with its siblings.
//! - `Start` (`restart_child`): starts a stopped child in its place in the start order (a
//!   supervisor: its whole subtree, with a fresh intensity window). Refused when it runs
//!   (`running`), waits out a backoff (`restarting`), was a temporary child that ended
//!   (`removed`), or its supervisor is not running. A start failure is returned to the
//!   caller: nothing is retried and nothing is counted.
//! - `Restart`: stop, then start. On a child that waits out its backoff, it skips the
//!   wait: the group its strategy restarts is started now, in order. On a supervisor:
//!   the whole subtree is stopped, then started again with a fresh window.
//! - `Signal`: the signal goes to the process group of every running process in the
//!   target (one process, or every process of a subtree). The exit that may follow is an
//!   exit like any other: counted and restarted per the restart type.
//!
//! The root cannot be stopped, started or restarted this way (a stop signal to vigil
//! stops the tree). Once vigil is stopping, every command but `Signal` is refused.

use crate::Time;

use super::{Action, Engine, Event, Msg, State, Status, Step};
use crate::spec::{NodeId, NodeKind, Restart, Signal};

/// An operator's command (`vigil stop|start|restart|signal NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// OTP `terminate_child`: stop the child (or subtree); it stays stopped.
    Stop(NodeId),
    /// OTP `restart_child`: start a stopped child (or subtree).
    Start(NodeId),
    /// Stop if running, then start.
    Restart(NodeId),
    /// Send a signal to the process group of every running process in the target.
    Signal(NodeId, Signal),
}

impl Command {
    /// The node the command is about.
    pub fn target(self) -> NodeId {
        match self {
            Command::Stop(n) | Command::Start(n) | Command::Restart(n) | Command::Signal(n, _) => n,
        }
    }

    /// The verb, as the CLI spells it.
    pub fn verb(self) -> &'static str {
        match self {
            Command::Stop(_) => "stop",
            Command::Start(_) => "start",
            Command::Restart(_) => "restart",
            Command::Signal(..) => "signal",
        }
    }
}

/// What a completed command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// The target is stopped (it may already have been).
    Stopped,
    /// The target was started (and, for a supervisor, its initial start completed).
    Started,
    /// The signal was sent to this many process groups.
    Signalled(u32),
}

/// Why a command was refused or failed. Nothing was changed unless said otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// No such node id.
    NotFound,
    /// Stop, start and restart do not apply to the root supervisor.
    Root,
    /// vigil is stopping the tree.
    Stopping,
    /// `start`: the child is running (OTP `{error, running}`).
    Running,
    /// `start`: a restart is scheduled after a backoff delay (OTP `{error, restarting}`).
    Restarting,
    /// `start`: a temporary child that ended; its spec is gone until its supervisor
    /// restarts (OTP `not_found`).
    Removed,
    /// The supervisor in the payload (the target's, or one above it) is not running.
    SupervisorNotRunning(NodeId),
    /// `signal`: no process of the target is running.
    NotRunning,
    /// The start failed (a spawn failed, or a child supervisor's initial start failed);
    /// the target is stopped again. Nothing was retried or counted.
    StartFailed,
    /// The target's supervisor changed course before the command completed (it began a
    /// restart of its children, or stopped); the command's effect may be partial.
    Interrupted(NodeId),
}

/// Why a node is not ready (see [`Engine::unready`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unready {
    /// It is not running: it is in this state.
    State(State),
    /// It runs, but its `ready` check has not passed or its health checks fail.
    NotReady,
}

impl Unready {
    /// The word `vigil wait-ready` and `/readyz` show.
    pub fn as_str(self) -> &'static str {
        match self {
            Unready::State(s) => s.as_str(),
            Unready::NotReady => "not ready",
        }
    }
}

/// A command accepted and not yet completed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    id: u64,
    command: Command,
    supervisor: NodeId,
}

impl Engine {
    /// Handles [`super::Input::Control`].
    pub(super) fn control(&mut self, id: u64, command: Command) {
        if let Err(e) = self.accept_control(id, command) {
            self.control_done(id, command, Err(e));
        }
    }

    fn accept_control(&mut self, id: u64, command: Command) -> Result<(), ControlError> {
        let c = command.target();
        if c.index() >= self.nodes.len() {
            return Err(ControlError::NotFound);
        }
        if self.finished {
            return Err(ControlError::Stopping);
        }
        if let Command::Signal(_, signal) = command {
            let n = self.signal_subtree(c, signal);
            if n == 0 {
                return Err(ControlError::NotRunning);
            }
            self.control_done(id, command, Ok(Done::Signalled(n)));
            return Ok(());
        }
        if c == NodeId::ROOT {
            return Err(ControlError::Root);
        }
        if self.stopping {
            return Err(ControlError::Stopping);
        }
        let st = &self.nodes[c.index()];
        let stopped = st.removed || matches!(st.status, Status::Stopped);
        // Every supervisor above must be running: a command is run by its supervisor.
        for a in self.ancestors(c) {
            if !matches!(self.nodes[a.index()].status, Status::Running { .. }) {
                if matches!(command, Command::Stop(_)) && stopped {
                    self.control_done(id, command, Ok(Done::Stopped));
                    return Ok(());
                }
                return Err(ControlError::SupervisorNotRunning(a));
            }
        }
        let s = self.parent(c);
        self.sup_mut(s).mailbox.push_back(Msg::Control(id, command));
        self.pending_controls.push(Pending {
            id,
            command,
            supervisor: s,
        });
        self.ready.push_back(s);
        Ok(())
    }

    /// Runs a queued command: its supervisor has finished its current program.
    pub(super) fn exec_control(&mut self, s: NodeId, id: u64, command: Command) {
        let c = command.target();
        let st = &self.nodes[c.index()];
        let status = st.status;
        let removed = st.removed;
        if self.stopping {
            return self.control_done(id, command, Err(ControlError::Stopping));
        }
        let mut program: Vec<Step> = Vec::new();
        match (command, status) {
            (Command::Stop(_), _) if removed => {
                return self.control_done(id, command, Ok(Done::Stopped));
            }
            (Command::Start(_) | Command::Restart(_), _) if removed => {
                return self.control_done(id, command, Err(ControlError::Removed));
            }
            (
                Command::Start(_),
                Status::Starting { .. }
                | Status::Running { .. }
                | Status::Stopping { .. }
                | Status::Exited { .. },
            ) => {
                return self.control_done(id, command, Err(ControlError::Running));
            }
            (Command::Start(_), Status::Restarting { .. }) => {
                return self.control_done(id, command, Err(ControlError::Restarting));
            }
            (Command::Stop(_), Status::Restarting { .. }) => {
                // The restart is cancelled; the rest of its group comes back without it.
                self.nodes[c.index()].status = Status::Stopped;
                self.drop_if_temporary(c);
                let group = self.group(s, c);
                program.extend(group.into_iter().filter(|&g| g != c).map(Step::Start));
            }
            (Command::Restart(_), Status::Restarting { .. }) => {
                // Skip the backoff: the group starts now, in order.
                self.nodes[c.index()].status = Status::Stopped;
                program.extend(self.group(s, c).into_iter().map(Step::Start));
            }
            (Command::Stop(_), _) => program.push(Step::Terminate(c)),
            (Command::Start(_), _) => program.push(Step::Start(c)),
            (Command::Restart(_), _) => {
                program.push(Step::Terminate(c));
                program.push(Step::Start(c));
            }
            (Command::Signal(..), _) => unreachable!("signals are sent when accepted"),
        }
        program.push(Step::Reply(id, command));
        self.sup_mut(s).program.extend(program);
    }

    /// The last step of a command's program: everything before it has completed.
    pub(super) fn exec_reply(&mut self, id: u64, command: Command) {
        let done = match command {
            Command::Stop(_) => Done::Stopped,
            _ => Done::Started,
        };
        self.control_done(id, command, Ok(done));
    }

    /// A start failed under `s`. When it was the start of a command (the next step is the
    /// command's reply), the failure goes back to the caller instead of counting as a
    /// failed restart (OTP `restart_child` returns the error). Returns whether it did.
    pub(super) fn manual_start_failed(&mut self, s: NodeId, c: NodeId) -> bool {
        let Some(&Step::Reply(id, command)) = self.sup(s).program.front() else {
            return false;
        };
        if command.target() != c || matches!(command, Command::Stop(_)) {
            return false;
        }
        self.sup_mut(s).program.clear();
        self.nodes[c.index()].status = Status::Stopped;
        self.control_done(id, command, Err(ControlError::StartFailed));
        self.ready.push_back(s);
        true
    }

    /// Answers the commands whose queued message or reply step was dropped (their
    /// supervisor began a restart of its children, or stopped). Runs after every settle.
    pub(super) fn sweep_controls(&mut self) {
        if self.pending_controls.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending_controls);
        for p in pending {
            let sup = self.sup(p.supervisor);
            let alive = sup
                .mailbox
                .iter()
                .any(|m| matches!(m, Msg::Control(id, _) if *id == p.id))
                || sup
                    .program
                    .iter()
                    .any(|m| matches!(m, Step::Reply(id, _) if *id == p.id));
            if alive {
                self.pending_controls.push(p);
            } else {
                self.events.push_back(Event::ControlDone {
                    id: p.id,
                    command: p.command,
                    result: Err(ControlError::Interrupted(p.supervisor)),
                });
            }
        }
    }

    fn control_done(&mut self, id: u64, command: Command, result: Result<Done, ControlError>) {
        self.pending_controls.retain(|p| p.id != id);
        self.events.push_back(Event::ControlDone {
            id,
            command,
            result,
        });
    }

    /// Queues `signal` to every running process in `c`'s subtree; returns how many.
    fn signal_subtree(&mut self, c: NodeId, signal: Signal) -> u32 {
        let mut n = 0;
        let mut stack = vec![c];
        while let Some(d) = stack.pop() {
            match (&self.tree.node(d).kind, self.nodes[d.index()].status) {
                (NodeKind::Supervisor(spec), _) => stack.extend(spec.children.iter().copied()),
                (
                    NodeKind::Process(_),
                    Status::Running { pid: Some(pid), .. }
                    | Status::Stopping { pid: Some(pid), .. },
                ) => {
                    n += 1;
                    self.actions.push_back(Action::Signal {
                        node: d,
                        pid,
                        signal,
                    });
                }
                _ => {}
            }
        }
        n
    }

    // ----- readiness -----

    /// Whether `node` is ready: see [`Engine::unready`].
    pub fn is_ready(&self, node: NodeId) -> bool {
        self.unready(node).is_empty()
    }

    /// Why `node` is not ready: `(node, state)` pairs, empty when it is ready.
    ///
    /// A process is ready when it runs and [`Engine::process_ready`] says so. A
    /// supervisor is ready when it runs and every `permanent` child is ready; children
    /// that are not permanent are looked into only when they are running supervisors
    /// (their own permanent children count). Nothing is ready once vigil is stopping.
    pub fn unready(&self, node: NodeId) -> Vec<(NodeId, Unready)> {
        let mut out = Vec::new();
        if self.stopping || self.finished {
            out.push((NodeId::ROOT, Unready::State(State::Stopping)));
            return out;
        }
        self.collect_unready(node, &mut out);
        out
    }

    fn collect_unready(&self, node: NodeId, out: &mut Vec<(NodeId, Unready)>) {
        let view = self.view(node);
        if view.state != State::Running {
            out.push((node, Unready::State(view.state)));
            return;
        }
        match &self.tree.node(node).kind {
            NodeKind::Process(_) => {
                if !self.process_ready(node) {
                    out.push((node, Unready::NotReady));
                }
            }
            NodeKind::Supervisor(spec) => {
                for &c in &spec.children {
                    let child = self.tree.node(c);
                    let running_sup = child.as_supervisor().is_some()
                        && matches!(self.nodes[c.index()].status, Status::Running { .. });
                    if child.restart == Restart::Permanent || running_sup {
                        self.collect_unready(c, out);
                    }
                }
            }
        }
    }

    /// Whether a running process counts as ready.
    ///
    /// Whether the process `node` is running and ready: a process without a `ready` check
    /// is ready once spawned; one with a check once it passed in this incarnation, and
    /// not while its health checks fail.
    pub fn process_ready(&self, node: NodeId) -> bool {
        self.probe_ready(node)
    }

    /// Since when `node` has been running (its current incarnation), if it is.
    pub fn running_since(&self, node: NodeId) -> Option<Time> {
        match self.nodes[node.index()].status {
            Status::Running { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Whether vigil is stopping the tree (a stop signal, a give-up or a significant
    /// child at the root).
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }
}
