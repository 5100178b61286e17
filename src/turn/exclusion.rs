//! Who may answer a session now: at most one turn per session at a time.
//!
//! A turn is a `run` turn, or a claude process's turn from its UserPromptSubmit to its Stop
//! (a terminal, `claude -p`, an Agent SDK bot). Both go through the session's run lock: `run`
//! holds it for its whole turn; a process's prompt-submit hook takes it for a moment to write
//! its busy marker. Whoever comes first wins, and the other waits (with a deadline).
//!
//! The run lock is a file that is never renamed or deleted; while held it carries a note of
//! its holder (key, pid and start time, the claude child, and the turn's prompt), so that a
//! `run` killed while its claude still finishes keeps the session held until that claude is
//! gone, and its turn is logged by whoever takes the session next (see
//! [`super::catchup::recover_dead_turn`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::claude::process::{process_alive, start_time};
use crate::exit::Busy;
use crate::ident::shorten;
use crate::ident::{Key, SessionId};
use crate::store::{
    Acquired, BusyMarker, ClaimState, HolderTurn, Line, RunHolder, Store, Watched, lock_until, mtime_ms,
    now_ms, open_lock_file,
};
use crate::sys::bell::{Bell, Listener};
use crate::sys::{clock, pid_alive};

use super::queue::Place;

/// A busy marker older than this is stale even if its pid lives (pid reuse).
pub const BUSY_STALE: Duration = Duration::from_secs(6 * 3600);
/// Without a pid to check, a marker counts for this long.
pub const BUSY_STALE_NO_PID: Duration = Duration::from_secs(30 * 60);
/// A process's turn whose transcript has not grown for this long is over: Claude Code fires
/// no Stop when a turn is interrupted or another hook refuses the prompt, and a live
/// terminal would otherwise hold its session for hours. Claude Code writes every message and
/// tool call as it goes; its Bash tool times out after 10 minutes at most.
pub const BUSY_QUIET: Duration = Duration::from_secs(15 * 60);
/// Longest holder note read back (a note for the model included).
const HOLDER_MAX: u64 = 256 * 1024;
/// How far a time may lie in the future before it is taken for a clock that jumped.
const CLOCK_SKEW_MS: u64 = 60_000;

/// How long a run waiting behind an earlier run of its key waits for the bell (that run's
/// note removed) before it looks again anyway (a waiter killed rings nothing).
const RECHECK: Duration = Duration::from_secs(1);

/// The same for a turn waiting for its session, shorter: a terminal turn ended by Esc (seen
/// in the transcript only) or a claude that died rings nothing, and a session has few
/// waiters, so looking twice a second costs little.
const SESSION_RECHECK: Duration = Duration::from_millis(500);

/// Without a bell (no inotify): how often a waiter looks again.
const POLL: Duration = Duration::from_millis(100);

/// A session's run lock, held by `run` for a whole turn. Dropping it releases the session.
pub struct RunLock {
    file: File,
    holder: RunHolder,
    /// The turn noted in `holder.turn` is logged (or left nothing to log): see
    /// [`RunLock::begin_turn`].
    settled: Arc<AtomicBool>,
}

/// Set once the turn a [`RunLock`] noted is logged, or is known to have left nothing to log.
#[derive(Debug, Clone)]
pub struct Settled(Arc<AtomicBool>);

impl Settled {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl RunLock {
    /// Takes `id`'s run lock for `key`, waiting until `wait` has passed while another run
    /// holds it or a claude process's turn is in progress. Past that: a [`Busy`] error.
    pub fn acquire(store: &Store, id: &SessionId, key: &str, wait: Duration) -> Result<Self> {
        Self::acquire_with(store, id, key, wait, None, |_| {})
    }

    /// [`Self::acquire`], telling `waiting` why each time it must wait; `place` is the run's
    /// place in the queue if it took one already (before its key's lock, see [`KeyLock`]).
    pub fn acquire_with(
        store: &Store,
        id: &SessionId,
        key: &str,
        wait: Duration,
        place: Option<&Place>,
        mut waiting: impl FnMut(&str),
    ) -> Result<Self> {
        let mut told = false;
        let tell = |why: &str| {
            waiting(why);
            if !told && !wait.is_zero() {
                eprintln!(
                    "clawsess: session {} is busy ({why}); waiting up to {:.0} s",
                    id.short(),
                    wait.as_secs_f64()
                );
                told = true;
            }
        };
        let file = match take(store, id, None, key, place, Instant::now() + wait, tell, SESSION_RECHECK)? {
            Ok(file) => file,
            Err(why) => return Err(Busy(format!("session {id} is busy ({why}); try again later")).into()),
        };
        let me = std::process::id();
        let holder = RunHolder::new(key.to_owned(), me, now_ms());
        let mut lock = Self { file, holder, settled: Arc::new(AtomicBool::new(true)) };
        lock.note_holder()?;
        Ok(lock)
    }

    /// Notes the `claude` child answering the turn, so that if this process is SIGKILLed the
    /// next turn waits for the child (which gets SIGTERM from the kernel) to be gone.
    pub fn set_child(&mut self, pid: u32) -> Result<()> {
        self.holder.child = Some(pid);
        self.holder.child_start = start_time(pid);
        self.note_holder()
    }

    /// Notes the keeper whose warm claude answers the turn: that claude's hooks then see
    /// themselves as this run's (see [`run_child_of`]).
    pub fn set_keeper(&mut self, pid: Option<u32>) -> Result<()> {
        self.holder.keeper = pid;
        self.note_holder()
    }

    /// Notes the keeper whose warm claude `child` (started at `child_start`) answers the turn,
    /// in one write: [`Self::set_keeper`] and [`Self::set_child`] together.
    pub fn set_warm_claude(&mut self, keeper: u32, child: u32, child_start: Option<u64>) -> Result<()> {
        self.holder.keeper = Some(keeper);
        self.holder.child = Some(child);
        self.holder.child_start = child_start;
        self.note_holder()
    }

    /// The fork note: text the run's claude gets from its prompt hook as `additionalContext`
    /// (see `turn::fork`).
    pub fn set_fork_note(&mut self, note: Option<String>) -> Result<()> {
        if note == self.holder.note {
            return Ok(()); // no note, as before: nothing to write
        }
        self.holder.note = note;
        self.note_holder()
    }

    /// Whether the run's claude has a fork note to be handed by its prompt hook.
    pub fn has_fork_note(&self) -> bool {
        self.holder.note.is_some()
    }

    /// When the lock was taken (Unix ms): the turn's prompt was written after that.
    pub fn since(&self) -> u64 {
        self.holder.since
    }

    /// Notes the turn this run begins (its prompt, the session's transcript): should the run
    /// die (SIGKILL, a crash) or fail to log the turn (a full disk) before [`Settled::set`],
    /// the next process that takes the session logs it from the transcript. Until then,
    /// releasing the lock keeps the note.
    pub fn begin_turn(&mut self, prompt: &str, transcript: PathBuf) -> Result<Settled> {
        let prompt = shorten(prompt, super::catchup::TURN_PROMPT_MAX);
        self.holder.turn = Some(HolderTurn { prompt, transcript });
        if let Err(err) = self.note_holder() {
            self.holder.turn = None; // the turn does not begin
            return Err(err);
        }
        self.settled.store(false, Ordering::SeqCst);
        Ok(Settled(Arc::clone(&self.settled)))
    }

    /// The token this run's turn is logged with (see [`RunHolder::token`]).
    pub fn token(&self) -> String {
        self.holder.token()
    }

    fn note_holder(&mut self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.holder)?;
        write_note(&self.file, &bytes).context("could not note the run lock's holder")
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if self.holder.turn.is_some() && !self.settled.load(Ordering::SeqCst) {
            // Its turn is not logged: the note stays for the next taker, marked released (this
            // process no longer holds the session, though it may live on: a bot). Without the
            // child and the model's note it is shorter than the note there, so it is written
            // over it in place: no new space needed on a full disk.
            let kept = RunHolder {
                child: None,
                child_start: None,
                keeper: None,
                note: None,
                released: true,
                ..self.holder.clone()
            };
            if let Ok(bytes) = serde_json::to_vec(&kept) {
                let _ = write_note(&self.file, &bytes);
            }
        } else {
            let _ = write_note(&self.file, b"");
        }
        let _ = self.file.unlock();
    }
}

/// Writes a lock file's note: the new bytes over the old in place, then the file cut to their
/// length. A reader never finds the file empty while a note is replaced (a truncate first
/// would show it empty, and `busy` would lose who answers): it reads the old note, the new one,
/// or the new one followed by the old one's tail, which [`parse_note`] reads past. No new
/// blocks are needed when the new note is no longer than the old (a full disk).
fn write_note(mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
    if !bytes.is_empty() {
        file.seek(SeekFrom::Start(0))?;
        file.write_all(bytes)?;
    }
    file.set_len(bytes.len() as u64)
}

/// A lock file's note: the first JSON value of `text`, what follows it ignored (the tail of a
/// longer note being replaced: see [`write_note`]). `None` for an empty (cleared) note.
fn parse_note<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::Deserializer::from_str(text).into_iter::<T>().next()?.ok()
}

/// Reads a lock file's note (at most [`HOLDER_MAX`] bytes). A note caught while it is written
/// (the file's new length not yet seen with its new bytes, so not JSON) is read again, after
/// a pause of a millisecond or so that lets its writer finish (a few times: a note that stays
/// broken, which no writer leaves, is no note).
fn read_note<T: serde::de::DeserializeOwned>(mut file: &File, capacity: usize) -> Option<T> {
    let mut text = String::with_capacity(capacity);
    for attempt in 0..8 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_micros(500 * attempt));
        }
        text.clear();
        file.seek(SeekFrom::Start(0)).ok()?;
        file.take(HOLDER_MAX).read_to_string(&mut text).ok()?;
        if text.is_empty() {
            return None;
        }
        if let Some(note) = parse_note(&text) {
            return Some(note);
        }
    }
    None
}

/// A key's run lock: runs of one key go one after the other, so that a chat's first two
/// messages do not start two sessions and its turns keep their order. It notes its holder
/// (pid and start time), so that `stop --key` finds a run still waiting for its session.
pub struct KeyLock {
    file: File,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = write_note(&self.file, b"");
        let _ = self.file.unlock();
    }
}

/// The run holding `key`'s lock (pid), if a live one does: a run routing its turn or waiting
/// for its session, or answering it.
pub fn key_holder(store: &Store, key: &Key) -> Option<u32> {
    let file = open_lock_file(&store.run_lock_path_for_key(key).ok()?).ok()?;
    if file.try_lock().is_ok() {
        let _ = file.unlock();
        return None; // nobody holds it
    }
    let holder: serde_json::Value = read_note(&file, 128)?;
    let pid = u32::try_from(holder.get("pid")?.as_u64()?).ok()?;
    let start = holder.get("pid_start").and_then(serde_json::Value::as_u64);
    process_alive(pid, start).then_some(pid)
}

/// The live runs queued for `key`'s lock behind the run holding it (pids, longest waiting
/// first): `stop --key` withdraws them too.
pub fn key_waiters(store: &Store, key: &Key) -> Vec<u32> {
    waiting_for_key(store, key).into_iter().map(|(_, pid)| pid).collect()
}

/// The live runs waiting for `key`'s lock, in the order they are served: their places in
/// line, oldest first, and their pids. Notes of runs that were killed are removed.
fn waiting_for_key(store: &Store, key: &Key) -> Vec<(Place, u32)> {
    let Ok(dir) = store.run_lock_path_for_key(key).map(|p| p.with_extension("waiting")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut found: Vec<(Place, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let note: serde_json::Value = serde_json::from_str(&text).ok()?;
            let pid = u32::try_from(note.get("pid")?.as_u64()?).ok()?;
            let start = note.get("pid_start").and_then(serde_json::Value::as_u64);
            let at = note.get("since").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let id = note.get("id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            if process_alive(pid, start) {
                Some((Place { at, id }, pid))
            } else {
                let _ = std::fs::remove_file(entry.path()); // a waiter that was killed
                None
            }
        })
        .collect();
    found.sort_unstable();
    found
}

/// A run's note that it waits for a key's lock, with its place in line; removed when it
/// stops waiting.
struct Waiting(Option<std::path::PathBuf>);

impl Waiting {
    fn note(lock: &std::path::Path, place: &Place) -> Self {
        let dir = lock.with_extension("waiting");
        let me = std::process::id();
        let path = dir.join(format!("{me}.json"));
        let note =
            serde_json::json!({"pid": me, "pid_start": start_time(me), "since": place.at, "id": place.id});
        let written = crate::store::create_private_dir(&dir)
            .ok()
            .and_then(|()| std::fs::write(&path, note.to_string()).ok());
        Self(written.map(|()| path))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl KeyLock {
    /// Takes `key`'s lock, waiting until `deadline`; `tell` is called once if it must wait.
    /// Runs of a key are served first come, first served, in the order of their `place`
    /// (taken before they began to wait, and kept in the session's queue): while it waits, a
    /// run notes itself with its place (see [`key_waiters`]), and when the lock is free only
    /// the oldest live waiter takes it; the others let go at once and look again every 0.1 s.
    pub fn acquire(
        store: &Store,
        key: &Key,
        place: &Place,
        deadline: Instant,
        tell: impl FnOnce(),
    ) -> Result<Self> {
        let path = store.run_lock_path_for_key(key)?;
        let file = open_lock_file(&path)?;
        let me = std::process::id();
        let mut waiting = None;
        let mut tell = Some(tell);
        let mut listener = Listener::default();
        loop {
            let acquired = lock_until(&file, deadline, || {
                waiting = waiting.take().or_else(|| Some(Waiting::note(&path, place)));
                if let Some(tell) = tell.take() {
                    tell();
                }
            })?;
            if let Acquired::TimedOut = acquired {
                return Err(
                    Busy(format!("another run for {key} is still in progress; try again later")).into()
                );
            }
            let first = waiting_for_key(store, key).into_iter().find(|(_, pid)| *pid != me);
            if first.is_none_or(|(theirs, _)| theirs > *place) {
                drop(waiting);
                let holder = serde_json::json!({"pid": me, "pid_start": start_time(me), "since": now_ms()});
                write_note(&file, holder.to_string().as_bytes())
                    .context("could not note the key lock's holder")?;
                return Ok(Self { file });
            }
            // A run of the key that began to wait earlier goes first.
            let _ = file.unlock();
            if waiting.is_none() {
                waiting = Some(Waiting::note(&path, place));
            }
            if let Some(tell) = tell.take() {
                tell();
            }
            if Instant::now() >= deadline {
                return Err(
                    Busy(format!("another run for {key} is still in progress; try again later")).into()
                );
            }
            // The earlier run removes its note when it takes the lock: that rings (see
            // `crate::sys::bell`); one killed while waiting rings nothing, the recheck finds it.
            let until = deadline.min(Instant::now() + RECHECK);
            if listener.start(|| {
                let dir = path.with_extension("waiting");
                crate::store::create_private_dir(&dir).ok().and_then(|()| Bell::on(&[&dir]))
            }) {
                continue; // listening now: look again before waiting
            }
            listener.wait_until(until, POLL, &[], |_| true);
        }
    }
}

/// A claude process's turn about to begin: the run lock, held for a moment (or, for a claude
/// handed the turn by `clawsess queue`, held by that queue process for it: see
/// [`take_claim`]). Nothing else can start a turn on the session while it exists;
/// [`Gate::open`] marks the turn and lets go.
pub struct Gate<'a> {
    store: &'a Store,
    id: SessionId,
    file: Option<File>,
    /// The token of the claim this turn takes, until the turn is marked.
    claim: Option<String>,
}

impl Gate<'_> {
    /// Marks the turn of `marker`'s process and releases the run lock (or tells the queue
    /// process holding it that the turn is marked, so it lets go).
    pub fn open(mut self, marker: &BusyMarker) -> Result<()> {
        self.store.put_busy(&self.id, marker)?;
        if let Some(token) = self.claim.take() {
            settle_claim(self.store, &self.id, &token, ClaimState::Taken)?;
        }
        drop(self.file.take());
        Ok(())
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        // Not opened: the prompt was refused after all; the queue process lets go.
        if let Some(token) = self.claim.take() {
            let _ = settle_claim(self.store, &self.id, &token, ClaimState::Refused);
        }
    }
}

/// The turn a `clawsess queue` process holds on `id` for the claude whose prompt hook shows
/// `token` (`CLAWSESS_CLAIM`), taken for the claude `pid` at once: that process waited in the
/// queue and holds the run lock for this claude, so nothing else took the session since the
/// claude read the transcript. Under the store lock, so a claim is taken once: `None` when
/// there is no such claim ready (another token, taken already, withdrawn, its process gone),
/// and the prompt then goes through [`gate`] as any other.
pub fn take_claim<'a>(
    store: &'a Store,
    id: &SessionId,
    token: &str,
    pid: Option<u32>,
) -> Result<Option<Gate<'a>>> {
    let tx = store.lock(crate::store::HOOK_LOCK_WAIT)?;
    let Some(mut claim) = tx.claim(id)? else { return Ok(None) };
    let ready = claim.state == ClaimState::Ready
        && !token.is_empty()
        && claim.token == token
        && process_alive(claim.pid, claim.pid_start)
        && run_holder(store, id).is_some_and(|h| h.pid == claim.pid);
    if !ready {
        return Ok(None);
    }
    claim.state = ClaimState::Taking;
    claim.claude = pid;
    tx.put_claim(id, &claim)?;
    Ok(Some(Gate { store, id: id.clone(), file: None, claim: Some(token.to_owned()) }))
}

/// A claim being taken (`token`'s) is now `state`.
fn settle_claim(store: &Store, id: &SessionId, token: &str, state: ClaimState) -> Result<()> {
    let tx = store.lock(crate::store::HOOK_LOCK_WAIT)?;
    if let Some(mut claim) = tx.claim(id)?
        && claim.token == token
        && claim.state == ClaimState::Taking
    {
        claim.state = state;
        tx.put_claim(id, &claim)?;
    }
    Ok(())
}

/// Waits, until `deadline`, for `id` to be free for a turn of the claude process `pid`: no
/// run holds it, no killed run's claude still finishes, no other process's turn is live (a
/// stale one is cleared). `Err(reason)` when it is still busy at the deadline; `on_wait`
/// hears the reason each time it must wait.
pub fn gate<'a>(
    store: &'a Store,
    id: &SessionId,
    pid: Option<u32>,
    deadline: Instant,
    on_wait: impl FnMut(&str),
) -> Result<std::result::Result<Gate<'a>, String>> {
    let who = pid.map_or_else(|| "a claude process".to_owned(), |p| format!("a claude process (pid {p})"));
    Ok(take(store, id, pid, &who, None, deadline, on_wait, SESSION_RECHECK)?.map(|file| Gate {
        store,
        id: id.clone(),
        file: Some(file),
        claim: None,
    }))
}

/// The run lock of `id`, taken once nothing else answers the session and no turn that began
/// to wait earlier still waits (see [`gate`], [`super::queue`]); `who` names this waiter,
/// `place` its place in the queue if it took one already (a run, before its key's lock); it
/// looks again every `recheck` when nothing wakes it.
#[allow(clippy::too_many_arguments)]
fn take(
    store: &Store,
    id: &SessionId,
    pid: Option<u32>,
    who: &str,
    place: Option<&Place>,
    deadline: Instant,
    mut on_wait: impl FnMut(&str),
    recheck: Duration,
) -> Result<std::result::Result<File, String>> {
    let file = open_lock_file(&store.run_lock_path(id)?)?;
    let place = place.cloned().unwrap_or_else(Place::now);
    let mut ticket = None;
    let mut listener = Listener::default();
    loop {
        let acquired = lock_until(&file, deadline, || {
            ticket = ticket
                .take()
                .or_else(|| super::queue::Ticket::join_as(store, Line::Session(id), who, &place));
            on_wait(&holder_text(&read_holder(&file)))
        })?;
        if let Acquired::TimedOut = acquired {
            return Ok(Err(holder_text(&read_holder(&file))));
        }
        // We hold the lock: a stale marker can go for good (else the transcript writes of
        // the turn about to run would bring it back to life), and the turn of a run that died
        // (or could not log it) is logged, once its claude is gone.
        let left = read_holder(&file);
        // The live process each reason waits for: killed, it removes nothing (rings nothing),
        // so its end wakes this waiter too (see the bell below).
        let mut awaited: Vec<(u32, Option<u64>)> = Vec::new();
        let why = match left.as_ref().and_then(orphan_child) {
            Some(why) => {
                awaited.extend(left.as_ref().and_then(|h| Some((h.child?, h.child_start))));
                Some(why)
            }
            None => match recover(store, id, &file, left.as_ref()) {
                Err(why) => Some(why),
                Ok(()) => live_marker(store, id, true)?.filter(|m| pid.is_none() || m.pid != pid).map(|m| {
                    awaited.extend(m.pid.map(|p| (p, m.pid_start)));
                    marker_text(&m)
                }),
            },
        };
        // The claim on the next turn of a `run --interrupt`, read once for both questions.
        let next = store.next_turn(id).ok().flatten();
        let why = why.or_else(|| {
            next_in_line(next.as_ref())
                .inspect(|_| awaited.extend(next.as_ref().map(|n| (n.pid, n.pid_start))))
        });
        // A run that interrupted the turn (it holds the claim on the next turn) goes first.
        let claimed = next.as_ref().is_some_and(|n| n.pid == std::process::id());
        // A run holds its key's lock here: a ticket of its own key is a later run of the key
        // waiting for that lock (its place kept, see `KeyLock`), which goes after this one.
        let ahead = super::queue::ahead(store, Line::Session(id), ticket.as_ref())
            .map(|ahead| ahead.into_iter().filter(|t| pid.is_some() || t.surface != who).collect::<Vec<_>>());
        let why = why.or_else(|| match ahead {
            Ok(ahead) if !ahead.is_empty() && !claimed => {
                awaited.extend(ahead.last().map(|t| (t.pid, t.pid_start)));
                Some(format!(
                    "{} turn(s) waiting since before this one, first {}",
                    ahead.len(),
                    ahead[0].surface
                ))
            }
            _ => None,
        });
        let Some(why) = why else { return Ok(Ok(file)) };
        let _ = file.unlock();
        if ticket.is_none() {
            ticket = super::queue::Ticket::join_as(store, Line::Session(id), who, &place);
        }
        if Instant::now() >= deadline {
            return Ok(Err(why));
        }
        on_wait(&why);
        // What it waits for mostly ends by a file removed, which rings: a ticket ahead, the
        // busy marker, an interrupting run's claim. A process killed with its file on file
        // wakes it by its end (pidfds). Not all (a turn ended by Esc in the transcript, where
        // pidfds cannot be had): those the recheck finds.
        let until = deadline.min(Instant::now() + recheck);
        if listener.start(|| store.bell(&[Watched::Line(Line::Session(id)), Watched::Busy, Watched::Next])) {
            continue; // listening now: look again before waiting
        }
        // `busy/` and `next/` hold every session's files: one of another session leaving
        // rings, but is not for this waiter (every session's waiters woke at every turn that
        // ended anywhere). Its own line's dir is its session's alone.
        let mine = format!("{id}.json");
        listener.wait_until(until, POLL, &awaited, |rang| {
            !rang.gone[0].is_empty() || rang.gone[1..].iter().flatten().any(|f| *f == mine)
        });
    }
}

/// A live `run --interrupt` of another process that stopped the turn and goes next: `next`,
/// the session's claim on its next turn.
fn next_in_line(next: Option<&crate::store::NextTurn>) -> Option<String> {
    let next = next?;
    let theirs = next.pid != std::process::id() && process_alive(next.pid, next.pid_start);
    theirs.then(|| format!("a run (pid {}) interrupted the turn in progress and goes next", next.pid))
}

fn read_holder(file: &File) -> Option<RunHolder> {
    // Room for a note without a fork note: one read, not six growing ones (32, 32, 64 ...).
    read_note(file, 4096)
}

/// The `claude` of a run that died, still finishing, as the reason to wait for it. Called
/// with the run lock held: a holder note left in the file is then a run that was killed
/// (one that ends clears it), whether or not its parent has reaped it yet.
fn orphan_child(holder: &RunHolder) -> Option<String> {
    let child = holder.child.filter(|&c| process_alive(c, holder.child_start))?;
    Some(format!("the claude (pid {child}) of a stopped run for {} is still finishing", holder.key))
}

/// With the run lock held and no claude of a dead run still writing: the turn the note `left`
/// in the lock `file` (a run that died, or could not log it) goes to the turn log, once, and
/// the note is cleared. `Err(reason)` when it could not be logged (the note stays for the
/// next taker): the session waits, as a turn logged late would be lost for catch-up.
fn recover(
    store: &Store,
    id: &SessionId,
    file: &File,
    left: Option<&RunHolder>,
) -> std::result::Result<(), String> {
    let Some(holder) = left.filter(|h| h.turn.is_some()) else { return Ok(()) };
    match super::catchup::recover_dead_turn(store, id, holder) {
        Ok(_) => {
            let _ = write_note(file, b"");
            Ok(())
        }
        Err(err) => Err(format!(
            "the last turn of {} (a run that ended without logging it) could not be logged: {}; it is \
             logged as soon as that works (free space on the state dir's disk if it is full)",
            holder.key,
            crate::sys::printable(&format!("{err:#}"), false)
        )),
    }
}

/// At a claude process's start (SessionStart), before it counts as having loaded the session:
/// if nobody holds `id`'s run lock, the turn of a run that died is logged now (see [`take`]),
/// so that the process, which loaded it, does not count it as missed. One that cannot be
/// logged now is logged by the next taker of the session; a failure is said, not fatal.
pub fn recover_if_free(store: &Store, id: &SessionId) {
    let path = store.run_lock_file(id);
    // Read first, without the lock: taking it even for a moment could refuse a turn that
    // does not wait (`claude -p`, `run --wait 0`), and there is seldom anything to do.
    let unlogged = File::open(&path).ok().and_then(|f| read_holder(&f)).is_some_and(|h| h.turn.is_some());
    if !unlogged {
        return;
    }
    let Ok(file) = open_lock_file(&path) else { return };
    if file.try_lock().is_err() {
        return; // its holder (or the next taker) sees to it
    }
    let left = read_holder(&file);
    if left.as_ref().and_then(orphan_child).is_none()
        && let Err(why) = recover(store, id, &file, left.as_ref())
    {
        eprintln!("clawsess: {why}");
    }
    let _ = file.unlock();
}

fn holder_text(holder: &Option<RunHolder>) -> String {
    match holder {
        Some(h) => {
            format!("{} is answering it via clawsess run, pid {}, since {}", h.key, h.pid, clock(h.since))
        }
        None => "another clawsess run is answering it".to_owned(),
    }
}

fn marker_text(marker: &BusyMarker) -> String {
    let pid = marker.pid.map(|p| format!(" (claude pid {p})")).unwrap_or_default();
    format!("a turn of {}{pid} is running since {}", marker.surface(), clock(marker.since))
}

/// The busy marker of the claude process's turn in progress on `id`: it is there, its
/// process alive, neither it nor the transcript has been quiet for [`BUSY_QUIET`], and the
/// transcript does not end with the turn stopped by an interrupt.
pub fn busy_marker(store: &Store, id: &SessionId) -> Result<Option<BusyMarker>> {
    live_marker(store, id, false)
}

/// [`busy_marker`]; with `clear_stale` (only while holding the run lock, under which
/// markers are written) a marker that is no longer live is removed, so it stays stale.
fn live_marker(store: &Store, id: &SessionId, clear_stale: bool) -> Result<Option<BusyMarker>> {
    let Some(marker) = store.busy(id)? else {
        return Ok(None);
    };
    let now = now_ms();
    // A `since` in the future (the clock jumped back) would never age: stale.
    let age = Duration::from_millis(now.saturating_sub(marker.since));
    let live = marker.since <= now + CLOCK_SKEW_MS
        && match marker.pid {
            Some(pid) => pid_alive(pid) && process_alive(pid, marker.pid_start) && age < BUSY_STALE,
            None => age < BUSY_STALE_NO_PID,
        }
        && {
            let transcript = store.session(id)?.map(|rec| rec.transcript);
            let written = transcript.as_deref().and_then(mtime_ms);
            let written = written.filter(|&w| w <= now + CLOCK_SKEW_MS).unwrap_or(0);
            Duration::from_millis(now.saturating_sub(written.max(marker.since))) < BUSY_QUIET
                && !transcript.is_some_and(|t| stopped_by_interrupt(&marker, &t))
        };
    if live {
        return Ok(Some(marker));
    }
    if clear_stale {
        // No Stop came (the turn was stopped, or its claude died): logged as a turn first.
        if let Err(err) = super::catchup::log_stopped_turn(store, id, &marker, crate::store::HOOK_LOCK_WAIT) {
            eprintln!(
                "clawsess: could not log the stopped turn of {}: {}",
                marker.surface(),
                crate::sys::printable(&format!("{err:#}"), false)
            );
        }
        store.clear_busy(id)?;
    }
    Ok(None)
}

/// Whether the transcript says the turn `marker` marked has ended by an interrupt (Esc, a
/// stream-json `interrupt`: Claude Code fires no hook for it). `false` when in doubt, and for a
/// marker that did not note the transcript's length (an older clawsess wrote it).
fn stopped_by_interrupt(marker: &BusyMarker, transcript: &std::path::Path) -> bool {
    let (Some(prompt), Some(from)) = (marker.prompt.as_deref(), marker.transcript_len) else { return false };
    crate::transcript::branches::stopped_by_interrupt(transcript, prompt, from).unwrap_or(false)
}

/// Ends the turn of the claude process `pid` on `id` (Stop, SessionEnd); returns its marker
/// when it was this process's (its prompt goes to the catch-up log).
pub fn end_process_turn(store: &Store, id: &SessionId, pid: Option<u32>) -> Result<Option<BusyMarker>> {
    let Some(marker) = store.busy(id)? else { return Ok(None) };
    let ours = marker.pid == pid;
    if ours || marker.pid.is_none() || !marker.pid.is_some_and(|p| process_alive(p, marker.pid_start)) {
        store.clear_busy(id)?;
    }
    Ok(ours.then_some(marker))
}

/// Who holds `id`'s run lock right now, if anyone (read without taking the lock): a live
/// run that noted itself, or the claude of a killed run that is still finishing.
pub fn run_holder(store: &Store, id: &SessionId) -> Option<RunHolder> {
    let file = File::open(store.run_lock_file(id)).ok()?;
    read_holder(&file).filter(|h| {
        (!h.released && process_alive(h.pid, h.pid_start))
            || h.child.is_some_and(|c| process_alive(c, h.child_start))
    })
}

/// Whether this process is a hook of `run`'s own `claude` child for `id`: the env names a
/// live run that really holds this session's lock (an inherited variable alone is not enough),
/// or the keeper of a warm claude that such a run noted as answering its turn (a kept
/// claude's env names its keeper, which is no run).
pub fn run_child_of(store: &Store, id: &SessionId) -> Option<RunHolder> {
    let pid: u32 = std::env::var(crate::claude::RUN_PID_ENV).ok()?.parse().ok()?;
    run_holder(store, id).filter(|h| h.pid == pid || h.keeper == Some(pid))
}

/// Who answers `id` right now: a run's key, or the surface of a process's turn.
pub fn busy_by(store: &Store, id: &SessionId) -> Result<Option<String>> {
    if let Some(holder) = run_holder(store, id) {
        return Ok(Some(holder.key));
    }
    Ok(busy_marker(store, id)?.map(|m| match m.surface.as_deref() {
        Some("terminal") | None => "terminal".to_owned(),
        Some(other) => other.to_owned(),
    }))
}

/// This process's place in `id`'s queue (1: next) and who answers the session now, while
/// it waits there (see [`super::queue`]).
pub fn queue_position(store: &Store, id: &SessionId) -> Option<(usize, String)> {
    let place = super::queue::position(store, id)?;
    let behind = busy_by(store, id).ok().flatten().unwrap_or_else(|| "another turn".into());
    Some((place, behind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{COMMAND_LOCK_WAIT, FORMAT, SessionRecord, Starter};

    fn id() -> SessionId {
        SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap()
    }

    fn marker(pid: u32, since: u64) -> BusyMarker {
        BusyMarker {
            v: FORMAT,
            pid: Some(pid),
            pid_start: start_time(pid),
            since,
            surface: Some("terminal".into()),
            prompt: None,
            permission_mode: None,
            transcript_len: None,
        }
    }

    #[test]
    fn a_process_turn_whose_transcript_went_quiet_is_not_busy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let transcript = dir.path().join("t.jsonl");
        std::fs::write(&transcript, "{}\n").unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&SessionRecord::new(id(), dir.path().into(), transcript.clone(), Starter::Person, 0))
            .unwrap();
        drop(tx);
        let an_hour_ago = now_ms() - 3_600_000;
        store.put_busy(&id(), &marker(std::process::id(), an_hour_ago)).unwrap();
        // The transcript was just written: the turn is still going.
        assert!(busy_marker(&store, &id()).unwrap().is_some());
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&transcript).unwrap().set_modified(old).unwrap();
        assert!(busy_marker(&store, &id()).unwrap().is_none(), "quiet for an hour");
        // A fresh marker counts even with a quiet transcript (the turn just started).
        store.put_busy(&id(), &marker(std::process::id(), now_ms())).unwrap();
        assert!(busy_marker(&store, &id()).unwrap().is_some());
    }

    #[test]
    fn a_process_turn_waits_for_a_run_and_a_run_for_a_process_turn() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let me = Some(std::process::id());
        let lock = RunLock::acquire(&store, &id(), "telegram:1", Duration::ZERO).unwrap();
        let mut heard = Vec::new();
        let refused =
            gate(&store, &id(), me, Instant::now() + Duration::from_millis(50), |w| heard.push(w.to_owned()))
                .unwrap()
                .err()
                .expect("busy while the run holds it");
        assert!(refused.contains("telegram:1") && heard[0].contains("telegram:1"), "{refused} {heard:?}");
        assert_eq!(run_holder(&store, &id()).unwrap().key, "telegram:1");
        drop(lock);
        assert!(run_holder(&store, &id()).is_none());
        let Ok(open) = gate(&store, &id(), me, Instant::now(), |_| {}).unwrap() else { panic!("free") };
        open.open(&marker(std::process::id(), now_ms())).unwrap();
        let err = RunLock::acquire(&store, &id(), "k", Duration::ZERO).err().unwrap();
        assert!(err.downcast_ref::<Busy>().is_some() && format!("{err}").contains("terminal"), "{err:#}");
        // The same process's next prompt (its Stop never came) takes its turn again.
        assert!(gate(&store, &id(), me, Instant::now(), |_| {}).unwrap().is_ok());
        assert!(end_process_turn(&store, &id(), me).unwrap().is_some());
        RunLock::acquire(&store, &id(), "k", Duration::ZERO).unwrap();
    }

    /// A turn held for a claude (`clawsess queue`) is taken once, by the claude showing its
    /// token, while its holder holds the session; a refused prompt lets the holder go.
    #[test]
    fn a_claim_is_taken_once_by_its_token_while_its_holder_holds_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let me = std::process::id();
        let claim = |state| crate::store::TurnClaim {
            v: FORMAT,
            token: "T".into(),
            pid: me,
            pid_start: start_time(me),
            key: "sdk:1".into(),
            state,
            claude: None,
            at: now_ms(),
        };
        let put = |state| store.lock(COMMAND_LOCK_WAIT).unwrap().put_claim(&id(), &claim(state)).unwrap();
        put(ClaimState::Ready);
        assert!(take_claim(&store, &id(), "T", Some(7)).unwrap().is_none(), "nobody holds the session");
        let lock = RunLock::acquire(&store, &id(), "sdk:1", Duration::ZERO).unwrap();
        assert!(take_claim(&store, &id(), "other", Some(7)).unwrap().is_none(), "another token");
        assert!(take_claim(&store, &id(), "", Some(7)).unwrap().is_none());
        let gate = take_claim(&store, &id(), "T", Some(7)).unwrap().expect("the claim's claude");
        let taking = store.claim(&id()).unwrap().unwrap();
        assert_eq!((taking.state, taking.claude), (ClaimState::Taking, Some(7)));
        assert!(take_claim(&store, &id(), "T", Some(8)).unwrap().is_none(), "taken once");
        gate.open(&marker(me, now_ms())).unwrap();
        assert_eq!(store.claim(&id()).unwrap().unwrap().state, ClaimState::Taken);
        assert_eq!(store.busy(&id()).unwrap().unwrap().pid, Some(me), "the claude's turn is marked");
        // A prompt refused after taking it (behind): the holder hears it.
        put(ClaimState::Ready);
        drop(take_claim(&store, &id(), "T", Some(7)).unwrap().expect("ready again"));
        assert_eq!(store.claim(&id()).unwrap().unwrap().state, ClaimState::Refused);
        drop(lock);
    }

    /// A pid that is no process's any more.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A run that died mid-turn left its note (and its turn unlogged): whoever takes the
    /// session first logs the turn, once, however many take it at once.
    #[test]
    fn the_turn_of_a_run_that_died_is_logged_once_by_whoever_takes_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let transcript = dir.path().join("t.jsonl");
        let since = now_ms() - 1000;
        let line = |kind: &str, text: &str| {
            let content = if kind == "user" {
                serde_json::json!(text)
            } else {
                serde_json::json!([{"type": "text", "text": text}])
            };
            serde_json::json!({"type": kind, "timestamp": crate::sys::rfc3339(now_ms()),
                "message": {"role": kind, "content": content}})
            .to_string()
        };
        std::fs::write(
            &transcript,
            format!("{}\n{}\n", line("user", "KILLED task"), line("assistant", "half")),
        )
        .unwrap();
        let pid = dead_pid();
        let holder = RunHolder {
            pid_start: Some(1),
            child: Some(dead_pid()),
            turn: Some(HolderTurn { prompt: "KILLED task".into(), transcript: transcript.clone() }),
            ..RunHolder::new("telegram:1".into(), pid, since)
        };
        std::fs::write(store.run_lock_path(&id()).unwrap(), serde_json::to_vec(&holder).unwrap()).unwrap();
        assert!(run_holder(&store, &id()).is_none(), "a dead run holds nothing");
        std::thread::scope(|scope| {
            for i in 0..8 {
                let store = &store;
                scope.spawn(move || {
                    if i % 2 == 0 {
                        recover_if_free(store, &id());
                    } else {
                        drop(RunLock::acquire(store, &id(), "k", Duration::from_secs(30)).unwrap());
                    }
                });
            }
        });
        let log = store.turn_log(&id()).unwrap().unwrap();
        let found: Vec<_> = log.turns.iter().filter(|t| t.prompt == "KILLED task").collect();
        assert_eq!(found.len(), 1, "{:?}", log.turns);
        assert_eq!((found[0].key.as_str(), found[0].reply.as_str()), ("telegram:1", "half"));
        assert_eq!(found[0].token.as_deref(), Some(holder.token().as_str()));
        // The note is gone: nobody recovers it again.
        drop(RunLock::acquire(&store, &id(), "k", Duration::ZERO).unwrap());
        assert_eq!(store.turn_log(&id()).unwrap().unwrap().turns.len(), 1);
    }

    /// A run whose turn could not be logged lets go of the session with its note kept (it no
    /// longer holds the session, though it lives); the next taker logs the turn.
    #[test]
    fn a_turn_not_logged_stays_noted_for_the_next_taker_and_frees_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let transcript = dir.path().join("t.jsonl");
        let mut lock = RunLock::acquire(&store, &id(), "telegram:1", Duration::ZERO).unwrap();
        let written = jiff::Timestamp::from_millisecond(now_ms() as i64 + 5).unwrap().to_string();
        let line = serde_json::json!({"type": "user", "timestamp": written,
            "message": {"role": "user", "content": "FULL disk"}});
        std::fs::write(&transcript, format!("{line}\n")).unwrap();
        lock.set_child(std::process::id()).unwrap();
        let _settled = lock.begin_turn("FULL disk", transcript).unwrap();
        drop(lock); // never settled: the log could not be written
        assert!(run_holder(&store, &id()).is_none(), "a released note holds nothing");
        assert!(store.turn_log(&id()).unwrap().is_none());
        drop(RunLock::acquire(&store, &id(), "k", Duration::ZERO).unwrap());
        let log = store.turn_log(&id()).unwrap().unwrap();
        assert_eq!(log.turns.len(), 1, "{:?}", log.turns);
        assert_eq!(log.turns[0].reply, "(the run ended before claude replied)");
        // A settled turn leaves nothing behind.
        let mut lock = RunLock::acquire(&store, &id(), "telegram:1", Duration::ZERO).unwrap();
        lock.begin_turn("another", dir.path().join("t.jsonl")).unwrap().set();
        drop(lock);
        drop(RunLock::acquire(&store, &id(), "k", Duration::ZERO).unwrap());
        assert_eq!(store.turn_log(&id()).unwrap().unwrap().turns.len(), 1);
    }

    /// A terminal's claude killed mid-turn removes nothing (its busy marker stays): a turn
    /// waiting for it wakes by its end, not at its recheck (600 s here).
    #[test]
    fn a_claude_killed_mid_turn_wakes_the_turn_waiting_for_it_by_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let transcript = dir.path().join("t.jsonl");
        std::fs::write(&transcript, "{}\n").unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&SessionRecord::new(id(), dir.path().into(), transcript, Starter::Person, 0)).unwrap();
        drop(tx);
        let mut claude = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        store.put_busy(&id(), &marker(claude.id(), now_ms())).unwrap();
        let (waits_tx, waits) = std::sync::mpsc::channel();
        let (got_tx, got) = std::sync::mpsc::channel();
        let state = store.dir().to_owned();
        std::thread::spawn(move || {
            let store = Store::at(state);
            let far = Instant::now() + Duration::from_secs(600);
            let me = Some(std::process::id());
            let taken = take(
                &store,
                &id(),
                me,
                "a claude process",
                None,
                far,
                |why| {
                    let _ = waits_tx.send(why.to_owned());
                },
                Duration::from_secs(600),
            );
            let _ = got_tx.send(taken.map(|t| t.is_ok()).map_err(|e| format!("{e:#}")));
        });
        let answer = Duration::from_secs(60);
        let why = waits.recv_timeout(answer).expect("it waits for the turn in progress");
        assert!(why.contains("terminal"), "{why}");
        assert!(got.try_recv().is_err(), "not while the turn is in progress");
        claude.kill().unwrap(); // SIGKILL: no Stop, the marker stays
        assert_eq!(got.recv_timeout(answer).expect("woken by the claude's end"), Ok(true));
        claude.wait().unwrap();
    }
    /// A note replaced while others read it (a run notes its claude child after noting
    /// itself; `busy`, a refused prompt and `stop` read it meanwhile) is always read whole:
    /// the old one or the new one, never nothing (which says "another clawsess run", not who).
    #[test]
    fn a_note_being_replaced_is_read_whole_never_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let file = open_lock_file(&path).unwrap();
        let short = RunHolder::new("telegram:5".into(), 1, 1);
        let long = RunHolder {
            child: Some(2),
            child_start: Some(3),
            note: Some("a fork note, ".repeat(40)),
            ..RunHolder::new("telegram:5".into(), 1, 1)
        };
        let (short, long) = (serde_json::to_vec(&short).unwrap(), serde_json::to_vec(&long).unwrap());
        write_note(&file, &short).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..20_000 {
                    write_note(&file, if i % 2 == 0 { &long } else { &short }).unwrap();
                }
                done.store(true, Ordering::SeqCst);
            });
            let reader = File::open(&path).unwrap();
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads == 0 {
                let holder = read_holder(&reader).expect("the note was read whole");
                assert_eq!(holder.key, "telegram:5");
                reads += 1;
            }
        });
        write_note(&file, b"").unwrap();
        assert!(read_holder(&file).is_none(), "a cleared note is no holder");
    }
}
