//! Manual control in simulated time: OTP's case I (otp-supervisor.md, test 59 and the API
//! parts of tests 14 and 24), plus vigil's own cases: commands during a backoff, on a
//! supervisor, queued behind a program, and during shutdown.

use super::harness::{Behaviour, Sim, lines};
use vigil::core::{Command, ControlError, Done, Event, Input, State, Unready};
use vigil::spec::{NodeId, Signal};

type Outcome = Result<Done, ControlError>;

fn p(name: &str, extra: &str) -> String {
    format!("[process.{name}]\ncommand = [\"x\"]\nbackoff = \"none\"\nshutdown = \"1s\"\n{extra}\n")
}

fn id(sim: &Sim, name: &str) -> NodeId {
    sim.engine.tree().find(name).expect("node exists")
}

/// The answers to command `id` so far (a command is answered exactly once).
fn answers(sim: &Sim, want: u64) -> Vec<Outcome> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ControlDone { id, result, .. } if *id == want => Some(*result),
            _ => None,
        })
        .collect()
}

/// Sends a command; returns its answer if it came before the simulation settled.
fn send(sim: &mut Sim, cmd_id: u64, command: Command) -> Option<Outcome> {
    sim.engine.handle(
        Input::Control {
            id: cmd_id,
            command,
        },
        sim.now,
    );
    sim.settle();
    answer(sim, cmd_id)
}

fn answer(sim: &Sim, cmd_id: u64) -> Option<Outcome> {
    let a = answers(sim, cmd_id);
    assert!(a.len() <= 1, "command {cmd_id} answered twice: {a:?}");
    a.first().copied()
}

fn stop(sim: &mut Sim, n: u64, name: &str) -> Option<Outcome> {
    let c = id(sim, name);
    send(sim, n, Command::Stop(c))
}

fn start(sim: &mut Sim, n: u64, name: &str) -> Option<Outcome> {
    let c = id(sim, name);
    send(sim, n, Command::Start(c))
}

fn restart(sim: &mut Sim, n: u64, name: &str) -> Option<Outcome> {
    let c = id(sim, name);
    send(sim, n, Command::Restart(c))
}

/// Case 59 (`child_adm`): terminate_child / restart_child semantics, error cases, and no
/// intensity cost.
#[test]
fn i59_manual_operations_semantics() {
    let cfg = "intensity = 1\nperiod = \"3600s\"\nchildren = [\"a\"]\n".to_string() + &p("a", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(stop(&mut sim, 1, "a"), Some(Ok(Done::Stopped)));
    assert_eq!(sim.trace(), lines(&["START a", "TERM a"]));
    assert_eq!(sim.state("a"), "stopped");
    sim.run_ms(10_000);
    assert_eq!(sim.count("START a"), 1, "a stopped child stays stopped");
    // Idempotent.
    assert_eq!(stop(&mut sim, 2, "a"), Some(Ok(Done::Stopped)));
    assert_eq!(start(&mut sim, 3, "a"), Some(Ok(Done::Started)));
    assert_eq!(sim.state("a"), "running");
    assert_eq!(start(&mut sim, 4, "a"), Some(Err(ControlError::Running)));
    // Unknown node id.
    assert_eq!(
        send(&mut sim, 5, Command::Stop(NodeId(99))),
        Some(Err(ControlError::NotFound))
    );
    // Ten stop/start rounds use no budget: one crash is still tolerated, the second is not.
    for i in 0..10 {
        assert_eq!(stop(&mut sim, 10 + i * 2, "a"), Some(Ok(Done::Stopped)));
        assert_eq!(start(&mut sim, 11 + i * 2, "a"), Some(Ok(Done::Started)));
    }
    assert_eq!(sim.restarts_counted("root"), 0);
    sim.kill("a", Signal::KILL);
    assert_eq!(sim.state("a"), "running");
    sim.kill("a", Signal::KILL);
    assert_eq!(sim.run_to_exit(), 75);
}

/// Case 59: a start whose spawn fails returns the error; the child stays stopped, nothing
/// is retried or counted.
#[test]
fn i59_start_failure_returned_not_retried() {
    let cfg = "intensity = 1\nchildren = [\"a\", \"b\"]\n".to_string() + &p("a", "") + &p("b", "");
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::fail_spawn(|n| n >= 2))
        .start();
    assert_eq!(stop(&mut sim, 1, "a"), Some(Ok(Done::Stopped)));
    assert_eq!(
        start(&mut sim, 2, "a"),
        Some(Err(ControlError::StartFailed))
    );
    assert_eq!(sim.state("a"), "stopped");
    sim.run_ms(10_000);
    assert_eq!(sim.count("FAIL a"), 1, "no retry: {:?}", sim.trace());
    assert_eq!(sim.restarts_counted("root"), 0);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.state("b"), "running");
    // A restart of a stopped child is a start: it fails the same way.
    assert_eq!(
        restart(&mut sim, 3, "a"),
        Some(Err(ControlError::StartFailed))
    );
    assert_eq!(sim.exit, None);
}

/// Case 14 (API part): a transient child that ended normally is started with
/// restart_child, and a later SIGTERM from outside still does not restart it.
#[test]
fn c14_transient_restart_child_then_shutdown_exit() {
    let cfg = "children = [\"t\"]\n".to_string() + &p("t", "restart = \"transient\"");
    let mut sim = Sim::new(&cfg).start();
    sim.kill("t", Signal::TERM);
    assert_eq!(sim.state("t"), "stopped");
    assert_eq!(start(&mut sim, 1, "t"), Some(Ok(Done::Started)));
    sim.kill("t", Signal::TERM);
    sim.run_ms(5_000);
    assert_eq!(sim.count("START t"), 2);
    assert_eq!(sim.state("t"), "stopped");
}

/// Case 24 (API part): during a restart loop, restart_child is refused with `restarting`,
/// terminate_child succeeds and no further attempt follows.
#[test]
fn i24_commands_during_backoff() {
    let cfg = "intensity = 100\nchildren = [\"a\"]\n[process.a]\ncommand = [\"x\"]\n\
               backoff = { initial = \"1s\", max = \"1s\", jitter = 0.0 }\n";
    let mut sim = Sim::new(cfg).start();
    sim.kill("a", Signal::KILL);
    assert_eq!(sim.state("a"), "restarting");
    assert_eq!(start(&mut sim, 1, "a"), Some(Err(ControlError::Restarting)));
    assert_eq!(stop(&mut sim, 2, "a"), Some(Ok(Done::Stopped)));
    assert_eq!(sim.state("a"), "stopped");
    sim.run_ms(10_000);
    assert_eq!(
        sim.count("START a"),
        1,
        "the cancelled restart never happens"
    );
    assert_eq!(sim.engine.next_deadline(), None, "no timer left armed");
}

/// `restart` during a backoff skips the wait.
#[test]
fn restart_during_backoff_starts_now() {
    let cfg = "intensity = 100\nchildren = [\"a\"]\n[process.a]\ncommand = [\"x\"]\n\
               backoff = { initial = \"5s\", max = \"5s\", jitter = 0.0 }\n";
    let mut sim = Sim::new(cfg).start();
    sim.kill("a", Signal::KILL);
    let t = sim.elapsed_ms();
    assert_eq!(restart(&mut sim, 1, "a"), Some(Ok(Done::Started)));
    assert_eq!(sim.times_of("START a"), vec![0, t]);
    sim.run_ms(10_000);
    assert_eq!(
        sim.count("START a"),
        2,
        "the backoff's start does not come on top"
    );
}

/// Stopping a `one_for_all` child during its backoff: the siblings stopped for its
/// restart come back at once, without it.
#[test]
fn stop_during_group_backoff_starts_the_rest() {
    let cfg = "strategy = \"one_for_all\"\nintensity = 100\nchildren = [\"a\", \"b\", \"c\"]\n\
               [process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"5s\", max = \"5s\", jitter = 0.0 }\n"
        .to_string()
        + &p("b", "")
        + &p("c", "");
    let mut sim = Sim::new(&cfg).start();
    sim.kill("a", Signal::KILL);
    assert_eq!(sim.state("b"), "stopped");
    let mark = sim.mark();
    assert_eq!(stop(&mut sim, 1, "a"), Some(Ok(Done::Stopped)));
    assert_eq!(sim.trace_from(mark), lines(&["START b", "START c"]));
    sim.run_ms(20_000);
    assert_eq!(sim.count("START a"), 1);
    assert_eq!(sim.state("a"), "stopped");
}

/// Stop, start and restart of a supervisor act on its whole subtree, in OTP's order, with
/// a fresh window, and count nowhere.
#[test]
fn supervisor_subtree_commands() {
    let cfg = "intensity = 0\nchildren = [\"s\", \"z\"]\n\
               [supervisor.s]\nintensity = 0\nchildren = [\"x\", \"y\"]\n"
        .to_string()
        + &p("x", "")
        + &p("y", "")
        + &p("z", "");
    let mut sim = Sim::new(&cfg).start();
    let mark = sim.mark();
    assert_eq!(stop(&mut sim, 1, "s"), Some(Ok(Done::Stopped)));
    assert_eq!(sim.trace_from(mark), lines(&["TERM y", "TERM x"]));
    assert_eq!(sim.state("s"), "stopped");
    assert_eq!(sim.state("x"), "stopped");
    // A child of a stopped supervisor: start refused, stop is a no-op.
    assert_eq!(
        start(&mut sim, 2, "x"),
        Some(Err(ControlError::SupervisorNotRunning(id(&sim, "s"))))
    );
    assert_eq!(stop(&mut sim, 3, "x"), Some(Ok(Done::Stopped)));
    let mark = sim.mark();
    assert_eq!(start(&mut sim, 4, "s"), Some(Ok(Done::Started)));
    assert_eq!(sim.trace_from(mark), lines(&["START x", "START y"]));
    let mark = sim.mark();
    assert_eq!(restart(&mut sim, 5, "s"), Some(Ok(Done::Started)));
    assert_eq!(
        sim.trace_from(mark),
        lines(&["TERM y", "TERM x", "START x", "START y"])
    );
    assert_eq!(
        sim.exit, None,
        "intensity 0 everywhere, yet nothing gave up"
    );
    assert_eq!(sim.state("z"), "running");
}

/// The root is not a target for stop/start/restart; signals may target it.
#[test]
fn root_commands() {
    let cfg = "children = [\"a\", \"b\"]\n".to_string() + &p("a", "") + &p("b", "");
    let mut sim = Sim::new(&cfg)
        .with("a", Behaviour::ignore_stop())
        .with("b", Behaviour::ignore_stop())
        .start();
    assert_eq!(
        send(&mut sim, 1, Command::Stop(NodeId::ROOT)),
        Some(Err(ControlError::Root))
    );
    assert_eq!(
        send(&mut sim, 2, Command::Restart(NodeId::ROOT)),
        Some(Err(ControlError::Root))
    );
    let mark = sim.mark();
    assert_eq!(
        send(&mut sim, 3, Command::Signal(NodeId::ROOT, Signal::HUP)),
        Some(Ok(Done::Signalled(2)))
    );
    let mut sent = sim.trace_from(mark);
    sent.sort();
    assert_eq!(sent, lines(&["HUP a", "HUP b"]));
}

/// A signal goes to the running processes of the target; an exit it causes counts.
#[test]
fn signal_semantics() {
    let cfg = "intensity = 5\nchildren = [\"a\", \"b\"]\n".to_string() + &p("a", "") + &p("b", "");
    let mut sim = Sim::new(&cfg).start();
    let a = id(&sim, "a");
    assert_eq!(
        send(&mut sim, 1, Command::Signal(a, Signal::KILL)),
        Some(Ok(Done::Signalled(1)))
    );
    assert_eq!(sim.count("START a"), 2);
    assert_eq!(sim.restarts_counted("root"), 1);
    assert_eq!(stop(&mut sim, 2, "b"), Some(Ok(Done::Stopped)));
    let b = id(&sim, "b");
    assert_eq!(
        send(&mut sim, 3, Command::Signal(b, Signal::HUP)),
        Some(Err(ControlError::NotRunning))
    );
}

/// A temporary child stopped by command is removed (OTP deletes its spec); starting it
/// is refused until its supervisor restarts.
#[test]
fn temporary_child_is_removed() {
    let cfg = "children = [\"t\"]\n".to_string() + &p("t", "restart = \"temporary\"");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(stop(&mut sim, 1, "t"), Some(Ok(Done::Stopped)));
    assert_eq!(sim.state("t"), "removed");
    assert_eq!(start(&mut sim, 2, "t"), Some(Err(ControlError::Removed)));
    assert_eq!(stop(&mut sim, 3, "t"), Some(Ok(Done::Stopped)));
}

/// OTP: terminate_child never triggers auto_shutdown (test 52, API part).
#[test]
fn stop_of_significant_child_does_not_auto_shutdown() {
    let cfg = "auto_shutdown = \"any_significant\"\nchildren = [\"t\", \"p\"]\n".to_string()
        + &p("t", "restart = \"transient\"\nsignificant = true")
        + &p("p", "");
    let mut sim = Sim::new(&cfg).start();
    assert_eq!(stop(&mut sim, 1, "t"), Some(Ok(Done::Stopped)));
    sim.run_ms(5_000);
    assert_eq!(sim.exit, None);
    assert_eq!(sim.state("p"), "running");
}

/// A command waits for its supervisor's current program (here a group restart whose
/// stop takes 500 ms), like an OTP call queued behind the supervisor's work.
#[test]
fn command_queues_behind_a_group_restart() {
    let cfg = "strategy = \"one_for_all\"\nintensity = 10\nchildren = [\"a\", \"b\"]\n".to_string()
        + &p("a", "")
        + &p("b", "");
    let mut sim = Sim::new(&cfg).with("a", Behaviour::stop_after(500)).start();
    sim.kill("b", Signal::KILL);
    assert_eq!(sim.state("a"), "stopping");
    assert_eq!(
        stop(&mut sim, 1, "a"),
        None,
        "queued behind the group restart"
    );
    sim.run_ms(1_000);
    assert_eq!(answer(&sim, 1), Some(Ok(Done::Stopped)));
    // The group restart ran first (a started again), then the stop.
    assert_eq!(
        sim.trace(),
        lines(&[
            "START a", "START b", "TERM a", "START a", "START b", "TERM a"
        ])
    );
    assert_eq!(sim.state("a"), "stopped");
    assert_eq!(sim.state("b"), "running");
}

/// Commands during shutdown are refused; one queued when the shutdown began is answered
/// (interrupted), never lost.
#[test]
fn commands_during_shutdown() {
    let cfg = "children = [\"s\"]\n[supervisor.s]\nstrategy = \"one_for_all\"\nintensity = 10\n\
               children = [\"a\", \"b\"]\n"
        .to_string()
        + &p("a", "")
        + &p("b", "");
    let mut sim = Sim::new(&cfg).with("a", Behaviour::stop_after(500)).start();
    sim.kill("b", Signal::KILL);
    assert_eq!(
        stop(&mut sim, 1, "b"),
        None,
        "queued behind s's group restart"
    );
    sim.stop();
    assert_eq!(
        answer(&sim, 1),
        Some(Err(ControlError::Interrupted(id(&sim, "s"))))
    );
    assert_eq!(stop(&mut sim, 2, "a"), Some(Err(ControlError::Stopping)));
    assert_eq!(start(&mut sim, 3, "b"), Some(Err(ControlError::Stopping)));
    assert_eq!(sim.run_to_exit(), 0);
    assert_eq!(start(&mut sim, 4, "b"), Some(Err(ControlError::Stopping)));
}

/// Readiness: every permanent child running (today "ready" means running); transient
/// children that ended do not hold it back; nothing is ready while stopping.
#[test]
fn readiness_predicate() {
    let cfg = "intensity = 10\nchildren = [\"a\", \"t\", \"s\"]\n\
               [supervisor.s]\nchildren = [\"x\"]\n\
               [process.a]\ncommand = [\"x\"]\nbackoff = { initial = \"1s\", max = \"1s\", jitter = 0.0 }\n"
        .to_string()
        + &p("t", "restart = \"transient\"")
        + &p("x", "");
    let mut sim = Sim::new(&cfg).start();
    let root = NodeId::ROOT;
    assert!(sim.engine.is_ready(root));
    sim.exit_with("t", 0);
    assert!(
        sim.engine.is_ready(root),
        "a finished transient child is fine"
    );
    sim.kill("a", Signal::KILL);
    assert_eq!(
        sim.engine.unready(root),
        vec![(id(&sim, "a"), Unready::State(State::Restarting))]
    );
    assert!(sim.engine.is_ready(id(&sim, "s")));
    sim.run_ms(2_000);
    assert!(sim.engine.is_ready(root));
    assert_eq!(stop(&mut sim, 1, "x"), Some(Ok(Done::Stopped)));
    assert_eq!(
        sim.engine.unready(root),
        vec![(id(&sim, "x"), Unready::State(State::Stopped))]
    );
    assert!(!sim.engine.is_ready(id(&sim, "s")));
    assert!(sim.engine.is_ready(id(&sim, "a")));
    sim.stop();
    assert!(!sim.engine.is_ready(id(&sim, "a")));
}
