//! Claude Code's side: its config dir, where it keeps transcripts, the `claude` that `run`
//! starts and reading its result, its processes ([`process`]), its versions ([`versions`])
//! and its settings.json ([`settings`]). Which `claude` to run is the config's
//! (`crate::config::find_claude`). Below the store and the config: it imports neither.

pub mod commands;
pub mod hookless;
pub mod process;
pub mod settings;
pub mod versions;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::ident::SessionId;

/// Env var naming the `run` process whose child a `claude` is; its hooks see it.
pub const RUN_PID_ENV: &str = "CLAWSESS_RUN_PID";
/// Env var naming the key of the `run` whose child a `claude` is.
pub const RUN_KEY_ENV: &str = "CLAWSESS_RUN_KEY";

/// Marks a command file as clawsess's (`install` writes it as a YAML comment in the
/// frontmatter, which the model never sees; installs before v3 wrote it as an HTML comment in
/// the body), so uninstall removes it and nothing else, and the prompt hook knows `/attach`
/// is ours.
pub const COMMAND_MARKER: &str = "installed by clawsess; `clawsess uninstall` removes it";

/// Claude Code's config dir: `explicit`, else `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub fn config_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = directories::BaseDirs::new().context("could not find the home directory")?;
    Ok(home.home_dir().join(".claude"))
}

/// A project's folder name under `projects/`: every non-alphanumeric character becomes `-`.
pub fn encode_cwd(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Where Claude Code keeps the transcript of session `id` started in `cwd`.
pub fn transcript_path(config_dir: &Path, cwd: &Path, id: &str) -> PathBuf {
    config_dir.join("projects").join(encode_cwd(cwd)).join(format!("{id}.jsonl"))
}

/// The pid of another process running `claude` when it is a native install's version
/// (`.../claude/versions/X`), which may hold that version's lock: a headless `claude -p`
/// hangs at start while an interactive one holds it (Claude Code issue #91987). Looks at
/// /proc: a process whose executable, or whose script (`/bin/sh FILE`, `node FILE`), is it.
pub fn version_lock_holder(claude: &Path) -> Option<u32> {
    let target = std::fs::canonicalize(claude).ok()?;
    let native = target.parent().is_some_and(|dir| {
        dir.file_name() == Some("versions".as_ref())
            && dir.parent().and_then(Path::file_name) == Some("claude".as_ref())
    });
    if !native {
        return None;
    }
    let me = std::process::id();
    let mut found: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && runs(pid, &target) && !child_of(pid, me))
        .collect();
    found.sort_unstable();
    found.first().copied()
}

/// Whether process `pid` runs `exe`, as its executable or as the script its interpreter runs.
fn runs(pid: u32, exe: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if std::fs::read_link(proc.join("exe")).is_ok_and(|p| p == exe) {
        return true;
    }
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else { return false };
    let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_default();
    cmdline.split(|&b| b == 0).take(2).filter(|arg| !arg.is_empty()).any(|arg| {
        let arg = Path::new(std::ffi::OsStr::from_bytes(arg));
        std::fs::canonicalize(cwd.join(arg)).is_ok_and(|p| p == exe)
    })
}

/// Whether `pid`'s parent is `parent` (our own claude is not the one holding the lock).
fn child_of(pid: u32, parent: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
}

/// What `claude -p --output-format json` printed.
#[derive(Debug, Clone)]
pub struct ClaudeResult {
    /// Every field claude printed.
    pub fields: Map<String, Value>,
}

impl ClaudeResult {
    /// Parses claude's stdout: one JSON object (the last JSON line, should it print more).
    pub fn parse(stdout: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(stdout);
        let found = text
            .lines()
            .rev()
            .filter(|l| l.trim_start().starts_with('{'))
            .find_map(|l| serde_json::from_str::<Map<String, Value>>(l).ok())
            .or_else(|| serde_json::from_str::<Map<String, Value>>(text.trim()).ok());
        match found {
            Some(fields) => Ok(Self { fields }),
            None if text.trim().is_empty() => bail!("claude printed nothing"),
            None => bail!("claude did not print a JSON result: {}", crate::sys::one_line(&text, 300)),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.fields.get("session_id").and_then(Value::as_str)
    }

    /// The reply text.
    pub fn result(&self) -> &str {
        self.fields.get("result").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the turn failed: claude says so, or a hook refused the prompt (claude then
    /// reports success with the refusal as the result and never asks the model).
    pub fn is_error(&self) -> bool {
        self.fields.get("is_error").and_then(Value::as_bool).unwrap_or(false)
            || self.fields.get("subtype").and_then(Value::as_str).is_some_and(|s| s != "success")
            || self.refused()
    }

    /// Whether a hook refused the prompt. Every version reports such a turn as a success
    /// that never asked the model (no token in `usage`) and replies nothing: from 2.1.200
    /// the reply is "UserPromptSubmit operation blocked by hook: ...", before that it is
    /// empty (and `num_turns` counts something else, not 0). Either is taken, so the English
    /// text is one signal, not the only one. A local slash command that prints nothing
    /// (`/clear`, only with `run --allow-slash`) looks the same on versions before 2.1.200.
    pub fn refused(&self) -> bool {
        let text = self.result();
        text.starts_with("UserPromptSubmit operation blocked by hook")
            || (text.trim().is_empty() && self.asked_no_model())
    }

    /// `usage` is there and counts no token in or out: the model was never asked.
    fn asked_no_model(&self) -> bool {
        let Some(usage) = self.fields.get("usage").and_then(Value::as_object) else {
            return false;
        };
        ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
            .iter()
            .all(|k| usage.get(*k).and_then(Value::as_u64).unwrap_or(0) == 0)
    }
}

/// One claude turn, as `run` starts it (driven by `crate::live::LiveTurn`).
#[derive(Clone, Copy)]
pub struct Turn<'a> {
    pub claude: &'a Path,
    pub session: &'a SessionId,
    /// Resume the session (else start it with `--session-id`).
    pub resume: bool,
    pub cwd: &'a Path,
    /// The key whose turn it is, for the child's hooks.
    pub key: &'a str,
    /// Arguments passed on with `-A`.
    pub extra: &'a [String],
}

/// How a turn's `claude` ended.
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
}

/// `claude` as `run` starts it, in `cwd` for `key`'s turn, with piped stdin and stdout and no
/// arguments yet.
pub(crate) fn child_command(claude: &Path, cwd: &Path, key: &str) -> Command {
    let mut cmd = Command::new(claude);
    cmd.current_dir(cwd)
        .env(RUN_PID_ENV, std::process::id().to_string())
        .env(RUN_KEY_ENV, key)
        // We may be running inside a Claude Code Bash tool: the child is its own session.
        .env_remove("CLAUDECODE")
        .env_remove("CLAUDE_CODE_SESSION_ID")
        .env_remove("CLAUDE_ENV_FILE")
        .env_remove("CLAUDE_PID")
        .env_remove("CLAWSESS_SESSION_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The child does not outlive us: if we are SIGKILLed the kernel sends it SIGTERM, and
    // the next run waits for it (its pid is in the run lock's holder note). The lock fd is
    // not inherited: whatever claude starts in the background must not hold the session.
    // SAFETY: prctl is async-signal-safe.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

impl Outcome {
    /// claude's JSON result, or an error saying how claude ended without one.
    pub fn result(&self) -> Result<ClaudeResult> {
        ClaudeResult::parse(&self.stdout).map_err(|err| {
            let how = match (self.code, self.signal) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "ended".into(),
            };
            err.context(format!("claude {how} without a result"))
        })
    }

    /// The exit status `run` passes on: claude's, 1 when claude said 0 but the turn failed,
    /// 128+N when it was killed by signal N.
    pub fn exit_code(&self, failed: bool) -> u8 {
        match (self.code, self.signal) {
            (Some(0), _) if failed => crate::exit::FAILURE,
            (Some(code), _) => u8::try_from(code).unwrap_or(crate::exit::FAILURE),
            (None, Some(sig)) => 128u8.saturating_add(sig as u8),
            (None, None) => crate::exit::FAILURE,
        }
    }
}

/// The child that SIGTERM, SIGINT and SIGHUP are forwarded to (as SIGTERM), and the signal
/// caught. Statics, because a signal handler can only touch those safely.
static CHILD: AtomicI32 = AtomicI32::new(0);
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// Forwards SIGTERM, SIGINT and SIGHUP to the turn's child while it is alive. A plain handler
/// (atomics and kill(2), both async-signal-safe) rather than a watcher thread: `run` is a
/// hot path. Dropping it restores the previous handling.
pub(crate) struct ForwardSignals {
    ids: Vec<signal_hook::SigId>,
}

impl ForwardSignals {
    pub(crate) fn install() -> Result<Self> {
        CAUGHT.store(0, Ordering::SeqCst);
        let mut ids = Vec::new();
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
            ids.push(id);
        }
        Ok(Self { ids })
    }

    pub(crate) fn forward_to(&self, pid: u32) {
        CHILD.store(pid as i32, Ordering::SeqCst);
        if self.caught().is_some() {
            // Caught before the child existed: stop it now. SAFETY: our own, unreaped child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    pub(crate) fn caught(&self) -> Option<i32> {
        Some(CAUGHT.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

impl Drop for ForwardSignals {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_encoding_replaces_every_non_alphanumeric() {
        assert_eq!(encode_cwd(Path::new("/home/me/my_proj.v2")), "-home-me-my-proj-v2");
    }

    #[test]
    fn result_parsing_takes_the_json_line() {
        let out = b"warning: something\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"s\",\"result\":\"hi\"}\n";
        let r = ClaudeResult::parse(out).unwrap();
        assert_eq!((r.session_id(), r.result(), r.is_error()), (Some("s"), "hi", false));
        let r = ClaudeResult::parse(br#"{"subtype":"error_max_turns","is_error":false}"#).unwrap();
        assert!(r.is_error());
        let blocked = br#"{"subtype":"success","is_error":false,"num_turns":0,"result":"UserPromptSubmit operation blocked by hook:\n[x]: no"}"#;
        assert!(ClaudeResult::parse(blocked).unwrap().is_error());
        assert!(ClaudeResult::parse(b"").is_err());
        assert!(ClaudeResult::parse(b"Error: boom").unwrap_err().to_string().contains("boom"));
    }

    /// A prompt refused by a hook (exit 2) under `claude -p --output-format json`, as each
    /// version printed it (fields that tell nothing left out), next to an answered turn.
    #[test]
    fn a_refused_prompt_is_an_error_on_every_version() {
        let usage0 = r#""usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}"#;
        let usage1 = r#""usage":{"input_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}"#;
        let blocked =
            r#""UserPromptSubmit operation blocked by hook:\n[h prompt]: no\n\n\nOriginal prompt: x\n""#;
        let refused = [
            // 1.0.128, 2.0.0 and 2.0.77 (num_turns 5 and 7), 2.1.100 (9): empty result.
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":5,"result":"",{usage0},"modelUsage":{{}}}}"#
            ),
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":7,"result":"",{usage0},"modelUsage":{{}}}}"#
            ),
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":9,"result":"","stop_reason":null,{usage0}}}"#
            ),
            // 2.1.212 and 2.1.330: num_turns 0 and the English text.
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":{blocked},"stop_reason":null,{usage0}}}"#
            ),
        ];
        for text in &refused {
            let r = ClaudeResult::parse(text.as_bytes()).unwrap();
            assert!(r.refused() && r.is_error(), "{text}");
        }
        let answered = [
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"hi",{usage1}}}"#
            ),
            // An empty reply the model did give is an answer.
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"",{usage1}}}"#
            ),
            // A local command (`run --allow-slash -- /cost` on 2.1.330): no model, but a reply.
            format!(
                r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":"Estimated cost: $0",{usage0}}}"#
            ),
            // No usage at all: nothing says the model was not asked.
            r#"{"type":"result","subtype":"success","is_error":false,"result":""}"#.to_owned(),
        ];
        for text in &answered {
            let r = ClaudeResult::parse(text.as_bytes()).unwrap();
            assert!(!r.refused() && !r.is_error(), "{text}");
        }
    }
}
