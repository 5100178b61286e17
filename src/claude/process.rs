//! Which `claude` process a hook belongs to, read from `/proc`.
//!
//! Claude Code runs a hook as hook <- `/bin/sh -c` <- claude (seen on every version from
//! 1.0.128 to 2.1.330; a `/bin/sh` that execs its last command makes it hook <- claude).
//! From 2.1.213 it also says so in `$CLAUDE_PID`; before that the hook has to look.
//! Neither is taken blindly: an ancestor counts only when it is a claude, and `$CLAUDE_PID`
//! only when no such ancestor contradicts it.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::sys::proc::{process_alive, start_time, stopped};
use crate::sys::proc::{read_proc, read_proc_bytes, stat_field, stat_fields};

/// How many ancestors of the hook are looked at: the claude is its grandparent (or its
/// parent when `/bin/sh` execs the hook). Looking further would find an outer claude, the one
/// whose Bash tool started a claude or a test run, and take it for the hook's own.
const MAX_DEPTH: usize = 2;

/// The `claude` process whose hook this process is.
///
/// The parent or grandparent that is a claude ([`is_claude`]) wins. `$CLAUDE_PID` counts
/// only when no such process is there to contradict it (a claude this check does not know,
/// or a test standing in for one): an older claude started from a newer one's Bash tool
/// inherits the outer claude's `$CLAUDE_PID`, and its hooks must still find their own.
///
/// With the claude's start time ([`start_time`]), read in the same walk up the process tree
/// where it can be (one read of `/proc/PID/stat` per ancestor gives its name, parent and
/// start).
pub fn hook_claude() -> Option<(u32, Option<u64>)> {
    let mut seen = Vec::with_capacity(MAX_DEPTH);
    if let Some((pid, stat)) = walk_to_claude(parent_of_me(), &mut seen) {
        return Some((pid, Some(stat.start)));
    }
    let pid =
        std::env::var("CLAUDE_PID").ok().and_then(|p| p.trim().parse::<u32>().ok()).filter(|&p| p > 1)?;
    let start = match seen.iter().find(|(p, _)| *p == pid) {
        Some((_, stat)) => Some(stat.start),
        None => start_time(pid),
    };
    Some((pid, start))
}

/// The first of `pid`'s ancestors (at most [`MAX_DEPTH`] up) that is a claude.
pub fn nearest_claude_ancestor(pid: u32) -> Option<u32> {
    let parent = if pid == std::process::id() { parent_of_me() } else { parent_of(pid) };
    walk_to_claude(parent, &mut Vec::new()).map(|(pid, _)| pid)
}

/// From `parent` up, at most [`MAX_DEPTH`] processes: the first that is a claude, with its
/// stat; `seen` gets the stat of every process looked at.
fn walk_to_claude(parent: Option<u32>, seen: &mut Vec<(u32, Stat)>) -> Option<(u32, Stat)> {
    let mut at = parent?;
    for depth in 0..MAX_DEPTH {
        if at <= 1 {
            return None;
        }
        let stat = stat(at)?;
        if is_claude_named(at, &stat.comm) {
            return Some((at, stat));
        }
        let next = stat.ppid;
        seen.push((at, stat));
        if depth + 1 < MAX_DEPTH {
            at = next;
        }
    }
    None
}

/// This process's parent (no `/proc` read).
fn parent_of_me() -> Option<u32> {
    // SAFETY: getppid has no preconditions and cannot fail.
    u32::try_from(unsafe { libc::getppid() }).ok()
}

/// The parent of `pid` (field 4 of `/proc/PID/stat`).
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_field(pid, 4)?.parse().ok()
}

/// What one read of `/proc/PID/stat` tells of a process.
#[derive(Debug)]
struct Stat {
    /// The command name (field 2, as `/proc/PID/comm` has it).
    comm: String,
    /// The parent (field 4).
    ppid: u32,
    /// The start time (field 22).
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = read_proc(&format!("/proc/{pid}/stat"))?;
    let (open, close) = (text.find('(')?, text.rfind(')')?);
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat_fields(&text)?.collect();
    Some(Stat { comm, ppid: fields.get(4 - 3)?.parse().ok()?, start: fields.get(22 - 3)?.parse().ok()? })
}

/// When `pid` started, in Unix milliseconds: its start time in clock ticks after boot, the
/// boot time taken from the uptime (to 10 ms, where `/proc/stat`'s `btime` is whole seconds).
pub fn start_wall_ms(pid: u32) -> Option<u64> {
    let ticks = start_time(pid)?;
    let uptime = read_proc("/proc/uptime")?;
    let up_secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let boot = crate::sys::now_ms().checked_sub((up_secs * 1000.0) as u64)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(boot + ticks * 1000 / hz)
}

/// Whether `pid` is a Claude Code CLI process: the native binary (`claude`, `claude.exe`,
/// or the native installer's `.../claude/versions/X.Y.Z`), or node running the npm
/// package's `cli.js` (before 2.1.113), which renames itself `claude`.
pub fn is_claude(pid: u32) -> bool {
    let comm = read_proc(&format!("/proc/{pid}/comm")).unwrap_or_default();
    is_claude_named(pid, comm.trim_end())
}

/// [`is_claude`] for a process whose command name (`/proc/PID/comm`) is `comm`.
fn is_claude_named(pid: u32, comm: &str) -> bool {
    if is_claude_name(comm) {
        return true;
    }
    let cmdline = read_proc_bytes(&format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
    let argv0 = args.next().unwrap_or_default();
    if is_claude_name(base(argv0.trim_end())) {
        return true;
    }
    if let Some(script) = args.next()
        && base(&argv0) == "node"
        && (script.ends_with("claude-code/cli.js") || is_claude_name(base(&script)))
    {
        return true;
    }
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => is_claude_name(base(&exe.to_string_lossy())) || is_native_install(&exe),
        Err(_) => false,
    }
}

fn is_claude_name(name: &str) -> bool {
    name == "claude" || name == "claude.exe"
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The native installer's layout: `~/.local/share/claude/versions/2.1.328`.
fn is_native_install(exe: &Path) -> bool {
    let parent = exe.parent();
    parent.and_then(Path::file_name).is_some_and(|n| n == "versions")
        && parent.and_then(Path::parent).and_then(Path::file_name).is_some_and(|n| n == "claude")
}

/// Signals the claude process `pid` after writing `reason` on its stderr, so its caller
/// reads why: `claude -p` on SIGINT reports an error result (`is_error: true`); the Agent
/// SDK yields an error result (SIGINT) or raises (SIGKILL); neither leaves a checkpoint on
/// its stale leaf.
pub fn interrupt(pid: u32, signal: i32, reason: &str) {
    if let Ok(mut err) = std::fs::OpenOptions::new().append(true).open(format!("/proc/{pid}/fd/2")) {
        let _ = writeln!(err, "{reason}");
    }
    // SAFETY: kill(2) with a pid the hook found to be its own claude.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
    // Claude must act on the signal before it reads our exit status (which it would take for
    // a plain "blocked by hook"); on SIGINT it stops waiting for us at once.
    let deadline = Instant::now() + Duration::from_secs(3);
    while crate::sys::pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_parent_and_start_time_come_from_proc() {
        let me = std::process::id();
        let parent = parent_of(me).expect("a parent");
        assert!(parent > 0 && parent != me);
        assert!(start_time(me).is_some());
        assert!(start_time(parent).unwrap() <= start_time(me).unwrap(), "a parent starts first");
        assert_eq!(parent_of(u32::MAX), None);
    }

    #[test]
    fn a_process_is_alive_with_its_own_start_time_and_a_zombie_is_not() {
        let me = std::process::id();
        let start = start_time(me).expect("our start time");
        assert!(process_alive(me, Some(start)) && process_alive(me, None));
        assert!(!process_alive(me, Some(start + 1)), "another process with our pid");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stat_field(pid, 3).is_some_and(|s| s != "Z") {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(crate::sys::pid_alive(pid) && !process_alive(pid, None), "an unreaped zombie is not alive");
        child.wait().unwrap();
    }

    #[test]
    fn our_start_is_in_the_recent_past() {
        let started = start_wall_ms(std::process::id()).unwrap();
        let now = crate::sys::now_ms();
        assert!(started <= now + 1000 && now - started < 3_600_000, "{started} vs {now}");
    }

    #[test]
    fn a_test_binary_is_no_claude() {
        assert!(!is_claude(std::process::id()));
        assert!(!is_claude(u32::MAX));
    }

    #[test]
    fn one_stat_read_says_what_the_separate_reads_say() {
        let me = std::process::id();
        let st = stat(me).unwrap();
        assert_eq!(Some(st.ppid), parent_of(me));
        assert_eq!(Some(st.ppid), parent_of_me());
        assert_eq!(Some(st.start), start_time(me));
        assert_eq!(st.comm, std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap().trim_end());
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        // A child named like `a) b (c` (comm is the file name).
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a) b (c");
        // A link, not a copy: a copy just written can fail to exec ("text file busy") while
        // another test thread forks; the command name comes from the link's name all the same.
        std::os::unix::fs::symlink("/bin/sleep", &odd).unwrap();
        let mut child = std::process::Command::new(&odd).arg("5").spawn().unwrap();
        assert_eq!(parent_of(child.id()), Some(std::process::id()));
        assert!(start_time(child.id()).unwrap() >= start_time(std::process::id()).unwrap());
        let st = stat(child.id()).unwrap();
        assert_eq!((st.comm.as_str(), st.ppid), ("a) b (c", std::process::id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_claude_two_levels_up_is_found_and_one_further_is_not() {
        use std::io::BufRead;
        // claude (a copy of sh) <- sh -c <- sleep, as Claude Code runs a hook; and one more
        // sh between them puts the claude out of reach.
        let dir = tempfile::tempdir().unwrap();
        let claude = dir.path().join("claude");
        std::os::unix::fs::symlink("/bin/sh", &claude).unwrap();
        let script = "echo $$; /bin/sh -c 'sleep 30 & echo $!; /bin/sh -c \"sleep 30 & echo \\$!; wait\" & wait' & wait";
        let mut child = std::process::Command::new(&claude)
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || lines.next().unwrap().unwrap().trim().parse::<u32>().unwrap();
        let (fake, near, far) = (next(), next(), next());
        assert!(is_claude(fake));
        assert_eq!(nearest_claude_ancestor(near), Some(fake));
        assert_eq!(nearest_claude_ancestor(far), None);
        assert_eq!(nearest_claude_ancestor(std::process::id()), None);
        for pid in [near, far] {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn the_native_installers_layout_is_a_claude() {
        assert!(is_native_install(Path::new("/home/me/.local/share/claude/versions/2.1.328")));
        assert!(!is_native_install(Path::new("/usr/lib/versions/2.1.328")));
    }
}
