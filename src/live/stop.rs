//! `clawsess stop`: asks the run answering a session to interrupt its turn.
//!
//! The request is a file in the state dir naming the run's pid (`stop/<session>.json`); a
//! live run looks for it every [`super::TICK`], removes it (its acknowledgement) and sends
//! claude an interrupt, so claude ends the turn and writes it to the transcript. Every `run`
//! does (all go through the stream-json driver); a run that does not acknowledge it within
//! [`ACK_WAIT`] (a `run` of an older clawsess, or one that is stuck) gets SIGTERM, which it
//! forwards to claude.

use std::fs::TryLockError;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::ident::SessionId;
use crate::store::{RunHolder, Store, open_lock_file};
use crate::sys::pid_alive;
use crate::turn::exclusion::run_holder;

/// How long a live run may take to acknowledge a stop request (it looks every 0.1 s).
const ACK_WAIT: Duration = Duration::from_secs(2);

/// A run answering a session.
#[derive(Debug, Clone)]
pub struct Running {
    pub session: SessionId,
    pub holder: RunHolder,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The run interrupted claude's turn (a live run): it exits 130.
    Interrupted,
    /// The run did not take the request in time and was sent SIGTERM.
    Terminated,
}

/// The run holding `session`, if one does.
pub fn running_on(store: &Store, session: &SessionId) -> Option<Running> {
    run_holder(store, session).map(|holder| Running { session: session.clone(), holder })
}

/// The runs of `key` in progress (runs of one key take turns, so at most one answers; a
/// second may be waiting for it).
pub fn running_for_key(store: &Store, key: &str) -> Vec<Running> {
    let mut found: Vec<Running> = store
        .maybe_busy()
        .into_iter()
        .filter_map(|id| running_on(store, &id))
        .filter(|r| r.holder.key == key)
        .collect();
    found.sort_by_key(|r| r.holder.since);
    found
}

/// Stops `run`'s turn and waits up to `wait` for the run to let go of the session.
pub fn stop(store: &Store, run: &Running, wait: Duration) -> Result<Stopped> {
    let deadline = Instant::now() + wait;
    store.put_stop_request(&run.session, run.holder.pid)?;
    let acked = wait_until(Instant::now() + ACK_WAIT, || {
        store.stop_request(&run.session).map(|r| r.is_none()).unwrap_or(false) || !still_running(store, run)
    });
    let how = if acked {
        Stopped::Interrupted
    } else {
        store.clear_stop_request(&run.session)?;
        if lock_held(store, &run.session)? && still_running(store, run) {
            // SAFETY: kill(2) on the pid of a live clawsess run that holds the session's lock.
            unsafe { libc::kill(run.holder.pid as libc::pid_t, libc::SIGTERM) };
        }
        Stopped::Terminated
    };
    if !wait_until(deadline, || !still_running(store, run)) {
        anyhow::bail!(
            "the run (pid {}) for {} still holds session {} after {:.0} s",
            run.holder.pid,
            run.holder.key,
            run.session,
            wait.as_secs_f64()
        );
    }
    Ok(how)
}

fn still_running(store: &Store, run: &Running) -> bool {
    run_holder(store, &run.session).is_some_and(|h| h.pid == run.holder.pid && pid_alive(h.pid))
}

/// Whether someone holds the session's run lock: a holder note alone may be left by a run
/// that was SIGKILLed, whose pid may since belong to another process.
fn lock_held(store: &Store, session: &SessionId) -> Result<bool> {
    let file = open_lock_file(&store.run_lock_path(session)?)?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(err)) => Err(err).context("could not check the session's run lock"),
    }
}

fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
