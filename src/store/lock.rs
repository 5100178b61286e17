//! Advisory locks with a deadline, on files that are never renamed or deleted.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Opens (creating) a lock file. A lock on a file that `rename` replaces protects nothing,
/// so lock files are separate from the state they guard and are never replaced. A symlink
/// (or anything but a regular file) is refused: the run lock's holder note is written into
/// the file, which must never reach a file someone planted a link to.
pub fn open_lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("could not open lock file {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("could not read lock file {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("lock file {} is not a regular file; remove it", path.display());
    }
    Ok(file)
}

/// What trying to take a lock until a deadline gave.
pub enum Acquired {
    Yes,
    TimedOut,
}

#[derive(PartialEq)]
enum Wait {
    Waiting,
    Acquired,
    GaveUp,
}

/// Takes an exclusive lock on `file`, waiting until `deadline`. `on_wait` is called once if
/// the lock is held by someone else.
///
/// std's blocking `lock` has no timeout, and polling `try_lock` leaves the lock idle between
/// polls (a burst of hooks then times out). So a helper thread blocks in the kernel's queue
/// on a clone of the handle (flock belongs to the open file description, which the clone
/// shares) while we wait on a channel; if we give up first, the thread unlocks whatever it
/// gets.
pub fn lock_until(file: &File, deadline: Instant, on_wait: impl FnOnce()) -> Result<Acquired> {
    lock_with(file, on_wait, |_| None, deadline)
}

/// Like [`lock_until`], but gives up only when **one** process has held the lock for `stall`
/// (or at `cap` in all). A queue of short holders is progress, not a stuck lock: 200 hooks
/// started at once on a busy machine may together hold it for longer than `stall`, and each
/// must still land. Who holds the lock is read from `/proc/locks` (Linux), only when `stall`
/// has passed; where it cannot be read, this is [`lock_until`] with `now + stall`.
pub fn lock_while_moving(
    file: &File,
    stall: Duration,
    cap: Duration,
    on_wait: impl FnOnce(),
) -> Result<Acquired> {
    let started = Instant::now();
    let cap = started + cap.max(stall);
    // The file's identity and its holder are read once the lock is found taken (never on the
    // uncontended path, which every hook takes), the holder again at each stall.
    let id = std::cell::Cell::new(None);
    let holder = std::cell::Cell::new(None);
    lock_with(
        file,
        || {
            id.set(file.metadata().ok().map(|m| (m.dev(), m.ino())));
            holder.set(id.get().and_then(holder_of));
            on_wait();
        },
        |now| {
            let now_holder = holder_of(id.get()?)?;
            if holder.get() == Some(now_holder) || now >= cap {
                return None;
            }
            holder.set(Some(now_holder));
            Some((now + stall).min(cap))
        },
        (started + stall).min(cap),
    )
}

/// The pid that holds the flock on the file `(dev, ino)`, from `/proc/locks` (its lines:
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; a waiter's has `->` after the number).
fn holder_of((dev, ino): (u64, u64)) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let file = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let mut words = line.split_whitespace().skip(1);
        let (kind, _, _, pid, at) =
            (words.next()?, words.next()?, words.next()?, words.next()?, words.next()?);
        (kind == "FLOCK" && at == file).then(|| pid.parse().ok()).flatten()
    })
}

/// Waits for the lock until `deadline`; when it passes, `extend(now)` may give a later one.
fn lock_with(
    file: &File,
    on_wait: impl FnOnce(),
    mut extend: impl FnMut(Instant) -> Option<Instant>,
    mut deadline: Instant,
) -> Result<Acquired> {
    match file.try_lock() {
        Ok(()) => return Ok(Acquired::Yes),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(err)) => return Err(err).context("could not take a lock"),
    }
    on_wait();
    if deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()).is_none() {
        return Ok(Acquired::TimedOut);
    }
    let clone = file.try_clone().context("could not take a lock")?;
    let state = Arc::new(Mutex::new(Wait::Waiting));
    let (tx, rx) = mpsc::channel();
    let thread_state = Arc::clone(&state);
    std::thread::spawn(move || {
        let result = clone.lock();
        let mut state = thread_state.lock().unwrap_or_else(|e| e.into_inner());
        if *state == Wait::GaveUp {
            let _ = clone.unlock();
            return;
        }
        if result.is_ok() {
            *state = Wait::Acquired;
        }
        let _ = tx.send(result);
    });
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = rx.recv_timeout(left);
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        return match got {
            Ok(Ok(())) => Ok(Acquired::Yes),
            Ok(Err(err)) => Err(err).context("could not take a lock"),
            // The thread may have got it just now.
            Err(_) if *state == Wait::Acquired => Ok(Acquired::Yes),
            Err(_) => {
                if let Some(later) = extend(Instant::now()) {
                    drop(state);
                    deadline = later;
                    continue;
                }
                *state = Wait::GaveUp;
                Ok(Acquired::TimedOut)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_gets_the_lock_as_soon_as_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open_lock_file(&path).unwrap();
        holder.lock().unwrap();
        let waiter = open_lock_file(&path).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            holder.unlock().unwrap();
            holder
        });
        let mut waited = false;
        let got = lock_until(&waiter, Instant::now() + Duration::from_secs(30), || waited = true).unwrap();
        assert!(matches!(got, Acquired::Yes) && waited);
        let holder = releaser.join().unwrap();
        assert!(matches!(holder.try_lock(), Err(TryLockError::WouldBlock)), "the waiter holds it");
    }

    #[test]
    fn a_waiter_that_gave_up_does_not_keep_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open_lock_file(&path).unwrap();
        holder.lock().unwrap();
        let waiter = open_lock_file(&path).unwrap();
        let got = lock_until(&waiter, Instant::now() + Duration::from_millis(50), || {}).unwrap();
        assert!(matches!(got, Acquired::TimedOut));
        holder.unlock().unwrap();
        // The abandoned helper thread takes and drops it; then it is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let third = open_lock_file(&path).unwrap();
        while third.try_lock().is_err() {
            assert!(Instant::now() < deadline, "the lock stayed taken");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let file = open_lock_file(&path).unwrap();
        let id = file.metadata().map(|m| (m.dev(), m.ino())).unwrap();
        assert_eq!(holder_of(id), None, "nobody holds it yet");
        file.lock().unwrap();
        assert_eq!(holder_of(id), Some(std::process::id()));
    }

    #[test]
    fn a_wait_goes_on_while_the_holder_changes_and_ends_when_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open_lock_file(&path).unwrap();
        holder.lock().unwrap();
        let waiter = open_lock_file(&path).unwrap();
        // Three holders in turn, then the same one: three extensions, then it gives up.
        let mut asked = 0;
        let got = lock_with(
            &waiter,
            || {},
            |now| {
                asked += 1;
                (asked <= 3).then(|| now + Duration::from_millis(20))
            },
            Instant::now() + Duration::from_millis(20),
        )
        .unwrap();
        assert!(matches!(got, Acquired::TimedOut));
        assert_eq!(asked, 4);
        // Released during an extension: taken.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            holder.unlock().unwrap();
        });
        let soon = Instant::now() + Duration::from_millis(20);
        let got = lock_with(&waiter, || {}, |now| Some(now + Duration::from_millis(20)), soon).unwrap();
        assert!(matches!(got, Acquired::Yes));
        releaser.join().unwrap();
    }

    #[test]
    fn one_holder_that_keeps_the_lock_is_given_up_on_after_the_stall() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open_lock_file(&path).unwrap();
        holder.lock().unwrap();
        let waiter = open_lock_file(&path).unwrap();
        let started = Instant::now();
        let got =
            lock_while_moving(&waiter, Duration::from_millis(50), Duration::from_secs(60), || {}).unwrap();
        assert!(matches!(got, Acquired::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(30), "the same holder all along: no extension");
    }
}
