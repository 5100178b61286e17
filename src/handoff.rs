//! `clawsess queue`: a turn for a claude process the caller starts itself (an Agent SDK
//! bot's, a script's `claude -p`) waits in line as a `run` does, and the session is then held
//! for that claude until its prompt hook takes the turn.
//!
//! Such a claude reads the transcript when it starts, before its prompt hook runs: its hook
//! cannot wait (it would answer without what happened meanwhile), so the waiting has to
//! happen before the caller starts it, and nothing may take the session between its start
//! and its prompt. So [`queue`] takes the key's lock and the session's run lock as a run
//! does (the same place in the same queue, see `turn::queue`), writes a claim with a fresh
//! token (`claims/<session>.json`), and the caller starts its claude with the token in
//! `CLAWSESS_CLAIM`. That claude's prompt hook takes the claim, once, under the store lock
//! (`turn::exclusion::take_claim`), marks its turn as any claude process's turn, and
//! [`Held::hand_over`] lets go of the locks. A forked transcript is reconciled first, as
//! before a run resumes it. Any other prompt meets a session a run holds.
//! If the caller goes away (its end of our stdin closes) or no claude comes within the hold
//! time, the claim is withdrawn and the session let go: a bot that died holds nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::claude::process::process_alive;
use crate::ident::{Key, SessionId};
use crate::run::{Taken, Wait};
use crate::store::{ClaimState, FORMAT, HOOK_LOCK_WAIT, Store, TurnClaim, now_ms};
use crate::turn::exclusion::{KeyLock, RunLock};
use crate::turn::route;

/// How often a held session looks whether its claude took it.
const TICK: Duration = Duration::from_millis(100);
/// How long a prompt hook may take from taking the claim to marking the turn.
const TAKING_WAIT: Duration = Duration::from_secs(60);

/// The session held for the claude a caller starts.
pub struct Held<'a> {
    store: &'a Store,
    _key_lock: Option<KeyLock>,
    _lock: RunLock,
    pub session: SessionId,
    /// The session's working directory (the claude must start there to find the transcript).
    pub cwd: PathBuf,
    /// Resume the session (else it is new: start claude with this session id).
    pub resume: bool,
    /// What the claude shows in `CLAWSESS_CLAIM`.
    pub token: String,
}

/// How the hold ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandedOver {
    /// The claude `pid` took the turn (its turn is marked; the session is its now).
    Taken { pid: Option<u32> },
    /// The claude `pid` took the claim, but its prompt was refused after all (it was behind).
    Refused { pid: Option<u32> },
    /// No claude took it: `why`. The session is let go.
    Withdrawn { why: String },
    /// `clawsess stop` (or `run --interrupt`) stopped it before a claude took it.
    Stopped,
}

/// Waits in line for `key`'s turn (see the module doc) and holds the session for a claude
/// the caller starts; `queued(position, behind)` hears each new place in line.
pub fn queue<'a>(
    store: &'a Store,
    key: &Key,
    route_request: &route::Request<'_>,
    wait: Duration,
    queued: impl FnMut(usize, String),
) -> Result<Held<'a>> {
    let waited = Wait { wait, deadline: Instant::now() + wait, key_lock: true };
    let Taken { key_lock, target, lock } =
        crate::run::take_session(store, key, route_request, &waited, queued)?;
    if target.resume {
        // As before a run resumes it: a forked transcript is made to resume its newest branch,
        // and the session is marked forked, so the claude's prompt hook tells the model the
        // other branch's turns (`turn::fork`).
        let fork = crate::run::reconcile(store, &target);
        if fork.forked {
            let tx = store.lock(HOOK_LOCK_WAIT)?;
            if let Some(before) = tx.session(&target.id)?.filter(|rec| !rec.forked) {
                tx.update_session(&before, &crate::store::SessionRecord { forked: true, ..before.clone() })?;
            }
        }
    }
    let me = std::process::id();
    let claim = TurnClaim {
        v: FORMAT,
        token: uuid::Uuid::new_v4().to_string(),
        pid: me,
        pid_start: crate::claude::process::start_time(me),
        key: key.to_string(),
        state: ClaimState::Ready,
        claude: None,
        at: now_ms(),
    };
    store.lock(HOOK_LOCK_WAIT)?.put_claim(&target.id, &claim)?;
    Ok(Held {
        store,
        _key_lock: key_lock,
        _lock: lock,
        session: target.id,
        cwd: target.cwd,
        resume: target.resume,
        token: claim.token,
    })
}

impl Held<'_> {
    /// Holds the session until its claude takes the turn, or `gone()` says the caller went
    /// away, or `hold` passes with no claude having come; then lets go of it.
    pub fn hand_over(self, hold: Duration, mut gone: impl FnMut() -> bool) -> Result<HandedOver> {
        let deadline = Instant::now() + hold;
        let mut taking_since = None;
        let how = loop {
            let claim = self.store.claim(&self.session)?.filter(|c| c.token == self.token);
            let Some(claim) = claim else {
                break HandedOver::Withdrawn { why: "its claim was removed".into() };
            };
            match claim.state {
                ClaimState::Taken => break HandedOver::Taken { pid: claim.claude },
                ClaimState::Refused => break HandedOver::Refused { pid: claim.claude },
                ClaimState::Taking => {
                    // Its prompt hook is marking the turn: held until it has (or its claude
                    // is gone), whatever the caller does meanwhile; a stop request is taken
                    // (the claude's turn is not one clawsess can stop) so that `stop` does not
                    // end this process while the turn is half handed over.
                    stopped(self.store, &self.session);
                    let since = *taking_since.get_or_insert_with(Instant::now);
                    let alive = claim.claude.is_none_or(|pid| process_alive(pid, None));
                    if !alive || since.elapsed() >= TAKING_WAIT {
                        break HandedOver::Withdrawn {
                            why: "the claude that took the claim did not mark its turn".into(),
                        };
                    }
                }
                ClaimState::Ready => {
                    if stopped(self.store, &self.session) && self.withdraw()? {
                        break HandedOver::Stopped;
                    }
                    let why = if gone() {
                        Some("the caller closed clawsess queue's stdin".to_owned())
                    } else if Instant::now() >= deadline {
                        Some(format!("no claude took the turn within {:.0} s", hold.as_secs_f64()))
                    } else {
                        None
                    };
                    if let Some(why) = why
                        && self.withdraw()?
                    {
                        break HandedOver::Withdrawn { why };
                    }
                }
            }
            std::thread::sleep(TICK);
        };
        // The claim is done with (a taken turn is marked busy: the session stays its).
        let tx = self.store.lock(HOOK_LOCK_WAIT)?;
        if tx.claim(&self.session)?.is_some_and(|c| c.token == self.token) {
            tx.remove_claim(&self.session)?;
        }
        drop(tx);
        Ok(how)
    }

    /// Withdraws the claim unless a claude is taking it (under the store lock: one or the
    /// other). `false`: a claude took it first.
    fn withdraw(&self) -> Result<bool> {
        let tx = self.store.lock(HOOK_LOCK_WAIT)?;
        match tx.claim(&self.session)? {
            Some(c) if c.token == self.token && c.state != ClaimState::Ready => Ok(false),
            Some(c) if c.token == self.token => {
                tx.remove_claim(&self.session)?;
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}

/// Whether `clawsess stop` asks this process to stop (as it asks a run): the request is taken
/// (removed) as a run takes it, so `stop` hears at once that it was seen.
fn stopped(store: &Store, session: &SessionId) -> bool {
    let asked = store.stop_request(session).ok().flatten().is_some_and(|r| r.pid == std::process::id());
    asked && store.clear_stop_request(session).is_ok()
}
