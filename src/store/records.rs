//! The records kept in the state dir, exactly as they are serialized.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ident::{Key, Name, RequestId, SessionId};

/// Who started a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Starter {
    /// A person, in a terminal (or any Claude Code that is not `clawsess run`'s child).
    Person,
    /// `clawsess run`.
    Run,
    /// Found by `clawsess import`.
    Import,
}

/// One Claude Code session: `sessions/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub v: u32,
    pub id: SessionId,
    pub cwd: PathBuf,
    pub transcript: PathBuf,
    /// The `source` of the last SessionStart (`startup`, `resume`, `clear`, ...).
    pub source: String,
    pub started_by: Starter,
    /// Unix milliseconds.
    pub first_seen: u64,
    pub last_seen: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// Turns answered through `clawsess run`.
    #[serde(default)]
    pub run_turns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The `claude` processes of persons' terminals open on it (from `$CLAUDE_PID`); dead
    /// ones are dropped at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminal_pids: Vec<u32>,
}

impl SessionRecord {
    /// Whether a person's terminal is open on the session.
    pub fn terminal_open(&self) -> bool {
        self.terminal_pids.iter().any(|&pid| crate::sys::pid_alive(pid))
    }

    /// Notes a terminal's `claude` process, forgetting the ones that have exited.
    pub fn add_terminal(&mut self, pid: u32) {
        self.terminal_pids.retain(|&p| p != pid && crate::sys::pid_alive(p));
        self.terminal_pids.push(pid);
    }
}

impl SessionRecord {
    /// A session first seen at `at` (Unix ms), with nothing else known yet.
    pub fn new(id: SessionId, cwd: PathBuf, transcript: PathBuf, started_by: Starter, at: u64) -> Self {
        Self {
            v: super::FORMAT,
            id,
            cwd,
            transcript,
            source: "startup".into(),
            started_by,
            first_seen: at,
            last_seen: at,
            name: None,
            run_turns: 0,
            title: None,
            terminal_pids: Vec::new(),
        }
    }
}

/// "Messages from `session` go here since `at`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub session: SessionId,
    pub at: u64,
}

/// One surface key: `keys/<hash>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    pub v: u32,
    pub key: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<Attachment>,
    /// The session `run` last used for this key while it was not attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<SessionId>,
    #[serde(default)]
    pub own_at: u64,
}

impl KeyState {
    pub fn new(key: Key) -> Self {
        Self { v: super::FORMAT, key, attached: None, own: None, own_at: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.attached.is_none() && self.own.is_none()
    }
}

/// The global attachment: `global.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GlobalState {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<Attachment>,
}

/// A session's name: `names/<hash>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameEntry {
    pub v: u32,
    pub name: Name,
    pub session: SessionId,
}

/// A terminal turn in progress: `busy/<id>.json`, from UserPromptSubmit to Stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusyMarker {
    pub v: u32,
    /// The terminal's `claude` process (`$CLAUDE_PID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub since: u64,
}

/// Who holds a session's run lock, written into the lock file while it is held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunHolder {
    pub key: String,
    pub pid: u32,
    pub since: u64,
    /// The run's `claude` child, once started: it may outlive a SIGKILLed run by a moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<u32>,
}

/// Turns that surfaces other than the terminal added: `turns/<id>.json`. The terminal's
/// prompt-submit hook reads what it has not seen yet (catch-up).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TurnLog {
    pub v: u32,
    pub next_seq: u64,
    pub turns: Vec<SurfaceTurn>,
    /// Per terminal `claude` pid: the first `seq` it has not seen.
    #[serde(default)]
    pub cursors: BTreeMap<u32, u64>,
}

impl TurnLog {
    /// Terminal `pid` has now seen every turn logged so far; cursors of terminals that have
    /// exited are dropped.
    pub fn mark_seen(&mut self, pid: u32) {
        self.cursors.retain(|&p, _| crate::sys::pid_alive(p));
        self.cursors.insert(pid, self.next_seq);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceTurn {
    pub seq: u64,
    pub key: String,
    pub at: u64,
    pub prompt: String,
    pub reply: String,
}

/// A tool call that `run --ask` puts to its caller: `requests/<id>.json`, answered by
/// `clawsess answer` from any process of the user. The run removes it when its turn ends; a
/// request whose run died is swept by the next live run and by `prune`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionRequest {
    pub v: u32,
    pub id: RequestId,
    pub session: SessionId,
    pub key: String,
    /// The `run` process waiting for the answer.
    pub run_pid: u32,
    pub tool: String,
    /// The tool's input, as claude gave it.
    pub input: serde_json::Value,
    /// Unix milliseconds.
    pub asked_at: u64,
    /// Unanswered by then (Unix ms), the run denies it.
    pub timeout_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<PermissionAnswer>,
}

/// How a permission request was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionAnswer {
    pub decision: Decision,
    /// Given to the model with a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    /// Nobody answered within the run's `--ask-timeout`: denied.
    Timeout,
}

/// `clawsess stop` asks the run `pid` answering a session to interrupt its turn:
/// `stop/<session id>.json`. The run removes it when it has seen it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopRequest {
    pub v: u32,
    pub pid: u32,
    pub at: u64,
}

/// How many surface turns a session's log keeps.
pub const TURN_LOG_MAX: usize = 20;

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl super::files::Versioned for $t {
            fn version(&self) -> Option<u32> {
                Some(self.v)
            }
        }
    )*};
}

versioned!(
    SessionRecord,
    KeyState,
    GlobalState,
    NameEntry,
    BusyMarker,
    TurnLog,
    PermissionRequest,
    StopRequest
);
