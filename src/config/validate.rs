//! Pass 2: raw tables → the validated [`Tree`].
//!
//! Checks names, references (unknown, twice, never), cycles and OTP's bad combinations,
//! fills every default, and builds the arena in depth-first start order. Also emits the
//! warnings `vigil check` and `vigil run` print.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::Cx;
use super::raw::{At, RawFile, RawProc, RawSup};
use crate::core::backoff;
use crate::spec::{
    AutoShutdown, Backoff, Node, NodeId, NodeKind, ProcessSpec, ROOT_NAME, Restart, Shutdown,
    Signal, Strategy, SupervisorSpec, Tree, humanize,
};

/// Default restart intensity (Elixir's; OTP's is 1).
pub const DEFAULT_INTENSITY: u32 = 3;
/// Default intensity period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// Default shutdown grace of a process.
pub const DEFAULT_PROCESS_SHUTDOWN: Duration = Duration::from_secs(5);

enum Def<'a> {
    Sup(&'a RawSup),
    Proc(&'a RawProc),
}

impl<'a> Def<'a> {
    fn name(&self) -> &'a At<String> {
        match *self {
            Def::Sup(s) => &s.name,
            Def::Proc(p) => &p.name,
        }
    }
}

/// Builds the tree; `None` when anything is wrong (each problem is in `cx`).
pub(crate) fn build(cx: &mut Cx<'_>, file: RawFile) -> Option<Tree> {
    let mut defs: BTreeMap<&str, Def<'_>> = BTreeMap::new();
    for def in file
        .sups
        .iter()
        .map(Def::Sup)
        .chain(file.procs.iter().map(Def::Proc))
    {
        let name = def.name();
        if !valid_name(&name.v) {
            cx.error(
                name.at,
                &key_of(&def),
                format!("invalid name `{}`", name.v),
                Some(
                    "names start with a-z or 0-9 and contain only a-z, 0-9, `_`, `.` and `-`"
                        .into(),
                ),
            );
        } else if name.v == ROOT_NAME {
            cx.error(
                name.at,
                &key_of(&def),
                format!("the name `{ROOT_NAME}` is reserved for the top-level supervisor"),
                Some("choose another name".into()),
            );
        }
        if let Some(other) = defs.get(name.v.as_str()) {
            let (line, col) = cx.line_col(other.name().at);
            cx.error(
                name.at,
                &key_of(&def),
                format!(
                    "`{}` is defined both as a supervisor and as a process (other at {line}:{col})",
                    name.v
                ),
                Some("names are unique across [supervisor.*] and [process.*]".into()),
            );
            continue;
        }
        defs.insert(name.v.as_str(), def);
    }

    // References: every name listed in some `children`, with where.
    let mut refs: HashMap<&str, Vec<usize>> = HashMap::new();
    for sup in std::iter::once(&file.root).chain(file.sups.iter()) {
        let list_key = if sup.key.is_empty() {
            "children".to_string()
        } else {
            format!("{}.children", sup.key)
        };
        for (i, child) in sup.children.iter().enumerate() {
            let key = format!("{list_key}[{i}]");
            if !defs.contains_key(child.v.as_str()) {
                let hint = if child.v == ROOT_NAME {
                    "the top-level supervisor cannot be a child".to_string()
                } else {
                    format!("define [process.{0}] or [supervisor.{0}]", child.v)
                };
                cx.error(
                    child.at,
                    &key,
                    format!("unknown name `{}`", child.v),
                    Some(hint),
                );
                continue;
            }
            let seen = refs.entry(child.v.as_str()).or_default();
            if let Some(&first) = seen.first() {
                let (line, col) = cx.line_col(first);
                cx.error(
                    child.at,
                    &key,
                    format!("`{}` is listed as a child more than once (first at {line}:{col})", child.v),
                    Some("each supervisor or process has exactly one parent and one place in its start order".into()),
                );
            }
            seen.push(child.at);
        }
    }
    for (name, def) in &defs {
        if !refs.contains_key(name) {
            cx.error(
                def.name().at,
                &key_of(def),
                format!("`{name}` is defined but not listed in any `children`"),
                Some(format!("add \"{name}\" to the children of the root or of a supervisor, or remove the table")),
            );
        }
    }
    cycles(cx, &file, &defs);

    // Defaults and OTP's bad combinations.
    let auto_of = |sup: &RawSup| {
        sup.auto_shutdown
            .as_ref()
            .map_or(AutoShutdown::Never, |a| a.v)
    };
    let mut checked = std::collections::HashSet::new();
    for parent in std::iter::once(&file.root).chain(file.sups.iter()) {
        for child in &parent.children {
            let Some(def) = defs.get(child.v.as_str()) else {
                continue;
            };
            if !checked.insert(child.v.as_str()) {
                continue; // Listed twice: already reported, and checked once is enough.
            }
            let (restart, significant, key) = match def {
                Def::Sup(s) => (&s.restart, &s.significant, &s.key),
                Def::Proc(p) => (&p.restart, &p.significant, &p.key),
            };
            let Some(sig) = significant.as_ref().filter(|s| s.v) else {
                continue;
            };
            let sig_key = format!("{key}.significant");
            if restart.as_ref().is_none_or(|r| r.v == Restart::Permanent) {
                cx.error(
                    sig.at,
                    &sig_key,
                    "a permanent child cannot be significant (OTP bad_combination)",
                    Some(
                        "set restart = \"transient\" or \"temporary\", or remove significant"
                            .into(),
                    ),
                );
            }
            if auto_of(parent) == AutoShutdown::Never {
                let parent_name = if parent.key.is_empty() {
                    "the top level".to_string()
                } else {
                    format!("[{}]", parent.key)
                };
                cx.error(
                    sig.at,
                    &sig_key,
                    "significant child of a supervisor with auto_shutdown = \"never\" (OTP bad_combination)",
                    Some(format!(
                        "set auto_shutdown = \"any_significant\" or \"all_significant\" in {parent_name}, or remove significant"
                    )),
                );
            }
        }
    }
    if cx.has_errors() {
        return None;
    }

    let mut tree = Tree {
        nodes: Vec::new(),
        shutdown_timeout: file.shutdown_timeout.as_ref().map(|t| t.v),
    };
    add(&mut tree, &defs, Def::Sup(&file.root), None);
    warnings(cx, &tree, &defs);
    Some(tree)
}

fn key_of(def: &Def<'_>) -> String {
    match def {
        Def::Sup(s) => s.key.clone(),
        Def::Proc(p) => p.key.clone(),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
}

/// Reports every supervisor that contains itself, once per cycle.
fn cycles(cx: &mut Cx<'_>, file: &RawFile, defs: &BTreeMap<&str, Def<'_>>) {
    let children = |name: &str| -> Vec<&At<String>> {
        match defs.get(name) {
            Some(Def::Sup(s)) => s.children.iter().collect(),
            _ => Vec::new(),
        }
    };
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut color: HashMap<&str, u8> = HashMap::new();
    let mut reported: Vec<Vec<String>> = Vec::new();
    for start in file.sups.iter().map(|s| s.name.v.as_str()) {
        if color.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        // Iterative DFS with an explicit path.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        color.insert(start, 1);
        while let Some((node, next)) = path.last().copied() {
            let kids = children(node);
            if next >= kids.len() {
                color.insert(node, 2);
                path.pop();
                continue;
            }
            path.last_mut().expect("UNWRAP: non-empty").1 += 1;
            let kid = kids[next];
            match color.get(kid.v.as_str()).copied().unwrap_or(0) {
                0 if matches!(defs.get(kid.v.as_str()), Some(Def::Sup(_))) => {
                    color.insert(kid.v.as_str(), 1);
                    path.push((kid.v.as_str(), 0));
                }
                1 => {
                    let from = path.iter().position(|(n, _)| *n == kid.v).unwrap_or(0);
                    let mut names: Vec<String> =
                        path[from..].iter().map(|(n, _)| n.to_string()).collect();
                    let mut key = names.clone();
                    key.sort();
                    if !reported.contains(&key) {
                        reported.push(key);
                        names.push(kid.v.clone());
                        cx.error(
                            kid.at,
                            &format!("supervisor.{node}.children"),
                            format!("supervisor `{}` contains itself: {}", kid.v, names.join(" → ")),
                            Some("a supervision tree cannot have cycles; remove one of these references".into()),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Appends `def` and, depth-first, its children; returns its id.
fn add(
    tree: &mut Tree,
    defs: &BTreeMap<&str, Def<'_>>,
    def: Def<'_>,
    parent: Option<NodeId>,
) -> NodeId {
    let id = NodeId(tree.nodes.len() as u32);
    let node = match &def {
        Def::Sup(s) => Node {
            name: s.name.v.clone(),
            parent,
            restart: s.restart.as_ref().map_or(Restart::Permanent, |r| r.v),
            shutdown: s.shutdown.unwrap_or(Shutdown::Infinity),
            significant: s.significant.as_ref().is_some_and(|b| b.v),
            kind: NodeKind::Supervisor(SupervisorSpec {
                strategy: s.strategy.unwrap_or(Strategy::OneForOne),
                intensity: s.intensity.unwrap_or(DEFAULT_INTENSITY),
                period: s.period.unwrap_or(DEFAULT_PERIOD),
                auto_shutdown: s
                    .auto_shutdown
                    .as_ref()
                    .map_or(AutoShutdown::Never, |a| a.v),
                children: Vec::new(),
            }),
        },
        Def::Proc(p) => Node {
            name: p.name.v.clone(),
            parent,
            restart: p.restart.as_ref().map_or(Restart::Permanent, |r| r.v),
            shutdown: p
                .shutdown
                .unwrap_or(Shutdown::Timeout(DEFAULT_PROCESS_SHUTDOWN)),
            significant: p.significant.as_ref().is_some_and(|b| b.v),
            kind: NodeKind::Process(ProcessSpec {
                command: p.command.clone().unwrap_or_default(),
                stop_signal: p.stop_signal.unwrap_or(Signal::TERM),
                success_exit_codes: p.success_exit_codes.clone().unwrap_or_else(|| vec![0]),
                env: p.env.clone(),
                cwd: p.cwd.as_ref().map(Into::into),
                user: p.user.clone(),
                group: p.group.clone(),
                backoff: p.backoff.as_ref().map_or(Backoff::DEFAULT, |b| b.v),
            }),
        },
    };
    tree.nodes.push(node);
    if let Def::Sup(s) = def {
        let mut ids = Vec::new();
        for child in &s.children {
            let child_def = match defs.get(child.v.as_str()) {
                Some(Def::Sup(s)) => Def::Sup(s),
                Some(Def::Proc(p)) => Def::Proc(p),
                None => continue,
            };
            ids.push(add(tree, defs, child_def, Some(id)));
        }
        if let NodeKind::Supervisor(spec) = &mut tree.nodes[id.index()].kind {
            spec.children = ids;
        }
    }
    id
}

fn warnings(cx: &mut Cx<'_>, tree: &Tree, defs: &BTreeMap<&str, Def<'_>>) {
    for id in tree.ids() {
        let node = tree.node(id);
        let Some(parent) = node.parent.map(|p| tree.node(p)) else {
            continue;
        };
        let spec = parent
            .as_supervisor()
            .expect("UNWRAP: parents are supervisors");
        let def = defs.get(node.name.as_str());
        match (&node.kind, def) {
            (NodeKind::Process(p), Some(Def::Proc(raw))) if node.restart != Restart::Temporary => {
                let fastest = backoff::min_time_to_exhaust(&p.backoff, spec.intensity);
                if spec.intensity > 0 && fastest > spec.period {
                    let at = raw.backoff.as_ref().map_or(raw.name.at, |b| b.at);
                    cx.warn(
                        at,
                        &format!("{}.backoff", raw.key),
                        format!(
                            "supervisor `{}` never gives up on `{}` even if it crashes at once: {} restarts take at least {} with this backoff, longer than the period of {}",
                            parent.name,
                            node.name,
                            spec.intensity + 1,
                            humanize(fastest),
                            humanize(spec.period)
                        ),
                        Some("lengthen the period, lower the intensity, or shorten the backoff (backoff = \"none\" restarts at once)".into()),
                    );
                }
            }
            (NodeKind::Supervisor(s), Some(Def::Sup(raw)))
                if s.auto_shutdown != AutoShutdown::Never && node.restart == Restart::Permanent =>
            {
                cx.warn(
                    raw.name.at,
                    &raw.key,
                    format!(
                        "supervisor `{}` shuts itself down automatically but is a permanent child: `{}` restarts it at once, and the cycle can exhaust its intensity",
                        node.name, parent.name
                    ),
                    Some("make it restart = \"transient\" (and significant, to pass the shutdown up)".into()),
                );
            }
            _ => {}
        }
    }
}
