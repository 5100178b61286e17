//! Pruning by itself: a bot that never calls `clawsess prune` must not grow its state dir
//! without bound.
//!
//! The stamp `prune-due`'s mtime is when the next automatic prune is due. `run` (after its
//! output went out) and the session-end hook [`poke`] it: one stat, and only when it is due,
//! a detached `clawsess prune --auto`, which does exactly what `clawsess prune` does
//! ([`super::prune`], same rules) under a lock on the stamp (one at a time), then moves the
//! stamp `prune_every` ahead. Its lines go to `prune.log`, emptied at each automatic prune.
//! The hook does not read the config file (hooks never do but prompt-submit): it goes by the
//! stamp alone, and `prune --auto` reads `prune_every`. While that is `off`, `run` and
//! `prune --auto` set the stamp to [`off`], far ahead, so hooks start nothing; the first
//! `run` that finds it on again moves the stamp to one interval from then.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::config::DEFAULT_PRUNE_EVERY;
use crate::store::{Store, open_lock_file};

/// The stamp's mtime while `prune_every` is off (2100-01-01): hooks, which go by the stamp
/// alone, start nothing; the first `run` that finds it on again moves the stamp back.
pub fn off() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800)
}

/// Once `poke` started a prune, the stamp says "due" again only this much later: runs that
/// finish meanwhile start none (and a prune that died is retried then).
pub const LEASE: Duration = Duration::from_secs(600);

/// What the caller of [`poke`] knows of the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// `prune_every` as configured ([`Duration::ZERO`]: off).
    Configured(Duration),
    /// A hook, which does not read the config file: the stamp alone decides.
    Unknown,
}

/// Starts a detached `clawsess prune --auto` when the stamp says one is due; returns whether
/// it did. A missing stamp is created due one interval from now (a new state dir is not
/// pruned at its first run). An interval shorter than the stamp's wait (the knob was turned
/// down, or back on) moves the stamp closer.
pub fn poke(store: &Store, interval: Interval) -> Result<bool> {
    let path = store.prune_stamp();
    let now = SystemTime::now();
    let every = match interval {
        Interval::Configured(every) if every.is_zero() => {
            mark_off(store)?;
            return Ok(false);
        }
        Interval::Configured(every) => Some(every),
        Interval::Unknown => None,
    };
    let due_at = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta.modified()?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if store.dir().is_dir() {
                set_due(&open_lock_file(&path)?, now + every.unwrap_or(DEFAULT_PRUNE_EVERY))?;
            }
            return Ok(false);
        }
        Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
    };
    if let Some(every) = every
        && due_at > now + every
    {
        set_due(&open_lock_file(&path)?, now + every)?;
        return Ok(false);
    }
    if due_at > now {
        return Ok(false);
    }
    set_due(&open_lock_file(&path)?, now + LEASE)?;
    spawn(store)?;
    Ok(true)
}

/// What `prune --auto` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It pruned (what, in `prune.log`).
    Pruned,
    /// Not due yet.
    NotDue,
    /// `prune_every` is off: the stamp says so ([`off`]; hooks look at it without the config).
    Off,
    /// Another automatic prune holds the lock.
    Busy,
    /// No state dir: nothing to prune.
    NoState,
}

/// `clawsess prune --auto`: prunes if due and nobody else is, then moves the stamp ahead.
pub fn run(store: &Store) -> Result<Outcome> {
    if !store.dir().is_dir() {
        return Ok(Outcome::NoState);
    }
    let every = crate::config::file()?.prune_every()?.value;
    let stamp = open_lock_file(&store.prune_stamp())?;
    match stamp.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Outcome::Busy),
        Err(TryLockError::Error(err)) => return Err(err).context("could not lock the prune stamp"),
    }
    let now = SystemTime::now();
    if every.is_zero() {
        set_due(&stamp, off())?;
        return Ok(Outcome::Off);
    }
    // Due, or within the lease `poke` gave it; a prune that finished meanwhile moved it on.
    if stamp.metadata()?.modified()? > now + LEASE {
        return Ok(Outcome::NotDue);
    }
    let mut log = crate::sys::files::open_log(&store.prune_log())
        .with_context(|| format!("could not open {}", store.prune_log().display()))?;
    let _ = writeln!(log, "{HEADER}{}", crate::sys::rfc3339(crate::sys::now_ms()));
    match super::prune(store, false) {
        Ok(done) => {
            for line in done.skipped.iter().map(|s| format!("skipped {s}")).chain(done.lines()) {
                let _ = writeln!(log, "{}", crate::sys::printable(&line, false));
            }
            let _ = writeln!(log, "{HELD}{} times, at most {} ms", done.holds, done.longest_hold.as_millis());
            set_due(&stamp, SystemTime::now() + every)?;
            Ok(Outcome::Pruned)
        }
        Err(err) => {
            // Retried once the lease is over, not at every run.
            let _ = writeln!(log, "failed: {}", crate::sys::printable(&format!("{err:#}"), false));
            set_due(&stamp, SystemTime::now() + LEASE)?;
            Err(err)
        }
    }
}

/// The line of `prune.log` that says how long the prune held the store lock.
const HELD: &str = "held the state lock ";
/// The first line of `prune.log`: this, then when it started.
const HEADER: &str = "clawsess prune --auto, ";

/// What `doctor` shows of automatic pruning.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// When the last one started (RFC 3339), from `prune.log`; none if none ran.
    pub last_ran: Option<String>,
    /// What it did, a line each, as in `prune.log`.
    pub did: Vec<String>,
    /// Why it failed, if it did.
    pub failed: Option<String>,
    /// When the next is due (RFC 3339), `"off"`, or none: no run or session end yet.
    pub next_due: Option<String>,
}

/// The last automatic prune (`prune.log`) and the next (the stamp; `off` when `every` is).
pub fn status(store: &Store, every: Duration) -> Result<Status> {
    let mut status = Status::default();
    let log = store.prune_log();
    match std::fs::read_to_string(&log) {
        Ok(text) => {
            for line in text.lines() {
                if let Some(at) = line.strip_prefix(HEADER) {
                    status.last_ran = Some(at.to_owned());
                } else if let Some(why) = line.strip_prefix("failed: ") {
                    status.failed = Some(why.to_owned());
                } else if !line.starts_with(HELD) {
                    status.did.push(line.to_owned());
                }
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("could not read {}", log.display())),
    }
    status.next_due = match due(store)? {
        _ if every.is_zero() => Some("off".into()),
        Some(Due::Off) => Some("off".into()),
        Some(Due::At(at)) => Some(crate::sys::rfc3339(
            at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        )),
        None => None,
    };
    Ok(status)
}

impl Status {
    /// One line: when it last ran and what it did (its summary; each dropped session is in
    /// `prune.log`), and when the next is due.
    pub fn human(&self) -> String {
        let last = match (&self.last_ran, &self.failed) {
            (None, _) => "never ran".to_owned(),
            (Some(at), Some(why)) => format!("last ran {at} and failed: {why}"),
            (Some(at), None) => {
                let skipped = self.did.iter().filter(|l| l.starts_with("skipped ")).count();
                let mut said: Vec<String> = self
                    .did
                    .iter()
                    .filter(|l| !l.starts_with("dropped ") && !l.starts_with("skipped "))
                    .cloned()
                    .collect();
                if skipped > 0 {
                    said.push(format!("skipped {skipped} files it could not read"));
                }
                format!("last ran {at}: {}", said.join("; "))
            }
        };
        let next = match self.next_due.as_deref() {
            Some("off") => "off (prune_every)".to_owned(),
            Some(at) => format!("next due {at}"),
            None => "next due a day after the first run or session end".to_owned(),
        };
        format!("{last}; {next}")
    }
}

/// Says in the stamp that automatic pruning is off, if the state dir exists and the stamp
/// does not say so yet (one stat when it does).
fn mark_off(store: &Store) -> Result<()> {
    let path = store.prune_stamp();
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.modified()? >= off() => Ok(()),
        Ok(_) => set_due(&open_lock_file(&path)?, off()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && store.dir().is_dir() => {
            set_due(&open_lock_file(&path)?, off())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("could not read {}", path.display())),
    }
}

/// When the next automatic prune is due, as the stamp says: `None` when there is no stamp
/// (no run or session end yet), [`Due::Off`] when it says off.
pub fn due(store: &Store) -> Result<Option<Due>> {
    let path = store.prune_stamp();
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => {
            let at = meta.modified()?;
            Ok(Some(if at >= off() { Due::Off } else { Due::At(at) }))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("could not read {}", path.display())),
    }
}

/// What the stamp says of the next automatic prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    At(SystemTime),
    Off,
}

fn set_due(stamp: &File, at: SystemTime) -> Result<()> {
    stamp.set_modified(at).context("could not set the prune stamp's time")
}

/// `clawsess prune --auto`, detached: its own session, no terminal, no descriptor of ours
/// (a bot reading `run`'s stdout to its end, or Claude Code a hook's, does not wait for it).
fn spawn(store: &Store) -> Result<()> {
    let mut cmd = Command::new(std::env::current_exe().context("could not find clawsess's own path")?);
    cmd.args(["prune", "--auto"])
        .env("CLAWSESS_HOME", store.dir())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid and close_range are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0);
            Ok(())
        });
    }
    cmd.spawn().context("could not start clawsess prune --auto")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_in(store: &Store) -> i64 {
        let at = std::fs::metadata(store.prune_stamp()).unwrap().modified().unwrap();
        match at.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        }
    }

    #[test]
    fn a_new_state_dir_is_due_one_interval_on_and_a_shorter_interval_moves_it_closer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let day = Duration::from_secs(86400);
        assert!(!poke(&store, Interval::Configured(Duration::ZERO)).unwrap());
        assert_eq!(due(&store).unwrap(), Some(Due::Off), "off: the stamp says so, for hooks");
        assert!(!poke(&store, Interval::Unknown).unwrap(), "a hook starts nothing");
        assert_eq!(due(&store).unwrap(), Some(Due::Off));
        assert!(!poke(&store, Interval::Configured(day)).unwrap());
        assert!((86390..=86400).contains(&due_in(&store)), "{}", due_in(&store));
        let hour = Duration::from_secs(3600);
        assert!(!poke(&store, Interval::Configured(hour)).unwrap());
        assert!((3590..=3600).contains(&due_in(&store)));
        // A hook (interval unknown) leaves a future stamp alone.
        assert!(!poke(&store, Interval::Unknown).unwrap());
        assert!((3590..=3600).contains(&due_in(&store)));
    }

    #[test]
    fn no_state_dir_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("none"));
        assert!(!poke(&store, Interval::Unknown).unwrap());
        assert!(!store.dir().exists());
        assert_eq!(run(&store).unwrap(), Outcome::NoState);
    }
}
