//! The loop's one synchronous handler: each thing that happens is one [`LoopEvent`],
//! handled by [`Loop::handle`] with the time it is handled at (nextest's `handle_event`).
//!
//! What it owns: the order of operations between the engine and the OS. Every engine
//! input is followed at once by carrying out the actions it produced, before the next
//! input (a spawn's answer, an exit of the same drain) is fed: this is what keeps a spawn
//! that the engine no longer wants from being mistaken for a running child. Every
//! SIGCHLD drains all exits. Exits of pids that are not the tree's are adopted orphans.
//!
//! It must never: decide anything about supervision (that is the engine's), wait for a
//! process except through [`Os::peek_exit`] and [`Os::reap`], block, or await (it is synchronous so that it
//! can be tested under simulated time with a fake [`Os`]: `tests/loop_seam.rs`).

use tracing::{debug, error, info, warn};

use super::{notify, ops, probe, signals};
use crate::core::{Action, End, Engine, Event, Input, State, Time};
use crate::os::{Os, SpawnRequest};
use crate::spec::{NodeId, Signal, Tree, humanize};

/// One thing that happened, for [`Loop::handle`].
#[derive(Debug)]
pub enum LoopEvent {
    /// A signal reached vigil (SIGCHLD included).
    Signal(Signal),
    /// The engine's next deadline has passed.
    Deadline,
    /// A readiness or health check reported.
    Probe(probe::Msg),
    /// A request from the control socket or the HTTP endpoints.
    Query(ops::Query),
}

/// How many live adopted orphans the loop remembers (for `vigil status` and so that one
/// is never taken for a later exit's leftover); beyond this, orphans are still reaped and
/// swept, just not listed.
pub const MAX_KNOWN_ORPHANS: usize = 4096;

/// A live adopted orphan the loop knows of.
#[derive(Clone, Copy, Debug)]
pub(super) struct Orphan {
    /// The process whose exit left it, when known.
    pub(super) from: Option<NodeId>,
    /// `leftovers = "keep"`: not stopped.
    pub(super) kept: bool,
}

/// Counters the loop keeps besides the engine's state.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Adopted orphans reaped (pids that were never a child of the tree).
    pub(super) orphans: u64,
    /// Live adopted orphans, by pid (at most [`MAX_KNOWN_ORPHANS`]).
    pub(super) known_orphans: std::collections::BTreeMap<crate::core::Pid, Orphan>,
}

/// The state of the loop between two wake-ups.
pub struct Loop {
    pub(super) engine: Engine,
    /// The runtime's own copy of the tree, so specs can be read while the engine is fed.
    pub(super) tree: Tree,
    pub(super) os: Box<dyn Os>,
    pub(super) stats: Stats,
    /// vigil's exit code, decided when the root finished.
    pub(super) exit: Option<u8>,
    /// `--exit-with` was given: an interrupted run exits 128 + the signal.
    pub(super) exit_with: bool,
    /// Readiness and health checks (`probe`).
    pub(super) probes: probe::Probes,
    /// Control socket, HTTP, history, metrics (`ops.rs`).
    pub(super) ops: ops::Ops,
    /// sd_notify to the service manager (a no-op without `NOTIFY_SOCKET`).
    pub(super) notify: notify::Notifier,
    /// The initial start is complete (the engine's `Ready` action was carried out).
    pub(super) ready: bool,
    /// The root has begun to stop.
    pub(super) stopping: bool,
}

impl Loop {
    /// A loop for `tree` over `os`; nothing starts until [`Loop::start`].
    pub fn new(tree: Tree, os: Box<dyn Os>, ops: ops::Ops, seed: u64, exit_with: bool) -> Loop {
        Loop {
            engine: Engine::new(tree.clone(), seed),
            tree,
            os,
            stats: Stats::default(),
            exit: None,
            exit_with,
            probes: probe::Probes::new(),
            ops,
            notify: notify::Notifier::from_env(),
            ready: false,
            stopping: false,
        }
    }

    /// Begins the initial start of the tree.
    pub fn start(&mut self, now: Time) {
        self.engine.start(now);
        self.carry_out(now);
    }

    /// Handles one event completely: engine inputs, each followed by its actions.
    pub fn handle(&mut self, event: LoopEvent, now: Time) {
        let chld = matches!(event, LoopEvent::Signal(signals::CHLD));
        match event {
            LoopEvent::Signal(sig) => self.on_signal(sig, now),
            LoopEvent::Deadline => self.feed(Input::Tick, now),
            LoopEvent::Probe(msg) => self.on_probe(msg, now),
            LoopEvent::Query(q) => self.on_query(q, now),
        }
        // Every wake-up also reaps (one `waitid(WNOHANG)` when nothing has exited): an
        // exit is never left waiting for its SIGCHLD, even if that wake-up was lost.
        if !chld {
            self.reap(now);
        }
        self.answer_waiters();
        self.notify_status();
    }

    /// vigil's exit code, once the root has finished.
    pub fn exit_code(&self) -> Option<u8> {
        self.exit
    }

    /// When [`LoopEvent::Deadline`] is due next.
    pub fn next_deadline(&self) -> Option<Time> {
        self.engine.next_deadline()
    }

    /// The engine, for reading.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// SIGKILLs the process group of every live process of the tree (vigil can no longer
    /// run its loop; the caller exits 70).
    pub fn kill_everything(&mut self) {
        for id in self.tree.ids() {
            if let Some(pid) = self.engine.view(id).pid {
                let _ = self.os.signal_group(pid, Signal::KILL);
            }
        }
    }

    /// Adopted orphans reaped so far.
    pub fn orphans_reaped(&self) -> u64 {
        self.stats.orphans
    }

    /// Feeds one input, then carries out everything it produced.
    pub(super) fn feed(&mut self, input: Input, now: Time) {
        self.engine.handle(input, now);
        self.carry_out(now);
    }

    /// Carries out every action the engine queued, answering spawns at once, and logs
    /// its events.
    fn carry_out(&mut self, now: Time) {
        loop {
            // Events first: they explain the actions queued with them.
            let mut did = false;
            while let Some(event) = self.engine.poll_event() {
                did = true;
                self.observe(&event, now);
                self.log(event);
            }
            if let Some(action) = self.engine.poll_action() {
                did = true;
                self.execute(action, now);
            }
            if !did {
                return;
            }
        }
    }

    fn execute(&mut self, action: Action, now: Time) {
        match action {
            Action::Spawn { node, token } => {
                let n = self.tree.node(node);
                let spec = n
                    .as_process()
                    .expect("UNWRAP: the engine spawns processes only");
                let prepared = match self.probes.prepare(node, spec) {
                    Ok(p) => p,
                    Err(e) => {
                        let error =
                            format!("{}: cannot set up its readiness notification: {e}", n.name);
                        error!(child = %n.name, "{error}");
                        self.engine
                            .handle(Input::SpawnFailed { node, token, error }, now);
                        return;
                    }
                };
                let spec = prepared.spec.as_ref().unwrap_or(spec);
                let result = self.os.spawn(SpawnRequest {
                    node,
                    name: &n.name,
                    spec,
                    pass_fd: prepared.pass_fd_raw(),
                });
                // The child has its copy of the notify_fd write end; vigil's must go, so
                // the pipe reports the end when the child dies.
                drop(prepared);
                let input = match result {
                    Ok(pid) => {
                        info!(child = %n.name, pid, "started");
                        self.probes.spawned(node, pid);
                        Input::Spawned { node, token, pid }
                    }
                    Err(e) => {
                        error!(child = %n.name, "{e}");
                        self.probes.spawn_failed(node);
                        Input::SpawnFailed {
                            node,
                            token,
                            error: e,
                        }
                    }
                };
                // Answered before anything else is fed (and before any await): the pid is
                // registered before it can be reaped. What the answer produces is carried
                // out by the `carry_out` loop this runs in.
                self.engine.handle(input, now);
            }
            Action::Signal { node, pid, signal } => {
                let name = &self.tree.node(node).name;
                debug!(child = %name, pid, %signal, "signalling process group");
                if let Err(e) = self.os.signal_group(pid, signal) {
                    debug!(child = %name, pid, "signal not delivered: {e}");
                }
            }
            Action::SignalLeftover { node, pid, signal } => {
                debug!(child = %self.name(node), pid, %signal, "signalling leftover");
                if let Err(e) = self.os.signal_leftover(pid, signal) {
                    debug!(pid, "signal not delivered: {e}");
                }
            }
            Action::Ready => {
                info!("all children started");
                self.ready = true;
                let status = self.summary();
                self.notify.ready(Some(&status));
            }
            Action::Watch { node, pid, probe } => {
                if let Some(spec) = self.tree.node(node).as_process() {
                    debug!(child = %self.name(node), ?probe, "watching");
                    self.probes.watch(node, pid, probe, spec);
                }
            }
            Action::Unwatch { node } => self.probes.unwatch(node),
            Action::Exit { end } => {
                let code = crate::exit::for_end(end, self.engine.stop_signal(), self.exit_with);
                match end {
                    End::Stopped => info!(code, "tree stopped"),
                    End::GaveUp { offender } => error!(
                        code,
                        offender = %self.tree.node(offender).name,
                        "root supervisor gave up: restart intensity exceeded"
                    ),
                    End::StartFailed { offender } => error!(
                        code,
                        offender = %self.tree.node(offender).name,
                        "initial start failed; everything started was stopped"
                    ),
                    End::AutoShutdown { trigger, .. } => info!(
                        code,
                        significant = %self.tree.node(trigger).name,
                        "significant child ended; tree stopped"
                    ),
                }
                self.at_exit(code);
                self.exit = Some(code);
            }
        }
    }

    pub(super) fn name(&self, node: NodeId) -> &str {
        &self.tree.node(node).name
    }

    /// Sends `STATUS=` to the service manager when the summary has changed.
    fn notify_status(&mut self) {
        if self.notify.is_enabled() {
            let status = self.summary();
            self.notify.status(&status);
        }
    }

    /// A one-line summary of the tree for `STATUS=`: how many processes run, which
    /// children are waiting to be restarted, or how many are left while stopping.
    fn summary(&self) -> String {
        let (mut total, mut running, mut alive) = (0, 0, 0);
        let mut restarting = Vec::new();
        for id in self.tree.ids() {
            let view = self.engine.view(id);
            if view.state == State::Restarting {
                restarting.push(self.name(id));
            }
            if self.tree.node(id).as_process().is_none() || view.state == State::Removed {
                continue;
            }
            total += 1;
            running += usize::from(view.state == State::Running);
            alive += usize::from(view.pid.is_some());
        }
        if self.stopping {
            return format!("stopping: {alive} processes left");
        }
        let mut text = if self.ready {
            format!("{running} of {total} processes running")
        } else {
            format!("starting: {running} of {total} processes running")
        };
        if !restarting.is_empty() {
            text.push_str("; restarting ");
            text.push_str(&restarting.join(", "));
        }
        text
    }

    fn log(&mut self, event: Event) {
        match event {
            Event::Exited {
                node,
                pid,
                status,
                expected,
            } => {
                if expected {
                    info!(child = %self.name(node), pid, %status, "stopped");
                } else {
                    warn!(child = %self.name(node), pid, %status, "exited");
                }
            }
            Event::SpawnFailed { .. } => {} // Logged with its cause where it happened.
            Event::RestartScheduled {
                node,
                supervisor,
                delay,
                count,
            } => {
                let spec = self.tree.node(supervisor).as_supervisor();
                let limit = spec.map_or(0, |s| s.intensity);
                info!(
                    child = %self.name(node),
                    supervisor = %self.name(supervisor),
                    delay = %humanize(delay),
                    restarts = %format!("{count}/{limit}"),
                    "restart scheduled"
                );
            }
            Event::NotRestarted { node, why } => {
                info!(child = %self.name(node), "not restarted: {why}")
            }
            Event::Killed { node } => {
                warn!(child = %self.name(node), "did not stop within its shutdown grace; sent SIGKILL")
            }
            Event::GaveUp {
                supervisor,
                offender,
            } => {
                let spec = self.tree.node(supervisor).as_supervisor();
                error!(
                    supervisor = %self.name(supervisor),
                    offender = %self.name(offender),
                    intensity = spec.map_or(0, |s| s.intensity),
                    period = %spec.map_or(String::new(), |s| humanize(s.period)),
                    "gave up: restart intensity exceeded"
                );
            }
            Event::SupervisorStarted { supervisor } => {
                debug!(supervisor = %self.name(supervisor), "supervisor started")
            }
            Event::Ready { node, regained } => {
                if regained {
                    info!(child = %self.name(node), "ready again");
                } else {
                    info!(child = %self.name(node), "ready");
                }
            }
            Event::NotReady { node } => warn!(child = %self.name(node), "no longer ready"),
            Event::NotReadyInTime { node, timeout } => error!(
                child = %self.name(node),
                timeout = %humanize(timeout),
                "not ready within its ready timeout; killed, start failed"
            ),
            Event::NotReadyExited { node } => {
                error!(child = %self.name(node), "exited before it was ready; start failed")
            }
            Event::HealthCheckFailed {
                node,
                failures,
                limit,
            } => warn!(
                child = %self.name(node),
                failures = %format!("{failures}/{limit}"),
                "health check failed"
            ),
            Event::Unwanted { node, pid } => warn!(
                child = %self.name(node),
                pid,
                "a spawn its supervisor no longer wanted; killed it"
            ),
            Event::Leftovers {
                node,
                count,
                kept,
                daemonized,
            } => {
                let name = self.name(node);
                if kept {
                    info!(child = %name, count, "exit left processes behind; kept (leftovers = \"keep\")");
                } else {
                    warn!(child = %name, count, "exit left processes behind (outside its process group); stopping them with its stop signal and grace");
                }
                if daemonized {
                    warn!(
                        child = %name,
                        "exited 0 at once leaving processes behind: does it daemonize? run it in the foreground (e.g. `nginx -g 'daemon off;'`, `redis-server --daemonize no`), or set leftovers = \"keep\" if it hands work to a daemon on purpose"
                    );
                }
            }
            Event::LeftoverKilled { node, pid } => warn!(
                child = %self.name(node),
                pid,
                "a leftover did not stop within the grace; sent SIGKILL"
            ),
            Event::Abandoned { pids } => {
                for (node, pid) in pids {
                    let (state, wchan) = crate::os::procfs::why_alive(pid);
                    error!(
                        child = %self.name(node),
                        pid,
                        state = %state,
                        wchan = %wchan,
                        "SIGKILL did not end it within {}; abandoned (stuck in the kernel: \
                         uninterruptible sleep or a frozen cgroup), vigil exits without it",
                        humanize(crate::core::KILL_WAIT)
                    );
                }
            }
            Event::StopRepeated { signal, ignored } => {
                if ignored {
                    info!(
                        signal = %signal,
                        "stop signal repeated within {}: the same request (as coreutils `timeout` and process-group signals deliver it); ignored",
                        humanize(crate::core::REPEAT_WINDOW)
                    );
                } else {
                    warn!(signal = %signal, "second stop signal: killing what is left");
                }
            }
            Event::Unhealthy { node } => {
                let failures = self
                    .tree
                    .node(node)
                    .as_process()
                    .and_then(|p| p.health.as_ref())
                    .map_or(0, |h| h.failures);
                error!(
                    child = %self.name(node),
                    failures,
                    "health checks failed; stopping it (counts as an abnormal exit)"
                )
            }
            Event::Stopping { supervisor, end } => {
                let why = match end {
                    End::Stopped if supervisor == NodeId::ROOT => "stop requested",
                    End::Stopped => "stopped by its supervisor",
                    End::GaveUp { .. } => "gave up",
                    End::AutoShutdown { .. } => "significant child ended",
                    End::StartFailed { .. } => "a child failed to start",
                };
                info!(supervisor = %self.name(supervisor), "stopping children: {why}");
                if supervisor == NodeId::ROOT {
                    self.stopping = true;
                    self.notify.stopping(&format!("stopping: {why}"));
                }
            }
            Event::ControlDone { .. } => {} // Answered and logged by `ops`.
        }
    }

    /// A message from a probe task.
    fn on_probe(&mut self, msg: probe::Msg, now: Time) {
        if let probe::Msg::SpawnExec { node, reply } = msg {
            if reply.is_closed() {
                return; // Its check was dropped meanwhile: nothing would wait for it.
            }
            let n = self.tree.node(node);
            let Some(spec) = n
                .as_process()
                .and_then(|p| self.probes.exec_command(node, p))
            else {
                let _ = reply.send(Err("the check is no longer wanted".into()));
                return;
            };
            let name = format!("{} (check)", n.name);
            // Spawned and registered before the next await: the reaper cannot miss it.
            let answer = match self.os.spawn_check(&name, &spec) {
                Ok(pid) => Ok((pid, self.probes.register_exec(pid))),
                Err(e) => Err(e),
            };
            let _ = reply.send(answer);
            return;
        }
        let node = match &msg {
            probe::Msg::Checked { node, .. }
            | probe::Msg::Notified { node, .. }
            | probe::Msg::Notify { node, .. }
            | probe::Msg::SpawnExec { node, .. } => *node,
        };
        let name = &self.tree.node(node).name;
        if let Some(input) = self.probes.input(msg, name) {
            self.feed(input, now);
        }
    }

    fn on_signal(&mut self, sig: Signal, now: Time) {
        match sig {
            signals::CHLD => self.reap(now),
            sig if signals::STOP_SIGNALS.contains(&sig) => {
                if self.engine.stop_signal().is_none() {
                    info!(signal = %sig, "stopping the tree");
                }
                self.feed(Input::Stop { signal: sig }, now);
            }
            signals::QUIT => {
                warn!(signal = %sig, "killing the whole tree at once");
                self.feed(Input::Kill, now);
            }
            signals::HUP => {
                warn!("SIGHUP: configuration reload is not supported yet; ignored");
            }
            other => self.log_status(other),
        }
    }

    /// SIGUSR1 and SIGUSR2 log the state of every node.
    fn log_status(&self, sig: Signal) {
        info!(signal = %sig, orphans_reaped = self.stats.orphans, "status");
        for id in self.tree.ids() {
            let view = self.engine.view(id);
            let text = self.probes.status_text(id).unwrap_or("");
            info!(node = %self.name(id), state = %view.state, pid = view.pid, ready = view.ready, status = text, "status");
        }
    }

    /// The processes the exit of `zombie` (the process of `node`) orphaned to vigil:
    /// children of vigil's that are not the tree's, not exec checks, not orphans seen
    /// before, and started after `zombie` did (only its descendants can have). An orphan
    /// that started earlier is remembered as of unknown origin. Not while vigil stops:
    /// the final sweep stops every descendant anyway.
    ///
    /// The limit (docs/ARCHITECTURE.md): a process orphaned by another child that is still
    /// running, between two exits, and started after `zombie`, would be taken for
    /// `zombie`'s. Costs one read of the main thread's `children` file per exit, and a `stat` of
    /// each pid vigil does not know.
    fn find_leftovers(&mut self, zombie: crate::core::Pid, node: NodeId) -> Vec<crate::core::Pid> {
        if self.engine.is_stopping() {
            return Vec::new();
        }
        // One read of /proc lists vigil's children; only those vigil knows nothing of
        // are looked at further (usually none: one read per exit, whatever the tree).
        let unknown: Vec<crate::core::Pid> = self
            .os
            .children()
            .into_iter()
            .filter(|&pid| {
                pid != zombie
                    && !self.engine.is_child(pid)
                    && !self.engine.is_leftover(pid)
                    && !self.probes.is_exec(pid)
                    && !self.stats.known_orphans.contains_key(&pid)
            })
            .collect();
        if unknown.is_empty() {
            return Vec::new();
        }
        let Some(born) = self.os.stat(zombie).map(|s| s.start_time) else {
            return Vec::new();
        };
        let kept = self
            .tree
            .node(node)
            .as_process()
            .is_some_and(|p| p.leftovers == crate::spec::Leftovers::Keep);
        let mut out = Vec::new();
        for pid in unknown {
            let Some(st) = self.os.stat(pid) else {
                continue; // Gone meanwhile.
            };
            // What stayed in its process group has just been SIGKILLed with the group;
            // what is in a running child's (or check's) group belongs to that one (a
            // worker a shell without job control started in the background).
            if st.pgid == zombie || self.engine.is_child(st.pgid) || self.probes.is_exec(st.pgid) {
                continue;
            }
            let from = (st.start_time >= born).then_some(node);
            if self.stats.known_orphans.len() < MAX_KNOWN_ORPHANS {
                let kept = from.is_some() && kept;
                self.stats.known_orphans.insert(pid, Orphan { from, kept });
            }
            if from.is_some() {
                out.push(pid);
            }
        }
        out
    }

    /// Drains every exit (SIGCHLDs coalesce). Each is handled completely while its
    /// process is still a zombie: what is left of its group is killed, the engine is fed
    /// and its actions carried out, and only then is it reaped, so no pid or group id the
    /// engine may still signal can have been reused. Pids that are not the tree's (nor an
    /// exec check's) are adopted orphans: reaped and counted.
    fn reap(&mut self, now: Time) {
        loop {
            let (pid, status) = match self.os.peek_exit() {
                Ok(Some(exit)) => exit,
                Ok(None) => return,
                Err(e) => {
                    error!("reaping failed: {e}");
                    return;
                }
            };
            if self.probes.is_exec(pid) {
                // An exec check: what is left of its group dies with it, as for children.
                let _ = self.os.signal_group(pid, Signal::KILL);
                self.probes.exec_exited(pid, status);
                debug!(pid, %status, "exec check finished");
            } else if self.engine.is_child(pid) {
                let _ = self.os.signal_group(pid, Signal::KILL);
                // While it is a zombie: what its exit orphaned to vigil.
                let node = self.engine.node_of(pid);
                let leftovers = match node {
                    Some(node) => self.find_leftovers(pid, node),
                    None => Vec::new(),
                };
                self.probes.child_exited(pid);
                // The leftovers first, so the log tells the exit's story in order.
                if let (Some(node), false) = (node, leftovers.is_empty()) {
                    let pids = leftovers;
                    self.feed(Input::Leftovers { node, pids, status }, now);
                }
                self.feed(Input::Exited { pid, status }, now);
            } else {
                self.stats.orphans += 1;
                self.stats.known_orphans.remove(&pid);
                debug!(pid, %status, "reaped adopted orphan");
                if self.engine.is_leftover(pid) {
                    self.feed(Input::Exited { pid, status }, now);
                }
            }
            if let Err(e) = self.os.reap(pid) {
                // Peeking again would return the same zombie: stop here; the next
                // SIGCHLD tries again.
                error!(pid, "reaping failed: {e}");
                return;
            }
        }
    }
}
