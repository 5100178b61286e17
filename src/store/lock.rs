//! Advisory locks with a deadline, on files that are never renamed or deleted.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    match file.try_lock() {
        Ok(()) => return Ok(Acquired::Yes),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(err)) => return Err(err).context("could not take a lock"),
    }
    on_wait();
    let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
        return Ok(Acquired::TimedOut);
    };
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
    let got = rx.recv_timeout(left);
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match got {
        Ok(Ok(())) => Ok(Acquired::Yes),
        Ok(Err(err)) => Err(err).context("could not take a lock"),
        // The thread may have got it just now.
        Err(_) if *state == Wait::Acquired => Ok(Acquired::Yes),
        Err(_) => {
            *state = Wait::GaveUp;
            Ok(Acquired::TimedOut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
