//! Each Claude Code hook event as one call of the turn protocol: the hook's JSON (a wire type
//! exactly as Claude Code sends it) becomes an [`Event`], and [`handle`] says what to answer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::catchup::{self, TURN_PROMPT_MAX};
use super::exclusion;
use super::fork;
use super::record::{self, Start};
use super::surface::ClaudeProcess;
use crate::claude;
use crate::config::Behind;
use crate::ident::{SessionId, shorten};
use crate::store::{BusyMarker, FORMAT, HOOK_LOCK_WAIT, SessionRecord, Store, now_ms};

/// The hook JSON exactly as Claude Code sends it; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct HookInput {
    pub session_id: Option<String>,
    pub transcript_path: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub source: Option<String>,
    pub session_title: Option<String>,
    /// UserPromptSubmit.
    pub prompt: Option<String>,
    /// UserPromptSubmit (and PreToolUse, PermissionRequest, PostToolUse, Stop): the claude's
    /// permission mode now, as a person may have switched it (Shift+Tab) since it started.
    pub permission_mode: Option<String>,
    /// Stop.
    pub last_assistant_message: Option<String>,
}

/// A hook event, checked.
#[derive(Debug)]
pub enum Event {
    SessionStart(Start),
    PromptSubmit {
        prompt: String,
        /// The claude process's working directory, when Claude Code said.
        cwd: Option<PathBuf>,
        /// Its permission mode now, when Claude Code said.
        mode: Option<String>,
    },
    Stop {
        reply: String,
    },
    /// Claude Code is about to compact the conversation (`/compact`, or on its own).
    PreCompact,
    /// With the transcript Claude Code named, if it is a path one can read.
    SessionEnd {
        transcript: Option<PathBuf>,
    },
}

/// Which event a hook input is for (the hook command says; the input's
/// `hook_event_name` is not trusted over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    SessionStart,
    PromptSubmit,
    Stop,
    PreCompact,
    SessionEnd,
}

impl HookInput {
    /// The session and the checked event.
    pub fn event(self, name: EventName) -> Result<(SessionId, Event)> {
        let id = SessionId::parse(self.session_id.as_deref().context("hook input has no session_id")?)?;
        let event = match name {
            EventName::SessionStart => {
                let cwd = self.cwd.context("hook input has no cwd")?;
                if !cwd.is_absolute() {
                    bail!("hook input cwd {} is not absolute", cwd.display());
                }
                let transcript = match self.transcript_path {
                    Some(path) if path.is_absolute() => path,
                    _ => claude::transcript_path(&claude::config_dir(None)?, &cwd, id.as_str()),
                };
                let source = self.source.unwrap_or_else(|| "startup".into());
                Event::SessionStart(Start { cwd, transcript, source, title: self.session_title })
            }
            EventName::PromptSubmit => Event::PromptSubmit {
                prompt: self.prompt.unwrap_or_default(),
                cwd: self.cwd.filter(|c| c.is_absolute()),
                mode: self.permission_mode,
            },
            EventName::Stop => Event::Stop { reply: self.last_assistant_message.unwrap_or_default() },
            EventName::PreCompact => Event::PreCompact,
            EventName::SessionEnd => {
                Event::SessionEnd { transcript: self.transcript_path.filter(|p| p.is_absolute()) }
            }
        };
        Ok((id, event))
    }
}

/// Who the hook's claude process is.
#[derive(Debug, Clone)]
pub enum Who {
    /// `run`'s own child: its turn is the run's, already locked; `run` records it. With the
    /// fork note the run left for the model, if any.
    RunChild { fork_note: Option<String> },
    /// Any other claude process.
    Claude(ClaudeProcess),
}

impl Who {
    /// The hook's claude process, for session `id`.
    pub fn of_hook(store: &Store, id: &SessionId) -> Who {
        if let Some(holder) = exclusion::run_child_of(store, id) {
            Who::RunChild { fork_note: holder.note }
        } else {
            Who::Claude(ClaudeProcess::of_hook())
        }
    }
}

/// What the hook answers Claude Code.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing (exit 0, empty stdout).
    Quiet,
    /// Text for the model (UserPromptSubmit's `additionalContext`).
    Context(String),
    /// The prompt is refused with this reason.
    Refuse(Refusal),
    /// The prompt is one of clawsess's own slash commands: the hook runs it and shows its
    /// output to the person instead of sending the prompt (no model turn, whatever the
    /// session's state).
    Command(OwnCommand),
}

/// One of clawsess's own slash commands as typed in Claude Code: `/attach`, `/detach`,
/// `/sessions` (what `install` puts in `commands/`) or `/clawsess:attach` ... (the plugin's),
/// with its arguments. The UserPromptSubmit hook gets the prompt as typed (`/attach --key
/// telegram:1`), before Claude Code expands the command file (measured on 2.1.328).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCommand {
    /// `attach`, `detach` or `sessions`.
    pub name: &'static str,
    /// Its arguments, split at whitespace (they never go through a shell).
    pub args: Vec<String>,
}

/// clawsess's slash commands and the subcommand each runs.
const OWN_COMMANDS: [(&str, &str); 3] = [("attach", "attach"), ("detach", "detach"), ("sessions", "list")];

impl OwnCommand {
    /// The command `prompt` names, if it is one of clawsess's. `shadowed(name)` says whether
    /// `/name` (without the plugin's `clawsess:`) is someone else's command.
    pub fn parse(prompt: &str, shadowed: impl Fn(&str) -> bool) -> Option<OwnCommand> {
        let rest = prompt.trim().strip_prefix('/')?;
        let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let (plugin, bare) = match word.strip_prefix("clawsess:") {
            Some(bare) => (true, bare),
            None => (false, word),
        };
        let (name, _) = OWN_COMMANDS.iter().find(|(name, _)| *name == bare)?;
        if !plugin && shadowed(name) {
            return None;
        }
        Some(OwnCommand { name, args: args.split_whitespace().map(str::to_owned).collect() })
    }

    /// The `clawsess` arguments that do it (`/sessions` is `clawsess list`).
    pub fn clawsess_args(&self) -> Vec<String> {
        let sub = OWN_COMMANDS.iter().find(|(name, _)| *name == self.name).map_or(self.name, |(_, sub)| sub);
        std::iter::once(sub.to_string()).chain(self.args.iter().cloned()).collect()
    }

    /// Runs it in session `id` (this binary, as the command file's `!` line would, with `id`
    /// as this Claude Code's session) and returns what it printed, for the person.
    pub fn run(&self, id: &SessionId) -> String {
        let out = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .args(self.clawsess_args())
                .env("CLAUDE_CODE_SESSION_ID", id.as_str())
                .env("CLAWSESS_SESSION_ID", id.as_str())
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
        });
        self.shown(id, out)
    }

    /// What the person sees of a run of it: the command as typed and what it printed (or why
    /// it could not run), made printable.
    fn shown(&self, id: &SessionId, out: std::io::Result<std::process::Output>) -> String {
        let typed =
            std::iter::once(format!("/{}", self.name)).chain(self.args.iter().cloned()).collect::<Vec<_>>();
        let mut text = match out {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
                let err = String::from_utf8_lossy(&out.stderr);
                if !err.trim().is_empty() {
                    text = format!("{text}\n{}", err.trim_end()).trim_start().to_owned();
                }
                text
            }
            Err(err) => format!("clawsess: could not run clawsess {}: {err}", self.clawsess_args().join(" ")),
        };
        if self.name == "sessions" {
            text.push_str(&format!("\n(this conversation: {})", id.short()));
        }
        let head = format!("clawsess {} (done here; not sent to the model):", typed.join(" "));
        crate::sys::printable(&format!("{head}\n{text}"), true).into_owned()
    }
}

/// Largest hook input read; Claude Code's are a few hundred bytes plus the prompt.
pub const MAX_INPUT: usize = 4 * 1024 * 1024;

/// The session and the permission mode of a prompt whose hook input is too large to read
/// whole (`prefix` is its first bytes): the session from `env_session`
/// (`$CLAUDE_CODE_SESSION_ID`) or the input itself (Claude Code writes `session_id` first),
/// `None` when neither tells it. An error when the input is not a prompt's.
pub fn unread_prompt(
    prefix: &[u8],
    env_session: Option<&str>,
) -> Result<(Option<SessionId>, Option<String>)> {
    let head = String::from_utf8_lossy(&prefix[..prefix.len().min(64 * 1024)]);
    if !(head.trim_start().starts_with('{')
        && (head.contains("\"prompt\"") || head.contains("UserPromptSubmit")))
    {
        bail!("hook input is larger than {} MiB and is not a prompt; ignored", MAX_INPUT >> 20);
    }
    let id = env_session.and_then(|v| SessionId::parse(v).ok()).or_else(|| session_id_in(prefix));
    // Claude Code 2.1.328 writes `permission_mode` before `prompt`: the turn keeps it.
    let mode = head
        .split_once("\"permission_mode\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(mode, _)| mode.to_owned())
        .filter(|mode| mode.chars().all(|c| c.is_ascii_alphanumeric()));
    Ok((id, mode))
}

/// The value of the first `"session_id":"..."` in a piece of hook JSON.
fn session_id_in(bytes: &[u8]) -> Option<SessionId> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let at = text.find("\"session_id\"")?;
    let rest = text[at + "\"session_id\"".len()..].trim_start().strip_prefix(':')?.trim_start();
    let value = rest.strip_prefix('"')?.get(..36)?;
    SessionId::parse(value).ok()
}

/// Appends `export CLAWSESS_SESSION_ID=<id>` to `env_file` (`$CLAUDE_ENV_FILE`), so that the
/// session's Bash commands (and `/attach`) know it.
pub fn export_session_id(id: &SessionId, env_file: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(env_file)
        .with_context(|| format!("could not open CLAUDE_ENV_FILE {}", env_file.display()))?;
    writeln!(file, "export CLAWSESS_SESSION_ID={id}").context("could not write CLAUDE_ENV_FILE")
}

/// Whether `/name` in a Claude Code started in `cwd` is a command file that is not clawsess's
/// (the project's `.claude/commands/` or the user's `commands/`; `install` leaves such a file
/// alone).
pub fn command_shadowed(name: &str, cwd: Option<&std::path::Path>) -> bool {
    let dirs = cwd.map(|c| c.join(".claude")).into_iter().chain(claude::config_dir(None).ok());
    shadowed_in(name, dirs)
}

/// Whether `commands/NAME.md` in one of `dirs` is there and not clawsess's.
fn shadowed_in(name: &str, dirs: impl Iterator<Item = PathBuf>) -> bool {
    dirs.map(|d| d.join("commands").join(format!("{name}.md")))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .any(|text| !text.contains(claude::COMMAND_MARKER))
}

/// A refused prompt.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    /// The claude process to signal (pid, signal) so that the refusal is a failure its
    /// non-interactive caller sees (not a success that says "blocked"), and leaves no
    /// checkpoint on a stale leaf (see `ClaudeProcess::interrupt`).
    pub interrupt: Option<(u32, i32)>,
}

/// How long a prompt waits for another surface's turn: `$CLAWSESS_TURN_WAIT` seconds, else
/// the config file's `turn_wait`. A bad value is said on stderr and the default used.
pub fn turn_wait() -> Duration {
    let default = crate::config::DEFAULT_TURN_WAIT;
    crate::config::file_or_defaults().turn_wait().map(|w| w.value).unwrap_or_else(|err| {
        eprintln!("clawsess: {err:#}; using {} s", default.as_secs());
        default
    })
}

/// Room the prompt hook keeps inside its timeout for its own work (what `install` adds to
/// the wait).
pub const HOOK_ROOM: Duration = Duration::from_secs(30);
/// The prompt hook's timeout in the plugin's hooks/hooks.json.
pub const PLUGIN_PROMPT_TIMEOUT: Duration = Duration::from_secs(150);

/// How long a prompt may wait for another surface's turn: [`turn_wait`], but never past the
/// installed prompt hook's timeout less [`HOOK_ROOM`]. Claude Code lets the prompt through
/// when the hook is killed at its timeout: a longer wait would let a terminal answer while a
/// run does. `config`: Claude Code's config dir, whose settings.json holds the hook (as
/// `clawsess install` fitted it to the wait it saw); the plugin's is
/// [`PLUGIN_PROMPT_TIMEOUT`], taken when no settings hook says otherwise. (settings.json is
/// read at every prompt: a person may have edited the timeout.)
pub fn prompt_wait(config: Option<&std::path::Path>) -> Duration {
    let wait = turn_wait();
    let settings = config.and_then(|dir| std::fs::read(dir.join("settings.json")).ok());
    let timeout = settings
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
        .and_then(|settings| installed_prompt_timeout(&settings))
        .unwrap_or(PLUGIN_PROMPT_TIMEOUT);
    let most = timeout.saturating_sub(HOOK_ROOM);
    if wait > most {
        eprintln!(
            "clawsess: the turn wait ({} s, CLAWSESS_TURN_WAIT or the config file's turn_wait) outlasts \
             the prompt hook's timeout ({} s); waiting {} s at most (`clawsess install` with that \
             wait fits the hook to it)",
            wait.as_secs(),
            timeout.as_secs(),
            most.as_secs()
        );
        return most;
    }
    wait
}

/// For `doctor`: what is wrong when [`turn_wait`] does not fit the prompt hook's timeout in
/// Claude Code `settings` (see [`prompt_wait`]).
pub fn wait_mismatch(settings: &serde_json::Value) -> Option<String> {
    let wait = turn_wait();
    let timeout = installed_prompt_timeout(settings).unwrap_or(PLUGIN_PROMPT_TIMEOUT);
    (wait + HOOK_ROOM > timeout).then(|| {
        format!(
            "the turn wait (CLAWSESS_TURN_WAIT or turn_wait) is {} s but the prompt hook's timeout is \
             {} s: prompts wait {} s at most; run `clawsess install` with this wait to fit the hook \
             to it",
            wait.as_secs(),
            timeout.as_secs(),
            timeout.saturating_sub(HOOK_ROOM).as_secs()
        )
    })
}

/// The timeout of clawsess's prompt hook in Claude Code `settings` (the shortest, should
/// there be several), if it is there.
pub fn installed_prompt_timeout(settings: &serde_json::Value) -> Option<Duration> {
    use serde_json::Value;
    settings
        .pointer("/hooks/UserPromptSubmit")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|group| group.get("hooks").and_then(Value::as_array))
        .flatten()
        .filter(|hook| {
            hook.get("command")
                .and_then(Value::as_str)
                .is_some_and(|c| c.contains("clawsess") && c.trim_end().ends_with(" hook prompt-submit"))
        })
        // Claude Code's default for a command hook without one: 60 s.
        .map(|hook| Duration::from_secs(hook.get("timeout").and_then(Value::as_u64).unwrap_or(60)))
        .min()
}

/// How long SessionEnd waits for the store lock to log a stopped turn (its hooks share 1.5 s).
const STOPPED_LOG_WAIT: Duration = Duration::from_millis(500);

/// Handles one hook event of session `id` from the claude process `who`.
pub fn handle(store: &Store, id: &SessionId, event: Event, who: &Who) -> Result<Answer> {
    let process = match who {
        Who::RunChild { fork_note } => {
            match &event {
                Event::SessionStart(start) if store.session(id)?.is_none() => {
                    // A run resuming a recorded session writes the record once its turn is
                    // over (one durable write per bot turn); a new one is recorded now.
                    record::record_start(store, id, start, None)?;
                }
                Event::PromptSubmit { .. } if fork_note.is_some() => {
                    return Ok(Answer::Context(fork_note.clone().unwrap_or_default()));
                }
                _ => {}
            }
            return Ok(Answer::Quiet);
        }
        Who::Claude(process) => process,
    };
    match event {
        Event::SessionStart(start) => session_start(store, id, &start, process),
        Event::PromptSubmit { prompt, cwd, mode } => {
            // In a terminal, clawsess's own commands never reach the model: not a turn, so
            // neither busy nor behind stops them. (`claude -p /attach` still runs the command
            // file, whose output its caller reads.)
            if process.interactive()
                && let Some(command) =
                    OwnCommand::parse(&prompt, |name| command_shadowed(name, cwd.as_deref()))
            {
                return Ok(Answer::Command(command));
            }
            // A non-interactive process never waits (see `prompt_submit`): neither the config
            // file nor settings.json is read for it here.
            let wait = if process.interactive() {
                prompt_wait(claude::config_dir(None).ok().as_deref())
            } else {
                Duration::ZERO
            };
            let prompt = Prompt { text: &prompt, mode: mode.as_deref() };
            prompt_submit(store, id, prompt, process, wait, Behind::from_env)
        }
        Event::Stop { reply } => stop(store, id, &reply, process),
        Event::PreCompact => pre_compact(store, id, process),
        Event::SessionEnd { transcript } => {
            // SessionEnd hooks share a 1.5 s budget: the store lock only for a turn that was
            // stopped (no Stop came), waited for briefly; else it is lost for catch-up.
            if let Some(marker) = exclusion::end_process_turn(store, id, process.pid)?
                && let Err(err) = catchup::log_stopped_turn(store, id, &marker, STOPPED_LOG_WAIT)
            {
                eprintln!("clawsess: could not log the stopped turn: {err:#}");
            }
            // Claude Code has written its exit checkpoint: one left on a stale branch (a
            // terminal refused as behind and closed without /resume) would make every later
            // resume drop the other surfaces' turns. Only with the transcript at rest: while
            // another surface's turn is being written, that turn's own checkpoint (or the next
            // `run`) settles it.
            if let Some(transcript) = transcript
                && exclusion::busy_by(store, id).ok().flatten().is_none()
                && let Err(err) = fork::at_exit(store, id, &transcript)
            {
                eprintln!("clawsess: could not check the transcript's branches: {err:#}");
            }
            Ok(Answer::Quiet)
        }
    }
}

fn session_start(store: &Store, id: &SessionId, start: &Start, process: &ClaudeProcess) -> Result<Answer> {
    // A reload inside a live process (`/resume`, `/clear`) loads what is there now; a
    // process's first load happened after its start-up (`catchup::first_load_ms`), and a turn
    // that ended later may or may not be in what it read: counted as missed.
    // A run that died mid-turn left its turn unlogged: logged now, it counts as loaded by
    // this process (which read it), not as missed.
    exclusion::recover_if_free(store, id);
    // The record and the turn-log cursor under one lock: one lock taken, each file read once.
    let now = now_ms();
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    let reload = record::record_start_locked(&tx, id, start, Some(process), now)?;
    // A compaction summarises what the process had in memory: it loaded nothing new, and
    // stays behind on whatever it had missed.
    let compacted = reload && start.source == "compact";
    if let Some(pid) = process.pid.filter(|_| !compacted) {
        let loaded_at = || if reload { now_ms() } else { catchup::first_load_ms(pid).unwrap_or_else(now_ms) };
        catchup::loaded_locked(&tx, id, pid, loaded_at)?;
    }
    Ok(Answer::Quiet)
}

/// A prompt as its UserPromptSubmit hook tells it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prompt<'a> {
    pub text: &'a str,
    /// The claude's permission mode at this prompt (`permission_mode`).
    pub mode: Option<&'a str>,
}

/// Takes the session's turn for `process` (waiting up to `wait` for another surface's turn),
/// then checks that the process is not behind (`behind`, asked only then, says what to do with
/// one that is). The turn's marker keeps the prompt's permission mode: a send from this turn
/// is never looser than it (`perms`); it rides on the marker written for every prompt
/// anyway, so it costs no write of its own.
pub fn prompt_submit(
    store: &Store,
    id: &SessionId,
    prompt: Prompt<'_>,
    process: &ClaudeProcess,
    wait: Duration,
    behind: impl FnOnce() -> Behind,
) -> Result<Answer> {
    // A non-interactive process read the transcript before this hook ran: whatever turn it
    // would wait for, it could not see it (it would be behind and refused after the wait), so
    // it is refused at once. The waiting belongs before claude starts (`run --wait`, a bot's
    // own wait); a terminal waits, as the person can watch and cancel.
    let wait = if process.interactive() { wait } else { Duration::ZERO };
    let mut told = wait.is_zero();
    let on_wait = |why: &str| {
        if !told {
            eprintln!("clawsess: waiting up to {:.0} s: {why}", wait.as_secs_f64());
            told = true;
        }
    };
    // A claude handed the turn by `clawsess queue` takes it: that process waited in the queue
    // and holds the session for it (a claim that is not ready goes the way of any prompt).
    let claimed = match &process.claim {
        Some(token) => exclusion::take_claim(store, id, token, process.pid)?,
        None => None,
    };
    let gate = match claimed {
        Some(gate) => Ok(gate),
        None => exclusion::gate(store, id, process.pid, Instant::now() + wait, on_wait)?,
    };
    let gate = match gate {
        Ok(gate) => gate,
        Err(why) => {
            let reason = format!(
                "clawsess: this conversation is busy ({why}); send your prompt again when it is done"
            );
            return Ok(Answer::Refuse(Refusal { reason, interrupt: process.interrupt() }));
        }
    };
    // This process's own turn is still marked: it was stopped (Esc), which fires no hook.
    // Logged now as a finished turn, before the next one is marked over it.
    if let Some(marker) = store.busy(id)?.filter(|m| process.pid.is_some() && m.pid == process.pid)
        && let Err(err) = catchup::log_stopped_turn(store, id, &marker, HOOK_LOCK_WAIT)
    {
        eprintln!("clawsess: could not log this terminal's stopped turn: {err:#}");
    }
    let mut context = None;
    if let Some(pid) = process.pid {
        let missed = catchup::missed(store, id, pid)?;
        if !missed.is_empty() {
            // Asked only here: what to do with a process that is behind (the config file).
            match behind() {
                Behind::Refuse => {
                    let reason = catchup::behind_text(&missed, id, process.interactive());
                    return Ok(Answer::Refuse(Refusal { reason, interrupt: process.interrupt() }));
                }
                Behind::Note => {
                    context = Some(catchup::note(&missed));
                    catchup::mark_seen(store, id, pid)?;
                    // It answers on its old leaf knowing the other turns: they are a branch
                    // it has been told.
                    mark_told(store, id, Some(pid), true)?;
                }
            }
        }
    }
    let rec = store.session(id)?;
    if let Some(note) = fork_note(store, rec.as_ref(), process.pid) {
        mark_told(store, id, process.pid, false)?;
        context = Some(match context {
            Some(catch_up) => format!("{catch_up}\n{note}"),
            None => note,
        });
    }
    gate.open(&BusyMarker {
        v: FORMAT,
        pid: process.pid,
        pid_start: process.start,
        since: now_ms(),
        surface: Some(process.surface()),
        prompt: Some(shorten(prompt.text, TURN_PROMPT_MAX)),
        permission_mode: prompt.mode.map(str::to_owned),
        // Whatever this turn writes comes after (its prompt too, on the versions measured).
        transcript_len: rec.as_ref().map(|r| std::fs::metadata(&r.transcript).map_or(0, |m| m.len())),
    })?;
    touch(store, id, rec.as_ref())?;
    Ok(context.map_or(Answer::Quiet, Answer::Context))
}

/// Claude Code is about to compact the conversation (`/compact`, or on its own): the summary
/// is made from what this process holds in memory, and every later resume of the session
/// continues from it (measured on 2.1.328: a resume loads from the newest compaction, whatever
/// branch the newest checkpoint names). So a process that is behind, or compacting while
/// another surface answers, is refused: the summary would drop the other surfaces' turns.
fn pre_compact(store: &Store, id: &SessionId, process: &ClaudeProcess) -> Result<Answer> {
    if let Some(busy) = exclusion::busy_by(store, id)?
        && exclusion::busy_marker(store, id)?.is_none_or(|m| m.pid != process.pid)
    {
        let reason = format!(
            "clawsess: not compacting: another surface is answering this conversation ({busy}); \
             compact again when it is done"
        );
        return Ok(Answer::Refuse(Refusal { reason, interrupt: None }));
    }
    if let Some(pid) = process.pid {
        let missed = catchup::missed(store, id, pid)?;
        if !missed.is_empty() {
            let reason = format!(
                "clawsess: not compacting: the summary would lose the turns of other surfaces. {}",
                catchup::behind_text(&missed, id, process.interactive())
            );
            return Ok(Answer::Refuse(Refusal { reason, interrupt: None }));
        }
    }
    Ok(Answer::Quiet)
}

/// The process's turn is over: the session is free, and the turn goes to the log for every
/// other live process to catch up on.
fn stop(store: &Store, id: &SessionId, reply: &str, process: &ClaudeProcess) -> Result<Answer> {
    if let Some(marker) = exclusion::end_process_turn(store, id, process.pid)? {
        let tx = store.lock(HOOK_LOCK_WAIT)?;
        let prompt = marker.prompt.unwrap_or_default();
        catchup::log_turn(&tx, id, &process.surface(), process.pid, &prompt, reply)?;
    }
    Ok(Answer::Quiet)
}

/// The turns of a branch the conversation no longer follows, for a process's prompt on a
/// session known to have forked (see `fork::for_process`), unless this process was told them
/// (a live process keeps a hook's context for its later turns); a failure to read is said, not
/// fatal.
fn fork_note(store: &Store, rec: Option<&SessionRecord>, pid: Option<u32>) -> Option<String> {
    let rec = rec.filter(|r| r.forked)?;
    if pid.is_some_and(|pid| rec.told.contains(&pid)) {
        return None;
    }
    fork::for_process(store, &rec.id, &rec.transcript).unwrap_or_else(|err| {
        eprintln!("clawsess: could not check the transcript's branches: {err:#}");
        None
    })
}

/// The session's transcript has forked (`forked`: it forks now, a behind process answering
/// on its old leaf), and the claude process `pid` knows the other branch's turns: `list` says
/// `forked`, and that process is not told them again.
fn mark_told(store: &Store, id: &SessionId, pid: Option<u32>, forked: bool) -> Result<()> {
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    if let Some(before) = tx.session(id)? {
        let mut rec = before.clone();
        rec.forked |= forked;
        if let Some(pid) = pid {
            rec.told.retain(|&p| p != pid && crate::sys::pid_alive(p));
            rec.told.push(pid);
        }
        tx.update_session(&before, &rec)?;
    }
    Ok(())
}

/// Notes activity on the record (`rec`, as read before), at most once a minute (a store write
/// per prompt would cost more than the information is worth).
fn touch(store: &Store, id: &SessionId, rec: Option<&SessionRecord>) -> Result<()> {
    let now = now_ms();
    match rec {
        Some(rec) if now.saturating_sub(rec.last_seen) < 60_000 => return Ok(()),
        None => return Ok(()),
        Some(_) => {}
    }
    let tx = store.lock(HOOK_LOCK_WAIT)?;
    if let Some(before) = tx.session(id)? {
        let rec = SessionRecord { last_seen: now, ..before.clone() };
        tx.update_session(&before, &rec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::COMMAND_LOCK_WAIT;
    use crate::turn::surface::Kind;

    fn own(prompt: &str) -> Option<OwnCommand> {
        OwnCommand::parse(prompt, |_| false)
    }

    #[test]
    fn clawsess_commands_are_told_from_prompts_with_their_arguments() {
        let cmd = own("/attach --key telegram:1").unwrap();
        assert_eq!(
            (cmd.name, cmd.clawsess_args()),
            ("attach", vec!["attach".into(), "--key".into(), "telegram:1".into()])
        );
        assert_eq!(own("  /sessions ").unwrap().clawsess_args(), vec!["list".to_owned()]);
        assert_eq!(own("/clawsess:detach\t--key  k").unwrap().clawsess_args(), vec!["detach", "--key", "k"]);
        for prompt in ["attach", "/attachment", "/clawsess:list", "/other:attach", "please /detach", "/", ""]
        {
            assert_eq!(own(prompt), None, "{prompt:?}");
        }
    }

    #[test]
    fn a_bare_command_that_is_someone_elses_is_left_to_claude_code_and_the_plugins_form_is_not() {
        let shadowed = |name: &str| name == "sessions";
        assert_eq!(OwnCommand::parse("/sessions", shadowed), None);
        assert!(OwnCommand::parse("/clawsess:sessions", shadowed).is_some());
        assert!(OwnCommand::parse("/detach", shadowed).is_some());
    }

    #[test]
    fn a_command_file_without_our_marker_shadows_ours() {
        let dir = tempfile::tempdir().unwrap();
        let commands = dir.path().join(".claude").join("commands");
        std::fs::create_dir_all(&commands).unwrap();
        std::fs::write(commands.join("detach.md"), "my own detach").unwrap();
        std::fs::write(commands.join("attach.md"), format!("---\n---\n{}\n!`x`", claude::COMMAND_MARKER))
            .unwrap();
        let dirs = || [dir.path().join("nothing"), dir.path().join(".claude")].into_iter();
        assert!(shadowed_in("detach", dirs()));
        assert!(!shadowed_in("attach", dirs()));
        assert!(!shadowed_in("sessions", dirs()));
    }

    #[test]
    fn a_compaction_loads_nothing_new_and_a_process_that_is_behind_may_not_compact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let id = SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap();
        let me = std::process::id();
        let process = ClaudeProcess {
            pid: Some(me),
            start: crate::claude::process::start_time(me),
            kind: Kind::Interactive,
            key: None,
            claim: None,
        };
        let who = Who::Claude(process.clone());
        let start = |source: &str| {
            Event::SessionStart(Start {
                cwd: dir.path().to_owned(),
                transcript: dir.path().join(format!("{id}.jsonl")),
                source: source.into(),
                title: None,
            })
        };
        let log = |prompt: &str| {
            let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
            catchup::log_turn(&tx, &id, "telegram:1", None, prompt, "done").unwrap();
        };
        log("plan PORTO");
        handle(&store, &id, start("resume"), &who).unwrap();
        // Loaded again in the live process (`/resume`): it has seen everything until now.
        handle(&store, &id, start("resume"), &who).unwrap();
        assert_eq!(handle(&store, &id, Event::PreCompact, &who).unwrap(), Answer::Quiet, "up to date");
        log("book LISBON");
        // Claude Code says `compact` once it has compacted (without the hook, or on its own):
        // the process still holds only what it had, and stays behind.
        handle(&store, &id, start("compact"), &who).unwrap();
        assert!(!catchup::missed(&store, &id, me).unwrap().is_empty(), "a compaction is no reload");
        match handle(&store, &id, Event::PreCompact, &who).unwrap() {
            Answer::Refuse(r) => {
                assert!(
                    r.reason.contains("not compacting") && r.reason.contains("telegram:1"),
                    "{}",
                    r.reason
                );
                assert!(r.interrupt.is_none());
            }
            other => panic!("a process that is behind compacted: {other:?}"),
        }
        // `/resume` reloads: it may compact again.
        handle(&store, &id, start("resume"), &who).unwrap();
        assert_eq!(handle(&store, &id, Event::PreCompact, &who).unwrap(), Answer::Quiet);
    }

    #[test]
    fn a_prompt_too_large_to_read_keeps_its_session_and_mode_from_its_first_bytes() {
        let id = "0a1b2c3d-0000-4000-8000-000000000000";
        let head = format!(
            r#"{{"session_id": "{id}","transcript_path":"/t","permission_mode":"plan","prompt":"xxxx"#
        );
        let (found, mode) = unread_prompt(head.as_bytes(), None).unwrap();
        assert_eq!(found.unwrap().as_str(), id);
        assert_eq!(mode.as_deref(), Some("plan"));
        // The environment's session wins; a mode that is not a word is dropped.
        let other = "ffffffff-0000-4000-8000-000000000000";
        let head = r#"{"permission_mode":"a b","prompt":"x"#;
        let (found, mode) = unread_prompt(head.as_bytes(), Some(other)).unwrap();
        assert_eq!((found.unwrap().as_str(), mode), (other, None));
        assert_eq!(unread_prompt(br#"{"prompt":"x"#, None).unwrap(), (None, None));
        let err = unread_prompt(b"not json at all", None).unwrap_err().to_string();
        assert!(err.contains("is not a prompt"), "{err}");
    }

    #[test]
    fn session_start_exports_the_session_id_to_the_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "export A=1\n").unwrap();
        let id = SessionId::parse("0a1b2c3d-0000-4000-8000-000000000000").unwrap();
        export_session_id(&id, &file).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("export A=1\nexport CLAWSESS_SESSION_ID={id}\n")
        );
        let err = format!("{:#}", export_session_id(&id, &dir.path().join("no/env")).unwrap_err());
        assert!(err.starts_with("could not open CLAUDE_ENV_FILE"), "{err}");
    }

    #[test]
    fn an_own_command_shows_what_it_printed_under_the_command_as_typed() {
        use std::os::unix::process::ExitStatusExt;
        let id = SessionId::parse("0a1b2c3d-0000-4000-8000-000000000000").unwrap();
        let out = |stdout: &str, stderr: &str| {
            Ok(std::process::Output {
                status: std::process::ExitStatus::from_raw(0),
                stdout: stdout.as_bytes().to_vec(),
                stderr: stderr.as_bytes().to_vec(),
            })
        };
        let sessions = own("/sessions --limit 2").unwrap();
        assert_eq!(
            sessions.shown(&id, out("ID  NAME\n", "")),
            "clawsess /sessions --limit 2 (done here; not sent to the model):\nID  NAME\n(this conversation: 0a1b2c3d)"
        );
        let attach = own("/attach --key telegram:1").unwrap();
        assert_eq!(
            attach.shown(&id, out("", "clawsess: no such key\n\x1b[31m")),
            "clawsess /attach --key telegram:1 (done here; not sent to the model):\nclawsess: no such key\n\\u{1b}[31m"
        );
        let failed = attach.shown(&id, Err(std::io::Error::other("gone")));
        assert!(
            failed.ends_with("\nclawsess: could not run clawsess attach --key telegram:1: gone"),
            "{failed}"
        );
    }
}
