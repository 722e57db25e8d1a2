//! Readiness and health in the engine: a start that waits until the child is ready, a
//! readiness deadline, and stopping a child whose health checks fail.
//!
//! A child of the engine's `engine` module (it sees the engine's private state), in a file
//! of its own so that the OTP core stays readable.
//!
//! - **Synchronous start, OTP's way.** With `ready` set, [`Input::Spawned`] does not end
//!   the start step: the supervisor stays parked in `Wait::Started(child)` until
//!   [`Input::Ready`], so the next sibling starts only once this one is ready. A
//!   `Timer::ReadyDeadline` bounds the wait. When it passes, the child's process group is
//!   SIGKILLed and, once its exit is reaped, the start has failed exactly like a failed
//!   spawn: during the initial start that aborts (exit 69), later it is a failed restart
//!   attempt that counts against the intensity (OTP `try_again_restart`). A child that
//!   exits before it is ready has failed to start too.
//! - **Health.** [`Input::HealthCheck`] results are counted here: `health.failures`
//!   failures in a row stop the child with its stop signal and shutdown grace, and its exit then counts
//!   as abnormal whatever its status ([`ExitReason::Unhealthy`]): restarted per its restart
//!   type, counted against the intensity.
//! - **Readiness while running.** A failed health check and a passing one flip the child's `ready` flag, shown by
//!   [`Engine::view`].
//! - The engine tells the runtime what to probe with [`Action::Watch`] and
//!   [`Action::Unwatch`]; the runtime never decides when a probe matters.
//!
//! Must never: do I/O, read a clock, or decide anything about a probe's result beyond
//! the inputs above.

use std::cmp::Reverse;
use std::time::Duration;

use crate::Time;

use super::{Action, Engine, Event, ExitReason, Pid, Status, Timer, Wait};
use crate::spec::{NodeId, Signal};

/// Which check of a process the runtime should run (see [`Action::Watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The `ready` check, until [`Input::Ready`](super::Input::Ready) is fed.
    Ready,
    /// The `health` check, every `interval`, for as long as the process runs.
    Health,
}

/// Readiness state of one node (the engine keeps one per node).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NodeProbe {
    /// The start waits for readiness until this deadline.
    awaiting: Option<Time>,
    /// Ready (a process without `ready` is ready once spawned).
    ready: bool,
    /// Being stopped because its health checks failed.
    unhealthy: bool,
    /// Health checks failed in a row in this incarnation.
    failures: u32,
}

impl Engine {
    /// After a spawn: waits for readiness (returns true) or counts the child as ready.
    pub(super) fn await_ready(&mut self, c: NodeId, pid: Pid, now: Time) -> bool {
        let Some(p) = self.tree.node(c).as_process() else {
            return false;
        };
        let (ready, health) = (p.ready.clone(), p.health.is_some());
        let st = &mut self.probes[c.index()];
        st.unhealthy = false;
        st.failures = 0;
        match ready {
            Some(r) => {
                let at = now + r.timeout;
                st.awaiting = Some(at);
                st.ready = false;
                self.timers.push(Reverse((at, Timer::ReadyDeadline(c))));
                self.actions.push_back(Action::Watch {
                    node: c,
                    pid,
                    probe: Probe::Ready,
                });
                true
            }
            None => {
                st.awaiting = None;
                st.ready = true;
                if health {
                    self.actions.push_back(Action::Watch {
                        node: c,
                        pid,
                        probe: Probe::Health,
                    });
                }
                false
            }
        }
    }

    /// The pid of `c` when it is running (not being stopped).
    fn running_pid(&self, c: NodeId) -> Option<Pid> {
        match self.nodes[c.index()].status {
            Status::Running { pid, .. } => pid,
            _ => None,
        }
    }

    /// Whether `c`'s supervisor is parked on `c`'s start (spawned, not yet ready).
    fn start_pending(&self, c: NodeId) -> bool {
        c != super::NodeId::ROOT && self.sup(self.parent(c)).waiting == Some(Wait::Started(c))
    }

    /// [`Input::Ready`](super::Input::Ready): the start completes, or readiness is regained.
    pub(super) fn on_ready(&mut self, c: NodeId) {
        if c.index() >= self.nodes.len() {
            return; // Not a node of this tree.
        }
        let Some(pid) = self.running_pid(c) else {
            return;
        };
        let pending = self.start_pending(c);
        let st = &mut self.probes[c.index()];
        if st.unhealthy {
            return;
        }
        if st.awaiting.is_some() {
            if !pending {
                return;
            }
            st.awaiting = None;
            st.ready = true;
            self.events.push_back(Event::Ready {
                node: c,
                regained: false,
            });
            let health = self
                .tree
                .node(c)
                .as_process()
                .is_some_and(|p| p.health.is_some());
            self.actions.push_back(if health {
                Action::Watch {
                    node: c,
                    pid,
                    probe: Probe::Health,
                }
            } else {
                Action::Unwatch { node: c }
            });
            self.step_done(c, Wait::Started(c));
        } else if !st.ready {
            st.ready = true;
            self.events.push_back(Event::Ready {
                node: c,
                regained: true,
            });
        }
    }

    /// [`Input::HealthCheck`](super::Input::HealthCheck): counts failures in a row. The
    /// first makes a ready process not ready; `health.failures` of them stop it. A pass
    /// resets the count and makes it ready again.
    pub(super) fn on_health_check(&mut self, c: NodeId, passed: bool, now: Time) {
        if c.index() >= self.nodes.len() {
            return; // Not a node of this tree.
        }
        let Some(limit) = self
            .tree
            .node(c)
            .as_process()
            .and_then(|p| p.health.as_ref())
            .map(|h| h.failures)
        else {
            return;
        };
        let running = self.running_pid(c).is_some();
        let st = &mut self.probes[c.index()];
        if !running || st.awaiting.is_some() || st.unhealthy {
            return; // Not watched for health now: a stale result.
        }
        if passed {
            st.failures = 0;
            self.on_ready(c);
            return;
        }
        st.failures = st.failures.saturating_add(1);
        let failures = st.failures;
        self.events.push_back(Event::HealthCheckFailed {
            node: c,
            failures,
            limit,
        });
        if failures >= limit {
            self.on_unhealthy(c, now);
        } else {
            self.on_not_ready(c);
        }
    }

    /// A running child lost its readiness (a health check failed).
    fn on_not_ready(&mut self, c: NodeId) {
        if self.running_pid(c).is_none() {
            return;
        }
        let st = &mut self.probes[c.index()];
        if st.awaiting.is_none() && st.ready && !st.unhealthy {
            st.ready = false;
            self.events.push_back(Event::NotReady { node: c });
        }
    }

    /// `health.failures` checks failed in a row: stop the child with its stop signal and
    /// grace; its exit will count as abnormal.
    fn on_unhealthy(&mut self, c: NodeId, now: Time) {
        if self.stopping {
            return; // Everything is being stopped anyway.
        }
        let Some(pid) = self.running_pid(c) else {
            return;
        };
        let st = &mut self.probes[c.index()];
        if st.awaiting.is_some() || st.unhealthy {
            return;
        }
        st.unhealthy = true;
        st.ready = false;
        self.events.push_back(Event::Unhealthy { node: c });
        self.actions.push_back(Action::Unwatch { node: c });
        let node = self.tree.node(c);
        let stop_signal = node.as_process().map_or(Signal::TERM, |p| p.stop_signal);
        let (brutal, kill_at) = super::stop_plan(node.shutdown, now);
        self.nodes[c.index()].status = Status::Stopping {
            pid: Some(pid),
            kill_at,
            killed: false,
        };
        if brutal {
            self.kill_process(c, pid);
        } else {
            self.stop_signal_to(c, pid, stop_signal);
        }
        if let Some(at) = kill_at {
            self.timers.push(Reverse((at, Timer::Kill(c))));
        }
    }

    /// Forgets that `c` was being stopped for its health checks (it is being killed with
    /// its subtree: its exit is a stop).
    pub(super) fn clear_unhealthy(&mut self, c: NodeId) {
        self.probes[c.index()].unhealthy = false;
    }

    /// Whether a `ReadyDeadline` timer is still current.
    pub(super) fn ready_deadline_valid(&self, c: NodeId, at: Time) -> bool {
        self.probes[c.index()].awaiting == Some(at)
            && self.running_pid(c).is_some()
            && self.start_pending(c)
    }

    /// The readiness deadline passed: kill the child's group; its reaped exit fails the start.
    pub(super) fn ready_deadline(&mut self, c: NodeId) {
        let Some(pid) = self.running_pid(c) else {
            return;
        };
        let timeout = self
            .tree
            .node(c)
            .as_process()
            .and_then(|p| p.ready.as_ref())
            .map_or(Duration::ZERO, |r| r.timeout);
        self.probes[c.index()].awaiting = None;
        self.events
            .push_back(Event::NotReadyInTime { node: c, timeout });
        self.actions.push_back(Action::Unwatch { node: c });
        self.nodes[c.index()].status = Status::Stopping {
            pid: Some(pid),
            kill_at: None,
            killed: false,
        };
        self.kill_process(c, pid);
    }

    /// Called for every reaped child before the usual handling. Returns the reason to
    /// hand to the supervisor when the exit must count as the child's own abnormal exit
    /// (it was stopped for failing its health checks), and whether the exit failed a start
    /// still waiting for readiness (then it has been handled here).
    pub(super) fn probe_exit(
        &mut self,
        c: NodeId,
        status: crate::spec::ExitStatus,
        now: Time,
    ) -> (Option<ExitReason>, bool) {
        let st = std::mem::take(&mut self.probes[c.index()]);
        let p = self.tree.node(c).as_process();
        if p.is_some_and(|p| p.ready.is_some() || p.health.is_some()) {
            self.actions.push_back(Action::Unwatch { node: c });
        }
        if self.start_pending(c) {
            if matches!(self.nodes[c.index()].status, Status::Running { .. }) {
                self.events.push_back(Event::NotReadyExited { node: c });
            }
            let parent = self.parent(c);
            self.nodes[c.index()].status = Status::Stopped;
            self.sup_mut(parent).waiting = None;
            self.start_failed(parent, c, now);
            return (None, true);
        }
        if st.unhealthy && !self.stopping {
            let parent = self.parent(c);
            let waiting = self.sup(parent).waiting;
            let parent_runs = matches!(self.nodes[parent.index()].status, Status::Running { .. });
            if parent_runs
                && waiting != Some(Wait::Terminated(c))
                && waiting != Some(Wait::SubtreeDead)
            {
                return (Some(ExitReason::Unhealthy(status)), false);
            }
        }
        (None, false)
    }

    /// Whether the process `c` is running and ready (see [`super::NodeView::ready`]).
    pub(super) fn probe_ready(&self, c: NodeId) -> bool {
        self.running_pid(c).is_some() && self.probes[c.index()].ready
    }
}
