//! The privileges a child starts with, with real processes, as root (issue 13, finding 9):
//! `group` without `user` replaces vigil's supplementary groups; a numeric `user` without
//! a passwd entry never inherits vigil's `HOME`, `USER` and `LOGNAME`;
//! `no_new_privileges` sets the bit; `capabilities` limits the bounding set (and the
//! inheritable and ambient sets, through which a root child would get the rest back).
//!
//! vigil is started through `setpriv` with supplementary groups and an inheritable
//! capability of its own, and with root's login variables, so that each test sees
//! exactly what leaks when vigil does not clear it. The children report with
//! `vigil-test-child --report-ids --report-login` (`IDS` and `LOGIN` events).

#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// vigil's own supplementary groups in these tests (none of them may reach a child).
const VIGIL_GROUPS: &str = "4242,4343";
/// `CAP_SYS_ADMIN` (21), in vigil's inheritable set in these tests.
const CAP_SYS_ADMIN: u64 = 1 << 21;
/// `CAP_NET_BIND_SERVICE` (10).
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

/// Whether the test can run: root and `setpriv`. Otherwise skipped (failed on CI).
fn can_run(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip_or_fail_on_ci(
            test,
            "the tests do not run as root",
            "dropping groups, capabilities and user ids needs root",
            "run the tests as root (as .ci/run does)",
        );
        return false;
    }
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output();
    if !setpriv.is_ok_and(|o| o.status.success()) {
        skip_or_fail_on_ci(
            test,
            "`setpriv` (util-linux) is not installed",
            "vigil is started through it with supplementary groups and capabilities",
            "install util-linux",
        );
        return false;
    }
    true
}

/// A test directory every user can enter and write events to.
fn open_dir() -> TestDir {
    let dir = TestDir::new();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(dir.events(), "").unwrap();
    std::fs::set_permissions(dir.events(), PermissionsExt::from_mode(0o666)).unwrap();
    dir
}

/// `vigil run` of `toml` in `dir`, started with [`VIGIL_GROUPS`] as its supplementary
/// groups, `CAP_SYS_ADMIN` inheritable, and root's `HOME`, `USER` and `LOGNAME`.
fn run_privileged(dir: &TestDir, toml: &str) -> Daemon {
    let cfg = dir.write("vigil.toml", toml);
    let d = vigil_in(dir)
        .program("setpriv")
        .args(["--groups", VIGIL_GROUPS, "--inh-caps", "+sys_admin", "--"])
        .arg(vigil())
        .arg("run")
        .arg(cfg)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .spawn();
    // The premise: vigil itself has what must not leak.
    let status = d.wait_for("vigil's own status", TIMEOUT, || {
        let s = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).ok()?;
        let exe = std::fs::read_link(format!("/proc/{}/exe", d.pid())).ok()?;
        (exe.file_name() == Some("vigil".as_ref())).then_some(s)
    });
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("Groups:"), "4242 4343", "{status}");
    assert_eq!(hex(&field("CapInh:")), CAP_SYS_ADMIN, "{status}");
    d
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("a hex mask: {s:?}"))
}

/// The `IDS` report of `name` as `key -> value`.
fn ids(ev: &Events, name: &str) -> std::collections::HashMap<String, String> {
    report(ev, "IDS", name)
}

fn report(ev: &Events, kind: &str, name: &str) -> std::collections::HashMap<String, String> {
    let e = ev
        .first(kind, name)
        .unwrap_or_else(|| panic!("no {kind} for {name}"));
    e.args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), String::new()),
        })
        .collect()
}

fn stop(mut d: Daemon) {
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", log(&d));
}

/// `group` alone: the child's supplementary groups are exactly that group, not vigil's.
#[test]
fn group_alone_replaces_vigils_supplementary_groups() {
    if !can_run("group_alone_replaces_vigils_supplementary_groups") {
        return;
    }
    let dir = open_dir();
    // A named group too: gid 65534's name (`nogroup` on Debian, `nobody` elsewhere).
    let named = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .ok()
        .flatten()
        .map(|g| g.name);
    let mut toml = format!(
        "children = [\"g\"{}]\n{}",
        if named.is_some() { ", \"n\"" } else { "" },
        process(
            &dir,
            "g",
            &["--report-ids", "--on-term", "exit:0"],
            "group = 4444"
        ),
    );
    if let Some(name) = &named {
        toml += &process(
            &dir,
            "n",
            &["--report-ids", "--on-term", "exit:0"],
            &format!("group = {}", toml_str(name)),
        );
    }
    let d = run_privileged(&dir, &toml);
    let ev = dir.wait_events("IDS", TIMEOUT, |e| {
        e.count("IDS", "g") == 1 && (named.is_none() || e.count("IDS", "n") == 1)
    });
    let g = ids(&ev, "g");
    assert_eq!(g["uid"], "0", "{g:?}");
    assert_eq!(g["gid"], "4444", "{g:?}");
    assert_eq!(
        g["groups"], "4444",
        "exactly the group, none of vigil's: {g:?}"
    );
    if named.is_some() {
        let n = ids(&ev, "n");
        assert_eq!(n["gid"], "65534", "{n:?}");
        assert_eq!(n["groups"], "65534", "{n:?}");
    }
    stop(d);
}

/// A numeric `user` without a passwd entry: `USER` and `LOGNAME` are the uid and `HOME`
/// is `/`, never vigil's root values; a process's own `env` still wins.
#[test]
fn a_uid_without_an_entry_never_gets_roots_login_variables() {
    if !can_run("a_uid_without_an_entry_never_gets_roots_login_variables") {
        return;
    }
    let uid = 12345;
    assert!(
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .is_none(),
        "the test needs uid {uid} without a passwd entry"
    );
    let dir = open_dir();
    let toml = format!(
        "children = [\"u\", \"e\"]\n{}{}",
        process(
            &dir,
            "u",
            &["--report-ids", "--report-login", "--on-term", "exit:0"],
            "user = \"12345\""
        ),
        process(
            &dir,
            "e",
            &["--report-login", "--on-term", "exit:0"],
            "user = 12345\nenv = { HOME = \"/srv/e\" }"
        ),
    );
    let d = run_privileged(&dir, &toml);
    let ev = dir.wait_events("LOGIN", TIMEOUT, |e| {
        e.count("LOGIN", "u") == 1 && e.count("LOGIN", "e") == 1
    });
    let u = report(&ev, "LOGIN", "u");
    assert_eq!(u["HOME"], "/", "{u:?}");
    assert_eq!(u["USER"], "12345", "{u:?}");
    assert_eq!(u["LOGNAME"], "12345", "{u:?}");
    let i = ids(&ev, "u");
    assert_eq!(i["uid"], "12345", "{i:?}");
    assert_eq!(i["groups"], "", "no entry, no supplementary groups: {i:?}");
    let e = report(&ev, "LOGIN", "e");
    assert_eq!(e["HOME"], "/srv/e", "the process's env wins: {e:?}");
    assert_eq!(e["USER"], "12345", "{e:?}");
    stop(d);
}

/// `no_new_privileges = true` sets the bit; without it the child has vigil's (0).
#[test]
fn no_new_privileges_sets_the_bit() {
    if !can_run("no_new_privileges_sets_the_bit") {
        return;
    }
    let dir = open_dir();
    let toml = format!(
        "children = [\"on\", \"off\", \"nobody\"]\n{}{}{}",
        process(
            &dir,
            "on",
            &["--report-ids", "--on-term", "exit:0"],
            "no_new_privileges = true"
        ),
        process(&dir, "off", &["--report-ids", "--on-term", "exit:0"], ""),
        process(
            &dir,
            "nobody",
            &["--report-ids", "--on-term", "exit:0"],
            "no_new_privileges = true\nuser = 65534"
        ),
    );
    let d = run_privileged(&dir, &toml);
    let ev = dir.wait_events("IDS", TIMEOUT, |e| {
        ["on", "off", "nobody"]
            .iter()
            .all(|n| e.count("IDS", n) == 1)
    });
    assert_eq!(ids(&ev, "on")["nnp"], "1", "{:?}", ids(&ev, "on"));
    assert_eq!(ids(&ev, "off")["nnp"], "0", "{:?}", ids(&ev, "off"));
    let nobody = ids(&ev, "nobody");
    assert_eq!(
        (nobody["uid"].as_str(), nobody["nnp"].as_str()),
        ("65534", "1")
    );
    stop(d);
}

/// `capabilities` is what the child keeps: its bounding set has only those bits, and a
/// child that stays root gets no more (vigil's inheritable `CAP_SYS_ADMIN` would give it
/// back through exec); `[]` keeps none, also for a child that switches user. Without the
/// key the child has vigil's bounding set.
#[test]
fn capabilities_limit_what_the_child_keeps() {
    if !can_run("capabilities_limit_what_the_child_keeps") {
        return;
    }
    let dir = open_dir();
    let toml = format!(
        "children = [\"bind\", \"none\", \"all\"]\n{}{}{}",
        process(
            &dir,
            "bind",
            &["--report-ids", "--on-term", "exit:0"],
            "capabilities = [\"NET_BIND_SERVICE\"]"
        ),
        process(
            &dir,
            "none",
            &["--report-ids", "--on-term", "exit:0"],
            "capabilities = []\nuser = 65534"
        ),
        process(&dir, "all", &["--report-ids", "--on-term", "exit:0"], ""),
    );
    let d = run_privileged(&dir, &toml);
    let ev = dir.wait_events("IDS", TIMEOUT, |e| {
        ["bind", "none", "all"]
            .iter()
            .all(|n| e.count("IDS", n) == 1)
    });
    let bind = ids(&ev, "bind");
    assert_eq!(hex(&bind["capbnd"]), CAP_NET_BIND_SERVICE, "{bind:?}");
    assert_eq!(
        hex(&bind["capeff"]),
        CAP_NET_BIND_SERVICE,
        "root keeps only it: {bind:?}"
    );
    assert_eq!(hex(&bind["capinh"]), 0, "{bind:?}");
    assert_eq!(hex(&bind["capamb"]), 0, "{bind:?}");
    let none = ids(&ev, "none");
    assert_eq!(none["uid"], "65534", "{none:?}");
    assert_eq!(hex(&none["capbnd"]), 0, "{none:?}");
    assert_eq!(hex(&none["capinh"]), 0, "{none:?}");
    let all = ids(&ev, "all");
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| hex(v.trim()))
        .unwrap();
    assert_eq!(
        hex(&all["capbnd"]),
        own_bnd,
        "without the key, vigil's: {all:?}"
    );
    stop(d);
}

/// A vigil without `CAP_SETPCAP` (not root) refuses to start a process whose
/// `capabilities` it cannot enforce, with a line saying why, instead of a bare EPERM.
#[test]
fn capabilities_without_cap_setpcap_are_refused_with_a_reason() {
    if !can_run("capabilities_without_cap_setpcap_are_refused_with_a_reason") {
        return;
    }
    let dir = open_dir();
    let toml = format!(
        "children = [\"c\"]\n[control]\nenabled = false\n{}",
        process(
            &dir,
            "c",
            &["--on-term", "exit:0"],
            "capabilities = [\"CAP_CHOWN\"]"
        ),
    );
    let cfg = dir.write("vigil.toml", &toml);
    std::fs::set_permissions(&cfg, PermissionsExt::from_mode(0o644)).unwrap();
    let mut d = vigil_in(&dir)
        .program("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(vigil())
        .arg("run")
        .arg(cfg)
        .env_remove("VIGIL_SOCKET")
        .spawn();
    let code = d.wait_exit(TIMEOUT);
    let err = log(&d);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("cannot limit the capabilities to [CAP_CHOWN]") && err.contains("CAP_SETPCAP"),
        "{err}"
    );
    assert_eq!(dir.read_events().count("START", "c"), 0, "nothing started");
}
