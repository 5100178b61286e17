//! `clawsess queue`: waits in line for a key's turn for a claude the caller starts itself,
//! and holds the session for it (the library's `crate::handoff`); here the arguments, the
//! caller's stdin (closed: the claim is withdrawn) and the JSON lines printed.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use serde_json::{Value, json};

use super::{Run, key_or_default};
use crate::cli;
use crate::config::settings::RunConfig;
use crate::exit;
use crate::handoff::{self, HandedOver};
use crate::store::Store;
use crate::turn::route;

impl Run for cli::Queue {
    fn run(&self) -> Result<u8> {
        match self.hold_turn() {
            Err(err) => {
                let busy = err.downcast_ref::<exit::Busy>().is_some();
                let mut object = json!({"type": "error", "error": format!("{err:#}"), "busy": busy});
                if let Some(key) = &self.target.key.key {
                    object["key"] = Value::String(key.clone());
                }
                line(&object)?;
                eprintln!("clawsess: {}", crate::sys::printable(&format!("{err:#}"), true));
                Ok(exit::code_of(&err))
            }
            other => other,
        }
    }
}

impl cli::Queue {
    fn hold_turn(&self) -> Result<u8> {
        let key = key_or_default(&self.target.key.key)?;
        // A claude started here cannot answer a session kept on another machine.
        if let Some(route) =
            crate::remote::ops::host_for_run(&key, None, self.target.session.as_deref(), self.target.new)?
        {
            anyhow::bail!(
                "{key}'s turns go to host {} (`clawsess hosts`): a claude started on this machine \
                 cannot answer that session; use `clawsess run` (it runs the turn there), or start \
                 the bot on that host",
                route.host.name
            );
        }
        let store = Store::open()?;
        let config = RunConfig::for_key(&store, crate::config::file()?, &key, self.target.idle_reset)?;
        // Its caller going away (the end of our stdin closing): while it waits in line, this
        // process ends at once (the kernel lets go of its locks, and the tickets of a process
        // that is gone do not count); once ready, the claim is withdrawn (`hand_over`).
        let gone = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let (closed, readied) = (Arc::clone(&gone), Arc::clone(&ready));
        std::thread::spawn(move || {
            let mut sink = [0u8; 512];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            closed.store(true, Ordering::SeqCst);
            if !readied.load(Ordering::SeqCst) {
                std::process::exit(exit::OK.into());
            }
        });
        let route_request = route::Request {
            session: self.target.session.as_deref(),
            new: self.target.new,
            cwd: self.target.cwd.as_deref().or(config.cwd.as_deref()),
            reset: config.policy.clone(),
        };
        let mut failed = None;
        let held = handoff::queue(&store, &key, &route_request, self.target.wait, |position, behind| {
            if let Err(err) = line(&json!({"type": "queued", "position": position, "behind": behind})) {
                failed.get_or_insert(err);
            }
        })?;
        // Before the claim is printed: from now on the caller going away withdraws it.
        ready.store(true, Ordering::SeqCst);
        if let Some(err) = failed {
            return Err(err);
        }
        line(&json!({
            "type": "ready",
            "key": key.as_str(),
            "session_id": held.session.as_str(),
            "cwd": held.cwd,
            "resume": held.resume,
            "claim": held.token,
        }))?;
        let how = held.hand_over(self.hold, || gone.load(Ordering::SeqCst))?;
        match how {
            HandedOver::Taken { pid } => {
                line(&json!({"type": "claimed", "pid": pid, "refused": false}))?;
                Ok(exit::OK)
            }
            HandedOver::Refused { pid } => {
                line(&json!({"type": "claimed", "pid": pid, "refused": true}))?;
                Ok(exit::OK)
            }
            HandedOver::Stopped => {
                let why = "`clawsess stop` (or `run --interrupt`) stopped it";
                let _ = line(&json!({"type": "released", "why": why}));
                Ok(crate::live::INTERRUPTED)
            }
            HandedOver::Withdrawn { why } => {
                let closed = gone.load(Ordering::SeqCst);
                let _ = line(&json!({"type": "released", "why": why}));
                Ok(if closed { exit::OK } else { exit::FAILURE })
            }
        }
    }
}

/// One JSON object on a line of its own, flushed (the caller reads it as it comes).
fn line(object: &Value) -> Result<()> {
    crate::outln!("{}", serde_json::to_string(object)?)
}
