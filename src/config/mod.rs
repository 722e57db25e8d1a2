//! Configuration: TOML text → raw tables → a validated [`Tree`], every error at once.
//!
//! Two passes, as ripgrep splits low-level and high-level arguments:
//!
//! 1. [`raw`] walks the spanned TOML document (`toml::de::DeTable`) and reads every known
//!    key with its type, rejecting unknown keys (what serde's `deny_unknown_fields` does,
//!    but without stopping at the first problem). Each value keeps its span. The nested
//!    tables are read by [`probe`] (`ready`, `health`), [`output`] and [`ops`] (`[control]`,
//!    `[http]`, `termination_log`); all of them read values with [`toolkit`], the generic
//!    spanned-value readers, which knows no key of the schema.
//! 2. [`validate`] resolves names into a tree, fills defaults, and checks references,
//!    cycles and OTP's bad combinations.
//!
//! Every problem becomes a [`Diagnostic`] with the file, line:col, the key path and a
//! hint. This module never starts anything and never reads anything but the one file.

mod exit_with;
mod ops;
mod output;
mod probe;
mod raw;
mod render;
#[cfg(test)]
mod tests;
mod toolkit;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::spec::Tree;

pub use exit_with::apply_exit_with;
pub use probe::{
    DEFAULT_HEALTH_FAILURES, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_READY_INTERVAL, DEFAULT_READY_TIMEOUT,
};
pub use render::render;
pub use toolkit::{MAX_DURATION, MAX_DURATION_TEXT};
pub use validate::{DEFAULT_INTENSITY, DEFAULT_PERIOD, DEFAULT_PROCESS_SHUTDOWN};

/// Every key vigil reads, by the table it is read in (as a header spells it; `""` is the
/// top level). The readers reject any other key with these as the "valid keys" hint, and
/// the fuzz tests and their dictionary draw their keys from here, so a new key is added
/// in one place. `env` is left out: its keys are the user's variable names.
pub const KEYS: &[(&str, &[&str])] = &[
    ("", raw::TOP_KEYS),
    ("supervisor.NAME", raw::SUPERVISOR_KEYS),
    ("process.NAME", raw::PROCESS_KEYS),
    ("process.NAME.backoff", raw::BACKOFF_KEYS),
    ("process.NAME.ready", probe::READY_KEYS),
    ("process.NAME.health", probe::HEALTH_KEYS),
    ("process.NAME.output", output::FILE_KEYS),
    ("control", ops::CONTROL_KEYS),
    ("http", ops::HTTP_KEYS),
];

/// A loaded configuration.
#[derive(Debug)]
pub struct Loaded {
    /// The validated tree.
    pub tree: Tree,
    /// Things that are valid but probably not what was meant.
    pub warnings: Vec<Diagnostic>,
}

/// One problem, located in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line (0 when the file could not be read).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Key path such as `process.web.restart`; empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in a config, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// The largest config file vigil reads (4 MiB; a tree of 10,000 processes takes about
/// 1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Loaded, Errors> {
    let source = read_source(path).map_err(|(message, hint)| {
        Errors(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message,
            hint: Some(hint),
        }])
    })?;
    parse(&source, path)
}

/// Reads the config file at `path`: a regular file (a symlink to one is followed, as
/// Kubernetes ConfigMaps are mounted) of at most [`MAX_CONFIG_BYTES`], in UTF-8. Opened
/// with `O_NONBLOCK`, so that a FIFO nobody writes is refused at once instead of blocking
/// the open; what was opened is checked with `fstat`, so `/dev/zero` or a FIFO is
/// refused before a byte is read. The error: what is wrong, and how to fix it.
pub fn read_source(path: &Path) -> Result<String, (String, String)> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let cannot = |e: std::io::Error| {
        (
            format!("cannot read the configuration: {e}"),
            "pass the path as an argument, or set VIGIL_CONFIG (default /etc/vigil/vigil.toml)"
                .to_string(),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let (what, hint) = if kind.is_dir() {
            ("a directory", "give the path of the config file in it")
        } else if kind.is_fifo() {
            (
                "a FIFO",
                "point vigil at a regular file (a symlink to one is fine); to generate the \
                 config (a pipe, `<(...)`), write it to a file first",
            )
        } else if kind.is_char_device() {
            (
                "a character device",
                "point vigil at a regular file (a symlink to one is fine)",
            )
        } else if kind.is_block_device() {
            (
                "a block device",
                "point vigil at a regular file (a symlink to one is fine)",
            )
        } else if kind.is_socket() {
            (
                "a socket",
                "point vigil at a regular file (a symlink to one is fine)",
            )
        } else {
            (
                "not a file",
                "point vigil at a regular file (a symlink to one is fine)",
            )
        };
        return Err((
            format!("the configuration is not a regular file ({what})"),
            hint.to_string(),
        ));
    }
    let too_large = |size: u64| {
        (
            format!(
                "the configuration is larger than 4 MiB ({size} bytes; at most \
                 {MAX_CONFIG_BYTES})"
            ),
            "is it the right file? a tree of 10,000 processes takes about 1 MiB".to_string(),
        )
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    // The file may grow while it is read: never read more than the limit and one byte.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 ({e})"),
        ))
    })
}

/// Validates config text; `origin` names it in messages.
pub fn parse(source: &str, origin: &Path) -> Result<Loaded, Errors> {
    let mut cx = Cx::new(source, origin);
    let tree = raw::read(&mut cx).and_then(|file| validate::build(&mut cx, file));
    cx.errors.sort_by_key(|d| (d.line, d.col));
    cx.warnings.sort_by_key(|d| (d.line, d.col));
    match tree {
        Some(tree) if cx.errors.is_empty() => Ok(Loaded {
            tree,
            warnings: cx.warnings,
        }),
        _ => Err(Errors(cx.errors)),
    }
}

/// `vigil check`: print the resolved tree (exit 0) or every error (exit 78).
pub fn check_main(path: &Path) -> Result<(), crate::exit::Error> {
    match load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render(&loaded.tree));
            Ok(())
        }
        Err(errors) => {
            let n = errors.0.len();
            Err(crate::exit::Error::Config(format!(
                "{errors}{}: {n} error{}; nothing was started\n",
                path.display(),
                if n == 1 { "" } else { "s" }
            )))
        }
    }
}

/// Collects diagnostics while reading; turns byte offsets into line:col.
pub(crate) struct Cx<'s> {
    source: &'s str,
    file: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Byte offset of every line's start, built on the first `line_col` (one warning per
    /// process in a 10,000-process tree made a scan from the top per call quadratic).
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'s> Cx<'s> {
    fn new(source: &'s str, file: &Path) -> Self {
        Cx {
            source,
            file: file.to_path_buf(),
            errors: Vec::new(),
            warnings: Vec::new(),
            line_starts: std::cell::OnceCell::new(),
        }
    }

    fn diagnostic(
        &self,
        at: usize,
        key: &str,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(at);
        Diagnostic {
            file: self.file.clone(),
            line,
            col,
            key: key.to_string(),
            message,
            hint,
        }
    }

    /// Records an error at byte offset `at`.
    pub(crate) fn error(
        &mut self,
        at: usize,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let d = self.diagnostic(at, key, message.into(), hint);
        self.errors.push(d);
    }

    /// Records a warning at byte offset `at`.
    pub(crate) fn warn(
        &mut self,
        at: usize,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let d = self.diagnostic(at, key, message.into(), hint);
        self.warnings.push(d);
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// 1-based line and column of a byte offset.
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.source.len());
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.source.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // Lines starting at or before `at`: at least one, the first starts at 0.
        let line = starts.partition_point(|&s| s <= at);
        let line_start = starts[line - 1];
        (line, self.source[line_start..at].chars().count() + 1)
    }
}
