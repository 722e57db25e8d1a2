//! Pass 1: the spanned TOML document → raw tables with typed, located values.
//!
//! Every key is read with its expected type; unknown keys and ill-typed values are
//! reported and skipped, so one bad value never hides another. This pass knows nothing
//! about names referring to each other: that is [`super::validate`].

use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Cx;
use crate::spec::{AutoShutdown, Backoff, Restart, Shutdown, Signal, Strategy};

/// A value and the byte offset where it was written.
#[derive(Clone, Debug)]
pub(crate) struct At<T> {
    pub v: T,
    pub at: usize,
}

/// The root, and every named table.
pub(crate) struct RawFile {
    pub root: RawSup,
    pub shutdown_timeout: Option<At<Duration>>,
    pub sups: Vec<RawSup>,
    pub procs: Vec<RawProc>,
}

/// A supervisor table (or the root).
#[derive(Default)]
pub(crate) struct RawSup {
    pub name: At<String>,
    pub key: String,
    pub strategy: Option<Strategy>,
    pub intensity: Option<u32>,
    pub period: Option<Duration>,
    pub children: Vec<At<String>>,
    pub auto_shutdown: Option<At<AutoShutdown>>,
    pub restart: Option<At<Restart>>,
    pub shutdown: Option<Shutdown>,
    pub significant: Option<At<bool>>,
}

/// A process table.
#[derive(Default)]
pub(crate) struct RawProc {
    pub name: At<String>,
    pub key: String,
    pub command: Option<Vec<String>>,
    pub restart: Option<At<Restart>>,
    pub shutdown: Option<Shutdown>,
    pub stop_signal: Option<Signal>,
    pub significant: Option<At<bool>>,
    pub success_exit_codes: Option<Vec<i32>>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub backoff: Option<At<Backoff>>,
}

impl Default for At<String> {
    fn default() -> Self {
        At {
            v: String::new(),
            at: 0,
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

const ROOT_KEYS: &[&str] = &[
    "strategy",
    "intensity",
    "period",
    "children",
    "auto_shutdown",
    "shutdown_timeout",
    "supervisor",
    "process",
];
const SUP_KEYS: &[&str] = &[
    "strategy",
    "intensity",
    "period",
    "children",
    "auto_shutdown",
    "restart",
    "shutdown",
    "significant",
];
const PROC_KEYS: &[&str] = &[
    "command",
    "restart",
    "shutdown",
    "stop_signal",
    "significant",
    "success_exit_codes",
    "env",
    "cwd",
    "user",
    "group",
    "backoff",
];
const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "jitter", "reset_after"];

/// Reads the whole document; `None` after a syntax error (already reported).
pub(crate) fn read(cx: &mut Cx<'_>) -> Option<RawFile> {
    let doc = match DeTable::parse(cx.source) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            cx.error(
                at,
                "",
                format!("invalid TOML: {}", e.message().trim_end()),
                None,
            );
            return None;
        }
    };
    let doc = doc.into_inner();
    let mut file = RawFile {
        root: RawSup {
            name: At {
                v: crate::spec::ROOT_NAME.into(),
                at: 0,
            },
            ..RawSup::default()
        },
        shutdown_timeout: None,
        sups: Vec::new(),
        procs: Vec::new(),
    };
    unknown_keys(cx, &doc, "", ROOT_KEYS, "top-level");
    read_sup_keys(cx, &doc, "", &mut file.root);
    if let Some(v) = doc.get("shutdown_timeout") {
        file.shutdown_timeout = duration(cx, "shutdown_timeout", v, false).map(|d| At {
            v: d,
            at: v.span().start,
        });
    }
    for (kind, keys) in [("supervisor", SUP_KEYS), ("process", PROC_KEYS)] {
        let Some(section) = doc.get(kind) else {
            continue;
        };
        let Some(section_table) = section.get_ref().as_table() else {
            type_error(
                cx,
                kind,
                section,
                "a table of named tables, like [process.web]",
            );
            continue;
        };
        for (name, value) in section_table {
            let key = format!("{kind}.{}", name.get_ref());
            let Some(table) = value.get_ref().as_table() else {
                type_error(cx, &key, value, "a table");
                continue;
            };
            unknown_keys(cx, table, &key, keys, kind);
            let name = At {
                v: name.get_ref().to_string(),
                at: name.span().start,
            };
            if kind == "supervisor" {
                let mut sup = RawSup {
                    name,
                    key: key.clone(),
                    ..RawSup::default()
                };
                read_sup_keys(cx, table, &key, &mut sup);
                file.sups.push(sup);
            } else {
                file.procs.push(read_proc(cx, table, &key, name));
            }
        }
    }
    Some(file)
}

fn read_sup_keys(cx: &mut Cx<'_>, t: &DeTable<'_>, key: &str, sup: &mut RawSup) {
    let k = |name: &str| join(key, name);
    if let Some(v) = t.get("strategy") {
        sup.strategy = choice(
            cx,
            &k("strategy"),
            v,
            &[
                ("one_for_one", Strategy::OneForOne),
                ("one_for_all", Strategy::OneForAll),
                ("rest_for_one", Strategy::RestForOne),
            ],
        );
    }
    if let Some(v) = t.get("intensity") {
        sup.intensity = integer(cx, &k("intensity"), v, 0, u32::MAX as i64).map(|n| n as u32);
    }
    if let Some(v) = t.get("period") {
        sup.period = duration(cx, &k("period"), v, false);
    }
    if let Some(v) = t.get("children") {
        sup.children = strings(cx, &k("children"), v).unwrap_or_default();
    }
    if let Some(v) = t.get("auto_shutdown") {
        sup.auto_shutdown = choice(
            cx,
            &k("auto_shutdown"),
            v,
            &[
                ("never", AutoShutdown::Never),
                ("any_significant", AutoShutdown::AnySignificant),
                ("all_significant", AutoShutdown::AllSignificant),
            ],
        )
        .map(|a| At {
            v: a,
            at: v.span().start,
        });
    }
    read_child_keys(
        cx,
        t,
        key,
        &mut sup.restart,
        &mut sup.shutdown,
        &mut sup.significant,
    );
}

/// The keys every child (supervisor or process) has.
fn read_child_keys(
    cx: &mut Cx<'_>,
    t: &DeTable<'_>,
    key: &str,
    restart: &mut Option<At<Restart>>,
    shutdown: &mut Option<Shutdown>,
    significant: &mut Option<At<bool>>,
) {
    if let Some(v) = t.get("restart") {
        *restart = choice(
            cx,
            &join(key, "restart"),
            v,
            &[
                ("permanent", Restart::Permanent),
                ("transient", Restart::Transient),
                ("temporary", Restart::Temporary),
            ],
        )
        .map(|r| At {
            v: r,
            at: v.span().start,
        });
    }
    if let Some(v) = t.get("shutdown") {
        *shutdown = shutdown_spec(cx, &join(key, "shutdown"), v);
    }
    if let Some(v) = t.get("significant") {
        *significant = boolean(cx, &join(key, "significant"), v).map(|b| At {
            v: b,
            at: v.span().start,
        });
    }
}

fn read_proc(cx: &mut Cx<'_>, t: &DeTable<'_>, key: &str, name: At<String>) -> RawProc {
    let k = |n: &str| join(key, n);
    let mut p = RawProc {
        name,
        key: key.to_string(),
        ..RawProc::default()
    };
    read_child_keys(
        cx,
        t,
        key,
        &mut p.restart,
        &mut p.shutdown,
        &mut p.significant,
    );
    match t.get("command") {
        Some(v) => {
            if let Some(argv) = strings(cx, &k("command"), v) {
                if argv.is_empty() || argv[0].v.is_empty() {
                    cx.error(
                        v.span().start,
                        &k("command"),
                        "the command is empty",
                        Some("give the program and its arguments, like [\"redis-server\", \"--port\", \"6380\"]".into()),
                    );
                } else {
                    p.command = Some(argv.into_iter().map(|a| a.v).collect());
                }
            }
        }
        None => cx.error(
            p.name.at,
            key,
            "missing `command`",
            Some(
                "add command = [\"program\", \"arg\", ...] (an argv array; no shell is involved)"
                    .into(),
            ),
        ),
    }
    if let Some(v) = t.get("stop_signal") {
        p.stop_signal = signal(cx, &k("stop_signal"), v);
    }
    if let Some(v) = t.get("success_exit_codes") {
        p.success_exit_codes = exit_codes(cx, &k("success_exit_codes"), v);
    }
    if let Some(v) = t.get("env") {
        match v.get_ref().as_table() {
            Some(env) => {
                for (name, value) in env {
                    let key = format!("{}.{}", k("env"), name.get_ref());
                    match value.get_ref().as_str() {
                        Some(s) => p.env.push((name.get_ref().to_string(), s.to_string())),
                        None => type_error(cx, &key, value, "a string"),
                    }
                }
            }
            None => type_error(
                cx,
                &k("env"),
                v,
                "a table of strings, like { RUST_LOG = \"info\" }",
            ),
        }
    }
    for (field, slot) in [("cwd", &mut p.cwd)] {
        if let Some(v) = t.get(field) {
            *slot = string(cx, &k(field), v).map(|s| s.v);
        }
    }
    for (field, slot) in [("user", &mut p.user), ("group", &mut p.group)] {
        if let Some(v) = t.get(field) {
            *slot = match v.get_ref() {
                DeValue::String(s) if !s.is_empty() => Some(s.to_string()),
                DeValue::Integer(_) => {
                    integer(cx, &k(field), v, 0, u32::MAX as i64).map(|n| n.to_string())
                }
                _ => {
                    type_error(cx, &k(field), v, "a name or a numeric id");
                    None
                }
            };
        }
    }
    if let Some(v) = t.get("backoff") {
        p.backoff = backoff(cx, &k("backoff"), v).map(|b| At {
            v: b,
            at: v.span().start,
        });
    }
    p
}

fn backoff(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Backoff> {
    let table = match v.get_ref() {
        DeValue::String(s) if s == "none" => return Some(Backoff::None),
        DeValue::String(s) if s == "exponential" => return Some(Backoff::DEFAULT),
        DeValue::Table(t) => t,
        _ => {
            cx.error(
                v.span().start,
                key,
                format!("invalid backoff {}", shown(v)),
                Some("use \"none\", \"exponential\", or a table like { initial = \"100ms\", max = \"5s\", multiplier = 2.0, jitter = 0.1, reset_after = \"10s\" }".into()),
            );
            return None;
        }
    };
    unknown_keys(cx, table, key, BACKOFF_KEYS, "backoff");
    let Backoff::Exponential {
        mut initial,
        mut max,
        mut multiplier,
        mut jitter,
        mut reset_after,
    } = Backoff::DEFAULT
    else {
        unreachable!("the default backoff is exponential")
    };
    let k = |n: &str| join(key, n);
    let mut ok = true;
    for (field, slot) in [
        ("initial", &mut initial),
        ("max", &mut max),
        ("reset_after", &mut reset_after),
    ] {
        if let Some(v) = table.get(field) {
            match duration(cx, &k(field), v, false) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    }
    if let Some(v) = table.get("multiplier") {
        match float(cx, &k("multiplier"), v) {
            Some(m) if m >= 1.0 && m.is_finite() => multiplier = m,
            Some(m) => {
                ok = false;
                cx.error(
                    v.span().start,
                    &k("multiplier"),
                    format!("multiplier {m} is below 1"),
                    Some("use 1.0 for a constant delay, 2.0 to double it".into()),
                );
            }
            None => ok = false,
        }
    }
    if let Some(v) = table.get("jitter") {
        match float(cx, &k("jitter"), v) {
            Some(j) if (0.0..1.0).contains(&j) => jitter = j,
            Some(j) => {
                ok = false;
                cx.error(
                    v.span().start,
                    &k("jitter"),
                    format!("jitter {j} is outside [0, 1)"),
                    Some("a fraction of the delay, like 0.1 for +/-10%".into()),
                );
            }
            None => ok = false,
        }
    }
    if initial > max {
        ok = false;
        cx.error(
            v.span().start,
            key,
            format!(
                "initial delay {} is longer than max {}",
                crate::spec::humanize(initial),
                crate::spec::humanize(max)
            ),
            Some("raise max or lower initial".into()),
        );
    }
    ok.then_some(Backoff::Exponential {
        initial,
        max,
        multiplier,
        jitter,
        reset_after,
    })
}

// ----- typed readers -----

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn unknown_keys(cx: &mut Cx<'_>, t: &DeTable<'_>, prefix: &str, known: &[&str], what: &str) {
    for (k, _) in t {
        let name = k.get_ref();
        if !known.contains(&name.as_ref()) {
            let hint = match closest(name, known) {
                Some(c) => format!(
                    "did you mean `{c}`? known {what} keys: {}",
                    known.join(", ")
                ),
                None => format!("known {what} keys: {}", known.join(", ")),
            };
            cx.error(
                k.span().start,
                &join(prefix, name),
                format!("unknown key `{name}`"),
                Some(hint),
            );
        }
    }
}

/// The known key closest to a typo (edit distance at most 2).
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn shown(v: &Value<'_>) -> String {
    match v.get_ref() {
        DeValue::String(s) => format!("\"{s}\""),
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        other => format!("({})", other.type_str()),
    }
}

fn type_error(cx: &mut Cx<'_>, key: &str, v: &Value<'_>, expected: &str) {
    cx.error(
        v.span().start,
        key,
        format!(
            "expected {expected}, found {} {}",
            v.get_ref().type_str(),
            shown(v)
        ),
        None,
    );
}

fn string(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<At<String>> {
    match v.get_ref() {
        DeValue::String(s) => Some(At {
            v: s.to_string(),
            at: v.span().start,
        }),
        _ => {
            type_error(cx, key, v, "a string");
            None
        }
    }
}

fn strings(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Vec<At<String>>> {
    let Some(items) = v.get_ref().as_array() else {
        type_error(cx, key, v, "an array of strings");
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match string(cx, &format!("{key}[{i}]"), item) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn boolean(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<bool> {
    match v.get_ref().as_bool() {
        Some(b) => Some(b),
        None => {
            type_error(cx, key, v, "true or false");
            None
        }
    }
}

fn integer(cx: &mut Cx<'_>, key: &str, v: &Value<'_>, min: i64, max: i64) -> Option<i64> {
    let Some(i) = v.get_ref().as_integer() else {
        type_error(cx, key, v, "a whole number");
        return None;
    };
    let digits = i.as_str().replace('_', "");
    let digits = digits
        .trim_start_matches("0x")
        .trim_start_matches("0o")
        .trim_start_matches("0b");
    match i64::from_str_radix(digits, i.radix()) {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            cx.error(
                v.span().start,
                key,
                format!("{} is out of range", i.as_str()),
                Some(format!("use a whole number from {min} to {max}")),
            );
            None
        }
    }
}

fn float(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<f64> {
    match v.get_ref() {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => integer(cx, key, v, 0, 1 << 20).map(|n| n as f64),
        _ => {
            type_error(cx, key, v, "a number");
            None
        }
    }
}

fn choice<T: Copy>(cx: &mut Cx<'_>, key: &str, v: &Value<'_>, options: &[(&str, T)]) -> Option<T> {
    let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let hint = Some(format!("expected one of {}", names.join(", ")));
    match v.get_ref().as_str() {
        Some(s) => match options.iter().find(|(n, _)| *n == s) {
            Some((_, t)) => Some(*t),
            None => {
                cx.error(v.span().start, key, format!("unknown value \"{s}\""), hint);
                None
            }
        },
        None => {
            cx.error(
                v.span().start,
                key,
                format!(
                    "expected a string, found {} {}",
                    v.get_ref().type_str(),
                    shown(v)
                ),
                hint,
            );
            None
        }
    }
}

fn duration(cx: &mut Cx<'_>, key: &str, v: &Value<'_>, zero_ok: bool) -> Option<Duration> {
    let hint = Some("write a duration like \"500ms\", \"5s\" or \"1m 30s\"".to_string());
    let Some(s) = v.get_ref().as_str() else {
        cx.error(
            v.span().start,
            key,
            format!(
                "expected a duration string, found {} {}",
                v.get_ref().type_str(),
                shown(v)
            ),
            hint,
        );
        return None;
    };
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() && !zero_ok => {
            cx.error(v.span().start, key, "must be longer than zero", hint);
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(
                v.span().start,
                key,
                format!("invalid duration \"{s}\": {e}"),
                hint,
            );
            None
        }
    }
}

fn shutdown_spec(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Shutdown> {
    match v.get_ref().as_str() {
        Some("brutal_kill") => Some(Shutdown::BrutalKill),
        Some("infinity") => Some(Shutdown::Infinity),
        Some(_) => duration(cx, key, v, true).map(Shutdown::Timeout),
        None => {
            cx.error(
                v.span().start,
                key,
                format!("expected a duration, \"brutal_kill\" or \"infinity\", found {} {}", v.get_ref().type_str(), shown(v)),
                Some("write shutdown = \"10s\" (grace before SIGKILL), \"brutal_kill\" or \"infinity\"".into()),
            );
            None
        }
    }
}

fn signal(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Signal> {
    let parsed = match v.get_ref() {
        DeValue::String(s) => Signal::parse(s),
        DeValue::Integer(_) => integer(cx, key, v, 1, 64).map(|n| Signal(n as i32)),
        _ => None,
    };
    match parsed {
        Some(Signal(19)) => {
            cx.error(
                v.span().start,
                key,
                "SIGSTOP cannot stop a process",
                Some("use SIGTERM, SIGINT, SIGQUIT, ...".into()),
            );
            None
        }
        Some(s) => Some(s),
        None => {
            cx.error(
                v.span().start,
                key,
                format!("unknown signal {}", shown(v)),
                Some("use a name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\", or a number".into()),
            );
            None
        }
    }
}

fn exit_codes(cx: &mut Cx<'_>, key: &str, v: &Value<'_>) -> Option<Vec<i32>> {
    let Some(items) = v.get_ref().as_array() else {
        type_error(cx, key, v, "an array of exit codes, like [0, 143]");
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.push(integer(cx, &format!("{key}[{i}]"), item, 0, 255)? as i32);
    }
    Some(out)
}
