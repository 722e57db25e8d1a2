//! `systemd/vigil.service` as shipped: `systemd-analyze verify` accepts it without a
//! single warning (with `ExecStart=` pointed at the vigil built for the tests, since
//! verify insists the binary exists), and it keeps the settings vigil relies on. The
//! notify protocol itself is tested in `tests/notify.rs`.

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

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../systemd/vigil.service");
const SHIPPED_EXEC: &str = "/usr/local/bin/vigil";

/// `systemd-analyze`, or a loud skip outside CI (CI installs it: `.ci/run`).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-analyze is missing on CI: .ci/run must install the `systemd` package"
    );
    loud!(
        "\n*** SKIPPED: systemd-analyze not found (apt-get install systemd); \
         systemd/vigil.service was not verified ***\n"
    );
    None
}

#[test]
fn unit_passes_systemd_analyze_verify_without_warnings() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    assert!(UNIT.contains(&format!("ExecStart={SHIPPED_EXEC} run ")));
    let dir = common::TestDir::new();
    let unit = UNIT.replace(SHIPPED_EXEC, &common::vigil().display().to_string());
    let path = dir.write("vigil.service", &unit);
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stdout}{stderr}"
    );
    // verify exits 0 on unknown keys and unparsable values: only a silent run is clean.
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "systemd-analyze verify warned about {}:\n{stdout}{stderr}",
        path.display()
    );
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above can fail: a misspelt value is reported on stderr.
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = common::TestDir::new();
    let unit = UNIT
        .replace(SHIPPED_EXEC, &common::vigil().display().to_string())
        .replace("KillMode=mixed", "KillMode=mixd");
    let path = dir.write("broken.service", &unit);
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("kill mode"));
}

/// The `[Service]` settings vigil's design depends on (systemd/README.md explains each).
#[test]
fn unit_keeps_the_settings_vigil_relies_on() {
    let get = |key: &str| -> String {
        let prefix = format!("{key}=");
        let values: Vec<&str> = UNIT
            .lines()
            .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .collect();
        assert_eq!(values.len(), 1, "{key}= set once in the unit: {values:?}");
        values[0].to_string()
    };
    assert_eq!(get("Type"), "notify");
    assert_eq!(get("NotifyAccess"), "main");
    assert_eq!(get("KillMode"), "mixed");
    assert_eq!(get("Restart"), "on-failure");
    assert_eq!(get("OOMPolicy"), "continue");
    assert_eq!(get("RestartPreventExitStatus"), "78");
    let secs = |v: String| -> u64 {
        humantime::parse_duration(&v)
            .unwrap_or_else(|e| panic!("{v}: {e}"))
            .as_secs()
    };
    let watchdog = secs(get("WatchdogSec"));
    assert!(watchdog >= 10, "WatchdogSec={watchdog}s leaves no slack");
    // Above vigil's own stop budget: the shutdown_timeout the unit's comment recommends,
    // which already includes the sweep of leftover descendants.
    let stop = secs(get("TimeoutStopSec"));
    let recommended = UNIT
        .split("shutdown_timeout = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|v| secs(v.to_string()))
        .expect("the unit recommends a shutdown_timeout");
    assert!(
        stop >= recommended + 10,
        "TimeoutStopSec={stop}s is not above the recommended shutdown_timeout {recommended}s"
    );
    // Nothing that would stop vigil from managing its children.
    for forbidden in [
        "CapabilityBoundingSet",
        "PrivateUsers",
        "ProtectProc",
        "SystemCallFilter",
        "KillMode=process",
        "KillMode=none",
    ] {
        assert!(!UNIT.contains(forbidden), "{forbidden} in the unit");
    }
    assert!(Path::new("systemd/README.md").exists());
}
