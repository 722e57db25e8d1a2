//! Pass 2: raw tables → a [`Tree`]: names, references, cycles, OTP's bad combinations,
//! defaults, and the warnings about valid but doubtful settings.
//!
//! Works only on what [`super::raw`] read; never looks at the TOML again. Every problem is
//! recorded in the [`Cx`]; the tree is only built when there are none.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::Cx;
use super::raw::{RawFile, RawProcess, RawSupervisor};
use super::toolkit::{Field, quote, suggest};
use crate::core::backoff::min_time_to_exhaust;
use crate::spec::{
    AutoShutdown, Backoff, Node, NodeId, NodeKind, ProcessSpec, ROOT_NAME, Restart, Shutdown,
    Signal, Strategy, SupervisorSpec, Tree, humanize,
};

/// Default restart intensity (Elixir's; OTP's is 1).
pub const DEFAULT_INTENSITY: u32 = 3;
/// Default intensity period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// Default shutdown grace of a process (a supervisor's default is `infinity`).
pub const DEFAULT_PROCESS_SHUTDOWN: Duration = Duration::from_secs(5);

/// Whether `name` is a valid process or supervisor name: `[a-z0-9][a-z0-9_.-]*`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
}

/// A supervisor or process definition; supervisors come first, the root is 0.
#[derive(Clone, Copy)]
enum Def<'a> {
    Sup(&'a RawSupervisor),
    Proc(&'a RawProcess),
}

impl<'a> Def<'a> {
    fn name(self) -> &'a str {
        match self {
            Def::Sup(s) => &s.name,
            Def::Proc(p) => &p.name,
        }
    }
    fn key(self) -> &'a str {
        match self {
            Def::Sup(s) => &s.key,
            Def::Proc(p) => &p.key,
        }
    }
    fn at(self) -> usize {
        match self {
            Def::Sup(s) => s.at,
            Def::Proc(p) => p.at,
        }
    }
    fn restart(self) -> &'a Field<Restart> {
        match self {
            Def::Sup(s) => &s.restart,
            Def::Proc(p) => &p.restart,
        }
    }
    fn significant(self) -> &'a Field<bool> {
        match self {
            Def::Sup(s) => &s.significant,
            Def::Proc(p) => &p.significant,
        }
    }
    fn children(self) -> &'a [super::raw::ChildRef] {
        match self {
            Def::Sup(s) => s.children.get().map_or(&[], |c| c.as_slice()),
            Def::Proc(_) => &[],
        }
    }
    fn what(self) -> &'static str {
        match self {
            Def::Sup(_) => "supervisor",
            Def::Proc(_) => "process",
        }
    }
}

/// Describes a supervisor as a parent in messages.
fn parent_desc(s: &RawSupervisor) -> String {
    if s.key.is_empty() {
        "the root supervisor (top level)".into()
    } else {
        format!("supervisor {}", quote(&s.name))
    }
}

/// Where a supervisor's own settings live, for hints.
fn table_desc(s: &RawSupervisor) -> String {
    if s.key.is_empty() {
        "at the top level of the file".into()
    } else {
        format!("in [{}]", s.key)
    }
}

/// How many supervisors may be nested, the root included. Real trees are a few levels
/// deep; the limit keeps recursion over the tree (validation, rendering, the engine)
/// far from the stack's end, and a JSON status (two levels per supervisor) within the
/// 128 levels serde_json reads.
pub const MAX_DEPTH: usize = 50;

struct Walk<'a, 'c, 's> {
    cx: &'c mut Cx<'s>,
    defs: Vec<Def<'a>>,
    names: HashMap<&'a str, usize>,
    /// Names of malformed tables (see [`RawFile::broken`]).
    broken: HashSet<&'a str>,
    visited: Vec<bool>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    /// Where each placed node is first listed: key path and offset.
    first_ref: Vec<Option<(String, usize)>>,
    /// The children of each supervisor def, in order, as placed by the walk.
    placed: Vec<Vec<usize>>,
}

impl Walk<'_, '_, '_> {
    fn visit(&mut self, d: usize) {
        self.visited[d] = true;
        self.on_stack[d] = true;
        self.stack.push(d);
        let def = self.defs[d];
        let Def::Sup(sup) = def else {
            unreachable!("only supervisors are walked")
        };
        for child in def.children() {
            let path = if sup.key.is_empty() {
                format!("children[{}]", child.index)
            } else {
                format!("{}.children[{}]", sup.key, child.index)
            };
            if child.name == ROOT_NAME {
                self.cx.error(
                    child.at,
                    &path,
                    "\"root\" is the top-level supervisor and cannot be a child",
                    Some("remove it from this list; the top level of the file is the root".into()),
                );
                continue;
            }
            let Some(&t) = self.names.get(child.name.as_str()) else {
                if self.broken.contains(child.name.as_str()) {
                    continue; // Its table is malformed, which is reported already.
                }
                let mut hint = format!(
                    "define [process.{0}] or [supervisor.{0}], or fix the name",
                    child.name
                );
                if let Some(s) = suggest(&child.name, self.names.keys().copied()) {
                    hint = format!("did you mean {}? Otherwise {hint}", quote(s));
                }
                self.cx.error(
                    child.at,
                    &path,
                    format!("no process or supervisor named {}", quote(&child.name)),
                    Some(hint),
                );
                continue;
            };
            if self.on_stack[t] {
                let from = self.stack.iter().position(|&s| s == t).unwrap_or(0);
                let mut chain: Vec<&str> = self.stack[from..]
                    .iter()
                    .map(|&s| self.defs[s].name())
                    .collect();
                chain.push(&child.name);
                self.cx.error(
                    child.at,
                    &path,
                    format!(
                        "cycle: supervisor {} contains itself ({})",
                        quote(&child.name),
                        chain.join(" -> ")
                    ),
                    Some(format!(
                        "a supervisor cannot be its own descendant; remove {} from this list",
                        quote(&child.name)
                    )),
                );
                continue;
            }
            if self.visited[t] {
                let (first_path, first_at) = self.first_ref[t].clone().unwrap_or_default();
                let (line, col) = self.cx.line_col(first_at);
                self.cx.error(
                    child.at,
                    &path,
                    format!(
                        "{} is listed more than once; it is already at {first_path} ({line}:{col})",
                        quote(&child.name)
                    ),
                    Some(
                        "each process and supervisor has exactly one parent and is started once; \
                         remove one of the entries, or define a copy under another name"
                            .into(),
                    ),
                );
                continue;
            }
            self.visited[t] = true;
            self.first_ref[t] = Some((path.clone(), child.at));
            self.placed[d].push(t);
            self.check_significant(sup, self.defs[t]);
            if matches!(self.defs[t], Def::Sup(_)) {
                if self.stack.len() >= MAX_DEPTH {
                    self.too_deep(t, &path, child.at);
                } else {
                    self.visit(t);
                }
            }
        }
        self.stack.pop();
        self.on_stack[d] = false;
    }

    /// Supervisor `t` would be nested deeper than [`MAX_DEPTH`]: reported once, and its
    /// subtree is marked visited without recursing (the walk, the tree and the engine
    /// recurse once per level, so an unbounded chain would overflow the stack).
    fn too_deep(&mut self, t: usize, path: &str, at: usize) {
        let top = self.stack.first().map_or("root", |&s| self.defs[s].name());
        self.cx.error(
            at,
            path,
            format!(
                "supervisors nested more than {MAX_DEPTH} deep (from {top} down to {})",
                quote(self.defs[t].name())
            ),
            Some("flatten the tree: list these children in a supervisor higher up".into()),
        );
        let mut todo = vec![t];
        while let Some(d) = todo.pop() {
            for c in self.defs[d].children() {
                if let Some(&x) = self.names.get(c.name.as_str())
                    && !self.visited[x]
                {
                    self.visited[x] = true;
                    if matches!(self.defs[x], Def::Sup(_)) {
                        todo.push(x);
                    }
                }
            }
        }
    }

    /// OTP's `bad_combination`s for a child `t` of `parent`.
    fn check_significant(&mut self, parent: &RawSupervisor, t: Def<'_>) {
        let Field::Set(true, at) = *t.significant() else {
            return;
        };
        let path = format!("{}.significant", t.key());
        if t.restart().or(Restart::Permanent) == Some(Restart::Permanent) {
            let how = if matches!(t.restart(), Field::Missing) {
                "restart defaults to \"permanent\""
            } else {
                "restart = \"permanent\""
            };
            self.cx.error(
                at,
                &path,
                format!("significant = true on a permanent child ({how})"),
                Some(format!(
                    "a permanent child is always restarted, so its exit can never shut the parent down; \
                     set restart = \"transient\" or \"temporary\" in [{}], or remove significant",
                    t.key()
                )),
            );
        }
        if parent.auto_shutdown.or(AutoShutdown::Never) == Some(AutoShutdown::Never) {
            let how = if matches!(parent.auto_shutdown, Field::Missing) {
                "auto_shutdown = \"never\" (the default)"
            } else {
                "auto_shutdown = \"never\""
            };
            self.cx.error(
                at,
                &path,
                format!(
                    "significant = true, but its parent, {}, has {how}",
                    parent_desc(parent)
                ),
                Some(format!(
                    "set auto_shutdown = \"any_significant\" or \"all_significant\" {}, or remove significant",
                    table_desc(parent)
                )),
            );
        }
    }
}

/// Resolves names into a tree and checks it. `None` when any error was recorded.
pub(crate) fn build(cx: &mut Cx<'_>, file: RawFile) -> Option<Tree> {
    let mut defs: Vec<Def<'_>> = vec![Def::Sup(&file.root)];
    defs.extend(file.supervisors.iter().map(Def::Sup));
    defs.extend(file.processes.iter().map(Def::Proc));
    let n = defs.len();
    shared_output_files(cx, &file.processes);

    // Definitions, in file order.
    let mut by_position: Vec<usize> = (1..n).collect();
    by_position.sort_by_key(|&d| defs[d].at());
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut shadowed = vec![false; n];
    for &d in &by_position {
        let def = defs[d];
        let name = def.name();
        let name_at = match def {
            Def::Sup(s) => s.name_at,
            Def::Proc(p) => p.name_at,
        };
        if name == ROOT_NAME {
            cx.error(
                name_at,
                def.key(),
                "the name \"root\" is reserved for the top-level supervisor",
                Some(
                    "the file itself is the root: put its settings at the top level, \
                     and give this table another name"
                        .into(),
                ),
            );
            shadowed[d] = true;
            continue;
        }
        if !valid_name(name) {
            cx.error(
                name_at,
                def.key(),
                format!("invalid name {}", quote(name)),
                Some(format!(
                    "names use lowercase letters, digits, '_', '.' and '-', and start with a letter or digit ([a-z0-9][a-z0-9_.-]*){}",
                    fixed_name(name).map_or(String::new(), |f| format!(", e.g. {}", quote(&f)))
                )),
            );
        }
        if let Some(&first) = names.get(name) {
            let (line, col) = cx.line_col(defs[first].at());
            cx.error(
                name_at,
                def.key(),
                format!(
                    "{} is defined twice: as [{}] ({line}:{col}) and as [{}]",
                    quote(name),
                    defs[first].key(),
                    def.key()
                ),
                Some("processes and supervisors share one namespace; rename one of them".into()),
            );
            shadowed[d] = true;
            continue;
        }
        names.insert(name, d);
    }

    // Who lists whom (resolved names only).
    let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (s, def) in defs.iter().enumerate() {
        for child in def.children() {
            if let Some(&t) = names.get(child.name.as_str())
                && referrers[t].last() != Some(&s)
            {
                referrers[t].push(s);
            }
        }
    }

    let mut walk = Walk {
        cx,
        defs,
        names,
        broken: file.broken.iter().map(String::as_str).collect(),
        visited: vec![false; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        first_ref: vec![None; n],
        placed: vec![Vec::new(); n],
    };
    walk.visit(0);

    // Definitions no list mentions: reported, then walked so that their own children are
    // checked and not reported as unreferenced too.
    for &d in &by_position {
        if walk.visited[d] || shadowed[d] || !referrers[d].is_empty() {
            continue;
        }
        let def = walk.defs[d];
        walk.cx.error(
            def.at(),
            def.key(),
            format!(
                "{} {} is defined but not listed in any children list",
                def.what(),
                quote(def.name())
            ),
            Some(format!(
                "add {} to `children` at the top level or in a [supervisor.NAME], or remove [{}]",
                quote(def.name()),
                def.key()
            )),
        );
        walk.visited[d] = true;
        if matches!(def, Def::Sup(_)) {
            walk.visit(d);
        }
    }

    // What is left is listed only by supervisors that are themselves unreachable: cycles
    // and what hangs below them. Start each walk on the cycle so that it is reported as one.
    for &d in &by_position {
        if walk.visited[d] || shadowed[d] || !matches!(walk.defs[d], Def::Sup(_)) {
            continue;
        }
        let mut seen = vec![false; n];
        let mut cur = d;
        while !seen[cur] {
            seen[cur] = true;
            match referrers[cur].iter().find(|&&s| !walk.visited[s]) {
                Some(&s) => cur = s,
                None => break,
            }
        }
        walk.visit(cur);
    }

    if walk.cx.has_errors() {
        return None;
    }
    let placed = std::mem::take(&mut walk.placed);
    let defs = std::mem::take(&mut walk.defs);
    let cx = walk.cx;

    let mut tree = Tree {
        nodes: Vec::new(),
        shutdown_timeout: file.shutdown_timeout.get().copied(),
        ops: file.ops.clone(),
    };
    add_node(&mut tree, &defs, &placed, 0, None);
    warn(cx, &tree, &defs);
    Some(tree)
}

/// A lowercase, valid spelling of an invalid name, if there is an obvious one.
fn fixed_name(name: &str) -> Option<String> {
    let fixed: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    let fixed = fixed.trim_start_matches(['_', '.', '-']).to_string();
    valid_name(&fixed).then_some(fixed)
}

/// Appends def `d` and, depth first, its placed children; returns its id.
fn add_node(
    tree: &mut Tree,
    defs: &[Def<'_>],
    placed: &[Vec<usize>],
    d: usize,
    parent: Option<NodeId>,
) -> NodeId {
    let id = NodeId(tree.nodes.len() as u32);
    let def = defs[d];
    let (restart, shutdown, significant, kind) = match def {
        Def::Sup(s) => (
            s.restart
                .or(Restart::Permanent)
                .unwrap_or(Restart::Permanent),
            s.shutdown
                .or(Shutdown::Infinity)
                .unwrap_or(Shutdown::Infinity),
            s.significant.or(false).unwrap_or(false),
            NodeKind::Supervisor(SupervisorSpec {
                strategy: s
                    .strategy
                    .or(Strategy::OneForOne)
                    .unwrap_or(Strategy::OneForOne),
                intensity: s
                    .intensity
                    .or(DEFAULT_INTENSITY)
                    .unwrap_or(DEFAULT_INTENSITY),
                period: s.period.or(DEFAULT_PERIOD).unwrap_or(DEFAULT_PERIOD),
                auto_shutdown: s
                    .auto_shutdown
                    .or(AutoShutdown::Never)
                    .unwrap_or(AutoShutdown::Never),
                children: Vec::new(),
            }),
        ),
        Def::Proc(p) => (
            p.restart
                .or(Restart::Permanent)
                .unwrap_or(Restart::Permanent),
            p.shutdown
                .or(Shutdown::Timeout(DEFAULT_PROCESS_SHUTDOWN))
                .unwrap_or(Shutdown::Timeout(DEFAULT_PROCESS_SHUTDOWN)),
            p.significant.or(false).unwrap_or(false),
            NodeKind::Process(ProcessSpec {
                command: p.command.get().cloned().unwrap_or_default(),
                stop_signal: p.stop_signal.or(Signal::TERM).unwrap_or(Signal::TERM),
                leftovers: p.leftovers.get().copied().unwrap_or_default(),
                success_exit_codes: p.success_exit_codes.or(vec![0]).unwrap_or_default(),
                env: p.env.get().cloned().unwrap_or_default(),
                cwd: p.cwd.get().cloned(),
                user: p.user.get().cloned(),
                group: p.group.get().cloned(),
                no_new_privileges: p.no_new_privileges.get().copied().unwrap_or(false),
                capabilities: p.capabilities.get().copied(),
                backoff: p.backoff.or(Backoff::DEFAULT).unwrap_or(Backoff::DEFAULT),
                ready: p.ready.get().cloned().map(Box::new),
                health: p.health.get().cloned().map(Box::new),
                output: p.output.get().cloned().unwrap_or_default(),
            }),
        ),
    };
    tree.nodes.push(Node {
        name: def.name().to_string(),
        parent,
        restart,
        shutdown,
        significant,
        kind,
    });
    let children: Vec<NodeId> = placed[d]
        .iter()
        .map(|&c| add_node(tree, defs, placed, c, Some(id)))
        .collect();
    if let NodeKind::Supervisor(s) = &mut tree.nodes[id.index()].kind {
        s.children = children;
    }
    id
}

/// Two processes writing one output file is an error: rotation and whole lines need a
/// single writer. Paths are compared after resolving (not through symlinks).
fn shared_output_files(cx: &mut Cx<'_>, processes: &[RawProcess]) {
    let mut seen: HashMap<&std::path::Path, (&str, usize)> = HashMap::new();
    let mut files: Vec<(&std::path::Path, &RawProcess, usize)> = processes
        .iter()
        .filter_map(|p| match &p.output {
            Field::Set(crate::spec::Output::File(f), at) => Some((f.path.as_path(), p, *at)),
            _ => None,
        })
        .collect();
    files.sort_by_key(|(_, _, at)| *at);
    for (path, p, at) in files {
        if let Some((first, first_at)) = seen.get(path) {
            let (line, _) = cx.line_col(*first_at);
            cx.error(
                at,
                &format!("{}.output.file", p.key),
                format!(
                    "this is the same file as the output file of process {} (line {line})",
                    quote(first)
                ),
                Some("give each process its own file: rotation and whole lines need a single writer; use output = \"prefix\" to merge output on vigil's stdout".into()),
            );
        } else {
            seen.insert(path, (&p.name, at));
        }
    }
}

/// The warnings about a valid tree.
fn warn(cx: &mut Cx<'_>, tree: &Tree, defs: &[Def<'_>]) {
    let by_name: HashMap<&str, Def<'_>> = defs.iter().map(|d| (d.name(), *d)).collect();
    for id in tree.ids() {
        let node = tree.node(id);
        let Some(parent_id) = node.parent else {
            continue;
        };
        let parent = tree.node(parent_id);
        let Some(ps) = parent.as_supervisor() else {
            continue;
        };
        let parent_name = if parent_id == NodeId::ROOT {
            "the root supervisor".to_string()
        } else {
            format!("supervisor {}", quote(&parent.name))
        };
        match (&node.kind, by_name.get(node.name.as_str())) {
            (NodeKind::Process(p), Some(Def::Proc(raw))) if node.restart != Restart::Temporary => {
                let needed = min_time_to_exhaust(&p.backoff, ps.intensity);
                if needed <= ps.period {
                    continue;
                }
                // Whole milliseconds read better, and "at least" stays true.
                let needed = Duration::from_millis(needed.as_millis() as u64);
                let which = if matches!(raw.backoff, Field::Missing) {
                    "the default backoff"
                } else {
                    "this backoff"
                };
                cx.warn(
                    raw.backoff.at().unwrap_or(raw.at),
                    &format!("{}.backoff", raw.key),
                    format!(
                        "with {which}, {parent_name} never gives up on {}, even if it exits at once every time: \
                         the restart delays before {} exits add up to at least {}, more than period = {}",
                        quote(&node.name),
                        ps.intensity + 1,
                        humanize(needed),
                        humanize(ps.period),
                    ),
                    Some(format!(
                        "to let the supervisor give up (and escalate) on a crash loop, raise period to more than {}, \
                         lower intensity, or shorten the backoff (initial, max, multiplier)",
                        humanize(needed)
                    )),
                );
            }
            (NodeKind::Supervisor(s), Some(Def::Sup(raw)))
                if s.auto_shutdown != AutoShutdown::Never && node.restart == Restart::Permanent =>
            {
                cx.warn(
                    raw.auto_shutdown.at().unwrap_or(raw.at),
                    &format!("{}.auto_shutdown", raw.key),
                    format!(
                        "supervisor {} can shut itself down (auto_shutdown = {}) but is a permanent child of {parent_name}, \
                         which restarts it at once every time; this can use up the parent's restart intensity",
                        quote(&node.name),
                        quote(s.auto_shutdown.as_str()),
                    ),
                    Some(format!(
                        "set restart = \"transient\" (with significant = true to pass the shutdown up) or \"temporary\" in [{}]",
                        raw.key
                    )),
                );
            }
            _ => {}
        }
    }
}
