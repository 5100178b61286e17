//! `clawsess stop`: interrupts the run turn in progress on a session.

use anyhow::Result;

use super::{Run, key_or_default};
use crate::cli::Stop;
use crate::exit;
use crate::live::stop::{self, Running, Stopped, Withdrawn};
use crate::resolve::find_session;
use crate::store::Store;
use crate::turn::exclusion::{busy_marker, key_holder, key_waiters};

impl Run for Stop {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let Some(arg) = &self.session else { return self.stop_key(&store) };
        let id = find_session(&store, arg)?;
        if let Some(run) = stop::running_on(&store, &id) {
            let how = stop::stop(&store, &run, self.wait)?;
            crate::outln!("{}", told(&run, how))?;
        } else if let Some(turn) = busy_marker(&store, &id)? {
            let pid = turn.pid.map(|p| format!(" (claude pid {p})")).unwrap_or_default();
            crate::outln!(
                "no clawsess run is answering session {}; a turn of {}{pid} is in progress: stop it there (Esc in a terminal)",
                id.short(),
                crate::sys::printable(turn.surface(), false),
            )?;
        } else {
            crate::outln!("nothing is running on session {}", id.short())?;
        }
        Ok(exit::OK)
    }
}

impl Stop {
    /// Every turn of the key goes: the runs queued behind its lock first (else the next one
    /// would start as soon as the answering turn ends), then the one answering or the one
    /// still waiting for its session.
    fn stop_key(&self, store: &Store) -> Result<u8> {
        let key = key_or_default(&self.key)?;
        if let Some((host, _)) = crate::remote::ops::host_of_key(store, &key)? {
            let request = crate::remote::Request::Stop { key: key.to_string(), wait_s: self.wait.as_secs() };
            return crate::remote::ops::call(store, &host, &request);
        }
        let mut said = false;
        for pid in key_waiters(store, &key) {
            // One that ended by itself meanwhile was not withdrawn: nothing to say.
            if stop::withdraw(pid, self.wait)? == Withdrawn::Ended {
                crate::outln!("withdrew a turn of {key} queued behind another run of {key} (run pid {pid})")?;
                said = true;
            }
        }
        if let Some(run) = stop::running_for_key(store, key.as_str()).into_iter().next() {
            let how = stop::stop(store, &run, self.wait)?;
            crate::outln!("{}", told(&run, how))?;
        } else if let Some(pid) = key_holder(store, &key) {
            // It holds the key's lock and no session yet: it is routing its turn or waiting
            // for its session, and has started no claude.
            match stop::withdraw(pid, self.wait)? {
                Withdrawn::Ended => crate::outln!(
                    "withdrew the turn of {key} that was waiting for its session (run pid {pid} ended)"
                )?,
                Withdrawn::AlreadyGone if !said => {
                    crate::outln!("nothing is running for {key}: its run (pid {pid}) had already ended")?;
                }
                Withdrawn::AlreadyGone => {}
            }
        } else if !said {
            crate::outln!("nothing is running for {key}")?;
        }
        Ok(exit::OK)
    }
}

fn told(run: &Running, how: Stopped) -> String {
    let (key, session) = (&run.holder.key, run.session.short());
    match how {
        Stopped::Interrupted => format!("{key} turn on session {session} interrupted"),
        Stopped::Terminated => format!(
            "{key} turn on session {session} stopped (the run, pid {}, did not take the stop request within 2 s: sent SIGTERM)",
            run.holder.pid
        ),
        // "nothing is running" first, as when no run was found (bots read it so).
        Stopped::AlreadyEnded => {
            format!("nothing is running on session {session}: the {key} turn had already ended by itself")
        }
        Stopped::Orphan { child } => format!(
            "the run of {key} on session {session} was already gone; the claude it left (pid {child}) was still answering and was sent SIGTERM"
        ),
    }
}
