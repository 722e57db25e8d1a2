//! Soak tests of the reliability suite (RELIABILITY.md, "Soak"): vigil's own resources
//! stay flat over very many restarts and operator stop/start cycles.
//!
//! Sizes come from the environment; the defaults are CI-short (a few seconds each):
//!
//! ```sh
//! cargo build --release
//! VIGIL_BIN=$CARGO_TARGET_DIR/release/vigil VIGIL_SOAK_RESTARTS=100000 \
//!   VIGIL_SOAK_CHILDREN=1000 VIGIL_SOAK_CYCLES=1000 \
//!   cargo test --release --test soak -- --nocapture --test-threads=1
//! ```
//!
//! Each test prints its figures (RSS, descriptors and threads of vigil at start and end,
//! zombies, counts) to stderr with `--nocapture`. Every wait is a predicate with a
//! deadline scaled to the size; the checks: vigil's descriptors and threads end where they
//! started, its RSS grows by less than a bound, no zombie is left under it, vigil's
//! restart count equals the children's own record (their events file), and a final
//! SIGTERM ends vigil with 0 and nothing left.

#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// RSS growth allowed between the start and the end of a soak. A leak of even a few
/// bytes per restart shows above it at the full sizes (100,000 restarts x 64 B = 6 MB).
const RSS_SLACK_KB: u64 = 2048;

/// Polls `f` every `every` until it returns `Some` or `timeout` passes (for predicates
/// that are too expensive to evaluate every 5 ms, such as reading a large events file).
fn wait_every<T>(
    what: &str,
    every: Duration,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

fn report(test: &str, what: &str, u: ProcUsage) {
    eprintln!(
        "[{test}] {what}: VmRSS {} KiB, VmHWM {} KiB, fds {}, threads {}",
        u.rss_kb, u.hwm_kb, u.fds, u.threads
    );
}

/// Asserts that vigil's resources at `end` are those of `start` (descriptors, threads)
/// or close to them (RSS).
fn assert_flat(start: ProcUsage, end: ProcUsage) {
    assert_eq!(end.fds, start.fds, "vigil's open descriptors changed");
    assert_eq!(end.threads, start.threads, "vigil's thread count changed");
    assert!(
        end.rss_kb <= start.rss_kb + RSS_SLACK_KB,
        "vigil's RSS grew from {} KiB to {} KiB",
        start.rss_kb,
        end.rss_kb
    );
}

/// Stops vigil with SIGTERM: exit 0, nothing left below it, no zombie.
fn stop_clean(d: &mut Daemon, timeout: Duration) {
    let pid = d.pid();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(timeout), 0, "{}", tail(&log(d)));
    let left: Vec<i32> = descendants(pid)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect();
    assert!(
        left.is_empty(),
        "processes left after vigil exited: {left:?}"
    );
}

/// The last lines of a (possibly huge) log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// 100,000 restarts (full size) of crashing children while other children run.
///
/// Two `permanent` children run until the start figures are taken, are then killed once
/// by the test, and crash (exit 1 right after START) on their next `RESTARTS / 2`
/// invocations before they stay up again, so the number of restarts is exact;
/// `backoff = "none"` and an intensity no run can reach. Three steady children run
/// throughout and must never be restarted.
#[test]
fn restart_soak_keeps_vigil_flat() {
    let restarts = env_size("VIGIL_SOAK_RESTARTS", 1000);
    let per = restarts / 2;
    let dir = TestDir::new();
    let crashers = ["crash1", "crash2"];
    let steady = ["steady1", "steady2", "steady3"];
    let mut toml = String::from(
        "strategy = \"one_for_one\"\nintensity = 4000000000\nperiod = \"1s\"\n\
         children = [\"steady1\", \"crash1\", \"steady2\", \"crash2\", \"steady3\"]\n",
    );
    for s in steady {
        toml += &process(&dir, s, &[], "");
    }
    for c in crashers {
        let inv = dir.join(&format!("{c}.invocations")).display().to_string();
        let fail = format!("2..{}", per + 1);
        toml += &process(
            &dir,
            c,
            &["--invocation-file", &inv, "--fail-invocations", &fail],
            "backoff = \"none\"",
        );
    }
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program(vigil_bin())
        .env("RUST_LOG", "warn")
        .arg("run")
        .arg(&cfg)
        .spawn();
    let pid = d.pid();
    let socket = d.socket().to_path_buf();
    // Start values: as soon as the steady children run and the socket answers.
    let all: Vec<&str> = steady.iter().chain(&crashers).copied().collect();
    let ev = wait_started(&dir, &all);
    let base = connected_unix_sockets(pid);
    d.wait_for("the control socket", TIMEOUT, || {
        (vigil_client(&socket, &["status"]).0 == 0).then_some(())
    });
    let start = quiet_usage(pid, base);
    report("restart_soak", "start", start);
    let t0 = Instant::now();
    for c in crashers {
        kill(ev.starts(c)[0], libc::SIGKILL);
    }

    // Generous hang guard: ~1,300 restarts a second in release, far fewer in debug.
    let guard = Duration::from_secs(60 + restarts / 50);
    let mut peak = start;
    let st = wait_every(
        &format!("{restarts} restarts"),
        Duration::from_millis(250),
        guard,
        || {
            if let Some(u) = proc_usage(pid) {
                peak.rss_kb = peak.rss_kb.max(u.rss_kb);
                peak.fds = peak.fds.max(u.fds);
                peak.threads = peak.threads.max(u.threads);
            }
            let st = status_json_of(&socket);
            let done = crashers.iter().all(|c| {
                let n = status_node(&st, c);
                n["restarts"].as_u64() == Some(per + 1) && n["state"] == "running"
            });
            done.then_some(st)
        },
    );
    let elapsed = t0.elapsed();
    let end = quiet_usage(pid, base);
    report("restart_soak", "end", end);
    report("restart_soak", "peak during the run (sampled)", peak);
    let zombies = zombie_children(pid);
    eprintln!(
        "[restart_soak] {} restarts in {elapsed:.1?} ({:.0}/s); zombies {}",
        2 * (per + 1),
        (2 * (per + 1)) as f64 / elapsed.as_secs_f64(),
        zombies.len()
    );
    assert!(zombies.is_empty(), "zombies under vigil: {zombies:?}");
    assert_flat(start, end);

    // vigil's count against the children's own record.
    let counts = count_events(&dir.events());
    let n = |k: &str, c: &str| counts.get(&(k.into(), c.into())).copied().unwrap_or(0);
    for c in crashers {
        let vigil_restarts = status_node(&st, c)["restarts"].as_u64().unwrap();
        eprintln!(
            "[restart_soak] {c}: vigil counted {vigil_restarts} restarts; the child recorded {} \
             STARTs and {} EXITs",
            n("START", c),
            n("EXIT", c)
        );
        // Its own record: `per` crashes it logged, plus the one SIGKILL of the test.
        assert_eq!(n("EXIT", c), per, "{c}: crashes the child recorded");
        assert_eq!(n("START", c), per + 2, "{c}: starts the child recorded");
        assert_eq!(vigil_restarts, n("EXIT", c) + 1, "{c}: vigil's count");
        assert_eq!(vigil_restarts, n("START", c) - 1, "{c}: vigil's count");
    }
    // The steady children were never touched.
    for s in steady {
        assert_eq!(n("START", s), 1, "{s} was restarted");
        assert_eq!(status_node(&st, s)["restarts"], 0);
        assert!(is_alive(ev.starts(s)[0]), "{s} died");
    }
    // Every process below vigil is one of the five current children.
    let below: Vec<i32> = children_of(pid);
    assert_eq!(below.len(), 5, "vigil's children: {below:?}");
    stop_clean(&mut d, TIMEOUT);
}

/// A supervisor of 1000 children (full size) stopped and started through the control
/// socket 1000 times, while another child runs.
#[test]
fn stop_start_soak_keeps_vigil_flat() {
    let children = env_size("VIGIL_SOAK_CHILDREN", 50) as usize;
    let cycles = env_size("VIGIL_SOAK_CYCLES", 20);
    let dir = TestDir::new();
    let names: Vec<String> = (0..children).map(|i| format!("w{i}")).collect();
    let mut toml = String::from(
        "children = [\"other\", \"pool\"]\n\
         [supervisor.pool]\nstrategy = \"one_for_one\"\n",
    );
    toml += &format!("children = {}\n", toml_array(&names));
    toml += &process(&dir, "other", &[], "");
    for n in &names {
        // Default SIGTERM disposition: each child dies at once when stopped. It reports
        // ready on a notify_fd pipe after it wrote START, so `start pool` returns only
        // once every child has recorded its start (and a pipe per start is exercised).
        toml += &process(
            &dir,
            n,
            &["--ready-fd", "3"],
            "ready = { notify_fd = 3, timeout = \"60s\" }",
        );
    }
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program(vigil_bin())
        .env("RUST_LOG", "warn")
        .arg("run")
        .arg(&cfg)
        .spawn();
    let pid = d.pid();
    let socket = d.socket().to_path_buf();
    let big = Duration::from_secs(30 + children as u64 / 10);
    d.wait_for("the control socket", TIMEOUT, || {
        socket.exists().then_some(())
    });
    let base = connected_unix_sockets(pid);
    d.wait_for("the tree to be ready", big, || {
        (vigil_client(&socket, &["wait-ready", "--timeout", "1s"]).0 == 0).then_some(())
    });
    let other = dir.read_events().starts("other")[0];
    let start = quiet_usage(pid, base);
    report("stop_start_soak", "start", start);
    let t0 = Instant::now();
    let (mut stop_total, mut start_total) = (Duration::ZERO, Duration::ZERO);
    let mut peak = start;
    for cycle in 0..cycles {
        let t = Instant::now();
        let (code, out, err) = vigil_client(&socket, &["stop", "pool"]);
        assert_eq!(code, 0, "cycle {cycle}: stop pool: {out}{err}");
        stop_total += t.elapsed();
        // Stopped means every child is gone and reaped: none of them is left below vigil.
        let below = children_of(pid);
        assert_eq!(
            below,
            vec![other],
            "cycle {cycle}: after `stop pool` only `other` runs"
        );
        let t = Instant::now();
        let (code, out, err) = vigil_client(&socket, &["start", "pool"]);
        assert_eq!(code, 0, "cycle {cycle}: start pool: {out}{err}");
        start_total += t.elapsed();
        if let Some(u) = proc_usage(pid) {
            peak.rss_kb = peak.rss_kb.max(u.rss_kb);
            peak.fds = peak.fds.max(u.fds);
            peak.threads = peak.threads.max(u.threads);
        }
        if cycles >= 10 && (cycle + 1) % (cycles / 10) == 0 {
            let u = quiet_usage(pid, base);
            eprintln!(
                "[stop_start_soak] {} cycles in {:.1?}: VmRSS {} KiB, fds {}, threads {}",
                cycle + 1,
                t0.elapsed(),
                u.rss_kb,
                u.fds,
                u.threads
            );
        }
    }
    let elapsed = t0.elapsed();
    d.wait_for("the pool to be ready again", big, || {
        (vigil_client(&socket, &["wait-ready", "--timeout", "1s"]).0 == 0).then_some(())
    });
    let end = quiet_usage(pid, base);
    report("stop_start_soak", "start", start);
    report("stop_start_soak", "end", end);
    report("stop_start_soak", "peak between cycles", peak);
    let zombies = zombie_children(pid);
    eprintln!(
        "[stop_start_soak] {cycles} cycles of {children} children in {elapsed:.1?}: \
         stop {:.1?} and start {:.1?} a cycle on average; zombies {}",
        stop_total / cycles.max(1) as u32,
        start_total / cycles.max(1) as u32,
        zombies.len()
    );
    assert!(zombies.is_empty(), "zombies under vigil: {zombies:?}");
    assert_flat(start, end);

    // Operator commands never count: no restart anywhere. Every child ran cycles + 1
    // times by its own record, and exactly its current incarnation is alive.
    let st = status_json_of(&socket);
    let counts = count_events(&dir.events());
    let n = |k: &str, c: &str| counts.get(&(k.into(), c.into())).copied().unwrap_or(0);
    for name in names.iter().map(String::as_str).chain(["other", "pool"]) {
        assert_eq!(status_node(&st, name)["restarts"], 0, "{name}");
    }
    assert_eq!(n("START", "other"), 1);
    for name in &names {
        assert_eq!(n("START", name), cycles + 1, "{name}: starts it recorded");
        assert_eq!(status_node(&st, name)["state"], "running", "{name}");
    }
    let below = children_of(pid);
    assert_eq!(below.len(), children + 1, "vigil's children: {below:?}");
    stop_clean(&mut d, big);
}
