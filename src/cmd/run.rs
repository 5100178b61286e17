//! `clawsess run`: one turn of a key's session through `claude -p`, holding the session's
//! run lock for the whole turn.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Run, key_or_default, print_json};
use crate::claude::{self, ClaudeResult};
use crate::cli;
use crate::exit::{self, Busy};
use crate::ident::{Key, SessionId};
use crate::resolve::{Via, find_session, resolve};
use crate::store::{
    Acquired, COMMAND_LOCK_WAIT, KeyState, SessionRecord, Starter, Store, lock_until, now_ms, open_lock_file,
};
use crate::turn::{self, RUN_KEY_ENV, RUN_PID_ENV, RunLock};

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
            Err(err) if self.json => {
                // --json promises one JSON document on stdout, failures included.
                let busy = err.downcast_ref::<Busy>().is_some();
                print_json(&serde_json::json!({
                    "key": self.key.key.as_deref().unwrap_or(crate::ident::DEFAULT_KEY),
                    "is_error": true,
                    "busy": busy,
                    "error": format!("{err:#}"),
                    "result": "",
                }))?;
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
        let store = Store::open()?;
        let wait = Duration::from_secs_f64(self.wait);
        let deadline = Instant::now() + wait;

        // Runs of one key go one after the other, so that a key's first two messages do not
        // start two sessions and its turns keep their order.
        let key_lock = open_lock_file(&store.run_lock_path_for_key(&key)?)?;
        let told =
            || eprintln!("clawsess: another run for {key} is in progress; waiting up to {:.0} s", self.wait);
        if let Acquired::TimedOut = lock_until(&key_lock, deadline, || {
            if !wait.is_zero() {
                told()
            }
        })? {
            return Err(Busy(format!("another run for {key} is still in progress; try again later")).into());
        }

        let target = self.target(&store, &key, idle_reset)?;
        let mut lock = RunLock::acquire(
            &store,
            &target.id,
            key.as_str(),
            deadline.saturating_duration_since(Instant::now()),
        )?;
        let outcome = run_claude(&claude, &target, &key, &self.claude_args, &prompt, &mut lock)?;
        let result = match ClaudeResult::parse(&outcome.stdout) {
            Ok(result) => result,
            Err(err) => {
                let status = describe(outcome.code, outcome.signal);
                return Err(err.context(format!("claude {status} without a result")));
            }
        };
        let failed = outcome.code != Some(0) || result.is_error();
        let session = match result.session_id().map(SessionId::parse).transpose() {
            Ok(Some(id)) => id,
            Ok(None) => target.id.clone(),
            Err(err) => return Err(err.context("claude reported a session_id that is not a UUID")),
        };
        // Claude has answered: a failure to record the turn must not swallow the reply.
        let record_error = if failed {
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

        if self.json {
            let mut fields = result.fields.clone();
            fields.insert("session_id".into(), Value::String(session.to_string()));
            fields.insert("key".into(), Value::String(key.to_string()));
            fields.insert("is_error".into(), Value::Bool(failed));
            fields.insert("busy".into(), Value::Bool(false));
            if let Some(err) = &record_error {
                fields.insert("record_error".into(), Value::String(format!("{err:#}")));
            }
            fields.entry("result").or_insert(Value::String(String::new()));
            if let Some(old) = &target.replaced {
                fields.insert("replaced_session".into(), Value::String(old.to_string()));
            }
            print_json(&Value::Object(fields))?;
        } else {
            let text = result.result();
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Ok(match (outcome.code, outcome.signal) {
            (Some(0), _) if failed => exit::FAILURE,
            (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILURE),
            (None, Some(sig)) => 128u8.saturating_add(sig as u8),
            (None, None) => exit::FAILURE,
        })
    }
}

impl cli::Run {
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
        if turn::watched_by_terminal(&tx, &rec)? {
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

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: Vec<u8>,
}

/// Runs `claude -p` for the turn: prompt on stdin, JSON result on stdout, stderr passed
/// through. A SIGTERM, SIGINT or SIGHUP to us stops the child too.
fn run_claude(
    claude: &Path,
    target: &Target,
    key: &Key,
    extra: &[String],
    prompt: &str,
    lock: &mut RunLock,
) -> Result<Outcome> {
    let mut cmd = Command::new(claude);
    cmd.args(["-p", "--output-format", "json"]);
    cmd.arg(if target.resume { "--resume" } else { "--session-id" }).arg(target.id.as_str());
    cmd.args(extra);
    cmd.current_dir(&target.cwd)
        .env(RUN_PID_ENV, std::process::id().to_string())
        .env(RUN_KEY_ENV, key.as_str())
        // We may be running inside a Claude Code Bash tool: the child is its own session.
        .env_remove("CLAUDECODE")
        .env_remove("CLAUDE_CODE_SESSION_ID")
        .env_remove("CLAUDE_ENV_FILE")
        .env_remove("CLAUDE_PID")
        .env_remove("CLAWSESS_SESSION_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The child does not outlive us: if we are SIGKILLed the kernel sends it SIGTERM, and the
    // next run waits for it (its pid is in the lock's holder note). The lock fd itself is not
    // inherited: whatever claude starts in the background must not hold the session.
    // SAFETY: prctl is async-signal-safe.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    // Forward SIGTERM, SIGINT and SIGHUP to the child as SIGTERM. A plain handler (atomics
    // and kill(2), both async-signal-safe) rather than a watcher thread: run is a hot path.
    static CHILD: AtomicI32 = AtomicI32::new(0);
    static CAUGHT: AtomicI32 = AtomicI32::new(0);
    let mut handlers = Vec::new();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls kill(2).
        let id = unsafe {
            signal_hook::low_level::register(sig, move || {
                CAUGHT.store(sig, Ordering::SeqCst);
                let pid = CHILD.load(Ordering::SeqCst);
                if pid > 0 {
                    libc::kill(pid, libc::SIGTERM);
                }
            })
        }
        .context("could not watch signals")?;
        handlers.push(id);
    }
    let mut child = cmd.spawn().with_context(|| format!("could not run {}", claude.display()))?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    if CAUGHT.load(Ordering::SeqCst) != 0 {
        // SAFETY: our own child, not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    lock.set_child(child.id())?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A prompt that fits the pipe buffer is written at once; a longer one from a thread, as
    // claude may start writing before it has read it all. Claude may also exit without
    // reading: a broken pipe is not our error.
    let writer = if prompt.len() <= 60_000 {
        let _ = stdin.write_all(prompt.as_bytes());
        drop(stdin);
        None
    } else {
        let prompt = prompt.to_owned();
        Some(std::thread::spawn(move || {
            let _ = stdin.write_all(prompt.as_bytes());
        }))
    };
    let mut stdout = Vec::new();
    child.stdout.take().expect("piped stdout").read_to_end(&mut stdout)?;
    let status = child.wait()?;
    CHILD.store(0, Ordering::SeqCst);
    for id in handlers {
        signal_hook::low_level::unregister(id);
    }
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let sig = CAUGHT.swap(0, Ordering::SeqCst);
    if sig != 0 {
        bail!("stopped by signal {sig}; claude was stopped too, and the session is free");
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(Outcome { code: status.code(), signal: status.signal(), stdout })
}

fn describe(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".into(),
    }
}

/// Parses `90s`, `30m`, `12h`, `7d`, `2w` and sums like `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || format!("{text:?} is not a duration like 30m, 12h, 7d or 1h30m");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => bail!(bad()),
        };
        let n: u64 = digits.parse().with_context(bad)?;
        total = total.checked_add(n.checked_mul(unit).with_context(bad)?).with_context(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        bail!(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        for bad in ["", "12", "h", "1x", "0s", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
