//! One turn of a key's session, as `clawsess run` takes it and a Rust bot can: the session
//! it goes to (`turn::route`), who may answer (`turn::exclusion`: the key's lock, the
//! session's run lock, the queue), the claude that answers (a kept one, `crate::warm`, or
//! one started for it; both driven by `crate::live`), and what the turn records
//! (`turn::record`). `--steer` and `--interrupt` come first. Events go to a [`Sink`] as
//! they happen; what is left to print is the [`Done`] it returns, or the error
//! ([`failure_object`]).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value};

use crate::claude::{self, ClaudeResult};
use crate::config::ConfigFile;
use crate::config::settings::RunConfig;
use crate::exit;
use crate::ident::{Key, SessionId};
use crate::live::{self, Event, Sink, steer::Steered};
use crate::resolve::find_session;
use crate::store::{Line, Store};
use crate::turn::exclusion::{KeyLock, RunLock};
use crate::turn::fork::{self, Reconciled};
use crate::turn::record::{self, RunTurn};
use crate::turn::route::{self, Target};
use crate::warm;

/// How long `--interrupt` waits for the stopped run to let go of the session.
const INTERRUPT_WAIT: Duration = Duration::from_secs(20);

/// What the caller asks of a turn: `clawsess run`'s arguments, the prompt read and the
/// pictures loaded.
pub struct Request<'a> {
    /// The config file (`crate::config::file`), read once by the caller.
    pub config: &'a ConfigFile,
    pub key: &'a Key,
    pub prompt: &'a str,
    /// Image blocks sent before the prompt (`live::image::image_block`).
    pub images: &'a [Value],
    pub claude: &'a Path,
    /// `--session`: this session (id, prefix or name) instead of the key's.
    pub session: Option<&'a str>,
    /// `--new`: a new session, made the key's own.
    pub new: bool,
    /// `--cwd`: the working directory of a new session.
    pub cwd: Option<&'a Path>,
    /// `--idle-reset`: instead of the config's reset policies.
    pub idle_reset: Option<Duration>,
    /// How long to wait for the key's earlier runs and the session's other turns.
    pub wait: Duration,
    /// `-A`: arguments passed on to claude (after the settings' flags).
    pub claude_args: &'a [String],
    /// `--warm`: how long claude stays up after the turn (else the settings').
    pub warm: Option<Duration>,
    /// `--ask`: tool calls that need permission are put to the caller, for this long.
    pub ask: Option<Duration>,
    /// Send the prompt as written (no slash command): not `--allow-slash`.
    pub verbatim: bool,
    /// How long a claude started for the turn may take to print anything.
    pub start_timeout: Duration,
    /// `--steer`: into the turn in progress, when clawsess drives it.
    pub steer: bool,
    /// `--interrupt`: stop the turn in progress and go next.
    pub interrupt: bool,
}

/// A turn that ended with claude's result (answered, failed or interrupted).
pub struct Done {
    /// claude's result fields (with `interrupted`, and `warm` when a warm claude was involved).
    pub fields: Map<String, Value>,
    pub session: SessionId,
    /// claude failed the turn, or a hook refused the prompt.
    pub failed: bool,
    pub interrupted: bool,
    /// Claude answered, but the turn could not be recorded.
    pub record_error: Option<String>,
    /// The turn started a new session.
    pub new_session: bool,
    /// The key's session this turn replaced (`--new`, or a reset policy), and why a policy did.
    pub replaced: Option<(SessionId, Option<String>)>,
    /// `--steer`: the key of the run whose turn took the message (it printed its events).
    pub steered_into: Option<String>,
    /// `run`'s exit status.
    pub code: u8,
}

impl Done {
    /// The reply text.
    pub fn text(&self) -> &str {
        self.fields.get("result").and_then(Value::as_str).unwrap_or("")
    }

    /// The result object `--json` prints (`stream` false: as `claude -p --output-format json`
    /// prints it) and `--stream` ends with: claude's fields and ours. See docs/JSON.md.
    pub fn object(&self, key: &Key, stream: bool) -> Value {
        let mut fields = self.fields.clone();
        if !stream {
            // As `claude -p --output-format json` prints it: the stream-json result adds these.
            if !self.interrupted {
                fields.remove("interrupted");
            }
            fields.remove("model_usage_since_last_result");
        }
        fields.insert("session_id".into(), Value::String(self.session.to_string()));
        fields.insert("key".into(), Value::String(key.to_string()));
        if let Some(into) = &self.steered_into {
            fields.insert("steered_into".into(), Value::String(into.clone()));
            fields.insert("busy".into(), Value::Bool(false));
            return Value::Object(fields);
        }
        fields.insert("is_error".into(), Value::Bool(self.failed));
        fields.insert("busy".into(), Value::Bool(false));
        fields.entry("result").or_insert(Value::String(String::new()));
        if let Some(err) = &self.record_error {
            fields.insert("record_error".into(), Value::String(err.clone()));
        }
        if let Some((old, why)) = &self.replaced {
            fields.insert("replaced_session".into(), Value::String(old.to_string()));
            if let Some(why) = why {
                fields.insert("reset".into(), serde_json::json!({"from": old.as_str(), "why": why}));
            }
        }
        fields.insert("new_session".into(), Value::Bool(self.new_session));
        Value::Object(fields)
    }
}

/// The result object of a turn that failed with `err` before claude's result: the same
/// shape as [`Done::object`]'s, so a bot reads one (see [`failure_object`]).
pub fn failure(err: &anyhow::Error, key: Option<&str>) -> Value {
    let busy = err.downcast_ref::<exit::Busy>().is_some();
    failure_object(&format!("{err:#}"), key, busy)
}

/// The result object of a run that failed (`error`; `busy`: another surface held the session
/// past the wait), whether the turn or its arguments did: `key`, `is_error`, `busy` and
/// `result` as a turn's result object has them.
pub fn failure_object(error: &str, key: Option<&str>, busy: bool) -> Value {
    serde_json::json!({
        "error": error,
        "key": key.unwrap_or(crate::ident::DEFAULT_KEY),
        "is_error": true,
        "busy": busy,
        "result": "",
    })
}

/// Runs one turn; see the module doc.
pub fn turn(store: &Store, request: &Request<'_>, sink: &mut dyn Sink) -> Result<Done> {
    let key = request.key;
    // The config file and K's settings (`clawsess set`): its reset policy, cwd, claude's flags.
    let config = RunConfig::for_key(store, request.config, key, request.idle_reset)?;
    let deadline = Instant::now() + request.wait;
    if request.steer
        && let Some(done) = steer_into_turn(store, request, &config, sink)?
    {
        return Ok(done);
    }

    // --interrupt: the turn in progress is stopped and this one goes next, ahead of the
    // key's queue too (a queued run of the key would hold the key lock, waiting for us).
    let mut claim = if request.interrupt { interrupt_turn(store, request, &config, sink)? } else { None };
    let route_request = route::Request {
        session: request.session,
        new: request.new,
        cwd: request.cwd.or(config.cwd.as_deref()),
        reset: config.policy.clone(),
    };
    let waited = Wait { wait: request.wait, deadline, key_lock: claim.is_none() };
    let Taken { key_lock, target, mut lock } =
        take_session(store, key, &route_request, &waited, |position, behind| {
            sink.event(&Event::Queued { position, behind, cap: None, held_by: None });
        })?;
    let settings = config.for_session(store, &target.id, request.claude_args, request.warm)?;
    let warm_for = settings.warm;
    drop(claim.take()); // it holds the session now
    let claude_turn = claude::Turn {
        claude: request.claude,
        session: &target.id,
        resume: target.resume,
        cwd: &target.cwd,
        key: key.as_str(),
        extra: &settings.claude_args,
    };
    let want = warm::Want { turn: claude_turn, idle: warm_for };
    // The session's kept claude, if it is fresh: the transcript as its last turn left it. That
    // turn checked the transcript's branches before it; if it found one branch, this turn need
    // not read them again (`fork` stays `None` until a cold claude would take the turn).
    let mut kept = if target.resume { warm::kept(store, &want)? } else { None };
    let mut fork = match &kept {
        Some(kept) if kept.unforked() => None,
        _ => Some(check_fork(store, &target, &mut lock)?),
    };
    let told_before = kept.as_ref().is_some_and(warm::Kept::told);
    let mut withheld = None;
    if let Some(k) = kept.take() {
        kept = fit_kept(store, &target, &mut lock, k, &mut fork, &mut withheld)?;
    }
    let mut pending = record::PendingRunTurn::new(store, &mut lock, &target, key, request.prompt)?;
    let live_turn = live::LiveTurn {
        turn: claude_turn,
        store,
        verbatim: request.verbatim,
        images: request.images,
        ask: request.ask,
        start_timeout: request.start_timeout,
    };
    // The claude this turn starts, if it starts one, counts against the cap (`turn::cap`).
    let cap = crate::turn::cap::max_claudes()?;
    let mut slot = None;
    let mut conn = match kept.map(|kept| kept.take(&want, &mut lock)) {
        Some(Ok(conn)) => Some(conn),
        Some(Err(why)) => {
            eprintln!(
                "clawsess: {}; this turn resumes it cold",
                crate::sys::printable(&format!("{why:#}"), false)
            );
            None
        }
        None => None,
    };
    if conn.is_none() {
        ensure_fork_checked(store, &target, &mut lock, &mut fork, &mut withheld)?;
        conn = warm_conn(store, &want, &mut lock, &mut slot, || {
            take_slot(store, request, cap, deadline, &mut *sink)
        })?;
    }
    let mut outcome = None;
    if let Some(c) = &mut conn {
        match live_turn.run_on(c, request.prompt, sink) {
            Ok(done) => outcome = Some(done),
            Err(err) if err.downcast_ref::<warm::WarmGone>().is_some() => {
                eprintln!("clawsess: {err}; this turn resumes the session cold");
                // Its keeper is gone or going: a cold claude (with --warm, a keeper started for
                // it) takes the turn, after the fork check if it was skipped.
                lock.set_keeper(None)?;
                ensure_fork_checked(store, &target, &mut lock, &mut fork, &mut withheld)?;
                conn = warm_conn(store, &want, &mut lock, &mut slot, || {
                    take_slot(store, request, cap, deadline, &mut *sink)
                })?;
                if let Some(c) = &mut conn {
                    outcome = Some(live_turn.run_on(c, request.prompt, sink)?);
                }
            }
            Err(err) => return Err(err),
        }
    }
    if let (Some(slot), Some(c)) = (&mut slot, &conn) {
        slot.add_kept(c.claude_pid)?;
    }
    // Every turn goes through the one stream-json driver, warm or cold, streamed or not:
    // that is what lets `clawsess stop` interrupt it cleanly (see docs/STOP.md).
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => {
            ensure_fork_checked(store, &target, &mut lock, &mut fork, &mut withheld)?;
            let slot = match &mut slot {
                Some(slot) => slot,
                None => slot.insert(take_slot(store, request, cap, deadline, &mut *sink)?),
            };
            let started = |pid| {
                lock.set_child(pid)?;
                slot.add(pid)
            };
            live_turn.run(request.prompt, started, sink)?
        }
    };
    let result = outcome.result()?;
    let interrupted = result.fields.get("interrupted") == Some(&Value::Bool(true));
    let failed = outcome.code != Some(0) || result.is_error();
    let session = match result.session_id().map(SessionId::parse).transpose() {
        Ok(reported) => reported.unwrap_or_else(|| target.id.clone()),
        Err(err) => return Err(err.context("claude reported a session_id that is not a UUID")),
    };
    // Claude has answered: a failure to record the turn must not swallow the reply.
    // An interrupted turn is in the transcript all the same: the next turn continues it.
    let skipped = Reconciled::default();
    let mut next_seq = None;
    let record_error = if failed && !interrupted {
        pending.failed(result.result());
        None
    } else {
        let recorded = RunTurn {
            key,
            target: &target,
            session: &session,
            new: request.new,
            explicit: request.session.is_some(),
            prompt: request.prompt,
            reply: result.result(),
            fork: fork.as_ref().unwrap_or(&skipped),
            token: None,
        };
        pending.record(&recorded).map(|seq| next_seq = Some(seq)).err()
    };
    if let Some(err) = &record_error {
        eprintln!(
            "clawsess: claude answered, but recording the turn failed: {err:#}; \
             {key} may not come back to this session; {}",
            record::UNLOGGED
        );
    }
    if conn.is_some()
        && interrupted
        && let Err(err) = warm::retire(store, &target.id)
    {
        eprintln!("clawsess: could not end the interrupted warm claude: {err:#}");
    } else if let Some(conn) = &conn
        && !interrupted
        && let Err(err) = warm::after_turn(
            store,
            &session,
            conn,
            warm_for,
            warm::TurnEnd {
                transcript: target.transcript.clone().filter(|_| session == target.id),
                next_seq,
                // Skipped: the kept claude's last turn found it unforked, and nothing wrote since.
                unforked: !target.resume || fork.as_ref().is_none_or(|f| f.unforked),
                told: (told_before && !conn.started) || fork.as_ref().is_some_and(|f| f.note.is_some()),
            },
        )
    {
        // The next run finds the warm claude stale and resumes cold: slower, not wrong.
        eprintln!("clawsess: could not note the warm session: {err:#}");
    }
    drop(slot);
    drop(lock);
    drop(key_lock);
    let ClaudeResult { mut fields } = result;
    if let Some(conn) = &conn {
        // Whether a warm claude took the turn (`run --warm`): absent when none was involved.
        fields.insert("warm".into(), Value::Bool(!conn.started));
    }
    warn_without_hooks(store);
    let new_session = !target.resume;
    if new_session && !request.new && !failed {
        // Nothing attached, or a mistyped key: not a surprise to find out later.
        eprintln!(
            "clawsess: new session {session} for key {key} in {}",
            crate::sys::printable(&crate::sys::tilde(&target.cwd), false)
        );
    }
    Ok(Done {
        fields,
        session,
        failed,
        interrupted,
        record_error: record_error.map(|err| format!("{err:#}")),
        new_session,
        replaced: target.replaced.clone().map(|old| (old, target.reset_why.clone())),
        steered_into: None,
        code: if interrupted { live::INTERRUPTED } else { outcome.exit_code(failed) },
    })
}

/// How long a turn waits for its key and its session.
pub struct Wait {
    /// The wait asked for (0: none; a run that may wait says so on stderr).
    pub wait: Duration,
    /// When it gives up (busy).
    pub deadline: Instant,
    /// Wait for the key's lock first (not with `--interrupt`'s claim on the next turn).
    pub key_lock: bool,
}

/// A session held for a key's turn: its key's lock (runs of a key take turns), the session
/// it goes to, and that session's run lock.
pub struct Taken {
    pub key_lock: Option<KeyLock>,
    pub target: Target,
    pub lock: RunLock,
}

/// Waits in line for `key`'s turn (first come, first served among every surface, see
/// `turn::queue`): for the key's lock, then for the session `route_request` routes it to;
/// `queued(position, behind)` hears each new place in the session's queue.
pub fn take_session(
    store: &Store,
    key: &Key,
    route_request: &route::Request<'_>,
    wait: &Wait,
    mut queued: impl FnMut(usize, String),
) -> Result<Taken> {
    // Its place in line, taken now: kept while it waits for the key's lock and then for the
    // session, so that it is served first come, first served among every waiter.
    let in_line = crate::turn::queue::Place::now();
    let guess = std::cell::OnceCell::new();
    let mut early_ticket = None;
    let key_lock = if wait.key_lock {
        Some(KeyLock::acquire(store, key, &in_line, wait.deadline, || {
            // While it waits for its key, it holds its place in the queue of the session the
            // key goes to now (a turn of another surface that comes later waits).
            let id = guess.get_or_init(|| {
                crate::turn::route::current(store, key, route_request.session, route_request.new)
            });
            early_ticket = id.as_ref().and_then(|id| {
                crate::turn::queue::Ticket::join_as(store, Line::Session(id), key.as_str(), &in_line)
            });
            if !wait.wait.is_zero() {
                eprintln!(
                    "clawsess: another run for {key} is in progress; waiting up to {:.0} s",
                    wait.wait.as_secs_f64()
                );
            }
        })?)
    } else {
        None
    };
    let mut target = route::route(store, key, route_request)?;
    let left = wait.deadline.saturating_duration_since(Instant::now());
    let mut place = None;
    let mut waited = false;
    let mut on_wait = |_: &str| {
        waited = true;
        let now = crate::turn::exclusion::queue_position(store, &target.id);
        if now.is_some() && now != place {
            place.clone_from(&now);
            let (position, behind) = now.unwrap_or_default();
            queued(position, behind);
        }
    };
    let lock = RunLock::acquire_with(store, &target.id, key.as_str(), left, Some(&in_line), &mut on_wait)?;
    drop(early_ticket);
    if waited && target.resume {
        // The record was read before another turn ran: the transcript it names, read again.
        target.transcript = store.session(&target.id)?.map(|rec| rec.transcript);
    }
    Ok(Taken { key_lock, target, lock })
}

/// A claude slot for this turn (`turn::cap`), waiting in line until `deadline`: each place in
/// line is a `queued` event; a run that may wait says once on stderr that it does.
fn take_slot<'s>(
    store: &'s Store,
    request: &Request<'_>,
    cap: usize,
    deadline: Instant,
    sink: &mut dyn Sink,
) -> Result<crate::turn::cap::Slot<'s>> {
    let mut said = false;
    let mut ended = Vec::new();
    let make_room = |live: &[crate::store::ClaudeSlot]| warm::end_idle(store, live, &mut ended, cap);
    crate::turn::cap::take(store, request.key.as_str(), cap, deadline, make_room, |waiting| {
        let held_by = Some(crate::turn::cap::holders(store));
        sink.event(&Event::Queued {
            position: waiting.position,
            behind: "cap".into(),
            cap: Some(cap),
            held_by,
        });
        if !said && !request.wait.is_zero() {
            eprintln!(
                "clawsess: {} claude processes are running ({}), the most clawsess starts at once \
                 ({}={cap}); waiting for one to end (place {} in line)",
                waiting.running,
                crate::turn::cap::held_by(store),
                crate::config::MAX_CLAUDES_ENV,
                waiting.position
            );
            said = true;
        }
    })
}

/// The warm claude for this turn, if any (see `warm::take`); one that cannot be had is said
/// on stderr, and the turn runs cold. Waiting for a claude slot past the deadline is an error.
fn warm_conn<'s>(
    store: &Store,
    want: &warm::Want<'_>,
    lock: &mut RunLock,
    slot: &mut Option<crate::turn::cap::Slot<'s>>,
    take_slot: impl FnOnce() -> Result<crate::turn::cap::Slot<'s>>,
) -> Result<Option<warm::Conn>> {
    match warm::take(store, want, lock, slot, take_slot) {
        Ok(conn) => Ok(conn),
        Err(err) if err.downcast_ref::<exit::Busy>().is_some() => Err(err),
        Err(err) => {
            lock.set_keeper(None)?;
            let err = format!("{err:#}");
            eprintln!(
                "clawsess: no warm claude ({}); this turn runs cold",
                crate::sys::printable(&err, false)
            );
            Ok(None)
        }
    }
}

/// `--steer`: offers the message to the turn in progress on the key's session (see
/// `crate::live::steer`). `Some`: it went into that turn, whose events went to `sink` and
/// whose result this is; `None`: it runs as a turn of its own (the sink was told why).
fn steer_into_turn(
    store: &Store,
    request: &Request<'_>,
    config: &RunConfig,
    sink: &mut dyn Sink,
) -> Result<Option<Done>> {
    let Some(session) = session_in_progress(store, request, config)? else {
        let why = "the key has no session yet; the message runs as a turn now";
        sink.event(&Event::Steer { into: "queue".into(), key: None, why: Some(why.into()) });
        return Ok(None);
    };
    let mut each = |line: &Value| sink.line(line);
    match live::steer::offer(store, &session, request.prompt, request.images, &mut each)? {
        Steered::Queue(why) => {
            eprintln!("clawsess: not steered: {}", crate::sys::printable(&why, false));
            sink.event(&Event::Steer { into: "queue".into(), key: None, why: Some(why) });
            Ok(None)
        }
        Steered::Followed { into, result } => {
            let interrupted = result.get("interrupted") == Some(&Value::Bool(true));
            let failed = result.get("is_error") == Some(&Value::Bool(true));
            let code = if interrupted {
                live::INTERRUPTED
            } else if failed {
                exit::FAILURE
            } else {
                exit::OK
            };
            Ok(Some(Done {
                fields: result,
                session,
                failed,
                interrupted,
                record_error: None,
                new_session: false,
                replaced: None,
                steered_into: Some(into),
                code,
            }))
        }
    }
}

/// The session a turn in progress is on, for `--steer` and `--interrupt`: the one a run of
/// this key answers now, else `--session`, else the key's session (none for a key without one).
fn session_in_progress(
    store: &Store,
    request: &Request<'_>,
    config: &RunConfig,
) -> Result<Option<SessionId>> {
    if let Some(run) = live::stop::running_for_key(store, request.key.as_str()).into_iter().next() {
        return Ok(Some(run.session));
    }
    if let Some(arg) = request.session {
        return find_session(store, arg).map(Some);
    }
    let route_request = route::Request {
        session: None,
        new: false,
        cwd: request.cwd.or(config.cwd.as_deref()),
        reset: config.policy.clone(),
    };
    let target = route::route(store, request.key, &route_request)?;
    Ok(target.resume.then_some(target.id))
}

/// `--interrupt`'s claim on the next turn of a session, dropped once the run holds the
/// session (or gives up).
struct NextTurnClaim<'a> {
    store: &'a Store,
    session: SessionId,
}

impl Drop for NextTurnClaim<'_> {
    fn drop(&mut self) {
        let _ = self.store.clear_next_turn(&self.session);
    }
}

/// `--interrupt`: claims the next turn on the key's session and stops the run turn in
/// progress there. `Some(claim)`: this run goes next (it skips the key's queue: it holds the
/// claim).
fn interrupt_turn<'a>(
    store: &'a Store,
    request: &Request<'_>,
    config: &RunConfig,
    sink: &mut dyn Sink,
) -> Result<Option<NextTurnClaim<'a>>> {
    let Some(session) = session_in_progress(store, request, config)? else {
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
    let why = match crate::turn::exclusion::busy_marker(store, &session)? {
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

/// Says on stderr when Claude Code has no clawsess hooks (no `clawsess install`, no enabled
/// plugin in settings.json) and no terminal ever ran them (no session a person started is
/// recorded: a `claude --plugin-dir` terminal leaves no trace in settings.json but does): a
/// terminal on the session would then neither wait for a run's turn nor hear of it.
fn warn_without_hooks(store: &Store) {
    let Ok(config) = claude::config_dir(None) else { return };
    if !claude::settings::HookSource::of(&config).none() {
        return;
    }
    let person_seen = (|| -> Result<bool> {
        for (_, id) in store.sessions_by_mtime()?.into_iter().take(200) {
            if store.session(&id)?.is_some_and(|rec| rec.started_by == crate::store::Starter::Person) {
                return Ok(true);
            }
        }
        Ok(false)
    })();
    if person_seen.unwrap_or(true) {
        return;
    }
    eprintln!(
        "clawsess: warning: clawsess's hooks are not in Claude Code ({}: no `clawsess install`, no \
         clawsess plugin), so a terminal on this session does not wait for a run's turn or hear of it, \
         and the conversation can fork; run `clawsess install` (`clawsess doctor` checks)",
        crate::sys::printable(&claude::settings::path(&config).display().to_string(), false)
    );
}

/// The fork check ([`reconcile`]) for a turn resuming `target`, its note given to the run
/// lock for the run's claude's prompt hook. A new session has nothing to check.
fn check_fork(store: &Store, target: &Target, lock: &mut RunLock) -> Result<Reconciled> {
    let fork = if target.resume { reconcile(store, target) } else { Reconciled::default() };
    lock.set_fork_note(fork.note.clone())?;
    Ok(fork)
}

/// The kept claude after the fork check (`fork`, none if skipped): ended if the check wrote to
/// the transcript, or if it has a note for a claude that runs without hooks (only a prompt hook
/// hands it over); a note it was told by an earlier turn is `withheld` (it holds those turns).
fn fit_kept(
    store: &Store,
    target: &Target,
    lock: &mut RunLock,
    kept: warm::Kept,
    fork: &mut Option<Reconciled>,
    withheld: &mut Option<String>,
) -> Result<Option<warm::Kept>> {
    let Some(fork) = fork else { return Ok(Some(kept)) };
    // The check wrote to the transcript: the kept claude is behind it now.
    let kept = match fork.repointed {
        true => match kept.still_fresh(store)? {
            Some(kept) => kept,
            None => return Ok(None),
        },
        false => kept,
    };
    if kept.told() {
        *withheld = fork.note.take();
        lock.set_fork_note(None)?;
    }
    if fork.note.is_some() && kept.hookless() {
        let why = format!(
            "session {} has turns on another branch to tell, and its warm claude runs without hooks",
            target.id.short()
        );
        kept.end(&why)?;
        return Ok(None);
    }
    Ok(Some(kept))
}

/// The fork check a fresh kept claude let the turn skip, made now: another claude is about to
/// resume the session (a kept one gone, a cold one). A note withheld from the kept claude (it
/// had been told) is this claude's again.
fn ensure_fork_checked(
    store: &Store,
    target: &Target,
    lock: &mut RunLock,
    fork: &mut Option<Reconciled>,
    withheld: &mut Option<String>,
) -> Result<()> {
    if let Some(note) = withheld.take() {
        lock.set_fork_note(Some(note.clone()))?;
        if let Some(fork) = fork {
            fork.note = Some(note);
        }
    }
    if fork.is_none() {
        *fork = Some(check_fork(store, target, lock)?);
    }
    Ok(())
}

/// Before resuming `target` (its run lock held): a forked transcript is made to resume the
/// branch with the newest turn, and the other branch's turns become a note for the model (see
/// `turn::fork`). Reading the transcript must not cost the turn: a failure is said, not fatal.
pub fn reconcile(store: &Store, target: &Target) -> Reconciled {
    match target.transcript_path().and_then(|path| fork::before_resume(store, &target.id, &path)) {
        Ok(found) => found,
        Err(err) => {
            eprintln!(
                "clawsess: could not check the transcript's branches: {}",
                crate::sys::printable(&format!("{err:#}"), false)
            );
            Reconciled::default()
        }
    }
}
