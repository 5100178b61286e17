//! `clawsess run`: one turn of a key's session through `claude -p`, holding the session's
//! run lock for the whole turn.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Run, key_or_default, print_json};
use crate::claude::{self, ClaudeResult};
use crate::cli;
use crate::exit::{self, Busy};
use crate::ident::{Key, SessionId};
use crate::live;
use crate::resolve::{Via, find_session, resolve};
use crate::store::{
    Acquired, COMMAND_LOCK_WAIT, KeyState, SessionRecord, Starter, Store, lock_until, now_ms, open_lock_file,
};
use crate::sys::parse_duration;
use crate::turn::{self, RunLock};

/// The session a turn goes to.
struct Target {
    id: SessionId,
    cwd: PathBuf,
    /// Resume it (else start it with `--session-id`).
    resume: bool,
    /// How the key reached it; `None` for `--session`.
    via: Option<Via>,
    /// The key's session that was given up (transcript gone, idle reset).
    replaced: Option<SessionId>,
}

impl Run for cli::Run {
    fn run(&self) -> Result<u8> {
        match self.turn() {
            Err(err) if self.json || self.stream => {
                // --json promises one JSON document on stdout, failures included; --stream
                // ends with a result object whatever happened.
                let busy = err.downcast_ref::<Busy>().is_some();
                let failure = serde_json::json!({
                    "key": self.key.key.as_deref().unwrap_or(crate::ident::DEFAULT_KEY),
                    "is_error": true,
                    "busy": busy,
                    "error": format!("{err:#}"),
                    "result": "",
                });
                self.print_object(failure)?;
                eprintln!("clawsess: {err:#}");
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
        if !(self.wait.is_finite() && self.wait >= 0.0) {
            bail!("--wait takes a number of seconds >= 0");
        }
        let idle_reset = self.idle_reset.as_deref().map(parse_duration).transpose()?;
        let claude = claude::find_claude(self.claude.as_deref())?;
        let prompt = self.prompt_text()?;
        let images =
            self.images.iter().map(|path| live::image::image_block(path)).collect::<Result<Vec<_>>>()?;
        if !(self.ask_timeout.is_finite() && self.ask_timeout >= 0.0) {
            bail!("--ask-timeout takes a number of seconds >= 0");
        }
        let store = Store::open()?;
        let deadline = Instant::now() + Duration::from_secs_f64(self.wait);

        let key_lock = self.lock_key(&store, &key, deadline)?;
        let target = self.target(&store, &key, idle_reset)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut lock = RunLock::acquire(&store, &target.id, key.as_str(), left)?;
        let outcome = if self.stream || !images.is_empty() {
            let mut quiet = |_: &live::Event| {};
            let sink: &mut dyn live::Sink = if self.stream { &mut live::JsonLines } else { &mut quiet };
            live::LiveTurn {
                store: &store,
                claude: &claude,
                session: &target.id,
                resume: target.resume,
                cwd: &target.cwd,
                key: key.as_str(),
                extra: &self.claude_args,
                images: &images,
                ask: self.ask.then(|| Duration::from_secs_f64(self.ask_timeout)),
            }
            .run(&prompt, |pid| lock.set_child(pid), sink)?
        } else {
            claude::Turn {
                claude: &claude,
                session: &target.id,
                resume: target.resume,
                cwd: &target.cwd,
                key: key.as_str(),
                extra: &self.claude_args,
            }
            .run(&prompt, |pid| lock.set_child(pid))?
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
            None
        } else {
            self.record(&store, &key, &target, &session, &prompt, result.result()).err()
        };
        if let Some(err) = &record_error {
            eprintln!(
                "clawsess: claude answered, but recording the turn failed: {err:#}; \
                 {key} may not come back to this session"
            );
        }
        drop(lock);
        drop(key_lock);
        self.print(result, &key, &session, failed, record_error, target.replaced.as_ref())?;
        Ok(if interrupted { live::INTERRUPTED } else { outcome.exit_code(failed) })
    }

    /// Runs of one key go one after the other, so that a key's first two messages do not
    /// start two sessions and its turns keep their order.
    fn lock_key(&self, store: &Store, key: &Key, deadline: Instant) -> Result<File> {
        let file = open_lock_file(&store.run_lock_path_for_key(key)?)?;
        let tell = || {
            if self.wait > 0.0 {
                eprintln!("clawsess: another run for {key} is in progress; waiting up to {:.0} s", self.wait);
            }
        };
        match lock_until(&file, deadline, tell)? {
            Acquired::Yes => Ok(file),
            Acquired::TimedOut => {
                Err(Busy(format!("another run for {key} is still in progress; try again later")).into())
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
        replaced: Option<&SessionId>,
    ) -> Result<()> {
        if !self.json && !self.stream {
            let text = result.result();
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            return Ok(out.flush()?);
        }
        let mut fields = result.fields;
        fields.insert("session_id".into(), Value::String(session.to_string()));
        fields.insert("key".into(), Value::String(key.to_string()));
        fields.insert("is_error".into(), Value::Bool(failed));
        fields.insert("busy".into(), Value::Bool(false));
        fields.entry("result").or_insert(Value::String(String::new()));
        if let Some(err) = record_error {
            fields.insert("record_error".into(), Value::String(format!("{err:#}")));
        }
        if let Some(old) = replaced {
            fields.insert("replaced_session".into(), Value::String(old.to_string()));
        }
        self.print_object(Value::Object(fields))
    }

    /// The result object: with --json pretty, with --stream as the last line, with
    /// `"type": "result"`.
    fn print_object(&self, mut object: Value) -> Result<()> {
        if !self.stream {
            return print_json(&object);
        }
        if let Value::Object(fields) = &mut object {
            fields.insert("type".into(), Value::String("result".into()));
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&object)?)?;
        Ok(out.flush()?)
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

    fn new_target(&self, replaced: Option<SessionId>) -> Result<Target> {
        let cwd = match &self.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("could not read the current dir")?,
        };
        let cwd =
            cwd.canonicalize().with_context(|| format!("--cwd {} is not a directory", cwd.display()))?;
        if !cwd.is_dir() {
            bail!("--cwd {} is not a directory", cwd.display());
        }
        Ok(Target { id: SessionId::new_random(), cwd, resume: false, via: None, replaced })
    }

    fn target(&self, store: &Store, key: &Key, idle_reset: Option<Duration>) -> Result<Target> {
        if self.new {
            return self.new_target(None);
        }
        if let Some(arg) = &self.session {
            let id = find_session(store, arg)?;
            let rec = store.session(&id)?.with_context(|| format!("session {id} was removed meanwhile"))?;
            if !rec.transcript.is_file() {
                bail!(
                    "the transcript of session {id} is gone ({}): Claude Code deleted it; \
                     use --new, or run without --session",
                    rec.transcript.display()
                );
            }
            return Ok(Target { id, cwd: checked_cwd(&rec)?, resume: true, via: None, replaced: None });
        }
        let Some(found) = resolve(store, key)? else {
            return self.new_target(None);
        };
        let rec = store.session(&found.session)?;
        let why_not = match &rec {
            None => Some("is no longer recorded".to_owned()),
            Some(rec) if !rec.transcript.is_file() => {
                Some("has no transcript any more (Claude Code deletes old ones)".into())
            }
            Some(rec) => match idle_reset {
                Some(limit)
                    if found.via == Via::Own
                        && now_ms().saturating_sub(rec.last_seen) > limit.as_millis() as u64 =>
                {
                    Some(format!("was idle for longer than {}", self.idle_reset.as_deref().unwrap_or("")))
                }
                _ => None,
            },
        };
        match (rec, why_not) {
            (Some(rec), None) => Ok(Target {
                id: rec.id.clone(),
                cwd: checked_cwd(&rec)?,
                resume: true,
                via: Some(found.via),
                replaced: None,
            }),
            (_, why) => {
                let how = match found.via {
                    Via::Key => format!("{key}'s attachment"),
                    Via::Global => "the global attachment".into(),
                    Via::Own => format!("{key}'s own session"),
                };
                eprintln!(
                    "clawsess: {how} {} {}; starting a new session for {key}",
                    found.session.short(),
                    why.unwrap_or_default()
                );
                let mut target = self.new_target(Some(found.session))?;
                target.via = Some(found.via);
                Ok(target)
            }
        }
    }

    /// After a successful turn: the key's own session, the session's record, the turn log.
    fn record(
        &self,
        store: &Store,
        key: &Key,
        target: &Target,
        session: &SessionId,
        prompt: &str,
        reply: &str,
    ) -> Result<()> {
        let now = now_ms();
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        let mut rec = match tx.session(session)? {
            Some(rec) => rec,
            // The hook is not installed (or did not fire): record the session ourselves.
            None => {
                let transcript =
                    claude::transcript_path(&claude::config_dir(None)?, &target.cwd, session.as_str());
                SessionRecord {
                    source: if target.resume { "resume" } else { "startup" }.into(),
                    ..SessionRecord::new(session.clone(), target.cwd.clone(), transcript, Starter::Run, now)
                }
            }
        };
        rec.last_seen = now;
        rec.run_turns += 1;
        if target.resume {
            rec.source = "resume".into(); // the child's SessionStart left this write to us
        }
        tx.put_session(&rec)?;

        let before = tx.key_state(key)?;
        let mut state = before.clone().unwrap_or_else(|| KeyState::new(key.clone()));
        let gone = target.replaced.as_ref();
        if gone.is_some() && state.attached.as_ref().map(|a| &a.session) == gone {
            state.attached = None;
        }
        if self.new && state.attached.take().is_some() {
            eprintln!("clawsess: {key} was attached to another session; --new detached it");
        }
        let becomes_own = self.new || (self.session.is_none() && state.attached.is_none());
        if becomes_own && state.own.as_ref() != Some(session) {
            state.own = Some(session.clone());
            state.own_at = now;
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
        // Only an open terminal needs the turn for its catch-up: one that starts later loads
        // it from the transcript.
        if rec.terminal_open() {
            turn::log_surface_turn(&tx, session, key.as_str(), prompt, reply)?;
        }
        Ok(())
    }
}

fn checked_cwd(rec: &SessionRecord) -> Result<PathBuf> {
    if !rec.cwd.is_dir() {
        bail!(
            "session {}'s working dir {} is gone; recreate it, or start a new session (--new --cwd DIR)",
            rec.id,
            rec.cwd.display()
        );
    }
    Ok(rec.cwd.clone())
}
