//! The Claude Code hooks. A hook never breaks Claude Code: whatever goes wrong is one line
//! on stderr and exit 0; only prompt-submit's deliberate refusal exits 2.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::Run;
use crate::claude;
use crate::cli::Hook;
use crate::exit;
use crate::ident::SessionId;
use crate::store::{HOOK_LOCK_WAIT, SessionRecord, Starter, Store, now_ms};
use crate::turn::{self, TerminalTurn};

/// Largest hook input read; Claude Code's are a few hundred bytes plus the prompt.
const MAX_INPUT: usize = 4 * 1024 * 1024;
/// How long a hook waits for its input before giving up.
const INPUT_WAIT: Duration = Duration::from_secs(5);

/// The hook JSON exactly as Claude Code sends it; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct HookInput {
    pub session_id: Option<String>,
    pub transcript_path: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub source: Option<String>,
    pub session_title: Option<String>,
}

impl Run for Hook {
    fn run(&self) -> Result<u8> {
        let name = match self {
            Hook::SessionStart => "session-start",
            Hook::PromptSubmit => "prompt-submit",
            Hook::Stop => "stop",
            Hook::SessionEnd => "session-end",
        };
        match self.handle() {
            Ok(code) => Ok(code),
            Err(err) => {
                let text = format!("{err:#}").replace('\n', " ");
                let _ = writeln!(std::io::stderr(), "clawsess hook {name}: {text}");
                Ok(exit::OK)
            }
        }
    }
}

impl Hook {
    fn handle(&self) -> Result<u8> {
        let input = match read_input() {
            Ok(Some(input)) => input,
            Ok(None) => return Ok(exit::OK),
            Err(Unread::TooLarge(prefix)) if matches!(self, Hook::PromptSubmit) => {
                return prompt_submit_unread(&prefix);
            }
            Err(Unread::TooLarge(_)) => bail!("hook input is larger than {} MiB; ignored", MAX_INPUT >> 20),
            Err(Unread::Failed(err)) => return Err(err),
        };
        let id = SessionId::parse(input.session_id.as_deref().context("hook input has no session_id")?)?;
        let store = Store::open()?;
        let pid = crate::process::hook_claude_pid();
        match self {
            Hook::SessionStart => session_start(&store, &id, &input, pid),
            Hook::PromptSubmit => prompt_submit(&store, &id, pid),
            Hook::Stop => turn::end_terminal_turn(&store, &id, pid).map(|()| exit::OK),
            Hook::SessionEnd => session_end(&store, &id, pid),
        }
    }
}

/// Why the hook input could not be read whole.
enum Unread {
    /// Larger than [`MAX_INPUT`] (a huge pasted prompt): its first bytes.
    TooLarge(Vec<u8>),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Unread {
    fn from(err: E) -> Self {
        Unread::Failed(err.into())
    }
}

/// Reads the hook JSON from stdin, bounded in size and time. `None`: empty input.
fn read_input() -> Result<Option<HookInput>, Unread> {
    let (bytes, whole) = read_stdin_bounded(MAX_INPUT, INPUT_WAIT)?;
    if !whole {
        return Err(Unread::TooLarge(bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let input = serde_json::from_slice(&bytes).context("hook input is not the JSON Claude Code sends")?;
    Ok(Some(input))
}

/// A prompt whose hook input is too large to read whole must still not get through a session
/// another surface holds: the session comes from the env or the input's first bytes (Claude
/// Code writes `session_id` first), and the turn is taken as for any prompt. If no session
/// can be told, the prompt is refused: letting it through could fork a held session.
fn prompt_submit_unread(prefix: &[u8]) -> Result<u8> {
    let id = std::env::var("CLAUDE_CODE_SESSION_ID")
        .ok()
        .and_then(|v| SessionId::parse(&v).ok())
        .or_else(|| session_id_in(prefix));
    let Some(id) = id else {
        let _ = writeln!(
            std::io::stderr(),
            "clawsess: this prompt is over {} MiB and its session could not be told, so it was not \
             let through (another surface may be answering the session); send a shorter prompt, \
             or attach the text as a file",
            MAX_INPUT >> 20
        );
        return Ok(exit::BLOCK);
    };
    prompt_submit(&Store::open()?, &id, crate::process::hook_claude_pid())
}

/// The value of the first `"session_id":"..."` in a piece of hook JSON.
fn session_id_in(bytes: &[u8]) -> Option<SessionId> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let at = text.find("\"session_id\"")?;
    let rest = text[at + "\"session_id\"".len()..].trim_start().strip_prefix(':')?.trim_start();
    let value = rest.strip_prefix('"')?.get(..36)?;
    SessionId::parse(value).ok()
}

/// Reads stdin to its end within `wait`; past `max` bytes the rest is read and dropped.
/// Returns the bytes kept and whether they are the whole input.
fn read_stdin_bounded(max: usize, wait: Duration) -> Result<(Vec<u8>, bool)> {
    let deadline = Instant::now() + wait;
    let mut stdin = std::io::stdin().lock();
    let mut out = Vec::new();
    let mut whole = true;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut fds, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready == 0 {
            bail!("no hook input within {} s", wait.as_secs());
        }
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("could not read the hook input");
        }
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("could not read the hook input"),
        };
        if n == 0 {
            return Ok((out, whole));
        }
        let keep = n.min(max.saturating_sub(out.len()));
        whole &= keep == n;
        out.extend_from_slice(&buf[..keep]);
    }
}

fn session_start(store: &Store, id: &SessionId, input: &HookInput, pid: Option<u32>) -> Result<u8> {
    let cwd = input.cwd.clone().context("hook input has no cwd")?;
    if !cwd.is_absolute() {
        bail!("hook input cwd {} is not absolute", cwd.display());
    }
    let transcript = match &input.transcript_path {
        Some(path) if path.is_absolute() => path.clone(),
        _ => claude::transcript_path(&claude::config_dir(None)?, &cwd, id.as_str()),
    };
    let by_run = turn::run_child_of(store, id).is_some();
    // A run resuming a recorded session writes the record itself once the turn is over:
    // one durable write per bot turn, not two.
    if !(by_run && store.session(id)?.is_some()) {
        record_start(store, id, input, cwd, transcript, by_run, pid)?;
    }
    export_session_id(id)
}

/// Records (or refreshes) the session a SessionStart announced.
fn record_start(
    store: &Store,
    id: &SessionId,
    input: &HookInput,
    cwd: PathBuf,
    transcript: PathBuf,
    by_run: bool,
    pid: Option<u32>,
) -> Result<()> {
    let now = now_ms();
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    let mut rec = match tx.session(id)? {
        Some(mut rec) => {
            rec.cwd = cwd;
            rec.transcript = transcript;
            rec.last_seen = now;
            rec
        }
        None => {
            let by = if by_run { Starter::Run } else { Starter::Person };
            SessionRecord::new(id.clone(), cwd, transcript, by, now)
        }
    };
    if let (false, Some(pid)) = (by_run, pid) {
        rec.add_terminal(pid);
    }
    rec.source = input.source.clone().unwrap_or_else(|| "startup".into());
    if let Some(title) = &input.session_title {
        rec.title = Some(title.clone());
    }
    tx.put_session(&rec)?;
    drop(tx);
    if !by_run && let Some(pid) = pid {
        turn::mark_seen(store, id, pid)?;
    }
    Ok(())
}

/// Appends `export CLAWSESS_SESSION_ID=<id>` to `$CLAUDE_ENV_FILE`, so that the session's
/// Bash commands (and `/attach`) know it.
fn export_session_id(id: &SessionId) -> Result<u8> {
    if let Some(env_file) = std::env::var_os("CLAUDE_ENV_FILE").filter(|f| !f.is_empty()) {
        let mut file =
            std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&env_file).with_context(
                || format!("could not open CLAUDE_ENV_FILE {}", PathBuf::from(&env_file).display()),
            )?;
        writeln!(file, "export CLAWSESS_SESSION_ID={id}").context("could not write CLAUDE_ENV_FILE")?;
    }
    Ok(exit::OK)
}

fn prompt_submit(store: &Store, id: &SessionId, pid: Option<u32>) -> Result<u8> {
    if turn::run_child_of(store, id).is_some() {
        return Ok(exit::OK); // run's own child: its turn is the run's, already locked
    }
    if let TerminalTurn::Refused(why) = turn::start_terminal_turn(store, id, pid)? {
        let _ = writeln!(std::io::stderr(), "{why}");
        return Ok(exit::BLOCK);
    }
    touch(store, id)?;
    if let Some(text) = turn::catch_up(store, id, pid.unwrap_or(0))? {
        let out = serde_json::json!({
            "hookSpecificOutput": { "hookEventName": "UserPromptSubmit", "additionalContext": text }
        });
        crate::outln!("{out}")?;
    }
    Ok(exit::OK)
}

/// Notes terminal activity on the record, at most once a minute (a store write per prompt
/// would cost more than the information is worth).
fn touch(store: &Store, id: &SessionId) -> Result<()> {
    let now = now_ms();
    match store.session(id)? {
        Some(rec) if now.saturating_sub(rec.last_seen) < 60_000 => return Ok(()),
        None => return Ok(()),
        Some(_) => {}
    }
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    if let Some(mut rec) = tx.session(id)? {
        rec.last_seen = now;
        tx.put_session(&rec)?;
    }
    Ok(())
}

/// The terminal is gone: its turn, if any, is over. The record is left as it is: whether a
/// terminal is live is its `claude` process being alive, and SessionEnd hooks share a
/// 1.5 s budget, so no store lock here.
fn session_end(store: &Store, id: &SessionId, pid: Option<u32>) -> Result<u8> {
    if turn::run_child_of(store, id).is_some() {
        return Ok(exit::OK);
    }
    turn::end_terminal_turn(store, id, pid)?;
    Ok(exit::OK)
}
