//! Child output (`output = "inherit" | "prefix" | "null" | { file = ... }`) end to end:
//! whole lines from several children and both streams, partial last lines, long lines cut
//! with a continuation mark, non-UTF-8 bytes, a grandchild writing after its parent
//! exited, file rotation, a 1 GiB flood through several children at once, and a stdout
//! nobody reads (backpressure: vigil's memory stays bounded and it still stops the tree).
//!
//! `VIGIL_FLOOD_BYTES` sets the flood's size per mode (default 1 GiB; the test prints the
//! time it took).

#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A tree of `processes` (TOML text) with `children` in order that ends, exit code 0,
/// once every significant child has ended.
fn tree(children: &[&str], processes: &str) -> String {
    format!(
        "auto_shutdown = \"all_significant\"\nchildren = {}\n{processes}",
        toml_array(&strs(children))
    )
}

/// A temporary, significant process: the tree ends with it.
const ENDS: &str = "restart = \"temporary\"\nsignificant = true";

fn bytes_of(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn prefix_mode_writes_whole_lines_to_stdout_and_stderr() {
    let dir = TestDir::new();
    let mut procs = process(
        &dir,
        "w",
        &[
            "--print",
            "one\\ntwo\\nbin \\xff\\xfe end\\npartial",
            "--print-err",
            "err one\\nerr partial",
            "--exit-after",
            "0",
        ],
        &format!("output = \"prefix\"\n{ENDS}"),
    );
    // Two lines of 150000 bytes: each is cut into 65536 + 65536 + 18928.
    procs.push_str(&process(
        &dir,
        "long",
        &[
            "--flood",
            "300000",
            "--line-len",
            "150000",
            "--exit-after",
            "0",
        ],
        &format!("output = \"prefix\"\n{ENDS}"),
    ));
    let config = dir.write("vigil.toml", &tree(&["w", "long"], &procs));
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 0);

    let out = bytes_of(d.stdout_path());
    for line in [
        &b"w | one\n"[..],
        b"w | two\n",
        b"w | bin \xff\xfe end\n",
        b"w | partial\n",
    ] {
        assert!(
            contains(&out, line),
            "{:?} missing from stdout:\n{}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&out[..out.len().min(2000)])
        );
    }
    let err = d.stderr_text();
    assert!(err.contains("\nw | err one\n"), "{err}");
    assert!(err.contains("\nw | err partial\n"), "{err}");
    assert!(!contains(&out, b"err one"), "stderr lines stay on stderr");

    // The long lines: pieces of at most 65536 bytes, continuations marked `long + `.
    let pieces: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"long "))
        .collect();
    let lens: Vec<(String, usize)> = pieces
        .iter()
        .map(|p| (String::from_utf8_lossy(&p[..7]).into_owned(), p.len() - 7))
        .collect();
    let expected = |head: &str, n| (head.to_string(), n);
    assert_eq!(
        lens,
        vec![
            expected("long | ", 65536),
            expected("long + ", 65536),
            expected("long + ", 150000 - 1 - 2 * 65536),
            expected("long | ", 65536),
            expected("long + ", 65536),
            expected("long + ", 150000 - 1 - 2 * 65536),
        ]
    );
    let joined: Vec<u8> = pieces[..3].iter().flat_map(|p| p[7..].to_vec()).collect();
    assert!(joined.starts_with(b"long 0 xxx") && joined.iter().skip(7).all(|&b| b == b'x'));
}

#[test]
fn null_mode_discards_and_inherit_passes_through() {
    let dir = TestDir::new();
    let procs = process(
        &dir,
        "quiet",
        &[
            "--print",
            "hidden\\n",
            "--print-err",
            "hidden too\\n",
            "--exit-after",
            "0",
        ],
        &format!("output = \"null\"\n{ENDS}"),
    ) + &process(
        &dir,
        "loud",
        &["--print", "plain\\n", "--exit-after", "0"],
        ENDS,
    );
    let config = dir.write("vigil.toml", &tree(&["quiet", "loud"], &procs));
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let (out, err) = (d.stdout_text(), d.stderr_text());
    assert!(out.contains("plain\n") && !out.contains("| plain"), "{out}");
    assert!(
        !out.contains("hidden") && !err.contains("hidden"),
        "{out}{err}"
    );
    assert_eq!(dir.read_events().count("PRINTED", "quiet"), 1);
}

/// The pipes of one child are not inherited by the next (vigil's ends are close-on-exec).
#[test]
fn children_with_piped_output_get_only_fds_0_1_2() {
    let dir = TestDir::new();
    let extra = format!("output = \"prefix\"\n{ENDS}");
    let procs = process(&dir, "p1", &["--report-fds", "--exit-after", "0"], &extra)
        + &process(&dir, "p2", &["--report-fds", "--exit-after", "0"], &extra)
        + &process(
            &dir,
            "p3",
            &["--report-fds", "--exit-after", "0"],
            &format!("output = {{ file = \"p3.log\" }}\n{ENDS}"),
        );
    let config = dir.write("vigil.toml", &tree(&["p1", "p2", "p3"], &procs));
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    for n in ["p1", "p2", "p3"] {
        let fds = ev
            .first("FDS", n)
            .unwrap_or_else(|| panic!("no FDS from {n}"));
        assert_eq!(fds.args, strs(&["0,1,2"]), "{n}");
    }
}

/// End of file, not the child's exit, ends a reader: a grandchild in its own session
/// that writes only after the child has exited (it waits on a pipe the child holds) is
/// still read, and the tree keeps running meanwhile.
#[test]
fn output_of_a_grandchild_after_the_child_exited_arrives() {
    let dir = TestDir::new();
    let procs = process(
        &dir,
        "parent",
        &[
            "--late-line",
            "late \\xffline\\nno newline",
            "--exit-after",
            "0",
        ],
        // Kept: the grandchild must outlive its parent to write late (by default it is
        // stopped as a leftover when the parent exits).
        "output = \"prefix\"\nrestart = \"temporary\"\nleftovers = \"keep\"",
    ) + &process(&dir, "keep", &[], "output = \"prefix\"");
    let config = dir.write(
        "vigil.toml",
        &format!("children = [\"parent\", \"keep\"]\n{procs}"),
    );
    let d = vigil_in(&dir).arg("run").arg(&config).spawn();
    let ev = dir.wait_events("the grandchild's late line", TIMEOUT, |e| {
        e.count("LATE", "parent") == 1
    });
    assert_eq!(ev.exits("parent").len(), 1, "the child exited first");
    d.wait_for("the late lines on stdout", TIMEOUT, || {
        let out = bytes_of(d.stdout_path());
        (contains(&out, b"parent | late \xffline\n") && contains(&out, b"parent | no newline\n"))
            .then_some(())
    });
    let log = log(&d);
    assert!(log.contains("not restarted: temporary child"), "{log}");
}

/// A grandchild that holds the pipe for ever keeps its reader alive, but restarts never
/// wait for it: every incarnation gets new pipes, and all their lines arrive.
#[test]
fn a_reader_kept_alive_by_a_grandchild_never_delays_restarts() {
    let dir = TestDir::new();
    let procs = process(
        &dir,
        "r",
        &[
            "--setsid-grandchild",
            "forever",
            "--print",
            "hello\\n",
            "--exit-after",
            "0",
        ],
        // The grandchild is kept (not stopped as a leftover): it must hold the pipe.
        "output = \"prefix\"\nbackoff = \"none\"\nleftovers = \"keep\"",
    );
    let config = dir.write(
        "vigil.toml",
        &format!("intensity = 100\nperiod = \"1h\"\nchildren = [\"r\"]\n{procs}"),
    );
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    let ev = dir.wait_events("three incarnations", TIMEOUT, |e| {
        e.count("START", "r") >= 3
    });
    let holders = ev.of("GRANDCHILD", "r");
    assert!(holders.len() >= 2, "{:?}", ev.lines());
    for g in &holders[..2] {
        assert!(
            is_alive(g.pid),
            "grandchild {} of an earlier incarnation holds its pipe",
            g.pid
        );
    }
    d.wait_for("a line from each of three incarnations", TIMEOUT, || {
        (d.stdout_text().matches("r | hello\n").count() >= 3).then_some(())
    });
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(30)), 0);
}

/// Reads `path` and its rotated files, oldest first.
fn rotated_set(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for k in (1..=1000).rev() {
        let p = PathBuf::from(format!("{}.{k}", path.display()));
        if p.exists() {
            files.push(p);
        }
    }
    files.push(path.to_path_buf());
    files
}

#[test]
fn file_mode_rotates_by_size_without_splitting_lines() {
    let dir = TestDir::new();
    // 100-byte lines, 8 KiB files: 81 lines per file; 1000 lines make 13 files, 3 kept.
    let procs = process(
        &dir,
        "f",
        &[
            "--flood",
            "100000",
            "--line-len",
            "100",
            "--print-err",
            "to the file too\\n",
            "--exit-after",
            "0",
        ],
        &format!("output = {{ file = \"logs/f.log\", max_size = \"8KiB\", keep = 3 }}\n{ENDS}"),
    );
    fs::create_dir_all(dir.join("conf/logs")).unwrap();
    // A relative file is taken from the config file's directory, not vigil's cwd.
    let config = dir.write("conf/vigil.toml", &tree(&["f"], &procs));
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let base = dir.join("conf/logs/f.log");
    let files = rotated_set(&base);
    assert_eq!(
        files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        strs(&["f.log.3", "f.log.2", "f.log.1", "f.log"])
    );
    let mut seqs = Vec::new();
    let mut extra = Vec::new();
    for f in &files {
        let data = bytes_of(f);
        assert!(
            data.len() <= 8192,
            "{} has {} bytes",
            f.display(),
            data.len()
        );
        assert!(data.ends_with(b"\n"), "{} ends mid-line", f.display());
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if line.starts_with(b"f ") {
                assert_eq!(
                    line.len(),
                    99,
                    "whole line: {}",
                    String::from_utf8_lossy(line)
                );
                let seq: u64 = std::str::from_utf8(&line[2..])
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                seqs.push(seq);
            } else {
                extra.push(String::from_utf8_lossy(line).into_owned());
            }
        }
    }
    assert_eq!(extra, strs(&["to the file too"]));
    // The newest 4 files hold the last lines, in order, each once.
    let last = *seqs.last().unwrap();
    assert_eq!(last, 999);
    let first = seqs[0];
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
    assert!(!dir.join("conf/logs/f.log.4").exists());
    assert!(
        !d.stdout_text().contains("f 0 "),
        "nothing on vigil's stdout"
    );
}

#[test]
fn an_unopenable_output_file_is_a_start_failure() {
    let dir = TestDir::new();
    let procs = process(&dir, "f", &[], "output = { file = \"no/such/dir/f.log\" }");
    let config = dir.write("vigil.toml", &format!("children = [\"f\"]\n{procs}"));
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let log = log(&d);
    assert!(
        log.contains("f: cannot open output file") && log.contains("no/such/dir/f.log"),
        "{log}"
    );
    assert_eq!(dir.read_events().count("START", "f"), 0);
}

/// Checks a stream of numbered flood lines (`[PREFIX]NAME SEQ xxx…`) line by line: every
/// line whole (its length), each child's sequence numbers 0, 1, 2… with none missing or
/// repeated. Lines that are not flood lines go to `other`.
struct FloodCheck {
    next: HashMap<String, u64>,
    line_len: HashMap<String, usize>,
    other: usize,
}

impl FloodCheck {
    fn new(line_len: &HashMap<String, usize>) -> FloodCheck {
        FloodCheck {
            next: HashMap::new(),
            line_len: line_len.clone(),
            other: 0,
        }
    }

    /// `prefixed`: lines are `NAME | NAME SEQ x…`.
    fn read(&mut self, path: &Path, prefixed: bool) {
        let file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::with_capacity(8192);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).unwrap() == 0 {
                break;
            }
            assert_eq!(
                line.last(),
                Some(&b'\n'),
                "{} ends mid-line",
                path.display()
            );
            self.line(&line[..line.len() - 1], prefixed, path);
        }
    }

    fn line(&mut self, line: &[u8], prefixed: bool, path: &Path) {
        let show = || String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        let mut body = line;
        if prefixed {
            let Some(bar) = line.windows(3).take(40).position(|w| w == b" | ") else {
                // Not a child's line (vigil's own log).
                assert!(
                    !line.starts_with(b"c") || !line[1].is_ascii_digit(),
                    "garbled line in {}: {}",
                    path.display(),
                    show()
                );
                self.other += 1;
                return;
            };
            let name = &line[..bar];
            body = &line[bar + 3..];
            assert!(
                body.starts_with(name) && body.get(name.len()) == Some(&b' '),
                "line of another child, or garbled, in {}: {}",
                path.display(),
                show()
            );
        }
        let sp = body
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or_else(|| panic!("garbled line in {}: {}", path.display(), show()));
        let name = std::str::from_utf8(&body[..sp]).unwrap().to_string();
        let want_len = *self
            .line_len
            .get(&name)
            .unwrap_or_else(|| panic!("unknown child in {}: {}", path.display(), show()));
        assert_eq!(
            body.len(),
            want_len,
            "line cut or garbled in {}: {}",
            path.display(),
            show()
        );
        let rest = &body[sp + 1..];
        let sp2 = rest.iter().position(|&b| b == b' ').unwrap();
        let seq: u64 = std::str::from_utf8(&rest[..sp2]).unwrap().parse().unwrap();
        let next = self.next.entry(name.clone()).or_insert(0);
        assert_eq!(
            seq,
            *next,
            "{name}: line out of order, lost or repeated in {}",
            path.display()
        );
        *next += 1;
    }
}

/// 1 GiB (or `VIGIL_FLOOD_BYTES`) of numbered lines in prefix mode (4 children, to
/// vigil's stdout and stderr) and another 1 GiB in file mode (4 children, with rotation,
/// nothing dropped), all 8 children at once. Every line arrives exactly once, whole, in
/// its child's order.
#[test]
fn flood_through_several_children_arrives_whole_once_and_in_order() {
    let total: u64 = std::env::var("VIGIL_FLOOD_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let dir = TestDir::new();
    let per_child = total / 4;
    // Line lengths: short, medium, longer than PIPE_BUF (4096), and odd.
    let lens = [80usize, 333, 5000, 1024];
    let mut line_len = HashMap::new();
    let mut names = Vec::new();
    let mut procs = String::new();
    for i in 0..8 {
        let name = format!("c{i}");
        let len = lens[i % 4];
        line_len.insert(name.clone(), len - 1);
        let mut args = vec![
            "--flood".to_string(),
            per_child.to_string(),
            "--line-len".into(),
            len.to_string(),
            "--exit-after".into(),
            "0".into(),
        ];
        let output = if i < 4 {
            if i % 2 == 1 {
                args.extend(["--flood-fd".to_string(), "2".to_string()]);
            }
            "output = \"prefix\"".to_string()
        } else {
            format!("output = {{ file = \"{name}.log\", max_size = \"64MiB\", keep = 100 }}")
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        procs.push_str(&process(&dir, &name, &args, &format!("{output}\n{ENDS}")));
        names.push(name);
    }
    let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = dir.write("vigil.toml", &tree(&names_ref, &procs));
    let started = Instant::now();
    let mut d = vigil_in(&dir).arg("run").arg(&config).spawn();
    assert_eq!(d.wait_exit(Duration::from_secs(600)), 0);
    let flood_time = started.elapsed();

    let ev = dir.read_events();
    let mut check = FloodCheck::new(&line_len);
    check.read(d.stdout_path(), true);
    let stderr = d.stdout_path().with_file_name("stderr");
    check.read(&stderr, true);
    for name in &names[4..] {
        for f in rotated_set(&dir.join(&format!("{name}.log"))) {
            check.read(&f, false);
        }
    }
    for name in &names {
        let flood = ev
            .first("FLOOD", name)
            .unwrap_or_else(|| panic!("no FLOOD from {name}"));
        let lines: u64 = flood.args[0].parse().unwrap();
        assert_eq!(
            check.next.get(name).copied().unwrap_or(0),
            lines,
            "{name}: lines written vs arrived"
        );
    }
    assert!(check.other > 0, "vigil's own log lines were seen on stderr");
    eprintln!(
        "flood: 2 x {total} bytes through 8 children in {:.1?} ({:.0} MiB/s), checked in {:.1?}",
        flood_time,
        2.0 * total as f64 / (1 << 20) as f64 / flood_time.as_secs_f64(),
        started.elapsed() - flood_time
    );
}

/// A stdout whose reader is gone (EPIPE): the output is dropped with one warning, and
/// the children never block on it.
#[test]
fn a_closed_stdout_drops_output_without_blocking_children() {
    let dir = TestDir::new();
    let procs = process(
        &dir,
        "w",
        &["--flood", "10000000", "--exit-after", "0"],
        &format!("output = \"prefix\"\n{ENDS}"),
    );
    let config = dir.write("vigil.toml", &tree(&["w"], &procs));
    let stderr_path = dir.join("vigil.stderr");
    let mut vigil = ChildGuard::spawn(
        Command::new(vigil())
            .arg("run")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("VIGIL_TEST_EVENTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).unwrap()),
    );
    drop(vigil.stdout.take());
    assert_eq!(vigil.wait_exit(Duration::from_secs(60)), 0);
    let log = fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(
        log.matches("cannot write child output to vigil's stdout")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(dir.read_events().count("FLOOD", "w"), 1);
}

fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix(" kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn blocked_writing_a_pipe(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|w| w.contains("pipe_w") || w.contains("pipe_wait"))
}

/// vigil's stdout is a pipe nobody reads: the writer blocks, the readers stop, the
/// children block on their full pipes; vigil's memory stays bounded, it still answers
/// SIGUSR1 and SIGTERM, stops the tree, and exits after a bounded wait for the output.
#[test]
fn a_stdout_nobody_reads_blocks_the_children_not_vigil() {
    let dir = TestDir::new();
    let names = ["s1", "s2", "s3"];
    let mut procs = String::new();
    for n in names {
        procs.push_str(&process(
            &dir,
            n,
            &["--flood", "1073741824", "--line-len", "200"],
            "output = \"prefix\"",
        ));
    }
    let config = dir.write(
        "vigil.toml",
        &format!("children = {}\n{procs}", toml_array(&strs(&names))),
    );
    let stderr_path = dir.join("vigil.stderr");
    let mut vigil = ChildGuard::spawn(
        Command::new(vigil())
            .arg("run")
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("VIGIL_TEST_EVENTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).unwrap()),
    );
    let pid = vigil.pid();
    let ev = wait_started(&dir, &names);
    let kids: Vec<i32> = names.iter().map(|n| ev.pids_of(n)[0]).collect();
    wait_for(
        "every child blocked writing its pipe",
        Duration::from_secs(30),
        || {
            kids.iter()
                .all(|&k| blocked_writing_a_pipe(k))
                .then_some(())
        },
    );
    wait_for(
        "vigil's stdout writer blocked on the unread pipe",
        TIMEOUT,
        || {
            let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
            tasks
                .flatten()
                .any(|t| {
                    fs::read_to_string(t.path().join("wchan"))
                        .is_ok_and(|w| w.contains("pipe_w") || w.contains("pipe_wait"))
                })
                .then_some(())
        },
    );
    let rss = proc_status_kib(pid, "VmRSS:");
    let hwm = proc_status_kib(pid, "VmHWM:");
    eprintln!(
        "vigil with an unread stdout and 3 flooding children: VmRSS {rss} KiB, peak {hwm} KiB"
    );
    assert!(
        hwm < 64 * 1024,
        "vigil's memory is not bounded: peak RSS {hwm} KiB"
    );

    // The loop is not stuck behind stdout: a status request is answered...
    kill(pid, libc::SIGUSR1);
    let log_text = || fs::read_to_string(&stderr_path).unwrap_or_default();
    wait_for("the status log", TIMEOUT, || {
        log_text().contains("status").then_some(())
    });
    // ...and a stop request stops the tree.
    kill(pid, libc::SIGTERM);
    let code = vigil.wait_exit(Duration::from_secs(30));
    let log = log_text();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("tree stopped"), "{log}");
    assert!(log.contains("child output not fully written"), "{log}");
    for k in kids {
        assert!(!is_alive(k), "child {k} left running");
    }
    drop(vigil.stdout.take());
}
