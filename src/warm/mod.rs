//! Warm sessions (`run --warm DURATION`): after a turn, its claude stays up, kept by a small
//! [`keeper`] process that outlives `run`, and the session's next `run` hands its prompt to
//! that claude over the keeper's socket (`warm/<id>.sock`) instead of starting Claude Code and
//! reloading the transcript.
//!
//! Never stale: a warm claude has in memory the session as its last turn left it. The run
//! that finishes a warm turn notes, with the session's run lock held, the transcript's size
//! and mtime and the catch-up log's position ([`Fresh`]); the next run (holding the lock
//! again) compares. Anything else written since (a terminal, another bot, a cold run) and the
//! warm claude is ended with SIGKILL (which writes no checkpoint on its stale leaf) and the
//! turn resumes cold. An idle keeper holds no lock.
//!
//! The keeper is a pipe: `run` drives the turn exactly as a live turn, on the channel a
//! [`Conn`] provides (`LiveTurn::run_on`): claude's input lines go over the socket and its
//! output lines come back.
//! Lines with a `"keeper"` field are for the keeper itself:
//!
//! ```text
//! run -> keeper   {"keeper":"turn","idle_ms":N}   a turn begins; the answer is
//! keeper -> run   {"keeper":"ready","claude":PID} (or {"keeper":"gone"}), then claude's lines
//!                 up to its result, then the keeper closes the connection
//! run -> keeper   {"keeper":"terminate"} / {"keeper":"kill"}   signal claude (a stop)
//! any -> keeper   {"keeper":"kill"}   (stale: SIGKILL claude and exit)
//!                 {"keeper":"cool"}   (end: claude's input closed, after the turn if one runs)
//! run -> keeper   {"keeper":"retire"} (after an interrupted turn: claude's input closed)
//! ```

pub mod keeper;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::claude::process::{process_alive, start_time};
use crate::config::{MAX_CLAUDES_ENV, WARM_MAX_ENV};
use crate::ident::SessionId;
use crate::live::{Channel, Ended, Input};
use crate::store::{ClaudeSlot, Fresh, Store, WarmNote, now_ms};
use crate::sys::files::Stamp;
use crate::turn::cap::Slot;
use crate::turn::exclusion::RunLock;

/// How long a keeper may take to answer, or to end its claude and exit.
const KEEPER_WAIT: Duration = Duration::from_secs(15);

/// `CLAWSESS_WARM_MAX`, else the config file's `warm_max`, else 4; a value that
/// is not a number of processes is an error, not the default.
pub fn max_from_env() -> Result<usize> {
    Ok(crate::config::file_or_defaults().warm_max()?.value)
}

/// A warm claude ended before it took the prompt: the turn can run cold instead.
#[derive(Debug)]
pub struct WarmGone;

impl std::fmt::Display for WarmGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the warm claude ended before it took the prompt")
    }
}

impl std::error::Error for WarmGone {}

/// The claude a warm turn needs: a keeper's is used only if it was started the same way.
pub struct Want<'a> {
    /// The turn the warm claude takes (its session, cwd, claude and arguments).
    pub turn: crate::claude::Turn<'a>,
    /// How long to stay warm after this turn; zero: do not start a keeper (a fresh one that
    /// is there is used all the same).
    pub idle: Duration,
}

/// A turn's connection to a keeper whose claude is ready for the prompt: the channel a
/// live turn runs on (`LiveTurn::run_on`), the same lines as to a claude it starts, over the
/// keeper's socket; claude stays up after its result.
pub struct Conn {
    pub keeper_pid: u32,
    pub claude_pid: u32,
    /// The keeper had to start claude for this turn (Claude Code started cold).
    pub started: bool,
    pub input: KeeperInput,
    /// claude's output lines, until the keeper closes the connection.
    pub lines: Receiver<String>,
    /// Watches the keeper while the turn runs.
    watch: Option<SuspendedKeeper>,
}

impl Channel for Conn {
    fn pid(&self) -> u32 {
        self.claude_pid
    }

    fn fresh(&self) -> bool {
        self.started
    }

    fn input(&mut self) -> &mut dyn Input {
        &mut self.input
    }

    fn next_line(&mut self, timeout: Duration) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(timeout)
    }

    /// A warm claude does not exit: it answered if it printed its result. One that died before
    /// it took the prompt (killed while idle, say) is [`WarmGone`]: the turn can run cold
    /// instead. One whose lines ended without a result went with its keeper (or was killed):
    /// said as such, not as a claude that "printed nothing".
    fn finish(&mut self, turn: &Ended) -> Result<(Option<i32>, Option<i32>)> {
        let suspended = self.watch.take().is_some_and(SuspendedKeeper::end);
        if !turn.not_started && !turn.heard && !turn.stopped {
            return Err(WarmGone.into());
        }
        if turn.ok && !turn.result && !turn.stopped {
            let gone = |pid: u32| !crate::sys::pid_alive(pid);
            let what = if suspended {
                format!(
                    "its keeper (pid {}) was suspended (SIGSTOP) mid-turn; it and the warm claude were \
                     ended so that the session is not held forever",
                    self.keeper_pid
                )
            } else if gone(self.keeper_pid) {
                format!("its keeper (pid {}) ended mid-turn, and the warm claude with it", self.keeper_pid)
            } else if gone(self.claude_pid) {
                format!("the warm claude (pid {}) ended mid-turn", self.claude_pid)
            } else {
                format!("the keeper (pid {}) closed the connection mid-turn", self.keeper_pid)
            };
            bail!("{what}, without a result; what it did so far is in the transcript: send the turn again");
        }
        Ok((turn.result.then_some(0), None))
    }
}

/// Watches a warm turn's keeper: one that is suspended (SIGSTOP) relays nothing, and the run
/// would wait forever holding the session. It and its claude are killed then (SIGKILL works
/// on a stopped process; the run knows claude's pid), which ends the turn.
///
/// The watch looks every [`crate::live::TICK`] (the first time one tick in: the run found the
/// keeper alive just before) and wakes at once when told to stop: the run that ends it with
/// its turn does not wait for its next look.
struct SuspendedKeeper {
    /// Dropped to stop the watch.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl SuspendedKeeper {
    /// How long a keeper may stay stopped before it is taken for suspended (a debugger's or
    /// the kernel's brief stops are not).
    const GRACE: Duration = Duration::from_secs(2);

    fn watch(keeper: u32, claude: u32) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut since: Option<Instant> = None;
            loop {
                // The first look after a tick: the run has just found the keeper alive, and a
                // stop only counts after `GRACE`.
                if !matches!(stopped.recv_timeout(crate::live::TICK), Err(RecvTimeoutError::Timeout)) {
                    return false;
                }
                if crate::claude::process::stopped(keeper) {
                    let at = *since.get_or_insert_with(Instant::now);
                    if at.elapsed() >= Self::GRACE {
                        for pid in [claude, keeper] {
                            // SAFETY: kill(2) on this turn's keeper and claude.
                            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                        }
                        return true;
                    }
                } else {
                    since = None;
                }
            }
        });
        SuspendedKeeper { stop: Some(stop), thread: Some(thread) }
    }

    /// Stops watching; whether the keeper was found suspended (and killed).
    fn end(mut self) -> bool {
        drop(self.stop.take());
        self.thread.take().is_some_and(|t| t.join().unwrap_or(false))
    }
}

/// What a warm turn sends: claude's input lines and the keeper's signals.
pub struct KeeperInput {
    stream: Option<UnixStream>,
}

impl Input for KeeperInput {
    fn send(&mut self, message: &Value) {
        crate::live::send_line(&mut self.stream, message)
    }

    fn terminate(&mut self) {
        self.send(&json!({"keeper": "terminate"}))
    }

    fn kill(&mut self) {
        self.send(&json!({"keeper": "kill"}))
    }
}

/// A kept claude that a turn can have: its keeper alive and connected to, its claude
/// started as the turn wants it and fresh ([`kept`]). The keeper is not asked for the turn
/// yet ([`Kept::take`]).
pub struct Kept {
    note: WarmNote,
    stream: UnixStream,
}

impl Kept {
    /// Its last turn found the transcript unforked (`turn::fork`) and nothing wrote to the
    /// session since: this turn need not read the transcript's branches again.
    pub fn unforked(&self) -> bool {
        self.note.fresh.as_ref().is_some_and(|f| f.unforked)
    }

    /// It has been handed the other branch's turns of a forked session ([`Fresh::told`]).
    pub fn told(&self) -> bool {
        self.note.fresh.as_ref().is_some_and(|f| f.told)
    }

    /// It runs without hooks (`claude::hookless`): a turn with a note for the model, which
    /// only the prompt hook hands over, needs another claude.
    pub fn hookless(&self) -> bool {
        self.note.hookless.is_some()
    }

    /// Ends the kept claude (gracefully: the session is as its last turn left it), saying why
    /// on stderr.
    pub fn end(mut self, why: &str) -> Result<()> {
        let lines = end_with(&mut self.stream, "cool")?;
        wait_closed(&lines);
        eprintln!("clawsess: {why}; its warm claude was ended and this turn resumes it cold");
        Ok(())
    }

    /// After the caller may have written to the session (the fork check's correction): the
    /// kept claude if it is still fresh; else it is ended, and why is said on stderr.
    pub fn still_fresh(mut self, store: &Store) -> Result<Option<Kept>> {
        let Some(why) = end_if_stale(store, &self.note, &mut self.stream)? else { return Ok(Some(self)) };
        eprintln!("clawsess: {why}; this turn resumes it cold");
        Ok(None)
    }

    /// Begins the turn on the kept claude: the keeper's answer names it, and the run lock
    /// notes the keeper and the claude in one write.
    pub fn take(self, want: &Want<'_>, lock: &mut RunLock) -> Result<Conn> {
        let idle = want.idle.max(Duration::from_millis(self.note.idle_ms));
        let known = (self.note.claude, self.note.claude_start);
        hello(self.stream, self.note.keeper, idle, lock, Some(known))
    }
}

/// The session's kept claude for this turn, with `lock` (the session's run lock) held: if its
/// keeper is alive, its claude was started the same way as `want` and is fresh. Why one that
/// was there cannot be used is said on stderr (and it is ended, or its note removed).
pub fn kept(store: &Store, want: &Want<'_>) -> Result<Option<Kept>> {
    let Some(note) = store.warm_note(want.turn.session)? else { return Ok(None) };
    match reuse(store, note, want) {
        Ok(kept) => Ok(Some(kept)),
        Err(why) => {
            eprintln!(
                "clawsess: {}; this turn resumes it cold",
                crate::sys::printable(&format!("{why:#}"), false)
            );
            Ok(None)
        }
    }
}

/// A keeper started for this turn when `want.idle` is not zero (its claude resumes the
/// session cold, or starts it), holding the turn's claude slot (`turn::cap`): `slot`, else
/// one `take_slot` takes into it. `None`: a plain cold turn. The session's kept claude, if
/// fresh, is [`kept`]'s.
pub fn take<'s>(
    store: &Store,
    want: &Want<'_>,
    lock: &mut RunLock,
    slot: &mut Option<Slot<'s>>,
    take_slot: impl FnOnce() -> Result<Slot<'s>>,
) -> Result<Option<Conn>> {
    if want.idle.is_zero() {
        return Ok(None);
    }
    let slot = match slot {
        Some(slot) => slot,
        None => slot.insert(take_slot()?),
    };
    make_room(store, want.turn.session)?;
    start(store, want, lock, slot).map(Some)
}

/// The session's keeper, if alive, fresh and started as `want` asks.
fn reuse(store: &Store, note: WarmNote, want: &Want<'_>) -> Result<Kept> {
    let short = note.session.short();
    if !keeper_alive(&note) {
        store.remove_warm(&note.session, Some(note.keeper))?;
        bail!("the keeper of warm session {short} is gone");
    }
    if note.cwd != want.turn.cwd || note.args != want.turn.extra || note.claude_path != want.turn.claude {
        cool(store, &note)?;
        bail!("the warm claude of session {short} was started with another claude, cwd or -A arguments");
    }
    if note.env.as_deref() != Some(env_digest().as_str()) {
        cool(store, &note)?;
        bail!(
            "the warm claude of session {short} was started with another environment (a model, API \
             key, base URL or proxy variable differs); it was ended"
        );
    }
    if let Some(path) = note.hookless.as_deref().and_then(crate::claude::hookless::changed) {
        let path = path.display().to_string();
        cool(store, &note)?;
        bail!(
            "the warm claude of session {short} runs without hooks, and {} changed since it started \
             (a hook may have come); it was ended",
            crate::sys::printable(&path, false)
        );
    }
    let mut stream = match UnixStream::connect(store.warm_socket(&note.session)) {
        Ok(stream) => stream,
        Err(err) => {
            kill_keeper(&note);
            store.remove_warm(&note.session, Some(note.keeper))?;
            bail!("could not reach the keeper of warm session {short}: {err}");
        }
    };
    if let Some(why) = end_if_stale(store, &note, &mut stream)? {
        bail!(why);
    }
    Ok(Kept { note, stream })
}

/// Why the session changed since the kept claude's last turn ([`stale`]), if it did: that
/// claude is ended then (its keeper told on `stream`), and the reason says so.
fn end_if_stale(store: &Store, note: &WarmNote, stream: &mut UnixStream) -> Result<Option<String>> {
    let Some(why) = stale(store, note)? else { return Ok(None) };
    let lines = end_with(stream, "kill")?;
    wait_closed(&lines);
    Ok(Some(format!(
        "session {} changed since its warm claude's last turn ({why}); that claude was ended",
        note.session.short()
    )))
}

/// Starts a keeper for `want.turn.session` (its claude resumes the session, or starts it),
/// handing it `slot`.
fn start(store: &Store, want: &Want<'_>, lock: &mut RunLock, slot: &mut Slot<'_>) -> Result<Conn> {
    store.warm_dir()?;
    let socket = store.warm_socket(want.turn.session);
    // An old keeper's socket and note go first: once there is no note naming it, an old keeper
    // still winding down leaves the new keeper's socket alone (`Store::remove_warm`).
    store.remove_warm(want.turn.session, None)?;
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("could not listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let pid = keeper::spawn(store, want, &listener, Some(slot.id()), lock.has_fork_note())?;
    drop(listener);
    slot.hand_to_keeper(pid, want.turn.session)?;
    // Noted before claude starts: its hooks then see the turn as this run's.
    lock.set_keeper(Some(pid))?;
    let stream = UnixStream::connect(&socket)
        .with_context(|| format!("could not reach the keeper at {}", socket.display()))?;
    hello(stream, pid, want.idle, lock, None)
}

/// Begins a turn on a connected keeper: its answer names the claude that takes the prompt,
/// which the run lock notes with the keeper. `kept`: the claude (pid, start time) of a kept
/// keeper's note (none: the keeper was started for this turn, and starts its claude).
fn hello(
    mut stream: UnixStream,
    keeper: u32,
    idle: Duration,
    lock: &mut RunLock,
    kept: Option<(u32, Option<u64>)>,
) -> Result<Conn> {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    writeln!(stream, "{}", json!({"keeper": "turn", "idle_ms": idle_ms})).context("keeper hung up")?;
    let lines = crate::live::lines_of(stream.try_clone()?);
    let answer = lines.recv_timeout(KEEPER_WAIT * 4).context("the keeper did not answer")?;
    let answer: Value = serde_json::from_str(&answer).context("the keeper's answer is not JSON")?;
    let Some(claude) = answer.get("claude").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok())
    else {
        let why = answer.get("why").and_then(Value::as_str).unwrap_or("its claude has exited");
        bail!("the warm claude could not take the turn: {why}");
    };
    // The kept claude's start time is in its note: no need to read it again.
    let claude_start = match kept {
        Some((pid, start)) if pid == claude && start.is_some() => start,
        _ => start_time(claude),
    };
    lock.set_warm_claude(keeper, claude, claude_start)?;
    Ok(Conn {
        keeper_pid: keeper,
        claude_pid: claude,
        started: kept.is_none(),
        input: KeeperInput { stream: Some(stream) },
        lines,
        watch: Some(SuspendedKeeper::watch(keeper, claude)),
    })
}

/// What the run knows of the session as its warm turn left it (each `None`: [`after_turn`]
/// reads it).
pub struct TurnEnd {
    /// The session's transcript (else its record is read).
    pub transcript: Option<PathBuf>,
    /// The turn log's `next_seq` once the turn was logged (else the log is read).
    pub next_seq: Option<u64>,
    /// The transcript had no other branch before the turn ([`Fresh::unforked`]).
    pub unforked: bool,
    /// The claude has been handed the other branch's turns ([`Fresh::told`]).
    pub told: bool,
}

/// After a warm turn (the run lock still held): the session as the turn left it, so that
/// the next run can tell whether anything else wrote to it since.
pub fn after_turn(
    store: &Store,
    session: &SessionId,
    conn: &Conn,
    idle: Duration,
    end: TurnEnd,
) -> Result<()> {
    let Some(mut note) = store.warm_note(session)?.filter(|n| n.keeper == conn.keeper_pid) else {
        return Ok(());
    };
    let transcript = match end.transcript {
        Some(path) => path,
        None => store.session(session)?.map(|r| r.transcript).context("the session has no record")?,
    };
    let (size, mtime_ns) = transcript_stamp(&transcript).context("the transcript is gone")?;
    let next_seq = match end.next_seq {
        Some(seq) => seq,
        None => log_position(store, session)?,
    };
    note.fresh = Some(Fresh { transcript, size, mtime_ns, next_seq, unforked: end.unforked, told: end.told });
    note.last_used = now_ms();
    note.turns += 1;
    if !idle.is_zero() {
        note.idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    }
    store.put_warm_note(&note)
}

/// Why a keeper's claude is behind the session, if it is: what its last turn left changed.
pub fn stale(store: &Store, note: &WarmNote) -> Result<Option<String>> {
    let Some(fresh) = &note.fresh else {
        return Ok(Some("its first turn did not finish".into()));
    };
    let why = match transcript_stamp(&fresh.transcript) {
        None => Some("the transcript is gone".into()),
        Some((size, mtime)) if (size, mtime) != (fresh.size, fresh.mtime_ns) => {
            Some(format!("the transcript was written: {} bytes, was {}", size, fresh.size))
        }
        Some(_) if log_position(store, &note.session)? != fresh.next_seq => {
            Some("another surface finished a turn".into())
        }
        Some(_) => None,
    };
    Ok(why)
}

/// A file's size and mtime (ns).
fn transcript_stamp(path: &Path) -> Option<(u64, u64)> {
    let stamp = Stamp::of(path);
    Some((stamp.len?, stamp.mtime_ns?))
}

/// The catch-up log's next seq (0 without a log).
fn log_position(store: &Store, id: &SessionId) -> Result<u64> {
    Ok(store.turn_log(id)?.map_or(0, |log| log.next_seq))
}

pub fn keeper_alive(note: &WarmNote) -> bool {
    process_alive(note.keeper, note.keeper_start)
}

/// Whether the claude a keeper keeps is alive.
pub fn claude_alive(note: &WarmNote) -> bool {
    process_alive(note.claude, note.claude_start)
}

/// The live keepers (their notes), least recently used first; the notes and sockets of dead
/// ones are removed. `sweep` false: only read.
pub fn keepers(store: &Store, sweep: bool) -> Result<Vec<WarmNote>> {
    let mut live = Vec::new();
    for note in store.warm_notes()? {
        if keeper_alive(&note) {
            live.push(note);
        } else if sweep {
            store.remove_warm(&note.session, Some(note.keeper))?;
        }
    }
    live.sort_by_key(|n| n.last_used);
    Ok(live)
}

/// Sockets in `warm/` that no note names (their keeper died between bind and note).
pub fn orphan_sockets(store: &Store) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(store.dir().join("warm")) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sock"))
        .filter(|p| {
            let id = p.file_stem().and_then(|s| s.to_str()).and_then(|s| SessionId::parse(s).ok());
            id.is_none_or(|id| store.warm_note(&id).ok().flatten().is_none_or(|n| !keeper_alive(&n)))
        })
        .collect()
}

/// Makes room for one more keeper: at most `CLAWSESS_WARM_MAX`, the least recently used end
/// first.
fn make_room(store: &Store, for_session: &SessionId) -> Result<()> {
    let max = max_from_env()?;
    let live: Vec<WarmNote> =
        keepers(store, true)?.into_iter().filter(|n| n.session != *for_session).collect();
    let excess = (live.len() + 1).saturating_sub(max.max(1));
    for note in live.iter().take(excess) {
        eprintln!(
            "clawsess: ended the warm claude of session {} (least recently used; {WARM_MAX_ENV}={max})",
            note.session.short()
        );
        cool(store, note)?;
    }
    Ok(())
}

/// The least recently used warm claude among `live` whose keeper waits idle: no turn holds
/// its session.
fn idle_keeper(store: &Store, live: &[ClaudeSlot]) -> Option<WarmNote> {
    let mut idle: Vec<WarmNote> = live
        .iter()
        .filter_map(|slot| slot.keeper_of.as_ref())
        .filter_map(|session| store.warm_note(session).ok().flatten())
        .filter(keeper_alive)
        .filter(|note| crate::turn::exclusion::run_holder(store, &note.session).is_none())
        .collect();
    idle.sort_by_key(|n| n.last_used);
    idle.into_iter().next()
}

/// For the claude cap (`turn::cap::take`): ends the least recently used idle warm claude
/// among the slots `live` that `ended` does not name yet (and adds it there), and says so;
/// false when none is idle.
pub fn end_idle(store: &Store, live: &[ClaudeSlot], ended: &mut Vec<u32>, cap: usize) -> Result<bool> {
    let Some(note) = idle_keeper(store, live).filter(|n| !ended.contains(&n.keeper)) else {
        return Ok(false);
    };
    ended.push(note.keeper);
    eprintln!(
        "clawsess: ended the warm claude of session {} (idle; a turn waits for one of the {cap} \
         claudes {MAX_CLAUDES_ENV} allows)",
        note.session.short()
    );
    cool(store, &note)?;
    Ok(true)
}

/// Ends a keeper now: its claude's input is closed (SIGKILL if it is behind the session), or,
/// in a turn, once the turn is over. Returns once the keeper is gone (or after a while).
pub fn cool(store: &Store, note: &WarmNote) -> Result<()> {
    match UnixStream::connect(store.warm_socket(&note.session)) {
        Ok(mut stream) => {
            let lines = end_with(&mut stream, "cool")?;
            wait_closed(&lines);
        }
        Err(_) => {
            kill_keeper(note);
            store.remove_warm(&note.session, Some(note.keeper))?;
        }
    }
    Ok(())
}

/// Ends the warm claude of `session` after an interrupted turn, with the session's run lock
/// held (so it is not stale): Claude Code 2.1.328 kept open does not take its next prompt
/// while the request the interrupt cut off is still being answered, so the next turn starts
/// a claude of its own, as after a cold turn's stop.
pub fn retire(store: &Store, session: &SessionId) -> Result<()> {
    let mut stream = UnixStream::connect(store.warm_socket(session)).context("could not reach the keeper")?;
    let lines = end_with(&mut stream, "retire")?;
    wait_closed(&lines);
    Ok(())
}

/// Asks a keeper to end (`how`: `cool`, `kill` or `retire`); its lines until it closes.
fn end_with(stream: &mut UnixStream, how: &str) -> Result<Receiver<String>> {
    writeln!(stream, "{}", json!({ "keeper": how })).context("the keeper hung up")?;
    Ok(crate::live::lines_of(stream.try_clone()?))
}

/// Waits (a while) for a keeper to close a connection: it does once it has ended, or once an
/// `ending` keeper is told (it ends after its turn).
fn wait_closed(lines: &Receiver<String>) {
    let deadline = Instant::now() + KEEPER_WAIT;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("\"ending\"") {
            return;
        }
    }
}

/// SIGKILL to a keeper that cannot be reached (its claude dies with it: PDEATHSIG).
fn kill_keeper(note: &WarmNote) {
    if keeper_alive(note) {
        // SAFETY: kill(2) on a live process whose start time matches the note's keeper.
        unsafe { libc::kill(note.keeper as libc::pid_t, libc::SIGKILL) };
    }
}

/// Whether an environment variable can change what a claude does for a turn: which model and
/// API it asks and how (Anthropic, Bedrock, Vertex, a gateway), through which proxy and
/// certificates, and Claude Code's own settings. clawsess's per-run variables are not.
fn claude_relevant(name: &str) -> bool {
    const PREFIXES: [&str; 8] =
        ["ANTHROPIC_", "CLAUDE_", "AWS_", "GOOGLE_", "VERTEX_", "CLOUD_ML_", "DISABLE_", "OTEL_"];
    const NAMES: [&str; 8] = [
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "MAX_THINKING_TOKENS",
        "MAX_MCP_OUTPUT_TOKENS",
        "API_TIMEOUT_MS",
        "BASH_DEFAULT_TIMEOUT_MS",
        "HOME",
    ];
    // Set per process by Claude Code or per run by clawsess: not the turn's environment.
    const PER_PROCESS: [&str; 5] =
        ["CLAUDE_CODE_SESSION_ID", "CLAUDE_ENV_FILE", "CLAUDE_PID", "CLAUDE_PROJECT_DIR", "CLAUDECODE"];
    if PER_PROCESS.contains(&name) {
        return false;
    }
    let upper = name.to_ascii_uppercase();
    PREFIXES.iter().any(|p| name.starts_with(p))
        || NAMES.contains(&name)
        || upper.ends_with("_PROXY")
        || upper == "NO_PROXY"
}

/// A digest of this process's claude-relevant environment (see [`claude_relevant`]): equal
/// for two runs whose claudes would run alike. A digest, so the note holds no API key.
pub fn env_digest() -> String {
    use std::hash::{Hash, Hasher};
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| claude_relevant(k))
        .collect();
    vars.sort();
    // SipHash with fixed keys: stable for one clawsess binary, which is all a note needs.
    let mut hasher = std::hash::DefaultHasher::new();
    vars.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The note a new keeper writes once its claude runs.
pub(crate) fn new_note(want: &keeper::Args, claude: u32, hookless: Option<Vec<Stamp>>) -> WarmNote {
    let me = std::process::id();
    let now = now_ms();
    WarmNote {
        v: crate::store::FORMAT,
        session: want.session.clone(),
        keeper: me,
        keeper_start: start_time(me),
        claude,
        claude_start: start_time(claude),
        claude_path: want.claude.clone(),
        cwd: want.cwd.clone(),
        args: want.extra.clone(),
        env: Some(env_digest()),
        key: want.key.clone(),
        started_at: now,
        last_used: now,
        idle_ms: u64::try_from(want.idle.as_millis()).unwrap_or(u64::MAX),
        turns: 0,
        fresh: None,
        hookless,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::{COMMAND_LOCK_WAIT, SessionRecord, Starter};

    #[test]
    fn a_note_from_before_unforked_was_kept_has_its_transcript_checked() {
        let fresh: Fresh = serde_json::from_value(serde_json::json!(
            {"transcript": "/t.jsonl", "size": 1, "mtime_ns": 2, "next_seq": 3}
        ))
        .unwrap();
        assert!(!fresh.unforked);
    }

    #[test]
    fn a_warm_claude_is_stale_once_the_transcript_or_the_turn_log_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let id = SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap();
        let transcript = dir.path().join("t.jsonl");
        std::fs::write(&transcript, "{}\n").unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&SessionRecord::new(
            id.clone(),
            dir.path().into(),
            transcript.clone(),
            Starter::Run,
            0,
        ))
        .unwrap();
        drop(tx);
        let args = keeper::Args {
            session: id.clone(),
            claude: "claude".into(),
            cwd: dir.path().into(),
            key: "k".into(),
            extra: Vec::new(),
            idle: Duration::from_secs(60),
            resume: true,
            slot: None,
            keep_hooks: false,
        };
        let mut note = new_note(&args, std::process::id(), None);
        assert!(stale(&store, &note).unwrap().is_some(), "no turn finished yet");
        let (size, mtime_ns) = transcript_stamp(&transcript).unwrap();
        note.fresh = Some(Fresh {
            transcript: transcript.clone(),
            size,
            mtime_ns,
            next_seq: 0,
            unforked: true,
            told: false,
        });
        assert_eq!(stale(&store, &note).unwrap(), None);
        // Another surface finished a turn (the transcript left as it was).
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        crate::turn::catchup::log_turn(&tx, &id, "terminal", Some(1), "p", "r").unwrap();
        drop(tx);
        assert!(stale(&store, &note).unwrap().unwrap().contains("another surface"));
        note.fresh.as_mut().unwrap().next_seq = log_position(&store, &id).unwrap();
        assert_eq!(stale(&store, &note).unwrap(), None);
        // A write that no hook logged (the same size: the mtime tells).
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&transcript).unwrap().set_modified(later).unwrap();
        assert!(stale(&store, &note).unwrap().unwrap().contains("transcript was written"));
    }
}
