//! The runtime of `vigil run`: one event loop that connects the engine to the OS.
//!
//! ```text
//!   signals (TERM INT HUP QUIT USR1 USR2 CHLD) ─┐
//!   the engine's next deadline (one timer) ─────┤
//!   probe results (Ready / NotReady / Unhealthy)┼─► Input ─► Engine::handle(now)
//!                                               │               │
//!   reaper::drain on SIGCHLD (Exited / orphan) ─┘               ▼
//!                      Action: Spawn / Signal / Watch / Unwatch / Ready / Exit
//! ```
//!
//! This module owns the loop and the order of things: signal handlers are installed
//! before the first spawn (a PID 1 drops signals it has no handler for); every
//! [`Action::Spawn`] is carried out and answered on this thread before the next
//! `.await`, so a pid is registered before the reaper can see it exit; every SIGCHLD
//! drains all exits. It never decides anything about supervision (that is the
//! engine's), never waits for a process except through [`reaper`], and never polls:
//! when idle it sleeps until a signal or the engine's next deadline.

mod metrics;
pub mod notify;
mod ops;
pub mod output;
mod postmortem;
pub mod probe;
pub mod reaper;
pub mod signals;
pub mod spawn;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::core::{Action, End, Engine, Event, Input};
use crate::exit;
use crate::spec::{NodeId, Signal, Tree, humanize};

/// How long descendants left after the tree has stopped get between SIGTERM and SIGKILL
/// (less when `shutdown_timeout` has less left).
pub const SWEEP_GRACE: Duration = Duration::from_secs(5);

/// How long vigil waits, once the tree and the sweep are done, for child output still in
/// flight to be written (less when `shutdown_timeout` has less left).
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// `vigil run`: load the tree, supervise it, and return vigil's exit code.
///
/// `exit_with` is `--exit-with NAME` ([`crate::config::apply_exit_with`]); a name the
/// file does not define is a usage error (exit 2). `socket` is `--socket` /
/// `$VIGIL_SOCKET`, which overrides `[control] socket`.
pub fn run_main(path: &Path, exit_with: Option<&str>, socket: Option<&Path>) -> u8 {
    let mut loaded = match crate::config::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return exit::CONFIG;
        }
    };
    if let Some(name) = exit_with
        && let Err(e) = crate::config::apply_exit_with(&mut loaded.tree, name)
    {
        eprintln!("error: {}: {e}", path.display());
        eprintln!("  hint: give the name of a [process.NAME] or [supervisor.NAME] table");
        return exit::USAGE;
    }
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the event loop: {e}");
            return exit::INTERNAL;
        }
    };
    runtime.block_on(run(loaded.tree, socket))
}

/// Counters the loop keeps besides the engine's state.
#[derive(Debug, Default)]
struct Stats {
    /// Adopted orphans reaped (pids that were never a child of the tree).
    orphans: u64,
}

/// Supervises `tree` until the root finishes; returns the exit code. `socket` overrides
/// the control socket's path.
pub async fn run(tree: Tree, socket: Option<&Path>) -> u8 {
    let start_dir = prepare_process();
    let mut signals = match signals::Signals::new(signals::TREE_SIGNALS) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return exit::INTERNAL;
        }
    };
    // The control socket and HTTP endpoints listen before the first spawn.
    let (ops, mut queries) = match ops::setup(&tree, socket) {
        Ok(x) => x,
        Err(e) => {
            error!("{e}; nothing was started");
            return exit::START_FAILED;
        }
    };
    let mut lp = Loop {
        engine: Engine::new(tree.clone(), seed()),
        tree,
        start_dir,
        stats: Stats::default(),
        stop_requests: 0,
        exit: None,
        probes: probe::Probes::new(),
        ops,
        notify: notify::Notifier::from_env(),
        ready: false,
        stopping: false,
        output: output::Outputs::new(),
    };
    info!(
        pid = std::process::id(),
        children = lp.tree.nodes.len() - 1,
        "vigil starting"
    );
    lp.engine.start(now());
    let code = loop {
        lp.carry_out();
        lp.answer_waiters();
        lp.notify_status();
        if let Some(code) = lp.exit {
            break code;
        }
        let deadline = lp.engine.next_deadline();
        tokio::select! {
            sig = signals.recv() => lp.on_signal(sig),
            () = sleep_until(deadline), if deadline.is_some() => lp.engine.handle(Input::Tick, now()),
            msg = lp.probes.recv() => lp.on_probe(msg),
            Some(q) = ops::recv(&mut queries) => lp.on_query(q),
            // WATCHDOG=1 from the loop itself: it stops when the loop stops turning.
            () = lp.notify.watchdog_tick() => {}
        }
    };
    lp.probes.cleanup();
    // No more answers: waiting clients hear that vigil is exiting; the socket goes.
    drop(queries);
    lp.close_ops();
    // The sweep's grace never outlasts `shutdown_timeout`: Kubernetes' grace period ends
    // the pod at that point anyway.
    let grace = lp.engine.stop_deadline().map_or(SWEEP_GRACE, |deadline| {
        SWEEP_GRACE.min(deadline.saturating_duration_since(now()))
    });
    let stats = &lp.stats;
    sweep::sweep(&mut signals, grace, &mut |pid, status| {
        debug!(pid, %status, "reaped during sweep");
    })
    .await;
    // Child output still in pipes and queues; bounded, as stdout may never drain.
    let drain = lp.engine.stop_deadline().map_or(OUTPUT_DRAIN, |deadline| {
        OUTPUT_DRAIN.min(deadline.saturating_duration_since(now()))
    });
    if tokio::time::timeout(drain, lp.output.finish())
        .await
        .is_err()
    {
        warn!(
            "child output not fully written within {}: stdout or stderr is not being read; the rest is dropped",
            humanize(drain)
        );
    }
    info!(code, orphans_reaped = stats.orphans, "vigil exiting");
    code
}

/// The state of the loop between two wake-ups.
struct Loop {
    engine: Engine,
    /// The runtime's own copy of the tree, so specs can be read while the engine is fed.
    tree: Tree,
    /// Where children start when they set no `cwd`.
    start_dir: PathBuf,
    stats: Stats,
    stop_requests: u32,
    exit: Option<u8>,
    /// Readiness and health checks (`probe`).
    probes: probe::Probes,
    /// Control socket, HTTP, history, metrics (`ops.rs`).
    ops: ops::Ops,
    /// sd_notify to the service manager (a no-op without `NOTIFY_SOCKET`).
    notify: notify::Notifier,
    /// The initial start is complete (the engine's `Ready` action was carried out).
    ready: bool,
    /// The root has begun to stop.
    stopping: bool,
    /// Pipes, readers and writers of child output.
    output: output::Outputs,
}

impl Loop {
    /// Carries out every action the engine queued, answering spawns at once, and logs
    /// its events.
    fn carry_out(&mut self) {
        loop {
            // Events first: they explain the actions queued with them.
            let mut did = false;
            while let Some(event) = self.engine.poll_event() {
                did = true;
                self.observe(&event);
                self.log(event);
            }
            if let Some(action) = self.engine.poll_action() {
                did = true;
                self.execute(action);
            }
            if !did {
                return;
            }
        }
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { node } => {
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
                            .handle(Input::SpawnFailed { node, error }, now());
                        return;
                    }
                };
                let options = spawn::SpawnOptions {
                    pass_fd: prepared.pass_fd_raw(),
                    ..Default::default()
                };
                let spec = prepared.spec.as_ref().unwrap_or(spec);
                let result = self
                    .output
                    .spawn(node, &n.name, spec, &self.start_dir, options);
                // The child has its copy of the notify_fd write end; vigil's must go, so
                // the pipe reports the end when the child dies.
                drop(prepared);
                let input = match result {
                    Ok(pid) => {
                        info!(child = %n.name, pid, "started");
                        self.probes.spawned(node, pid);
                        Input::Spawned { node, pid }
                    }
                    Err(e) => {
                        error!(child = %n.name, "{e}");
                        self.probes.spawn_failed(node);
                        Input::SpawnFailed { node, error: e }
                    }
                };
                // Answered before any await: the pid is registered before it can be reaped.
                self.engine.handle(input, now());
            }
            Action::Signal { node, pid, signal } => {
                let name = &self.tree.node(node).name;
                debug!(child = %name, pid, %signal, "signalling process group");
                if let Err(e) = crate::sys::killpg(pid, signal) {
                    debug!(child = %name, pid, "signal not delivered: {e}");
                }
                // A stop signal reaches a stopped (SIGSTOP, SIGTSTP) process only once it
                // continues: SIGCONT after it, as systemd does, so a child that stopped
                // itself ends in its grace instead of waiting out all of it (or for ever).
                if signal != Signal::KILL
                    && signal != signals::CONT
                    && self.engine.view(node).state == "stopping"
                {
                    let _ = crate::sys::killpg(pid, signals::CONT);
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
            Action::Exit { code, end } => {
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

    fn name(&self, node: NodeId) -> &str {
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
            if view.state == "restarting" {
                restarting.push(self.name(id));
            }
            if self.tree.node(id).as_process().is_none() || view.state == "removed" {
                continue;
            }
            total += 1;
            running += usize::from(view.state == "running");
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
    fn on_probe(&mut self, msg: probe::Msg) {
        if let probe::Msg::SpawnExec { node, reply } = msg {
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
            let answer = match spawn::spawn(&name, &spec, &self.start_dir) {
                Ok(pid) => Ok((pid, self.probes.register_exec(pid))),
                Err(e) => Err(e.to_string()),
            };
            let _ = reply.send(answer);
            return;
        }
        let node = match &msg {
            probe::Msg::Checked { node, .. }
            | probe::Msg::Notified { node, .. }
            | probe::Msg::Status { node, .. }
            | probe::Msg::SpawnExec { node, .. } => *node,
        };
        let n = self.tree.node(node);
        let failures = n
            .as_process()
            .and_then(|p| p.health.as_ref())
            .map_or(1, |h| h.failures);
        if let Some(input) = self.probes.input(msg, &n.name, failures) {
            self.engine.handle(input, now());
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        match sig {
            signals::CHLD => self.reap(),
            signals::TERM | signals::INT => {
                self.stop_requests += 1;
                if self.stop_requests == 1 {
                    info!(signal = %sig, "stopping the tree");
                    self.engine.handle(Input::Stop, now());
                } else {
                    warn!(signal = %sig, "second stop signal: killing what is left");
                    self.engine.handle(Input::Kill, now());
                }
            }
            signals::QUIT => {
                warn!(signal = %sig, "killing the whole tree at once");
                self.stop_requests += 1;
                self.engine.handle(Input::Kill, now());
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
            info!(node = %self.name(id), state = view.state, pid = view.pid, ready = view.ready, status = text, "status");
        }
    }

    /// Drains every exit: children go to the engine, anything else is an adopted orphan.
    fn reap(&mut self) {
        let engine = &mut self.engine;
        let stats = &mut self.stats;
        let probes = &mut self.probes;
        let result = reaper::drain(&mut |pid, status| {
            if probes.exec_exited(pid, status) {
                // An exec check: what is left of its group dies with it, as for children.
                let _ = crate::sys::killpg(pid, Signal::KILL);
                debug!(pid, %status, "exec check finished");
            } else if engine.is_child(pid) {
                // The leader is still a zombie, so its group id cannot have been reused:
                // whatever is left of the group dies with it.
                let _ = crate::sys::killpg(pid, Signal::KILL);
                probes.child_exited(pid);
                engine.handle(Input::Exited { pid, status }, now());
            } else {
                stats.orphans += 1;
                debug!(pid, %status, "reaped adopted orphan");
            }
        });
        if let Err(e) = result {
            error!("reaping failed: {e}");
        }
    }
}

/// Process-wide preparation before anything is spawned, shared by `vigil run` and
/// `vigil exec`. Returns the directory vigil was started in (children start there).
///
/// - Unblocks every signal: a mask inherited from vigil's parent would otherwise hold back
///   SIGCHLD and SIGTERM for ever (handlers never run for a blocked signal).
/// - Becomes a child subreaper when not PID 1, or says why it cannot, what that breaks,
///   and how to fix it.
/// - Marks inherited descriptors close-on-exec, so children get 0, 1 and 2 only.
/// - Changes to `/`, so vigil never pins the directory it was started in.
pub fn prepare_process() -> PathBuf {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        warn!(
            "cannot unblock inherited blocked signals ({e}); vigil may not see SIGCHLD or SIGTERM"
        );
    }
    if crate::sys::is_pid1() {
        info!("running as PID 1");
    } else if let Err(e) = crate::sys::set_child_subreaper() {
        warn!(
            "not running as PID 1 and cannot become a child subreaper ({e}): orphaned \
             descendants will be reparented elsewhere, so vigil can neither reap nor stop \
             them; run vigil as PID 1 (a container's entrypoint) or on Linux >= 3.4"
        );
    }
    if let Err(e) = crate::sys::mark_inherited_fds_cloexec() {
        warn!("cannot mark inherited descriptors close-on-exec ({e}); children may inherit them");
    }
    let start_dir = std::env::current_dir().unwrap_or_else(|e| {
        warn!("cannot read the current directory ({e}); children start in /");
        PathBuf::from("/")
    });
    if let Err(e) = std::env::set_current_dir("/") {
        warn!("cannot change directory to / ({e}); vigil keeps its start directory busy");
    }
    start_dir
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Seed for the backoff jitter: differs between runs and between containers.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
