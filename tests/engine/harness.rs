//! A simulated OS for the engine: fake pids, scripted children, and a clock that jumps
//! from one deadline to the next (quinn's `Pair`, for processes). Nothing here sleeps.
//!
//! The trace records what a black-box observer of the real daemon would see, in order:
//! `START a`, `FAIL a` (spawn failed), `TERM a` / `KILL a` / `INT a` (a signal vigil
//! sent), `EXIT 75` (vigil's exit code). Each entry carries its simulated time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use vigil::core::{Action, Engine, Event, Input, Pid, Time};
use vigil::spec::{ExitStatus, NodeId, Signal};

/// What a simulated child does when it receives its stop signal.
#[derive(Clone, Copy, Debug)]
pub enum OnStop {
    /// Dies of the signal at once (the default disposition).
    Die,
    /// Ignores it.
    Ignore,
    /// Exits with this status after this long.
    After(Duration, ExitStatus),
    /// Not even SIGKILL ends it (uninterruptible sleep, a frozen cgroup).
    Unkillable,
}

/// A script for one child name.
pub struct Behaviour {
    on_stop: OnStop,
    /// Invocations (1-based) whose spawn fails.
    fail_spawn: Box<dyn Fn(u32) -> bool>,
    /// For invocation n, exit by itself after a delay with a status.
    exit: Box<dyn Fn(u32) -> Option<(Duration, ExitStatus)>>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            on_stop: OnStop::Die,
            fail_spawn: Box::new(|_| false),
            exit: Box::new(|_| None),
        }
    }
}

impl Behaviour {
    /// Ignores its stop signal.
    pub fn ignore_stop() -> Self {
        Behaviour {
            on_stop: OnStop::Ignore,
            ..Default::default()
        }
    }

    /// Exits with code 0 this long after its stop signal.
    pub fn stop_after(ms: u64) -> Self {
        Behaviour {
            on_stop: OnStop::After(Duration::from_millis(ms), ExitStatus::Code(0)),
            ..Default::default()
        }
    }

    /// Spawns fail on these invocations.
    pub fn fail_spawn(f: impl Fn(u32) -> bool + 'static) -> Self {
        Behaviour {
            fail_spawn: Box::new(f),
            ..Default::default()
        }
    }

    /// Exits by itself per invocation.
    pub fn exits(f: impl Fn(u32) -> Option<(Duration, ExitStatus)> + 'static) -> Self {
        Behaviour {
            exit: Box::new(f),
            ..Default::default()
        }
    }

    /// Also: the stop behaviour.
    pub fn on_stop(mut self, on_stop: OnStop) -> Self {
        self.on_stop = on_stop;
        self
    }
}

/// The engine plus its simulated world.
pub struct Sim {
    /// The engine under test.
    pub engine: Engine,
    t0: Time,
    /// Simulated now.
    pub now: Time,
    next_pid: Pid,
    alive: HashMap<Pid, NodeId>,
    /// Scheduled exits: (time, sequence) -> (pid, status).
    pending: BTreeMap<(Time, u64), (Pid, ExitStatus)>,
    seq: u64,
    trace: Vec<(Duration, String)>,
    /// Every event the engine emitted, with its time.
    pub events: Vec<(Duration, Event)>,
    /// vigil's exit code, once the root has finished.
    pub exit: Option<u8>,
    invocations: HashMap<NodeId, u32>,
    scripts: HashMap<String, Behaviour>,
    max_instances: usize,
    /// Signals the engine sent to a process it had already been told was dead.
    stale_signals: usize,
    /// Spawn answers held back (`hold_spawns`), delivered by `release_spawns`.
    held: Vec<Action>,
    hold: bool,
}

impl Sim {
    /// A simulation of the tree in `toml` (not started yet).
    pub fn new(toml: &str) -> Sim {
        let loaded = vigil::config::parse(toml, Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let t0 = Time::ZERO;
        Sim {
            engine: Engine::new(loaded.tree, 1),
            t0,
            now: t0,
            next_pid: 100,
            alive: HashMap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            trace: Vec::new(),
            events: Vec::new(),
            exit: None,
            invocations: HashMap::new(),
            scripts: HashMap::new(),
            max_instances: 0,
            stale_signals: 0,
            held: Vec::new(),
            hold: false,
        }
    }

    /// Feeds several exits back to back, each followed by the actions it produced (as the
    /// loop drains one SIGCHLD), without delivering anything else in between.
    pub fn batch_exits(&mut self, exits: &[(&str, ExitStatus)]) {
        self.feed_exits(exits, true);
    }

    /// Feeds several exits back to back without carrying out any action in between: the
    /// harshest order (the engine must still never adopt a spawn it no longer wants).
    pub fn batch_exits_unanswered(&mut self, exits: &[(&str, ExitStatus)]) {
        self.feed_exits(exits, false);
    }

    fn feed_exits(&mut self, exits: &[(&str, ExitStatus)], answer_each: bool) {
        let pids: Vec<(Pid, ExitStatus)> = exits
            .iter()
            .map(|(name, st)| (self.pid(name).expect("alive"), *st))
            .collect();
        for (pid, status) in pids {
            if self.alive.remove(&pid).is_some() {
                self.pending.retain(|_, (p, _)| *p != pid);
                self.engine.handle(Input::Exited { pid, status }, self.now);
                while answer_each && let Some(action) = self.engine.poll_action() {
                    self.execute(action);
                }
            }
        }
        self.settle();
    }

    /// How many live simulated processes belong to `name`.
    pub fn instances(&self, name: &str) -> usize {
        let id = self.id(name);
        self.alive.values().filter(|n| **n == id).count()
    }

    /// How many signals went to a process the engine had already been told was dead (a
    /// reused process group would receive them).
    pub fn stale_signals(&self) -> usize {
        self.stale_signals
    }

    /// The most live processes any one node had at once, over the whole run.
    pub fn max_instances(&self) -> usize {
        self.max_instances
    }

    /// Scripts the child called `name`.
    pub fn with(mut self, name: &str, b: Behaviour) -> Sim {
        assert!(self.engine.tree().find(name).is_some(), "no node {name}");
        self.scripts.insert(name.to_string(), b);
        self
    }

    /// Starts the tree and settles.
    pub fn start(mut self) -> Sim {
        self.engine.start(self.now);
        self.settle();
        self
    }

    fn id(&self, name: &str) -> NodeId {
        self.engine
            .tree()
            .find(name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn name(&self, id: NodeId) -> String {
        self.engine.tree().node(id).name.clone()
    }

    fn record(&mut self, line: String) {
        self.trace.push((self.now - self.t0, line));
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    /// Carries out every queued action and delivers every exit that is due now.
    pub fn settle(&mut self) {
        loop {
            while let Some(action) = self.engine.poll_action() {
                self.execute(action);
            }
            while let Some(ev) = self.engine.poll_event() {
                self.events.push((self.now - self.t0, ev));
            }
            let due = self
                .pending
                .first_key_value()
                .filter(|((at, _), _)| *at <= self.now)
                .map(|(k, _)| *k);
            match due {
                Some(key) => {
                    let (pid, status) = self.pending.remove(&key).expect("UNWRAP: key exists");
                    self.deliver_exit(pid, status);
                }
                None => break,
            }
        }
    }

    fn deliver_exit(&mut self, pid: Pid, status: ExitStatus) {
        if self.alive.remove(&pid).is_some() {
            self.pending.retain(|_, (p, _)| *p != pid);
            self.engine.handle(Input::Exited { pid, status }, self.now);
        }
    }

    fn schedule_exit(&mut self, pid: Pid, after: Duration, status: ExitStatus) {
        self.seq += 1;
        self.pending
            .insert((self.now + after, self.seq), (pid, status));
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Spawn { .. } if self.hold => self.held.push(action),
            Action::Spawn { node, token } => {
                let name = self.name(node);
                let n = {
                    let n = self.invocations.entry(node).or_insert(0);
                    *n += 1;
                    *n
                };
                let script = self.scripts.get(&name);
                if script.is_some_and(|b| (b.fail_spawn)(n)) {
                    self.record(format!("FAIL {name}"));
                    let error = "No such file or directory".to_string();
                    self.engine
                        .handle(Input::SpawnFailed { node, token, error }, self.now);
                    return;
                }
                let exit = script.and_then(|b| (b.exit)(n));
                self.next_pid += 1;
                let pid = self.next_pid;
                self.alive.insert(pid, node);
                let live = self.alive.values().filter(|n| **n == node).count();
                self.max_instances = self.max_instances.max(live);
                self.record(format!("START {name}"));
                self.engine
                    .handle(Input::Spawned { node, token, pid }, self.now);
                if let Some((after, status)) = exit {
                    self.schedule_exit(pid, after, status);
                }
            }
            // SIGCONT follows every stop signal; the traces leave it out.
            Action::Signal { signal, pid, .. } if signal == Signal::CONT => {
                if !self.alive.contains_key(&pid) {
                    self.stale_signals += 1;
                }
            }
            Action::Signal { node, pid, signal } => {
                let name = self.name(node);
                self.record(format!("{} {name}", &signal.name()[3..]));
                if !self.alive.contains_key(&pid) {
                    self.stale_signals += 1;
                    return;
                }
                let on_stop = self.scripts.get(&name).map_or(OnStop::Die, |b| b.on_stop);
                match (signal, on_stop) {
                    (_, OnStop::Unkillable) => {}
                    (Signal::KILL, _) | (_, OnStop::Die) => {
                        self.schedule_exit(pid, Duration::ZERO, ExitStatus::Signaled(signal))
                    }
                    (_, OnStop::Ignore) => {}
                    (_, OnStop::After(d, st)) => self.schedule_exit(pid, d, st),
                }
            }
            Action::Ready | Action::SignalLeftover { .. } => {}
            Action::Watch { node, probe, .. } => {
                let what = match probe {
                    vigil::core::Probe::Ready => "ready",
                    vigil::core::Probe::Health => "health",
                };
                self.record(format!("WATCH {} {what}", self.name(node)));
            }
            Action::Unwatch { node } => self.record(format!("UNWATCH {}", self.name(node))),
            Action::Exit { end } => {
                let code = vigil::exit::for_end(end, self.engine.stop_signal(), false);
                assert!(self.exit.is_none(), "second Exit action");
                self.record(format!("EXIT {code}"));
                self.exit = Some(code);
            }
        }
    }

    /// Jumps to the next scheduled exit or engine deadline and handles it. Returns
    /// false when nothing is scheduled.
    pub fn advance(&mut self) -> bool {
        self.advance_until(None)
    }

    fn advance_until(&mut self, limit: Option<Time>) -> bool {
        let next_exit = self.pending.first_key_value().map(|((at, _), _)| *at);
        let next = match (next_exit, self.engine.next_deadline()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        if limit.is_some_and(|l| next > l) {
            return false;
        }
        self.now = self.now.max(next);
        self.engine.handle(Input::Tick, self.now);
        self.settle();
        true
    }

    /// Runs the simulation for `ms` milliseconds of simulated time.
    pub fn run_ms(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        let mut guard = 0;
        while self.advance_until(Some(end)) {
            guard += 1;
            assert!(guard < 100_000, "simulation does not settle");
        }
        self.now = end;
        self.engine.handle(Input::Tick, self.now);
        self.settle();
    }

    /// Runs until vigil exits, and returns its exit code.
    pub fn run_to_exit(&mut self) -> u8 {
        let mut guard = 0;
        while self.exit.is_none() && self.advance() {
            guard += 1;
            assert!(guard < 100_000, "simulation does not settle");
        }
        self.exit
            .unwrap_or_else(|| panic!("vigil never exited; trace:\n{}", self.dump()))
    }

    /// Asks vigil to stop (SIGTERM).
    pub fn stop(&mut self) {
        self.engine.handle(
            Input::Stop {
                signal: Signal::TERM,
            },
            self.now,
        );
        self.settle();
    }

    /// SIGQUIT: kill everything at once.
    pub fn kill_all(&mut self) {
        self.engine.handle(Input::Kill, self.now);
        self.settle();
    }

    /// Holds back every spawn from now on, unanswered, until [`Sim::release_spawns`].
    pub fn hold_spawns(&mut self) {
        self.hold = true;
    }

    /// Answers the held spawns, in order, feeding nothing else in between.
    pub fn release_spawns(&mut self) {
        self.hold = false;
        for action in std::mem::take(&mut self.held) {
            self.execute(action);
        }
        self.settle();
    }

    /// The `ready` check of `name` passed (or a health check passed again).
    pub fn ready(&mut self, name: &str) {
        let node = self.id(name);
        self.engine.handle(Input::Ready { node }, self.now);
        self.settle();
    }

    /// One health check of `name` failed.
    pub fn not_ready(&mut self, name: &str) {
        let node = self.id(name);
        let input = Input::HealthCheck {
            node,
            passed: false,
        };
        self.engine.handle(input, self.now);
        self.settle();
    }

    /// One health check of `name` passed.
    pub fn health_passed(&mut self, name: &str) {
        let node = self.id(name);
        let input = Input::HealthCheck { node, passed: true };
        self.engine.handle(input, self.now);
        self.settle();
    }

    /// `name` failed its health checks `health.failures` times in a row.
    pub fn unhealthy(&mut self, name: &str) {
        let node = self.id(name);
        let limit = self
            .engine
            .tree()
            .node(node)
            .as_process()
            .and_then(|p| p.health.as_ref())
            .map_or(1, |h| h.failures);
        for _ in 0..limit {
            self.not_ready(name);
        }
    }

    /// Whether `name` is ready, per the engine's view.
    pub fn is_ready(&self, name: &str) -> bool {
        self.engine.view(self.id(name)).ready
    }

    /// Kills the process of `name` from outside, now.
    pub fn kill(&mut self, name: &str, sig: Signal) {
        self.die(name, ExitStatus::Signaled(sig));
    }

    /// Makes the process of `name` exit now with `code`.
    pub fn exit_with(&mut self, name: &str, code: i32) {
        self.die(name, ExitStatus::Code(code));
    }

    fn die(&mut self, name: &str, status: ExitStatus) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} is not running; trace:\n{}", self.dump()));
        self.deliver_exit(pid, status);
        self.settle();
    }

    /// Feeds the exit of a process vigil never spawned (an adopted orphan).
    pub fn orphan_exit(&mut self, pid: Pid, status: ExitStatus) {
        assert!(!self.engine.is_child(pid));
        self.engine.handle(Input::Exited { pid, status }, self.now);
        self.settle();
    }

    /// The pid of `name`, if its process is alive.
    pub fn pid(&self, name: &str) -> Option<Pid> {
        let id = self.id(name);
        self.alive
            .iter()
            .find(|(_, n)| **n == id)
            .map(|(pid, _)| *pid)
    }

    /// The engine's state word for `name`.
    pub fn state(&self, name: &str) -> &'static str {
        self.engine.view(self.id(name)).state.as_str()
    }

    /// Number of live simulated processes.
    pub fn alive_count(&self) -> usize {
        self.alive.len()
    }

    /// The trace without times.
    pub fn trace(&self) -> Vec<String> {
        self.trace.iter().map(|(_, l)| l.clone()).collect()
    }

    /// The trace from entry `from` on.
    pub fn trace_from(&self, from: usize) -> Vec<String> {
        self.trace()[from..].to_vec()
    }

    /// Number of trace entries so far (a mark for `trace_from`).
    pub fn mark(&self) -> usize {
        self.trace.len()
    }

    /// The time (ms) of each trace entry equal to `line`.
    pub fn times_of(&self, line: &str) -> Vec<u128> {
        self.trace
            .iter()
            .filter(|(_, l)| l == line)
            .map(|(t, _)| t.as_millis())
            .collect()
    }

    /// How many trace entries equal `line`.
    pub fn count(&self, line: &str) -> usize {
        self.trace.iter().filter(|(_, l)| l == line).count()
    }

    /// Restarts counted so far for the supervisor `name`.
    pub fn restarts_counted(&self, supervisor: &str) -> usize {
        let s = self.id(supervisor);
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::RestartScheduled { supervisor, .. } if *supervisor == s))
            .count()
    }

    /// The offender of the give-up of `supervisor`, if it gave up.
    pub fn gave_up(&self, supervisor: &str) -> Option<String> {
        let s = self.id(supervisor);
        self.events.iter().find_map(|(_, e)| match e {
            Event::GaveUp {
                supervisor,
                offender,
            } if *supervisor == s => Some(self.name(*offender)),
            _ => None,
        })
    }

    /// The trace with times, for failure messages.
    pub fn dump(&self) -> String {
        self.trace
            .iter()
            .map(|(t, l)| format!("{:>8} ms  {l}\n", t.as_millis()))
            .collect()
    }
}

/// `["START a", "TERM b"]`-style expectations.
pub fn lines(s: &[&str]) -> Vec<String> {
    s.iter().map(|l| l.to_string()).collect()
}
