//! Readiness and health in simulated time: a start waits for `ready`, the readiness
//! deadline fails a start (69 at boot, a counted failed restart later, OTP case 25 in its
//! readiness form), an exit before ready fails it too, and failed health checks stop the
//! child and count as an abnormal exit per its restart type.

use std::time::Duration;

use super::harness::{Behaviour, OnStop, Sim, lines};
use vigil::core::Event;
use vigil::spec::ExitStatus;

/// A process in OTP mode (no backoff, 1 s grace) with extra settings.
fn p(name: &str, extra: &str) -> String {
    format!("[process.{name}]\ncommand = [\"x\"]\nbackoff = \"none\"\nshutdown = \"1s\"\n{extra}\n")
}

fn root(intensity: u32, children: &[&str]) -> String {
    format!("intensity = {intensity}\nperiod = \"3600s\"\nchildren = {children:?}\n")
}

const READY_2S: &str = "ready = { tcp = \"127.0.0.1:1\", timeout = \"2s\" }";

#[test]
fn the_next_sibling_waits_until_ready() {
    let cfg = root(3, &["a", "b"]) + &p("a", READY_2S) + &p("b", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(sim.trace(), lines(&["START a", "WATCH a ready"]));
    assert!(!sim.is_ready("a"), "spawned is not ready");
    assert_eq!(sim.state("a"), "running");
    sim.run_ms(1500);
    assert_eq!(sim.count("START b"), 0, "b must wait for a's readiness");
    sim.ready("a");
    assert_eq!(
        sim.trace(),
        lines(&["START a", "WATCH a ready", "UNWATCH a", "START b"])
    );
    assert!(sim.is_ready("a") && sim.is_ready("b"));
    // The deadline is disarmed: nothing happens at 2 s.
    sim.run_ms(5000);
    assert_eq!(sim.count("KILL a"), 0);
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
}

#[test]
fn nested_start_waits_for_readiness_too() {
    let cfg = root(3, &["s", "c"])
        + "[supervisor.s]\nchildren = [\"a\", \"b\"]\n"
        + &p("a", "")
        + &p("b", "ready = { sd_notify = true }")
        + &p("c", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(sim.count("START c"), 0);
    sim.ready("b");
    assert_eq!(sim.count("START c"), 1);
}

#[test]
fn timeout_at_the_initial_start_aborts_with_69() {
    let cfg = root(100, &["a", "b", "c"]) + &p("a", "") + &p("b", READY_2S) + &p("c", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(sim.run_to_exit(), 69);
    assert_eq!(
        sim.trace(),
        lines(&[
            "START a",
            "START b",
            "WATCH b ready",
            "UNWATCH b",
            "KILL b",
            "UNWATCH b",
            "TERM a",
            "EXIT 69"
        ]),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times_of("KILL b"), vec![2000]);
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| matches!(e, Event::NotReadyInTime { timeout, .. } if *timeout == Duration::from_secs(2)))
    );
}

#[test]
fn exit_before_ready_is_a_start_failure() {
    let cfg = root(100, &["a", "b"]) + &p("a", "") + &p("b", "ready = { notify_fd = 3 }");
    let mut sim = Sim::new(&cfg)
        .with(
            "b",
            Behaviour::exits(|_| Some((Duration::from_millis(300), ExitStatus::Code(0)))),
        )
        .start();
    assert_eq!(sim.run_to_exit(), 69);
    assert_eq!(
        sim.trace(),
        lines(&[
            "START a",
            "START b",
            "WATCH b ready",
            "UNWATCH b",
            "TERM a",
            "EXIT 69"
        ])
    );
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| matches!(e, Event::NotReadyExited { .. }))
    );
}

/// OTP case 25 in its readiness form: a restart whose child is not ready in time is a
/// failed restart attempt, counted against the intensity, and retried.
#[test]
fn timeout_in_a_restart_counts_against_intensity() {
    let cfg = root(2, &["a", "b"]) + &p("a", READY_2S) + &p("b", "");
    let mut sim = Sim::new(&cfg).start();
    sim.ready("a");
    assert_eq!(sim.count("START b"), 1);
    sim.exit_with("a", 1);
    assert_eq!(sim.restarts_counted("root"), 1);
    // Restarted at once, never ready: killed at the deadline, a failed attempt (2 of 2).
    sim.run_ms(2000);
    assert_eq!(sim.count("KILL a"), 1, "{}", sim.dump());
    assert_eq!(sim.restarts_counted("root"), 2);
    assert_eq!(sim.count("START a"), 3, "retried after the failed attempt");
    // This time it becomes ready: the tree keeps running.
    sim.ready("a");
    assert!(sim.is_ready("a"));
    assert_eq!(sim.exit, None);
    // One more failure is one too many: give up, exit 75.
    sim.exit_with("a", 1);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(sim.gave_up("root").as_deref(), Some("a"));
}

#[test]
fn a_restart_that_never_gets_ready_ends_in_give_up() {
    let cfg = root(3, &["a"]) + &p("a", READY_2S);
    let mut sim = Sim::new(&cfg).start();
    sim.ready("a");
    sim.exit_with("a", 1);
    assert_eq!(sim.run_to_exit(), 75);
    // 1 counted exit + 3 counted timeouts, the 4th exceeds 3 in the period.
    assert_eq!(sim.count("KILL a"), 3, "{}", sim.dump());
    assert_eq!(sim.restarts_counted("root"), 3);
}

#[test]
fn stop_while_waiting_for_readiness_is_a_clean_stop() {
    let cfg = root(3, &["a", "b"]) + &p("a", "") + &p("b", READY_2S);
    let mut sim = Sim::new(&cfg).start();
    sim.run_ms(500);
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.count("KILL b"), 0, "{}", sim.dump());
    assert_eq!(sim.count("TERM b"), 1);
}

const HEALTH: &str = "health = { tcp = \"127.0.0.1:1\", failures = 2 }";

#[test]
fn health_watch_starts_once_ready() {
    let cfg = root(3, &["a", "b"]) + &p("a", &format!("{READY_2S}\n{HEALTH}")) + &p("b", HEALTH);
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(sim.trace(), lines(&["START a", "WATCH a ready"]));
    sim.ready("a");
    assert_eq!(
        sim.trace(),
        lines(&[
            "START a",
            "WATCH a ready",
            "WATCH a health",
            "START b",
            "WATCH b health"
        ])
    );
}

#[test]
fn readiness_is_lost_and_regained_while_running() {
    let cfg = root(3, &["a"]) + &p("a", HEALTH);
    let mut sim = Sim::new(&cfg).start();
    assert!(sim.is_ready("a"));
    sim.not_ready("a");
    assert!(!sim.is_ready("a"));
    assert_eq!(sim.state("a"), "running");
    sim.ready("a");
    assert!(sim.is_ready("a"));
    let regained = sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Ready { regained: true, .. }));
    assert!(regained);
    assert_eq!(
        sim.count("TERM a"),
        0,
        "losing readiness alone stops nothing"
    );
}

#[test]
fn unhealthy_permanent_child_is_stopped_and_restarted() {
    let cfg = root(3, &["a", "b"]) + &p("a", HEALTH) + &p("b", "");
    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.unhealthy("a");
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "UNWATCH a",
            "TERM a",
            "UNWATCH a",
            "START a",
            "WATCH a health"
        ]),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.restarts_counted("root"), 1);
    assert_eq!(sim.count("START b"), 1, "one_for_one: b untouched");
}

#[test]
fn unhealthy_transient_child_restarts_even_after_a_clean_exit() {
    let cfg = root(3, &["a"]) + &p("a", &format!("restart = \"transient\"\n{HEALTH}"));
    let mut sim = Sim::new(&cfg)
        .with(
            "a",
            Behaviour::default().on_stop(OnStop::After(
                Duration::from_millis(100),
                ExitStatus::Code(0),
            )),
        )
        .start();
    sim.unhealthy("a");
    sim.run_ms(200);
    assert_eq!(sim.count("START a"), 2, "{}", sim.dump());
    assert_eq!(sim.restarts_counted("root"), 1);
}

#[test]
fn unhealthy_child_that_ignores_its_stop_signal_is_killed_after_the_grace() {
    let cfg = root(3, &["a"]) + &p("a", HEALTH);
    let mut sim = Sim::new(&cfg).with("a", Behaviour::ignore_stop()).start();
    sim.unhealthy("a");
    sim.run_ms(1000);
    assert_eq!(sim.times_of("KILL a"), vec![1000], "{}", sim.dump());
    assert_eq!(sim.count("START a"), 2);
}

#[test]
fn unhealthy_temporary_child_is_removed() {
    let cfg = root(3, &["a"]) + &p("a", &format!("restart = \"temporary\"\n{HEALTH}"));
    let mut sim = Sim::new(&cfg).start();
    sim.unhealthy("a");
    assert_eq!(sim.count("START a"), 1);
    assert_eq!(sim.state("a"), "removed");
}

#[test]
fn flapping_health_ends_in_give_up() {
    let cfg = root(2, &["a"]) + &p("a", HEALTH);
    let mut sim = Sim::new(&cfg).start();
    for _ in 0..3 {
        sim.run_ms(100);
        sim.unhealthy("a");
    }
    assert_eq!(sim.run_to_exit(), 75, "{}", sim.dump());
    assert_eq!(sim.gave_up("root").as_deref(), Some("a"));
    assert!(
        sim.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Unhealthy { .. }))
            .count()
            == 3
    );
}

#[test]
fn unhealthy_during_a_stop_is_ignored() {
    let cfg = root(3, &["a"]) + &p("a", HEALTH);
    let mut sim = Sim::new(&cfg).with("a", Behaviour::ignore_stop()).start();
    sim.stop();
    sim.unhealthy("a");
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.count("START a"), 1);
}

#[test]
fn a_significant_unhealthy_child_ends_the_tree_with_its_status() {
    let cfg = "auto_shutdown = \"any_significant\"\nchildren = [\"a\"]\n".to_string()
        + &p(
            "a",
            &format!("restart = \"temporary\"\nsignificant = true\n{HEALTH}"),
        );
    let mut sim = Sim::new(&cfg).start();
    sim.unhealthy("a");
    // Died of the SIGTERM vigil sent for its health: 128 + 15.
    assert_eq!(sim.run_to_exit(), 143);
}

mod props {
    //! Random trees where some processes have `ready` and `health`, fed random exits,
    //! readiness and health results, waits and a stop: vigil always exits, with nothing
    //! left alive, no window over its intensity, only running processes ready, and nothing
    //! after the exit.

    use std::time::Duration;

    use proptest::prelude::*;

    use super::super::harness::{Behaviour, OnStop, Sim};
    use vigil::core::{Event, Input};
    use vigil::spec::{ExitStatus, Signal};

    #[derive(Clone, Debug)]
    enum Op {
        Exit(usize, i32),
        Ready(usize),
        NotReady(usize),
        Unhealthy(usize),
        Wait(u64),
        Stop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6, 0i32..2).prop_map(|(i, c)| Op::Exit(i, c)),
            (0usize..6).prop_map(Op::Ready),
            (0usize..6).prop_map(Op::NotReady),
            (0usize..6).prop_map(Op::Unhealthy),
            (0u64..1500).prop_map(Op::Wait),
            Just(Op::Stop),
        ]
    }

    /// (restart, has ready, has health, ignores its stop signal)
    fn proc_() -> impl Strategy<Value = (&'static str, bool, bool, bool)> {
        (
            prop::sample::select(vec!["permanent", "transient", "temporary"]),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn readiness_invariants_hold(
            strategy in prop::sample::select(vec!["one_for_one", "one_for_all", "rest_for_one"]),
            intensity in 0u32..4,
            nested in any::<bool>(),
            procs in prop::collection::vec(proc_(), 1..6),
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let names: Vec<String> = (0..procs.len()).map(|i| format!("p{i}")).collect();
            let mut cfg = if nested {
                format!(
                    "children = [\"sub\"]\n[supervisor.sub]\nstrategy = \"{strategy}\"\nintensity = {intensity}\nperiod = \"5s\"\nchildren = {names:?}\n"
                )
            } else {
                format!("strategy = \"{strategy}\"\nintensity = {intensity}\nperiod = \"5s\"\nchildren = {names:?}\n")
            };
            for (i, (restart, ready, health, _)) in procs.iter().enumerate() {
                cfg += &format!("[process.p{i}]\ncommand = [\"x\"]\nrestart = \"{restart}\"\nshutdown = \"300ms\"\nbackoff = \"none\"\n");
                if *ready {
                    cfg += "ready = { file = \"/r\", timeout = \"1s\" }\n";
                }
                if *health {
                    cfg += "health = { file = \"/h\" }\n";
                }
            }
            let mut sim = Sim::new(&cfg);
            for (i, p) in procs.iter().enumerate() {
                let on_stop = if p.3 { OnStop::Ignore } else { OnStop::Die };
                sim = sim.with(&format!("p{i}"), Behaviour::default().on_stop(on_stop));
            }
            let mut sim = sim.start();
            for op in ops {
                if sim.exit.is_some() {
                    break;
                }
                let name = |i: usize| format!("p{}", i % procs.len());
                match op {
                    Op::Exit(i, c) => {
                        if sim.pid(&name(i)).is_some() {
                            sim.exit_with(&name(i), c);
                        }
                    }
                    Op::Ready(i) => sim.ready(&name(i)),
                    Op::NotReady(i) => sim.not_ready(&name(i)),
                    Op::Unhealthy(i) => sim.unhealthy(&name(i)),
                    Op::Wait(ms) => sim.run_ms(ms),
                    Op::Stop => sim.stop(),
                }
                for n in &names {
                    if sim.is_ready(n) {
                        prop_assert!(sim.pid(n).is_some(), "{n} ready but not alive:\n{}", sim.dump());
                    }
                }
                if sim.exit.is_some() {
                    prop_assert_eq!(sim.alive_count(), 0, "exit with children alive:\n{}", sim.dump());
                }
            }
            if sim.exit.is_none() {
                sim.stop();
            }
            let code = sim.run_to_exit();
            prop_assert!([0, 69, 75].contains(&code), "exit {code}:\n{}", sim.dump());
            prop_assert_eq!(sim.alive_count(), 0, "children left after exit:\n{}", sim.dump());
            // Every restart stays within the intensity of its supervisor.
            let tree = sim.engine.tree();
            let mut times: std::collections::HashMap<_, Vec<Duration>> = Default::default();
            for (t, e) in &sim.events {
                match e {
                    Event::SupervisorStarted { supervisor } => {
                        times.insert(*supervisor, Vec::new());
                    }
                    Event::RestartScheduled { supervisor, .. } => {
                        let spec = tree.node(*supervisor).as_supervisor().unwrap();
                        let list = times.entry(*supervisor).or_default();
                        list.push(*t);
                        let inside = list.iter().filter(|&&x| *t - x <= spec.period).count();
                        prop_assert!(inside <= spec.intensity as usize, "{}", sim.dump());
                    }
                    _ => {}
                }
            }
            let now = sim.now + Duration::from_secs(3600);
            sim.engine.handle(Input::Tick, now);
            sim.engine.handle(Input::Ready { node: vigil::spec::NodeId(1) }, now);
            sim.engine.handle(Input::HealthCheck { node: vigil::spec::NodeId(1), passed: false }, now);
            sim.engine.handle(Input::Exited { pid: 101, status: ExitStatus::Signaled(Signal::KILL) }, now);
            prop_assert_eq!(sim.engine.poll_action(), None);
            prop_assert_eq!(sim.engine.next_deadline(), None);
        }
    }
}
