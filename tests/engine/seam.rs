//! The seam between the engine and the loop: spawn answers in any order, batched exits,
//! failed spawns, repeated stop signals, durations at the edge of the clock. Each case
//! here ran two processes for one node, or panicked, before spawns carried tokens.

use super::harness::{Behaviour, Sim};
use vigil::core::Event;
use vigil::spec::ExitStatus;

const NESTED: &str = include_str!("../fixtures/seam/nested.toml");

#[test]
fn exits_one_at_a_time_keep_one_process_per_node() {
    let mut sim = Sim::new(NESTED).start();
    sim.exit_with("a", 1);
    sim.exit_with("c", 1);
    sim.run_ms(5_000);
    assert_eq!(sim.instances("a"), 1, "{}", sim.dump());
    assert_eq!(sim.max_instances(), 1, "{}", sim.dump());
}

/// Defect 1 (a): two exits of one drain, each followed by its actions.
#[test]
fn batched_exits_keep_one_process_per_node() {
    let mut sim = Sim::new(NESTED).start();
    sim.batch_exits(&[("a", ExitStatus::Code(1)), ("c", ExitStatus::Code(1))]);
    sim.run_ms(5_000);
    assert_eq!(sim.instances("a"), 1, "{}", sim.dump());
    assert_eq!(sim.max_instances(), 1, "{}", sim.dump());
}

/// The old loop's order: every exit of a drain fed before any action was carried out.
#[test]
fn exits_fed_before_the_spawns_are_answered_keep_one_process_per_node() {
    let mut sim = Sim::new(NESTED).start();
    sim.batch_exits_unanswered(&[("a", ExitStatus::Code(1)), ("c", ExitStatus::Code(1))]);
    sim.run_ms(5_000);
    assert_eq!(sim.instances("a"), 1, "{}", sim.dump());
    assert_eq!(sim.max_instances(), 1, "{}", sim.dump());
    let unwanted = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Unwanted { .. }))
        .count();
    assert_eq!(
        unwanted,
        1,
        "the stale spawn of a is killed: {}",
        sim.dump()
    );
}

/// A spawn answered after its supervisor was told to stop is killed, and the stop
/// completes only once that process is reaped.
#[test]
fn a_spawn_answered_late_is_killed_not_adopted() {
    let mut sim = Sim::new(NESTED).start();
    sim.hold_spawns();
    sim.exit_with("a", 1); // a's restart spawn is now held, unanswered.
    sim.stop();
    assert_eq!(sim.exit, None, "vigil waits for the unanswered spawn");
    sim.release_spawns();
    let code = sim.run_to_exit();
    assert_eq!(code, 0);
    assert_eq!(sim.alive_count(), 0, "{}", sim.dump());
    let trace = sim.trace();
    let start = trace.iter().rposition(|l| l == "START a").unwrap();
    assert_eq!(trace[start + 1], "KILL a", "{}", sim.dump());
}

const TWO_SUPS: &str = r#"
strategy = "one_for_all"
intensity = 10
period = "60s"
children = ["s1", "s2"]

[supervisor.s1]
intensity = 1
period = "60s"
children = ["a"]

[supervisor.s2]
intensity = 10
period = "60s"
children = ["c"]

[process.a]
command = ["x"]
backoff = { initial = "1s", jitter = 0.0 }
shutdown = "1s"

[process.c]
command = ["x"]
backoff = { initial = "1s", jitter = 0.0 }
shutdown = "1s"
"#;

/// Defect 1 (b): two restarts due on the same tick; the first spawn fails, its
/// supervisor gives up, and the root's `one_for_all` stops the other supervisor while its
/// spawn is still queued.
#[test]
fn a_failed_spawn_that_stops_a_sibling_with_a_queued_spawn() {
    let mut sim = Sim::new(TWO_SUPS)
        .with("a", Behaviour::fail_spawn(|n| n == 2))
        .start();
    sim.exit_with("a", 1);
    sim.exit_with("c", 1);
    sim.run_ms(5_000);
    assert_eq!(sim.instances("c"), 1, "{}", sim.dump());
    assert_eq!(sim.max_instances(), 1, "{}", sim.dump());
}

/// Defect 2: a grace or a timeout the clock cannot hold means "never", not a panic.
#[test]
fn a_huge_shutdown_grace_does_not_overflow() {
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "100y"
"#;
    if vigil::config::parse(cfg, std::path::Path::new("t.toml")).is_err() {
        return; // The config caps durations: nothing to run.
    }
    let mut sim = Sim::new(cfg).with("a", Behaviour::ignore_stop()).start();
    sim.stop();
    sim.run_ms(10_000);
    assert_eq!(sim.exit, None, "the grace has not passed");
}

#[test]
fn a_huge_shutdown_timeout_does_not_overflow() {
    let cfg = r#"
shutdown_timeout = "100y"
children = ["a"]
[process.a]
command = ["x"]
"#;
    if vigil::config::parse(cfg, std::path::Path::new("t.toml")).is_err() {
        return;
    }
    let mut sim = Sim::new(cfg).start();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
}

/// Defect 4: coreutils `timeout` delivers the stop signal twice within microseconds; the
/// repeat must not cut the grace short. A repeat after the window still kills.
#[test]
fn a_repeated_stop_signal_within_the_window_keeps_the_grace() {
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "5s"
"#;
    let mut sim = Sim::new(cfg).with("a", Behaviour::stop_after(500)).start();
    sim.stop();
    sim.stop(); // the duplicate, at the same instant
    assert_eq!(sim.count("KILL a"), 0, "{}", sim.dump());
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.count("KILL a"), 0, "{}", sim.dump());
    assert_eq!(sim.times_of("EXIT 0"), vec![500]);
}

#[test]
fn a_stop_signal_repeated_after_the_window_kills_what_is_left() {
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "5s"
"#;
    let mut sim = Sim::new(cfg).with("a", Behaviour::ignore_stop()).start();
    sim.stop();
    sim.run_ms(1_500);
    sim.stop();
    assert_eq!(sim.times_of("KILL a"), vec![1_500], "{}", sim.dump());
    assert_eq!(sim.run_to_exit(), 0);
}

/// Health failures are counted in the engine: in a row, reset by a pass.
#[test]
fn health_failures_count_in_a_row_and_a_pass_resets_them() {
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
health = { tcp = "127.0.0.1:1", interval = "1s", failures = 3 }
"#;
    let mut sim = Sim::new(cfg).start();
    sim.not_ready("a");
    sim.not_ready("a");
    assert!(!sim.is_ready("a"));
    sim.health_passed("a");
    assert!(sim.is_ready("a"), "a pass makes it ready again");
    sim.not_ready("a");
    sim.not_ready("a");
    assert_eq!(
        sim.count("TERM a"),
        0,
        "two in a row after a pass: {}",
        sim.dump()
    );
    sim.not_ready("a");
    assert_eq!(sim.count("TERM a"), 1, "three in a row: {}", sim.dump());
}

/// Issue 13, finding 7: a process SIGKILL does not end is abandoned `KILL_WAIT` after the
/// SIGKILL, so `shutdown_timeout` is a promise (before, the root waited for ever).
#[test]
fn an_unkillable_process_is_abandoned_after_the_kill_wait() {
    use super::harness::OnStop;
    let cfg = r#"
shutdown_timeout = "2s"
children = ["a", "b"]
[process.a]
command = ["x"]
shutdown = "10s"
[process.b]
command = ["x"]
"#;
    let mut sim = Sim::new(cfg)
        .with("a", Behaviour::default().on_stop(OnStop::Unkillable))
        .start();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.times_of("KILL a"), vec![2_000], "{}", sim.dump());
    assert_eq!(sim.times_of("EXIT 0"), vec![3_000], "{}", sim.dump());
    let abandoned = sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Abandoned { pids } if pids.len() == 1));
    assert!(abandoned, "{}", sim.dump());
}

/// The same without a timeout: a repeated stop signal (or SIGQUIT) kills, and the root
/// gives up waiting `KILL_WAIT` later.
#[test]
fn a_repeated_stop_signal_does_not_wait_for_ever_on_an_unkillable_process() {
    use super::harness::OnStop;
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "infinity"
"#;
    let mut sim = Sim::new(cfg)
        .with("a", Behaviour::default().on_stop(OnStop::Unkillable))
        .start();
    sim.stop();
    sim.run_ms(1_500);
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.times_of("EXIT 0"), vec![2_500], "{}", sim.dump());
}

/// Review finding: a process being stopped for its health checks, then SIGKILLed with
/// its grandparent's subtree, was restarted under the stopped supervisor (two processes
/// for one node after a restart of the subtree; a stop that never completed).
const UNHEALTHY_UNDER_A_KILLED_SUBTREE: &str = r#"
intensity = 100
period = "60s"
children = ["s"]
[supervisor.s]
shutdown = "brutal_kill"
children = ["d", "e"]
[supervisor.d]
intensity = 100
period = "60s"
children = ["c"]
[process.c]
command = ["x"]
backoff = "none"
shutdown = "10s"
health = { tcp = "127.0.0.1:1", failures = 1 }
[process.e]
command = ["x"]
backoff = "none"
"#;

fn command(sim: &mut Sim, id: u64, command: vigil::core::Command) {
    let input = vigil::core::Input::Control { id, command };
    sim.engine.handle(input, sim.now);
    sim.settle();
}

fn answered(sim: &Sim, id: u64) -> bool {
    sim.events
        .iter()
        .any(|(_, e)| matches!(e, Event::ControlDone { id: i, .. } if *i == id))
}

#[test]
fn an_unhealthy_process_killed_with_its_subtree_is_not_restarted() {
    use vigil::core::Command;
    let mut sim = Sim::new(UNHEALTHY_UNDER_A_KILLED_SUBTREE)
        .with("c", Behaviour::ignore_stop())
        .start();
    let s = sim.engine.tree().find("s").unwrap();
    sim.unhealthy("c");
    command(&mut sim, 1, Command::Stop(s));
    sim.run_ms(100);
    assert!(answered(&sim, 1), "{}", sim.dump());
    assert_eq!(sim.state("c"), "stopped", "{}", sim.dump());
    command(&mut sim, 2, Command::Start(s));
    sim.run_ms(100);
    assert_eq!(sim.max_instances(), 1, "{}", sim.dump());
    assert_eq!(sim.instances("c"), 1, "{}", sim.dump());
}

#[test]
fn a_subtree_stop_completes_with_an_unhealthy_grandchild_and_a_slow_sibling() {
    use super::harness::OnStop;
    use vigil::core::Command;
    use vigil::spec::Signal;
    let mut sim = Sim::new(UNHEALTHY_UNDER_A_KILLED_SUBTREE)
        .with("c", Behaviour::ignore_stop())
        .with("e", Behaviour::default().on_stop(OnStop::Unkillable))
        .start();
    let s = sim.engine.tree().find("s").unwrap();
    sim.unhealthy("c");
    command(&mut sim, 1, Command::Stop(s));
    sim.run_ms(100);
    sim.kill("e", Signal::KILL);
    sim.run_ms(60_000);
    assert!(answered(&sim, 1), "{}", sim.dump());
}

/// Review finding: a stop deadline whose tick comes late still gives the SIGKILLs their
/// `KILL_WAIT` before anything is abandoned.
#[test]
fn a_late_stop_deadline_tick_still_waits_after_the_kill() {
    let cfg = r#"
shutdown_timeout = "1s"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "10s"
"#;
    let mut sim = Sim::new(cfg).with("a", Behaviour::ignore_stop()).start();
    sim.stop();
    // The loop stalls: the next tick comes 5 s after the deadline.
    sim.now += std::time::Duration::from_secs(6);
    sim.engine.handle(vigil::core::Input::Tick, sim.now);
    sim.settle();
    assert_eq!(sim.exit, Some(0), "{}", sim.dump());
    let abandoned = sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Abandoned { .. }));
    assert!(
        !abandoned,
        "a died of its SIGKILL, nothing abandoned: {}",
        sim.dump()
    );
}
