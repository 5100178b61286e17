//! Who a claude process is, from what Claude Code and clawsess put in its hooks' environment.

use crate::ident::Key;
use crate::store::Starter;

/// Env var that makes a claude process surface K: an Agent SDK bot passes it in the SDK's
/// `env` option, a script exports it before `claude -p`.
pub const KEY_ENV: &str = "CLAWSESS_KEY";

/// Env var with the token of the turn `clawsess queue` holds for this claude process (see
/// `exclusion::take_claim`): its caller passes it in the SDK's `env` option.
pub const CLAIM_ENV: &str = "CLAWSESS_CLAIM";

/// What kind of Claude Code a process is (`$CLAUDE_CODE_ENTRYPOINT`: `cli` for an
/// interactive terminal, `sdk-cli` for `claude -p`, `sdk-py` / `sdk-ts` for the Agent SDKs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person's terminal (also an IDE, and versions that do not say).
    Interactive,
    /// `claude -p`.
    Print,
    /// An Agent SDK bot.
    Sdk,
}

impl Kind {
    /// From `$CLAUDE_CODE_ENTRYPOINT` (and `$CLAUDE_AGENT_SDK_VERSION`, which the Python SDK
    /// always sets).
    pub fn from_entrypoint(entrypoint: Option<&str>, sdk_version: bool) -> Kind {
        match entrypoint {
            _ if sdk_version => Kind::Sdk,
            Some("sdk-cli") => Kind::Print,
            Some(e) if e.starts_with("sdk") => Kind::Sdk,
            _ => Kind::Interactive,
        }
    }
}

/// A claude process (not `run`'s own child) as the turn protocol sees it.
#[derive(Debug, Clone)]
pub struct ClaudeProcess {
    /// Its pid, when the hook could tell (see `process::hook_claude`).
    pub pid: Option<u32>,
    /// Its start time, so a reused pid is not taken for it.
    pub start: Option<u64>,
    pub kind: Kind,
    /// The surface key it speaks for (`CLAWSESS_KEY`).
    pub key: Option<Key>,
    /// The token of a turn `clawsess queue` holds for it (`CLAWSESS_CLAIM`).
    pub claim: Option<String>,
}

impl ClaudeProcess {
    /// The claude process of the hook running now, from the process tree and the env. An
    /// invalid `CLAWSESS_KEY` is said on stderr and ignored.
    pub fn of_hook() -> Self {
        let (pid, start) = crate::claude::process::hook_claude().unzip();
        let key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty()).and_then(|k| match Key::parse(&k) {
            Ok(key) => Some(key),
            Err(err) => {
                eprintln!("clawsess: {KEY_ENV} ignored: {err:#}");
                None
            }
        });
        let entrypoint = std::env::var("CLAUDE_CODE_ENTRYPOINT").ok();
        let sdk = std::env::var_os("CLAUDE_AGENT_SDK_VERSION").is_some_and(|v| !v.is_empty());
        let claim = std::env::var(CLAIM_ENV).ok().filter(|c| !c.is_empty());
        let kind = Kind::from_entrypoint(entrypoint.as_deref(), sdk);
        Self { pid, start: start.flatten(), kind, key, claim }
    }

    /// How to make a refusal of this process's prompt visible to its caller without it
    /// writing anything on its stale leaf: none for a terminal (it shows the reason and puts
    /// the prompt back); SIGTERM for a one-turn `claude -p` (exit 143, nothing written; an
    /// interrupt would leave a dead branch); SIGKILL for a process kept open (interrupted or
    /// terminated it would exit and checkpoint its stale leaf, and a later resume would lose
    /// the other surfaces' turns).
    pub fn interrupt(&self) -> Option<(u32, i32)> {
        if self.kind == Kind::Interactive {
            return None;
        }
        // Only a process the process tree shows to be a claude is ever signalled. (Read only
        // when a prompt is refused: `/proc` reads a hook otherwise has no use for.)
        let pid = self.pid.filter(|&pid| crate::claude::process::is_claude(pid))?;
        // It reads its prompts as stream-json (`--input-format stream-json`: a process kept
        // open for many turns, as the Agent SDK runs it), so it outlives one turn.
        Some((pid, if reads_stream_json(pid) { libc::SIGKILL } else { libc::SIGTERM }))
    }

    /// Its name in messages and the catch-up log: its key, else what it is.
    pub fn surface(&self) -> String {
        match (&self.key, self.kind) {
            (Some(key), _) => key.to_string(),
            (None, Kind::Interactive) => "terminal".to_owned(),
            (None, Kind::Print) => "claude -p".to_owned(),
            (None, Kind::Sdk) => "Agent SDK".to_owned(),
        }
    }

    pub fn interactive(&self) -> bool {
        self.kind == Kind::Interactive
    }

    /// Who started a session this process starts: a person only for interactive Claude Code.
    pub fn starter(&self) -> Starter {
        if self.interactive() { Starter::Person } else { Starter::Bot }
    }
}

/// Whether `pid`'s command line has `--input-format stream-json`.
fn reads_stream_json(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2).any(|w| w[0] == b"--input-format" && w[1] == b"stream-json")
        || args.iter().any(|a| *a == b"--input-format=stream-json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoints_tell_terminals_from_print_and_sdk_processes() {
        assert_eq!(Kind::from_entrypoint(Some("cli"), false), Kind::Interactive);
        assert_eq!(Kind::from_entrypoint(None, false), Kind::Interactive);
        assert_eq!(Kind::from_entrypoint(Some("claude-vscode"), false), Kind::Interactive);
        assert_eq!(Kind::from_entrypoint(Some("sdk-cli"), false), Kind::Print);
        assert_eq!(Kind::from_entrypoint(Some("sdk-py"), false), Kind::Sdk);
        assert_eq!(Kind::from_entrypoint(Some("sdk-ts"), false), Kind::Sdk);
        assert_eq!(Kind::from_entrypoint(Some("sdk-cli"), true), Kind::Sdk);
    }
}
