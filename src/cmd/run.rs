//! `clawsess run`: one turn of a key's session through claude (the stream-json driver,
//! `crate::live`), holding the session's run lock for the whole turn. The rules live in the
//! turn protocol (`crate::turn`): which session (`route`), who may answer (`exclusion`), what
//! the turn records (`record`).

use std::io::{IsTerminal, Read};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Run, failure_json, key_or_default, print_json};
use crate::claude::{self, ClaudeResult};
use crate::cli;
use crate::config::settings::RunConfig;
use crate::exit::{self, Busy};
use crate::ident::{Key, SessionId};
use crate::live;
use crate::store::{Line, Store};
use crate::turn::exclusion::{KeyLock, RunLock};
use crate::turn::fork::{self, Reconciled};
use crate::turn::record::{self, RunTurn};
use crate::turn::route::{self, Target};
use crate::warm;

impl Run for cli::Run {
    fn run(&self) -> Result<u8> {
        match self.turn() {
            Err(err) if self.json || self.stream => {
                // --json promises one JSON document on stdout, failures included; --stream
                // ends with a result object whatever happened.
                let busy = err.downcast_ref::<Busy>().is_some();
                self.print_object(failure_json(true, &format!("{err:#}"), self.key.key.as_deref(), busy))?;
                eprintln!("clawsess: {}", crate::sys::printable(&format!("{err:#}"), true));
                Ok(exit::code_of(&err))
            }
            other => other,
        }
    }
}

impl cli::Run {
    /// One turn; see the module doc.
    fn turn(&self) -> Result<u8> {
        let key = key_or_default(&self.key.key)?;
        // A key attached to a session on another machine (or --host): the turn runs there.
        if let Some(host) =
            crate::remote::ops::host_for_run(&key, self.host.as_deref(), self.session.as_deref())?
        {
            return crate::remote::ops::run(self, &key, &host, self.prompt_text()?);
        }
        let start_timeout = live::start_timeout_from_env()?;
        let claude = crate::config::find_claude(self.claude.as_deref())?;
        let prompt = self.prompt_text()?;
        let images =
            self.images.iter().map(|path| live::image::image_block(path)).collect::<Result<Vec<_>>>()?;
        let store = Store::open()?;
        // The config file and K's settings (`clawsess set`): its reset policy, cwd, claude's flags.
        let config = RunConfig::for_key(&store, &key, self.idle_reset)?;
        let deadline = Instant::now() + self.wait;
        if self.steer
            && let Some(code) = self.steer_into_turn(&store, &key, &prompt, &images, &config)?
        {
            return Ok(code);
        }

        // --interrupt: the turn in progress is stopped and this one goes next, ahead of the
        // key's queue too (a queued run of the key would hold the key lock, waiting for us).
        let mut claim = if self.interrupt { self.interrupt_turn(&store, &key, &config)? } else { None };
        // Its place in line, taken now: kept while it waits for the key's lock and then for
        // the session, so that it is served first come, first served among every waiter.
        let in_line = crate::turn::queue::Place::now();
        let guess = std::cell::OnceCell::new();
        let mut early_ticket = None;
        let key_lock = if claim.is_some() {
            None
        } else {
            Some(KeyLock::acquire(&store, &key, &in_line, deadline, || {
                // While it waits for its key, it holds its place in the queue of the session
                // the key goes to now (a turn of another surface that comes later waits).
                let id = guess.get_or_init(|| {
                    crate::turn::route::current(&store, &key, self.session.as_deref(), self.new)
                });
                early_ticket = id.as_ref().and_then(|id| {
                    crate::turn::queue::Ticket::join_as(&store, Line::Session(id), key.as_str(), &in_line)
                });
                if !self.wait.is_zero() {
                    eprintln!(
                        "clawsess: another run for {key} is in progress; waiting up to {:.0} s",
                        self.wait.as_secs_f64()
                    );
                }
            })?)
        };
        let request = route::Request {
            session: self.session.as_deref(),
            new: self.new,
            cwd: self.cwd.as_deref().or(config.cwd.as_deref()),
            reset: config.policy.clone(),
        };
        let target = route::route(&store, &key, &request)?;
        let settings = config.for_session(&store, &target.id, &self.claude_args, self.warm)?;
        let warm_for = settings.warm;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut place = None;
        let queued = |_: &str| {
            let now = crate::turn::exclusion::queue_position(&store, &target.id);
            if self.stream && now.is_some() && now != place {
                place.clone_from(&now);
                let (position, behind) = now.unwrap_or_default();
                live::Sink::event(&mut live::JsonLines, &live::Event::Queued { position, behind, cap: None });
            }
        };
        let mut lock = RunLock::acquire_with(&store, &target.id, key.as_str(), left, Some(&in_line), queued)?;
        drop(early_ticket);
        drop(claim.take()); // it holds the session now
        let fork = if target.resume { reconcile(&store, &target) } else { Reconciled::default() };
        lock.set_note(fork.note.clone())?;
        let mut pending = record::PendingRunTurn::new(&store, &mut lock, &target, &key, &prompt)?;
        let mut quiet = |_: &live::Event| {};
        let sink: &mut dyn live::Sink = if self.stream { &mut live::JsonLines } else { &mut quiet };
        let turn = claude::Turn {
            claude: &claude,
            session: &target.id,
            resume: target.resume,
            cwd: &target.cwd,
            key: key.as_str(),
            extra: &settings.claude_args,
        };
        let ask = self.ask.then_some(self.ask_timeout);
        let live_turn = live::LiveTurn {
            turn,
            store: &store,
            verbatim: !self.allow_slash,
            images: &images,
            ask,
            start_timeout,
        };
        let want = warm::Want { turn, idle: warm_for };
        // The claude this turn starts, if it starts one, counts against the cap (`turn::cap`).
        let cap = crate::turn::cap::max_claudes()?;
        let mut slot = None;
        let take_slot = || self.take_slot(&store, &key, cap, deadline);
        let mut conn = self.warm_conn(&store, &want, &mut lock, &mut slot, take_slot)?;
        let mut outcome = None;
        if let Some(c) = &mut conn {
            match live_turn.run_on(c, &prompt, sink) {
                Ok(done) => outcome = Some(done),
                Err(err) if err.downcast_ref::<warm::WarmGone>().is_some() => {
                    eprintln!("clawsess: {err}; this turn resumes the session cold");
                    // Its keeper is gone or going: `take` says so, and starts another with --warm.
                    conn = self.warm_conn(&store, &want, &mut lock, &mut slot, take_slot)?;
                    if let Some(c) = &mut conn {
                        outcome = Some(live_turn.run_on(c, &prompt, sink)?);
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
                let slot = match &mut slot {
                    Some(slot) => slot,
                    None => slot.insert(take_slot()?),
                };
                live_turn.run(
                    &prompt,
                    |pid| {
                        lock.set_child(pid)?;
                        slot.add(pid)
                    },
                    sink,
                )?
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
        let record_error = if failed && !interrupted {
            pending.failed(result.result());
            None
        } else {
            let turn = RunTurn {
                key: &key,
                target: &target,
                session: &session,
                new: self.new,
                explicit: self.session.is_some(),
                prompt: &prompt,
                reply: result.result(),
                fork: &fork,
                token: None,
            };
            pending.record(&turn).err()
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
            && let Err(err) = warm::retire(&store, &target.id)
        {
            eprintln!("clawsess: could not end the interrupted warm claude: {err:#}");
        } else if let Some(conn) = &conn
            && !interrupted
            && let Err(err) = warm::after_turn(&store, &session, conn, warm_for)
        {
            // The next run finds the warm claude stale and resumes cold: slower, not wrong.
            eprintln!("clawsess: could not note the warm session: {err:#}");
        }
        drop(slot);
        drop(lock);
        drop(key_lock);
        let mut result = result;
        if let Some(conn) = &conn {
            // Whether a warm claude took the turn (`run --warm`): absent when none was involved.
            result.fields.insert("warm".into(), Value::Bool(!conn.started));
        }
        self.print(result, &key, &session, failed, record_error, &target)?;
        Ok(if interrupted { live::INTERRUPTED } else { outcome.exit_code(failed) })
    }

    /// A claude slot for this turn (`turn::cap`), waiting in line until `deadline`: with
    /// --stream each place in line is a `queued` event; a plain run says once that it waits.
    fn take_slot<'s>(
        &self,
        store: &'s Store,
        key: &Key,
        cap: usize,
        deadline: Instant,
    ) -> Result<crate::turn::cap::Slot<'s>> {
        let mut said = false;
        crate::turn::cap::take(store, key.as_str(), cap, deadline, |waiting| {
            if self.stream {
                let event =
                    live::Event::Queued { position: waiting.position, behind: "cap".into(), cap: Some(cap) };
                live::Sink::event(&mut live::JsonLines, &event);
            }
            if !said && !self.wait.is_zero() {
                eprintln!(
                    "clawsess: {} claude processes are running, the most clawsess starts at once \
                     ({}={cap}); waiting for one to end (place {} in line)",
                    waiting.running,
                    crate::turn::cap::MAX_ENV,
                    waiting.position
                );
                said = true;
            }
        })
    }

    /// The warm claude for this turn, if any (see `warm::take`); one that cannot be had is
    /// said on stderr, and the turn runs cold. Waiting for a claude slot past the deadline is
    /// an error.
    fn warm_conn<'s>(
        &self,
        store: &Store,
        want: &warm::Want<'_>,
        lock: &mut RunLock,
        slot: &mut Option<crate::turn::cap::Slot<'s>>,
        take_slot: impl FnOnce() -> Result<crate::turn::cap::Slot<'s>>,
    ) -> Result<Option<warm::Conn>> {
        match warm::take(store, want, lock, slot, take_slot) {
            Ok(conn) => Ok(conn),
            Err(err) if err.downcast_ref::<Busy>().is_some() => Err(err),
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

    /// The reply, or with --json claude's result object with ours added.
    fn print(
        &self,
        result: ClaudeResult,
        key: &Key,
        session: &SessionId,
        failed: bool,
        record_error: Option<anyhow::Error>,
        target: &Target,
    ) -> Result<()> {
        warn_without_hooks();
        let new_session = !target.resume;
        if new_session && !self.new && !failed {
            // Nothing attached, or a mistyped key: not a surprise to find out later.
            eprintln!(
                "clawsess: new session {session} for key {key} in {}",
                crate::sys::printable(&crate::sys::tilde(&target.cwd), false)
            );
        }
        if !self.json && !self.stream {
            let text = result.result();
            return crate::outln!("{}", text.strip_suffix('\n').unwrap_or(text));
        }
        let mut fields = result.fields;
        if !self.stream {
            // As `claude -p --output-format json` prints it: the stream-json result adds these.
            if fields.get("interrupted") == Some(&Value::Bool(false)) {
                fields.remove("interrupted");
            }
            fields.remove("model_usage_since_last_result");
        }
        fields.insert("session_id".into(), Value::String(session.to_string()));
        fields.insert("key".into(), Value::String(key.to_string()));
        fields.insert("is_error".into(), Value::Bool(failed));
        fields.insert("busy".into(), Value::Bool(false));
        fields.entry("result").or_insert(Value::String(String::new()));
        if let Some(err) = record_error {
            fields.insert("record_error".into(), Value::String(format!("{err:#}")));
        }
        if let Some(old) = &target.replaced {
            fields.insert("replaced_session".into(), Value::String(old.to_string()));
            if let Some(why) = &target.reset_why {
                fields.insert("reset".into(), serde_json::json!({"from": old.as_str(), "why": why}));
            }
        }
        fields.insert("new_session".into(), Value::Bool(new_session));
        self.print_object(Value::Object(fields))
    }

    /// The result object: with --json pretty, with --stream as the last line, with
    /// `"type": "result"`.
    pub(super) fn print_object(&self, mut object: Value) -> Result<()> {
        if !self.stream {
            return print_json(&object);
        }
        if let Value::Object(fields) = &mut object {
            fields.insert("type".into(), Value::String("result".into()));
        }
        crate::outln!("{}", serde_json::to_string(&object)?)
    }

    /// The prompt: PROMPT words joined by spaces, else all of stdin.
    fn prompt_text(&self) -> Result<String> {
        let text = if self.prompt.is_empty() {
            if std::io::stdin().is_terminal() {
                eprintln!("clawsess: reading the prompt from the terminal; end it with Ctrl-D");
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("could not read the prompt from stdin")?;
            text
        } else {
            self.prompt.join(" ")
        };
        if text.trim().is_empty() {
            bail!("the prompt is empty: give PROMPT words, or pipe the prompt on stdin");
        }
        // `claude -p` runs a prompt that starts with `/` as a slash command (custom commands
        // run shell lines); one leading space makes it plain text.
        if text.starts_with('/') && !self.allow_slash {
            return Ok(format!(" {text}"));
        }
        Ok(text)
    }
}

/// Says on stderr when Claude Code has no clawsess hooks (no `clawsess install`, no enabled
/// plugin in settings.json) and no terminal ever ran them (no session a person started is
/// recorded: a `claude --plugin-dir` terminal leaves no trace in settings.json but does): a
/// terminal on the session would then neither wait for a run's turn nor hear of it.
fn warn_without_hooks() {
    let Ok(config) = claude::config_dir(None) else { return };
    if !claude::settings::HookSource::of(&config).none() {
        return;
    }
    let person_seen = Store::open().and_then(|store| {
        for (_, id) in store.sessions_by_mtime()?.into_iter().take(200) {
            if store.session(&id)?.is_some_and(|rec| rec.started_by == crate::store::Starter::Person) {
                return Ok(true);
            }
        }
        Ok(false)
    });
    if person_seen.unwrap_or(true) {
        return;
    }
    eprintln!(
        "clawsess: warning: clawsess's hooks are not in Claude Code ({}: no `clawsess install`, no \
         clawsess plugin), so a terminal on this session does not wait for a run's turn or hear of it, \
         and the conversation can fork; run `clawsess install` (`clawsess doctor` checks)",
        crate::sys::printable(&config.join("settings.json").display().to_string(), false)
    );
}

/// Before resuming `target` (its run lock held): a forked transcript is made to resume the
/// branch with the newest turn, and the other branch's turns become a note for the model (see
/// `turn::fork`). Reading the transcript must not cost the turn: a failure is said, not fatal.
fn reconcile(store: &Store, target: &Target) -> Reconciled {
    let transcript = match store.session(&target.id) {
        Ok(Some(rec)) => Ok(rec.transcript),
        _ => {
            claude::config_dir(None).map(|dir| claude::transcript_path(&dir, &target.cwd, target.id.as_str()))
        }
    };
    match transcript.and_then(|path| fork::before_resume(store, &target.id, &path)) {
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
