//! `vigil check` against fixtures: every invalid config gives exit 78 and exactly the
//! messages in its `.stderr` file; every valid one exits 0 with the tree in `.stdout`
//! (and its warnings in `.stderr`). The shipped example trees must pass too.
//!
//! `VIGIL_BLESS=1 cargo test --test config_check` rewrites the expected files; review
//! the diff: these messages are part of the interface.

#![allow(clippy::disallowed_methods)] // Drives the binary from outside.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vigil() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// Runs `vigil check` from the crate root with a relative path, so messages are stable.
fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(vigil())
        .arg("check")
        .arg(path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run vigil check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.strip_prefix(root).expect("under root").to_path_buf())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

/// Compares `actual` with the file next to `toml` with extension `ext` (or blesses it).
fn expect_file(toml: &Path, ext: &str, actual: &str) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(toml.with_extension(ext));
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(&path, actual).expect("bless");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{}: output differs\n--- expected ({})\n{expected}--- actual\n{actual}",
            toml.display(),
            path.display()
        ))
    }
}

#[test]
fn invalid_configs_exit_78_with_exact_messages() {
    let mut failures = Vec::new();
    for toml in fixtures("tests/fixtures/invalid") {
        let (code, stdout, stderr) = check(&toml);
        if code != 78 {
            failures.push(format!(
                "{}: exit {code}, expected 78\n{stderr}",
                toml.display()
            ));
        }
        if !stdout.is_empty() {
            failures.push(format!(
                "{}: printed a tree for an invalid config",
                toml.display()
            ));
        }
        if !stderr.contains(&format!("error: {}:", toml.display())) {
            failures.push(format!("{}: no located error:\n{stderr}", toml.display()));
        }
        if let Err(e) = expect_file(&toml, "stderr", &stderr) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_configs_exit_0_and_print_the_tree() {
    let mut failures = Vec::new();
    for toml in fixtures("tests/fixtures/valid") {
        let (code, stdout, stderr) = check(&toml);
        if code != 0 {
            failures.push(format!("{}: exit {code}\n{stderr}", toml.display()));
        }
        for (ext, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            if let Err(e) = expect_file(&toml, ext, text) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_trees_are_valid_without_warnings() {
    let mut trees = fixtures("config");
    trees.extend(fixtures("config/examples"));
    for toml in trees {
        let (code, stdout, stderr) = check(&toml);
        assert_eq!(code, 0, "{}:\n{stderr}", toml.display());
        assert!(stderr.is_empty(), "{}: warnings:\n{stderr}", toml.display());
        assert!(stdout.starts_with("root (supervisor)\n"), "{stdout}");
    }
}

#[test]
fn unreadable_file_is_a_config_error() {
    let (code, stdout, stderr) = check(Path::new("tests/fixtures/does-not-exist.toml"));
    assert_eq!(code, 78);
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with(
            "error: tests/fixtures/does-not-exist.toml: cannot read the configuration: "
        ),
        "{stderr}"
    );
}

/// OTP case A.1: the effective defaults, as `vigil check` shows them (Elixir's 3 in 5 s
/// rather than OTP's 1 in 5 s; see docs/config.md).
#[test]
fn defaults_are_elixirs() {
    let (code, stdout, stderr) = check(Path::new("tests/fixtures/valid/defaults.toml"));
    assert_eq!(code, 0, "{stderr}");
    let expected = "\
root (supervisor)
│   strategy: one_for_one, intensity: 3 in 5s, auto_shutdown: never
│   restart: permanent, shutdown: infinity, significant: false
├── a (process)
│       command: [\"a\"]
│       restart: permanent, shutdown: 5s, significant: false
│       stop_signal: SIGTERM, success_exit_codes: [0], leftovers: stop
│       backoff: 100ms x2 up to 5s, jitter 10%, reset after 10s up
│       cwd: (inherited), user: (inherited), group: (inherited)
│       env: (inherited, nothing added)
│       output: inherit
└── s (supervisor)
        strategy: one_for_one, intensity: 3 in 5s, auto_shutdown: never
        restart: permanent, shutdown: infinity, significant: false
shutdown_timeout: none (per-child shutdown only)
";
    assert_eq!(stdout, expected);
}

/// Review R2: a duration above the maximum (365 days) is refused by `vigil check`, with
/// the key and its line:col, for every duration key; before, `shutdown = "300000000000y"`
/// passed and `vigil run` then panicked ("overflow when adding duration to instant").
#[test]
fn durations_longer_than_a_year_are_refused() {
    let toml = Path::new("tests/fixtures/invalid/duration-too-long.toml");
    let (code, stdout, stderr) = check(toml);
    assert_eq!(code, 78, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let at = |line_col: &str, key: &str, value: &str| {
        format!(
            "error: {}:{line_col}: {key}: duration \"{value}\" is longer than the maximum of 365d\n",
            toml.display()
        )
    };
    for (line_col, key, value) in [
        ("3:20", "shutdown_timeout", "300000000000y"),
        ("4:10", "period", "366d"),
        ("9:12", "supervisor.s.shutdown", "1y"),
        ("14:12", "process.db.shutdown", "300000000000y"),
        ("15:23", "process.db.backoff.initial", "8761h"),
        ("15:38", "process.db.backoff.max", "365d 1s"),
        ("15:63", "process.db.backoff.reset_after", "584942417355y"),
        ("20:43", "process.web.ready.timeout", "400d"),
        ("20:62", "process.web.ready.interval", "52w 2d"),
        ("21:58", "process.web.health.timeout", "9999999h"),
    ] {
        assert!(
            stderr.contains(&at(line_col, key, value)),
            "{key} at {line_col} not refused:\n{stderr}"
        );
    }
    // The keys that take "infinity" offer it; the others do not.
    assert_eq!(
        stderr.matches("or \"infinity\" to wait").count(),
        2,
        "{stderr}"
    );
    // Exactly 365d is allowed, and "infinity" still is where it was.
    for (key, line) in [("supervisor.s.period", 10), ("process.web.shutdown", 19)] {
        assert!(
            !stderr.contains(&format!(".toml:{line}:")),
            "{key}: {stderr}"
        );
    }
    assert!(
        stderr.ends_with(": 10 errors; nothing was started\n"),
        "{stderr}"
    );
}

/// OTP cases A.2 to A.4: an invalid config starts nothing under `vigil run` either.
#[test]
fn run_with_an_invalid_config_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("started");
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "children = [\"a\", \"b\"]\n\n[process.a]\ncommand = [\"/bin/sh\", \"-c\", \"echo > {}\"]\n\n\
             [process.b]\ncommand = [\"x\"]\nrestart = \"permanent\"\nsignificant = true\n",
            marker.display()
        ),
    )
    .expect("write config");
    let out = Command::new(vigil())
        .arg("run")
        .arg(&config)
        .output()
        .expect("run vigil run");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("process.b.significant: significant = true on a permanent child"),
        "{stderr}"
    );
    assert!(!marker.exists(), "a child was started");
}

/// The tree shown in the README is a valid config (documentation that cannot rot).
#[test]
fn the_readme_example_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find("```toml\n")
        .expect("a toml block in the README")
        + 8;
    let len = readme[start..].find("```").expect("closed toml block");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("readme.toml");
    std::fs::write(&path, &readme[start..start + len]).expect("write");
    let out = Command::new(vigil())
        .arg("check")
        .arg(&path)
        .output()
        .expect("run vigil check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "no warnings expected: {stderr}");
}

/// docs/config.md opens with a config and the `vigil check` output for it: the output
/// shown is the real one (documentation that cannot rot).
#[test]
fn the_reference_example_shows_the_real_output() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md"))
        .expect("read docs/config.md");
    let block = |from: usize, fence: &str| {
        let start = doc[from..].find(fence).expect("a fenced block") + from + fence.len();
        let len = doc[start..].find("```").expect("closed block");
        (&doc[start..start + len], start + len)
    };
    let (config, end) = block(0, "```toml\n");
    let (expected, _) = block(end, "```text\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vigil.toml");
    std::fs::write(&path, config).expect("write");
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, expected);
}

/// Every key the loader reads (its exported table) is documented in docs/config.md, as
/// `` `key` `` or inside a table header such as `` `[control] socket` ``.
#[test]
fn every_key_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md"))
        .expect("read docs/config.md");
    let mut missing = Vec::new();
    for (table, keys) in vigil::config::KEYS {
        for key in *keys {
            let forms = [format!("`{key}`"), format!("`[{key}"), format!("] {key}`")];
            if !forms.iter().any(|f| doc.contains(f.as_str())) {
                missing.push(format!("{table}: {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}
