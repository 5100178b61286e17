//! The Claude Code hooks: read the hook JSON (bounded), hand it to the turn protocol
//! (`turn::hooks`), and answer Claude Code. A hook never breaks Claude Code: whatever goes
//! wrong is one line on stderr and exit 0; only prompt-submit's deliberate refusal exits 2.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Run;
use crate::cli::Hook;
use crate::exit;
use crate::ident::SessionId;
use crate::store::Store;
use crate::turn::hooks::{self, Answer, Event, EventName, HookInput, MAX_INPUT, Refusal, Who};

/// How long a hook waits for its input before giving up.
const INPUT_WAIT: Duration = Duration::from_secs(5);

impl Run for Hook {
    fn run(&self) -> Result<u8> {
        let name = match self {
            Hook::SessionStart => "session-start",
            Hook::PromptSubmit => "prompt-submit",
            Hook::Stop => "stop",
            Hook::PreCompact => "pre-compact",
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
    fn event_name(&self) -> EventName {
        match self {
            Hook::SessionStart => EventName::SessionStart,
            Hook::PromptSubmit => EventName::PromptSubmit,
            Hook::Stop => EventName::Stop,
            Hook::PreCompact => EventName::PreCompact,
            Hook::SessionEnd => EventName::SessionEnd,
        }
    }

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
        let (id, event) = input.event(self.event_name())?;
        let store = Store::open()?;
        let who = Who::of_hook(&store, &id);
        let answer = hooks::handle(&store, &id, event, &who)?;
        if matches!(self, Hook::SessionStart)
            && let Some(env_file) = std::env::var_os("CLAUDE_ENV_FILE").filter(|f| !f.is_empty())
        {
            hooks::export_session_id(&id, Path::new(&env_file))?;
        }
        let code = answer_claude(answer, &id, self.event_name());
        if matches!(self, Hook::SessionEnd) {
            // One stat; when due, a prune in the background (the hook does not wait for it).
            let _ = crate::prune::auto::poke(&store, crate::prune::auto::Interval::Unknown);
        }
        code
    }
}

/// Tells Claude Code the answer: context on stdout, or a refusal (exit 2, the reason on
/// stderr, and for a non-interactive caller an interrupt so that it sees a failure).
fn answer_claude(answer: Answer, id: &SessionId, event: EventName) -> Result<u8> {
    match answer {
        Answer::Quiet => Ok(exit::OK),
        Answer::Context(text) => {
            let out = serde_json::json!({
                "hookSpecificOutput": { "hookEventName": "UserPromptSubmit", "additionalContext": text }
            });
            crate::outln!("{out}")?;
            Ok(exit::OK)
        }
        Answer::Command(command) => {
            let shown = command.run(id);
            answer_claude(Answer::Refuse(Refusal { reason: shown, interrupt: None }), id, event)
        }
        Answer::Refuse(Refusal { reason, interrupt }) => {
            // Claude Code from 2.1.x shows a block's reason alone (without the hook's command
            // line and the prompt); older ones read the exit status and stderr. Either way the
            // person sees it under "UserPromptSubmit operation blocked by hook:", and a `system`
            // line with it goes on the process's branch of the transcript (no message).
            let mut block = serde_json::json!({ "decision": "block", "reason": reason });
            if event == EventName::PromptSubmit {
                block["hookSpecificOutput"] = serde_json::json!({ "hookEventName": "UserPromptSubmit", "suppressOriginalPrompt": true });
            }
            crate::outln!("{block}")?;
            let _ = writeln!(std::io::stderr(), "{reason}");
            if let Some((pid, signal)) = interrupt {
                crate::claude::process::interrupt(pid, signal, &reason);
            }
            Ok(exit::BLOCK)
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

/// Reads stdin to its end within `wait`; past `max` bytes the rest is read and dropped.
/// Returns the bytes kept and whether they are the whole input.
///
/// It reads through stdin's own buffer (`fill_buf`), with no buffer on the stack: a 64 KiB
/// one made every hook touch 16 fresh stack pages, 16 page faults of a hook's ~95.
fn read_stdin_bounded(max: usize, wait: Duration) -> Result<(Vec<u8>, bool)> {
    let deadline = Instant::now() + wait;
    let mut stdin = std::io::stdin().lock();
    let mut out = Vec::new();
    let mut whole = true;
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
        let buf = match stdin.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("could not read the hook input"),
        };
        let n = buf.len();
        if n == 0 {
            return Ok((out, whole));
        }
        let keep = n.min(max.saturating_sub(out.len()));
        whole &= keep == n;
        out.extend_from_slice(&buf[..keep]);
        stdin.consume(n);
    }
}

/// A prompt whose hook input is too large to read whole must still not get through a session
/// another surface holds (see `hooks::unread_prompt`); if no session can be told, the prompt
/// is refused: letting it through could fork a held session.
fn prompt_submit_unread(prefix: &[u8]) -> Result<u8> {
    let env_session = std::env::var("CLAUDE_CODE_SESSION_ID").ok();
    let (id, mode) = hooks::unread_prompt(prefix, env_session.as_deref())?;
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
    let store = Store::open()?;
    let who = Who::of_hook(&store, &id);
    answer_claude(
        hooks::handle(&store, &id, Event::PromptSubmit { prompt: String::new(), cwd: None, mode }, &who)?,
        &id,
        EventName::PromptSubmit,
    )
}
