//! What `/proc` says about vigil's own children: which processes are its direct children
//! now (`/proc/self/task/PID/children` of the main thread, Linux >= 3.5 with `CONFIG_PROC_CHILDREN`, on in
//! every distribution kernel), and when a process started (field 22 of
//! `/proc/PID/stat`, in clock ticks since boot).
//!
//! Used to find the processes a child's exit orphaned to vigil (its subreaper or PID 1)
//! while the child is still a zombie. Must never block on anything but procfs, follow a
//! path a child controls, or fail loudly: a missing file means "nothing known".

use std::fs;

use crate::core::Pid;

/// vigil's direct children: those of its main thread, which is the only one that forks
/// (docs/threads.md) and the one orphans are reparented to (the kernel picks the first
/// live thread of the subreaper, the group leader while it lives, and vigil's main thread
/// lives as long as vigil). One read; empty when `/proc` cannot say.
pub fn children() -> Vec<Pid> {
    let path = format!("/proc/self/task/{}/children", std::process::id());
    fs::read_to_string(path)
        .map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse::<Pid>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Its state letter (field 3): `R`, `S`, `D` (uninterruptible sleep), `Z`, `T`...
    pub state: char,
    /// Its parent (field 4).
    pub ppid: Pid,
    /// Its process group (field 5).
    pub pgid: Pid,
    /// When it started, in clock ticks since boot (field 22).
    pub start_time: u64,
}

/// `pid`'s stat; `None` when it is gone or unreadable. A zombie still has one, so a
/// child's start can be read after it has exited.
pub fn stat(pid: Pid) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`: field 3 (state) is the first there.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(20).collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Why `pid` may still be alive after SIGKILL: its state letter (`D` uninterruptible
/// sleep, `T` stopped by a frozen cgroup ...) and the kernel function it waits in
/// (`/proc/PID/wchan`); `?` for what cannot be read.
pub fn why_alive(pid: Pid) -> (String, String) {
    let state = stat(pid).map_or_else(|| "?".into(), |s| s.state.to_string());
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan"))
        .ok()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "?".into());
    (state, wchan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_name_even_with_odd_names() {
        let text = "42 (a) b) (c) S 1 43 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        let want = Stat {
            state: 'S',
            ppid: 1,
            pgid: 43,
            start_time: 123456,
        };
        assert_eq!(parse_stat(text), Some(want));
        assert_eq!(parse_stat("garbage"), None);
        // The ppid and state of names with spaces and parentheses (the sweep's use).
        let tail = "42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 7 1000 10";
        let of = |head: &str| parse_stat(&format!("{head} {tail}")).map(|s| (s.state, s.ppid));
        assert_eq!(of("42 (sleep) S 7"), Some(('S', 7)));
        assert_eq!(of("42 (a) b (c)) R 9"), Some(('R', 9)));
        assert_eq!(of("42 (my prog) Z 1"), Some(('Z', 1)));
        assert_eq!(of("42 (a) b (c)) D 9"), Some(('D', 9)));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as Pid;
        assert!(stat(me).is_some());
        assert!(stat(-5).is_none());
    }
}
