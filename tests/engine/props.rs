//! Property tests over random trees and random failures.
//!
//! - No action after the exit: once `Exit` is queued, inputs produce nothing.
//! - A stop always ends with every child stopped (nothing alive when vigil exits).
//! - No supervisor's window ever holds more restarts than its intensity.
//! - Every operator command is answered exactly once.
//!
//! Children fail some restart spawns, ignore or delay their stop signal, and a stop can
//! arrive at any point among the failures.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::harness::{Behaviour, OnStop, Sim};
use vigil::core::{Command, Event, Input};
use vigil::spec::{ExitStatus, NodeId, Signal};

#[derive(Clone, Debug)]
struct Proc {
    restart: &'static str,
    shutdown: &'static str,
    significant: bool,
    backoff: bool,
    on_stop: u8,
    /// Restart spawns fail on every third invocation (never the first).
    flaky_spawn: bool,
}

#[derive(Clone, Debug)]
struct Sup {
    strategy: &'static str,
    intensity: u32,
    period_s: u32,
    auto: &'static str,
    restart: &'static str,
}

#[derive(Clone, Debug)]
enum Op {
    Exit(usize, i32),
    Kill(usize, i32),
    Wait(u64),
    Stop,
    /// An operator command: 0 stop, 1 start, 2 restart, 3 SIGHUP; on node `usize`.
    Control(u8, usize),
    /// Several exits in one drain of the loop (each followed by its actions).
    Batch(Vec<(usize, i32)>),
    /// Spawns are held unanswered until the next `Release` (answers arrive late, after
    /// other inputs).
    Hold,
    /// Answer the held spawns.
    Release,
}

fn proc_strategy() -> impl Strategy<Value = Proc> {
    (
        prop::sample::select(vec!["permanent", "transient", "temporary"]),
        prop::sample::select(vec!["brutal_kill", "300ms", "2s"]),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(
            |(restart, shutdown, significant, backoff, on_stop, flaky_spawn)| Proc {
                restart,
                shutdown,
                significant,
                backoff,
                on_stop,
                flaky_spawn,
            },
        )
}

fn sup_strategy() -> impl Strategy<Value = Sup> {
    (
        prop::sample::select(vec!["one_for_one", "one_for_all", "rest_for_one"]),
        0u32..4,
        1u32..10,
        prop::sample::select(vec!["never", "any_significant", "all_significant"]),
        prop::sample::select(vec!["permanent", "transient", "temporary"]),
    )
        .prop_map(|(strategy, intensity, period_s, auto, restart)| Sup {
            strategy,
            intensity,
            period_s,
            auto,
            restart,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..8, 0i32..3).prop_map(|(i, c)| Op::Exit(i, c)),
        (0usize..8, prop::sample::select(vec![9, 15, 11])).prop_map(|(i, s)| Op::Kill(i, s)),
        (0u64..4_000).prop_map(Op::Wait),
        Just(Op::Stop),
        (0u8..4, 0usize..10).prop_map(|(k, n)| Op::Control(k, n)),
        prop::collection::vec((0usize..8, 0i32..2), 2..5).prop_map(Op::Batch),
        Just(Op::Hold),
        Just(Op::Release),
    ]
}

/// Builds a config: the root plus one nested supervisor; processes split between them.
fn config(root: &Sup, nested: &Sup, procs: &[Proc], split: usize) -> String {
    let split = split.min(procs.len());
    let names: Vec<String> = (0..procs.len()).map(|i| format!("p{i}")).collect();
    let mut root_children: Vec<String> = names[..split].to_vec();
    root_children.push("sub".into());
    let sub_children: Vec<String> = names[split..].to_vec();
    let mut out = format!(
        "strategy = \"{}\"\nintensity = {}\nperiod = \"{}s\"\nauto_shutdown = \"{}\"\nchildren = {:?}\n",
        root.strategy, root.intensity, root.period_s, root.auto, root_children
    );
    // A significant supervisor must not be permanent, and needs auto_shutdown in its parent.
    let sub_sig = nested.restart != "permanent" && root.auto != "never";
    out += &format!(
        "[supervisor.sub]\nstrategy = \"{}\"\nintensity = {}\nperiod = \"{}s\"\nauto_shutdown = \"{}\"\nrestart = \"{}\"\nsignificant = {}\nchildren = {:?}\n",
        nested.strategy,
        nested.intensity,
        nested.period_s,
        nested.auto,
        nested.restart,
        sub_sig,
        sub_children
    );
    for (i, p) in procs.iter().enumerate() {
        let parent_auto = if i < split { root.auto } else { nested.auto };
        let sig = p.significant && p.restart != "permanent" && parent_auto != "never";
        let backoff = if p.backoff {
            "{ initial = \"100ms\", max = \"1s\", jitter = 0.2 }"
        } else {
            "\"none\""
        };
        out += &format!(
            "[process.p{i}]\ncommand = [\"x\"]\nrestart = \"{}\"\nshutdown = \"{}\"\nsignificant = {}\nbackoff = {}\n",
            p.restart, p.shutdown, sig, backoff
        );
    }
    out
}

fn check_windows(sim: &Sim) -> Result<(), TestCaseError> {
    let tree = sim.engine.tree();
    let mut restarts: HashMap<NodeId, Vec<Duration>> = HashMap::new();
    for (t, e) in &sim.events {
        match e {
            Event::SupervisorStarted { supervisor } => {
                restarts.insert(*supervisor, Vec::new());
            }
            Event::RestartScheduled { supervisor, .. } => {
                let spec = tree.node(*supervisor).as_supervisor().unwrap();
                let list = restarts.entry(*supervisor).or_default();
                list.push(*t);
                let inside = list.iter().filter(|&&x| *t - x <= spec.period).count();
                prop_assert!(
                    inside <= spec.intensity as usize,
                    "{} restarts of {} within {:?}",
                    inside,
                    tree.node(*supervisor).name,
                    spec.period
                );
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold(
        root in sup_strategy(),
        nested in sup_strategy(),
        procs in prop::collection::vec(proc_strategy(), 1..7),
        split in 0usize..7,
        ops in prop::collection::vec(op_strategy(), 0..30),
    ) {
        let cfg = config(&root, &nested, &procs, split);
        let mut sim = Sim::new(&cfg);
        for (i, p) in procs.iter().enumerate() {
            let on_stop = match p.on_stop {
                0 => OnStop::Die,
                1 => OnStop::Ignore,
                _ => OnStop::After(Duration::from_millis(150), ExitStatus::Code(0)),
            };
            let b = if p.flaky_spawn {
                Behaviour::fail_spawn(|n| n > 1 && n % 3 == 0)
            } else {
                Behaviour::default()
            };
            sim = sim.with(&format!("p{i}"), b.on_stop(on_stop));
        }
        let mut sim = sim.start();
        let mut commands = 0u64;
        for op in ops {
            if sim.exit.is_some() {
                break;
            }
            match op {
                Op::Exit(i, c) => {
                    let name = format!("p{}", i % procs.len());
                    if sim.pid(&name).is_some() {
                        sim.exit_with(&name, c);
                    }
                }
                Op::Kill(i, s) => {
                    let name = format!("p{}", i % procs.len());
                    if sim.pid(&name).is_some() {
                        sim.kill(&name, Signal(s));
                    }
                }
                Op::Wait(ms) => sim.run_ms(ms),
                Op::Batch(exits) => {
                    let mut names: Vec<String> = exits
                        .iter()
                        .map(|(i, _)| format!("p{}", i % procs.len()))
                        .collect();
                    names.dedup();
                    let batch: Vec<(&str, ExitStatus)> = names
                        .iter()
                        .zip(&exits)
                        .filter(|(n, _)| sim.pid(n).is_some())
                        .map(|(n, (_, c))| (n.as_str(), ExitStatus::Code(*c)))
                        .collect();
                    sim.batch_exits(&batch);
                }
                Op::Hold => sim.hold_spawns(),
                Op::Release => sim.release_spawns(),
                // A stop mid-way (perhaps during a group restart or a backoff delay); the
                // ops that follow still poke at processes that are stopping.
                Op::Stop => sim.stop(),
                Op::Control(kind, n) => {
                    let node = NodeId((n % sim.engine.tree().nodes.len()) as u32);
                    let command = match kind {
                        0 => Command::Stop(node),
                        1 => Command::Start(node),
                        2 => Command::Restart(node),
                        _ => Command::Signal(node, Signal::HUP),
                    };
                    commands += 1;
                    sim.engine.handle(Input::Control { id: commands, command }, sim.now);
                    sim.settle();
                }
            }
            if sim.exit.is_some() {
                prop_assert_eq!(sim.alive_count(), 0, "exit with children alive:\n{}", sim.dump());
            }
        }
        sim.release_spawns();
        if sim.exit.is_none() {
            sim.stop();
        }
        let code = sim.run_to_exit();
        prop_assert!(sim.max_instances() <= 1, "two live processes for one node:\n{}", sim.dump());
        prop_assert_eq!(sim.stale_signals(), 0, "a signal to a reaped process:\n{}", sim.dump());
        prop_assert!(code != 69, "no start can fail here");
        prop_assert_eq!(sim.alive_count(), 0, "children left after exit:\n{}", sim.dump());
        check_windows(&sim)?;
        for id in 1..=commands {
            let answers = sim
                .events
                .iter()
                .filter(|(_, e)| matches!(e, Event::ControlDone { id: i, .. } if *i == id))
                .count();
            prop_assert_eq!(answers, 1, "command {} answered {} times:\n{}", id, answers, sim.dump());
        }
        // Nothing happens after the exit, whatever comes in.
        let now = sim.now + Duration::from_secs(3600);
        sim.engine.handle(Input::Tick, now);
        sim.engine.handle(Input::Stop { signal: Signal::TERM }, now);
        sim.engine.handle(Input::Exited { pid: 101, status: ExitStatus::Code(1) }, now);
        prop_assert_eq!(sim.engine.poll_action(), None);
        prop_assert_eq!(sim.engine.next_deadline(), None);
    }
}
