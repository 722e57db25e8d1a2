//! Property-based fuzzing of the config parser and validator on the stable toolchain
//! (the coverage-guided fuzzer is `fuzz/`, see RELIABILITY.md).
//!
//! Generates TOML documents shaped like vigil configs: tables `[process.X]`,
//! `[supervisor.X]`, their sub-tables and `[control]`/`[http]`, with known and random
//! keys, values of every TOML type (odd durations, signal names and numbers, huge
//! integers, floats, unicode and control characters, deep nesting, inline tables, arrays
//! of names that may reference each other in cycles), and mutates the valid fixtures
//! line by line and byte by byte. For each input, `vigil::config::parse`:
//!
//! - never panics;
//! - rejects with at least one error, each with a 1-based line:col and a key path
//!   (only TOML syntax errors have no key path);
//! - for a sample, `vigil check` on the same text exits 78 (or 0 when accepted) and
//!   every error line reads `error: FILE:L:C: ...`.
//!
//! The case counts are small enough for the default `cargo test` (a few seconds);
//! `PROPTEST_CASES=100000 cargo test --release --test config_fuzz` runs a long version.

#![allow(clippy::disallowed_methods)] // Runs `vigil check` from outside.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Keys to draw from: every key the loader reads (its exported table, so a new key is
/// fuzzed without a second list to update), a misspelt one, a non-ASCII one and an empty
/// one.
fn keys() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, keys) in vigil::config::KEYS {
        for k in *keys {
            if !out.contains(k) {
                out.push(k);
            }
        }
    }
    out.extend(["restrat", "ümlaut", ""]);
    out
}

const WORDS: &[&str] = &[
    "permanent",
    "transient",
    "temporary",
    "one_for_one",
    "one_for_all",
    "rest_for_one",
    "never",
    "any_significant",
    "all_significant",
    "brutal_kill",
    "infinity",
    "stop",
    "keep",
    "none",
    "exponential",
    "SIGTERM",
    "TERM",
    "sigkill",
    "SIGSTOP",
    "SIGRTMIN+3",
    "SIGRTMAX-1",
    "SIGRTMIN+99",
    "9",
    "0",
    "64",
    "65",
    "5s",
    "0s",
    "100ms",
    "1m 30s",
    "1h",
    "1d",
    "365d",
    "365d 1s",
    "1y",
    "300000000000y",
    "99999999999999999999s",
    "18446744073709551615ms",
    "5",
    "-5s",
    "5 s",
    "1e3s",
    "soon",
    "127.0.0.1:0",
    "localhost:99999",
    "[::1]:80",
    "http://127.0.0.1:1/health",
    "/bin/true",
    "/tmp/x",
    "root",
    "nobody",
    "4294967295",
    "web",
    "db",
    "root",
    "a",
    "b",
    "日本",
    "e\u{301}",
    "\u{0}",
    "\u{7f}",
    "line\nbreak",
    "tab\there",
    "quote\"d",
    "back\\slash",
    "",
];

const NAMES: &[&str] = &[
    "web", "db", "a", "b", "root", "日本", "x-y", "_", "1", "w.e",
];

/// A TOML value as text.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(WORDS).prop_map(toml_string),
        any::<String>().prop_map(|s| toml_string(&s)),
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(
            &[
                "0",
                "-1",
                "1",
                "255",
                "256",
                "3",
                "9223372036854775807",
                "-9223372036854775808",
                "0x7fffffff",
                "0o777",
                "1_000",
            ][..]
        )
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| {
            if f.is_finite() {
                format!("{f:?}")
            } else if f.is_nan() {
                "nan".into()
            } else if f > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(prop::sample::select(NAMES), 0..5).prop_map(|v| format!(
                "[{}]",
                v.iter()
                    .map(|s| toml_string(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| {
                let parts: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", parts.join(", "))
            }),
        ]
    })
}

/// A key as written in TOML (bare when possible, quoted otherwise).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(keys()).prop_map(toml_key),
        1 => "[a-zA-Z_é日-]{0,12}".prop_map(|s| toml_key(&s)),
    ]
}

/// A table header.
fn header() -> impl Strategy<Value = String> {
    let name = prop::sample::select(NAMES).prop_map(toml_key);
    prop_oneof![
        Just(String::new()),
        name.clone().prop_map(|n| format!("[process.{n}]")),
        name.clone().prop_map(|n| format!("[supervisor.{n}]")),
        (
            name.clone(),
            prop::sample::select(&["ready", "health", "backoff", "env"][..])
        )
            .prop_map(|(n, sub)| format!("[process.{n}.{sub}]")),
        name.clone().prop_map(|n| format!("[[process.{n}]]")),
        prop::sample::select(
            &[
                "[control]",
                "[http]",
                "[process]",
                "[supervisor]",
                "[x.y.z]"
            ][..]
        )
        .prop_map(str::to_string),
        name.prop_map(|n| format!("[{n}]")),
    ]
}

/// A whole document: a top-level part and tables, each a list of `key = value` lines.
fn document() -> impl Strategy<Value = String> {
    let lines = prop::collection::vec((key(), value()), 0..8);
    prop::collection::vec((header(), lines), 1..7).prop_map(|tables| {
        let mut out = String::new();
        for (header, lines) in tables {
            out.push_str(&header);
            out.push('\n');
            for (k, v) in lines {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    })
}

/// A line-level or byte-level edit of a text.
#[derive(Clone, Debug)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceValue(usize, String),
    InsertLine(usize, String),
    DeleteChar(usize),
    InsertChar(usize, char),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<usize>();
    prop_oneof![
        i.prop_map(Edit::DeleteLine),
        i.prop_map(Edit::DuplicateLine),
        (i, i).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (i, value()).prop_map(|(a, v)| Edit::ReplaceValue(a, v)),
        (i, (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")))
            .prop_map(|(a, l)| Edit::InsertLine(a, l)),
        (i, header()).prop_map(|(a, h)| Edit::InsertLine(a, h)),
        i.prop_map(Edit::DeleteChar),
        (i, any::<char>()).prop_map(|(a, c)| Edit::InsertChar(a, c)),
        i.prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    let chars: Vec<char> = text.chars().collect();
    match edit {
        Edit::DeleteLine(a) if !lines.is_empty() => {
            lines.remove(a % n);
        }
        Edit::DuplicateLine(a) if !lines.is_empty() => {
            let l = lines[a % n].clone();
            lines.insert(a % n, l);
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
        Edit::ReplaceValue(a, v) if !lines.is_empty() => {
            let l = &mut lines[a % n];
            if let Some(eq) = l.find(" = ") {
                l.truncate(eq + 3);
                l.push_str(v);
            }
        }
        Edit::InsertLine(a, l) => lines.insert(a % (lines.len() + 1), l.clone()),
        Edit::DeleteChar(a) if !chars.is_empty() => {
            let mut c = chars;
            let n = c.len();
            c.remove(a % n);
            return c.into_iter().collect();
        }
        Edit::InsertChar(a, ch) => {
            let mut c = chars;
            let n = c.len() + 1;
            c.insert(a % n, *ch);
            return c.into_iter().collect();
        }
        Edit::Truncate(a) => return chars[..a % (chars.len() + 1)].iter().collect(),
        _ => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        toml_string(s)
    }
}

/// The valid configs of the repository: fixtures and shipped examples.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/valid",
        "tests/fixtures/invalid",
        "config",
        "config/examples",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            out.push(std::fs::read_to_string(&p).expect("read a seed config"));
        }
    }
    assert!(out.len() > 10, "seed configs not found");
    out
}

/// The properties every input must have; returns whether it was rejected.
fn check_parse(src: &str) -> Result<bool, TestCaseError> {
    let origin = Path::new("gen.toml");
    match vigil::config::parse(src, origin) {
        Ok(loaded) => {
            // `vigil check` prints this; it must not panic either.
            let _ = vigil::config::render(&loaded.tree);
            // And `vigil run` must be able to run it: a short simulated run with random
            // exits, failed and late spawns, health results and a stop.
            let seed = src.len() as u64;
            if let Err(v) = vigil::core::sim::run(loaded.tree.clone(), seed) {
                prop_assert!(
                    false,
                    "accepted config broke the engine: {}\n--- input\n{}",
                    v.0,
                    src
                );
            }
            // Review R2: no accepted duration can overflow a deadline in `vigil run`.
            for d in durations(&loaded.tree) {
                prop_assert!(
                    d <= vigil::config::MAX_DURATION,
                    "accepted a duration of {:?}\n--- input\n{}",
                    d,
                    src
                );
            }
            Ok(false)
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "rejected with no diagnostic:\n{src}");
            for d in &errors.0 {
                prop_assert!(
                    d.line >= 1 && d.col >= 1,
                    "no location: {d}\n--- input\n{src}"
                );
                prop_assert!(
                    !d.key.is_empty() || d.message.starts_with("invalid TOML"),
                    "no key path: {d}\n--- input\n{src}"
                );
                prop_assert!(!d.message.is_empty(), "empty message: {d:?}");
            }
            Ok(true)
        }
    }
}

/// Every duration of an accepted tree.
fn durations(tree: &vigil::spec::Tree) -> Vec<Duration> {
    use vigil::spec::{Backoff, NodeKind, Shutdown};
    let mut out: Vec<Duration> = tree.shutdown_timeout.into_iter().collect();
    for node in &tree.nodes {
        if let Shutdown::Timeout(d) = node.shutdown {
            out.push(d);
        }
        match &node.kind {
            NodeKind::Supervisor(s) => out.push(s.period),
            NodeKind::Process(p) => {
                if let Backoff::Exponential {
                    initial,
                    max,
                    reset_after,
                    ..
                } = p.backoff
                {
                    out.extend([initial, max, reset_after]);
                }
                if let Some(r) = &p.ready {
                    out.extend([r.timeout, r.interval]);
                }
                if let Some(h) = &p.health {
                    out.extend([h.interval, h.timeout]);
                }
            }
        }
    }
    out
}

/// Runs `vigil check` on `src` and checks its exit code and error lines.
fn check_binary(src: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gen.toml");
    std::fs::write(&file, src).expect("write config");
    let rejected = vigil::config::parse(src, &file).is_err();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .arg(&file)
        .output()
        .expect("run vigil check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if rejected {
        prop_assert_eq!(
            out.status.code(),
            Some(78),
            "stderr:\n{}\n--- input\n{}",
            stderr,
            src
        );
        let prefix = format!("error: {}:", file.display());
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        prop_assert!(!errors.is_empty(), "no error line:\n{}", stderr);
        for line in errors {
            let rest = line.strip_prefix(&prefix);
            let located = rest.is_some_and(|r| {
                let mut it = r.splitn(3, ':');
                let l = it.next().and_then(|s| s.parse::<usize>().ok());
                let c = it.next().and_then(|s| s.parse::<usize>().ok());
                l.is_some_and(|l| l >= 1) && c.is_some_and(|c| c >= 1) && it.next().is_some()
            });
            prop_assert!(located, "error line without FILE:L:C: {}", line);
        }
    } else {
        prop_assert_eq!(
            out.status.code(),
            Some(0),
            "stderr:\n{}\n--- input\n{}",
            stderr,
            src
        );
    }
    Ok(())
}

fn cases(n: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(n),
        // Failures are reported with the shrunk input; no files written into the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn generated_documents_are_accepted_or_rejected_with_locations(doc in document()) {
        check_parse(&doc)?;
    }
}

proptest! {
    #![proptest_config(cases(400))]

    #[test]
    fn mutated_valid_configs_are_accepted_or_rejected_with_locations(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let seeds = seeds();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check_parse(&text)?;
    }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn vigil_check_exits_78_with_located_errors(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
        doc in document(),
        which in any::<bool>(),
    ) {
        let text = if which {
            let seeds = seeds();
            let mut text = seeds[seed.index(seeds.len())].clone();
            for e in &edits {
                text = apply(&text, e);
            }
            text
        } else {
            doc
        };
        check_binary(&text)?;
    }
}

/// Inputs far outside what a generator reaches by chance: deep nesting, long and huge
/// values, many tables, long children chains and cycles.
#[test]
fn extreme_inputs_are_handled() {
    let mut inputs = Vec::new();
    // Deeply nested arrays and inline tables.
    for depth in [64, 1000, 5000] {
        inputs.push(format!(
            "children = {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
        inputs.push(format!(
            "[process.a]\nenv = {}1{}\n",
            "{a = ".repeat(depth),
            "}".repeat(depth)
        ));
    }
    // Long chains of supervisors, and long cycles (a chain of 2000 overflowed the stack
    // before supervisors were limited to 50 levels).
    for n in [2000, 20_000] {
        let (chain, cycle) = chain_and_cycle(n);
        inputs.push(chain);
        inputs.push(cycle);
    }
    // Many siblings, huge values, long names.
    let mut wide = String::new();
    let names: Vec<String> = (0..3000).map(|i| format!("\"p{i}\"")).collect();
    wide.push_str(&format!("children = [{}]\n", names.join(",")));
    for i in 0..3000 {
        wide.push_str(&format!("[process.p{i}]\ncommand = [\"/bin/true\"]\n"));
    }
    inputs.push(wide);
    inputs.push(format!(
        "[process.{}]\ncommand = [\"x\"]\n",
        "n".repeat(100_000)
    ));
    inputs.push(format!(
        "children = [\"a\"]\n[process.a]\ncommand = [\"{}\"]\n",
        "x".repeat(1_000_000)
    ));
    for d in [
        "18446744073709551615s",
        "9999999999999999999999999h",
        "1e308s",
        "0.0000001ns",
        "584942417355y",
    ] {
        inputs.push(format!(
            "shutdown_timeout = \"{d}\"\nperiod = \"{d}\"\nchildren = []\n"
        ));
    }
    inputs.push("intensity = 9223372036854775807\nperiod = \"1s\"\n".into());
    inputs.push("intensity = -9223372036854775808\n".into());
    inputs.push("\u{feff}children = []\n".into());
    inputs.push(
        "children = [\"a\"]\r\n[process.a]\r\ncommand = [\"/bin/true\"]\r\nfoo = 1\r\n".into(),
    );
    inputs.push("\u{0}".into());
    inputs.push(String::new());
    for src in &inputs {
        if let Err(e) = check_parse(src) {
            panic!(
                "{e}\n--- input (first 300 chars)\n{}",
                src.chars().take(300).collect::<String>()
            );
        }
    }
}

/// A chain of `n` supervisors under the root with a process at the bottom, and a cycle of
/// `n` supervisors.
fn chain_and_cycle(n: usize) -> (String, String) {
    let mut chain = String::from("children = [\"s0\"]\n");
    let mut cycle = String::from("children = [\"s0\"]\n");
    for i in 0..n {
        chain.push_str(&format!("[supervisor.s{i}]\nchildren = [\"s{}\"]\n", i + 1));
        cycle.push_str(&format!(
            "[supervisor.s{i}]\nchildren = [\"s{}\"]\n",
            (i + 1) % n
        ));
    }
    chain.push_str(&format!("[process.s{n}]\ncommand = [\"/bin/true\"]\n"));
    (chain, cycle)
}

/// Supervisors may nest 50 deep (the root included), not deeper; the error is reported
/// once, at the list that goes too deep.
#[test]
fn supervisor_depth_limit() {
    let (ok, _) = chain_and_cycle(49);
    let loaded =
        vigil::config::parse(&ok, Path::new("deep.toml")).expect("49 levels below the root");
    assert!(vigil::config::render(&loaded.tree).contains("s48"));
    for n in [50, 5000] {
        let (deep, _) = chain_and_cycle(n);
        let errors = vigil::config::parse(&deep, Path::new("deep.toml"))
            .expect_err("too deep")
            .0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.key, "supervisor.s48.children[0]");
        assert!(
            e.message
                .starts_with("supervisors nested more than 50 deep"),
            "{e}"
        );
    }
}

/// One fragment of each message `src/config/` can produce (errors, and the two warnings),
/// with the class it stands for. Each must appear in the blessed output of a fixture
/// under tests/fixtures/ (see tests/config_check.rs), so every error class has a
/// malformed config with its exact message.
const MESSAGE_CLASSES: &[(&str, &str)] = &[
    ("http-no-listen", "[http] has no listen address"),
    ("ops-not-table", "expected a table"),
    ("socket-not-absolute", "is not an absolute path"),
    ("listen-bad", "is not an IP address and port"),
    ("interval-with-notify", "interval has no meaning with"),
    ("failures-zero", "failures must be 1 or more"),
    ("health-notify", "health cannot use"),
    ("two-checks", "keep one of them"),
    ("sd-notify-false", "sd_notify = false selects no check"),
    ("exec-empty", "the check command is empty"),
    ("no-check", "has no check: give one of"),
    ("notify-fd-range", "notify_fd must be from 3 to 1023"),
    ("notify-fd-type", "a descriptor number (3 or more)"),
    ("bad-address", r#"expected "host:port""#),
    ("https", "https is not supported"),
    ("bad-url", "invalid URL"),
    ("syntax", "invalid TOML"),
    ("child-key-at-top", "unknown top-level key"),
    ("no-command", "has no command"),
    ("type", "expected a string, found integer"),
    ("empty-string", "must not be empty"),
    ("nul", "must not contain a NUL character"),
    ("bool-type", "expected true or false"),
    ("unknown-enum", "unknown strategy"),
    ("unknown-restart", "unknown restart"),
    ("unknown-auto", "unknown auto_shutdown"),
    ("duration-unit", "durations need a unit"),
    ("zero-duration", "must be longer than zero"),
    ("period-infinity", r#"period cannot be "infinity""#),
    ("intensity-negative", "intensity must be 0 or more"),
    ("intensity-large", "intensity is too large"),
    ("intensity-infinity", r#"intensity cannot be "infinity""#),
    (
        "shutdown-type",
        r#"a duration string, "brutal_kill" or "infinity""#,
    ),
    ("signal-type", "a signal name such as"),
    ("sigstop", "SIGSTOP cannot be a stop signal"),
    ("unknown-signal", "unknown signal"),
    ("program-empty", "the program name is empty"),
    ("command-empty", "command is empty"),
    ("exit-codes-type", "an array of exit codes"),
    ("exit-code-range", "exit code out of range"),
    ("exit-code-type", "an integer from 0 to 255"),
    ("env-type", "a table of strings"),
    ("env-name", "invalid environment variable name"),
    ("env-value-type", "process.web.env.A: expected a string"),
    ("id-range", "invalid user id:"),
    ("id-type", "name or numeric id"),
    ("children-type", "an array of names"),
    ("children-item", "a name (string)"),
    ("backoff-unknown", "unknown backoff"),
    ("backoff-type", r#""none", "exponential" or a table"#),
    ("multiplier", "multiplier must be at least 1"),
    ("multiplier-type", "a number (at least 1)"),
    ("jitter", "jitter must be at least 0"),
    ("jitter-type", "a number from 0 to less than 1"),
    ("initial-max", "is longer than max"),
    (
        "root-child",
        r#""root" is the top-level supervisor and cannot be a child"#,
    ),
    ("unknown-name", "no process or supervisor named"),
    ("cycle", "cycle: supervisor"),
    ("listed-twice", "is listed more than once"),
    ("too-deep", "supervisors nested more than"),
    (
        "significant-permanent",
        "significant = true on a permanent child",
    ),
    ("significant-parent", "significant = true, but its parent"),
    ("reserved", r#"the name "root" is reserved"#),
    ("invalid-name", "invalid name"),
    ("defined-twice", "is defined twice"),
    ("unreferenced", "is defined but not listed"),
    ("unknown-key", "unknown key in"),
    ("invalid-duration", "invalid duration"),
    ("duration-max", "is longer than the maximum of 365d"),
    ("unknown-leftovers", "unknown leftovers value"),
    ("ready-type", "a table with one check"),
    ("no-backoff-giveup", "never gives up on"),
    ("auto-shutdown-permanent", "can shut itself down"),
    (
        "not-a-regular-file",
        "the configuration is not a regular file",
    ),
];

#[test]
fn every_error_class_has_a_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut blessed = String::new();
    for dir in ["tests/fixtures/invalid", "tests/fixtures/valid"] {
        for e in std::fs::read_dir(root.join(dir)).expect("fixture dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|e| e == "stderr") {
                blessed += &std::fs::read_to_string(&p).expect("read .stderr");
            }
        }
    }
    let missing: Vec<_> = MESSAGE_CLASSES
        .iter()
        .filter(|(_, frag)| !blessed.contains(frag))
        .collect();
    assert!(
        missing.is_empty(),
        "error classes without a fixture: {missing:?}"
    );
}

/// The coverage-guided fuzzer's dictionary (fuzz/config.dict) holds every key the loader
/// reads, so a new key reaches `cargo fuzz` too.
#[test]
fn the_fuzz_dictionary_has_every_key() {
    let dict = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/config.dict"))
        .expect("read fuzz/config.dict");
    let entries: Vec<&str> = dict.lines().map(str::trim).collect();
    let missing: Vec<&str> = keys()
        .into_iter()
        .filter(|k| !["restrat", "ümlaut", ""].contains(k))
        .filter(|k| !entries.contains(&format!("\"{k}\"").as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from fuzz/config.dict: {missing:?}"
    );
}
