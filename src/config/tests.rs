//! Unit tests of the loader: one per rule, plus the tree shape the engine relies on.

use std::path::Path;
use std::time::Duration;

use super::{Diagnostic, Loaded, parse, render};
use crate::spec::{AutoShutdown, Backoff, Leftovers, NodeId, Restart, Shutdown, Signal, Strategy};

fn ok(src: &str) -> Loaded {
    match parse(src, Path::new("t.toml")) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match parse(src, Path::new("t.toml")) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.0,
    }
}

/// `(key, line, col, message)` of every error.
fn brief(src: &str) -> Vec<(String, usize, usize, String)> {
    errors(src)
        .into_iter()
        .map(|d| (d.key, d.line, d.col, d.message))
        .collect()
}

/// Asserts exactly one error, at `key`, whose message contains `fragment`.
#[track_caller]
fn one_error(src: &str, key: &str, fragment: &str) -> Diagnostic {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let d = errs.into_iter().next().expect("one error");
    assert_eq!(d.key, key, "{d}");
    assert!(d.message.contains(fragment), "{d}");
    d
}

const P: &str = "command = [\"x\"]";

#[test]
fn defaults_otp_a1() {
    let t = ok(&format!(
        "children = [\"a\", \"s\"]\n[process.a]\n{P}\n[supervisor.s]\n"
    ))
    .tree;
    let root = t.node(NodeId::ROOT);
    assert_eq!(root.name, "root");
    assert_eq!(root.parent, None);
    assert_eq!(root.restart, Restart::Permanent);
    assert_eq!(root.shutdown, Shutdown::Infinity);
    assert!(!root.significant);
    let rs = root.as_supervisor().expect("root is a supervisor");
    assert_eq!(rs.strategy, Strategy::OneForOne);
    assert_eq!(rs.intensity, 3);
    assert_eq!(rs.period, Duration::from_secs(5));
    assert_eq!(rs.auto_shutdown, AutoShutdown::Never);
    assert_eq!(t.shutdown_timeout, None);

    let a = t.node(t.find("a").expect("a"));
    assert_eq!(a.restart, Restart::Permanent);
    assert_eq!(a.shutdown, Shutdown::Timeout(Duration::from_secs(5)));
    assert!(!a.significant);
    let p = a.as_process().expect("a is a process");
    assert_eq!(p.command, vec!["x".to_string()]);
    assert_eq!(p.stop_signal, Signal::TERM);
    assert_eq!(p.leftovers, Leftovers::Stop);
    assert_eq!(p.success_exit_codes, vec![0]);
    assert!(p.env.is_empty());
    assert_eq!((&p.cwd, &p.user, &p.group), (&None, &None, &None));
    assert_eq!(p.backoff, Backoff::DEFAULT);

    let s = t.node(t.find("s").expect("s"));
    assert_eq!(s.shutdown, Shutdown::Infinity);
    assert_eq!(s.restart, Restart::Permanent);
    assert!(s.as_supervisor().expect("sup").children.is_empty());
}

#[test]
fn tree_is_depth_first_in_children_order_not_table_order() {
    let t = ok(&format!(
        "children = [\"z\", \"m\", \"a\"]\n\
         [process.a]\n{P}\n\
         [supervisor.m]\nchildren = [\"m2\", \"m1\"]\n\
         [process.m1]\n{P}\n[process.m2]\n{P}\n\
         [process.z]\n{P}\n"
    ))
    .tree;
    let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["root", "z", "m", "m2", "m1", "a"]);
    let parents: Vec<Option<u32>> = t.nodes.iter().map(|n| n.parent.map(|p| p.0)).collect();
    assert_eq!(parents, [None, Some(0), Some(0), Some(2), Some(2), Some(0)]);
    assert_eq!(t.children(NodeId::ROOT), [NodeId(1), NodeId(2), NodeId(5)]);
    assert_eq!(t.children(NodeId(2)), [NodeId(3), NodeId(4)]);
    for id in t.ids() {
        if let Some(p) = t.node(id).parent {
            assert!(p < id, "children come after their parent");
        }
    }
}

#[test]
fn every_setting_is_read() {
    let t = ok(r#"
strategy = "rest_for_one"
intensity = 0
period = "1m 30s"
auto_shutdown = "any_significant"
shutdown_timeout = "25s"
children = ["s"]

[supervisor.s]
strategy = "one_for_all"
intensity = 7
period = "250ms"
auto_shutdown = "all_significant"
restart = "transient"
shutdown = "30s"
significant = true
children = ["p"]

[process.p]
command = ["/bin/prog", "--flag", "two words"]
restart = "temporary"
shutdown = "brutal_kill"
stop_signal = "int"
leftovers = "keep"
significant = true
success_exit_codes = [0, 143]
env = { Z = "1", A = "2", M = "3" }
cwd = "/srv"
user = "nobody"
group = 65534
backoff = { initial = "1s", multiplier = 3, jitter = 0 }
"#)
    .tree;
    let root = t.node(NodeId::ROOT).as_supervisor().expect("sup").clone();
    assert_eq!(root.strategy, Strategy::RestForOne);
    assert_eq!(root.intensity, 0);
    assert_eq!(root.period, Duration::from_secs(90));
    assert_eq!(root.auto_shutdown, AutoShutdown::AnySignificant);
    assert_eq!(t.shutdown_timeout, Some(Duration::from_secs(25)));
    let s = t.node(NodeId(1));
    assert_eq!(
        (s.restart, s.shutdown, s.significant),
        (
            Restart::Transient,
            Shutdown::Timeout(Duration::from_secs(30)),
            true
        )
    );
    let ss = s.as_supervisor().expect("sup");
    assert_eq!(ss.strategy, Strategy::OneForAll);
    assert_eq!(ss.intensity, 7);
    assert_eq!(ss.period, Duration::from_millis(250));
    assert_eq!(ss.auto_shutdown, AutoShutdown::AllSignificant);
    let p = t.node(NodeId(2));
    assert_eq!(
        (p.restart, p.shutdown, p.significant),
        (Restart::Temporary, Shutdown::BrutalKill, true)
    );
    let pp = p.as_process().expect("process");
    assert_eq!(pp.command, ["/bin/prog", "--flag", "two words"]);
    assert_eq!(pp.stop_signal, Signal::INT);
    assert_eq!(pp.leftovers, Leftovers::Keep);
    assert_eq!(pp.success_exit_codes, [0, 143]);
    // File order, not alphabetical.
    let env: Vec<(&str, &str)> = pp
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("Z", "1"), ("A", "2"), ("M", "3")]);
    assert_eq!(pp.cwd.as_deref(), Some(Path::new("/srv")));
    assert_eq!(pp.user.as_deref(), Some("nobody"));
    assert_eq!(pp.group.as_deref(), Some("65534"));
    // Missing backoff keys come from the default.
    assert_eq!(
        pp.backoff,
        Backoff::Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            multiplier: 3.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(10),
        }
    );
}

#[test]
fn backoff_spellings() {
    let b = |v: &str| {
        let t = ok(&format!(
            "children = [\"a\"]\n[process.a]\n{P}\nbackoff = {v}\n"
        ))
        .tree;
        t.node(NodeId(1)).as_process().expect("p").backoff
    };
    assert_eq!(b("\"none\""), Backoff::None);
    assert_eq!(b("\"exponential\""), Backoff::DEFAULT);
    assert_eq!(b("{}"), Backoff::DEFAULT);
}

#[test]
fn signals_by_name_short_name_or_number() {
    for (v, sig) in [
        ("\"SIGQUIT\"", Signal::QUIT),
        ("\"hup\"", Signal::HUP),
        ("15", Signal::TERM),
        ("\"9\"", Signal::KILL),
        ("\"SIGKILL\"", Signal::KILL),
    ] {
        let t = ok(&format!(
            "children = [\"a\"]\n[process.a]\n{P}\nstop_signal = {v}\n"
        ))
        .tree;
        assert_eq!(t.node(NodeId(1)).as_process().expect("p").stop_signal, sig);
    }
    let proc = |v: &str| format!("children = [\"a\"]\n[process.a]\n{P}\nstop_signal = {v}\n");
    one_error(&proc("\"SIGSTOP\""), "process.a.stop_signal", "SIGSTOP");
    one_error(&proc("\"STOP\""), "process.a.stop_signal", "SIGSTOP");
    one_error(
        &proc("\"SIGNOPE\""),
        "process.a.stop_signal",
        "unknown signal",
    );
    one_error(&proc("65"), "process.a.stop_signal", "unknown signal");
    one_error(&proc("true"), "process.a.stop_signal", "expected a signal");
}

#[test]
fn positions_are_line_and_character_column() {
    let d = one_error(
        "# comment\nchildren = [\"a\"]\n[process.a]\n# é\ncommand = [\"x\"]\nrestart =  \"oops\"\n",
        "process.a.restart",
        "unknown restart type \"oops\"",
    );
    assert_eq!((d.line, d.col), (6, 12));
    // Columns count characters, not bytes.
    let errs = brief("children = [\"é\", \"a\", 3]\n[process.a]\ncommand = [\"x\"]\n");
    assert_eq!(
        (errs[0].0.as_str(), errs[0].1, errs[0].2),
        ("children[0]", 1, 13)
    );
    assert_eq!(errs[1].0, "children[2]");
    assert_eq!((errs[1].1, errs[1].2), (1, 23));
}

#[test]
fn display_format() {
    let errs = parse(
        "children = [\"a\"]\n[process.a]\ncommand = [\"x\"]\nrestart = \"x\"\n",
        Path::new("dir/v.toml"),
    )
    .expect_err("invalid");
    assert_eq!(
        errs.to_string(),
        "error: dir/v.toml:4:11: process.a.restart: unknown restart type \"x\"\n  \
         hint: expected one of \"permanent\", \"transient\", \"temporary\"\n"
    );
}

#[test]
fn syntax_error_is_the_only_error() {
    let errs = brief("children = [\"a\"\nrestrat = 1\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "");
    assert!(errs[0].3.starts_with("invalid TOML: "), "{errs:?}");
    assert_eq!(errs[0].1, 2);
}

#[test]
fn unknown_keys_everywhere_otp_a5() {
    let errs = brief(&format!(
        "silly_flag = true\nrestart = \"permanent\"\nchildren = [\"a\", \"s\"]\n\
         [process.a]\n{P}\nrestrat = \"permanent\"\nbackoff = {{ initail = \"1s\" }}\n\
         [supervisor.s]\nchildern = []\n"
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        keys,
        [
            "silly_flag",
            "restart",
            "process.a.restrat",
            "process.a.backoff.initail",
            "supervisor.s.childern",
        ]
    );
    let hints: Vec<Option<String>> = errors(&format!(
        "children = [\"a\"]\n[process.a]\n{P}\nrestrat = \"permanent\"\n"
    ))
    .into_iter()
    .map(|d| d.hint)
    .collect();
    assert_eq!(hints, [Some("did you mean `restart`?".to_string())]);
}

#[test]
fn supervisor_flags_otp_a2() {
    let root = |kv: &str| format!("{kv}\n");
    one_error(
        &root("strategy = \"none_for_one\""),
        "strategy",
        "unknown strategy",
    );
    one_error(&root("intensity = -1"), "intensity", "0 or more, found -1");
    one_error(
        &root("intensity = \"infinity\""),
        "intensity",
        "\"infinity\"",
    );
    one_error(&root("intensity = 1.5"), "intensity", "expected an integer");
    one_error(&root("period = \"0s\""), "period", "longer than zero");
    one_error(&root("period = \"infinity\""), "period", "\"infinity\"");
    one_error(&root("period = 5"), "period", "found integer 5");
    one_error(
        &root("auto_shutdown = \"sometimes\""),
        "auto_shutdown",
        "unknown auto_shutdown",
    );
    one_error(
        &root("shutdown_timeout = \"0s\""),
        "shutdown_timeout",
        "longer than zero",
    );
    // The same flags on a nested supervisor carry its key path.
    one_error(
        "children = [\"s\"]\n[supervisor.s]\nintensity = -2\n",
        "supervisor.s.intensity",
        "found -2",
    );
    // Valid edge values.
    let t = ok("intensity = 0\nperiod = \"1ms\"\n").tree;
    assert_eq!(
        t.node(NodeId::ROOT).as_supervisor().expect("s").intensity,
        0
    );
}

#[test]
fn child_specs_otp_a3() {
    let proc = |kv: &str| format!("children = [\"a\"]\n[process.a]\n{kv}\n");
    one_error(
        &proc("restart = \"permanent\""),
        "process.a.command",
        "has no command",
    );
    one_error(
        &proc("command = []"),
        "process.a.command",
        "command is empty",
    );
    one_error(
        &proc("command = \"sleep 1\""),
        "process.a.command",
        "expected an array",
    );
    one_error(
        &proc("command = [\"\"]"),
        "process.a.command[0]",
        "program name is empty",
    );
    one_error(
        &proc("command = [\"x\", 2]"),
        "process.a.command[1]",
        "found integer 2",
    );
    let with = |kv: &str| proc(&format!("{P}\n{kv}"));
    one_error(
        &with("restart = \"prmanent\""),
        "process.a.restart",
        "\"prmanent\"",
    );
    one_error(
        &with("shutdown = -10"),
        "process.a.shutdown",
        "found integer -10",
    );
    one_error(
        &with("shutdown = \"-10s\""),
        "process.a.shutdown",
        "negative duration",
    );
    one_error(
        &with("shutdown = \"10\""),
        "process.a.shutdown",
        "has no unit",
    );
    one_error(
        &with("shutdown = \"10 parsecs\""),
        "process.a.shutdown",
        "unknown unit",
    );
    one_error(
        &with("significant = \"maybe\""),
        "process.a.significant",
        "true or false",
    );
    one_error(
        &with("success_exit_codes = [256]"),
        "process.a.success_exit_codes[0]",
        "out of range",
    );
    one_error(
        &with("success_exit_codes = 0"),
        "process.a.success_exit_codes",
        "expected an array",
    );
    one_error(
        &with("env = { N = 1 }"),
        "process.a.env.N",
        "expected a string",
    );
    one_error(&with("env = \"A=1\""), "process.a.env", "expected a table");
    one_error(&with("cwd = \"\""), "process.a.cwd", "must not be empty");
    one_error(&with("user = -1"), "process.a.user", "invalid user id");
    one_error(
        &with("group = []"),
        "process.a.group",
        "expected a group name",
    );
    one_error(
        &with("backoff = \"linear\""),
        "process.a.backoff",
        "unknown backoff",
    );
    one_error(
        &with("backoff = { multiplier = 0.5 }"),
        "process.a.backoff.multiplier",
        "at least 1",
    );
    one_error(
        &with("backoff = { jitter = 1 }"),
        "process.a.backoff.jitter",
        "less than 1",
    );
    one_error(
        &with("backoff = { jitter = -0.1 }"),
        "process.a.backoff.jitter",
        "at least 0",
    );
    one_error(
        &with("backoff = { initial = \"0s\" }"),
        "process.a.backoff.initial",
        "longer than zero",
    );
    one_error(
        &with("backoff = { max = \"10ms\" }"),
        "process.a.backoff.max",
        "longer than max",
    );
    one_error(
        &with("backoff = { initial = \"9s\" }"),
        "process.a.backoff.initial",
        "longer than max",
    );
    one_error(
        &with("shutdown = []"),
        "process.a.shutdown",
        "expected a duration",
    );
    // Zero grace is allowed (OTP allows shutdown = 0).
    let t = ok(&with("shutdown = \"0s\""));
    assert_eq!(
        t.tree.node(NodeId(1)).shutdown,
        Shutdown::Timeout(Duration::ZERO)
    );
}

/// Review R2: every duration key refuses more than 365 days, with the key, its line:col
/// and the fix, so that no accepted config can overflow a deadline in `vigil run`.
#[test]
fn durations_have_an_upper_bound_r2() {
    let base = |top: &str, sup: &str, process: &str| {
        format!(
            "{top}\nchildren = [\"s\"]\n[supervisor.s]\nchildren = [\"a\"]\n{sup}\n\
             [process.a]\n{P}\n{process}\n"
        )
    };
    let cases: &[(&str, &str, &str, &str)] = &[
        ("shutdown_timeout = D", "", "", "shutdown_timeout"),
        ("period = D", "", "", "period"),
        ("", "shutdown = D", "", "supervisor.s.shutdown"),
        ("", "period = D", "", "supervisor.s.period"),
        ("", "", "shutdown = D", "process.a.shutdown"),
        (
            "",
            "",
            "backoff = { initial = D, max = \"365d\" }",
            "process.a.backoff.initial",
        ),
        ("", "", "backoff = { max = D }", "process.a.backoff.max"),
        (
            "",
            "",
            "backoff = { reset_after = D }",
            "process.a.backoff.reset_after",
        ),
        (
            "",
            "",
            "ready = { notify_fd = 3, timeout = D }",
            "process.a.ready.timeout",
        ),
        (
            "",
            "",
            "ready = { file = \"/r\", interval = D }",
            "process.a.ready.interval",
        ),
        (
            "",
            "",
            "health = { file = \"/r\", interval = D }",
            "process.a.health.interval",
        ),
        (
            "",
            "",
            "health = { file = \"/r\", timeout = D }",
            "process.a.health.timeout",
        ),
    ];
    for &(top, sup, process, key) in cases {
        let with = |d: &str| {
            let d = format!("\"{d}\"");
            base(
                &top.replace('D', &d),
                &sup.replace('D', &d),
                &process.replace('D', &d),
            )
        };
        // The maximum itself is accepted ...
        ok(&with("365d"));
        // ... one second more is not, nor the review's value, nor one humantime overflows.
        for d in ["365d 1s", "300000000000y", "584942417355y"] {
            let e = one_error(
                &with(d),
                key,
                &format!("duration \"{d}\" is longer than the maximum of 365d"),
            );
            assert!(e.line >= 1 && e.col > 1, "{e}");
            let hint = e.hint.expect("a hint");
            assert!(hint.starts_with("use at most \"365d\""), "{hint}");
            // Only `shutdown` takes "infinity", and only its hint offers it.
            assert_eq!(
                hint.contains("\"infinity\""),
                key.ends_with(".shutdown"),
                "{key}: {hint}"
            );
        }
    }
    // humantime's year is 365.25 days: just over the maximum.
    one_error(
        &base("shutdown_timeout = \"1y\"", "", ""),
        "shutdown_timeout",
        "longer than the maximum of 365d",
    );
    // "infinity" stays accepted where it was.
    let t = ok(&base(
        "",
        "shutdown = \"infinity\"",
        "shutdown = \"infinity\"",
    ))
    .tree;
    assert_eq!(t.node(NodeId(1)).shutdown, Shutdown::Infinity);
    assert_eq!(t.node(NodeId(2)).shutdown, Shutdown::Infinity);
    let t = ok(&base(
        "shutdown_timeout = \"365d\"",
        "",
        "shutdown = \"365d\"",
    ))
    .tree;
    assert_eq!(t.shutdown_timeout, Some(super::MAX_DURATION));
    assert_eq!(
        t.node(NodeId(2)).shutdown,
        Shutdown::Timeout(super::MAX_DURATION)
    );
}

/// `no_new_privileges` and `capabilities`: read and shown by `vigil check`; capability
/// names with or without `CAP_`, in any case; a typo gets a suggestion; `[]` keeps none.
#[test]
fn privilege_settings() {
    use crate::spec::CapSet;
    let proc = |kv: &str| format!("children = [\"a\"]\n[process.a]\n{P}\n{kv}\n");
    let read = |kv: &str| {
        let p = ok(&proc(kv)).tree.node(NodeId(1)).as_process().cloned();
        let p = p.expect("a process");
        (p.no_new_privileges, p.capabilities)
    };
    assert_eq!(read(""), (false, None));
    assert_eq!(read("no_new_privileges = true"), (true, None));
    assert_eq!(read("capabilities = []"), (false, Some(CapSet::EMPTY)));
    assert_eq!(
        read("capabilities = [\"CAP_NET_BIND_SERVICE\", \"chown\", \"NET_BIND_SERVICE\"]"),
        (false, Some(CapSet((1 << 10) | 1)))
    );
    let d = one_error(
        &proc("capabilities = [\"CAP_NET_BIND_SERVIC\"]"),
        "process.a.capabilities[0]",
        "unknown capability \"CAP_NET_BIND_SERVIC\"",
    );
    assert_eq!((d.line, d.col), (4, 17));
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.starts_with("did you mean \"CAP_NET_BIND_SERVICE\"?")),
        "{d}"
    );
    let d = one_error(
        &proc("capabilities = [\"sys_admn\"]"),
        "process.a.capabilities[0]",
        "unknown capability",
    );
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("\"SYS_ADMIN\"")),
        "{d}"
    );
    let d = one_error(
        &proc("capabilities = [\"everything\"]"),
        "process.a.capabilities[0]",
        "unknown capability",
    );
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("capabilities(7)")),
        "{d}"
    );
    one_error(
        &proc("capabilities = \"CAP_CHOWN\""),
        "process.a.capabilities",
        "expected an array of capability names",
    );
    one_error(
        &proc("capabilities = [10]"),
        "process.a.capabilities[0]",
        "expected a capability name (string)",
    );
    one_error(
        &proc("no_new_privileges = 1"),
        "process.a.no_new_privileges",
        "expected true or false",
    );
    let shown = render(&ok(&proc("capabilities = [\"net_raw\", \"chown\"]")).tree);
    assert!(
        shown.contains("no_new_privileges: false, capabilities: [CAP_CHOWN, CAP_NET_RAW]"),
        "{shown}"
    );
    let shown = render(&ok(&proc("no_new_privileges = true")).tree);
    assert!(
        shown.contains("no_new_privileges: true, capabilities: (inherited)"),
        "{shown}"
    );
    let shown = render(&ok(&proc("")).tree);
    assert!(
        !shown.contains("no_new_privileges"),
        "only when set: {shown}"
    );
}

/// `leftovers = "stop" | "keep"`: read with the other enum keys, unknown values listed
/// with a suggestion, and only on processes.
#[test]
fn leftovers_values() {
    let proc = |kv: &str| format!("children = [\"a\"]\n[process.a]\n{P}\n{kv}\n");
    let read = |kv: &str| {
        ok(&proc(kv))
            .tree
            .node(NodeId(1))
            .as_process()
            .expect("a process")
            .leftovers
    };
    assert_eq!(read(""), Leftovers::Stop);
    assert_eq!(read("leftovers = \"stop\""), Leftovers::Stop);
    assert_eq!(read("leftovers = \"keep\""), Leftovers::Keep);
    let d = one_error(
        &proc("leftovers = \"kep\""),
        "process.a.leftovers",
        "unknown leftovers value \"kep\"",
    );
    assert_eq!((d.line, d.col), (4, 13));
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean \"keep\"? expected one of \"stop\", \"keep\"")
    );
    one_error(
        &proc("leftovers = \"STOP\""),
        "process.a.leftovers",
        "unknown leftovers value",
    );
    one_error(
        &proc("leftovers = false"),
        "process.a.leftovers",
        "expected a string (stop | keep), found boolean false",
    );
    // A process setting: a supervisor's subtree is stopped as a whole anyway.
    one_error(
        "children = [\"s\"]\n[supervisor.s]\nleftovers = \"keep\"\n",
        "supervisor.s.leftovers",
        "unknown key in [supervisor.s]",
    );
    let shown = render(&ok(&proc("leftovers = \"keep\"")).tree);
    assert!(shown.contains("leftovers: keep"), "{shown}");
}

/// The exported key table lists exactly what the readers read: every key in it is
/// accepted in its table (whatever its value's problems), and an unknown key's hint lists
/// the table's keys.
#[test]
fn the_key_table_is_what_is_read() {
    for (table, keys) in super::KEYS {
        for key in *keys {
            let src = match *table {
                "" => format!("{key} = 0\n"),
                "supervisor.NAME" => format!("children = [\"s\"]\n[supervisor.s]\n{key} = 0\n"),
                "process.NAME" => format!("children = [\"a\"]\n[process.a]\n{key} = 0\n"),
                "control" | "http" => format!("[{table}]\n{key} = 0\n"),
                t => {
                    let sub = t
                        .strip_prefix("process.NAME.")
                        .expect("a process sub-table");
                    format!("children = [\"a\"]\n[process.a]\n{P}\n{sub} = {{ {key} = 0 }}\n")
                }
            };
            if let Err(e) = parse(&src, Path::new("t.toml")) {
                for d in e.0 {
                    assert!(
                        !d.message.starts_with("unknown key")
                            && !d.message.starts_with("unknown top-level key"),
                        "{table}: `{key}` is in the table but not read: {d}"
                    );
                }
            }
        }
        let hint = |src: &str| errors(src)[0].hint.clone().expect("a hint");
        if *table == "process.NAME" {
            let h = hint(&format!(
                "children = [\"a\"]\n[process.a]\n{P}\nzzzzzzzzzz = 1\n"
            ));
            for key in *keys {
                assert!(h.contains(&format!("`{key}`")), "{key} missing from {h}");
            }
        }
    }
}

#[test]
fn names() {
    one_error(
        &format!("children = [\"Web\"]\n[process.Web]\n{P}\n"),
        "process.Web",
        "invalid name \"Web\"",
    );
    one_error(
        &format!("children = [\"-a\"]\n[process.-a]\n{P}\n"),
        "process.-a",
        "invalid name",
    );
    for good in ["a", "0", "web-1", "a.b_c-d", "9lives"] {
        ok(&format!(
            "children = [\"{good}\"]\n[process.\"{good}\"]\n{P}\n"
        ));
    }
    let errs = brief(&format!("children = [\"root\"]\n[process.root]\n{P}\n"));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].0, "children[0]");
    assert!(errs[0].3.contains("cannot be a child"));
    assert_eq!(errs[1].0, "process.root");
    assert!(errs[1].3.contains("reserved"));
    // Defined as both kinds: reported once, at the later table.
    let d = one_error(
        &format!("children = [\"a\"]\n[process.a]\n{P}\n[supervisor.a]\n"),
        "supervisor.a",
        "defined twice",
    );
    assert_eq!(d.line, 4);
}

#[test]
fn references() {
    // Unknown, with a suggestion.
    let d = one_error(
        &format!("children = [\"web\", \"wbe\"]\n[process.web]\n{P}\n"),
        "children[1]",
        "no process or supervisor named \"wbe\"",
    );
    assert!(d.hint.expect("hint").contains("did you mean \"web\"?"));
    // Twice in one list, and in two lists.
    one_error(
        &format!("children = [\"a\", \"a\"]\n[process.a]\n{P}\n"),
        "children[1]",
        "listed more than once; it is already at children[0] (1:13)",
    );
    one_error(
        &format!(
            "children = [\"s\", \"a\"]\n[supervisor.s]\nchildren = [\"a\"]\n[process.a]\n{P}\n"
        ),
        "children[1]",
        "already at supervisor.s.children[0]",
    );
    // Never referenced; its own children are not reported too.
    let errs = brief(&format!(
        "[process.lonely]\n{P}\n[supervisor.orphan]\nchildren = [\"below\"]\n[process.below]\n{P}\n"
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(keys, ["process.lonely", "supervisor.orphan"]);
    assert!(
        errs.iter()
            .all(|e| e.3.contains("not listed in any children list"))
    );
    // A bad entry does not hide the good ones.
    let errs = brief(&format!(
        "children = [\"a\", 3, \"nope\"]\n[process.a]\n{P}\n"
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(keys, ["children[1]", "children[2]"]);
}

#[test]
fn cycles() {
    // Below the root: one cycle error, nothing else.
    one_error(
        "children = [\"a\"]\n[supervisor.a]\nchildren = [\"b\"]\n[supervisor.b]\nchildren = [\"a\"]\n",
        "supervisor.b.children[0]",
        "cycle: supervisor \"a\" contains itself (a -> b -> a)",
    );
    // Disconnected from the root: still a cycle, not "never referenced".
    one_error(
        "[supervisor.a]\nchildren = [\"b\"]\n[supervisor.b]\nchildren = [\"c\"]\n[supervisor.c]\nchildren = [\"a\"]\n",
        "supervisor.c.children[0]",
        "(a -> b -> c -> a)",
    );
    // Whatever file order: the walk starts on the cycle, not below it.
    one_error(
        "[supervisor.below]\nchildren = []\n[supervisor.x]\nchildren = [\"y\", \"below\"]\n[supervisor.y]\nchildren = [\"x\"]\n",
        "supervisor.y.children[0]",
        "(x -> y -> x)",
    );
    one_error(
        "[supervisor.me]\nchildren = [\"me\"]\n",
        "supervisor.me.children[0]",
        "(me -> me)",
    );
}

#[test]
fn significant_combinations_otp_a4() {
    // Permanent (explicit or by default) and significant.
    for restart in ["", "restart = \"permanent\"\n"] {
        let d = one_error(
            &format!(
                "auto_shutdown = \"any_significant\"\nchildren = [\"a\"]\n[process.a]\n{P}\n{restart}significant = true\n"
            ),
            "process.a.significant",
            "significant = true on a permanent child",
        );
        assert!(d.hint.expect("hint").contains("transient"));
    }
    // Significant under auto_shutdown = never (explicit or by default), root or nested.
    one_error(
        &format!(
            "children = [\"a\"]\n[process.a]\n{P}\nrestart = \"transient\"\nsignificant = true\n"
        ),
        "process.a.significant",
        "the root supervisor (top level), has auto_shutdown = \"never\" (the default)",
    );
    one_error(
        &format!(
            "auto_shutdown = \"all_significant\"\nchildren = [\"s\"]\n[supervisor.s]\nauto_shutdown = \"never\"\nchildren = [\"a\"]\n\
             [process.a]\n{P}\nrestart = \"temporary\"\nsignificant = true\n"
        ),
        "process.a.significant",
        "supervisor \"s\", has auto_shutdown = \"never\"",
    );
    // A significant supervisor follows the same rules.
    one_error(
        "auto_shutdown = \"any_significant\"\nchildren = [\"s\"]\n[supervisor.s]\nsignificant = true\n",
        "supervisor.s.significant",
        "permanent child",
    );
    // Both wrong at once: both reported.
    let errs = brief(&format!(
        "children = [\"a\"]\n[process.a]\n{P}\nsignificant = true\n"
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    // The same children with significant = false load.
    ok(&format!(
        "children = [\"a\", \"b\"]\n[process.a]\n{P}\nsignificant = false\n\
         [process.b]\n{P}\nrestart = \"transient\"\nsignificant = false\n"
    ));
    // And the valid combinations load.
    let t = ok(&format!(
        "auto_shutdown = \"any_significant\"\nchildren = [\"a\", \"b\"]\n\
         [process.a]\n{P}\nrestart = \"transient\"\nsignificant = true\n\
         [process.b]\n{P}\nrestart = \"temporary\"\nsignificant = true\n"
    ))
    .tree;
    assert!(t.node(NodeId(1)).significant && t.node(NodeId(2)).significant);
}

#[test]
fn bad_values_do_not_cascade() {
    // A bad restart or auto_shutdown is not taken as its default by later checks.
    let errs = brief(&format!(
        "auto_shutdown = \"any\"\nchildren = [\"a\"]\n[process.a]\n{P}\nrestart = \"transiant\"\nsignificant = true\n"
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(keys, ["auto_shutdown", "process.a.restart"]);
    // A malformed table is not also an unknown name.
    let errs = brief(&format!("children = [\"a\"]\n[[process.a]]\n{P}\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "process.a");
    // Type errors in one table do not hide those in another.
    let errs = brief(&format!(
        "children = [\"a\", \"b\"]\n[process.a]\n{P}\nrestart = 1\n[process.b]\n{P}\nshutdown = 1\n"
    ));
    let keys: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(keys, ["process.a.restart", "process.b.shutdown"]);
}

#[test]
fn errors_are_in_file_order() {
    let errs = errors(&format!(
        "[process.z]\n{P}\nrestart = \"x\"\n[process.a]\n{P}\nrestart = \"y\"\n"
    ));
    let lines: Vec<usize> = errs.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn warns_when_backoff_cannot_reach_the_intensity() {
    let warnings = |src: &str| -> Vec<Diagnostic> { ok(src).warnings };
    // The defaults (3 in 5 s, 100 ms doubling) give up within a second: no warning.
    assert!(warnings(&format!("children = [\"a\"]\n[process.a]\n{P}\n")).is_empty());
    // 1 s doubling needs 0.9 + 1.8 + 3.6 = 6.3 s for 4 quick exits: more than 5 s.
    let w = warnings(&format!(
        "children = [\"a\"]\n[process.a]\n{P}\nbackoff = {{ initial = \"1s\", max = \"1m\" }}\n"
    ));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].key, "process.a.backoff");
    assert_eq!((w[0].line, w[0].col), (4, 11));
    assert!(w[0].message.contains("never gives up"), "{}", w[0]);
    assert!(w[0].message.contains("6s 300ms"), "{}", w[0]);
    assert!(w[0].message.contains("period = 5s"), "{}", w[0]);
    // The same with a long enough period, a temporary child, or no backoff: no warning.
    assert!(
        warnings(&format!(
            "period = \"7s\"\nchildren = [\"a\"]\n[process.a]\n{P}\nbackoff = {{ initial = \"1s\", max = \"1m\" }}\n"
        ))
        .is_empty()
    );
    assert!(
        warnings(&format!(
            "children = [\"a\"]\n[process.a]\n{P}\nrestart = \"temporary\"\nbackoff = {{ initial = \"1s\", max = \"1m\" }}\n"
        ))
        .is_empty()
    );
    // A default schedule can be too slow for a short period: the warning points at the table.
    let w = warnings(&format!(
        "period = \"100ms\"\nchildren = [\"a\"]\n[process.a]\n{P}\n"
    ));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].message.contains("the default backoff"), "{}", w[0]);
    assert_eq!((w[0].line, w[0].col), (3, 1));
}

#[test]
fn warns_about_a_permanent_auto_shutdown_supervisor() {
    let src = |restart: &str| {
        format!(
            "children = [\"s\"]\n[supervisor.s]\n{restart}auto_shutdown = \"any_significant\"\nchildren = [\"a\"]\n\
             [process.a]\n{P}\nrestart = \"transient\"\nsignificant = true\n"
        )
    };
    let w = ok(&src("")).warnings;
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].key, "supervisor.s.auto_shutdown");
    assert!(w[0].message.contains("permanent child"), "{}", w[0]);
    assert!(ok(&src("restart = \"transient\"\n")).warnings.is_empty());
}

#[test]
fn unreadable_file() {
    let e = super::load(Path::new("/nonexistent/vigil.toml")).expect_err("missing");
    assert_eq!(e.0.len(), 1);
    let text = e.to_string();
    assert!(
        text.starts_with("error: /nonexistent/vigil.toml: cannot read the configuration: "),
        "{text}"
    );
}

#[test]
fn render_shows_every_effective_setting_deterministically() {
    let src = format!(
        "shutdown_timeout = \"20s\"\nchildren = [\"a\", \"s\"]\n\
         [process.a]\n{P}\nenv = {{ B = \"1\", A = \"2\" }}\nuser = \"me\"\ncwd = \"/x\"\n\
         [supervisor.s]\nchildren = [\"b\"]\n[process.b]\n{P}\nbackoff = \"none\"\n"
    );
    let text = render(&ok(&src).tree);
    assert_eq!(text, render(&ok(&src).tree));
    for needle in [
        "root (supervisor)",
        "├── a (process)",
        "└── s (supervisor)",
        "    └── b (process)",
        "strategy: one_for_one, intensity: 3 in 5s, auto_shutdown: never",
        "restart: permanent, shutdown: 5s, significant: false",
        "stop_signal: SIGTERM, success_exit_codes: [0]",
        "backoff: 100ms x2 up to 5s, jitter 10%, reset after 10s up",
        "backoff: none (restart at once)",
        "cwd: \"/x\", user: \"me\", group: (inherited)",
        "  B = \"1\"",
        "shutdown_timeout: 20s",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(text.find("B = ").expect("B") < text.find("A = ").expect("A"));
}
