//! What the store keeps of a session and its turns: the record a claude process's start
//! leaves, and what a finished `run` turn records (the key's own session, the session's last
//! activity, the turn in the catch-up log). A failed `run` turn whose prompt reached the
//! transcript is logged too, and so is the turn of a run that died before it could log it (the
//! next process that takes the session logs it from the transcript): every turn in the
//! conversation is in the log.

use std::path::PathBuf;

use anyhow::Result;

use super::catchup;
use super::catchup::NewTurn;
use super::exclusion::{RunLock, Settled};
use super::fork::Reconciled;
use super::route::Target;
use super::surface::ClaudeProcess;
use crate::claude;
use crate::ident::{Key, SessionId};
use crate::resolve::{Via, resolve};
use crate::store::{
    Attachment, COMMAND_LOCK_WAIT, HOOK_LOCK_WAIT, KeyState, Locked, SessionRecord, Starter, Store, now_ms,
};
use crate::transcript::branches;

/// A turn `run` finished, as it is recorded.
pub struct RunTurn<'a> {
    pub key: &'a Key,
    pub target: &'a Target,
    /// The session claude reported (followed should an old claude mint a new id).
    pub session: &'a SessionId,
    /// `--new` was given.
    pub new: bool,
    /// `--session` was given.
    pub explicit: bool,
    pub prompt: &'a str,
    pub reply: &'a str,
    /// What `fork::before_resume` found (its note, if any, went to the model with this turn).
    pub fork: &'a Reconciled,
    /// The token the turn is logged with (`RunLock::token`), so that it is logged once.
    pub token: Option<&'a str>,
}

/// After a successful `run` turn: the session's record, the key's own session, the turn log.
/// Returns the turn log's `next_seq` after it.
pub fn record_run_turn(store: &Store, turn: &RunTurn<'_>) -> Result<u64> {
    let RunTurn { key, target, session, .. } = *turn;
    let now = now_ms();
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let before = tx.session(session)?;
    let mut rec = match before.clone() {
        Some(rec) => rec,
        // The hook is not installed (or did not fire): record the session ourselves.
        None => {
            let transcript =
                claude::transcript_path(&claude::config_dir(None)?, &target.cwd, session.as_str());
            SessionRecord {
                source: if target.resume { "resume" } else { "startup" }.into(),
                key: Some(key.clone()),
                ..SessionRecord::new(session.clone(), target.cwd.clone(), transcript, Starter::Run, now)
            }
        }
    };
    rec.last_seen = now;
    rec.run_turns += 1;
    rec.last_turn_key = Some(key.to_string());
    rec.last_turn_at = now;
    if turn.fork.forked {
        rec.forked = true;
    }
    if target.resume {
        rec.source = "resume".into(); // the child's SessionStart left this write to us
    }
    // Most turns change only the counters and `last_seen`: the live file, no fsync (see
    // `Locked::update_session`); a new record, `forked` or a new `source` is a durable write.
    match &before {
        Some(before) => tx.update_session(before, &rec)?,
        None => tx.put_session(&rec)?,
    }

    let before = tx.key_state(key)?;
    let mut state = before.clone().unwrap_or_else(|| KeyState::new(key.clone()));
    let gone = target.replaced.as_ref();
    if gone.is_some() && state.attached.as_ref().map(|a| &a.session) == gone {
        state.attached = None;
    }
    if turn.new && state.attached.take().is_some() {
        eprintln!("clawsess: {key} was attached to another session; --new detached it");
    }
    // Decided by how this turn was routed, not by the key's state now: an attachment made
    // or removed while the turn ran must not turn the attached session into the key's own
    // (after `detach`, two chats would share one conversation).
    let becomes_own =
        turn.new || (!turn.explicit && (matches!(target.via, None | Some(Via::Own)) || gone.is_some()));
    if becomes_own && state.own.as_ref() != Some(session) {
        state.own = Some(session.clone());
        state.own_at = now;
    }
    // Under a global attachment the key would follow it again at its next turn: --new holds
    // the key to its new session until `detach --key`.
    if turn.new && (tx.global()?.is_some_and(|g| g.session != *session) || tx.hosts()?.global.is_some()) {
        state.attached = Some(Attachment { session: session.clone(), at: now });
        eprintln!(
            "clawsess: every key follows the global attachment; --new attached {key} to its new \
             session ({}) — `clawsess detach --key {key}` hands it back to the global one",
            session.short()
        );
    }
    // Most turns change nothing here: spare the write (and its fsyncs).
    let unchanged =
        before.as_ref().map_or(state.is_empty(), |b| b.attached == state.attached && b.own == state.own);
    if !unchanged {
        tx.put_key_state(&state)?;
    }
    if let (Some(gone), Some(global)) = (gone, tx.global()?)
        && global.session == *gone
    {
        tx.set_global(None)?;
        eprintln!("clawsess: removed the global attachment to {} (its transcript is gone)", gone.short());
    }
    let logged = NewTurn {
        surface: key.as_str(),
        by_pid: None,
        prompt: turn.prompt,
        reply: turn.reply,
        token: turn.token,
        at: now,
    };
    catchup::log_at(&tx, session, &logged).map(|(_, next_seq)| next_seq)
}

/// A `run` turn under way, from its run lock on. A turn that failed (an error result, max
/// turns, an API error, claude killed, signalled or stopped without a result, the run's own
/// error) is in the conversation all the same when its prompt reached the transcript: it goes
/// to the turn log too, else a terminal left open would not count as behind, answer on its
/// stale leaf and fork the conversation (and the fork correction anchors on logged turns). A
/// refused prompt never reaches the transcript. Unless [`PendingRunTurn::record`] or
/// [`PendingRunTurn::failed`] was called, dropping it (the run returns early, whatever the
/// way) logs the turn as failed.
///
/// The turn is noted in the run lock ([`RunLock::begin_turn`]) until it is logged: a run that
/// dies first (SIGKILL, a crash) or cannot log it (a full disk) leaves it to the next process
/// that takes the session (`catchup::recover_dead_turn`).
pub struct PendingRunTurn<'a> {
    store: &'a Store,
    target: &'a Target,
    key: &'a Key,
    prompt: &'a str,
    transcript: PathBuf,
    /// When the run lock was taken: the prompt is written after.
    since: u64,
    token: String,
    settled: Settled,
    done: bool,
}

impl<'a> PendingRunTurn<'a> {
    /// Notes the turn in `lock` (see [`RunLock::begin_turn`]).
    pub fn new(
        store: &'a Store,
        lock: &mut RunLock,
        target: &'a Target,
        key: &'a Key,
        prompt: &'a str,
    ) -> Result<Self> {
        let transcript = target.transcript_path()?;
        let settled = lock.begin_turn(prompt, transcript.clone())?;
        Ok(PendingRunTurn {
            store,
            target,
            key,
            prompt,
            transcript,
            since: lock.since(),
            token: lock.token(),
            settled,
            done: false,
        })
    }

    /// The token the turn is logged with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Records the finished turn (`record_run_turn`, with this turn's token; the turn log's
    /// `next_seq` after it). When that fails, the turn stays noted in the run lock for the
    /// next taker of the session to log.
    pub fn record(&mut self, turn: &RunTurn<'_>) -> Result<u64> {
        self.done = true;
        let next_seq = record_run_turn(self.store, &RunTurn { token: Some(&self.token), ..*turn })?;
        self.settled.set();
        Ok(next_seq)
    }

    /// The turn failed with `reply` (what claude or the run says of it): logged if its prompt
    /// reached the transcript. A failure to log is said on stderr (the run's own failure is
    /// what its caller needs); the turn then stays noted for the next taker of the session.
    pub fn failed(&mut self, reply: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        match self.log_failed(reply) {
            Ok(_) => self.settled.set(),
            Err(err) => eprintln!(
                "clawsess: could not log the failed turn ({}); {UNLOGGED}",
                crate::sys::printable(&format!("{err:#}"), false)
            ),
        }
    }

    fn log_failed(&self, reply: &str) -> Result<bool> {
        if !self.transcript.exists() || !branches::prompt_written(&self.transcript, self.prompt, self.since)?
        {
            return Ok(false);
        }
        let reply = if reply.trim().is_empty() { "(the turn failed without a reply)" } else { reply };
        let tx = self.store.lock(COMMAND_LOCK_WAIT)?;
        let turn = NewTurn {
            surface: self.key.as_str(),
            by_pid: None,
            prompt: self.prompt,
            reply,
            token: Some(&self.token),
            at: now_ms(),
        };
        catchup::log(&tx, &self.target.id, &turn)
    }
}

impl Drop for PendingRunTurn<'_> {
    fn drop(&mut self) {
        self.failed("(the turn failed: the run ended without claude's result)");
    }
}

/// What a run says when its turn could not be logged.
pub const UNLOGGED: &str = "the turn stays noted in the session's run lock, and the next clawsess \
    that takes the session (a run, a prompt in a terminal) logs it from the transcript";

/// What a SessionStart announced.
#[derive(Debug, Clone)]
pub struct Start {
    pub cwd: PathBuf,
    pub transcript: PathBuf,
    /// `startup`, `resume`, `clear`, `compact`, ...
    pub source: String,
    pub title: Option<String>,
}

/// Records (or refreshes) the session a claude process started or resumed. `process` is
/// `None` for `run`'s own child (whose run records the turn). A session a keyed process
/// starts becomes that key's own, unless the key is attached. Returns whether the record
/// already listed the process (a reload inside a live process: `/resume`, `/clear`, a
/// compaction).
pub fn record_start(
    store: &Store,
    id: &SessionId,
    start: &Start,
    process: Option<&ClaudeProcess>,
) -> Result<bool> {
    let now = now_ms();
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    record_start_locked(&tx, id, start, process, now)
}

/// [`record_start`] under a lock the caller holds (session-start also sets the process's
/// turn-log cursor under it: one lock, one read of each file). `now`: the hook's time.
pub fn record_start_locked(
    tx: &Locked<'_>,
    id: &SessionId,
    start: &Start,
    process: Option<&ClaudeProcess>,
    now: u64,
) -> Result<bool> {
    let existing = tx.session(id)?;
    let pid = process.and_then(|p| p.pid);
    let reload = pid.is_some_and(|pid| existing.as_ref().is_some_and(|r| r.processes.contains(&pid)));
    let mut rec = match &existing {
        Some(rec) => {
            let mut rec = rec.clone();
            rec.cwd = start.cwd.clone();
            rec.transcript = start.transcript.clone();
            rec.last_seen = now;
            rec
        }
        None => {
            let by = process.map_or(Starter::Run, ClaudeProcess::starter);
            let mut rec =
                SessionRecord::new(id.clone(), start.cwd.clone(), start.transcript.clone(), by, now);
            rec.key = process.and_then(|p| p.key.clone());
            rec
        }
    };
    if let Some(pid) = pid {
        rec.add_process(pid);
    }
    rec.source = start.source.clone();
    if let Some(title) = &start.title {
        rec.title = Some(title.clone());
    }
    match &existing {
        // A process resuming a recorded session mostly changes only its live pids and the
        // time: no fsync of the dir for that (see `Locked::update_session`).
        Some(before) => tx.update_session(before, &rec)?,
        None => tx.put_session(&rec)?,
    }
    if existing.is_none()
        && let Some(key) = process.and_then(|p| p.key.as_ref())
    {
        make_own_unless_attached(tx, key, id, now)?;
    }
    Ok(reload)
}

/// `key`'s own session becomes `id`, unless `key` is attached (its turns go elsewhere).
fn make_own_unless_attached(tx: &Locked<'_>, key: &Key, id: &SessionId, now: u64) -> Result<()> {
    if resolve(tx, key)?.is_some_and(|r| r.via != Via::Own) {
        return Ok(());
    }
    let mut state = tx.key_state(key)?.unwrap_or_else(|| KeyState::new(key.clone()));
    state.own = Some(id.clone());
    state.own_at = now;
    tx.put_key_state(&state)
}
