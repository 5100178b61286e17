//! A bell that rings when a file leaves one of a few dirs: how a waiting turn hears that a
//! claude slot, a ticket ahead of it or a session's busy marker went, instead of reading the
//! store again and again (inotify, Linux).
//!
//! The releaser does nothing for it: removing (or renaming away) its file is the ring. A
//! releaser killed before it removed anything rings nothing, so a waiter never waits on the
//! bell alone: [`Bell::wait`] has a timeout, and the waiter looks again when it passes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// What wakes a waiter: a file removed from the dir. Not a file written (the store renames a
/// temp file into place): fifty waiters woken by every ticket that joins the line would read
/// it fifty times for nothing.
const RINGS: u32 = libc::IN_DELETE;

/// For tests: when set (to anything), no bell is had, as where inotify cannot be: every
/// waiter falls back to looking again at its timeouts. Read once per process.
pub const POLL_ENV: &str = "CLAWSESS_BELL_POLL";

fn forced_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var_os(POLL_ENV).is_some())
}

/// Watches dirs; see the module's doc.
pub struct Bell {
    /// Closed by `Drop`, off the waiter's path.
    fd: std::mem::ManuallyDrop<OwnedFd>,
    /// The watch of each dir, in the order given (`-1`: could not watch it, counts as rung
    /// at every wait's timeout only).
    watches: Vec<i32>,
}

impl Bell {
    /// A bell on `dirs` (which must exist). `None` where inotify cannot be had (not Linux, the
    /// user's inotify limits reached, [`POLL_ENV`] set): the caller then looks again at its
    /// timeouts only.
    pub fn on(dirs: &[&Path]) -> Option<Bell> {
        if forced_off() {
            return None;
        }
        // SAFETY: inotify_init1 takes flags only; a non-negative result is an fd we now own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut watches = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: a valid fd and a NUL-terminated path.
            let wd =
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), RINGS | libc::IN_ONLYDIR) };
            if wd < 0 {
                return None;
            }
            watches.push(wd);
        }
        Some(Bell { fd: std::mem::ManuallyDrop::new(fd), watches })
    }

    /// Waits until a file is removed from a watched dir, or `timeout` passes. Which dirs
    /// rang, by their place in [`Bell::on`]'s list (all of them when the kernel's queue
    /// overflowed; none at the timeout). Rings since the last wait count: nothing between a
    /// waiter's look and its wait is missed.
    pub fn wait(&self, timeout: Duration) -> Vec<bool> {
        let rang = self.wait_names(timeout);
        rang.gone.iter().map(|names| rang.overflow || !names.is_empty()).collect()
    }

    /// Waits until a ring that `concerns` the caller, the kernel's queue overflowing, one of
    /// `exits` ending, or `until`, whichever comes first. `concerns` sees each ring that came
    /// before `until` (a waiter can note what left that is not for it, e.g. a turn further
    /// ahead).
    pub fn wait_until(&self, until: Instant, exits: &Exits, mut concerns: impl FnMut(&Rang) -> bool) {
        loop {
            let rang = self.wait_names_or(until.saturating_duration_since(Instant::now()), exits);
            if rang.overflow
                || rang.exited
                || rang.gone.iter().all(Vec::is_empty)
                || Instant::now() >= until
                || concerns(&rang)
            {
                return;
            }
        }
    }

    /// [`Bell::wait`], saying which files left each dir: a waiter can then tell whether what
    /// left concerns it (the turn just ahead of it) or not (one further ahead).
    pub fn wait_names(&self, timeout: Duration) -> Rang {
        self.wait_names_or(timeout, &Exits::default())
    }

    /// [`Bell::wait_names`], returning too when one of `exits` ends ([`Rang::exited`]).
    pub fn wait_names_or(&self, timeout: Duration, exits: &Exits) -> Rang {
        let mut rang = Rang { gone: vec![Vec::new(); self.watches.len()], overflow: false, exited: false };
        let mut polls = vec![libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        polls.extend(exits.0.iter().map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: valid pollfds, as many as said.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        if ready <= 0 {
            return rang; // the timeout (or a signal): the caller looks again anyway
        }
        rang.exited = polls[1..].iter().any(|p| p.revents != 0);
        if polls[0].revents == 0 {
            return rang;
        }
        // Events are a header (wd, mask, cookie, len) and `len` bytes of name (NUL-padded).
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of its length from a valid non-blocking fd.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break }; // EAGAIN: all read
            if n == 0 {
                break;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with the offset.
                let event: libc::inotify_event =
                    unsafe { buf.as_ptr().add(at).cast::<libc::inotify_event>().read_unaligned() };
                let name =
                    buf.get(at + header..(at + header + event.len as usize).min(n)).unwrap_or_default();
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    rang.overflow = true;
                } else if let Some(i) = self.watches.iter().position(|&w| w == event.wd) {
                    rang.gone[i].push(String::from_utf8_lossy(name).into_owned());
                }
                at += header + event.len as usize;
            }
        }
        rang
    }
}

/// A waiter's bell, started at its first wait rather than before its first look (most turns
/// never wait). Starting it is the waiter's cue to look again before it waits: a file that
/// left before the bell listened rang nothing.
#[derive(Default)]
pub struct Listener {
    /// `None`: not started; `Some(None)`: no bell could be had, the waiter polls.
    bell: Option<Option<Bell>>,
}

impl Listener {
    /// Starts listening with `bell` unless it already listens; whether it just started (the
    /// waiter then looks again before it waits).
    pub fn start(&mut self, bell: impl FnOnce() -> Option<Bell>) -> bool {
        if self.bell.is_some() {
            return false;
        }
        self.bell = Some(bell());
        true
    }

    /// [`Bell::wait_until`], woken too by the end of one of the `awaited` processes (pid,
    /// start time; see [`Exits`]); at once when one of them ended since the waiter's look (it
    /// looks again). Without a bell, a wait of `poll` (ending at `until` at the latest) that
    /// the end of one of `awaited` cuts short too: a holder killed with its file on file
    /// removes nothing, but its end is heard without a bell as with one.
    pub fn wait_until(
        &self,
        until: Instant,
        poll: Duration,
        awaited: &[(u32, Option<u64>)],
        concerns: impl FnMut(&Rang) -> bool,
    ) {
        let mut exits = Exits::default();
        if awaited.iter().any(|&(pid, start)| exits.watch(pid, start) == Watch::Gone) {
            return;
        }
        match self.bell.as_ref().and_then(Option::as_ref) {
            Some(bell) => bell.wait_until(until, &exits, concerns),
            None => {
                exits.wait(poll.min(until.saturating_duration_since(Instant::now())));
            }
        }
    }
}

/// What [`Bell::wait_names`] heard.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rang {
    /// The names of the files that left each dir, by its place in [`Bell::on`]'s list.
    pub gone: Vec<Vec<String>>,
    /// The kernel's queue overflowed: anything may have left anywhere.
    pub overflow: bool,
    /// A process of the [`Exits`] waited on ended.
    pub exited: bool,
}

/// Processes whose end wakes a waiter too (pidfds, Linux 5.3): a process killed with its
/// ticket or slot on file removes nothing, so it rings nothing.
#[derive(Default)]
pub struct Exits(Vec<OwnedFd>);

impl Exits {
    /// Watches `pid`, if it is the process that started at `start` (a pid alone may have been
    /// reused). [`Watch::Gone`]: it ended already (the caller looks again at once).
    pub fn watch(&mut self, pid: u32, start: Option<u64>) -> Watch {
        let Ok(raw_pid) = libc::pid_t::try_from(pid) else { return Watch::Gone };
        // SAFETY: pidfd_open takes a pid and flags; a non-negative result is an fd we own.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        let Ok(raw) = i32::try_from(raw) else { return Watch::Unsupported };
        if raw < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ESRCH) => Watch::Gone,
                _ => Watch::Unsupported,
            };
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Checked after the open: alive now with its start time, the pidfd is of that process.
        if !crate::sys::proc::process_alive(pid, start) {
            return Watch::Gone;
        }
        self.0.push(fd);
        Watch::Watching
    }
}

impl Exits {
    /// Waits until one of these processes ends or `timeout` passes (`poll(2)` on their
    /// pidfds; a sleep when there are none); whether one ended. A signal ends it early too:
    /// the caller looks again anyway.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.0.is_empty() {
            std::thread::sleep(timeout);
            return false;
        }
        let mut polls: Vec<libc::pollfd> = self
            .0
            .iter()
            .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // Rounded up: a timeout under a millisecond is not a poll that returns at once.
        let ms = libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
        // SAFETY: valid pollfds, as many as said.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        ready > 0 && polls.iter().any(|p| p.revents != 0)
    }
}

/// What [`Exits::watch`] could do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    Watching,
    /// The process is gone.
    Gone,
    /// No pidfds here (not Linux, a kernel before 5.3): its end is found by looking again.
    Unsupported,
}

impl Drop for Bell {
    /// Closing an inotify instance waits for the kernel's grace period (measured: 15-25 ms),
    /// and a waiter drops its bell on its way to start its turn: the close happens on a
    /// thread of its own (or when the process exits first; here if no thread can be had).
    fn drop(&mut self) {
        // SAFETY: `fd` is not used again: this is the bell's end.
        let fd = unsafe { std::mem::ManuallyDrop::take(&mut self.fd) };
        let _ = std::thread::Builder::new().name("bell-close".into()).spawn(move || drop(fd));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_leaving_a_watched_dir_rings_and_a_quiet_dir_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("slot.json"), "{}").unwrap();
        let bell = Bell::on(&[&a, &b]).expect("inotify on Linux");
        assert_eq!(bell.wait(Duration::ZERO), [false, false], "nothing left yet");
        std::fs::remove_file(b.join("slot.json")).unwrap();
        // Rung before the wait began: still heard (a long timeout the ring cuts short).
        assert_eq!(bell.wait(Duration::from_secs(600)), [false, true]);
        assert_eq!(bell.wait(Duration::ZERO), [false, false], "heard once");
        std::fs::write(a.join("t.tmp"), "{}").unwrap();
        std::fs::rename(a.join("t.tmp"), a.join("t.json")).unwrap();
        assert_eq!(bell.wait(Duration::ZERO), [false, false], "a file written does not ring");
        std::fs::remove_file(a.join("t.json")).unwrap();
        assert_eq!(bell.wait(Duration::from_secs(600)), [true, false]);
        std::fs::write(a.join("u.json"), "{}").unwrap();
        std::fs::remove_file(a.join("u.json")).unwrap();
        let rang = bell.wait_names(Duration::from_secs(600));
        assert_eq!(
            rang,
            Rang { gone: vec![vec!["u.json".to_owned()], vec![]], overflow: false, exited: false }
        );
    }

    #[test]
    fn a_listener_starts_once_then_waits_on_its_bell_or_polls_without_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.json"), "{}").unwrap();
        let mut listener = Listener::default();
        assert!(listener.start(|| Bell::on(&[dir.path()])), "just started: look again");
        assert!(!listener.start(|| panic!("started twice")));
        std::fs::remove_file(dir.path().join("x.json")).unwrap();
        let mut heard = Vec::new();
        let long = Duration::from_secs(600);
        listener.wait_until(Instant::now() + long, long, &[], |rang| {
            heard = rang.gone.clone();
            true
        });
        assert_eq!(heard, [["x.json"]]);
        // A process it awaits that ended since the look: back at once, to look again.
        let mut ended = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let start = crate::sys::proc::start_time(ended.id());
        ended.kill().unwrap();
        ended.wait().unwrap();
        listener.wait_until(Instant::now() + long, long, &[(ended.id(), start)], |_| panic!("nothing rang"));

        let mut deaf = Listener::default();
        assert!(deaf.start(|| None));
        // No bell: a poll, whatever `until` says, and nothing to hear.
        deaf.wait_until(Instant::now() + long, Duration::ZERO, &[], |_| panic!("no bell rings"));
    }

    /// A process that is alive until another thread kills it (and reaps it).
    fn killed_by_another_thread() -> (u32, Option<u64>, std::thread::JoinHandle<()>) {
        let mut holder = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let (pid, start) = (holder.id(), crate::sys::proc::start_time(holder.id()));
        assert!(start.is_some());
        let killer = std::thread::spawn(move || {
            holder.kill().unwrap();
            holder.wait().unwrap();
        });
        (pid, start, killer)
    }

    #[test]
    fn the_end_of_a_watched_process_ends_a_wait_on_its_pidfd() {
        let mut holder = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let mut exits = Exits::default();
        // Alive: watched (the kill below comes after the watch, whenever the other thread runs).
        assert_eq!(exits.watch(holder.id(), crate::sys::proc::start_time(holder.id())), Watch::Watching);
        assert!(!exits.wait(Duration::ZERO), "alive: nothing yet");
        let killer = std::thread::spawn(move || {
            holder.kill().unwrap();
            holder.wait().unwrap();
        });
        // Only its end can end this wait before the test's own timeout.
        assert!(exits.wait(Duration::from_secs(3600)), "woken by the end, not the timeout");
        killer.join().unwrap();
        let none = Exits::default();
        assert!(!none.wait(Duration::ZERO), "nothing watched: a sleep");
    }

    #[test]
    fn without_a_bell_a_waiter_still_wakes_when_a_process_it_awaits_ends() {
        let mut deaf = Listener::default();
        assert!(deaf.start(|| None));
        // A poll tick of two minutes: within the bound below only the holder's end (its pidfd,
        // or found gone at the watch if the other thread was quicker) can end the wait.
        let tick = Duration::from_secs(120);
        let (pid, start, killer) = killed_by_another_thread();
        let waited = Instant::now();
        deaf.wait_until(Instant::now() + tick, tick, &[(pid, start)], |_| panic!("no bell rings"));
        assert!(waited.elapsed() < tick / 2, "woken by the end, not the tick: {:?}", waited.elapsed());
        killer.join().unwrap();
    }
}
