//! Child output: the pipes a child writes to, the readers that cut what it writes into
//! lines, and the writers that put those lines on vigil's stdout/stderr or into a file.
//!
//! # What each mode does
//!
//! - `inherit`: the child gets vigil's own fds 1 and 2; nothing here is involved.
//! - `null`: the child gets `/dev/null` for both.
//! - `prefix` and `file`: each incarnation of the child gets two fresh pipes, one for its
//!   stdout and one for its stderr (the write ends become its fds 1 and 2 through std's
//!   `Command` stdio; vigil's ends are `O_CLOEXEC`, so no other child inherits them, and
//!   vigil closes its copy of the write ends as soon as the child is started). A reader
//!   task per pipe runs on the one current-thread loop and cuts the bytes into lines:
//!   - prefix: each line goes to vigil's stdout (from the child's stdout) or stderr (from
//!     its stderr) as `NAME | line`;
//!   - file: both streams go, line by line, to the file, as written.
//!
//! # Line framing ([`Framer`])
//!
//! A line is written whole, with one write of the whole batch it is in, and batches of
//! one sink are written one at a time, so lines from different children (or from a
//! child's two streams) never interleave mid-line. Bytes pass through as they are
//! (non-UTF-8 included). A line longer than [`LINE_MAX`] (64 KiB) is cut into pieces of
//! 64 KiB, each written as a line of its own; every piece after the first is marked as a
//! continuation: `NAME + ` instead of `NAME | ` in prefix mode, a leading `+ ` in file
//! mode. A last line without a newline is written, with a newline added, at end of file.
//!
//! # Lifetime of a reader
//!
//! End of file, not the child's exit, ends a reader: a grandchild that still holds the
//! pipe keeps the reader alive after the child is gone, and what it writes still
//! arrives. Readers are independent of supervision: a restart gets new pipes and new
//! readers at once, and never waits for the old ones. When the tree has stopped (and the
//! sweep has killed every descendant, so every pipe has reached end of file) the runtime
//! waits, with a bound, for the readers to finish and the writers to drain
//! ([`Outputs::finish`]).
//!
//! # Backpressure, and why the loop never blocks on a slow stdout
//!
//! Vigil never sets `O_NONBLOCK` on its own stdout or stderr: those open file
//! descriptions are shared with its parent and with `inherit` children, who would start
//! getting `EAGAIN`. A write to them can therefore block for as long as whoever reads
//! them wants (a full pipe, a stopped terminal). So they are written by one writer
//! thread each, never by the loop: [`StdWriter`] for stdout, started the first time a
//! `prefix` child starts, and [`crate::runtime::stderr`] for stderr, started with `vigil
//! run`. Readers hand batches of whole lines (up to 64 KiB each) to the writer
//! through a bounded queue of [`QUEUE`] batches. When the queue is full the reader stops
//! reading (it awaits the queue), the child's pipe fills (64 KiB in the kernel), and the
//! child blocks in `write(2)`: backpressure, not buffering. The memory vigil spends on
//! output is bounded: per sink at most `QUEUE` batches of about 128 KiB, per reader one
//! 64 KiB read buffer, one partial line of at most 64 KiB and one batch. The loop itself
//! only awaits, so signals, exits and timers are handled while stdout is stuck; stopping
//! the tree kills the children, which ends their writes.
//!
//! Files are written by the reader on the loop thread: a write to a regular file goes
//! to the page cache and does not wait for a reader, so it is bounded like vigil's own
//! logging (a disk that stalls stalls both). Rotation happens before a write would make
//! the file larger than `max_size` (never splitting a line: a single line longer than
//! `max_size` gets a file of its own): `PATH.(keep-1)` → `PATH.keep`, …, `PATH` →
//! `PATH.1`, then a new `PATH`. The file of a process stays open across its restarts.
//! A child may be able to write the file's directory, or one above it: the file is opened
//! through [`crate::os::dirfd`] (no symbolic link another user could have made, only a
//! regular file with one name, a directory only root or vigil's user can write unless
//! `allow_shared_directory`), and the directory stays open so that rotation renames and
//! reopens relative to its descriptor, never by path.
//!
//! On stderr the writer is vigil's one stderr writer ([`crate::runtime::stderr`],
//! thread `vigil-stderr`), which also writes vigil's own log lines: prefixed lines and log
//! lines share its queue and are written one entry at a time, so they never interleave
//! mid-line, and a stderr nobody reads stalls neither the loop nor its logging (log lines
//! are dropped and counted; child batches wait, as above). Children in `inherit` mode
//! write to the same fds directly, so their lines can mix with prefixed lines (anything
//! over `PIPE_BUF` = 4 KiB is not atomic on a pipe).
//!
//! Must never: block the loop on vigil's stdout or stderr, buffer without bound, end a
//! reader at the child's exit, make supervision wait for output, or wait for a process.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::os::dirfd::{self, Dir};
use crate::os::spawn::ChildStdio;
use crate::os::sys::Pid;
use crate::runtime::stderr::Stderr;
use crate::spec::{FileOutput, NodeId, Output, ProcessSpec};

/// The longest line written whole; longer ones are cut into pieces of this size.
pub const LINE_MAX: usize = 64 * 1024;
/// How many bytes a reader asks for at once (a pipe holds 64 KiB by default).
const CHUNK: usize = 64 * 1024;
/// A reader hands over its batch once it holds this much.
const BATCH: usize = 64 * 1024;
/// Batches queued for the stdout (or stderr) writer before readers stop reading.
pub const QUEUE: usize = 8;

/// Readers ready to start once their child runs.
struct Pending(Vec<(pipe::Receiver, Framer, Sink)>);

/// Where a reader's batches go.
#[derive(Clone)]
enum Sink {
    /// vigil's stdout, through its writer thread.
    Stdout(mpsc::Sender<Vec<u8>>),
    /// vigil's stderr, through its writer thread (shared with vigil's log).
    Stderr(&'static Stderr),
    /// A process's file.
    File(Arc<Mutex<RotatingFile>>),
}

impl Sink {
    async fn put(&self, batch: Vec<u8>) {
        match self {
            // The writer only goes away once every reader is done.
            Sink::Stdout(tx) => {
                let _ = tx.send(batch).await;
            }
            Sink::Stderr(w) => w.put(batch).await,
            Sink::File(f) => f
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .write_lines(&batch),
        }
    }
}

/// The writer thread for vigil's stdout.
struct StdWriter {
    tx: mpsc::Sender<Vec<u8>>,
    finished: oneshot::Receiver<()>,
}

impl StdWriter {
    fn start() -> io::Result<StdWriter> {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name("vigil-stdout".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let mut failed = false;
                while let Some(batch) = rx.blocking_recv() {
                    let mut out = io::stdout().lock();
                    let result = out.write_all(&batch).and_then(|()| out.flush());
                    drop(out);
                    // Keep draining after an error, so children never block on a dead
                    // stdout; say so once.
                    match result {
                        Err(e) if !failed => {
                            failed = true;
                            warn!("cannot write child output to vigil's stdout ({e}); dropping it until a write succeeds");
                        }
                        Ok(()) => failed = false,
                        Err(_) => {}
                    }
                }
                let _ = done.send(());
            })?;
        Ok(StdWriter { tx, finished })
    }
}

/// The output side of the runtime: writer threads, open files, and a count of live
/// readers.
pub struct Outputs {
    stdout: Option<StdWriter>,
    stderr: Option<&'static Stderr>,
    files: HashMap<NodeId, Arc<Mutex<RotatingFile>>>,
    /// Cloned into every reader; the receiver sees the end once all are dropped.
    live: mpsc::Sender<()>,
    all_done: mpsc::Receiver<()>,
}

impl Default for Outputs {
    fn default() -> Self {
        Self::new()
    }
}

impl Outputs {
    /// No readers, no writers yet.
    pub fn new() -> Outputs {
        let (live, all_done) = mpsc::channel(1);
        Outputs {
            stdout: None,
            stderr: None,
            files: HashMap::new(),
            live,
            all_done,
        }
    }

    /// Starts process `node` (`name`) with its output set up, and its readers. Must be
    /// called on the loop (inside the runtime). The error names the process, what failed
    /// and how to fix it.
    pub fn spawn(
        &mut self,
        node: NodeId,
        name: &str,
        spec: &ProcessSpec,
        default_cwd: &Path,
        options: crate::os::spawn::SpawnOptions,
    ) -> Result<Pid, String> {
        let (stdio, pending) = self.prepare(node, name, &spec.output)?;
        let pid = crate::os::spawn::spawn_with_output(name, spec, default_cwd, options, stdio)
            .map_err(|e| e.to_string())?;
        // The child holds the write ends now (our copies were closed with the Command).
        for (rx, framer, sink) in pending.0 {
            tokio::spawn(read_pipe(rx, framer, sink, self.live.clone()));
        }
        Ok(pid)
    }

    fn prepare(
        &mut self,
        node: NodeId,
        name: &str,
        output: &Output,
    ) -> Result<(ChildStdio, Pending), String> {
        let (out_sink, err_sink, headers) = match output {
            Output::Inherit => return Ok((ChildStdio::inherit(), Pending(Vec::new()))),
            Output::Null => {
                let stdio = ChildStdio {
                    stdout: Stdio::null(),
                    stderr: Stdio::null(),
                };
                return Ok((stdio, Pending(Vec::new())));
            }
            Output::Prefix => {
                let out = Sink::Stdout(stdout_writer(&mut self.stdout, name)?);
                let err = match self.stderr {
                    Some(w) => w,
                    None => {
                        let w = crate::runtime::stderr::start()
                            .map_err(|e| format!("{name}: {e}, or use output = \"inherit\""))?;
                        *self.stderr.insert(w)
                    }
                };
                let err = Sink::Stderr(err);
                let headers = (format!("{name} | "), format!("{name} + "));
                (out, err, headers)
            }
            Output::File(f) => {
                let file = match self.files.get(&node) {
                    Some(f) => f.clone(),
                    None => {
                        let f = Arc::new(Mutex::new(RotatingFile::open(name, f)?));
                        self.files.insert(node, f.clone());
                        f
                    }
                };
                let headers = (String::new(), "+ ".to_string());
                (Sink::File(file.clone()), Sink::File(file), headers)
            }
        };
        let (out_rx, out_tx) = pipe_pair(name)?;
        let (err_rx, err_tx) = pipe_pair(name)?;
        let framer = || Framer::new(headers.0.as_bytes(), headers.1.as_bytes());
        Ok((
            ChildStdio {
                stdout: Stdio::from(out_tx),
                stderr: Stdio::from(err_tx),
            },
            Pending(vec![
                (out_rx, framer(), out_sink),
                (err_rx, framer(), err_sink),
            ]),
        ))
    }

    /// Resolves once every reader has reached end of file and the writers have written
    /// everything queued. Call it after the tree has stopped, with a bound: a stdout
    /// nobody reads never drains.
    pub fn finish(self) -> impl Future<Output = ()> {
        let Outputs {
            stdout,
            stderr,
            files,
            live,
            mut all_done,
        } = self;
        drop(live);
        async move {
            // `recv` returns `None` once every reader has dropped its `live` clone.
            let _ = all_done.recv().await;
            if let Some(w) = stdout {
                drop(w.tx);
                let _ = w.finished.await;
            }
            if let Some(w) = stderr {
                w.flushed().await;
            }
            drop(files);
        }
    }
}

fn stdout_writer(
    slot: &mut Option<StdWriter>,
    name: &str,
) -> Result<mpsc::Sender<Vec<u8>>, String> {
    if slot.is_none() {
        let w = StdWriter::start().map_err(|e| {
            format!("{name}: cannot start the thread that writes prefixed output ({e}); raise the thread limit or use output = \"inherit\"")
        })?;
        *slot = Some(w);
    }
    Ok(slot
        .as_ref()
        .map(|w| w.tx.clone())
        .expect("UNWRAP: set just above"))
}

/// A pipe: vigil's read end registered with the loop (non-blocking), and the child's
/// write end (blocking, as programs expect). Both `O_CLOEXEC`.
fn pipe_pair(name: &str) -> Result<(pipe::Receiver, OwnedFd), String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "{name}: cannot create an output pipe ({e}); raise the descriptor limit (ulimit -n)"
        )
    };
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(&e))?;
    // Sets O_NONBLOCK on the read end's own open file description only.
    let rx = pipe::Receiver::from_owned_fd(r).map_err(|e| fail(&e))?;
    Ok((rx, w))
}

/// One reader: until end of file, reads, frames into lines, hands batches to the sink.
async fn read_pipe(
    mut rx: pipe::Receiver,
    mut framer: Framer,
    sink: Sink,
    _live: mpsc::Sender<()>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("reading child output failed: {e}");
                break;
            }
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let used = framer.feed(rest);
            rest = &rest[used..];
            if framer.batch.len() >= BATCH {
                sink.put(framer.take()).await;
            }
        }
        if !framer.batch.is_empty() {
            sink.put(framer.take()).await;
        }
    }
    framer.finish();
    if !framer.batch.is_empty() {
        sink.put(framer.take()).await;
    }
}

/// Cuts a byte stream into lines, each written as `header + line + "\n"`.
#[derive(Debug)]
pub struct Framer {
    /// Before a line (`NAME | `, or nothing in file mode).
    header: Vec<u8>,
    /// Before a piece that continues a cut line (`NAME + `, or `+ `).
    cont: Vec<u8>,
    /// The start of a line whose end has not arrived; at most [`LINE_MAX`] bytes.
    partial: Vec<u8>,
    /// Whether the next piece continues a cut line.
    continuing: bool,
    /// Framed lines not yet handed over.
    pub batch: Vec<u8>,
}

impl Framer {
    /// A framer with these headers.
    pub fn new(header: &[u8], cont: &[u8]) -> Framer {
        Framer {
            header: header.to_vec(),
            cont: cont.to_vec(),
            partial: Vec::new(),
            continuing: false,
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Frames a prefix of `data` and returns how many bytes it took; it stops early once
    /// the batch holds [`BATCH`] bytes, so the caller can hand it over first.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() && self.batch.len() < BATCH {
            let rest = &data[i..];
            let room = LINE_MAX - self.partial.len();
            let window = &rest[..rest.len().min(room + 1)];
            match window.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    self.emit(&rest[..p], false);
                    i += p + 1;
                }
                None if rest.len() > room => {
                    self.emit(&rest[..room], true);
                    i += room;
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    i = data.len();
                }
            }
        }
        i
    }

    /// End of file: a last line without a newline is framed with one added.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            self.emit(&[], false);
        }
    }

    /// Takes the framed lines.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH))
    }

    /// Frames the partial line plus `tail`; `cut` when the line goes on after it.
    fn emit(&mut self, tail: &[u8], cut: bool) {
        let header = if self.continuing {
            &self.cont
        } else {
            &self.header
        };
        self.batch.extend_from_slice(header);
        self.batch.extend_from_slice(&self.partial);
        self.batch.extend_from_slice(tail);
        self.batch.push(b'\n');
        self.partial.clear();
        self.continuing = cut;
    }
}

/// A process's output file, rotated by size, in a directory held open by descriptor.
#[derive(Debug)]
struct RotatingFile {
    name: String,
    path: PathBuf,
    /// The file's directory: rotation and reopening happen here, whatever becomes of its
    /// path (a child that renames the directory and puts a link in its place changes
    /// nothing).
    dir: Dir,
    /// The file's name in `dir`.
    file_name: OsString,
    file: File,
    size: u64,
    max_size: u64,
    keep: u32,
    /// A write or rotation failed and has not succeeded since (warn once).
    failing: bool,
}

impl RotatingFile {
    /// Opens process `name`'s output file as [`crate::os::dirfd`] does: no symbolic
    /// link followed that another user could have made, only a regular file with one
    /// name, and a directory that only root or vigil's user can write unless
    /// `allow_shared_directory`. The error names the process, the path, and the fix.
    fn open(name: &str, spec: &FileOutput) -> Result<RotatingFile, String> {
        let path = &spec.path;
        let key = format!("process.{name}.output");
        let cannot = |e: &dyn std::fmt::Display, fix: &str| {
            format!(
                "{name}: cannot open output file `{}`: {e}; {fix}",
                path.display()
            )
        };
        let (dir_path, file_name) =
            dirfd::split(path).map_err(|e| cannot(&e, &format!("change {key}.file")))?;
        let dir = dirfd::open_dir(dir_path, false)
            .map_err(|e| cannot(&e, &format!("create its directory, or change {key}.file")))?;
        if !spec.allow_shared_directory
            && let Some(why) = dir
                .others_can_write(false)
                .map_err(|e| cannot(&e, &format!("change {key}.file")))?
        {
            let dir_shown = dir_path.display();
            return Err(format!(
                "{name}: refusing output file `{}`: its directory {dir_shown} {why}, so another \
                 user could replace the file with a link to one vigil must not write; make the \
                 directory belong to root or vigil's user and writable only by its owner \
                 (chown root {dir_shown}; chmod go-w {dir_shown}), or set \
                 {key}.allow_shared_directory = true (vigil then still refuses links, \
                 non-regular files and files with other names)",
                path.display(),
            ));
        }
        let file = open_append(&dir, file_name).map_err(|e| {
            cannot(
                &e,
                &format!("make its directory writable for vigil, or change {key}.file"),
            )
        })?;
        let size = file
            .metadata()
            .map_err(|e| cannot(&e, &format!("change {key}.file")))?
            .len();
        Ok(RotatingFile {
            name: name.to_string(),
            path: path.clone(),
            dir,
            file_name: file_name.to_owned(),
            file,
            size,
            max_size: spec.max_size,
            keep: spec.keep,
            failing: false,
        })
    }

    /// Writes whole lines, rotating first whenever the next lines would not fit.
    fn write_lines(&mut self, mut batch: &[u8]) {
        while !batch.is_empty() {
            let take = if self.size + batch.len() as u64 <= self.max_size {
                batch.len()
            } else {
                let room = (self.max_size.saturating_sub(self.size) as usize).min(batch.len());
                match batch[..room].iter().rposition(|&b| b == b'\n') {
                    Some(p) => p + 1,
                    // A line longer than max_size: alone, in a file of its own.
                    None if self.size == 0 => batch
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(batch.len(), |p| p + 1),
                    None => {
                        self.rotate();
                        if self.size != 0 {
                            // Rotation failed; keep writing to the current file.
                            batch.len()
                        } else {
                            continue;
                        }
                    }
                }
            };
            match self.file.write_all(&batch[..take]) {
                Ok(()) => {
                    self.size += take as u64;
                    self.failing = false;
                }
                Err(e) => self.fail("write to", e),
            }
            batch = &batch[take..];
        }
    }

    /// `PATH.(keep-1)` → `PATH.keep`, …, `PATH` → `PATH.1` with `renameat` in the
    /// directory, then a new `PATH` opened there as at the start.
    fn rotate(&mut self) {
        let numbered = |k: u32| dirfd::with_suffix(&self.file_name, &k.to_string());
        for k in (1..self.keep).rev() {
            match self.dir.rename(&numbered(k), &numbered(k + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return self.fail("rotate", e);
                }
                _ => {}
            }
        }
        if let Err(e) = self.dir.rename(&self.file_name, &numbered(1)) {
            return self.fail("rotate", e);
        }
        match open_append(&self.dir, &self.file_name) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
            }
            Err(e) => self.fail("reopen", e),
        }
    }

    fn fail(&mut self, what: &str, e: io::Error) {
        if !self.failing {
            self.failing = true;
            warn!(
                child = %self.name,
                "cannot {what} output file {} ({e}); output is dropped until it works again",
                self.path.display()
            );
        }
    }
}

/// Opens (creating, mode 0644) `name` in `dir` for appending: never through a link, only
/// a regular file with one name ([`Dir::open_regular`]).
fn open_append(dir: &Dir, name: &OsStr) -> io::Result<File> {
    dir.open_regular(name, OFlag::O_CREAT | OFlag::O_APPEND, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Vec<u8> {
        let mut f = Framer::new(b"w | ", b"w + ");
        let mut out = Vec::new();
        for c in chunks {
            let mut rest = *c;
            while !rest.is_empty() {
                let used = f.feed(rest);
                rest = &rest[used..];
                out.extend(f.take());
            }
        }
        f.finish();
        out.extend(f.take());
        out
    }

    #[test]
    fn lines_are_whole_whatever_the_chunks() {
        assert_eq!(frame(&[b"a\nb", b"c\n", b"d"]), b"w | a\nw | bc\nw | d\n");
        assert_eq!(frame(&[b"\xff\xfe\n"]), b"w | \xff\xfe\n");
        assert_eq!(frame(&[b"\n\n"]), b"w | \nw | \n");
        assert_eq!(frame(&[]), b"");
    }

    #[test]
    fn long_lines_are_cut_and_marked() {
        let line = vec![b'x'; LINE_MAX * 2 + 10];
        let mut input = line.clone();
        input.extend_from_slice(b"\nnext\n");
        for chunk in [7, 4096, 65536, input.len()] {
            let chunks: Vec<&[u8]> = input.chunks(chunk).collect();
            let out = frame(&chunks);
            let mut expected = b"w | ".to_vec();
            expected.extend(&line[..LINE_MAX]);
            expected.extend(b"\nw + ");
            expected.extend(&line[..LINE_MAX]);
            expected.extend(b"\nw + xxxxxxxxxx\nw | next\n");
            assert_eq!(out, expected, "chunk {chunk}");
        }
        // Exactly LINE_MAX bytes is one whole line.
        let exact = [vec![b'y'; LINE_MAX], b"\n".to_vec()].concat();
        let out = frame(&[&exact]);
        assert_eq!(out.len(), 4 + LINE_MAX + 1);
    }

    #[test]
    fn rotation_keeps_lines_whole_and_counts_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let spec = FileOutput {
            path: path.clone(),
            max_size: 1024,
            keep: 2,
            allow_shared_directory: false,
        };
        let mut f = RotatingFile::open("t", &spec).unwrap();
        let line = [vec![b'z'; 99], b"\n".to_vec()].concat();
        for _ in 0..35 {
            f.write_lines(&line);
        }
        let sizes: Vec<u64> = ["out.log", "out.log.1", "out.log.2"]
            .iter()
            .map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![500, 1000, 1000]);
        assert!(!dir.path().join("out.log.3").exists());
        // A batch of many lines is split at line ends too.
        f.write_lines(&line.repeat(12));
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, 700);
    }
}
