//! A short simulated run of any tree, for fuzzing: "every accepted config runs and stops
//! without a panic", with the engine's invariants checked on the way.
//!
//! A tiny deterministic world answers the engine's actions (spawns succeed or fail,
//! processes die of their stop signal or ignore it), a seeded script kills processes,
//! holds spawn answers back and feeds health results and repeated stop signals, then vigil
//! is told to stop and time jumps from deadline to deadline until the root finishes.
//! Checked: no panic; at most one live process per node; no signal to a process the
//! engine was told is dead; exactly one `Exit`; nothing alive afterwards; the run ends
//! within a bounded number of steps.
//!
//! Must never: read a clock or the OS (it is part of the pure core), or loop without bound.

use std::collections::HashMap;
use std::time::Duration;

use crate::backoff::Rng;
use crate::spec::{ExitStatus, NodeId, Signal, Tree};
use crate::{Action, End, Engine, Input, Pid, Time};

/// What went wrong in a simulated run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// Runs `tree` for a while under a script drawn from `seed`, then stops it. Returns how
/// the root ended, or the first invariant that broke.
pub fn run(tree: Tree, seed: u64) -> Result<End, Violation> {
    let mut w = World {
        engine: Engine::new(tree, seed),
        rng: Rng::new(seed ^ 0x5eed),
        now: Time::ZERO,
        next_pid: 100,
        alive: HashMap::new(),
        dead: Vec::new(),
        stubborn: HashMap::new(),
        held: Vec::new(),
        hold: false,
        end: None,
    };
    w.engine.start(w.now);
    w.settle()?;
    for _ in 0..40 {
        if w.end.is_some() {
            break;
        }
        let roll = w.rng.unit();
        if roll < 0.3 {
            w.kill_some()?;
        } else if roll < 0.4 {
            w.hold = true;
        } else if roll < 0.5 {
            w.release()?;
        } else if roll < 0.6 {
            w.health()?;
        } else if roll < 0.65 {
            w.input(Input::Stop {
                signal: Signal::TERM,
            })?;
        } else {
            let ms = (w.rng.unit() * 3_000.0) as u64;
            w.advance(Duration::from_millis(ms))?;
        }
    }
    w.release()?;
    w.input(Input::Stop {
        signal: Signal::TERM,
    })?;
    for _ in 0..10_000 {
        if let Some(end) = w.end {
            if !w.alive.is_empty() {
                return Err(Violation(format!("exit with {} alive", w.alive.len())));
            }
            return Ok(end);
        }
        let next = w.engine.next_deadline();
        let Some(at) = next else {
            return Err(Violation("stopping, but no deadline and no exit".into()));
        };
        w.now = w.now.max(at);
        w.input(Input::Tick)?;
    }
    Err(Violation("the stop did not end in 10,000 steps".into()))
}

struct World {
    engine: Engine,
    rng: Rng,
    now: Time,
    next_pid: Pid,
    alive: HashMap<Pid, NodeId>,
    dead: Vec<Pid>,
    /// Processes that ignore their stop signal.
    stubborn: HashMap<Pid, ()>,
    held: Vec<Action>,
    hold: bool,
    end: Option<End>,
}

impl World {
    fn input(&mut self, input: Input) -> Result<(), Violation> {
        self.engine.handle(input, self.now);
        self.settle()
    }

    fn settle(&mut self) -> Result<(), Violation> {
        let mut exits = Vec::new();
        while let Some(action) = self.engine.poll_action() {
            self.execute(action, &mut exits)?;
        }
        while self.engine.poll_event().is_some() {}
        for (pid, status) in exits {
            if self.alive.remove(&pid).is_some() {
                self.dead.push(pid);
                self.input(Input::Exited { pid, status })?;
            }
        }
        Ok(())
    }

    fn execute(
        &mut self,
        action: Action,
        exits: &mut Vec<(Pid, ExitStatus)>,
    ) -> Result<(), Violation> {
        match action {
            Action::Spawn { .. } if self.hold => self.held.push(action),
            Action::Spawn { node, token } => {
                if self.rng.unit() < 0.1 {
                    let error = "simulated spawn failure".to_string();
                    self.engine
                        .handle(Input::SpawnFailed { node, token, error }, self.now);
                    return Ok(());
                }
                if self.alive.values().any(|&n| n == node) {
                    return Err(Violation(format!("two live processes for node {node:?}")));
                }
                self.next_pid += 1;
                let pid = self.next_pid;
                self.alive.insert(pid, node);
                if self.rng.unit() < 0.2 {
                    self.stubborn.insert(pid, ());
                }
                self.engine
                    .handle(Input::Spawned { node, token, pid }, self.now);
            }
            Action::Signal { pid, signal, .. } => {
                if self.dead.contains(&pid) {
                    return Err(Violation(format!("{signal} to pid {pid} after its exit")));
                }
                let stubborn = self.stubborn.contains_key(&pid);
                if signal == Signal::KILL || (signal != Signal::CONT && !stubborn) {
                    exits.push((pid, ExitStatus::Signaled(signal)));
                }
            }
            Action::Exit { end } => {
                if self.end.replace(end).is_some() {
                    return Err(Violation("a second Exit".into()));
                }
            }
            Action::SignalLeftover { .. }
            | Action::Ready
            | Action::Watch { .. }
            | Action::Unwatch { .. } => {}
        }
        Ok(())
    }

    fn kill_some(&mut self) -> Result<(), Violation> {
        let mut pids: Vec<Pid> = self.alive.keys().copied().collect();
        pids.sort_unstable();
        let n = 1 + (self.rng.unit() * 3.0) as usize;
        let mut batch = Vec::new();
        for _ in 0..n.min(pids.len()) {
            let i = (self.rng.unit() * pids.len() as f64) as usize % pids.len();
            batch.push(pids.swap_remove(i));
        }
        // One drain: every exit fed, each followed by its actions.
        for pid in batch {
            if self.alive.remove(&pid).is_some() {
                self.dead.push(pid);
                let status = ExitStatus::Code((self.rng.unit() * 3.0) as i32);
                self.input(Input::Exited { pid, status })?;
            }
        }
        Ok(())
    }

    fn release(&mut self) -> Result<(), Violation> {
        self.hold = false;
        let mut exits = Vec::new();
        for action in std::mem::take(&mut self.held) {
            self.execute(action, &mut exits)?;
        }
        self.settle()?;
        for (pid, status) in exits {
            if self.alive.remove(&pid).is_some() {
                self.dead.push(pid);
                self.input(Input::Exited { pid, status })?;
            }
        }
        Ok(())
    }

    fn health(&mut self) -> Result<(), Violation> {
        let nodes: Vec<NodeId> = self.alive.values().copied().collect();
        if let Some(&node) = nodes.first() {
            let passed = self.rng.unit() < 0.5;
            self.input(Input::HealthCheck { node, passed })?;
            self.input(Input::Ready { node })?;
        }
        Ok(())
    }

    fn advance(&mut self, by: Duration) -> Result<(), Violation> {
        let until = self.now + by;
        for _ in 0..10_000 {
            match self.engine.next_deadline() {
                Some(at) if at <= until && self.end.is_none() => {
                    self.now = self.now.max(at);
                    self.input(Input::Tick)?;
                }
                _ => {
                    self.now = until;
                    return self.input(Input::Tick);
                }
            }
        }
        Err(Violation("timers do not settle".into()))
    }
}
