//! Pass 1: the spanned TOML document → raw supervisor and process tables.
//!
//! Reads every known key with its type and range, and rejects unknown keys, without
//! stopping at the first problem: a bad value becomes [`Field::Bad`] (its error is already
//! recorded) so that later checks can skip it instead of piling up follow-on errors. This
//! pass never resolves names; [`super::validate`] does that.
//!
//! Owns the schema: which keys exist in which table and how each is read. The generic
//! value readers are [`super::toolkit`]'s; the nested tables `ready`, `health`, `output`
//! and the operations keys are read by [`super::probe`], [`super::output`] and
//! [`super::ops`], which this walk calls. It must never resolve names, fill defaults
//! that depend on other keys, or read anything but the spanned document it is given.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::toolkit::{
    Field, boolean, choice, command, describe, duration, entries, integer, join, nonempty_string,
    number, parse_duration, quote, section, suggest, table, type_error, unknown_key, value_text,
};
use super::{Cx, ops};
use crate::spec::{
    AutoShutdown, Backoff, CAPABILITY_NAMES, CapSet, Leftovers, Ops, Output, ROOT_NAME, Restart,
    Shutdown, Signal, Strategy,
};

/// One entry of a `children` list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChildRef {
    /// The name as written.
    pub name: String,
    /// Its position in the list.
    pub index: usize,
    /// Byte offset of the entry.
    pub at: usize,
}

/// A `[supervisor.NAME]` table, or the top level for the root.
#[derive(Clone, Debug)]
pub(crate) struct RawSupervisor {
    /// The name (`root` for the top level).
    pub name: String,
    /// Key path prefix: `supervisor.NAME`, or empty for the root.
    pub key: String,
    /// Byte offset of the table header (0 for the root).
    pub at: usize,
    /// Byte offset of `NAME` in the header.
    pub name_at: usize,
    pub strategy: Field<Strategy>,
    pub intensity: Field<u32>,
    pub period: Field<Duration>,
    /// The valid entries of `children` (bad entries are reported and left out).
    pub children: Field<Vec<ChildRef>>,
    pub auto_shutdown: Field<AutoShutdown>,
    pub restart: Field<Restart>,
    pub shutdown: Field<Shutdown>,
    pub significant: Field<bool>,
}

/// A `[process.NAME]` table.
#[derive(Clone, Debug)]
pub(crate) struct RawProcess {
    /// The name.
    pub name: String,
    /// Key path prefix: `process.NAME`.
    pub key: String,
    /// Byte offset of the table header.
    pub at: usize,
    /// Byte offset of `NAME` in the header.
    pub name_at: usize,
    pub command: Field<Vec<String>>,
    pub restart: Field<Restart>,
    pub shutdown: Field<Shutdown>,
    pub stop_signal: Field<Signal>,
    pub leftovers: Field<Leftovers>,
    pub significant: Field<bool>,
    pub success_exit_codes: Field<Vec<i32>>,
    pub env: Field<Vec<(String, String)>>,
    pub cwd: Field<PathBuf>,
    pub user: Field<String>,
    pub group: Field<String>,
    pub no_new_privileges: Field<bool>,
    pub capabilities: Field<CapSet>,
    pub backoff: Field<Backoff>,
    pub ready: Field<crate::spec::ReadySpec>,
    pub health: Field<crate::spec::HealthSpec>,
    /// `output`; for a file, `at` is the offset of the `file` value.
    pub output: Field<Output>,
}

/// The whole file, read but not yet resolved.
#[derive(Clone, Debug)]
pub(crate) struct RawFile {
    /// The top-level keys.
    pub root: RawSupervisor,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Field<Duration>,
    /// `[supervisor.NAME]` tables in file order.
    pub supervisors: Vec<RawSupervisor>,
    /// `[process.NAME]` tables in file order.
    pub processes: Vec<RawProcess>,
    /// Names whose table is not a table (already reported): references to them are not
    /// reported again as unknown.
    pub broken: Vec<String>,
    /// `[control]`, `[http]`, `termination_log`.
    pub ops: Ops,
}

pub(super) const TOP_KEYS: &[&str] = &[
    "strategy",
    "intensity",
    "period",
    "children",
    "auto_shutdown",
    "shutdown_timeout",
    "supervisor",
    "process",
    "control",
    "http",
    "termination_log",
];
pub(super) const SUPERVISOR_KEYS: &[&str] = &[
    "strategy",
    "intensity",
    "period",
    "children",
    "auto_shutdown",
    "restart",
    "shutdown",
    "significant",
];
pub(super) const PROCESS_KEYS: &[&str] = &[
    "command",
    "restart",
    "shutdown",
    "stop_signal",
    "leftovers",
    "significant",
    "success_exit_codes",
    "env",
    "cwd",
    "user",
    "group",
    "no_new_privileges",
    "capabilities",
    "backoff",
    "ready",
    "health",
    "output",
];
pub(super) const BACKOFF_KEYS: &[&str] = &["initial", "max", "multiplier", "jitter", "reset_after"];

const STRATEGIES: &[(&str, Strategy)] = &[
    ("one_for_one", Strategy::OneForOne),
    ("one_for_all", Strategy::OneForAll),
    ("rest_for_one", Strategy::RestForOne),
];
const RESTARTS: &[(&str, Restart)] = &[
    ("permanent", Restart::Permanent),
    ("transient", Restart::Transient),
    ("temporary", Restart::Temporary),
];
const LEFTOVERS: &[(&str, Leftovers)] = &[("stop", Leftovers::Stop), ("keep", Leftovers::Keep)];
const AUTO_SHUTDOWNS: &[(&str, AutoShutdown)] = &[
    ("never", AutoShutdown::Never),
    ("any_significant", AutoShutdown::AnySignificant),
    ("all_significant", AutoShutdown::AllSignificant),
];

/// Reads the document. `None` after a syntax error (already reported).
pub(crate) fn read(cx: &mut Cx<'_>) -> Option<RawFile> {
    let source = cx.source;
    let doc = match DeTable::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            cx.error(
                at,
                "",
                format!("invalid TOML: {}", e.message().trim_end()),
                Some("fix the syntax; see https://toml.io for the format".into()),
            );
            return None;
        }
    };
    let mut file = RawFile {
        root: RawSupervisor::new(ROOT_NAME.into(), String::new(), 0, 0),
        shutdown_timeout: Field::Missing,
        supervisors: Vec::new(),
        processes: Vec::new(),
        broken: Vec::new(),
        ops: Ops::default(),
    };
    for (k, k_at, v) in entries(doc.get_ref()) {
        match k {
            "shutdown_timeout" => {
                file.shutdown_timeout = duration(cx, k, v, false);
            }
            "control" | "http" | "termination_log" => ops::read(cx, &mut file.ops, k, v),
            "supervisor" | "process" => {
                let Some(table) = table(cx, k, v) else {
                    continue;
                };
                for (name, name_at, v) in entries(table) {
                    let key = format!("{k}.{name}");
                    let Some(body) = section(cx, &key, v) else {
                        file.broken.push(name.to_string());
                        continue;
                    };
                    let at = v.span().start;
                    if k == "supervisor" {
                        let mut s = RawSupervisor::new(name.into(), key, at, name_at);
                        s.read(cx, body, SUPERVISOR_KEYS);
                        file.supervisors.push(s);
                    } else {
                        file.processes
                            .push(RawProcess::read(cx, name, key, at, name_at, body));
                    }
                }
            }
            "restart" | "shutdown" | "significant" => cx.error(
                k_at,
                k,
                format!("unknown top-level key `{k}`"),
                Some(format!(
                    "the top level is the root supervisor, which is never restarted by a parent; \
                     `{k}` belongs in a [process.NAME] or [supervisor.NAME] table"
                )),
            ),
            _ => file.root.read_key(cx, k, k_at, v, TOP_KEYS),
        }
    }
    Some(file)
}

impl RawSupervisor {
    fn new(name: String, key: String, at: usize, name_at: usize) -> Self {
        RawSupervisor {
            name,
            key,
            at,
            name_at,
            strategy: Field::Missing,
            intensity: Field::Missing,
            period: Field::Missing,
            children: Field::Missing,
            auto_shutdown: Field::Missing,
            restart: Field::Missing,
            shutdown: Field::Missing,
            significant: Field::Missing,
        }
    }

    fn read(&mut self, cx: &mut Cx<'_>, body: &DeTable<'_>, allowed: &[&str]) {
        for (k, k_at, v) in entries(body) {
            self.read_key(cx, k, k_at, v, allowed);
        }
    }

    fn read_key(
        &mut self,
        cx: &mut Cx<'_>,
        k: &str,
        k_at: usize,
        v: &Spanned<DeValue<'_>>,
        allowed: &[&str],
    ) {
        let path = join(&self.key, k);
        match k {
            "strategy" => self.strategy = choice(cx, &path, v, "strategy", STRATEGIES),
            "intensity" => self.intensity = intensity(cx, &path, v),
            "period" => self.period = period(cx, &path, v),
            "children" => self.children = children(cx, &path, v),
            "auto_shutdown" => {
                self.auto_shutdown = choice(cx, &path, v, "auto_shutdown value", AUTO_SHUTDOWNS)
            }
            "restart" if !self.key.is_empty() => {
                self.restart = choice(cx, &path, v, "restart type", RESTARTS)
            }
            "shutdown" if !self.key.is_empty() => self.shutdown = shutdown(cx, &path, v),
            "significant" if !self.key.is_empty() => self.significant = boolean(cx, &path, v),
            _ => unknown_key(cx, &self.key, k, k_at, allowed),
        }
    }
}

impl RawProcess {
    fn read(
        cx: &mut Cx<'_>,
        name: &str,
        key: String,
        at: usize,
        name_at: usize,
        body: &DeTable<'_>,
    ) -> Self {
        let mut p = RawProcess {
            name: name.into(),
            key,
            at,
            name_at,
            command: Field::Missing,
            restart: Field::Missing,
            shutdown: Field::Missing,
            stop_signal: Field::Missing,
            leftovers: Field::Missing,
            significant: Field::Missing,
            success_exit_codes: Field::Missing,
            env: Field::Missing,
            cwd: Field::Missing,
            user: Field::Missing,
            group: Field::Missing,
            no_new_privileges: Field::Missing,
            capabilities: Field::Missing,
            backoff: Field::Missing,
            ready: Field::Missing,
            health: Field::Missing,
            output: Field::Missing,
        };
        for (k, k_at, v) in entries(body) {
            let path = join(&p.key, k);
            match k {
                "command" => p.command = command(cx, &path, v),
                "restart" => p.restart = choice(cx, &path, v, "restart type", RESTARTS),
                "shutdown" => p.shutdown = shutdown(cx, &path, v),
                "stop_signal" => p.stop_signal = stop_signal(cx, &path, v),
                "leftovers" => {
                    p.leftovers = choice(cx, &path, v, "leftovers value", LEFTOVERS);
                }
                "significant" => p.significant = boolean(cx, &path, v),
                "success_exit_codes" => p.success_exit_codes = exit_codes(cx, &path, v),
                "env" => p.env = env(cx, &path, v),
                "cwd" => {
                    p.cwd = match nonempty_string(cx, &path, v, "a directory") {
                        Some(s) => Field::Set(PathBuf::from(s), v.span().start),
                        None => Field::Bad,
                    }
                }
                "user" => p.user = id(cx, &path, v, "user"),
                "group" => p.group = id(cx, &path, v, "group"),
                "no_new_privileges" => p.no_new_privileges = boolean(cx, &path, v),
                "capabilities" => p.capabilities = capabilities(cx, &path, v),
                "backoff" => p.backoff = backoff(cx, &path, v),
                "ready" => p.ready = super::probe::ready(cx, &path, v),
                "health" => p.health = super::probe::health(cx, &path, v),
                "output" => p.output = super::output::output(cx, &path, v),
                _ => unknown_key(cx, &p.key, k, k_at, PROCESS_KEYS),
            }
        }
        if p.command == Field::Missing {
            cx.error(
                at,
                &join(&p.key, "command"),
                format!("process \"{name}\" has no command"),
                Some(format!(
                    "add command = [\"program\", \"arg\", ...] to [{}]",
                    p.key
                )),
            );
            p.command = Field::Bad;
        }
        p
    }
}

const SHUTDOWN_HINT: &str = "write a grace period with a unit such as \"5s\" (the stop signal, then SIGKILL after it), \"brutal_kill\" or \"infinity\"";

fn period(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Duration> {
    if let DeValue::String(s) = v.get_ref()
        && s.as_ref() == "infinity"
    {
        cx.error(
            v.span().start,
            path,
            "period cannot be \"infinity\"",
            Some(
                "give a finite duration such as \"5s\" (OTP rejects an infinite period too)".into(),
            ),
        );
        return Field::Bad;
    }
    duration(cx, path, v, false)
}

fn intensity(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<u32> {
    let at = v.span().start;
    match (v.get_ref(), integer(v.get_ref())) {
        (_, Some(Some(n))) if n < 0 => {
            cx.error(
                at,
                path,
                format!("intensity must be 0 or more, found {n}"),
                Some("intensity is how many restarts are allowed within period; 0 means give up at the first exit".into()),
            );
            Field::Bad
        }
        (_, Some(n)) => match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Field::Set(n, at),
            None => {
                cx.error(
                    at,
                    path,
                    format!("intensity is too large: {}", describe(v.get_ref())),
                    Some(format!("use at most {}", u32::MAX)),
                );
                Field::Bad
            }
        },
        (DeValue::String(s), _) if s.as_ref() == "infinity" => {
            cx.error(
                at,
                path,
                "intensity cannot be \"infinity\"",
                Some("a supervisor must be able to give up (OTP rejects infinity too); use a large number such as 1000".into()),
            );
            Field::Bad
        }
        _ => {
            type_error(
                cx,
                path,
                v,
                "an integer (restarts allowed within period)",
                None,
            );
            Field::Bad
        }
    }
}

fn shutdown(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Shutdown> {
    let at = v.span().start;
    let DeValue::String(s) = v.get_ref() else {
        let hint = match integer(v.get_ref()) {
            Some(Some(n)) if n >= 0 => format!(
                "durations need a unit: write \"{n}s\" or \"{n}ms\"; or use \"brutal_kill\" or \"infinity\""
            ),
            _ => SHUTDOWN_HINT.into(),
        };
        type_error(
            cx,
            path,
            v,
            "a duration string, \"brutal_kill\" or \"infinity\"",
            Some(hint),
        );
        return Field::Bad;
    };
    match s.as_ref() {
        "brutal_kill" => Field::Set(Shutdown::BrutalKill, at),
        "infinity" => Field::Set(Shutdown::Infinity, at),
        _ => match parse_duration(
            cx,
            path,
            v,
            s,
            SHUTDOWN_HINT,
            Some("\"infinity\" to wait for as long as it takes"),
        ) {
            Some(d) => Field::Set(Shutdown::Timeout(d), at),
            None => Field::Bad,
        },
    }
}

fn stop_signal(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Signal> {
    let at = v.span().start;
    let text = match (v.get_ref(), integer(v.get_ref())) {
        (DeValue::String(s), _) => s.to_string(),
        (_, Some(n)) => n.map_or_else(|| "?".into(), |n| n.to_string()),
        _ => {
            type_error(
                cx,
                path,
                v,
                "a signal name such as \"SIGTERM\" or a number",
                None,
            );
            return Field::Bad;
        }
    };
    match Signal::parse(&text) {
        Some(sig) if sig.0 == 19 => {
            cx.error(
                at,
                path,
                "SIGSTOP cannot be a stop signal: it only pauses the process, which then never exits",
                Some("use \"SIGTERM\" (the default), \"SIGINT\", \"SIGQUIT\" or another signal the program handles".into()),
            );
            Field::Bad
        }
        Some(sig) => Field::Set(sig, at),
        None => {
            cx.error(
                at,
                path,
                format!("unknown signal {}", quote(&text)),
                Some("use a name such as \"SIGTERM\", \"TERM\" or \"SIGINT\", or a number from 1 to 64".into()),
            );
            Field::Bad
        }
    }
}

fn exit_codes(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Vec<i32>> {
    let DeValue::Array(items) = v.get_ref() else {
        type_error(cx, path, v, "an array of exit codes such as [0, 143]", None);
        return Field::Bad;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match integer(item.get_ref()) {
            Some(Some(n)) if (0..=255).contains(&n) => out.push(n as i32),
            Some(_) => {
                cx.error(
                    item.span().start,
                    &p,
                    format!("exit code out of range: {}", describe(item.get_ref())),
                    Some("exit codes are 0 to 255".into()),
                );
                ok = false;
            }
            None => {
                type_error(cx, &p, item, "an integer from 0 to 255", None);
                ok = false;
            }
        }
    }
    if ok {
        Field::Set(out, v.span().start)
    } else {
        Field::Bad
    }
}

fn env(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Vec<(String, String)>> {
    let DeValue::Table(t) = v.get_ref() else {
        type_error(
            cx,
            path,
            v,
            "a table of strings such as { LANG = \"C.UTF-8\" }",
            None,
        );
        return Field::Bad;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, k_at, val) in entries(t) {
        let p = format!("{path}.{k}");
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            cx.error(
                k_at,
                &p,
                format!("invalid environment variable name {}", quote(k)),
                Some("names must be non-empty and contain no '=' or NUL".into()),
            );
            ok = false;
            continue;
        }
        match val.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                cx.error(
                    val.span().start,
                    &p,
                    "must not contain a NUL character",
                    None,
                );
                ok = false;
            }
            DeValue::String(s) => out.push((k.to_string(), s.to_string())),
            other => {
                let hint = match other {
                    DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                        Some(format!("quote it: {k} = \"{}\"", value_text(other)))
                    }
                    _ => None,
                };
                type_error(cx, &p, val, "a string", hint);
                ok = false;
            }
        }
    }
    if ok {
        Field::Set(out, v.span().start)
    } else {
        Field::Bad
    }
}

fn id(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>, what: &str) -> Field<String> {
    let at = v.span().start;
    match (v.get_ref(), integer(v.get_ref())) {
        (_, Some(Some(n))) if (0..=u32::MAX as i64).contains(&n) => Field::Set(n.to_string(), at),
        (_, Some(_)) => {
            cx.error(
                at,
                path,
                format!("invalid {what} id: {}", describe(v.get_ref())),
                Some("numeric ids are 0 to 4294967295".into()),
            );
            Field::Bad
        }
        (DeValue::String(_), _) => match nonempty_string(cx, path, v, &format!("a {what} name")) {
            Some(s) => Field::Set(s.to_string(), at),
            None => Field::Bad,
        },
        _ => {
            type_error(cx, path, v, &format!("a {what} name or numeric id"), None);
            Field::Bad
        }
    }
}

/// `capabilities = ["CAP_NET_BIND_SERVICE", "chown"]`: Linux capability names, with or
/// without `CAP_`, in any case; `[]` keeps none.
fn capabilities(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<CapSet> {
    const FORM: &str = "e.g. capabilities = [\"CAP_NET_BIND_SERVICE\"]; [] keeps none";
    let DeValue::Array(items) = v.get_ref() else {
        type_error(
            cx,
            path,
            v,
            "an array of capability names",
            Some(FORM.into()),
        );
        return Field::Bad;
    };
    let mut set = CapSet::EMPTY;
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let DeValue::String(name) = item.get_ref() else {
            type_error(
                cx,
                &p,
                item,
                "a capability name (string)",
                Some(FORM.into()),
            );
            ok = false;
            continue;
        };
        match CapSet::parse_name(name) {
            Some(cap) => set = set.with(cap),
            None => {
                let upper = name.to_ascii_uppercase();
                let prefixed = upper.starts_with("CAP_");
                let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
                let hint = match suggest(bare, CAPABILITY_NAMES.iter().copied()) {
                    Some(s) => {
                        let s = if prefixed {
                            format!("CAP_{s}")
                        } else {
                            s.to_string()
                        };
                        format!(
                            "did you mean {}? see capabilities(7) for the names",
                            quote(&s)
                        )
                    }
                    _ => "use a Linux capability name such as \"CAP_NET_BIND_SERVICE\" or \
                          \"NET_BIND_SERVICE\"; see capabilities(7)"
                        .to_string(),
                };
                cx.error(
                    item.span().start,
                    &p,
                    format!("unknown capability {}", quote(name)),
                    Some(hint),
                );
                ok = false;
            }
        }
    }
    if ok {
        Field::Set(set, v.span().start)
    } else {
        Field::Bad
    }
}

fn children(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Vec<ChildRef>> {
    let DeValue::Array(items) = v.get_ref() else {
        type_error(
            cx,
            path,
            v,
            "an array of names",
            Some("e.g. children = [\"web\", \"workers\"]".into()),
        );
        return Field::Bad;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get_ref() {
            DeValue::String(s) => out.push(ChildRef {
                name: s.to_string(),
                index: i,
                at: item.span().start,
            }),
            _ => type_error(
                cx,
                &format!("{path}[{i}]"),
                item,
                "a name (string)",
                Some("list the names of [process.NAME] or [supervisor.NAME] tables".into()),
            ),
        }
    }
    Field::Set(out, v.span().start)
}

fn backoff(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Backoff> {
    let at = v.span().start;
    let table = match v.get_ref() {
        DeValue::String(s) => {
            return match s.as_ref() {
                "none" => Field::Set(Backoff::None, at),
                "exponential" => Field::Set(Backoff::DEFAULT, at),
                other => {
                    cx.error(
                        at,
                        path,
                        format!("unknown backoff {}", quote(other)),
                        Some("expected \"none\", \"exponential\" (the default schedule) or a table such as { initial = \"1s\", max = \"30s\" }".into()),
                    );
                    Field::Bad
                }
            };
        }
        DeValue::Table(t) => t,
        _ => {
            type_error(cx, path, v, "\"none\", \"exponential\" or a table", None);
            return Field::Bad;
        }
    };
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
    let mut ok = true;
    let (mut initial_at, mut max_at) = (None, None);
    for (k, k_at, val) in entries(table) {
        let p = format!("{path}.{k}");
        let val_at = val.span().start;
        match k {
            "initial" | "max" | "reset_after" => match duration(cx, &p, val, false) {
                Field::Set(d, _) => match k {
                    "initial" => {
                        initial = d;
                        initial_at = Some(val_at);
                    }
                    "max" => {
                        max = d;
                        max_at = Some(val_at);
                    }
                    _ => reset_after = d,
                },
                _ => ok = false,
            },
            "multiplier" => match number(val.get_ref()) {
                Some(m) if m.is_finite() && m >= 1.0 => multiplier = m,
                Some(_) => {
                    cx.error(
                        val_at,
                        &p,
                        format!(
                            "multiplier must be at least 1, found {}",
                            value_text(val.get_ref())
                        ),
                        Some(
                            "use 1 for a constant delay, 2 to double it after every restart".into(),
                        ),
                    );
                    ok = false;
                }
                None => {
                    type_error(cx, &p, val, "a number (at least 1)", None);
                    ok = false;
                }
            },
            "jitter" => match number(val.get_ref()) {
                Some(j) if (0.0..1.0).contains(&j) => jitter = j,
                Some(_) => {
                    cx.error(
                        val_at,
                        &p,
                        format!(
                            "jitter must be at least 0 and less than 1, found {}",
                            value_text(val.get_ref())
                        ),
                        Some("jitter is a fraction of the delay: 0.1 spreads it by +/- 10%".into()),
                    );
                    ok = false;
                }
                None => {
                    type_error(cx, &p, val, "a number from 0 to less than 1", None);
                    ok = false;
                }
            },
            _ => {
                unknown_key(cx, path, k, k_at, BACKOFF_KEYS);
                ok = false;
            }
        }
    }
    if ok && initial > max {
        let (at, key, fix) = match (initial_at, max_at) {
            (Some(at), _) => (at, format!("{path}.initial"), "lower initial or raise max"),
            (None, max_at) => (
                max_at.unwrap_or(at),
                format!("{path}.max"),
                "raise max or set a smaller initial (the default initial is 100ms)",
            ),
        };
        cx.error(
            at,
            &key,
            format!(
                "initial delay {} is longer than max {}",
                crate::spec::humanize(initial),
                crate::spec::humanize(max)
            ),
            Some(fix.into()),
        );
        ok = false;
    }
    if ok {
        Field::Set(
            Backoff::Exponential {
                initial,
                max,
                multiplier,
                jitter,
                reset_after,
            },
            at,
        )
    } else {
        Field::Bad
    }
}
