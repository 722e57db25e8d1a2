//! The loop of `vigil run` without processes: [`Loop::handle`] driven by a fake [`Os`]
//! under simulated time. This is the layer where a batch of exits from one SIGCHLD once
//! ran two processes for one child; here every order of exits, failed spawns and stop
//! signals can be tried in microseconds.
//!
//! The fake OS checks, at every call, what the real one cannot: that a node never has two
//! live processes, and that no signal goes to a process after it was reaped (its process
//! group id could belong to someone else by then).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use vigil::core::{Pid, Time};
use vigil::os::procfs::Stat;
use vigil::os::{Os, SpawnRequest};
use vigil::runtime::handle::{Loop, LoopEvent};
use vigil::spec::{ExitStatus, ProcessSpec, Signal};

const SIGCHLD: Signal = Signal(17);

#[derive(Debug)]
struct Proc {
    name: String,
    exited: bool,
    reaped: bool,
}

/// The fake kernel: processes, zombies waiting to be reaped, and what went wrong.
#[derive(Default)]
struct World {
    next_pid: Pid,
    procs: HashMap<Pid, Proc>,
    zombies: VecDeque<(Pid, ExitStatus)>,
    /// Names whose spawns fail.
    failing: HashSet<String>,
    /// Names that ignore their stop signal (only SIGKILL ends them).
    stubborn: HashSet<String>,
    violations: Vec<String>,
    spawns: usize,
    /// Processes orphaned to vigil that it did not start: (pid, what /proc says).
    orphans: Vec<(Pid, Stat)>,
    /// Leftover signals sent, by pid.
    leftover_signals: Vec<(Pid, Signal)>,
}

impl World {
    fn live(&self, name: &str) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self
            .procs
            .iter()
            .filter(|(_, p)| p.name == name && !p.exited)
            .map(|(pid, _)| *pid)
            .collect();
        pids.sort();
        pids
    }

    /// The process dies (of a signal or by itself): a zombie until reaped.
    fn die(&mut self, pid: Pid, status: ExitStatus) {
        if let Some(p) = self.procs.get_mut(&pid)
            && !p.exited
        {
            p.exited = true;
            self.zombies.push_back((pid, status));
        }
    }
}

struct FakeOs(Rc<RefCell<World>>);

impl Os for FakeOs {
    fn spawn(&mut self, r: SpawnRequest<'_>) -> Result<Pid, String> {
        let mut w = self.0.borrow_mut();
        if w.failing.contains(r.name) {
            return Err(format!("{}: No such file or directory", r.name));
        }
        let others = w.live(r.name);
        if !others.is_empty() {
            let msg = format!("spawn of {} while {:?} still live", r.name, others);
            w.violations.push(msg);
        }
        w.next_pid += 1;
        w.spawns += 1;
        let pid = w.next_pid + 100;
        let proc = Proc {
            name: r.name.to_string(),
            exited: false,
            reaped: false,
        };
        w.procs.insert(pid, proc);
        Ok(pid)
    }

    fn spawn_check(&mut self, name: &str, _: &ProcessSpec) -> Result<Pid, String> {
        Err(format!("{name}: no checks in the fake OS"))
    }

    fn signal_group(&mut self, pid: Pid, signal: Signal) -> io::Result<()> {
        let mut w = self.0.borrow_mut();
        let Some(p) = w.procs.get(&pid) else {
            w.violations
                .push(format!("signal {signal} to unknown pid {pid}"));
            return Ok(());
        };
        if p.reaped {
            let msg = format!("signal {signal} to {} ({pid}) after it was reaped", p.name);
            w.violations.push(msg);
            return Ok(());
        }
        let stubborn = w.stubborn.contains(&p.name);
        if signal == Signal::KILL || (signal == Signal::TERM && !stubborn) {
            w.die(pid, ExitStatus::Signaled(signal));
        }
        Ok(())
    }

    fn peek_exit(&mut self) -> io::Result<Option<(Pid, ExitStatus)>> {
        Ok(self.0.borrow().zombies.front().copied())
    }

    fn reap(&mut self, pid: Pid) -> io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.zombies.retain(|(z, _)| *z != pid);
        if let Some(p) = w.procs.get_mut(&pid) {
            p.reaped = true;
        }
        Ok(())
    }

    fn signal_leftover(&mut self, pid: Pid, signal: Signal) -> io::Result<()> {
        self.0.borrow_mut().leftover_signals.push((pid, signal));
        Ok(())
    }

    fn children(&mut self) -> Vec<Pid> {
        let w = self.0.borrow();
        let mut out: Vec<Pid> = w
            .procs
            .iter()
            .filter(|(_, p)| !p.reaped)
            .map(|(&pid, _)| pid)
            .collect();
        out.extend(w.orphans.iter().map(|(pid, _)| *pid));
        out
    }

    fn stat(&mut self, pid: Pid) -> Option<Stat> {
        let w = self.0.borrow();
        if let Some((_, st)) = w.orphans.iter().find(|(p, _)| *p == pid) {
            return Some(*st);
        }
        let known = w.procs.get(&pid).is_some_and(|p| !p.reaped);
        known.then(|| fake_stat(pid))
    }

    fn finish_output(&mut self) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(std::future::ready(()))
    }
}

/// A process the fake OS started leads its own group and "started" at its pid's tick.
fn fake_stat(pid: Pid) -> Stat {
    Stat {
        state: 'S',
        ppid: 1,
        pgid: pid,
        start_time: pid as u64,
    }
}

/// A loop over the fake OS, with its own simulated clock.
struct Harness {
    lp: Loop,
    world: Rc<RefCell<World>>,
    now: Time,
}

impl Harness {
    fn new(toml: &str) -> Harness {
        let toml = format!("{toml}\n[control]\nenabled = false\n");
        let loaded = vigil::config::parse(&toml, std::path::Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let world = Rc::new(RefCell::new(World::default()));
        let (ops, queries) = vigil::runtime::ops::setup(&loaded.tree, None).expect("ops");
        assert!(queries.is_none(), "nothing listens in these tests");
        let os = Box::new(FakeOs(world.clone()));
        let mut lp = Loop::new(loaded.tree, os, ops, 7, false);
        lp.start(Time::ZERO);
        Harness {
            lp,
            world,
            now: Time::ZERO,
        }
    }

    fn pid(&self, name: &str) -> Pid {
        let live = self.world.borrow().live(name);
        assert_eq!(live.len(), 1, "{name}: {live:?}");
        live[0]
    }

    /// These processes die of SIGKILL from outside, all before vigil hears of any: one
    /// SIGCHLD for all of them.
    fn kill_batch(&mut self, names: &[&str]) {
        for name in names {
            let pids = self.world.borrow().live(name);
            for pid in pids {
                self.world
                    .borrow_mut()
                    .die(pid, ExitStatus::Signaled(Signal::KILL));
            }
        }
        self.signal(SIGCHLD);
    }

    fn signal(&mut self, sig: Signal) {
        self.lp.handle(LoopEvent::Signal(sig), self.now);
        // What the signals caused (a SIGKILL from vigil) is reported by the next SIGCHLD.
        while !self.world.borrow().zombies.is_empty() {
            self.lp.handle(LoopEvent::Signal(SIGCHLD), self.now);
        }
    }

    /// Runs deadlines (and the SIGCHLDs they cause) for `ms` of simulated time.
    fn run_ms(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        for _ in 0..100_000 {
            match self.lp.next_deadline() {
                Some(at) if at <= end && self.lp.exit_code().is_none() => {
                    self.now = self.now.max(at);
                    self.lp.handle(LoopEvent::Deadline, self.now);
                    self.signal(SIGCHLD);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("the loop does not settle");
    }

    fn run_to_exit(&mut self) -> u8 {
        for _ in 0..1000 {
            if let Some(code) = self.lp.exit_code() {
                return code;
            }
            self.run_ms(1000);
        }
        panic!("vigil never exited");
    }

    fn violations(&self) -> Vec<String> {
        self.world.borrow().violations.clone()
    }
}

const NESTED: &str = include_str!("fixtures/seam/nested.toml");

/// Defect 1 of the seam issue, at the loop: `a` and `c` killed by one `kill` command.
#[test]
fn one_sigchld_for_two_exits_keeps_one_process_per_node() {
    let mut h = Harness::new(NESTED);
    for _ in 0..60 {
        h.kill_batch(&["a", "c"]);
        h.run_ms(100);
        assert_eq!(h.violations(), Vec::<String>::new());
        for name in ["a", "b", "c"] {
            h.pid(name);
        }
    }
    h.signal(Signal::TERM);
    assert_eq!(h.run_to_exit(), 0);
    assert!(h.world.borrow().procs.values().all(|p| p.reaped));
}

/// A failed spawn under a supervisor that then gives up, while the root stops the other.
#[test]
fn a_failed_spawn_in_a_batch_keeps_one_process_per_node() {
    let cfg = r#"
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
backoff = "none"

[process.c]
command = ["x"]
backoff = "none"
"#;
    let mut h = Harness::new(cfg);
    h.world.borrow_mut().failing.insert("a".into());
    h.kill_batch(&["a", "c"]);
    h.run_ms(5_000);
    assert_eq!(h.violations(), Vec::<String>::new());
    h.world.borrow_mut().failing.clear();
    h.run_ms(5_000);
    h.signal(Signal::TERM);
    // s1 gives up on `a`, and the root's one_for_all may give up in turn: either way
    // nothing runs twice.
    let code = h.run_to_exit();
    assert!(matches!(code, 0 | 75), "exit code {code}");
    assert_eq!(h.violations(), Vec::<String>::new());
}

/// `timeout -s TERM 1 vigil run`: the stop signal twice within microseconds keeps the
/// grace; once past the window, a repeat kills.
#[test]
fn a_duplicated_stop_signal_keeps_the_grace() {
    let cfg = r#"
children = ["a"]
[process.a]
command = ["x"]
shutdown = "5s"
"#;
    let mut h = Harness::new(cfg);
    h.world.borrow_mut().stubborn.insert("a".into());
    let pid = h.pid("a");
    h.signal(Signal::TERM);
    h.signal(Signal::TERM);
    assert!(
        !h.world.borrow().procs[&pid].exited,
        "not killed by the duplicate"
    );
    h.run_ms(900);
    h.signal(Signal::INT);
    assert!(
        !h.world.borrow().procs[&pid].exited,
        "still within the window"
    );
    h.run_ms(200);
    h.signal(Signal::INT);
    assert!(
        h.world.borrow().procs[&pid].exited,
        "a repeat after the window kills"
    );
    assert_eq!(h.run_to_exit(), 0);
}

/// Defect 5: `--exit-with` stopped by a signal before its process ended exits 128+sig.
#[test]
fn an_interrupted_exit_with_run_exits_128_plus_the_signal() {
    let cfg = r#"
children = ["svc", "tests"]
[process.svc]
command = ["x"]
[process.tests]
command = ["x"]
"#;
    let toml = format!("{cfg}\n[control]\nenabled = false\n");
    let mut loaded = vigil::config::parse(&toml, std::path::Path::new("t.toml")).unwrap();
    vigil::config::apply_exit_with(&mut loaded.tree, "tests").unwrap();
    let world = Rc::new(RefCell::new(World::default()));
    let (ops, _) = vigil::runtime::ops::setup(&loaded.tree, None).unwrap();
    let mut lp = Loop::new(loaded.tree, Box::new(FakeOs(world.clone())), ops, 1, true);
    lp.start(Time::ZERO);
    lp.handle(LoopEvent::Signal(Signal::INT), Time::ZERO);
    while !world.borrow().zombies.is_empty() {
        lp.handle(LoopEvent::Signal(SIGCHLD), Time::ZERO);
    }
    assert_eq!(lp.exit_code(), Some(130));
}

#[derive(Clone, Debug)]
enum Op {
    /// Kill these processes (by index) from outside, then one SIGCHLD.
    Batch(Vec<usize>),
    /// Spawns of this process fail from now on / succeed again.
    Fail(usize, bool),
    Wait(u64),
    Term,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(0usize..4, 1..4).prop_map(Op::Batch),
            (0usize..4, any::<bool>()).prop_map(|(i, f)| Op::Fail(i, f)),
            (0u64..3_000).prop_map(Op::Wait),
            Just(Op::Term),
        ],
        0..25,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the order of exits, failed spawns and stop signals: never two live
    /// processes for one node, never a signal to a reaped process, and a stop ends with
    /// every process reaped.
    #[test]
    fn the_loop_keeps_one_process_per_node(
        root in prop::sample::select(vec!["one_for_one", "one_for_all", "rest_for_one"]),
        sub in prop::sample::select(vec!["one_for_one", "one_for_all", "rest_for_one"]),
        backoff in any::<bool>(),
        ops in ops(),
    ) {
        let backoff = if backoff { "{ initial = \"100ms\", jitter = 0.0 }" } else { "\"none\"" };
        let cfg = format!(r#"
strategy = "{root}"
intensity = 5
period = "10s"
children = ["p0", "sub", "p3"]
[supervisor.sub]
strategy = "{sub}"
intensity = 3
period = "10s"
children = ["p1", "p2"]
[process.p0]
command = ["x"]
backoff = {backoff}
[process.p1]
command = ["x"]
backoff = {backoff}
[process.p2]
command = ["x"]
backoff = {backoff}
shutdown = "500ms"
[process.p3]
command = ["x"]
backoff = {backoff}
"#);
        let mut h = Harness::new(&cfg);
        h.world.borrow_mut().stubborn.insert("p2".into());
        for op in ops {
            if h.lp.exit_code().is_some() {
                break;
            }
            match op {
                Op::Batch(list) => {
                    let names: Vec<String> = list.iter().map(|i| format!("p{i}")).collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    h.kill_batch(&names);
                }
                Op::Fail(i, on) => {
                    let name = format!("p{i}");
                    let mut w = h.world.borrow_mut();
                    if on { w.failing.insert(name); } else { w.failing.remove(&name); }
                }
                Op::Wait(ms) => h.run_ms(ms),
                Op::Term => h.signal(Signal::TERM),
            }
            prop_assert_eq!(h.violations(), Vec::<String>::new());
        }
        h.signal(Signal::TERM);
        let code = h.run_to_exit();
        prop_assert!(matches!(code, 0 | 69 | 75), "exit code {}", code);
        prop_assert_eq!(h.violations(), Vec::<String>::new());
        let w = h.world.borrow();
        prop_assert!(w.procs.values().all(|p| p.reaped), "left: {:?}", w.procs);
    }
}

/// A signal storm: thousands of SIGCHLD and SIGUSR1 events around one SIGTERM, with exits
/// among them. The stop is neither lost nor doubled, and nothing runs twice.
#[test]
fn a_signal_storm_around_a_stop() {
    let mut h = Harness::new(NESTED);
    for round in 0..2_000 {
        if round == 1_000 {
            h.lp.handle(LoopEvent::Signal(Signal::TERM), h.now);
        }
        if round % 100 == 7 && h.lp.exit_code().is_none() {
            let live = h.world.borrow().live("b");
            if let Some(&pid) = live.first() {
                h.world
                    .borrow_mut()
                    .die(pid, ExitStatus::Signaled(Signal::KILL));
            }
        }
        h.lp.handle(LoopEvent::Signal(SIGCHLD), h.now);
        h.lp.handle(LoopEvent::Signal(Signal(libc::SIGUSR1)), h.now);
    }
    assert_eq!(h.run_to_exit(), 0);
    assert_eq!(h.violations(), Vec::<String>::new());
    assert!(h.world.borrow().procs.values().all(|p| p.reaped));
}

/// Issue 13, finding 6: an exit whose SIGCHLD wake-up was lost is reaped at the next
/// wake-up of any kind (here a SIGUSR1), not left until another child exits.
#[test]
fn every_wake_up_reaps_even_without_a_sigchld() {
    let mut h = Harness::new(NESTED);
    let old = h.pid("a");
    h.world
        .borrow_mut()
        .die(old, ExitStatus::Signaled(Signal::KILL));
    h.lp.handle(LoopEvent::Signal(Signal(libc::SIGUSR1)), h.now);
    assert!(
        h.world.borrow().procs[&old].reaped,
        "reaped without a SIGCHLD"
    );
    let new = h.pid("a");
    assert_ne!(new, old, "and restarted");
    h.signal(Signal::TERM);
    assert_eq!(h.run_to_exit(), 0);
}

/// Review finding: an orphan still in a running child's process group (a worker a shell
/// without job control started in the background) is not another child's leftover.
#[test]
fn a_worker_in_a_running_childs_group_is_not_a_leftover() {
    let mut h = Harness::new(NESTED);
    let a = h.pid("a");
    let b = h.pid("b");
    let worker = 5_000;
    let in_bs_group = Stat {
        state: 'S',
        ppid: 1,
        pgid: b,
        start_time: 10_000,
    };
    // And one that left every group: that one is a's leftover.
    let escaped = 5_001;
    let own_group = Stat {
        state: 'S',
        ppid: 1,
        pgid: escaped,
        start_time: 10_001,
    };
    h.world.borrow_mut().orphans = vec![(worker, in_bs_group), (escaped, own_group)];
    h.world
        .borrow_mut()
        .die(a, ExitStatus::Signaled(Signal::KILL));
    h.lp.handle(LoopEvent::Signal(SIGCHLD), h.now);
    let signalled = h.world.borrow().leftover_signals.clone();
    assert!(
        signalled.iter().all(|(p, _)| *p != worker),
        "b's worker was signalled: {signalled:?}"
    );
    assert!(
        signalled.iter().any(|(p, _)| *p == escaped),
        "the escaped one is a's leftover: {signalled:?}"
    );
    h.world.borrow_mut().orphans.clear();
    h.signal(Signal::TERM);
    assert_eq!(h.run_to_exit(), 0);
}
