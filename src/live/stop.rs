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

use crate::claude::process::{process_alive, start_time};
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
    /// The run's turn had ended by itself before the run took the request: nothing was
    /// stopped.
    AlreadyEnded,
    /// The run was gone (killed) and the claude it left still finished its turn: that claude
    /// was sent SIGTERM.
    Orphan { child: u32 },
}

/// How withdrawing a waiting run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    /// It got SIGTERM and ended.
    Ended,
    /// It had ended by itself before it got the signal.
    AlreadyGone,
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
    if !process_alive(run.holder.pid, run.holder.pid_start) {
        // A killed run whose claude still finishes its turn: that claude is what answers.
        let Some(child) = run.holder.child.filter(|&c| process_alive(c, run.holder.child_start)) else {
            return Ok(Stopped::AlreadyEnded);
        };
        // SAFETY: kill(2) on a live process whose start time matches the run lock's note.
        unsafe { libc::kill(child as libc::pid_t, libc::SIGTERM) };
        if !wait_until(deadline, || !process_alive(child, run.holder.child_start)) {
            anyhow::bail!(
                "the claude (pid {child}) left by a killed run for {} still answers session {} after {:.0} s",
                run.holder.key,
                run.session,
                wait.as_secs_f64()
            );
        }
        return Ok(Stopped::Orphan { child });
    }
    store.put_stop_request(&run.session, run.holder.pid)?;
    let request = || store.stop_request(&run.session).ok().flatten().map(|r| r.pid);
    let answered = wait_until(Instant::now() + ACK_WAIT, || {
        request() != Some(run.holder.pid) || !still_running(store, run)
    });
    let how = if answered {
        match request() {
            // Taken: the run interrupted its turn.
            None => Stopped::Interrupted,
            // Left untaken (pid 0: its turn ended first) or never seen (the run ended).
            Some(_) => {
                store.clear_stop_request(&run.session)?;
                Stopped::AlreadyEnded
            }
        }
    } else {
        store.clear_stop_request(&run.session)?;
        if lock_held(store, &run.session)? && still_running(store, run) {
            // SAFETY: kill(2) on the pid of a live clawsess run that holds the session's lock.
            unsafe { libc::kill(run.holder.pid as libc::pid_t, libc::SIGTERM) };
            Stopped::Terminated
        } else {
            Stopped::AlreadyEnded
        }
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

/// Withdraws the run `pid` that waits for its turn (it has started no claude yet, so its
/// prompt goes nowhere): SIGTERM, then waits up to `wait` for it to end.
pub fn withdraw(pid: u32, wait: Duration) -> Result<Withdrawn> {
    let start = start_time(pid);
    if start.is_none() || !process_alive(pid, start) {
        return Ok(Withdrawn::AlreadyGone);
    }
    // SAFETY: kill(2) on a live clawsess run (its start time was noted with its pid).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    if !wait_until(Instant::now() + wait, || !process_alive(pid, start)) {
        anyhow::bail!(
            "the waiting run (pid {pid}) was sent SIGTERM but still runs after {:.0} s",
            wait.as_secs_f64()
        );
    }
    Ok(Withdrawn::Ended)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose turn ends by itself before it takes the stop request marks it untaken
    /// (pid 0, as `live` does at the end of a turn): `stop` says nothing was stopped, not
    /// "interrupted", and removes the request.
    #[test]
    fn a_turn_that_ended_before_it_took_the_stop_request_is_not_reported_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let id = SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap();
        let mut run = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = run.id();
        let holder = RunHolder::new("k".into(), pid, 0);
        std::fs::write(store.run_lock_path(&id).unwrap(), serde_json::to_vec(&holder).unwrap()).unwrap();
        let running = running_on(&store, &id).expect("the run is seen");
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(wait_until(Instant::now() + Duration::from_secs(30), || {
                    store.stop_request(&id).ok().flatten().is_some()
                }));
                // The run's turn ends: the request is left untaken, and the run exits.
                store.put_stop_request(&id, 0).unwrap();
                run.kill().unwrap();
                run.wait().unwrap();
            });
            let how = stop(&store, &running, Duration::from_secs(30)).unwrap();
            assert_eq!(how, Stopped::AlreadyEnded);
        });
        assert!(store.stop_request(&id).unwrap().is_none(), "stop removed the untaken request");
    }
}
