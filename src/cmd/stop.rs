//! `clawsess stop`: interrupts the run turn in progress on a session.

use anyhow::Result;

use super::{Run, key_or_default};
use crate::cli::Stop;
use crate::exit;
use crate::live::stop::{self, Running, Stopped};
use crate::resolve::find_session;
use crate::store::Store;

impl Run for Stop {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        if self.session.is_none() {
            let key = key_or_default(&self.key)?;
            if let Some(host) = crate::remote::ops::host_of_key(&store, &key)? {
                let request =
                    crate::remote::Request::Stop { key: key.to_string(), wait_s: self.wait.as_secs() };
                return crate::remote::ops::call(&store, &host, &request);
            }
        }
        let (running, what) = match &self.session {
            Some(arg) => {
                let id = find_session(&store, arg)?;
                (stop::running_on(&store, &id), format!("session {}", id.short()))
            }
            None => {
                let key = key_or_default(&self.key)?;
                (stop::running_for_key(&store, key.as_str()).into_iter().next(), format!("{key}"))
            }
        };
        let Some(run) = running else {
            // A run of the key still waiting for its session (or routing its turn) holds the
            // key's lock: ending it withdraws the turn before its prompt goes anywhere.
            if self.session.is_none()
                && let Some(pid) = crate::turn::exclusion::key_holder(&store, &key_or_default(&self.key)?)
            {
                // SAFETY: kill(2) on a live run whose start time matches the key lock's note.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                crate::outln!(
                    "withdrew the turn of {what} that was waiting for its session (run pid {pid} ended)"
                )?;
                return Ok(exit::OK);
            }
            crate::outln!("nothing is running for {what}")?;
            return Ok(exit::OK);
        };
        let how = stop::stop(&store, &run, self.wait)?;
        crate::outln!("{}", told(&run, how))?;
        Ok(exit::OK)
    }
}

fn told(run: &Running, how: Stopped) -> String {
    let what = match how {
        Stopped::Interrupted => "interrupted",
        Stopped::Terminated => "stopped (SIGTERM: the run did not take the stop request within 2 s)",
    };
    format!("{} turn on session {} {what}", run.holder.key, run.session.short())
}
