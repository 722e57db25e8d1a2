//! vigil as a container's PID 1, with the real tools: Debian's podman and runc, an image
//! built `FROM scratch` by `packaging/build-image.sh` from the static binaries (vigil and
//! `vigil-test-child`) and busybox-static, with the lowered ulimits CI machines accept.
//!
//! Scenarios (run in parallel inside one test, so the image is built once and removed at
//! the end; each container is removed when its scenario ends, pass or fail):
//!
//! - the demo tree starts with vigil as PID 1; `podman stop` stops it in reverse start
//!   order and vigil exits 0 well within the grace period;
//! - a crash-looping child makes the container exit 75;
//! - `podman run --restart on-failure:2` brings it back (twice, then gives up);
//! - 200 orphans land on vigil and are reaped: no zombie is left, all are counted;
//! - `vigil exec` as the entrypoint: exit status passed on, SIGTERM forwarded, PID 1;
//! - the static binary resolves `user = "nobody"` from /etc/passwd, and `vigil check`
//!   runs in the image;
//! - `systemd/vigil.service` as shipped under a real systemd (the host's, as PID 1 of a
//!   container built by `tests/helper/systemd-image.sh`): active on READY=1 with vigil's
//!   STATUS=, watchdog pings accepted, ordered `systemctl stop` with exit 0, exit 75
//!   restarted, exit 78 not.
//!
//! Without podman, runc or busybox, as a non-root user, or where `podman info` fails, the
//! test prints a loud SKIPPED line with the reason, except on CI (`CI` set), where it
//! fails: `.ci/run` installs them and runs as root.

#![allow(clippy::disallowed_methods)]

mod common;

/// Writes to the real stderr: libtest captures `eprintln!`, and a skip or a timing must
/// show in a passing run.
macro_rules! loud {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Events, TestDir, try_wait_for, wait_for, zombie_children};

/// Every `podman run` of these tests: runc (crun fails on hybrid cgroups), no network,
/// ulimits no higher than CI machines allow.
const RUN: &[&str] = &[
    "run",
    "--runtime",
    "runc",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1000:1000",
];

/// Deadline for one podman command or one wait (image pulls never happen: the image is
/// local; this only catches hangs).
const PODMAN_TIMEOUT: Duration = Duration::from_secs(60);

/// The output of a podman command: exit code, stdout, stderr.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `podman ARGS` with a deadline.
fn podman(args: &[&str]) -> Out {
    let mut cmd = Command::new("podman");
    cmd.args(args).stdin(Stdio::null());
    let (tx, rx) = mpsc::channel();
    let shown = format!("podman {}", args.join(" "));
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    let out = rx
        .recv_timeout(PODMAN_TIMEOUT)
        .unwrap_or_else(|_| panic!("`{shown}` did not finish within {PODMAN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `podman ARGS`, which must succeed; its stdout.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert_eq!(
        out.code,
        0,
        "podman {} failed:\n{}{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// A container of one scenario: removed (killed if need be) on drop.
struct Container {
    name: String,
}

impl Container {
    fn new(scenario: &str) -> Container {
        let name = format!("vigil-test-{}-{scenario}", std::process::id());
        let _ = podman(&["rm", "-f", "-t", "0", &name]);
        Container { name }
    }

    /// `podman run` with the common options, this container's name, `extra` options,
    /// the image, and `args`.
    fn run(&self, image: &str, extra: &[&str], args: &[&str]) -> Out {
        let mut all: Vec<&str> = RUN.to_vec();
        all.extend(["--name", &self.name]);
        all.extend(extra);
        all.push(image);
        all.extend(args);
        podman(&all)
    }

    /// vigil's log and the children's output (the container's stdout and stderr).
    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        out.stdout + &out.stderr
    }

    fn inspect(&self, format: &str) -> String {
        podman_ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_string()
    }

    fn exit_code(&self) -> i32 {
        self.inspect("{{.State.ExitCode}}").parse().unwrap()
    }

    fn is_running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// Waits until the container's log satisfies `pred`; the log.
    fn wait_logs(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        try_wait_for(PODMAN_TIMEOUT, || {
            let l = self.logs();
            pred(&l).then_some(l)
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}; log:\n{}", self.logs()))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// The image of this test run, removed on drop.
struct Image {
    tag: String,
    /// The static vigil in it.
    vigil: PathBuf,
}

impl Image {
    /// Builds the image with `packaging/build-image.sh`, the static binaries in their own
    /// target directory (a nested cargo must not wait for the lock `cargo test` holds).
    fn build() -> Image {
        let tag = format!("localhost/vigil-test:{}", std::process::id());
        let target = common::vigil()
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("container"))
            .expect("the target directory of the test build");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-image.sh"))
            .args(["--with-test-child", "--tag", &tag])
            .env("CARGO", env!("CARGO"))
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .output()
            .expect("run packaging/build-image.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "packaging/build-image.sh failed:\n{stderr}"
        );
        loud!(
            "container: image built in {:.1?}: {}",
            started.elapsed(),
            stderr.lines().last().unwrap_or_default()
        );
        let vigil = std::fs::read_dir(&target)
            .expect("the static build's target directory")
            .map(|e| e.unwrap().path().join("release/vigil"))
            .find(|p| p.is_file())
            .expect("the static vigil under target/container/TRIPLE/release");
        Image { tag, vigil }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "-f", &self.tag]);
    }
}

/// Whether podman (rootful) and runc are here and podman works; on CI anything else is a
/// failure.
fn tools_present() -> bool {
    let missing: Vec<&str> = ["podman", "runc", "busybox"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    let problem = if !missing.is_empty() {
        format!("{missing:?} not found (apt-get install podman runc busybox-static)")
    } else if !nix::unistd::geteuid().is_root() {
        "not root: these tests drive rootful podman (rootless needs subuids and other limits)"
            .to_string()
    } else {
        let info = podman(&["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        if info.code == 0 {
            return true;
        }
        format!("`podman info` fails: {}", info.stderr.trim())
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "tests/container.rs cannot run on CI: {problem}; .ci/run installs podman, runc and busybox-static and runs as root"
    );
    loud!(
        "\n*** SKIPPED tests/container.rs: {problem}; vigil was NOT tested as a container's PID 1 ***\n"
    );
    false
}

type Scenario = fn(&Image);

#[test]
fn vigil_as_container_pid1_with_podman_and_runc() {
    if !tools_present() {
        return;
    }
    let image = Image::build();
    let scenarios: &[(&str, Scenario)] = &[
        ("demo", demo_tree_starts_and_stops_in_order),
        ("crash", crash_loop_exits_75),
        ("restart", restart_on_failure_brings_it_back),
        ("orphans", orphans_are_reaped_never_left_zombies),
        ("exec", exec_as_the_entrypoint),
        ("static", static_binary_resolves_users_and_checks),
        ("systemd", unit_under_the_real_systemd),
    ];
    let started = Instant::now();
    let results: Vec<(&str, Duration, Result<(), String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|&(name, f)| {
                let image = &image;
                (
                    name,
                    s.spawn(move || {
                        let t = Instant::now();
                        let r = std::panic::catch_unwind(|| f(image)).map_err(|e| {
                            e.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default()
                        });
                        (t.elapsed(), r)
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let (t, r) = h.join().expect("scenario thread");
                (name, t, r)
            })
            .collect()
    });
    let mut failed = Vec::new();
    for (name, t, r) in &results {
        loud!(
            "container: {name}: {} in {t:.1?}",
            if r.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = r {
            failed.push(format!("--- {name} ---\n{e}"));
        }
    }
    loud!(
        "container: {} scenarios in {:.1?}",
        results.len(),
        started.elapsed()
    );
    drop(image);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A directory the container mounts at `/t` (trees, the children's events file).
fn mounted_dir() -> (TestDir, String) {
    let dir = TestDir::new();
    let volume = format!("{}:/t", dir.path().display());
    (dir, volume)
}

/// Lines of `log` that contain `needle`, in order: the child name of each `stopped` line.
fn stopped_children(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" stopped child="))
        .filter_map(|l| {
            l.split("child=")
                .nth(1)?
                .split(' ')
                .next()
                .map(str::to_string)
        })
        .collect()
}

fn demo_tree_starts_and_stops_in_order(image: &Image) {
    let image = image.tag.as_str();
    let c = Container::new("demo");
    let out = c.run(image, &["-d"], &[]);
    assert_eq!(out.code, 0, "podman run -d: {}", out.stderr);
    let log = c.wait_logs("the demo tree to start", |l| {
        l.contains("started child=flaky") && l.contains("worker-1: did some work")
    });
    assert!(log.contains("running as PID 1"), "{log}");
    assert!(log.contains("vigil starting pid=1 "), "{log}");

    let grace = 30;
    let t = Instant::now();
    podman_ok(&["stop", "-t", &grace.to_string(), &c.name]);
    let took = t.elapsed();
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
    assert!(
        took < Duration::from_secs(grace),
        "podman stop took {took:?}: vigil did not exit within the {grace}s grace period"
    );
    let log = c.logs();
    assert!(log.contains("worker-1: draining"), "{log}");
    assert!(log.contains("ticker: stopping"), "{log}");
    assert!(log.contains("tree stopped code=0"), "{log}");
    // Reverse start order. `flaky` may be between two runs at that moment (not running,
    // so not stopped); everything else stops last-started-first.
    let order: Vec<String> = stopped_children(&log)
        .into_iter()
        .filter(|n| n != "flaky")
        .collect();
    assert_eq!(order, ["worker-1", "queue", "ticker"], "{log}");
}

const CRASH_TREE: &str = r#"
intensity = 2
period = "10s"
children = ["crasher"]
[process.crasher]
command = ["/bin/sh", "-c", "echo crasher: failing; exit 3"]
backoff = "none"
"#;

fn crash_loop_exits_75(image: &Image) {
    let image = image.tag.as_str();
    let (dir, volume) = mounted_dir();
    dir.write("crash.toml", CRASH_TREE);
    let c = Container::new("crash");
    let out = c.run(image, &["-v", &volume], &["run", "/t/crash.toml"]);
    assert_eq!(out.code, 75, "{}{}", out.stdout, out.stderr);
    let log = c.logs();
    assert_eq!(log.matches("crasher: failing").count(), 3, "{log}");
    assert!(
        log.contains("root supervisor gave up: restart intensity exceeded"),
        "{log}"
    );
}

fn restart_on_failure_brings_it_back(image: &Image) {
    let image = image.tag.as_str();
    let (dir, volume) = mounted_dir();
    dir.write("crash.toml", CRASH_TREE);
    let c = Container::new("restart");
    let out = c.run(
        image,
        &["-d", "--restart", "on-failure:2", "-v", &volume],
        &["run", "/t/crash.toml"],
    );
    assert_eq!(out.code, 0, "podman run -d: {}", out.stderr);
    // The first run and two restarts, each ending with 75.
    wait_for("two restarts by podman", PODMAN_TIMEOUT, || {
        (c.inspect("{{.RestartCount}}") == "2" && !c.is_running()).then_some(())
    });
    assert_eq!(c.exit_code(), 75);
    let log = c.logs();
    assert_eq!(log.matches("vigil starting pid=1").count(), 3, "{log}");
}

fn orphans_are_reaped_never_left_zombies(image: &Image) {
    let image = image.tag.as_str();
    let (dir, volume) = mounted_dir();
    // The first 4 runs of `orph` each leave 50 orphans behind (exiting 20 ms after they
    // land on vigil) and exit 1; permanent, so it comes back. The 5th run makes no
    // orphans and stays: after that, nothing can be left but zombies vigil missed. (An
    // orphan still alive when its run exits dies with the run's process group, which
    // vigil kills: it is reaped all the same, but writes no ORPHAN_EXIT.)
    dir.write(
        "orphans.toml",
        r#"
intensity = 100
period = "10s"
children = ["orph"]
[process.orph]
command = ["/bin/sh", "-c", """
n=$(( $(cat /t/runs 2>/dev/null || echo 0) + 1 )); echo $n > /t/runs
if [ $n -le 4 ]; then
  exec /usr/bin/vigil-test-child --name orph --events /t/events \
    --orphans 50 --orphan-exit-after 20 --exit-after 100 --code 1
fi
exec /usr/bin/vigil-test-child --name last --events /t/events
"""]
backoff = { initial = "50ms", max = "50ms" }
"#,
    );
    let c = Container::new("orphans");
    let out = c.run(image, &["-d", "-v", &volume], &["run", "/t/orphans.toml"]);
    assert_eq!(out.code, 0, "podman run -d: {}", out.stderr);
    let events: PathBuf = dir.events();
    // 4 runs of 50 orphans each are over once the last run has started.
    dir.wait_events("the last run to start", PODMAN_TIMEOUT, |e| {
        !e.starts("last").is_empty()
    });
    // None is left a zombie under vigil (host view of the container's PID 1): its only
    // child is the last run.
    let vigil: i32 = c.inspect("{{.State.Pid}}").parse().unwrap();
    assert!(vigil > 1, "host pid of vigil: {vigil}");
    let clean = try_wait_for(PODMAN_TIMEOUT, || {
        (zombie_children(vigil).is_empty() && common::children_of(vigil).len() == 1).then_some(())
    });
    assert!(
        clean.is_some(),
        "left under vigil (pid {vigil}): zombies {:?}, children {:?}",
        zombie_children(vigil),
        common::children_of(vigil)
    );
    // Every orphan that exited by itself had been adopted by PID 1, which is vigil.
    let ev = Events::read(&events);
    let exits = ev.of("ORPHAN_EXIT", "orph");
    assert!(!exits.is_empty(), "{:?}", ev.lines());
    for e in exits {
        assert_eq!(e.args.get(1).map(String::as_str), Some("1"), "{e:?}");
    }
    podman_ok(&["stop", "-t", "20", &c.name]);
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
    let log = c.logs();
    let reaped: u64 = log
        .split("orphans_reaped=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no orphans_reaped in the log:\n{log}"));
    assert_eq!(reaped, 200, "orphans reaped by vigil:\n{log}");
}

fn exec_as_the_entrypoint(image: &Image) {
    let image = image.tag.as_str();
    let exec = r#"["/usr/bin/vigil","exec","--"]"#;
    // The command's exit status is the container's.
    let c = Container::new("exec-code");
    let out = c.run(image, &["--entrypoint", exec], &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    drop(c);

    // `podman stop`: SIGTERM reaches the child; its orphans are reaped; exit 0.
    let (dir, volume) = mounted_dir();
    let c = Container::new("exec-stop");
    let out = c.run(
        image,
        &["-d", "-v", &volume, "--entrypoint", exec],
        &[
            "/usr/bin/vigil-test-child",
            "--name",
            "main",
            "--events",
            "/t/events",
            "--on-term",
            "exit:0",
            "--orphans",
            "5",
        ],
    );
    assert_eq!(out.code, 0, "podman run -d: {}", out.stderr);
    let ev = dir.wait_events(
        "main to start and its orphans to exit",
        PODMAN_TIMEOUT,
        |e| !e.starts("main").is_empty() && e.count("ORPHAN_EXIT", "main") == 5,
    );
    let start = ev.first("START", "main").unwrap();
    // START <name> <pid> <pgid> <ppid>: the child's parent is PID 1, i.e. vigil exec.
    assert_eq!(
        start.args.get(1).map(String::as_str),
        Some("1"),
        "{start:?}"
    );
    podman_ok(&["stop", "-t", "20", &c.name]);
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
    let ev = Events::read(&dir.events());
    assert_eq!(ev.signals("main"), ["SIGTERM"], "{:?}", ev.lines());
}

fn static_binary_resolves_users_and_checks(image: &Image) {
    let image = image.tag.as_str();
    let (dir, volume) = mounted_dir();
    dir.write(
        "user.toml",
        r#"
auto_shutdown = "any_significant"
children = ["who"]
[process.who]
command = ["/bin/sh", "-c", "echo who: $(id -u):$(id -g) HOME=$HOME"]
user = "nobody"
restart = "temporary"
significant = true
"#,
    );
    let c = Container::new("static");
    let out = c.run(image, &["-v", &volume], &["run", "/t/user.toml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("who: 65534:65534 HOME=/nonexistent"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    drop(c);
    let c = Container::new("check");
    let out = c.run(image, &[], &["check", "/etc/vigil/vigil.toml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("flaky"), "{}", out.stdout);
}

/// The unit as shipped under a real systemd (the host's, as PID 1 of a container made by
/// `tests/helper/systemd-image.sh`): `Type=notify` becomes active with vigil's status,
/// watchdog pings are accepted, `systemctl stop` stops the tree in order with exit 0, a
/// crash loop (75) is restarted, an invalid tree (78) is not.
fn unit_under_the_real_systemd(image: &Image) {
    let dir = TestDir::new();
    let tree = dir.write(
        "vigil.toml",
        r#"
shutdown_timeout = "20s"
children = ["first", "second"]
[process.first]
command = ["/bin/sleep", "1000"]
[process.second]
command = ["/bin/sh", "-c", "trap 'echo second: draining; sleep 1; exit 0' TERM; while :; do sleep 1 & wait $!; done"]
"#,
    );
    let tag = format!("localhost/vigil-systemd-test:{}", std::process::id());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = podman(&["rmi", "-f", &self.0]);
        }
    }
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helper/systemd-image.sh"))
        .arg(&tag)
        .arg(&image.vigil)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/vigil.service"))
        .arg(&tree)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/helper/systemd-image.sh");
    assert!(
        out.status.success(),
        "systemd-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _image = Remove(tag.clone());
    let c = Container::new("systemd");
    let out = c.run(&tag, &["-d", "--systemd=always"], &[]);
    assert_eq!(out.code, 0, "podman run -d: {}", out.stderr);
    let sh = |cmd: &str| podman(&["exec", &c.name, "sh", "-c", cmd]);
    let show = |prop: &str| -> String {
        sh(&format!("systemctl show vigil -p {prop} --value"))
            .stdout
            .trim()
            .to_string()
    };
    let journal = || sh("journalctl -u vigil --no-pager -o cat").stdout;
    let wait_prop = |prop: &str, want: &str| {
        try_wait_for(PODMAN_TIMEOUT, || (show(prop) == want).then_some(())).unwrap_or_else(|| {
            panic!(
                "vigil.service {prop} is {:?}, not {want:?}; journal:\n{}",
                show(prop),
                journal()
            )
        })
    };

    // Active once vigil sent READY=1, with its STATUS= line.
    wait_prop("ActiveState", "active");
    assert_eq!(show("Type"), "notify");
    assert_eq!(
        show("StatusText"),
        "2 of 2 processes running",
        "{}",
        journal()
    );
    assert_eq!(show("WatchdogUSec"), "30s");

    // systemd accepts the pings: with WatchdogSec=2s, vigil pings every second and the
    // last-ping timestamp moves. (Restarting also stops the first run in order.)
    sh("mkdir -p /etc/systemd/system/vigil.service.d && \
        printf '[Service]\\nWatchdogSec=2s\\n' > /etc/systemd/system/vigil.service.d/wd.conf && \
        systemctl daemon-reload && systemctl restart vigil");
    wait_prop("ActiveState", "active");
    let first = show("WatchdogTimestampMonotonic");
    let mut seen = vec![first.clone()];
    wait_for(
        "two watchdog pings accepted by systemd",
        PODMAN_TIMEOUT,
        || {
            let t = show("WatchdogTimestampMonotonic");
            if !seen.contains(&t) {
                seen.push(t);
            }
            (seen.len() >= 3).then_some(())
        },
    );
    let log = journal();
    let stops: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" stopped child="))
        .collect();
    assert!(
        stops.len() >= 2 && stops[0].contains("child=second") && stops[1].contains("child=first"),
        "the restart stopped the tree in reverse order:\n{log}"
    );
    assert!(log.contains("second: draining"), "{log}");

    // systemctl stop: SIGTERM to vigil alone (KillMode=mixed), ordered stop, exit 0.
    sh("systemctl stop vigil");
    wait_prop("ActiveState", "inactive");
    assert_eq!(show("Result"), "success", "{}", journal());
    assert_eq!(show("ExecMainStatus"), "0");
    assert!(
        journal().matches("vigil exiting code=0").count() >= 2,
        "{}",
        journal()
    );

    // A crash loop: vigil gives up with 75, systemd restarts the unit.
    sh(
        "printf 'intensity = 1\\nchildren = [\"c\"]\\n[process.c]\\ncommand = [\"/bin/sh\", \"-c\", \"exit 3\"]\\nbackoff = \"none\"\\n' > /etc/vigil/vigil.toml && systemctl start vigil",
    );
    wait_for(
        "systemd to restart the unit after exit 75",
        PODMAN_TIMEOUT,
        || (show("NRestarts").parse::<u32>().unwrap_or(0) >= 1).then_some(()),
    );
    assert_eq!(show("ExecMainStatus"), "75", "{}", journal());

    // An invalid tree: 78, and the unit stays failed (a scheduled restart would show as
    // the auto-restart state, never as failed).
    sh(
        "systemctl stop vigil; echo 'bogus = 1' > /etc/vigil/vigil.toml; \
        systemctl reset-failed vigil; systemctl start vigil",
    );
    wait_prop("SubState", "failed");
    assert_eq!(show("ExecMainStatus"), "78", "{}", journal());
    assert_eq!(show("NRestarts"), "0", "{}", journal());
}
