//! The engine's state machine: per-node state, per-supervisor programs, timers.
//!
//! Each supervisor runs a *program*: a queue of [`Step`]s (start this child, terminate
//! that one, report started, finish) executed one at a time, like OTP's synchronous
//! `start_children/2` and `terminate_children/2`. A step that must wait for the outside
//! world (a spawn result, a child's death) parks the supervisor in `waiting`. Exits of
//! its children that arrive meanwhile queue in its `mailbox`, as `'EXIT'` messages queue
//! in an OTP supervisor's mailbox, and are handled once the program has finished. A
//! terminate step that finds its child already dead consumes the queued exit, as
//! `unlink_flush/2` does. Supervisors are independent: one child's long shutdown never
//! blocks another subtree.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use crate::Time;

use super::backoff::{self, Rng};
use super::intensity::Window;
use crate::spec::{
    AutoShutdown, ExitStatus, Leftovers, NodeId, NodeKind, Restart, Shutdown, Signal, Strategy,
    Tree,
};
pub use readiness::Probe;

mod readiness;

// Manual control (operator commands) and readiness: an `impl Engine` in its own file.
mod control;
pub use control::{Command, ControlError, Done, Unready};

/// An OS process id, as far as the engine cares.
pub type Pid = i32;

/// How long after a first stop signal an identical one counts as the same request.
///
/// coreutils `timeout`, a shell's job control and anything else that signals a whole
/// process group deliver the stop signal to vigil twice within microseconds; only a
/// repeat after this window (a person pressing Ctrl-C again) means "kill what is left".
pub const REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// How long the root waits for its processes to die once it has SIGKILLed them all (a
/// repeated stop signal, SIGQUIT, or `shutdown_timeout` passed). A process that SIGKILL
/// does not end in that time (uninterruptible sleep, a frozen cgroup) is abandoned:
/// [`Event::Abandoned`] names it and vigil exits anyway, so `shutdown_timeout` is a
/// promise.
pub const KILL_WAIT: Duration = Duration::from_secs(1);

/// A process that exits 0 this soon after its start, leaving processes behind, most
/// likely daemonized: the log says so, with the fix.
pub const DAEMONIZE_HINT: Duration = Duration::from_secs(1);

/// Names one [`Action::Spawn`]; its answer ([`Input::Spawned`] or [`Input::SpawnFailed`])
/// carries it back, so an answer the engine no longer wants is recognised (OTP's
/// `{restarting, OldPid}`: a start is matched to the request that asked for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// Where a node is in its life, as [`Engine::view`] shows it (`vigil status`, `/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running; the spec is kept.
    Stopped,
    /// Its spawn was asked for and not answered yet.
    Starting,
    /// Running (a supervisor: its program runs).
    Running,
    /// Ended by itself; its supervisor will handle the exit.
    Exited,
    /// Waiting out its backoff before a restart.
    Restarting,
    /// Being stopped by vigil.
    Stopping,
    /// A temporary child that ended: gone until its supervisor restarts.
    Removed,
}

impl State {
    /// The word `vigil status`, logs and the HTTP API use.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Exited => "exited",
            State::Restarting => "restarting",
            State::Stopping => "stopping",
            State::Removed => "removed",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened, fed into [`Engine::handle`].
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The [`Action::Spawn`] with `token` started process `pid` (it leads process group
    /// `pid`). Answers may come in any order with other inputs: one the engine no longer
    /// wants is killed and tracked until reaped, never adopted.
    Spawned {
        /// The process node that was spawned.
        node: NodeId,
        /// The token of the [`Action::Spawn`] this answers.
        token: Token,
        /// Its pid, which is also its process group id.
        pid: Pid,
    },
    /// The [`Action::Spawn`] with `token` could not be carried out.
    SpawnFailed {
        /// The process node.
        node: NodeId,
        /// The token of the [`Action::Spawn`] this answers.
        token: Token,
        /// What went wrong, for the log.
        error: String,
    },
    /// The reaper collected `pid`. Unknown pids (adopted orphans) are ignored.
    Exited {
        /// The reaped pid.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },
    /// A stop signal (SIGTERM, SIGINT) reached vigil. The first stops the whole tree
    /// gracefully; a repeat within [`REPEAT_WINDOW`] is the same request delivered twice
    /// (ignored); a later one kills what is left at once.
    Stop {
        /// The signal, remembered for the exit code of an interrupted `--exit-with` run.
        signal: Signal,
    },
    /// Kill everything still alive at once (SIGQUIT; remembered as the stop signal if it
    /// is the first).
    Kill,
    /// A deadline from [`Engine::next_deadline`] has passed.
    Tick,
    /// The `ready` check of `node` passed (its start completes).
    Ready {
        /// The process node.
        node: NodeId,
    },
    /// One health check of running `node` ended. The engine counts failures in a row: the
    /// first makes the process not ready, `health.failures` of them stop it (its exit then
    /// counts as abnormal); a pass makes it ready again.
    HealthCheck {
        /// The process node.
        node: NodeId,
        /// Whether the check passed.
        passed: bool,
    },
    /// The process of `node` has exited with `status` (its [`Input::Exited`] follows),
    /// and these processes had just been orphaned to vigil (they left its process group:
    /// `setsid`, a daemonizing helper). Per its `leftovers`, they are stopped with its
    /// stop signal and grace, or kept.
    Leftovers {
        /// The process whose exit left them.
        node: NodeId,
        /// Their pids.
        pids: Vec<Pid>,
        /// How the process ended.
        status: ExitStatus,
    },
    /// An operator's command; answered once by [`Event::ControlDone`] with the same `id`.
    Control {
        /// The caller's id for the answer.
        id: u64,
        /// What to do.
        command: Command,
    },
}

/// Something the runtime must do.
#[must_use = "actions must be carried out"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Spawn the process of `node`, then feed [`Input::Spawned`] or [`Input::SpawnFailed`]
    /// with `token`.
    Spawn {
        /// The process node to spawn.
        node: NodeId,
        /// Carried back by the answer.
        token: Token,
    },
    /// Send `signal` to the process group led by `pid` (the process of `node`). A stop
    /// signal other than SIGKILL is followed by a `SIGCONT` action, so a stopped process
    /// receives it.
    Signal {
        /// The process node.
        node: NodeId,
        /// Its pid and process group id.
        pid: Pid,
        /// The signal.
        signal: Signal,
    },
    /// Send `signal` to leftover `pid` (to the process group it leads, if it leads one).
    SignalLeftover {
        /// The process whose exit left it.
        node: NodeId,
        /// The leftover process.
        pid: Pid,
        /// The signal.
        signal: Signal,
    },
    /// The initial start of the whole tree has completed.
    Ready,
    /// Run `probe` for process `node` (pid `pid`), replacing any probe of it, and feed
    /// [`Input::Ready`], [`Input::NotReady`] or [`Input::Unhealthy`].
    Watch {
        /// The process node.
        node: NodeId,
        /// Its pid.
        pid: Pid,
        /// Which check.
        probe: Probe,
    },
    /// Stop probing `node` (it is ready, or being stopped, or gone).
    Unwatch {
        /// The process node.
        node: NodeId,
    },
    /// The root has finished: sweep leftovers and exit (the `vigil` crate turns `end`
    /// into an exit code).
    Exit {
        /// Why the root finished.
        end: End,
    },
}

/// Something worth a log line.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A process exited. `expected` is true when vigil had asked it to stop.
    Exited {
        /// The process node.
        node: NodeId,
        /// Its pid.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
        /// Whether vigil had asked it to stop.
        expected: bool,
    },
    /// A spawn failed.
    SpawnFailed {
        /// The process node.
        node: NodeId,
        /// The error.
        error: String,
    },
    /// A restart was counted against `supervisor`'s intensity and will happen after `delay`.
    RestartScheduled {
        /// The child that will be restarted (with its group, per the strategy).
        node: NodeId,
        /// Its supervisor.
        supervisor: NodeId,
        /// Backoff delay.
        delay: Duration,
        /// Restarts now counted in the supervisor's window.
        count: usize,
    },
    /// A child exited and is not restarted (transient normal exit, or temporary).
    NotRestarted {
        /// The child.
        node: NodeId,
        /// Why not.
        why: &'static str,
    },
    /// A child did not stop within its shutdown grace; it was sent SIGKILL.
    Killed {
        /// The child.
        node: NodeId,
    },
    /// A supervisor reached its restart intensity and gives up.
    GaveUp {
        /// The supervisor.
        supervisor: NodeId,
        /// The child whose exit was one too many.
        offender: NodeId,
    },
    /// A supervisor (re)started: a fresh intensity window, every child spec back.
    SupervisorStarted {
        /// The supervisor.
        supervisor: NodeId,
    },
    /// A process became ready; `regained` after it had lost readiness while running.
    Ready {
        /// The process.
        node: NodeId,
        /// Whether it was ready before (a health check passed again).
        regained: bool,
    },
    /// A running process lost readiness (a health check failed).
    NotReady {
        /// The process.
        node: NodeId,
    },
    /// A process was not ready within its `ready.timeout`; it is killed, and its start
    /// has failed.
    NotReadyInTime {
        /// The process.
        node: NodeId,
        /// Its `ready.timeout`.
        timeout: Duration,
    },
    /// A process exited before it was ready; its start has failed.
    NotReadyExited {
        /// The process.
        node: NodeId,
    },
    /// A health check of a running process failed (`failures` in a row so far, of the
    /// `limit` that stop it).
    HealthCheckFailed {
        /// The process.
        node: NodeId,
        /// Failures in a row, this one included.
        failures: u32,
        /// `health.failures`.
        limit: u32,
    },
    /// A process failed `health.failures` checks in a row; it is stopped and its exit
    /// counts as abnormal.
    Unhealthy {
        /// The process.
        node: NodeId,
    },
    /// The answer to a spawn that was no longer wanted (its supervisor had moved on): the
    /// new process is killed and tracked until reaped.
    Unwanted {
        /// The process node.
        node: NodeId,
        /// The pid of the unwanted process.
        pid: Pid,
    },
    /// A process's exit left processes behind ([`Input::Leftovers`]).
    Leftovers {
        /// The process.
        node: NodeId,
        /// How many.
        count: usize,
        /// They are kept (`leftovers = "keep"`); otherwise they are being stopped.
        kept: bool,
        /// The process exited 0 within [`DAEMONIZE_HINT`] of its start: it probably
        /// daemonized (forked into the background and exited).
        daemonized: bool,
    },
    /// A leftover process did not stop within the grace; it was sent SIGKILL.
    LeftoverKilled {
        /// The process whose exit left it.
        node: NodeId,
        /// The leftover.
        pid: Pid,
    },
    /// The root gave up waiting for processes that SIGKILL did not end within
    /// [`KILL_WAIT`]; vigil finishes without them.
    Abandoned {
        /// The processes still alive, with their nodes.
        pids: Vec<(NodeId, Pid)>,
    },
    /// A stop signal arrived while vigil was already stopping.
    StopRepeated {
        /// The signal.
        signal: Signal,
        /// True: it came within [`REPEAT_WINDOW`] of the first and was taken as the same
        /// request; false: it escalates to killing what is left.
        ignored: bool,
    },
    /// A supervisor begins stopping all its children.
    Stopping {
        /// The supervisor.
        supervisor: NodeId,
        /// Why.
        end: End,
    },
    /// An operator's command ([`Input::Control`]) completed or was refused.
    ControlDone {
        /// The id it was given.
        id: u64,
        /// The command.
        command: Command,
        /// What it did, or why not.
        result: Result<Done, ControlError>,
    },
}

/// Why a supervisor ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Asked to stop: by its parent, or (root) by a signal to vigil.
    Stopped,
    /// Its restart intensity was exceeded by `offender`'s exit.
    GaveUp {
        /// The child whose exit was one too many.
        offender: NodeId,
    },
    /// A significant child ended (`auto_shutdown`).
    AutoShutdown {
        /// The significant child.
        trigger: NodeId,
        /// The status of the process at the origin of the chain, if it was a process.
        status: Option<ExitStatus>,
        /// Whether the chain started with a supervisor giving up.
        gave_up: bool,
    },
    /// A child failed to start during the initial start.
    StartFailed {
        /// The child that failed.
        offender: NodeId,
    },
}

/// How a child ended, as its supervisor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// A process's wait status.
    Process(ExitStatus),
    /// A child supervisor ended by itself (OTP reason `shutdown`).
    Supervisor(End),
    /// A process vigil stopped because its health checks failed: abnormal, whatever
    /// its wait status.
    Unhealthy(ExitStatus),
}

/// A read-only view of one node, for tests and status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Where it is in its life.
    pub state: State,
    /// The pid, for a running or stopping process.
    pub pid: Option<Pid>,
    /// A running process that is ready: spawned without `ready`, or its `ready` check
    /// passed and its last health check (if any) did not fail.
    pub ready: bool,
}

/// Where a node is in its life, from its supervisor's point of view.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    /// Not running; the spec is kept (OTP `pid = undefined`).
    Stopped,
    /// A process whose [`Action::Spawn`] (with this token) is not answered yet; its
    /// supervisor waits in `Wait::Started`.
    Starting { token: Token },
    /// Running. Processes have a pid; supervisors run their own program.
    Running { pid: Option<Pid>, since: Time },
    /// Dead by itself; its supervisor has an `Exit` message queued for it.
    Exited { reason: ExitReason },
    /// A restart was decided; it happens at `at` (OTP `{restarting, Pid}`).
    Restarting { at: Time },
    /// Being stopped by vigil. `kill_at` is when SIGKILL follows, if ever. A process
    /// whose spawn is not answered yet (`NodeState::spawn`) has no pid: it is killed as
    /// soon as the answer comes.
    Stopping {
        pid: Option<Pid>,
        kill_at: Option<Time>,
        killed: bool,
    },
}

/// One step of a supervisor's program.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// Start this child (OTP `do_start_child`).
    Start(NodeId),
    /// Terminate this child per its shutdown spec (OTP `do_terminate`).
    Terminate(NodeId),
    /// The initial start is complete: tell the parent.
    Started,
    /// All children are down: end this supervisor.
    Finish(End),
    /// An operator's command has completed: answer it.
    Reply(u64, Command),
}

/// What a supervisor's current step waits for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    Started(NodeId),
    Terminated(NodeId),
    /// A brutal kill of the whole subtree is under way.
    SubtreeDead,
}

/// A queued message for a supervisor; stale ones are recognised by the incarnation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Msg {
    Exit(NodeId, u64),
    RestartDue(NodeId, u64),
    /// An operator's command, run when the supervisor's program is done.
    Control(u64, Command),
}

/// Timers, validated against the node's state when they fire (stale ones are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// SIGKILL a process whose grace has passed.
    Kill(NodeId),
    /// SIGKILL the subtree of a supervisor whose shutdown grace has passed.
    KillSubtree(NodeId),
    /// A restart delay has passed.
    RestartDue(NodeId),
    /// The overall `shutdown_timeout` has passed.
    StopDeadline,
    /// A process's `ready.timeout` has passed.
    ReadyDeadline(NodeId),
    /// A leftover's grace has passed.
    KillLeftover(Pid),
    /// [`KILL_WAIT`] has passed since the whole tree was SIGKILLed.
    Abandon,
}

#[derive(Debug)]
struct SupState {
    window: Window,
    program: VecDeque<Step>,
    waiting: Option<Wait>,
    mailbox: VecDeque<Msg>,
    /// In the initial start: a start failure aborts instead of counting a restart.
    initial: bool,
    /// Processes alive in the subtree.
    live: u32,
}

#[derive(Debug)]
struct NodeState {
    status: Status,
    /// Bumped at every start, so messages about an earlier life are recognised.
    incarnation: u64,
    /// Consecutive restarts, for the backoff schedule.
    attempt: u32,
    /// When the current (or last) process was spawned, for the backoff reset.
    spawned_at: Option<Time>,
    /// A temporary child that ended: gone from its supervisor (OTP deletes its spec).
    removed: bool,
    /// The spawn asked for and not answered yet. At most one per node: a node is started
    /// only from `Stopped`, and a node with an unanswered spawn is `Starting` or
    /// `Stopping` until the answer comes (at most one live process per node).
    spawn: Option<Token>,
    sup: Option<SupState>,
}

/// How a stop goes per a `shutdown` spec: `(brutal, kill_at)`. Brutal: SIGKILL at once.
/// Otherwise the stop signal, then SIGKILL at `kill_at` (never for `infinity`).
fn stop_plan(shutdown: Shutdown, now: Time) -> (bool, Option<Time>) {
    match shutdown {
        Shutdown::BrutalKill => (true, None),
        Shutdown::Timeout(d) if d.is_zero() => (true, None),
        Shutdown::Timeout(d) => (false, Some(now + d)),
        Shutdown::Infinity => (false, None),
    }
}

/// The supervision tree as a deterministic state machine.
pub struct Engine {
    tree: Tree,
    nodes: Vec<NodeState>,
    pids: HashMap<Pid, NodeId>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    timers: BinaryHeap<Reverse<(Time, Timer)>>,
    ready: VecDeque<NodeId>,
    /// Readiness and health state per node (see `readiness`).
    probes: Vec<readiness::NodeProbe>,
    rng: Rng,
    /// vigil itself is stopping: nothing is started or restarted any more.
    stopping: bool,
    stop_deadline: Option<Time>,
    finished: bool,
    /// Operator commands accepted and not answered yet.
    pending_controls: Vec<control::Pending>,
    /// The token of the next [`Action::Spawn`].
    next_token: u64,
    /// Processes whose spawn answer was not expected at all (an unknown token): killed
    /// and tracked until reaped, so their exit is neither a child's nor an orphan's.
    strays: HashMap<Pid, NodeId>,
    /// The first stop signal and when it came (for [`REPEAT_WINDOW`] and the exit code).
    stop_request: Option<(Time, Signal)>,
    /// When the root gives up waiting for what it SIGKILLed ([`KILL_WAIT`] after it).
    abandon_at: Option<Time>,
    /// Leftovers being stopped: the process whose exit left them, and when SIGKILL
    /// follows. Bounded by the processes that exist (an entry goes when it is reaped).
    leftovers: HashMap<Pid, Leftover>,
}

/// A leftover being stopped.
#[derive(Clone, Copy, Debug)]
struct Leftover {
    node: NodeId,
    kill_at: Option<Time>,
}

impl Engine {
    /// An engine for `tree`, with jitter drawn from a generator seeded with `seed`.
    /// Nothing happens until [`Engine::start`].
    pub fn new(tree: Tree, seed: u64) -> Engine {
        let nodes = tree
            .nodes
            .iter()
            .map(|n| NodeState {
                status: Status::Stopped,
                incarnation: 0,
                attempt: 0,
                spawned_at: None,
                removed: false,
                spawn: None,
                sup: n.as_supervisor().map(|s| SupState {
                    window: Window::new(s.intensity, s.period),
                    program: VecDeque::new(),
                    waiting: None,
                    mailbox: VecDeque::new(),
                    initial: true,
                    live: 0,
                }),
            })
            .collect();
        let probes = vec![readiness::NodeProbe::default(); tree.nodes.len()];
        Engine {
            tree,
            nodes,
            pids: HashMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            probes,
            rng: Rng::new(seed),
            stopping: false,
            stop_deadline: None,
            finished: false,
            pending_controls: Vec::new(),
            next_token: 0,
            strays: HashMap::new(),
            stop_request: None,
            leftovers: HashMap::new(),
            abandon_at: None,
        }
    }

    /// The tree this engine supervises.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Begins the initial start of the whole tree, in order.
    pub fn start(&mut self, now: Time) {
        self.init_supervisor(NodeId::ROOT, now);
        self.settle(now);
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: Time) {
        if let Input::Control { id, command } = input {
            self.control(id, command);
            self.settle(now);
            self.sweep_controls();
            return;
        }
        if self.finished {
            // Nothing runs any more, but a late spawn answer still gets its process killed.
            if let Input::Spawned { node, pid, .. } = input {
                self.unwanted(node, pid);
            } else if let Input::Exited { pid, .. } = input {
                self.strays.remove(&pid);
                self.leftovers.remove(&pid);
            }
            return;
        }
        match input {
            Input::Spawned { node, token, pid } => self.on_spawned(node, token, pid, now),
            Input::SpawnFailed { node, token, error } => {
                self.on_spawn_failed(node, token, error, now)
            }
            Input::Exited { pid, status } => self.on_exited(pid, status, now),
            Input::Stop { signal } => self.on_stop_signal(signal, now),
            Input::Kill => {
                // SIGQUIT is a stop signal too: an interrupted `--exit-with` run exits 131.
                self.stop_request.get_or_insert((now, Signal::QUIT));
                if !self.stopping {
                    self.begin_stopping(now);
                }
                self.kill_tree(End::Stopped, now);
            }
            Input::Tick | Input::Control { .. } => {}
            Input::Ready { node } => self.on_ready(node),
            Input::HealthCheck { node, passed } => self.on_health_check(node, passed, now),
            Input::Leftovers { node, pids, status } => self.on_leftovers(node, pids, status, now),
        }
        self.settle(now);
        self.sweep_controls();
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing to log, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Input::Tick`] must be fed next; `None` when no timer is armed.
    pub fn next_deadline(&self) -> Option<Time> {
        if self.finished {
            return None;
        }
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// When the overall `shutdown_timeout` of the current stop runs out, if one is set and
    /// vigil is stopping. Stays set after it has passed.
    pub fn stop_deadline(&self) -> Option<Time> {
        self.stop_deadline
    }

    /// Whether `pid` belongs to a child of the tree, or to a spawn the engine did not want
    /// and has killed (otherwise it is an adopted orphan).
    pub fn is_child(&self, pid: Pid) -> bool {
        self.pids.contains_key(&pid) || self.strays.contains_key(&pid)
    }

    /// The node whose process `pid` is (not for killed unwanted spawns).
    pub fn node_of(&self, pid: Pid) -> Option<NodeId> {
        self.pids.get(&pid).copied()
    }

    /// Whether `pid` is a leftover being stopped (an adopted orphan whose exit the engine
    /// wants to hear of, to cancel its SIGKILL).
    pub fn is_leftover(&self, pid: Pid) -> bool {
        self.leftovers.contains_key(&pid)
    }

    /// The first stop signal vigil received, if any (an interrupted `--exit-with` run
    /// exits with 128 + its number).
    pub fn stop_signal(&self) -> Option<Signal> {
        self.stop_request.map(|(_, signal)| signal)
    }

    /// Whether the root has finished ([`Action::Exit`] was queued).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The state of one node.
    pub fn view(&self, node: NodeId) -> NodeView {
        let st = &self.nodes[node.index()];
        let (state, pid) = match st.status {
            _ if st.removed => (State::Removed, None),
            Status::Stopped => (State::Stopped, None),
            Status::Starting { .. } => (State::Starting, None),
            Status::Running { pid, .. } => (State::Running, pid),
            Status::Exited { .. } => (State::Exited, None),
            Status::Restarting { .. } => (State::Restarting, None),
            Status::Stopping { pid, .. } => (State::Stopping, pid),
        };
        NodeView {
            state,
            pid,
            ready: self.probe_ready(node),
        }
    }

    // ----- inputs -----

    /// Whether `token` is the unanswered spawn of `node` (and takes it).
    fn take_spawn(&mut self, node: NodeId, token: Token) -> bool {
        let Some(st) = self.nodes.get_mut(node.index()) else {
            return false;
        };
        if st.spawn != Some(token) {
            return false;
        }
        st.spawn = None;
        true
    }

    fn on_spawned(&mut self, node: NodeId, token: Token, pid: Pid, now: Time) {
        if !self.take_spawn(node, token) {
            // Not a spawn this engine asked for (or answered twice): never adopted.
            self.unwanted(node, pid);
            return;
        }
        let st = &mut self.nodes[node.index()];
        st.incarnation += 1;
        st.spawned_at = Some(now);
        self.pids.insert(pid, node);
        match st.status {
            Status::Starting { .. } => {
                st.status = Status::Running {
                    pid: Some(pid),
                    since: now,
                };
                if !self.await_ready(node, pid, now) {
                    self.step_done(node, Wait::Started(node));
                }
            }
            _ => {
                // Its supervisor stopped wanting it while the spawn was under way (it is
                // being terminated): the new process is killed, and the termination
                // completes when it is reaped.
                st.status = Status::Stopping {
                    pid: Some(pid),
                    kill_at: None,
                    killed: false,
                };
                self.events.push_back(Event::Unwanted { node, pid });
                self.kill_process(node, pid);
            }
        }
    }

    /// A process nobody asked for: SIGKILL its group and remember it until it is reaped.
    fn unwanted(&mut self, node: NodeId, pid: Pid) {
        self.strays.insert(pid, node);
        self.events.push_back(Event::Unwanted { node, pid });
        self.actions.push_back(Action::Signal {
            node,
            pid,
            signal: Signal::KILL,
        });
    }

    fn on_spawn_failed(&mut self, node: NodeId, token: Token, error: String, now: Time) {
        if !self.take_spawn(node, token) {
            return; // An answer to nothing this engine is waiting for.
        }
        self.events.push_back(Event::SpawnFailed { node, error });
        self.release_live(node);
        let was_starting = matches!(self.nodes[node.index()].status, Status::Starting { .. });
        self.nodes[node.index()].status = Status::Stopped;
        if !was_starting {
            // Being terminated while its spawn was under way: nothing to stop any more.
            self.terminated(node);
            return;
        }
        let parent = self.parent(node);
        if self.sup(parent).waiting == Some(Wait::Started(node)) {
            self.sup_mut(parent).waiting = None;
            self.start_failed(parent, node, now);
        }
    }

    /// One process under each ancestor of `node` is gone (reaped, or its spawn failed).
    fn release_live(&mut self, node: NodeId) {
        for a in self.ancestors(node) {
            let sup = self.sup_mut(a);
            sup.live = sup.live.saturating_sub(1);
            if sup.live == 0 && sup.waiting == Some(Wait::SubtreeDead) {
                sup.waiting = None;
                self.ready.push_back(a);
            }
        }
    }

    fn on_exited(&mut self, pid: Pid, status: ExitStatus, now: Time) {
        if self.strays.remove(&pid).is_some() || self.leftovers.remove(&pid).is_some() {
            return; // A process the engine never adopted; its stop is done.
        }
        let Some(node) = self.pids.remove(&pid) else {
            return; // An adopted orphan: OTP ignores 'EXIT' from unknown pids.
        };

        self.release_live(node);
        let expected = matches!(self.nodes[node.index()].status, Status::Stopping { .. });
        self.events.push_back(Event::Exited {
            node,
            pid,
            status,
            expected,
        });
        let (unhealthy, handled) = self.probe_exit(node, status, now);
        if handled {
            return;
        }
        if let Some(reason) = unhealthy {
            self.exited_by_itself(node, reason);
        } else if expected {
            self.terminated(node);
        } else {
            self.exited_by_itself(node, ExitReason::Process(status));
        }
    }

    // ----- the interpreter -----

    /// Runs every supervisor that can make progress and every timer that is due.
    fn settle(&mut self, now: Time) {
        loop {
            while let Some(s) = self.ready.pop_front() {
                self.run(s, now);
            }
            if !self.fire_due_timer(now) {
                break;
            }
        }
        // Drop stale timers so `next_deadline` only reports live ones.
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if self.timer_valid(at, timer) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Executes `s`'s program, then its mailbox, until it has to wait.
    fn run(&mut self, s: NodeId, now: Time) {
        loop {
            if self.finished {
                return;
            }
            // A supervisor killed with its parent's subtree is inert until started again:
            // nothing queued for it may start or restart anything.
            if s != NodeId::ROOT && matches!(self.nodes[s.index()].status, Status::Stopped) {
                let sup = self.sup_mut(s);
                sup.mailbox.clear();
                sup.program.clear();
                return;
            }
            let sup = self.sup_mut(s);
            if sup.waiting.is_some() {
                return;
            }
            if let Some(step) = sup.program.pop_front() {
                self.exec_step(s, step, now);
            } else if let Some(msg) = sup.mailbox.pop_front() {
                self.exec_msg(s, msg, now);
            } else {
                return;
            }
        }
    }

    fn exec_step(&mut self, s: NodeId, step: Step, now: Time) {
        match step {
            Step::Start(c) => self.start_child(s, c, now),
            Step::Terminate(c) => self.terminate_child(s, c, now),
            Step::Started => {
                self.sup_mut(s).initial = false;
                if s == NodeId::ROOT {
                    self.actions.push_back(Action::Ready);
                } else {
                    self.step_done(s, Wait::Started(s));
                }
            }
            Step::Finish(end) => self.finish(s, end, now),
            Step::Reply(id, command) => self.exec_reply(id, command),
        }
    }

    fn exec_msg(&mut self, s: NodeId, msg: Msg, now: Time) {
        match msg {
            Msg::Exit(c, inc) => {
                let st = &self.nodes[c.index()];
                if let (Status::Exited { reason }, true) = (st.status, st.incarnation == inc) {
                    self.do_restart(s, c, reason, now);
                }
            }
            Msg::RestartDue(c, inc) => {
                let st = &self.nodes[c.index()];
                if let (Status::Restarting { .. }, true) = (st.status, st.incarnation == inc) {
                    self.restart_group(s, c);
                }
            }
            Msg::Control(id, command) => self.exec_control(s, id, command),
        }
    }

    /// OTP `do_start_child`: spawn a process, or run a child supervisor's `init`.
    fn start_child(&mut self, s: NodeId, c: NodeId, now: Time) {
        let st = &mut self.nodes[c.index()];
        if self.stopping || st.removed {
            return;
        }
        match st.status {
            Status::Starting { .. }
            | Status::Running { .. }
            | Status::Stopping { .. }
            | Status::Exited { .. } => return,
            Status::Stopped | Status::Restarting { .. } => st.status = Status::Stopped,
        }
        self.sup_mut(s).waiting = Some(Wait::Started(c));
        match self.tree.node(c).kind {
            NodeKind::Process(_) => {
                let token = Token(self.next_token);
                self.next_token += 1;
                let st = &mut self.nodes[c.index()];
                st.status = Status::Starting { token };
                st.spawn = Some(token);
                // Counted as live from the request on: a subtree kill waits for the answer.
                for a in self.ancestors(c) {
                    self.sup_mut(a).live += 1;
                }
                self.actions.push_back(Action::Spawn { node: c, token });
            }
            NodeKind::Supervisor(_) => self.init_supervisor(c, now),
        }
    }

    /// OTP `init/1` + `start_children/2` of a (child) supervisor: a fresh window, every
    /// child spec back (temporary ones included), then start in order.
    fn init_supervisor(&mut self, s: NodeId, now: Time) {
        let spec = self
            .tree
            .node(s)
            .as_supervisor()
            .expect("UNWRAP: s is a supervisor");
        let children = spec.children.clone();
        let window = Window::new(spec.intensity, spec.period);
        for &c in &children {
            let st = &mut self.nodes[c.index()];
            st.removed = false;
            st.attempt = 0;
            st.status = Status::Stopped;
        }
        let st = &mut self.nodes[s.index()];
        st.incarnation += 1;
        st.status = Status::Running {
            pid: None,
            since: now,
        };
        let sup = self.sup_mut(s);
        sup.window = window;
        sup.mailbox.clear();
        sup.waiting = None;
        sup.initial = true;
        sup.program = children.into_iter().map(Step::Start).collect();
        sup.program.push_back(Step::Started);
        self.ready.push_back(s);
        self.events
            .push_back(Event::SupervisorStarted { supervisor: s });
    }

    /// OTP `do_terminate` + `shutdown/1`: stop one child per its shutdown spec.
    fn terminate_child(&mut self, s: NodeId, c: NodeId, now: Time) {
        let node = self.tree.node(c);
        let shutdown = node.shutdown;
        let stop_signal = node.as_process().map_or(Signal::TERM, |p| p.stop_signal);
        match self.nodes[c.index()].status {
            Status::Stopped | Status::Restarting { .. } => {
                self.nodes[c.index()].status = Status::Stopped;
                self.drop_if_temporary(c);
            }
            // Already dead by itself: its queued exit is consumed (`unlink_flush`).
            Status::Exited { .. } => {
                self.nodes[c.index()].status = Status::Stopped;
                self.drop_if_temporary(c);
            }
            Status::Stopping { .. } => self.sup_mut(s).waiting = Some(Wait::Terminated(c)),
            // Its spawn is under way: the process is killed as soon as the answer comes
            // (or nothing is left to stop if the spawn fails).
            Status::Starting { .. } => {
                self.nodes[c.index()].status = Status::Stopping {
                    pid: None,
                    kill_at: None,
                    killed: true,
                };
                self.sup_mut(s).waiting = Some(Wait::Terminated(c));
            }
            Status::Running { pid, .. } => {
                let (brutal, kill_at) = stop_plan(shutdown, now);
                self.nodes[c.index()].status = Status::Stopping {
                    pid,
                    kill_at,
                    killed: false,
                };
                self.sup_mut(s).waiting = Some(Wait::Terminated(c));
                match (pid, brutal) {
                    (Some(pid), true) => self.kill_process(c, pid),
                    (Some(pid), false) => self.stop_signal_to(c, pid, stop_signal),
                    (None, true) => self.kill_subtree(c, End::Stopped),
                    (None, false) => self.shutdown_program(c, End::Stopped),
                }
                if let Some(at) = kill_at {
                    let timer = if pid.is_some() {
                        Timer::Kill(c)
                    } else {
                        Timer::KillSubtree(c)
                    };
                    self.timers.push(Reverse((at, timer)));
                }
            }
        }
    }

    /// The end of a supervisor's shutdown: every child is down.
    fn finish(&mut self, s: NodeId, end: End, now: Time) {
        let sup = self.sup_mut(s);
        sup.mailbox.clear();
        sup.program.clear();
        if s == NodeId::ROOT {
            self.finished = true;
            self.nodes[s.index()].status = Status::Stopped;
            self.actions.push_back(Action::Exit { end });
            return;
        }
        let parent = self.parent(s);
        match self.nodes[s.index()].status {
            Status::Stopping { .. } => self.terminated(s),
            _ if self.sup(parent).waiting == Some(Wait::Started(s)) => {
                self.nodes[s.index()].status = Status::Stopped;
                self.sup_mut(parent).waiting = None;
                self.start_failed(parent, s, now);
            }
            _ => self.exited_by_itself(s, ExitReason::Supervisor(end)),
        }
    }

    // ----- exits and restarts -----

    /// A child vigil asked to stop is down.
    fn terminated(&mut self, c: NodeId) {
        self.nodes[c.index()].status = Status::Stopped;
        self.drop_if_temporary(c);
        let parent = self.parent(c);
        if self.sup(parent).waiting == Some(Wait::Terminated(c)) {
            self.sup_mut(parent).waiting = None;
            self.ready.push_back(parent);
        }
    }

    /// A child ended without being asked: queue it for its supervisor.
    fn exited_by_itself(&mut self, c: NodeId, reason: ExitReason) {
        let st = &mut self.nodes[c.index()];
        st.status = Status::Exited { reason };
        let inc = st.incarnation;
        let parent = self.parent(c);
        self.sup_mut(parent).mailbox.push_back(Msg::Exit(c, inc));
        self.ready.push_back(parent);
    }

    /// OTP `do_restart/3`: the four clauses, in order.
    fn do_restart(&mut self, s: NodeId, c: NodeId, reason: ExitReason, now: Time) {
        if self.stopping {
            // vigil is stopping: nothing is restarted, anywhere.
            self.nodes[c.index()].status = Status::Stopped;
            self.drop_if_temporary(c);
            return;
        }
        let node = self.tree.node(c);
        let normal = match reason {
            ExitReason::Process(ExitStatus::Code(code)) => {
                node.as_process().is_some_and(|p| p.is_success(code))
            }
            // Death by a SIGTERM vigil did not send is OTP's `shutdown`.
            ExitReason::Process(ExitStatus::Signaled(sig)) => sig == Signal::TERM,
            ExitReason::Supervisor(_) => true,
            ExitReason::Unhealthy(_) => false,
        };
        if let (ExitReason::Process(_) | ExitReason::Unhealthy(_), Some(p)) =
            (reason, node.as_process())
        {
            // The backoff schedule starts over once the child has run long enough.
            let st = &mut self.nodes[c.index()];
            let uptime = st
                .spawned_at
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            if backoff::resets_after(&p.backoff, uptime) {
                st.attempt = 0;
            }
        }
        match (node.restart, normal) {
            (Restart::Permanent, _) | (Restart::Transient, false) => self.restart(s, c, now),
            (Restart::Transient, true) => {
                self.nodes[c.index()].status = Status::Stopped;
                self.events.push_back(Event::NotRestarted {
                    node: c,
                    why: "transient child exited normally",
                });
                self.auto_shutdown(s, c, reason, now);
            }
            (Restart::Temporary, _) => {
                self.nodes[c.index()].status = Status::Stopped;
                self.nodes[c.index()].removed = true;
                self.events.push_back(Event::NotRestarted {
                    node: c,
                    why: "temporary child",
                });
                self.auto_shutdown(s, c, reason, now);
            }
        }
    }

    /// OTP `restart/2`: count the restart (`add_restart/1`), then apply the strategy.
    ///
    /// vigil's addition: the restart happens after the child's backoff delay. The
    /// siblings the strategy takes down are stopped now; the group starts at the delay.
    fn restart(&mut self, s: NodeId, c: NodeId, now: Time) {
        if !self.sup_mut(s).window.add(now) {
            self.events.push_back(Event::GaveUp {
                supervisor: s,
                offender: c,
            });
            self.nodes[c.index()].status = Status::Stopped;
            self.shutdown_self(s, End::GaveUp { offender: c }, now);
            return;
        }
        let delay = match &self.tree.node(c).kind {
            NodeKind::Process(p) => {
                let unit = self.rng.unit();
                let st = &mut self.nodes[c.index()];
                let d = backoff::delay(&p.backoff, st.attempt, unit);
                st.attempt = st.attempt.saturating_add(1);
                d
            }
            NodeKind::Supervisor(_) => Duration::ZERO,
        };
        let at = now + delay;
        let st = &mut self.nodes[c.index()];
        st.status = Status::Restarting { at };
        // `add` has just dropped the expired entries: the length is the count (O(1)).
        let count = self.sup(s).window.len();
        self.events.push_back(Event::RestartScheduled {
            node: c,
            supervisor: s,
            delay,
            count,
        });
        self.sup_mut(s).program.clear();
        self.queue_group_stop(s, c);
        self.timers.push(Reverse((at, Timer::RestartDue(c))));
        self.ready.push_back(s);
    }

    /// The delayed half of a restart: stop what still runs in the group, start it in order.
    fn restart_group(&mut self, s: NodeId, c: NodeId) {
        self.nodes[c.index()].status = Status::Stopped;
        let group = self.queue_group_stop(s, c);
        self.sup_mut(s)
            .program
            .extend(group.into_iter().map(Step::Start));
    }

    /// Queues the termination of `c`'s group (per the strategy) except `c` itself, last
    /// started first. Returns the group in start order.
    fn queue_group_stop(&mut self, s: NodeId, c: NodeId) -> Vec<NodeId> {
        let group = self.group(s, c);
        let stops = group
            .iter()
            .rev()
            .filter(|&&g| g != c)
            .map(|&g| Step::Terminate(g));
        self.sup_mut(s).program.extend(stops);
        group
    }

    /// The children a restart of `c` takes down and brings back, in start order.
    fn group(&self, s: NodeId, c: NodeId) -> Vec<NodeId> {
        let spec = self
            .tree
            .node(s)
            .as_supervisor()
            .expect("UNWRAP: supervisor");
        match spec.strategy {
            Strategy::OneForOne => vec![c],
            Strategy::OneForAll => spec.children.clone(),
            Strategy::RestForOne => {
                let i = spec.children.iter().position(|&x| x == c).unwrap_or(0);
                spec.children[i..].to_vec()
            }
        }
    }

    /// Whether stopped child `x` will be started again by a group restart that is waiting
    /// out a sibling's backoff. OTP restarts a group in one step, so such a child counts as
    /// active (it is never "undefined" when another exit is handled).
    fn awaiting_restart(&self, s: NodeId, x: NodeId) -> bool {
        self.tree.children(s).iter().any(|&r| {
            matches!(self.nodes[r.index()].status, Status::Restarting { .. })
                && self.group(s, r).contains(&x)
        })
    }

    /// A start failed. During the initial start that aborts the supervisor (OTP
    /// `init_children/2`); later it is a failed restart attempt that counts (OTP
    /// `try_again_restart`).
    fn start_failed(&mut self, s: NodeId, c: NodeId, now: Time) {
        if self.manual_start_failed(s, c) {
            return;
        }
        let sup = self.sup_mut(s);
        sup.program.clear();
        if sup.initial {
            // At the root this is vigil stopping: no restarts anywhere, `shutdown_timeout`
            // armed, and a stop signal can no longer turn exit 69 into 0.
            self.shutdown_self(s, End::StartFailed { offender: c }, now);
        } else if self.stopping {
            self.ready.push_back(s);
        } else {
            self.restart(s, c, now);
        }
    }

    /// OTP `do_auto_shutdown/2`.
    fn auto_shutdown(&mut self, s: NodeId, c: NodeId, reason: ExitReason, now: Time) {
        let node = self.tree.node(c);
        if !node.significant {
            return;
        }
        let spec = self
            .tree
            .node(s)
            .as_supervisor()
            .expect("UNWRAP: supervisor");
        let trigger = match spec.auto_shutdown {
            AutoShutdown::Never => return,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !spec.children.iter().any(|&x| {
                self.tree.node(x).significant
                    && !self.nodes[x.index()].removed
                    && (!matches!(self.nodes[x.index()].status, Status::Stopped)
                        || self.awaiting_restart(s, x))
            }),
        };
        if trigger {
            let (status, gave_up) = match reason {
                ExitReason::Process(st) | ExitReason::Unhealthy(st) => (Some(st), false),
                ExitReason::Supervisor(End::AutoShutdown {
                    status, gave_up, ..
                }) => (status, gave_up),
                ExitReason::Supervisor(End::GaveUp { .. }) => (None, true),
                ExitReason::Supervisor(_) => (None, false),
            };
            let end = End::AutoShutdown {
                trigger: c,
                status,
                gave_up,
            };
            self.shutdown_self(s, end, now);
        }
    }

    // ----- shutdown -----

    /// A supervisor decides to end (gave up, auto-shutdown, or the root is told to stop).
    fn shutdown_self(&mut self, s: NodeId, end: End, now: Time) {
        if s == NodeId::ROOT {
            self.begin_stopping(now);
        }
        self.shutdown_program(s, end);
    }

    /// [`Input::Stop`]: the first stop signal stops the tree; a repeat within
    /// [`REPEAT_WINDOW`] is the same request delivered twice; a later one kills.
    fn on_stop_signal(&mut self, signal: Signal, now: Time) {
        match self.stop_request {
            None => {
                self.stop_request = Some((now, signal));
                if !self.stopping {
                    self.shutdown_self(NodeId::ROOT, End::Stopped, now);
                }
            }
            Some((first, _)) => {
                let ignored = now.saturating_duration_since(first) < REPEAT_WINDOW;
                self.events
                    .push_back(Event::StopRepeated { signal, ignored });
                if !ignored {
                    if !self.stopping {
                        self.begin_stopping(now);
                    }
                    self.kill_tree(End::Stopped, now);
                }
            }
        }
    }

    /// vigil itself is stopping: arm `shutdown_timeout`, if any.
    fn begin_stopping(&mut self, now: Time) {
        self.stopping = true;
        if let Some(t) = self.tree.shutdown_timeout {
            let at = now + t;
            self.stop_deadline = Some(at);
            self.timers.push(Reverse((at, Timer::StopDeadline)));
        }
    }

    /// Replaces `s`'s program with: terminate every child, last started first; finish.
    fn shutdown_program(&mut self, s: NodeId, end: End) {
        self.events
            .push_back(Event::Stopping { supervisor: s, end });
        let children = self.tree.children(s).to_vec();
        let sup = self.sup_mut(s);
        if sup.waiting == Some(Wait::SubtreeDead) {
            return; // Already being killed; it finishes when the last process is gone.
        }
        sup.waiting = None;
        sup.mailbox.clear();
        sup.program = children.into_iter().rev().map(Step::Terminate).collect();
        sup.program.push_back(Step::Finish(end));
        self.ready.push_back(s);
    }

    /// SIGKILL every process of the tree at once; the root finishes once all are dead, or
    /// [`KILL_WAIT`] later without those SIGKILL did not end.
    fn kill_tree(&mut self, end: End, now: Time) {
        self.kill_subtree(NodeId::ROOT, end);
        if self.abandon_at.is_none() && !self.finished {
            let at = now + KILL_WAIT;
            self.abandon_at = Some(at);
            self.timers.push(Reverse((at, Timer::Abandon)));
        }
    }

    /// The root stops waiting for processes SIGKILL did not end: they are named, and the
    /// root finishes without them (the runtime's sweep is bounded the same way).
    fn abandon(&mut self) {
        if self.sup(NodeId::ROOT).waiting != Some(Wait::SubtreeDead) {
            return;
        }
        let mut pids: Vec<(NodeId, Pid)> = self.pids.iter().map(|(&p, &n)| (n, p)).collect();
        pids.sort_unstable_by_key(|&(_, p)| p);
        self.events.push_back(Event::Abandoned { pids });
        let end = match self.sup(NodeId::ROOT).program.back() {
            Some(Step::Finish(e)) => *e,
            _ => End::Stopped,
        };
        self.sup_mut(NodeId::ROOT).waiting = None;
        self.sup_mut(NodeId::ROOT).program.clear();
        self.sup_mut(NodeId::ROOT)
            .program
            .push_back(Step::Finish(end));
        self.ready.push_back(NodeId::ROOT);
    }

    /// SIGKILL every process under `s` at once; `s` finishes with `end` once all are dead.
    fn kill_subtree(&mut self, s: NodeId, end: End) {
        let end = match self.sup(s).program.back() {
            Some(Step::Finish(e)) => *e,
            _ => end,
        };
        let mut stack = self.tree.children(s).to_vec();
        while let Some(d) = stack.pop() {
            let status = self.nodes[d.index()].status;
            match (&self.tree.node(d).kind, status) {
                (NodeKind::Process(_), Status::Running { pid: Some(pid), .. })
                | (
                    NodeKind::Process(_),
                    Status::Stopping {
                        pid: Some(pid),
                        killed: false,
                        ..
                    },
                ) => {
                    self.nodes[d.index()].status = Status::Stopping {
                        pid: Some(pid),
                        kill_at: None,
                        killed: true,
                    };
                    // Killed with the subtree: its exit is a stop, whatever it was
                    // being stopped for before (failed health checks included).
                    self.clear_unhealthy(d);
                    self.actions.push_back(Action::Signal {
                        node: d,
                        pid,
                        signal: Signal::KILL,
                    });
                }
                (NodeKind::Process(_), Status::Stopping { .. }) => {}
                // The answer to its spawn kills it (see `on_spawned`).
                (NodeKind::Process(_), Status::Starting { .. }) => {
                    self.nodes[d.index()].status = Status::Stopping {
                        pid: None,
                        kill_at: None,
                        killed: true,
                    };
                }
                (NodeKind::Process(_), _) => self.nodes[d.index()].status = Status::Stopped,
                (NodeKind::Supervisor(spec), _) => {
                    stack.extend(spec.children.iter().copied());
                    self.nodes[d.index()].status = Status::Stopped;
                    let sup = self.sup_mut(d);
                    sup.program.clear();
                    sup.mailbox.clear();
                    sup.waiting = None;
                }
            }
        }
        let live = self.sup(s).live;
        let sup = self.sup_mut(s);
        sup.mailbox.clear();
        sup.program.clear();
        sup.program.push_back(Step::Finish(end));
        sup.waiting = (live > 0).then_some(Wait::SubtreeDead);
        self.ready.push_back(s);
    }

    /// Sends a process its stop signal, then SIGCONT: a stopped (SIGSTOP, SIGTSTP)
    /// process receives the stop signal only once it continues (systemd does the same),
    /// so a child that stopped itself ends within its grace instead of waiting it out.
    fn stop_signal_to(&mut self, c: NodeId, pid: Pid, signal: Signal) {
        self.actions.push_back(Action::Signal {
            node: c,
            pid,
            signal,
        });
        if signal != Signal::KILL && signal != Signal::CONT {
            self.actions.push_back(Action::Signal {
                node: c,
                pid,
                signal: Signal::CONT,
            });
        }
    }

    fn kill_process(&mut self, c: NodeId, pid: Pid) {
        if let Status::Stopping { killed, .. } = &mut self.nodes[c.index()].status {
            *killed = true;
        }
        self.actions.push_back(Action::Signal {
            node: c,
            pid,
            signal: Signal::KILL,
        });
    }

    /// [`Input::Leftovers`]: stop them with the process's stop signal and grace, or keep
    /// them (`leftovers = "keep"`).
    fn on_leftovers(&mut self, node: NodeId, pids: Vec<Pid>, status: ExitStatus, now: Time) {
        let Some(p) = self
            .tree
            .nodes
            .get(node.index())
            .and_then(|n| n.as_process())
        else {
            return;
        };
        if pids.is_empty() {
            return;
        }
        let kept = p.leftovers == Leftovers::Keep;
        let (stop_signal, shutdown) = (p.stop_signal, self.tree.node(node).shutdown);
        let uptime = self.nodes[node.index()]
            .spawned_at
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        let daemonized = status == ExitStatus::Code(0) && uptime < DAEMONIZE_HINT;
        self.events.push_back(Event::Leftovers {
            node,
            count: pids.len(),
            kept,
            daemonized,
        });
        if kept {
            return;
        }
        let (brutal, kill_at) = stop_plan(shutdown, now);
        let signal = if brutal { Signal::KILL } else { stop_signal };
        for pid in pids {
            if self.pids.contains_key(&pid) || self.strays.contains_key(&pid) {
                continue; // A child of the tree is never a leftover.
            }
            self.leftovers.insert(pid, Leftover { node, kill_at });
            self.actions
                .push_back(Action::SignalLeftover { node, pid, signal });
            if signal != Signal::KILL {
                self.actions.push_back(Action::SignalLeftover {
                    node,
                    pid,
                    signal: Signal::CONT,
                });
            }
            if let Some(at) = kill_at {
                self.timers.push(Reverse((at, Timer::KillLeftover(pid))));
            }
        }
    }

    // ----- timers -----

    fn fire_due_timer(&mut self, now: Time) -> bool {
        let Some(&Reverse((at, timer))) = self.timers.peek() else {
            return false;
        };
        if at > now {
            return false;
        }
        self.timers.pop();
        if !self.timer_valid(at, timer) {
            return true;
        }
        match timer {
            Timer::Kill(c) => {
                if let Status::Stopping { pid: Some(pid), .. } = self.nodes[c.index()].status {
                    self.events.push_back(Event::Killed { node: c });
                    self.kill_process(c, pid);
                }
            }
            Timer::KillSubtree(s) => {
                self.events.push_back(Event::Killed { node: s });
                self.kill_subtree(s, End::Stopped);
            }
            Timer::RestartDue(c) => {
                let parent = self.parent(c);
                let inc = self.nodes[c.index()].incarnation;
                self.sup_mut(parent)
                    .mailbox
                    .push_back(Msg::RestartDue(c, inc));
                self.ready.push_back(parent);
            }
            Timer::ReadyDeadline(c) => self.ready_deadline(c),
            Timer::KillLeftover(pid) => {
                if let Some(l) = self.leftovers.get_mut(&pid) {
                    l.kill_at = None;
                    let node = l.node;
                    self.events.push_back(Event::LeftoverKilled { node, pid });
                    self.actions.push_back(Action::SignalLeftover {
                        node,
                        pid,
                        signal: Signal::KILL,
                    });
                }
            }
            Timer::StopDeadline => {
                // `stop_deadline` stays set: the runtime bounds its final sweep by it.
                // From now, not from the deadline: a late tick must still leave the
                // SIGKILLs their `KILL_WAIT`.
                self.kill_tree(End::Stopped, now);
            }
            Timer::Abandon => self.abandon(),
        }
        true
    }

    fn timer_valid(&self, at: Time, timer: Timer) -> bool {
        if self.finished {
            return false;
        }
        match timer {
            Timer::Kill(c) | Timer::KillSubtree(c) => matches!(
                self.nodes[c.index()].status,
                Status::Stopping { kill_at: Some(k), killed: false, .. } if k == at
            ),
            Timer::RestartDue(c) => matches!(
                self.nodes[c.index()].status,
                Status::Restarting { at: a } if a == at
            ),
            Timer::StopDeadline => self.stop_deadline == Some(at),
            Timer::Abandon => self.abandon_at == Some(at),
            Timer::ReadyDeadline(c) => self.ready_deadline_valid(c, at),
            Timer::KillLeftover(pid) => self
                .leftovers
                .get(&pid)
                .is_some_and(|l| l.kill_at == Some(at)),
        }
    }

    // ----- helpers -----

    fn step_done(&mut self, c: NodeId, wait: Wait) {
        if c == NodeId::ROOT {
            return;
        }
        let parent = self.parent(c);
        if self.sup(parent).waiting == Some(wait) {
            self.sup_mut(parent).waiting = None;
            self.ready.push_back(parent);
        }
    }

    fn drop_if_temporary(&mut self, c: NodeId) {
        if self.tree.node(c).restart == Restart::Temporary {
            self.nodes[c.index()].removed = true;
        }
    }

    fn parent(&self, c: NodeId) -> NodeId {
        self.tree.node(c).parent.unwrap_or(NodeId::ROOT)
    }

    fn ancestors(&self, c: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut cur = self.tree.node(c).parent;
        while let Some(p) = cur {
            out.push(p);
            cur = self.tree.node(p).parent;
        }
        out
    }

    fn sup(&self, s: NodeId) -> &SupState {
        self.nodes[s.index()]
            .sup
            .as_ref()
            .expect("UNWRAP: node is a supervisor")
    }

    fn sup_mut(&mut self, s: NodeId) -> &mut SupState {
        self.nodes[s.index()]
            .sup
            .as_mut()
            .expect("UNWRAP: node is a supervisor")
    }
}
