//! The `output` key of a process: `"inherit" | "prefix" | "null"` or
//! `{ file = "PATH", max_size = "10MiB", keep = 5 }`, and the strict size syntax.
//!
//! Part of pass 1 ([`super::raw`] calls it for this key; it reads values with
//! [`super::toolkit`] and never imports the schema walk): reads the value with its type
//! and range and reports every problem with its key path and a hint. A relative `file` is resolved here against
//! the configuration file's directory (the only file-system fact it uses is the current
//! directory, to make a relative config path absolute); it never opens the file. Checks
//! across processes (two processes on one file) are [`super::validate`]'s.

use std::path::{Component, Path, PathBuf};

use toml::Spanned;
use toml::de::DeValue;

use super::Cx;
use super::toolkit::{
    Field, boolean, describe, entries, integer, nonempty_string, quote, suggest, type_error,
    unknown_key,
};
use crate::spec::{FileOutput, Output};

/// Default `max_size`: rotate before the file would pass 10 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// Default `keep`: five rotated files.
pub const DEFAULT_KEEP: u32 = 5;
/// The smallest `max_size` accepted.
pub const MIN_MAX_SIZE: u64 = 1 << 10;
/// The largest `keep` accepted.
pub const MAX_KEEP: u32 = 1000;

const MODES: &[&str] = &["inherit", "prefix", "null"];
pub(super) const FILE_KEYS: &[&str] = &["file", "max_size", "keep", "allow_shared_directory"];
const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];
const SIZE_HINT: &str = "write a whole number with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) \
     or kB, MB, GB, TB (powers of 1000), e.g. \"10MiB\"";
const FORM_HINT: &str = "use \"inherit\", \"prefix\", \"null\", or a table such as { file = \"web.log\", max_size = \"10MiB\", keep = 5 }";

/// Reads `output` at `path`.
pub(crate) fn output(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<Output> {
    let at = v.span().start;
    let table = match v.get_ref() {
        DeValue::String(s) => {
            return match s.as_ref() {
                "inherit" => Field::Set(Output::Inherit, at),
                "prefix" => Field::Set(Output::Prefix, at),
                "null" => Field::Set(Output::Null, at),
                "file" => {
                    cx.error(
                        at,
                        path,
                        "output \"file\" needs a path",
                        Some("write output = { file = \"PATH\" } (optionally with max_size and keep)".into()),
                    );
                    Field::Bad
                }
                other => {
                    let hint = match suggest(other, MODES.iter().copied()) {
                        Some(m) => format!("did you mean {}? {FORM_HINT}", quote(m)),
                        None => FORM_HINT.into(),
                    };
                    cx.error(
                        at,
                        path,
                        format!("unknown output {}", quote(other)),
                        Some(hint),
                    );
                    Field::Bad
                }
            };
        }
        DeValue::Table(t) => t,
        _ => {
            type_error(
                cx,
                path,
                v,
                "\"inherit\", \"prefix\", \"null\" or a table",
                Some(FORM_HINT.into()),
            );
            return Field::Bad;
        }
    };
    let mut ok = true;
    let mut file: Option<(PathBuf, usize)> = None;
    let mut max_size = DEFAULT_MAX_SIZE;
    let mut keep = DEFAULT_KEEP;
    let mut allow_shared_directory = false;
    for (k, k_at, val) in entries(table) {
        let p = format!("{path}.{k}");
        let val_at = val.span().start;
        match k {
            "file" => match nonempty_string(cx, &p, val, "a file path") {
                Some(s) => file = Some((resolve(&cx.file, Path::new(s)), val_at)),
                None => ok = false,
            },
            "max_size" => match val.get_ref() {
                DeValue::String(s) => match parse_size(s) {
                    Ok(n) if n >= MIN_MAX_SIZE => max_size = n,
                    Ok(_) => {
                        cx.error(
                            val_at,
                            &p,
                            format!("max_size {} is too small", quote(s)),
                            Some(format!(
                                "use at least \"1KiB\"; lines are never split across files, so a tiny limit only makes one file per line (the default is \"{}\")",
                                crate::spec::humanize_size(DEFAULT_MAX_SIZE)
                            )),
                        );
                        ok = false;
                    }
                    Err(message) => {
                        cx.error(val_at, &p, message, Some(SIZE_HINT.into()));
                        ok = false;
                    }
                },
                _ => {
                    let hint = match integer(val.get_ref()) {
                        Some(Some(n)) if n >= 0 => {
                            format!(
                                "sizes need a unit, as a string: write \"{}\"",
                                crate::spec::humanize_size(n as u64)
                            )
                        }
                        _ => SIZE_HINT.into(),
                    };
                    type_error(cx, &p, val, "a size string such as \"10MiB\"", Some(hint));
                    ok = false;
                }
            },
            "keep" => match integer(val.get_ref()) {
                Some(Some(n)) if (1..=i64::from(MAX_KEEP)).contains(&n) => keep = n as u32,
                Some(_) => {
                    cx.error(
                        val_at,
                        &p,
                        format!("keep must be from 1 to {MAX_KEEP}, found {}", describe(val.get_ref())),
                        Some("keep counts the rotated files (PATH.1 ... PATH.keep) kept besides PATH itself".into()),
                    );
                    ok = false;
                }
                None => {
                    type_error(
                        cx,
                        &p,
                        val,
                        &format!("an integer from 1 to {MAX_KEEP}"),
                        None,
                    );
                    ok = false;
                }
            },
            "allow_shared_directory" => match boolean(cx, &p, val) {
                Field::Set(b, _) => allow_shared_directory = b,
                _ => ok = false,
            },
            _ => {
                unknown_key(cx, path, k, k_at, FILE_KEYS);
                ok = false;
            }
        }
    }
    let Some((path_buf, file_at)) = file else {
        if ok {
            cx.error(
                at,
                &format!("{path}.file"),
                "an output table needs `file`",
                Some("write output = { file = \"PATH\" }; or use \"inherit\", \"prefix\" or \"null\"".into()),
            );
        }
        return Field::Bad;
    };
    if !ok {
        return Field::Bad;
    }
    Field::Set(
        Output::File(Box::new(FileOutput {
            path: path_buf,
            max_size,
            keep,
            allow_shared_directory,
        })),
        file_at,
    )
}

/// Parses a size such as `"10MiB"`, `"512 KiB"` or `"1GB"`: a whole number, optional
/// spaces, and a unit from [`UNITS`] (case-sensitive). The error says what is wrong.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(if t.starts_with('-') {
            format!("negative size {}", quote(s))
        } else {
            format!("invalid size {}", quote(s))
        });
    }
    if unit.is_empty() {
        return Err(format!("size {} has no unit", quote(s)));
    }
    if unit.starts_with('.') {
        return Err(format!(
            "size {} is not a whole number; use a smaller unit instead of a fraction",
            quote(s)
        ));
    }
    let Some((_, factor)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        let mut message = format!("unknown unit {} in size {}", quote(unit), quote(s));
        if let Some(u) = UNITS
            .iter()
            .map(|(u, _)| *u)
            .find(|u| u.eq_ignore_ascii_case(unit))
            .or_else(|| suggest(unit, UNITS.iter().map(|(u, _)| *u)))
        {
            message.push_str(&format!(
                " (units are case-sensitive: did you mean {}?)",
                quote(u)
            ));
        }
        return Err(message);
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*factor))
        .ok_or_else(|| format!("size {} is too large", quote(s)))
}

/// `file` made absolute: relative paths are taken from the directory of the config file
/// (itself made absolute from the current directory), then `.` and `..` are resolved
/// lexically.
fn resolve(config: &Path, file: &Path) -> PathBuf {
    let joined = if file.is_absolute() {
        file.to_path_buf()
    } else {
        let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
        config.parent().unwrap_or(Path::new("/")).join(file)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_strict() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("2048B"), Ok(2048));
        for bad in [
            "10",
            "10mb",
            "1.5MiB",
            "-1MiB",
            "MiB",
            "",
            "10 PiB",
            "99999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
        assert!(
            parse_size("10mib")
                .unwrap_err()
                .contains("did you mean \"MiB\"")
        );
    }

    #[test]
    fn check_shows_the_resolved_file() {
        let src = "children = [\"w\"]\n[process.w]\ncommand = [\"w\"]\noutput = { file = \"logs/w.log\", keep = 2 }\n";
        let loaded = crate::config::parse(src, Path::new("/etc/vigil/vigil.toml")).unwrap();
        let text = crate::config::render(&loaded.tree);
        assert!(
            text.contains("output: file \"/etc/vigil/logs/w.log\" (rotated at 10MiB, 2 kept)"),
            "{text}"
        );
    }

    #[test]
    fn a_shared_directory_is_an_explicit_boolean() {
        let with = |v: &str| {
            format!(
                "children = [\"w\"]\n[process.w]\ncommand = [\"w\"]\noutput = {{ file = \"/l/w.log\", allow_shared_directory = {v} }}\n"
            )
        };
        let loaded = crate::config::parse(&with("true"), Path::new("/etc/vigil.toml")).unwrap();
        let text = crate::config::render(&loaded.tree);
        assert!(text.contains("shared directory allowed"), "{text}");
        let errs =
            crate::config::parse(&with("\"yes\""), Path::new("/etc/vigil.toml")).unwrap_err();
        let shown = format!("{errs:?}");
        assert!(
            shown.contains("process.w.output.allow_shared_directory")
                && shown.contains("true or false"),
            "{shown}"
        );
    }

    #[test]
    fn relative_files_follow_the_config_file() {
        assert_eq!(
            resolve(
                Path::new("/etc/vigil/vigil.toml"),
                Path::new("logs/../web.log")
            ),
            PathBuf::from("/etc/vigil/web.log")
        );
        assert_eq!(
            resolve(
                Path::new("/etc/vigil/vigil.toml"),
                Path::new("/var/log/./web.log")
            ),
            PathBuf::from("/var/log/web.log")
        );
    }
}
