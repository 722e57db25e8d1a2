//! vigil's Prometheus metrics (served at `/metrics` when `[http]` is set).
//!
//! Counters are bumped by the loop as it observes the engine's events; gauges (up,
//! ready, uptime) are read from the engine when a scrape arrives. Exists only when
//! `[http]` is configured, so a vigil without it does no metrics work at all. Never
//! decides anything and does no I/O: encoding returns a string.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `vigil_restarts_total` | `child` | restarts counted by the child's supervisor |
//! | `vigil_exits_total` | `child`, `status` | exits of a process; `status` is the exit code (`"1"`) or the signal (`"SIGKILL"`) |
//! | `vigil_child_up` | `child` | 1 when the process or supervisor is running |
//! | `vigil_child_ready` | `child` | 1 when it is ready (see `/readyz`) |
//! | `vigil_give_ups_total` | `supervisor` | times the supervisor exceeded its restart intensity |
//! | `vigil_spawn_failures_total` | `child` | failed spawns |
//! | `vigil_orphans_reaped_total` | | adopted orphans reaped |
//! | `vigil_uptime_seconds` | | seconds since vigil started |

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::core::Engine;
use crate::spec::{ExitStatus, NodeId, Tree};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChildLabel {
    child: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExitLabel {
    child: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SupervisorLabel {
    supervisor: String,
}

/// The registry and its metrics.
pub struct Metrics {
    registry: Registry,
    restarts: Family<ChildLabel, Counter>,
    exits: Family<ExitLabel, Counter>,
    up: Family<ChildLabel, Gauge>,
    ready: Family<ChildLabel, Gauge>,
    give_ups: Family<SupervisorLabel, Counter>,
    spawn_failures: Family<ChildLabel, Counter>,
    orphans: Counter,
    orphans_seen: u64,
    uptime: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Every metric, with a zero series for every node of `tree`.
    pub fn new(tree: &Tree) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            restarts: Family::default(),
            exits: Family::default(),
            up: Family::default(),
            ready: Family::default(),
            give_ups: Family::default(),
            spawn_failures: Family::default(),
            orphans: Counter::default(),
            orphans_seen: 0,
            uptime: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "vigil_restarts",
            "Restarts counted against the child's supervisor's intensity",
            m.restarts.clone(),
        );
        registry.register(
            "vigil_exits",
            "Exits of processes, by exit code or signal",
            m.exits.clone(),
        );
        registry.register(
            "vigil_child_up",
            "1 when the process or supervisor is running",
            m.up.clone(),
        );
        registry.register(
            "vigil_child_ready",
            "1 when the process or supervisor is ready",
            m.ready.clone(),
        );
        registry.register(
            "vigil_give_ups",
            "Times the supervisor exceeded its restart intensity and gave up",
            m.give_ups.clone(),
        );
        registry.register(
            "vigil_spawn_failures",
            "Spawns that failed",
            m.spawn_failures.clone(),
        );
        registry.register(
            "vigil_orphans_reaped",
            "Adopted orphans reaped (processes that were never children of the tree)",
            m.orphans.clone(),
        );
        registry.register(
            "vigil_uptime_seconds",
            "Seconds since vigil started",
            m.uptime.clone(),
        );
        for id in tree.ids() {
            let n = tree.node(id);
            if n.as_supervisor().is_some() {
                let _ = m.give_ups.get_or_create(&SupervisorLabel {
                    supervisor: n.name.clone(),
                });
            }
            if id == NodeId::ROOT {
                continue;
            }
            let child = ChildLabel {
                child: n.name.clone(),
            };
            let _ = m.restarts.get_or_create(&child);
            let _ = m.up.get_or_create(&child);
            let _ = m.ready.get_or_create(&child);
            if n.as_process().is_some() {
                let _ = m.spawn_failures.get_or_create(&child);
            }
        }
        Metrics { registry, ..m }
    }

    /// A restart of `child` was counted.
    pub fn restart(&self, child: &str) {
        self.restarts.get_or_create(&label(child)).inc();
    }

    /// `child` exited with `status`.
    pub fn exit(&self, child: &str, status: ExitStatus) {
        let status = match status {
            ExitStatus::Code(c) => c.to_string(),
            ExitStatus::Signaled(s) => s.name(),
        };
        self.exits
            .get_or_create(&ExitLabel {
                child: child.to_string(),
                status,
            })
            .inc();
    }

    /// `supervisor` gave up.
    pub fn give_up(&self, supervisor: &str) {
        self.give_ups
            .get_or_create(&SupervisorLabel {
                supervisor: supervisor.to_string(),
            })
            .inc();
    }

    /// A spawn of `child` failed.
    pub fn spawn_failure(&self, child: &str) {
        self.spawn_failures.get_or_create(&label(child)).inc();
    }

    /// The text exposition, with the gauges read from `engine` now.
    pub fn encode(&mut self, engine: &Engine, orphans: u64, uptime_secs: f64) -> String {
        let tree = engine.tree();
        for id in tree.ids().filter(|&id| id != NodeId::ROOT) {
            let l = label(&tree.node(id).name);
            let up = engine.running_since(id).is_some();
            self.up.get_or_create(&l).set(i64::from(up));
            self.ready
                .get_or_create(&l)
                .set(i64::from(up && engine.is_ready(id)));
        }
        if orphans > self.orphans_seen {
            self.orphans.inc_by(orphans - self.orphans_seen);
            self.orphans_seen = orphans;
        }
        self.uptime.set(uptime_secs);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out = format!("# cannot encode the metrics: {e}\n");
        }
        out
    }
}

fn label(child: &str) -> ChildLabel {
    ChildLabel {
        child: child.to_string(),
    }
}
