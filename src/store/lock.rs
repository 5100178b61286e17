//! Advisory locks with a deadline, on files that are never renamed or deleted.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Opens (creating) a lock file. A lock on a file that `rename` replaces protects nothing,
/// so lock files are separate from the state they guard and are never replaced.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not open lock file {}", path.display()))
}

/// What trying to take a lock until a deadline gave.
pub enum Acquired {
    Yes,
    TimedOut,
}

/// Takes an exclusive lock on `file`, polling until `deadline` (std's blocking lock has no
/// timeout). `on_wait` is called once, the first time the lock is found held.
pub fn lock_until(file: &File, deadline: Instant, mut on_wait: impl FnMut()) -> Result<Acquired> {
    let mut pause = Duration::from_millis(1);
    let mut waited = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Acquired::Yes),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) => return Err(err).context("could not take a lock"),
        }
        if !waited {
            waited = true;
            on_wait();
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Acquired::TimedOut);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
