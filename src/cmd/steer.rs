//! `run --steer`: the message goes into the turn in progress when clawsess drives it (see
//! `crate::live::steer`); otherwise `run` goes on and queues it as any turn.

use anyhow::Result;
use serde_json::Value;

use crate::cli;
use crate::config::settings::RunConfig;
use crate::exit;
use crate::ident::{Key, SessionId};
use crate::live::{self, Event, Sink, steer::Steered};
use crate::resolve::find_session;
use crate::store::Store;
use crate::turn::route;

impl cli::Run {
    /// Offers the message to the turn in progress on the key's session. `Some(exit code)`:
    /// it went into that turn, whose events and result were printed; `None`: the caller runs
    /// it as a turn of its own (the stream says why).
    pub(super) fn steer_into_turn(
        &self,
        store: &Store,
        key: &Key,
        prompt: &str,
        images: &[Value],
        config: &RunConfig,
    ) -> Result<Option<u8>> {
        let mut quiet = |_: &Event| {};
        let sink: &mut dyn Sink = if self.stream { &mut live::JsonLines } else { &mut quiet };
        let Some(session) = self.steer_session(store, key, config)? else {
            let why = "the key has no session yet; the message runs as a turn now";
            sink.event(&Event::Steer { into: "queue".into(), key: None, why: Some(why.into()) });
            return Ok(None);
        };
        let stream = self.stream;
        let mut each = |event: &Value| {
            if stream && let Ok(line) = serde_json::to_string(event) {
                let _ = crate::outln!("{line}");
            }
        };
        match live::steer::offer(store, &session, prompt, images, &mut each)? {
            Steered::Queue(why) => {
                eprintln!("clawsess: not steered: {}", crate::sys::printable(&why, false));
                sink.event(&Event::Steer { into: "queue".into(), key: None, why: Some(why) });
                Ok(None)
            }
            Steered::Followed { into, mut result } => {
                let interrupted = result.get("interrupted") == Some(&Value::Bool(true));
                let failed = result.get("is_error") == Some(&Value::Bool(true));
                if !self.json && !self.stream {
                    let text = result.get("result").and_then(Value::as_str).unwrap_or_default();
                    crate::outln!("{}", text.strip_suffix('\n').unwrap_or(text))?;
                } else {
                    if !self.stream {
                        result.remove("model_usage_since_last_result");
                        if !interrupted {
                            result.remove("interrupted");
                        }
                    }
                    result.insert("session_id".into(), Value::String(session.to_string()));
                    result.insert("key".into(), Value::String(key.to_string()));
                    result.insert("steered_into".into(), Value::String(into));
                    result.insert("busy".into(), Value::Bool(false));
                    self.print_object(Value::Object(result))?;
                }
                Ok(Some(if interrupted {
                    live::INTERRUPTED
                } else if failed {
                    exit::FAILURE
                } else {
                    exit::OK
                }))
            }
        }
    }

    /// The session to steer into: the one a run of this key answers now, else `--session`,
    /// else the key's session (none for a key without one).
    fn steer_session(&self, store: &Store, key: &Key, config: &RunConfig) -> Result<Option<SessionId>> {
        if let Some(run) = live::stop::running_for_key(store, key.as_str()).into_iter().next() {
            return Ok(Some(run.session));
        }
        if let Some(arg) = &self.session {
            return find_session(store, arg).map(Some);
        }
        let request = route::Request {
            session: None,
            new: false,
            cwd: self.cwd.as_deref().or(config.cwd.as_deref()),
            reset: config.policy.clone(),
        };
        let target = route::route(store, key, &request)?;
        Ok(target.resume.then_some(target.id))
    }
}

/// `run --interrupt`'s claim on the next turn of a session, dropped once the run holds the
/// session (or gives up).
pub(super) struct NextTurnClaim<'a> {
    store: &'a Store,
    session: SessionId,
}

impl Drop for NextTurnClaim<'_> {
    fn drop(&mut self) {
        let _ = self.store.clear_next_turn(&self.session);
    }
}

/// How long `run --interrupt` waits for the stopped run to let go of the session.
const INTERRUPT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl cli::Run {
    /// Claims the next turn on the key's session and stops the run turn in progress there.
    /// `Some(claim)`: this run goes next (it skips the key's queue: it holds the claim).
    pub(super) fn interrupt_turn<'a>(
        &self,
        store: &'a Store,
        key: &Key,
        config: &RunConfig,
    ) -> Result<Option<NextTurnClaim<'a>>> {
        let mut quiet = |_: &Event| {};
        let sink: &mut dyn Sink = if self.stream { &mut live::JsonLines } else { &mut quiet };
        let Some(session) = self.steer_session(store, key, config)? else {
            let why = Some("the key has no session yet: nothing to interrupt".to_owned());
            sink.event(&Event::Interrupt { stopped: None, why });
            return Ok(None);
        };
        store.put_next_turn(&session)?;
        let claim = NextTurnClaim { store, session: session.clone() };
        let running = live::stop::running_on(store, &session)
            .filter(|r| crate::claude::process::process_alive(r.holder.pid, r.holder.pid_start));
        if let Some(run) = running {
            live::stop::stop(store, &run, INTERRUPT_WAIT)?;
            sink.event(&Event::Interrupt { stopped: Some(run.holder.key.clone()), why: None });
            return Ok(Some(claim));
        }
        let why = match crate::turn::exclusion::process_turn(store, &session)? {
            Some(marker) => format!(
                "the turn in progress is a {}'s, which clawsess cannot stop; this message goes next after it",
                marker.surface.as_deref().unwrap_or("terminal")
            ),
            None => "no turn is in progress on the session".to_owned(),
        };
        eprintln!("clawsess: nothing interrupted: {}", crate::sys::printable(&why, false));
        sink.event(&Event::Interrupt { stopped: None, why: Some(why) });
        Ok(Some(claim))
    }
}
