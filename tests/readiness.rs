//! Readiness, health checks and the test-stack mode, end to end with real processes.
//!
//! Each readiness kind gates the start of the next sibling (`notify_fd`, `sd_notify`,
//! `tcp`, `http`, `exec`, `file`); a child not ready in time fails the initial start (69)
//! or a restart (counted, then 75); failed health checks stop and restart a child; a
//! flapping one ends in give-up (75); readiness is lost and regained; `--exit-with`; and
//! the shipped test-stack example in its passing and failing variants (when
//! `redis-server` is installed). No fixed sleeps: every wait is a predicate with a deadline.

#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn run_tree(dir: &TestDir, toml: &str) -> Daemon {
    let path = dir.write("vigil.toml", toml);
    vigil_in(dir).arg("run").arg(path).spawn()
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Whether vigil logged that `name` became ready (the first time, not "ready again").
fn logged_ready(log: &str, name: &str) -> bool {
    log.lines()
        .any(|l| l.contains(&format!("INFO ready child={name}")))
}

fn wait_log(d: &Daemon, what: &str, f: impl Fn(&str) -> bool) -> String {
    d.wait_for(what, TIMEOUT, || {
        let l = log(d);
        f(&l).then_some(l)
    })
}

/// `a` (gated by `ready`) then `b`: b must start only after a was ready.
fn assert_gates_next_sibling(a_args: &[&str], ready: &str) {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(&dir, "a", a_args, &format!("ready = {ready}")),
        process(&dir, "b", &[], ""),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "b"]);
    let ready_at = ev.position("READY", "a").expect("a wrote READY");
    let b_at = ev.position("START", "b").expect("b started");
    assert!(
        ready_at < b_at,
        "b started before a was ready: {:?}",
        ev.lines()
    );
    let l = wait_log(&d, "a ready, b started", |l| {
        logged_ready(l, "a") && l.contains("started child=b")
    });
    let ready_line = l.find("INFO ready child=a").expect("ready line");
    let b_line = l.find("started child=b").expect("b started line");
    assert!(ready_line < b_line, "{l}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", log(&d));
    assert!(log(&d).contains("orphans_reaped=0"), "{}", log(&d));
}

#[test]
fn notify_fd_gates_the_next_sibling() {
    assert_gates_next_sibling(
        &["--ready-fd", "3", "--ready-after", "300"],
        "{ notify_fd = 3, timeout = \"10s\" }",
    );
}

#[test]
fn notify_fd_at_another_number() {
    assert_gates_next_sibling(
        &["--ready-fd", "7", "--ready-after", "100"],
        "{ notify_fd = 7 }",
    );
}

#[test]
fn sd_notify_gates_the_next_sibling_and_status_is_logged() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &[
                "--sd-notify",
                "STATUS=warming caches\\nREADY=1",
                "--ready-after",
                "200"
            ],
            "ready = { sd_notify = true }"
        ),
        process(&dir, "b", &[], ""),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "b"]);
    assert!(ev.position("READY", "a") < ev.position("START", "b"));
    let l = wait_log(&d, "status logged", |l| l.contains("warming caches"));
    assert!(logged_ready(&l, "a"), "{l}");
    // The socket lives in a private directory (a new `$TMPDIR/vigil-XXXXXX`, mode 0700)
    // that vigil removes when it exits.
    let a = ev.pids_of("a")[0];
    let environ = std::fs::read(format!("/proc/{a}/environ")).expect("a's environment");
    let socket = environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| Path::new(std::str::from_utf8(v).unwrap()).to_path_buf())
        .expect("NOTIFY_SOCKET in a's environment");
    let dir_path = socket.parent().unwrap().to_path_buf();
    assert!(
        dir_path.starts_with(std::env::temp_dir())
            && dir_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vigil-"),
        "runtime dir {dir_path:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "runtime dir {dir_path:?}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(!dir_path.exists(), "runtime dir left behind");
}

#[test]
fn tcp_gates_the_next_sibling() {
    let port = free_port().to_string();
    assert_gates_next_sibling(
        &["--listen", &port, "--ready-after", "300"],
        &format!("{{ tcp = \"127.0.0.1:{port}\", interval = \"50ms\" }}"),
    );
}

#[test]
fn file_gates_the_next_sibling() {
    let dir = TestDir::new();
    let f = dir.join("a.ready").display().to_string();
    assert_gates_next_sibling(
        &["--touch", &f, "--ready-after", "300"],
        &format!("{{ file = {}, interval = \"50ms\" }}", toml_str(&f)),
    );
}

#[test]
fn exec_gates_the_next_sibling_and_its_processes_are_not_orphans() {
    let dir = TestDir::new();
    let f = dir.join("a.ready").display().to_string();
    assert_gates_next_sibling(
        &["--touch", &f, "--ready-after", "400"],
        &format!(
            "{{ exec = [\"test\", \"-e\", {}], interval = \"50ms\" }}",
            toml_str(&f)
        ),
    );
}

#[test]
fn http_gates_the_next_sibling() {
    if Command::new("python3").arg("--version").output().is_err() {
        skip_or_fail_on_ci(
            "http_gates_the_next_sibling",
            "python3 is not installed",
            "the test serves HTTP with python3's http.server",
            "apt-get install python3 (.ci/run does)",
        );
        return;
    }
    let dir = TestDir::new();
    let port = free_port();
    let toml = format!(
        "children = [\"web\", \"b\"]\n[process.web]\ncommand = [\"python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nready = {{ http = \"http://127.0.0.1:{port}/\", interval = \"50ms\" }}\n{}",
        process(&dir, "b", &[], ""),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["b"]);
    let l = wait_log(&d, "web ready, b started", |l| {
        logged_ready(l, "web") && l.contains("started child=b")
    });
    let ready = l.find("INFO ready child=web").expect("ready");
    let b = l.find("started child=b").expect("b");
    assert!(ready < b, "{l}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn http_readiness_wants_a_2xx() {
    if Command::new("python3").arg("--version").output().is_err() {
        skip_or_fail_on_ci(
            "http_readiness_wants_a_2xx",
            "python3 is not installed",
            "the test serves HTTP with python3's http.server",
            "apt-get install python3 (.ci/run does)",
        );
        return;
    }
    let dir = TestDir::new();
    let port = free_port();
    // http.server answers 404 for a missing path: never ready.
    let toml = format!(
        "children = [\"web\"]\n[process.web]\ncommand = [\"python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nready = {{ http = \"http://127.0.0.1:{port}/no-such-page\", interval = \"50ms\", timeout = \"1500ms\" }}\n",
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69, "{}", log(&d));
    assert!(log(&d).contains("not ready within"), "{}", log(&d));
}

#[test]
fn not_ready_in_time_aborts_the_initial_start_with_69() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"z\", \"a\", \"b\"]\n{}{}{}",
        process(&dir, "z", &["--on-term", "exit:0"], ""),
        // Never writes to its notify_fd.
        process(
            &dir,
            "a",
            &[],
            "ready = { notify_fd = 3, timeout = \"500ms\" }"
        ),
        process(&dir, "b", &[], ""),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69, "{}", log(&d));
    let l = log(&d);
    assert!(l.contains("not ready within its ready timeout"), "{l}");
    assert!(l.contains("offender=a"), "{l}");
    let ev = dir.read_events();
    assert!(
        ev.starts("b").is_empty(),
        "b never starts: {:?}",
        ev.lines()
    );
    assert_eq!(logged_names(&l, "stopped"), strs(&["a", "z"]), "{l}");
    for pid in ev.pids_of("a") {
        assert!(!is_alive(pid), "a was killed");
    }
}

#[test]
fn exit_before_ready_aborts_the_initial_start() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &["--exit-after", "200", "--code", "0"],
            "ready = { sd_notify = true }"
        ),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69, "{}", log(&d));
    assert!(
        log(&d).contains("exited before it was ready"),
        "{}",
        log(&d)
    );
}

/// OTP case 25 in its readiness form, for real: after a crash, restarts that never get
/// ready count against the intensity until the supervisor gives up.
#[test]
fn restarts_not_ready_in_time_count_and_end_in_give_up() {
    let dir = TestDir::new();
    let mark = dir.write("mark", "");
    let toml = format!(
        "intensity = 2\nperiod = \"60s\"\nchildren = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &[],
            &format!(
                "backoff = \"none\"\nready = {{ file = {}, interval = \"50ms\", timeout = \"500ms\" }}",
                toml_str(&mark.display().to_string())
            )
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let l = wait_log(&d, "a ready", |l| logged_ready(l, "a"));
    std::fs::remove_file(&mark).expect("remove the readiness file");
    // From vigil's log: the child may not have run (and written START) yet.
    let pid = logged(&l, "started")[0].1;
    kill(pid, libc::SIGKILL);
    assert_eq!(d.wait_exit(TIMEOUT), 75, "{}", log(&d));
    let l = log(&d);
    assert_eq!(
        l.matches("not ready within its ready timeout").count(),
        2,
        "{l}"
    );
    assert!(l.contains("restarts=2/2"), "{l}");
}

#[test]
fn failing_health_checks_stop_and_restart_the_child() {
    let dir = TestDir::new();
    let health = dir.write("healthy", "");
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &["--on-term", "exit:0"],
            // Transient, and it exits 0 on SIGTERM: an unhealthy stop still counts as abnormal.
            &format!(
                "restart = \"transient\"\nbackoff = \"none\"\nhealth = {{ file = {}, interval = \"100ms\", failures = 2 }}",
                toml_str(&health.display().to_string())
            )
        ),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["a"]);
    std::fs::remove_file(&health).expect("make a unhealthy");
    let ev = dir.wait_events("a restarted", TIMEOUT, |e| e.count("START", "a") >= 2);
    std::fs::write(&health, "").expect("healthy again");
    assert_eq!(ev.signals("a")[0], "SIGTERM", "{:?}", ev.lines());
    let l = wait_log(&d, "restart logged", |l| l.contains("restart scheduled"));
    assert!(l.contains("health checks failed"), "{l}");
    assert!(l.contains("failures=2/2"), "{l}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", log(&d));
}

#[test]
fn flapping_health_ends_in_give_up_75() {
    let dir = TestDir::new();
    let never = dir.join("never").display().to_string();
    let toml = format!(
        "intensity = 2\nperiod = \"60s\"\nchildren = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &[],
            &format!(
                "backoff = \"none\"\nhealth = {{ exec = [\"test\", \"-e\", {}], interval = \"50ms\", failures = 1 }}",
                toml_str(&never)
            )
        ),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 75, "{}", log(&d));
    let l = log(&d);
    assert_eq!(l.matches("health checks failed").count(), 3, "{l}");
    assert!(
        l.contains("orphans_reaped=0"),
        "exec checks are not orphans: {l}"
    );
    assert_eq!(dir.read_events().count("START", "a"), 3);
}

#[test]
fn readiness_is_lost_and_regained_while_running() {
    let dir = TestDir::new();
    let health = dir.write("healthy", "");
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &[],
            &format!(
                "health = {{ file = {}, interval = \"50ms\", failures = 1000 }}",
                toml_str(&health.display().to_string())
            )
        ),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["a"]);
    std::fs::remove_file(&health).expect("remove");
    wait_log(&d, "no longer ready", |l| {
        l.contains("no longer ready child=a")
    });
    d.signal_vigil(libc::SIGUSR1);
    wait_log(&d, "status not ready", |l| {
        l.lines()
            .any(|x| x.contains("node=a") && x.contains("ready=false"))
    });
    std::fs::write(&health, "").expect("recreate");
    wait_log(&d, "ready again", |l| l.contains("ready again child=a"));
    d.signal_vigil(libc::SIGUSR2);
    wait_log(&d, "status ready", |l| {
        l.lines()
            .any(|x| x.contains("node=a") && x.contains("ready=true"))
    });
    assert_eq!(dir.read_events().count("START", "a"), 1, "never restarted");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn exit_with_ends_the_tree_with_that_childs_status() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"svc\", \"t\"]\n{}{}",
        process(
            &dir,
            "svc",
            &["--on-term", "exit:0", "--ready-fd", "3"],
            "ready = { notify_fd = 3 }"
        ),
        process(&dir, "t", &["--exit-after", "100", "--code", "7"], ""),
    );
    let path = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .arg("run")
        .arg("--exit-with")
        .arg("t")
        .arg(&path)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 7, "{}", log(&d));
    let ev = dir.read_events();
    assert_eq!(ev.signals("svc"), strs(&["SIGTERM"]), "svc stopped after t");
    assert_eq!(ev.count("START", "t"), 1, "t is not restarted");

    let mut d = vigil_in(&dir)
        .arg("run")
        .arg("--exit-with")
        .arg("nope")
        .arg(&path)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 2);
    let l = log(&d);
    assert!(
        l.contains("--exit-with \"nope\"") && l.contains("svc, t"),
        "{l}"
    );
}

/// The threads docs/threads.md lists for `vigil run`, by name (`comm`, at most 15 bytes):
/// the loop (the program's name), the writer of vigil's stderr (its log and prefixed
/// stderr lines), the writer of prefixed stdout lines, the two probe helpers.
const DOCUMENTED_THREADS: [&str; 5] = [
    "vigil",
    "vigil-stdout",
    "vigil-stderr",
    "vigil-resolve",
    "vigil-stat",
];

/// The names of `pid`'s threads right now.
fn thread_names(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim_end().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Health-check failures vigil logged for `name`.
fn failed_checks(log: &str, name: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("health check failed") && log_field(l, "child") == Some(name))
        .count()
}

/// R5: tcp and http checks that name a host, and file checks, run on vigil's two helper
/// threads, whatever their number and for as long as they run: vigil never has a thread
/// docs/threads.md does not list (before, every lookup went to tokio's blocking pool,
/// whose threads are named `tokio-rt-worker`).
#[test]
fn checks_naming_hosts_and_files_use_only_the_documented_threads() {
    let dir = TestDir::new();
    let open = free_port();
    let closed = free_port();
    let missing = toml_str(&dir.join("missing").display().to_string());
    let every = "interval = \"50ms\", timeout = \"1s\", failures = 100000";
    let checked = ["t1", "t2", "h1", "h2", "f"];
    let mut toml = format!(
        "children = [\"a\", \"t1\", \"t2\", \"h1\", \"h2\", \"f\"]\n{}",
        process(
            &dir,
            "a",
            &["--listen", &open.to_string()],
            // Prefix output starts the two writer threads: the whole list at once.
            &format!(
                "output = \"prefix\"\nready = {{ tcp = \"localhost:{open}\", interval = \"50ms\" }}"
            )
        )
    );
    for t in ["t1", "t2"] {
        let health = format!("health = {{ tcp = \"localhost:{closed}\", {every} }}");
        toml += &process(&dir, t, &[], &health);
    }
    for h in ["h1", "h2"] {
        let health = format!("health = {{ http = \"http://localhost:{closed}/\", {every} }}");
        toml += &process(&dir, h, &[], &health);
    }
    toml += &process(
        &dir,
        "f",
        &[],
        &format!("health = {{ file = {missing}, {every} }}"),
    );
    let mut d = run_tree(&dir, &toml);
    let pid = d.pid();
    // From here on the process is vigil (exec'd), not the test's fork of itself.
    wait_log(&d, "vigil starting", |l| l.contains("vigil starting"));

    // Several intervals of every check, looking at vigil's threads all along.
    let mut seen: Vec<String> = Vec::new();
    let mut most = 0;
    let l = d.wait_for("5 failed tries of every check", TIMEOUT, || {
        let names = thread_names(pid);
        most = most.max(names.len());
        for n in &names {
            assert!(
                DOCUMENTED_THREADS.contains(&n.as_str()),
                "vigil has a thread docs/threads.md does not list: {n:?} (all: {names:?})"
            );
            if !seen.contains(n) {
                seen.push(n.clone());
            }
        }
        let l = log(&d);
        checked
            .iter()
            .all(|c| failed_checks(&l, c) >= 5)
            .then_some(l)
    });
    assert!(most <= DOCUMENTED_THREADS.len(), "{most} threads: {seen:?}");
    seen.sort();
    let mut want: Vec<String> = DOCUMENTED_THREADS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want, "every documented thread was started");
    assert!(
        logged_ready(&l, "a"),
        "tcp readiness through localhost: {l}"
    );
    assert!(
        l.contains(&format!("cannot connect to localhost:{closed}: ")),
        "{l}"
    );
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", log(&d));
}

/// The shipped `config/examples/test-stack.toml`: real redis-server and a python HTTP
/// service, each gated by readiness, then a test; vigil exits with the test's status.
#[test]
fn test_stack_example_passes_and_fails_with_the_tests_status() {
    let have = |p: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {p}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("redis-server") && have("redis-cli") && have("python3")) {
        skip_or_fail_on_ci(
            "the test-stack example",
            "redis-server, redis-cli or python3 is missing",
            "the shipped example runs a real redis and a python web app",
            "apt-get install redis-server python3 (.ci/run does)",
        );
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/test-stack.toml");
    let dir = TestDir::new();
    let mut d = vigil_in(&dir).arg("run").arg(&example).spawn();
    assert_eq!(d.wait_exit(TIMEOUT * 3), 0, "{}", log(&d));
    let l = log(&d);
    assert!(logged_ready(&l, "redis") && logged_ready(&l, "web"), "{l}");
    let order: Vec<usize> = [
        "INFO ready child=redis",
        "started child=web",
        "INFO ready child=web",
        "started child=tests",
    ]
    .iter()
    .map(|m| l.find(m).unwrap_or_else(|| panic!("no `{m}` in\n{l}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{l}");
    assert!(
        d.stdout_text().contains("tests: all passed"),
        "{}",
        d.stdout_text()
    );

    let mut d = vigil_in(&dir)
        .env("EXPECT_GREETING", "bye")
        .arg("run")
        .arg(&example)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT * 3), 3, "{}", log(&d));
    assert!(
        d.stdout_text().contains("tests: FAILED"),
        "{}",
        d.stdout_text()
    );
    // Everything was stopped in order: web, then redis.
    let l = log(&d);
    let web = l.find("stopped child=web").expect("web stopped");
    let redis = l.find("stopped child=redis").expect("redis stopped");
    assert!(web < redis, "{l}");
}
