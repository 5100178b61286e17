//! Processes as `/proc` tells of them: alive, the same process as before (its start time),
//! stopped. Below `claude::process` (which tells whether a process is a claude) so that the
//! waiters in `sys::bell` need nothing above `sys`.

/// When `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`): with the
/// pid, it names one process even after the pid is reused.
/// This process's own is read once (its locks' notes and the turn's records each ask).
pub fn start_time(pid: u32) -> Option<u64> {
    if pid == std::process::id() {
        static OWN: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        // A forked child has another pid: it never reads its parent's from here.
        return *OWN.get_or_init(|| stat_field(pid, 22)?.parse().ok());
    }
    stat_field(pid, 22)?.parse().ok()
}

/// Whether `pid` is a running process (not a zombie waiting to be reaped) and, when `start`
/// is known, the same process that had that start time: a pid alone may name a process that
/// died and was reaped, or a new one that got the pid since.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if !crate::sys::pid_alive(pid) {
        return false;
    }
    // The state (field 3) and the start time (field 22), from one read.
    let fields = read_proc(&format!("/proc/{pid}/stat")).and_then(|stat| {
        let mut fields = stat_fields(&stat)?;
        let state = fields.next()?.to_owned();
        let started: u64 = fields.nth(22 - 4)?.parse().ok()?;
        Some((state, started))
    });
    match fields {
        Some((state, started)) => !matches!(state.as_str(), "Z" | "X") && start.is_none_or(|s| s == started),
        // No /proc (not Linux), or the process went away meanwhile: the pid is all there is.
        None => cfg!(not(target_os = "linux")) && crate::sys::pid_alive(pid),
    }
}

/// Whether `pid` is stopped (SIGSTOP, or stopped by a tracer): it runs nothing until it gets
/// SIGCONT, and answers no one.
pub fn stopped(pid: u32) -> bool {
    stat_field(pid, 3).is_some_and(|state| matches!(state.as_str(), "T" | "t"))
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat` ([`stat_fields`]).
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = read_proc(&format!("/proc/{pid}/stat"))?;
    stat_fields(&stat)?.nth(n.checked_sub(3)?).map(str::to_owned)
}

/// The fields of a `/proc/PID/stat` text from field 3 (the state) on. The command name
/// (field 2) may hold spaces and parentheses, so they are counted after its last `)`.
pub fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// A `/proc` file as text ([`read_proc_bytes`]).
pub fn read_proc(path: &str) -> Option<String> {
    String::from_utf8(read_proc_bytes(path)?).ok()
}

/// A `/proc` file, whole, in one `read` where it fits in 4 KiB (and one more that finds its
/// end). `std::fs::read` asks a `/proc` file its size, which says 0, and then reads it 32, 32,
/// 64, 128 ... bytes at a time: 8 system calls for a `stat` a hook reads for every ancestor.
pub fn read_proc_bytes(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(4096);
    std::fs::File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_only_with_its_own_start_time() {
        let me = std::process::id();
        let started = start_time(me).expect("this process's start time");
        assert!(process_alive(me, None));
        assert!(process_alive(me, Some(started)));
        assert!(!process_alive(me, Some(started + 1)), "a pid reused by another process is not it");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid, None), "a reaped child is gone");
    }
}
