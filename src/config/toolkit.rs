//! The field-reading toolkit: generic readers of spanned TOML values that report every
//! problem at once, each with its key path, its line:col and a hint.
//!
//! Owns [`Field`] (missing, bad or set, with the value's offset), the helpers that name and
//! locate a value in messages ([`describe`], [`quote`], [`join`], [`type_error`],
//! [`unknown_key`] with its "did you mean"), and the readers of the value kinds every
//! schema uses: strings, integers, booleans, one-of-a-set choices, durations (with their
//! upper bound) and commands. A reader that finds a problem records it in the [`Cx`] and
//! returns [`Field::Bad`] or `None`, so the caller goes on reading the other keys.
//!
//! It must never know vigil's schema: no key names, no defaults, no cross-key rules. The
//! schema walk ([`super::raw`]) and the readers of nested tables ([`super::probe`],
//! [`super::output`], [`super::ops`]) import it; it imports none of them.

use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Cx;

/// One setting as read from the file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Field<T> {
    /// The key is absent: the default applies.
    Missing,
    /// The key is present but its value is invalid (already reported).
    Bad,
    /// The key is present and valid; `at` is the byte offset of the value.
    Set(T, usize),
}

impl<T> Field<T> {
    /// The value, when set.
    pub(crate) fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v, _) => Some(v),
            _ => None,
        }
    }

    /// Where the value is, when set.
    pub(crate) fn at(&self) -> Option<usize> {
        match self {
            Field::Set(_, at) => Some(*at),
            _ => None,
        }
    }

    /// The effective value: the set one, or `default` when missing; `None` when bad.
    pub(crate) fn or(&self, default: T) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Field::Missing => Some(default),
            Field::Bad => None,
            Field::Set(v, _) => Some(v.clone()),
        }
    }
}

type Entry<'a, 'i> = (&'a str, usize, &'a Spanned<DeValue<'i>>);

/// A table's entries in file order, with the byte offset of each key.
pub(crate) fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut out: Vec<Entry<'a, 'i>> = table
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), k.span().start, v))
        .collect();
    out.sort_by_key(|(_, at, _)| *at);
    out
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    // An empty key (`"" = 1`) is spelled as TOML writes it, so the path is never empty.
    let key = if key.is_empty() { "\"\"" } else { key };
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Describes a value for messages: `integer -1`, `string "prmanent"`, `an array`.
pub(crate) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string {}", quote(s)),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

/// A string as TOML writes it.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

pub(crate) fn type_error(
    cx: &mut Cx<'_>,
    path: &str,
    v: &Spanned<DeValue<'_>>,
    expected: &str,
    hint: Option<String>,
) {
    cx.error(
        v.span().start,
        path,
        format!("expected {expected}, found {}", describe(v.get_ref())),
        hint,
    );
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| quote(o)).collect();
    format!("expected one of {}", quoted.join(", "))
}

pub(crate) fn unknown_key(cx: &mut Cx<'_>, prefix: &str, k: &str, k_at: usize, allowed: &[&str]) {
    let hint = match suggest(k, allowed.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => {
            let keys: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            format!("valid keys here: {}", keys.join(", "))
        }
    };
    let what = if prefix.is_empty() {
        "unknown top-level key".to_string()
    } else {
        format!("unknown key in [{prefix}]:")
    };
    cx.error(k_at, &join(prefix, k), format!("{what} `{k}`"), Some(hint));
}

pub(super) fn table<'a, 'i>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            type_error(
                cx,
                path,
                v,
                "a table",
                Some(format!("write [{path}.NAME] sections")),
            );
            None
        }
    }
}

/// The body of `[supervisor.NAME]` / `[process.NAME]`.
pub(super) fn section<'a, 'i>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        DeValue::Array(_) => {
            type_error(
                cx,
                path,
                v,
                "a table",
                Some(format!("write [{path}] (single brackets), once")),
            );
            None
        }
        _ => {
            type_error(
                cx,
                path,
                v,
                "a table",
                Some(format!("write the settings under a [{path}] header")),
            );
            None
        }
    }
}

pub(super) fn string<'a>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &'a Spanned<DeValue<'_>>,
    what: &str,
) -> Option<&'a str> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        _ => {
            type_error(cx, path, v, what, None);
            None
        }
    }
}

pub(crate) fn nonempty_string<'a>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &'a Spanned<DeValue<'_>>,
    what: &str,
) -> Option<&'a str> {
    let s = string(cx, path, v, &format!("a string ({what})"))?;
    if s.is_empty() {
        cx.error(
            v.span().start,
            path,
            "must not be empty",
            Some(format!("give {what}, or remove the key")),
        );
        return None;
    }
    if s.contains('\0') {
        cx.error(
            v.span().start,
            path,
            "must not contain a NUL character",
            None,
        );
        return None;
    }
    Some(s)
}

pub(crate) fn integer(v: &DeValue<'_>) -> Option<Option<i64>> {
    match v {
        DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).ok()),
        _ => None,
    }
}

pub(super) fn boolean(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Field::Set(*b, v.span().start),
        _ => {
            type_error(cx, path, v, "true or false", None);
            Field::Bad
        }
    }
}

pub(super) fn choice<T: Copy>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &Spanned<DeValue<'_>>,
    what: &str,
    options: &[(&str, T)],
) -> Field<T> {
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let Some(s) = string(cx, path, v, &format!("a string ({})", names.join(" | "))) else {
        return Field::Bad;
    };
    match options.iter().find(|(n, _)| *n == s) {
        Some((_, t)) => Field::Set(*t, v.span().start),
        None => {
            let mut hint = one_of(&names);
            if let Some(s) = suggest(s, names.iter().copied()) {
                hint = format!("did you mean {}? {hint}", quote(s));
            }
            cx.error(
                v.span().start,
                path,
                format!("unknown {what} {}", quote(s)),
                Some(hint),
            );
            Field::Bad
        }
    }
}

const DURATION_HINT: &str =
    "write a number with a unit (ms, s, m, h, d), e.g. \"5s\", \"100ms\" or \"1m 30s\"";

/// The longest duration any key accepts, written [`MAX_DURATION_TEXT`]: 365 days.
///
/// Long enough for any grace, timeout, period or delay that makes sense, and short enough
/// that adding it to any instant or to any other accepted duration never overflows (an
/// unbounded `shutdown = "300000000000y"` once passed `vigil check` and then panicked
/// `vigil run` when the deadline was computed).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// [`MAX_DURATION`] as a config spells it.
pub const MAX_DURATION_TEXT: &str = "365d";

/// Parses a humantime string of at most [`MAX_DURATION`]; a problem is reported with
/// `hint`. `longer` is what the key offers instead of a longer duration (such as
/// `"infinity"`), named in the hint when the duration is too long.
pub(super) fn parse_duration(
    cx: &mut Cx<'_>,
    path: &str,
    v: &Spanned<DeValue<'_>>,
    s: &str,
    hint: &str,
    longer: Option<&str>,
) -> Option<Duration> {
    let too_long = || {
        (
            format!(
                "duration {} is longer than the maximum of {MAX_DURATION_TEXT}",
                quote(s)
            ),
            match longer {
                Some(alt) => format!(
                    "use at most {} (vigil's timers go no further), or {alt}",
                    quote(MAX_DURATION_TEXT)
                ),
                None => format!(
                    "use at most {} (vigil's timers go no further)",
                    quote(MAX_DURATION_TEXT)
                ),
            },
        )
    };
    let e = match humantime::parse_duration(s) {
        Ok(d) if d <= MAX_DURATION => return Some(d),
        Ok(_) => {
            let (message, hint) = too_long();
            cx.error(v.span().start, path, message, Some(hint));
            return None;
        }
        Err(e) => e,
    };
    if let humantime::DurationError::NumberOverflow = e
        && !s.trim_start().starts_with('-')
    {
        let (message, hint) = too_long();
        cx.error(v.span().start, path, message, Some(hint));
        return None;
    }
    let message = match (s.trim().parse::<f64>(), e) {
        _ if s.trim_start().starts_with('-') => format!("negative duration {}", quote(s)),
        (Ok(_), _) => format!("duration {} has no unit", quote(s)),
        (_, humantime::DurationError::UnknownUnit { unit, .. }) => {
            format!("unknown unit {} in duration {}", quote(&unit), quote(s))
        }
        _ => format!("invalid duration {}", quote(s)),
    };
    cx.error(v.span().start, path, message, Some(hint.into()));
    None
}

fn duration_type_error(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>, expected: &str) {
    let hint = match integer(v.get_ref()) {
        Some(Some(n)) if n >= 0 => format!("durations need a unit: write \"{n}s\" or \"{n}ms\""),
        _ => DURATION_HINT.into(),
    };
    type_error(cx, path, v, expected, Some(hint));
}

pub(super) fn duration(
    cx: &mut Cx<'_>,
    path: &str,
    v: &Spanned<DeValue<'_>>,
    allow_zero: bool,
) -> Field<Duration> {
    let DeValue::String(s) = v.get_ref() else {
        duration_type_error(cx, path, v, "a duration string such as \"5s\"");
        return Field::Bad;
    };
    let Some(d) = parse_duration(cx, path, v, s, DURATION_HINT, None) else {
        return Field::Bad;
    };
    if d.is_zero() && !allow_zero {
        cx.error(
            v.span().start,
            path,
            format!("must be longer than zero, found {}", quote(s)),
            Some(
                "give a positive duration such as \"1s\", or remove the key for the default".into(),
            ),
        );
        return Field::Bad;
    }
    Field::Set(d, v.span().start)
}

pub(super) fn command(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Vec<String>> {
    let at = v.span().start;
    let hint = "write the program and its arguments as a list, e.g. command = [\"/bin/sh\", \"-c\", \"echo hi\"] (no shell is involved)";
    let DeValue::Array(items) = v.get_ref() else {
        type_error(cx, path, v, "an array of strings", Some(hint.into()));
        return Field::Bad;
    };
    if items.is_empty() {
        cx.error(at, path, "command is empty", Some(hint.into()));
        return Field::Bad;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item.get_ref() {
            DeValue::String(s) if i == 0 && s.is_empty() => {
                cx.error(
                    item.span().start,
                    &p,
                    "the program name is empty",
                    Some(hint.into()),
                );
                ok = false;
            }
            DeValue::String(s) if s.contains('\0') => {
                cx.error(
                    item.span().start,
                    &p,
                    "must not contain a NUL character",
                    None,
                );
                ok = false;
            }
            DeValue::String(s) => out.push(s.to_string()),
            _ => {
                let hint = match item.get_ref() {
                    DeValue::Integer(i) => format!("quote it: \"{i}\""),
                    _ => hint.into(),
                };
                type_error(cx, &p, item, "a string", Some(hint));
                ok = false;
            }
        }
    }
    if ok { Field::Set(out, at) } else { Field::Bad }
}

pub(super) fn value_text(v: &DeValue<'_>) -> String {
    match v {
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

pub(super) fn number(v: &DeValue<'_>) -> Option<f64> {
    match v {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => integer(v).flatten().map(|n| n as f64),
        _ => None,
    }
}
