//! OTP's acceptance cases (otp-supervisor.md section 2, B to H) in simulated time.
//!
//! Each test is named after the `supervisor_SUITE.erl` case it derives from, with its
//! number in the reference. Processes use `backoff = "none"` ("OTP mode") unless a test
//! is about backoff. Case A (configuration) lives with the config tests; case I (manual
//! control) is in `control.rs`.

use std::time::Duration;

use super::harness::{Behaviour, Sim, lines};
use vigil::spec::{ExitStatus, Signal};

const KILL: Signal = Signal::KILL;
const TERM: Signal = Signal::TERM;

/// Process tables in OTP mode: `p("a", "")`, `p("t", "restart = \"transient\"")`.
fn p(name: &str, extra: &str) -> String {
    let shutdown = if extra.contains("shutdown =") {
        ""
    } else {
        "shutdown = \"1s\"\n"
    };
    format!("[process.{name}]\ncommand = [\"x\"]\nbackoff = \"none\"\n{shutdown}{extra}\n")
}

/// Several plain processes.
fn ps(names: &[&str]) -> String {
    names.iter().map(|n| p(n, "")).collect()
}

/// A root supervisor header.
fn root(strategy: &str, intensity: u32, period: &str, children: &[&str]) -> String {
    format!(
        "strategy = \"{strategy}\"\nintensity = {intensity}\nperiod = \"{period}\"\nchildren = {children:?}\n"
    )
}

fn code(c: i32) -> ExitStatus {
    ExitStatus::Code(c)
}

// ---------- B. Start-up ----------

/// Case 6: `order_of_children`, `sup_start_normal`: start order is config order, not sorted.
#[test]
fn b06_order_of_children() {
    let names = ["ch7", "ch3", "ch10", "ch2", "ch5"];
    let cfg = root("rest_for_one", 2, "3600s", &names) + &ps(&names);
    let sim = Sim::new(&cfg).start();
    assert_eq!(
        sim.trace(),
        lines(&[
            "START ch7",
            "START ch3",
            "START ch10",
            "START ch2",
            "START ch5"
        ])
    );
}

/// Case 6: An empty root starts, stays up, and exits 0 on SIGTERM.
#[test]
fn b06_empty_root() {
    let mut sim = Sim::new("children = []\n").start();
    sim.run_ms(10_000);
    assert_eq!(sim.exit, None);
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
}

/// Case 7: `faulty_application_shutdown`: a boot failure aborts and unwinds, no retry, no
/// intensity consulted.
#[test]
fn b07_boot_failure_aborts_and_unwinds() {
    let cfg = root("one_for_one", 100, "5s", &["a", "b", "c"]) + &ps(&["a", "b", "c"]);
    let mut sim = Sim::new(&cfg)
        .with("b", Behaviour::fail_spawn(|_| true))
        .start();
    assert_eq!(sim.run_to_exit(), 69);
    assert_eq!(
        sim.trace(),
        lines(&["START a", "FAIL b", "TERM a", "EXIT 69"])
    );
}

/// Case 8: A boot failure inside a nested supervisor cascades to the root.
#[test]
fn b08_nested_boot_failure_cascades() {
    let cfg = root("one_for_one", 3, "5s", &["s1", "s2", "w"])
        + "[supervisor.s1]\nchildren = [\"x\", \"y\"]\n[supervisor.s2]\nchildren = [\"z\"]\n"
        + &ps(&["x", "y", "z", "w"]);
    let mut sim = Sim::new(&cfg)
        .with("z", Behaviour::fail_spawn(|_| true))
        .start();
    assert_eq!(sim.run_to_exit(), 69);
    assert_eq!(
        sim.trace(),
        lines(&[
            "START x", "START y", "FAIL z", "TERM y", "TERM x", "EXIT 69"
        ])
    );
}

// ---------- C. Restart types x exit reasons ----------

fn one(extra: &str) -> String {
    root("one_for_one", 10, "3600s", &["a", "b"]) + &p("a", extra) + &p("b", "")
}

/// Case 10: `permanent_normal`: a permanent child that exits 0 is restarted and counted.
#[test]
fn c10_permanent_normal() {
    let mut sim = Sim::new(&one("")).start();
    sim.exit_with("a", 0);
    assert_eq!(sim.count("START a"), 2);
    assert_eq!(sim.restarts_counted("root"), 1);
}

/// Case 11: `permanent_shutdown`: an external SIGTERM is "shutdown", still restarted when permanent.
#[test]
fn c11_permanent_shutdown() {
    let mut sim = Sim::new(&one("")).start();
    sim.kill("a", TERM);
    assert_eq!(sim.count("START a"), 2);
    let mut sim = Sim::new(&one("success_exit_codes = [0, 143]")).start();
    sim.exit_with("a", 143);
    assert_eq!(sim.count("START a"), 2);
}

/// Case 12: `permanent_abnormal`.
#[test]
fn c12_permanent_abnormal() {
    let mut sim = Sim::new(&one("")).start();
    sim.exit_with("a", 1);
    sim.kill("a", KILL);
    assert_eq!(sim.count("START a"), 3);
    assert_eq!(sim.restarts_counted("root"), 2);
}

/// Case 13: `transient_normal`: not restarted, spec kept, nothing counted, siblings untouched.
#[test]
fn c13_transient_normal() {
    let mut sim = Sim::new(&one("restart = \"transient\"")).start();
    let b = sim.pid("b");
    sim.exit_with("a", 0);
    sim.run_ms(5_000);
    assert_eq!(sim.count("START a"), 1);
    assert_eq!(sim.state("a"), "stopped");
    assert_eq!(sim.restarts_counted("root"), 0);
    assert_eq!(sim.pid("b"), b);
    assert_eq!(sim.exit, None);
}

/// Case 14: `transient_shutdown`: an external SIGTERM counts as normal for a transient child.
#[test]
fn c14_transient_shutdown() {
    let mut sim = Sim::new(&one("restart = \"transient\"")).start();
    sim.kill("a", TERM);
    sim.run_ms(1_000);
    assert_eq!(sim.count("START a"), 1);
    assert_eq!(sim.state("a"), "stopped");
    // A configured shutdown-class code counts too.
    let mut sim = Sim::new(&one(
        "restart = \"transient\"\nsuccess_exit_codes = [0, 143]",
    ))
    .start();
    sim.exit_with("a", 143);
    assert_eq!(sim.count("START a"), 1);
}

/// Case 15: `transient_abnormal`: exit 3, SIGKILL and SIGSEGV restart a transient child; so
/// does a stop signal other than SIGTERM (only SIGTERM is shutdown-class).
#[test]
fn c15_transient_abnormal() {
    let mut sim = Sim::new(&one("restart = \"transient\"")).start();
    sim.exit_with("a", 3);
    sim.kill("a", KILL);
    sim.kill("a", Signal(11));
    sim.kill("a", Signal::INT);
    assert_eq!(sim.count("START a"), 5);
}

/// Case 16: `temporary_normal`, `temporary_shutdown`, `temporary_abnormal`,
/// `do_not_save_child_specs_for_temporary_children`, under every strategy.
#[test]
fn c16_temporary_never_restarted() {
    for strategy in ["one_for_one", "one_for_all", "rest_for_one"] {
        for status in [
            code(0),
            ExitStatus::Signaled(TERM),
            code(1),
            ExitStatus::Signaled(KILL),
        ] {
            let cfg = root(strategy, 10, "3600s", &["a", "b"])
                + &p("a", "restart = \"temporary\"")
                + &p("b", "");
            let mut sim = Sim::new(&cfg).start();
            let b = sim.pid("b");
            match status {
                ExitStatus::Code(c) => sim.exit_with("a", c),
                ExitStatus::Signaled(s) => sim.kill("a", s),
            }
            sim.run_ms(1_000);
            assert_eq!(sim.count("START a"), 1, "{strategy} {status}");
            assert_eq!(sim.state("a"), "removed", "{strategy} {status}");
            assert_eq!(sim.pid("b"), b, "{strategy} {status}: sibling untouched");
            assert_eq!(sim.restarts_counted("root"), 0);
        }
    }
}

/// Case 17: A temporary crash consumes no intensity, even with intensity 0.
#[test]
fn c17_temporary_crash_costs_nothing() {
    let cfg = root("one_for_one", 0, "5s", &["t", "p"])
        + &p("t", "restart = \"temporary\"")
        + &p("p", "");
    let mut sim = Sim::new(&cfg).start();
    let p = sim.pid("p");
    sim.kill("t", KILL);
    sim.run_ms(1_000);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.pid("p"), p);
}

// ---------- D. Restart intensity ----------

/// Case 18: `one_for_one` (frequency part): give up on restart MaxR+1.
#[test]
fn d18_give_up_on_restart_max_plus_one() {
    let cfg = root("one_for_one", 2, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg).start();
    let b = sim.pid("b");
    sim.kill("a", KILL);
    assert_eq!(sim.pid("b"), b);
    sim.kill("b", KILL);
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(sim.trace_from(m), lines(&["TERM b", "EXIT 75"]));
    assert_eq!(sim.gave_up("root").as_deref(), Some("a"));
}

/// Case 19: Exactly MaxR restarts are tolerated.
#[test]
fn d19_exactly_intensity_is_tolerated() {
    let cfg = root("one_for_one", 3, "60s", &["a"]) + &ps(&["a"]);
    let mut sim = Sim::new(&cfg).start();
    for _ in 0..3 {
        sim.run_ms(500);
        sim.kill("a", KILL);
        assert_eq!(sim.exit, None);
    }
    sim.run_ms(500);
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
}

/// Case 20: `intensity = 0`: the first restart request gives up; nothing is respawned.
#[test]
fn d20_intensity_zero() {
    let cfg = root("one_for_one", 0, "1s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(
        sim.trace(),
        lines(&["START a", "START b", "TERM b", "EXIT 75"])
    );
}

/// Case 21: `multiple_restarts`: restarts further apart than the period never accumulate.
#[test]
fn d21_spaced_restarts_never_accumulate() {
    let cfg = root("one_for_one", 1, "1s", &["a"]) + &p("a", "shutdown = \"brutal_kill\"");
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", KILL);
    for _ in 0..3 {
        sim.run_ms(2_100);
        sim.kill("a", KILL);
    }
    sim.run_ms(100);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.count("START a"), 5);
}

/// Case 22: A sliding window, not a cumulative counter.
#[test]
fn d22_sliding_window() {
    let cfg = root("one_for_one", 2, "5s", &["a"]) + &ps(&["a"]);
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", KILL); // t = 0
    sim.run_ms(1_000);
    sim.kill("a", KILL); // t = 1
    sim.run_ms(7_000);
    sim.kill("a", KILL); // t = 8: 0 and 1 have aged out
    sim.run_ms(500);
    sim.kill("a", KILL); // t = 8.5
    assert_eq!(sim.exit, None);
    sim.run_ms(500);
    sim.kill("a", KILL); // t = 9: 8, 8.5, 9 within 5 s
    assert_eq!(sim.run_to_exit(), 75);
}

/// Case 23: `one_for_one_escalation`: failed restarts count, back to back.
#[test]
fn d23_failed_restarts_count_back_to_back() {
    let cfg = root("one_for_one", 4, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(
        sim.trace_from(m),
        lines(&["FAIL a", "FAIL a", "FAIL a", "FAIL a", "TERM b", "EXIT 75"])
    );
    assert!(
        sim.times_of("FAIL a").iter().all(|&t| t == 0),
        "no delay in OTP mode"
    );
}

/// 23, with backoff: the same four attempts, separated by the backoff delays.
#[test]
fn d23_failed_restarts_with_backoff() {
    let cfg = root("one_for_one", 4, "3600s", &["a", "b"])
        + "[process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"1s\", max = \"30s\", jitter = 0.0 }\n"
        + &p("b", "");
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(sim.times_of("FAIL a"), vec![1_000, 3_000, 7_000, 15_000]);
}

/// Case 24: `hanging_restart_loop`: a restart loop that never reaches the limit must not
/// block shutdown; nothing starts after the stop.
#[test]
fn d24_restart_loop_does_not_block_shutdown() {
    let cfg = root("one_for_one", 8, "10s", &["a"])
        + "[process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"2s\", multiplier = 1.0, jitter = 0.0 }\n";
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    sim.kill("a", KILL);
    sim.run_ms(30_000);
    assert_eq!(sim.exit, None, "2 s apart, 8 in 10 s is never reached");
    sim.run_ms(500);
    assert_eq!(sim.state("a"), "restarting");
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.trace_from(m), lines(&["EXIT 0"]));
}

/// Case 25: `hanging_restart_loop_rest_for_one`: later children stay down while the restart loops.
#[test]
fn d25_rest_for_one_loop_leaves_later_children_down() {
    let cfg = root("rest_for_one", 8, "10s", &["c1", "c2", "c3"])
        + &p("c1", "")
        + "[process.c2]\ncommand = [\"x\"]\nbackoff = { initial = \"2s\", multiplier = 1.0, jitter = 0.0 }\n"
        + &p("c3", "");
    let mut sim = Sim::new(&cfg)
        .with("c2", Behaviour::fail_spawn(|n| (2..=5).contains(&n)))
        .start();
    let c1 = sim.pid("c1");
    sim.kill("c2", KILL);
    sim.run_ms(3_000);
    assert_eq!(sim.pid("c1"), c1);
    assert_eq!(sim.state("c2"), "restarting");
    assert_eq!(sim.state("c3"), "stopped");
    assert_eq!(sim.count("START c3"), 1);
    sim.run_ms(10_000);
    assert_eq!(sim.state("c3"), "running", "started once c2 started");
    assert_eq!(sim.trace().last().map(String::as_str), Some("START c3"));
}

/// Case 26: The budget is shared by all children.
#[test]
fn d26_budget_is_shared() {
    let cfg = root("one_for_one", 2, "3600s", &["a", "b", "c"]) + &ps(&["a", "b", "c"]);
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", KILL);
    sim.kill("b", KILL);
    assert_eq!(sim.exit, None);
    sim.kill("c", KILL);
    assert_eq!(sim.run_to_exit(), 75);
}

// ---------- E. Strategies ----------

/// Case 27: `one_for_one` isolates siblings.
#[test]
fn e27_one_for_one_isolates() {
    let cfg = root("one_for_one", 2, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg).start();
    let b = sim.pid("b");
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.trace_from(m), lines(&["START a"]));
    assert_eq!(sim.pid("b"), b);
}

/// Case 28: `one_for_all`: base case, then give-up with reverse-order termination.
#[test]
fn e28_one_for_all() {
    let cfg = root("one_for_all", 2, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.trace_from(m), lines(&["TERM b", "START a", "START b"]));
    assert_eq!(sim.restarts_counted("root"), 1);
    sim.kill("a", KILL);
    let m = sim.mark();
    sim.kill("b", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(sim.trace_from(m), lines(&["TERM a", "EXIT 75"]));
}

/// Case 29: `one_for_all` ordering: sequential reverse-order termination, then in-order start.
#[test]
fn e29_one_for_all_ordering() {
    let cfg = root("one_for_all", 5, "3600s", &["a", "b", "c", "d"]) + &ps(&["a", "b", "c", "d"]);
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::stop_after(500))
        .with("c", Behaviour::stop_after(500))
        .with("d", Behaviour::stop_after(500))
        .start();
    let m = sim.mark();
    sim.kill("b", KILL);
    sim.run_ms(5_000);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "TERM d", "TERM c", "TERM a", "START a", "START b", "START c", "START d"
        ])
    );
    assert_eq!(sim.times_of("TERM d"), vec![0]);
    assert_eq!(sim.times_of("TERM c"), vec![500], "after d died");
    assert_eq!(sim.times_of("TERM a"), vec![1_000], "after c died");
}

/// Case 30: `one_for_all_escalation`: every retry re-runs the whole group.
#[test]
fn e30_one_for_all_escalation() {
    let cfg = root("one_for_all", 4, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg)
        .with("b", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    let mut expect = vec!["TERM b", "START a", "FAIL b"];
    for _ in 0..3 {
        expect.extend(["TERM a", "START a", "FAIL b"]);
    }
    expect.extend(["TERM a", "EXIT 75"]);
    assert_eq!(sim.trace_from(m), lines(&expect));
}

/// Case 31: `one_for_all_other_child_fails_restart`.
#[test]
fn e31_one_for_all_other_child_fails_restart() {
    let cfg = root("one_for_all", 3, "3600s", &["c1", "c2"]) + &ps(&["c1", "c2"]);
    let mut sim = Sim::new(&cfg)
        .with("c2", Behaviour::fail_spawn(|n| n == 2))
        .start();
    let m = sim.mark();
    sim.kill("c1", KILL);
    sim.run_ms(1_000);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "TERM c2", "START c1", "FAIL c2", "TERM c1", "START c1", "START c2"
        ])
    );
    assert_eq!(sim.restarts_counted("root"), 2);
    assert_eq!(sim.exit, None);
}

/// Case 32: `rest_for_one`: base case and give-up.
#[test]
fn e32_rest_for_one() {
    let cfg = root("rest_for_one", 2, "3600s", &["c1", "c2", "c3"]) + &ps(&["c1", "c2", "c3"]);
    let mut sim = Sim::new(&cfg).start();
    let c1 = sim.pid("c1");
    let m = sim.mark();
    sim.kill("c2", KILL);
    assert_eq!(
        sim.trace_from(m),
        lines(&["TERM c3", "START c2", "START c3"])
    );
    assert_eq!(sim.pid("c1"), c1);
    sim.kill("c3", KILL);
    sim.kill("c2", KILL);
    assert_eq!(sim.run_to_exit(), 75);
}

/// Case 33: `order_of_children`: rest_for_one termination and restart order; stop order.
#[test]
fn e33_rest_for_one_order() {
    let names = ["ch7", "ch3", "ch10", "ch2", "ch5"];
    let cfg = root("rest_for_one", 2, "3600s", &names) + &ps(&names);
    let mut sim = Sim::new(&cfg).start();
    let (ch7, ch3) = (sim.pid("ch7"), sim.pid("ch3"));
    let m = sim.mark();
    sim.kill("ch10", KILL);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "TERM ch5",
            "TERM ch2",
            "START ch10",
            "START ch2",
            "START ch5"
        ])
    );
    assert_eq!((sim.pid("ch7"), sim.pid("ch3")), (ch7, ch3));
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "TERM ch5",
            "TERM ch2",
            "TERM ch10",
            "TERM ch3",
            "TERM ch7",
            "EXIT 0"
        ])
    );
}

/// Case 34: `rest_for_one_escalation`: retries split at the failing child.
#[test]
fn e34_rest_for_one_escalation() {
    let cfg = root("rest_for_one", 4, "3600s", &["a", "b"]) + &ps(&["a", "b"]);
    let mut sim = Sim::new(&cfg)
        .with("b", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "TERM b", "START a", "FAIL b", "FAIL b", "FAIL b", "FAIL b", "TERM a", "EXIT 75"
        ])
    );
}

/// Case 35: `rest_for_one_other_child_fails_restart`: the retry starts only the failed child.
#[test]
fn e35_rest_for_one_other_child_fails_restart() {
    let cfg = root("rest_for_one", 3, "3600s", &["c1", "c2"]) + &ps(&["c1", "c2"]);
    let mut sim = Sim::new(&cfg)
        .with("c2", Behaviour::fail_spawn(|n| n == 2))
        .start();
    let m = sim.mark();
    sim.kill("c1", KILL);
    sim.run_ms(1_000);
    assert_eq!(
        sim.trace_from(m),
        lines(&["TERM c2", "START c1", "FAIL c2", "START c2"])
    );
}

/// Case 36: `temporary_bystander`: temporary siblings taken down by a group restart are gone.
#[test]
fn e36_temporary_bystander() {
    for strategy in ["one_for_all", "rest_for_one"] {
        let cfg = root(strategy, 2, "300s", &["c1", "c2"])
            + &p("c1", "shutdown = \"100ms\"")
            + &p("c2", "restart = \"temporary\"\nshutdown = \"100ms\"");
        let mut sim = Sim::new(&cfg).start();
        let m = sim.mark();
        sim.exit_with("c1", 0);
        sim.run_ms(350);
        assert_eq!(
            sim.trace_from(m),
            lines(&["TERM c2", "START c1"]),
            "{strategy}"
        );
        assert_eq!(sim.state("c2"), "removed");
        assert_eq!(sim.exit, None);
    }
}

/// Case 37: Group restarts also start stopped non-temporary children (OTP `tree`, supchild3).
#[test]
fn e37_group_restart_starts_stopped_children() {
    let cfg = root("one_for_all", 5, "3600s", &["a", "t"])
        + &p("a", "")
        + &p("t", "restart = \"transient\"");
    let mut sim = Sim::new(&cfg).start();
    sim.exit_with("t", 0);
    assert_eq!(sim.state("t"), "stopped");
    let m = sim.mark();
    sim.kill("a", KILL);
    assert_eq!(sim.trace_from(m), lines(&["START a", "START t"]));
}

/// Case 38: A transient normal exit under `one_for_all` disturbs no one; an abnormal one does.
#[test]
fn e38_transient_under_one_for_all() {
    let cfg = root("one_for_all", 5, "3600s", &["a", "t"])
        + &p("a", "")
        + &p("t", "restart = \"transient\"");
    let mut sim = Sim::new(&cfg).start();
    let a = sim.pid("a");
    sim.exit_with("t", 0);
    assert_eq!(sim.pid("a"), a);
    assert_eq!(sim.restarts_counted("root"), 0);

    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.exit_with("t", 1);
    assert_eq!(sim.trace_from(m), lines(&["TERM a", "START a", "START t"]));
}

// ---------- F. Shutdown ----------

/// Case 41: `sup_stop_infinity`: `infinity` waits for as long as it takes, never SIGKILL.
#[test]
fn f41_infinity_waits() {
    let cfg = root("one_for_one", 3, "5s", &["c1", "c2"])
        + "[supervisor.c1]\nchildren = [\"w\"]\n"
        + &p("w", "")
        + "[process.c2]\ncommand = [\"x\"]\nshutdown = \"infinity\"\n";
    let mut sim = Sim::new(&cfg)
        .with("c2", Behaviour::stop_after(8_000))
        .start();
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.trace_from(m), lines(&["TERM c2", "TERM w", "EXIT 0"]));
    assert_eq!(sim.times_of("TERM w"), vec![8_000]);
}

/// Case 42: `sup_stop_timeout`: the grace ends in SIGKILL; only then the next child.
#[test]
fn f42_timeout_escalates_to_kill() {
    let cfg = root("one_for_one", 3, "5s", &["c1", "c2"]) + &ps(&["c1", "c2"]);
    let mut sim = Sim::new(&cfg).with("c2", Behaviour::ignore_stop()).start();
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace_from(m),
        lines(&["TERM c2", "KILL c2", "TERM c1", "EXIT 0"])
    );
    assert_eq!(sim.times_of("KILL c2"), vec![1_000]);
    assert_eq!(sim.times_of("TERM c1"), vec![1_000]);
}

/// Case 43: `sup_stop_brutal_kill`: only SIGKILL, never the stop signal.
#[test]
fn f43_brutal_kill() {
    let cfg = root("one_for_one", 3, "5s", &["c1", "c2"])
        + &p("c1", "")
        + &p("c2", "shutdown = \"brutal_kill\"");
    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.trace_from(m), lines(&["KILL c2", "TERM c1", "EXIT 0"]));
}

/// Case 44: Termination is sequential: the sum of the children's stop times.
#[test]
fn f44_termination_is_sequential() {
    let cfg = root("one_for_one", 3, "5s", &["a", "b", "c"])
        + &p("a", "shutdown = \"5s\"")
        + &p("b", "shutdown = \"5s\"")
        + &p("c", "shutdown = \"5s\"");
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::stop_after(1_000))
        .with("b", Behaviour::stop_after(1_000))
        .with("c", Behaviour::stop_after(1_000))
        .start();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.times_of("TERM c"), vec![0]);
    assert_eq!(sim.times_of("TERM b"), vec![1_000]);
    assert_eq!(sim.times_of("TERM a"), vec![2_000]);
    assert_eq!(sim.times_of("EXIT 0"), vec![3_000]);
}

/// Case 45: Nested shutdown is depth-first, right to left.
#[test]
fn f45_nested_shutdown_order() {
    let cfg = root("one_for_one", 3, "5s", &["s1", "w"])
        + "[supervisor.s1]\nchildren = [\"x\", \"y\"]\n"
        + &ps(&["x", "y", "w"]);
    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace_from(m),
        lines(&["TERM w", "TERM y", "TERM x", "EXIT 0"])
    );
}

/// Case 47: `sup_stop_race`: children exiting by themselves during shutdown disturb nothing,
/// and nothing starts after the stop.
#[test]
fn f47_children_exit_during_shutdown() {
    let mut names = vec!["a".to_string()];
    let mut cfg = String::new();
    cfg += &p("a", "restart = \"temporary\"");
    let mut i = 0;
    for restart in ["temporary", "transient", "permanent"] {
        for how in ["0", "term", "143", "1"] {
            i += 1;
            let n = format!("k{i}");
            let codes = if how == "143" {
                "success_exit_codes = [0, 143]"
            } else {
                ""
            };
            cfg += &p(
                &n,
                &format!("restart = \"{restart}\"\nshutdown = \"5s\"\n{codes}"),
            );
            names.push(n);
        }
    }
    names.push("z".into());
    cfg += &p("z", "restart = \"temporary\"\nshutdown = \"2s\"");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cfg = root("one_for_one", 3, "5s", &refs) + &cfg;
    let mut sim = Sim::new(&cfg)
        .with("z", Behaviour::stop_after(1_000))
        .start();
    let starts = sim
        .trace()
        .iter()
        .filter(|l| l.starts_with("START"))
        .count();
    sim.stop();
    sim.run_ms(200);
    // The twelve exit by themselves, each its own way, while z is still stopping.
    let mut i = 0;
    for _ in 0..3 {
        for how in ["0", "term", "143", "1"] {
            i += 1;
            let n = format!("k{i}");
            match how {
                "term" => sim.kill(&n, TERM),
                c => sim.exit_with(&n, c.parse().unwrap()),
            }
        }
    }
    assert_eq!(sim.run_to_exit(), 0);
    let after = sim
        .trace()
        .iter()
        .filter(|l| l.starts_with("START"))
        .count();
    assert_eq!(after, starts, "no START after the stop");
    assert_eq!(sim.trace().last().map(String::as_str), Some("EXIT 0"));
    assert!(sim.times_of("TERM a")[0] >= 1_000);
}

/// `shutdown_timeout`: the overall deadline kills whatever is left.
#[test]
fn f_shutdown_timeout_kills_what_is_left() {
    let cfg = "shutdown_timeout = \"3s\"\n".to_string()
        + &root("one_for_one", 3, "5s", &["a", "b"])
        + &p("a", "")
        + "[process.b]\ncommand = [\"x\"]\nshutdown = \"infinity\"\n";
    let mut sim = Sim::new(&cfg).with("b", Behaviour::ignore_stop()).start();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace()[2..],
        lines(&["TERM b", "KILL b", "KILL a", "EXIT 0"])
    );
    assert_eq!(sim.times_of("KILL b"), vec![3_000]);
}

/// The stop deadline is reported to the runtime, which bounds its final sweep by it.
#[test]
fn f_stop_deadline_is_reported() {
    let cfg = "shutdown_timeout = \"3s\"\n".to_string()
        + &root("one_for_one", 3, "5s", &["a"])
        + &p("a", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(sim.engine.stop_deadline(), None, "not stopping yet");
    let t = sim.now;
    sim.stop();
    assert_eq!(
        sim.engine.stop_deadline(),
        Some(t + std::time::Duration::from_secs(3))
    );
    assert_eq!(sim.run_to_exit(), 0);
    assert!(
        sim.engine.stop_deadline().is_some(),
        "still known after the exit"
    );
}

/// A second stop signal kills everything left at once.
#[test]
fn f_second_stop_kills_at_once() {
    let cfg = root("one_for_one", 3, "5s", &["s", "b"])
        + "[supervisor.s]\nchildren = [\"x\"]\n"
        + &p("x", "")
        + "[process.b]\ncommand = [\"x\"]\nshutdown = \"infinity\"\n";
    let mut sim = Sim::new(&cfg).with("b", Behaviour::ignore_stop()).start();
    sim.stop();
    sim.run_ms(10_000);
    assert_eq!(sim.exit, None);
    sim.kill_all();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace()[2..],
        lines(&["TERM b", "KILL b", "KILL x", "EXIT 0"])
    );
    assert_eq!(sim.alive_count(), 0);
}

/// Case 49: Exits of unknown pids (adopted orphans) are ignored, even with intensity 0.
#[test]
fn f49_orphan_exits_are_ignored() {
    let cfg = root("one_for_one", 0, "5s", &["c"]) + &ps(&["c"]);
    let mut sim = Sim::new(&cfg).start();
    let c = sim.pid("c");
    sim.orphan_exit(99_999, code(7));
    sim.run_ms(1_000);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.pid("c"), c);
}

/// A stop request during the initial start of a nested supervisor stops what started.
#[test]
fn f_stop_during_initial_start() {
    let cfg = root("one_for_one", 3, "5s", &["a", "s"])
        + "[supervisor.s]\nchildren = [\"x\", \"y\"]\n"
        + &ps(&["a", "x", "y"]);
    let mut sim = Sim::new(&cfg).with("x", Behaviour::stop_after(0)).start();
    sim.stop();
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(
        sim.trace(),
        lines(&[
            "START a", "START x", "START y", "TERM y", "TERM x", "TERM a", "EXIT 0"
        ])
    );
}

// ---------- G. Significant children and auto_shutdown ----------

fn sig_cfg(strategy: &str, mode: &str, restart: &str) -> String {
    root(strategy, 5, "5s", &["c1", "c2", "c3"])
        .replace("children", &format!("auto_shutdown = \"{mode}\"\nchildren"))
        + &p(
            "c1",
            &format!("restart = \"{restart}\"\nsignificant = true"),
        )
        + &p(
            "c2",
            &format!("restart = \"{restart}\"\nsignificant = true"),
        )
        + &p("c3", &format!("restart = \"{restart}\""))
}

/// Case 50: `significant_temporary`: any_significant; vigil exits with the trigger's status.
#[test]
fn g50_any_significant_temporary() {
    for (status, exit) in [
        (ExitStatus::Signaled(KILL), 137),
        (code(1), 1),
        (code(0), 0),
    ] {
        let mut sim = Sim::new(&sig_cfg("one_for_one", "any_significant", "temporary")).start();
        let m = sim.mark();
        match status {
            ExitStatus::Code(c) => sim.exit_with("c1", c),
            ExitStatus::Signaled(s) => sim.kill("c1", s),
        }
        assert_eq!(sim.run_to_exit(), exit);
        assert_eq!(
            sim.trace_from(m),
            lines(&["TERM c3", "TERM c2", &format!("EXIT {exit}")])
        );
    }
}

/// Case 51: `significant_temporary`/`significant_transient`: all_significant waits for all.
#[test]
fn g51_all_significant() {
    for restart in ["temporary", "transient"] {
        let mut sim = Sim::new(&sig_cfg("one_for_one", "all_significant", restart)).start();
        sim.exit_with("c1", 0);
        sim.run_ms(1_000);
        assert_eq!(sim.exit, None, "{restart}");
        let m = sim.mark();
        sim.exit_with("c2", 0);
        assert_eq!(sim.run_to_exit(), 0);
        assert_eq!(sim.trace_from(m), lines(&["TERM c3", "EXIT 0"]));
    }
}

/// Case 52: `significant_transient`: abnormal exits restart; the normal one shuts down.
#[test]
fn g52_any_significant_transient() {
    let mut sim = Sim::new(&sig_cfg("one_for_one", "any_significant", "transient")).start();
    sim.kill("c1", KILL);
    sim.exit_with("c1", 1);
    assert_eq!(sim.count("START c1"), 3);
    assert_eq!(sim.exit, None);
    let m = sim.mark();
    sim.exit_with("c1", 0);
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(sim.trace_from(m), lines(&["TERM c3", "TERM c2", "EXIT 0"]));
}

/// Case 53: `nonsignificant_temporary`, `nonsignificant_transient`.
#[test]
fn g53_nonsignificant_never_trigger() {
    for mode in ["never", "any_significant", "all_significant"] {
        for restart in ["temporary", "transient"] {
            for status in [
                code(0),
                ExitStatus::Signaled(TERM),
                code(1),
                ExitStatus::Signaled(KILL),
            ] {
                let cfg = root("one_for_one", 5, "5s", &["n", "o"])
                    .replace("children", &format!("auto_shutdown = \"{mode}\"\nchildren"))
                    + &p("n", &format!("restart = \"{restart}\""))
                    + &p("o", "");
                let mut sim = Sim::new(&cfg).start();
                match status {
                    ExitStatus::Code(c) => sim.exit_with("n", c),
                    ExitStatus::Signaled(s) => sim.kill("n", s),
                }
                sim.run_ms(1_000);
                assert_eq!(sim.exit, None, "{mode} {restart} {status}");
                let abnormal = matches!(status, ExitStatus::Code(1) | ExitStatus::Signaled(KILL));
                let restarted = restart == "transient" && abnormal;
                assert_eq!(
                    sim.count("START n"),
                    1 + restarted as usize,
                    "{mode} {restart} {status}"
                );
            }
        }
    }
}

/// Case 54: `significant_bystander`: group-restart terminations never trigger auto-shutdown.
#[test]
fn g54_significant_bystander() {
    for strategy in ["one_for_one", "one_for_all", "rest_for_one"] {
        for mode in ["any_significant", "all_significant"] {
            let cfg = root(strategy, 5, "5s", &["c1", "c2", "c3"])
                .replace("children", &format!("auto_shutdown = \"{mode}\"\nchildren"))
                + &p("c1", "restart = \"transient\"\nsignificant = true")
                + &p("c2", "restart = \"transient\"")
                + &p("c3", "restart = \"transient\"\nsignificant = true");
            let mut sim = Sim::new(&cfg).start();
            let c1 = sim.pid("c1");
            let m = sim.mark();
            sim.kill("c2", KILL);
            sim.run_ms(1_000);
            let expect: &[&str] = match strategy {
                "one_for_one" => &["START c2"],
                "one_for_all" => &["TERM c3", "TERM c1", "START c1", "START c2", "START c3"],
                _ => &["TERM c3", "START c2", "START c3"],
            };
            assert_eq!(sim.trace_from(m), lines(expect), "{strategy} {mode}");
            if strategy == "rest_for_one" {
                assert_eq!(sim.pid("c1"), c1);
            }
            assert_eq!(sim.exit, None, "{strategy} {mode}");
        }
    }
}

/// Case 55: `significant_escalation`: auto-shutdown escalates through significant supervisors.
#[test]
fn g55_significant_escalation() {
    let cfg = root("one_for_one", 1, "5s", &["b"])
        .replace("children", "auto_shutdown = \"any_significant\"\nchildren")
        + "[supervisor.b]\nintensity = 1\nrestart = \"transient\"\nsignificant = true\nauto_shutdown = \"any_significant\"\nchildren = [\"c\"]\n"
        + &p("c", "restart = \"transient\"\nsignificant = true");
    let mut sim = Sim::new(&cfg).start();
    sim.exit_with("c", 0);
    assert_eq!(sim.run_to_exit(), 0);

    // Variant: b not significant: it stops, is not restarted, and the root stays up.
    let cfg = cfg.replacen("significant = true\nauto_shutdown", "auto_shutdown", 1);
    let mut sim = Sim::new(&cfg).start();
    sim.exit_with("c", 0);
    sim.run_ms(1_000);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.state("b"), "stopped");
    assert_eq!(sim.count("START c"), 1);
}

/// The exit code of a root auto-shutdown is the status of the process at the origin.
#[test]
fn g_exit_code_follows_the_trigger_through_supervisors() {
    let cfg = |restart: &str| {
        root("one_for_one", 1, "5s", &["b", "o"])
            .replace("children", "auto_shutdown = \"any_significant\"\nchildren")
            + "[supervisor.b]\nrestart = \"transient\"\nsignificant = true\nauto_shutdown = \"any_significant\"\nchildren = [\"c\"]\n"
            + &p("c", &format!("restart = \"{restart}\"\nsignificant = true"))
            + &p("o", "")
    };
    let mut sim = Sim::new(&cfg("transient")).start();
    sim.exit_with("c", 0);
    assert_eq!(sim.run_to_exit(), 0);
    let mut sim = Sim::new(&cfg("temporary")).start();
    sim.kill("c", Signal(11));
    assert_eq!(sim.run_to_exit(), 128 + 11);
    let mut sim = Sim::new(&cfg("temporary")).start();
    sim.exit_with("c", 3);
    assert_eq!(sim.run_to_exit(), 3);
}

/// Found in review: under `all_significant`, a significant child taken down by a sibling's
/// group restart, and waiting out that sibling's backoff, still counts as active (OTP
/// restarts the group in one step, so it is never undefined when another exit arrives).
#[test]
fn g_all_significant_counts_children_awaiting_a_group_restart() {
    let cfg = root("rest_for_one", 5, "60s", &["c1", "c2", "c3"])
        .replace("children", "auto_shutdown = \"all_significant\"\nchildren")
        + &p("c1", "restart = \"transient\"\nsignificant = true")
        + "[process.c2]\ncommand = [\"x\"]\nbackoff = { initial = \"5s\", jitter = 0.0 }\n"
        + &p("c3", "restart = \"transient\"\nsignificant = true");
    let mut sim = Sim::new(&cfg).start();
    let m = sim.mark();
    sim.kill("c2", KILL); // group (c2, c3): c3 stopped now, the group starts at +5 s
    sim.run_ms(1_000);
    assert_eq!(sim.state("c3"), "stopped");
    sim.exit_with("c1", 0);
    sim.run_ms(10_000);
    assert_eq!(sim.exit, None, "trace:\n{}", sim.dump());
    assert_eq!(
        sim.trace_from(m),
        lines(&["TERM c3", "START c2", "START c3"])
    );
    // Once c3 ends too, every significant child is done.
    sim.exit_with("c3", 0);
    assert_eq!(sim.run_to_exit(), 0);
}

/// Found in review: a stop signal while a boot failure is being unwound keeps exit 69.
#[test]
fn b07_stop_during_the_unwind_of_a_boot_failure_keeps_69() {
    let cfg =
        root("one_for_one", 3, "5s", &["w", "b"]) + &p("w", "shutdown = \"10s\"") + &p("b", "");
    for second in [false, true] {
        let mut sim = Sim::new(&cfg)
            .with("w", Behaviour::stop_after(3_000))
            .with("b", Behaviour::fail_spawn(|_| true))
            .start();
        sim.run_ms(1_000);
        assert_eq!(sim.exit, None);
        sim.stop();
        if second {
            sim.kill_all();
        }
        assert_eq!(sim.run_to_exit(), 69, "trace:\n{}", sim.dump());
    }
}

// ---------- H. Nested supervisors and escalation ----------

/// Case 56: `tree`: a subtree's give-up escalates into a `one_for_all` parent.
#[test]
fn h56_tree() {
    let cfg = root("one_for_all", 4, "3600s", &["s1", "s2", "s3"])
        + "[supervisor.s1]\nintensity = 4\nperiod = \"3600s\"\nchildren = [\"w1\", \"w2\"]\n"
        + "[supervisor.s2]\nintensity = 4\nperiod = \"3600s\"\nchildren = [\"w3\", \"w4\"]\n"
        + "[supervisor.s3]\nrestart = \"transient\"\nchildren = []\n"
        + &ps(&["w1", "w2", "w3", "w4"]);
    let mut sim = Sim::new(&cfg)
        .with(
            "w3",
            Behaviour::exits(|n| (2..=4).contains(&n).then_some((Duration::ZERO, code(1)))),
        )
        .start();
    let pids: Vec<_> = ["w1", "w2", "w3"].iter().map(|n| sim.pid(n)).collect();
    let m = sim.mark();
    sim.kill("w4", KILL);
    assert_eq!(sim.trace_from(m), lines(&["START w4"]));
    assert_eq!(["w1", "w2", "w3"].map(|n| sim.pid(n)).to_vec(), pids);
    let m = sim.mark();
    sim.kill("w3", KILL);
    sim.run_ms(1_000);
    assert_eq!(
        sim.trace_from(m),
        lines(&[
            "START w3", "START w3", "START w3", // invocations 2-4 crash at once
            "TERM w4",  // s2 gives up
            "TERM w2", "TERM w1", // root one_for_all: s3 (empty), then s1
            "START w1", "START w2", "START w3", "START w4",
        ])
    );
    assert_eq!(sim.gave_up("s2").as_deref(), Some("w3"));
    assert_eq!(sim.restarts_counted("root"), 1);
    assert_eq!(sim.state("s3"), "running");
    assert_eq!(sim.exit, None);
}

/// Case 57: Budgets multiply; escalation reaches the root and sets the exit code.
#[test]
fn h57_budgets_multiply() {
    let cfg = root("one_for_one", 1, "3600s", &["b"])
        + "[supervisor.b]\nintensity = 2\nperiod = \"3600s\"\nchildren = [\"w\"]\n"
        + &ps(&["w"]);
    let mut sim = Sim::new(&cfg)
        .with("w", Behaviour::exits(|_| Some((Duration::ZERO, code(1)))))
        .start();
    assert_eq!(sim.run_to_exit(), 75);
    assert_eq!(sim.count("START w"), 6, "(2+1)*(1+1)");
    assert_eq!(sim.restarts_counted("root"), 1);
    assert_eq!(sim.gave_up("root").as_deref(), Some("b"));
}

/// Case 58: A transient child supervisor that gives up is not restarted; a temporary one is removed.
#[test]
fn h58_transient_supervisor_gives_up_quietly() {
    for restart in ["transient", "temporary"] {
        let cfg = root("one_for_one", 5, "3600s", &["b", "x"])
            + &format!(
                "[supervisor.b]\nintensity = 1\nperiod = \"3600s\"\nrestart = \"{restart}\"\nchildren = [\"w\"]\n"
            )
            + &ps(&["w", "x"]);
        let mut sim = Sim::new(&cfg)
            .with("w", Behaviour::exits(|_| Some((Duration::ZERO, code(1)))))
            .start();
        let x = sim.pid("x");
        sim.run_ms(5_000);
        assert_eq!(sim.count("START w"), 2, "{restart}");
        assert_eq!(sim.restarts_counted("root"), 0);
        assert_eq!(sim.pid("x"), x);
        assert_eq!(sim.exit, None);
        let expect = if restart == "transient" {
            "stopped"
        } else {
            "removed"
        };
        assert_eq!(sim.state("b"), expect);
    }
}

// ---------- Backoff (vigil's addition) ----------

/// A restart counts when it is decided (at the exit), not when the delayed start happens.
#[test]
fn backoff_counts_at_the_exit() {
    let cfg = root("one_for_one", 2, "10s", &["a"])
        + "[process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"4s\", max = \"60s\", jitter = 0.0 }\n";
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::exits(|_| Some((Duration::ZERO, code(1)))))
        .start();
    // Exits at 0 (delay 4), 4 (delay 8), 12: window at 12 holds 4 and 12 only.
    sim.run_ms(12_500);
    assert_eq!(sim.times_of("START a"), vec![0, 4_000, 12_000]);
    assert_eq!(sim.exit, None);
    // The exit at 12 scheduled a 16 s delay; the next exit (at 28) finds 12 and 28 in the
    // window, and 4 expired: still allowed.
    sim.run_ms(16_000);
    assert_eq!(sim.times_of("START a"), vec![0, 4_000, 12_000, 28_000]);
    assert_eq!(sim.exit, None);
}

/// The schedule starts over after the child ran `reset_after`.
#[test]
fn backoff_resets_after_uptime() {
    let cfg = root("one_for_one", 100, "1s", &["a"])
        + "[process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"1s\", max = \"60s\", jitter = 0.0, reset_after = \"30s\" }\n";
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", KILL); // restart after 1 s
    sim.run_ms(1_000);
    sim.kill("a", KILL); // after 2 s
    sim.run_ms(2_000);
    sim.kill("a", KILL); // after 4 s
    sim.run_ms(4_000);
    sim.run_ms(30_000);
    sim.kill("a", KILL); // it ran 30 s: after 1 s again
    let t = sim.elapsed_ms();
    sim.run_ms(1_000);
    assert_eq!(*sim.times_of("START a").last().unwrap(), t + 1_000);
}

/// Jitter comes from the seeded generator: the same seed gives the same delays.
#[test]
fn backoff_jitter_is_deterministic_and_bounded() {
    let cfg = root("one_for_one", 100, "1s", &["a"])
        + "[process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"1s\", max = \"60s\", jitter = 0.5 }\n";
    let run = || {
        let mut sim = Sim::new(&cfg)
            .with(
                "a",
                Behaviour::exits(|n| (n <= 5).then_some((Duration::ZERO, code(1)))),
            )
            .start();
        sim.run_ms(200_000);
        sim.times_of("START a")
    };
    let a = run();
    assert_eq!(a, run());
    assert_eq!(a.len(), 6);
    for (i, w) in a.windows(2).enumerate() {
        let base = 1_000u128 << i;
        let gap = w[1] - w[0];
        assert!(
            gap >= base / 2 && gap <= base * 3 / 2,
            "gap {gap} for base {base}"
        );
    }
}

/// The engine stays silent when nothing happens: no deadline without a timer.
#[test]
fn idle_engine_has_no_deadline() {
    let cfg = root("one_for_one", 3, "5s", &["a"]) + &ps(&["a"]);
    let sim = Sim::new(&cfg).start();
    assert_eq!(sim.engine.next_deadline(), None);
}
