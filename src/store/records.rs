//! The records kept in the state dir, exactly as they are serialized.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ident::{Key, Name, RequestId, SessionId};

/// Who started a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Starter {
    /// A person, in an interactive Claude Code.
    Person,
    /// `clawsess run`.
    Run,
    /// Any other non-interactive Claude Code: `claude -p`, an Agent SDK bot.
    Bot,
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
    /// The key of the last turn `run` answered, and when it was recorded (Unix ms): with the
    /// transcript's last prompt, it tells which surface spoke last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn_key: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_turn_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The claude processes open on it other than `run`'s own (terminals, `claude -p`,
    /// Agent SDK bots); dead ones are dropped at the next start.
    #[serde(default, alias = "terminal_pids", skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<u32>,
    /// The surface key of the bot that started it (`CLAWSESS_KEY`, or `run --key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Key>,
    /// The transcript forked: a claude process that was behind was let through
    /// (`CLAWSESS_BEHIND=note`), or a `run` found turns on a branch the conversation no longer
    /// follows (see `turn::fork`). Turns of claude processes are then told that branch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forked: bool,
    /// Live claude processes that know the turns of the branch the conversation no longer
    /// follows (told them, or answered on it in note mode): not told again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<u32>,
    /// A random tag of the durable write that wrote this file (0 in records of before it):
    /// the session's [`LiveRecord`] counts only while it carries the same, so one written
    /// before the record's last durable write (its removal lost to a kill or a power loss)
    /// is never taken for newer than the record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stamp: u64,
}

impl SessionRecord {
    /// Whether a claude process (not `run`'s own) is open on the session.
    pub fn process_open(&self) -> bool {
        self.processes.iter().any(|&pid| crate::sys::pid_alive(pid))
    }

    /// Notes a claude process open on the session, forgetting the ones that have exited.
    pub fn add_process(&mut self, pid: u32) {
        self.processes.retain(|&p| p != pid && crate::sys::pid_alive(p));
        self.processes.push(pid);
    }

    /// Whether `self` and `other` say the same of everything that must survive a crash: all
    /// but the live processes (`processes`, `told`: pids, which a reboot ends), `last_seen`
    /// (the time of the last activity, which `prompt-submit` already notes at most once a
    /// minute; an older value after a power loss misleads no one) and the run counters
    /// (`run_turns`, `last_turn_key`, `last_turn_at`: what `list` and `status` show of `run`'s
    /// turns, and who spoke last, which the turn log says too; a power loss may take the last
    /// seconds' increments, see docs/STATE.md).
    pub fn same_durable(&self, other: &SessionRecord) -> bool {
        let volatile = |r: &SessionRecord| SessionRecord {
            processes: Vec::new(),
            told: Vec::new(),
            last_seen: 0,
            run_turns: 0,
            last_turn_key: None,
            last_turn_at: 0,
            ..r.clone()
        };
        serde_json::to_vec(&volatile(self)).ok() == serde_json::to_vec(&volatile(other)).ok()
    }

    /// The record as its live file says it is now: `live`, when it was written over this
    /// very durable write (the same [`stamp`](Self::stamp)), has the live processes, `told`, and
    /// the newer `last_seen`. A missing, unparseable or stale live file (`None`, or another
    /// `stamp`) leaves the record as it is: its pids are those of its last durable write (which
    /// wrote the live ones of then into it), as in records of before live files.
    pub fn merge_live(&mut self, live: Option<LiveRecord>) {
        let Some(live) = live.filter(|l| l.stamp == self.stamp) else { return };
        self.processes = live.processes;
        self.told = live.told;
        self.last_seen = self.last_seen.max(live.last_seen);
        // Written over this very record, so never behind it; a live file of an older clawsess
        // has no counters (0, none) and leaves the record's.
        self.run_turns = self.run_turns.max(live.run_turns);
        if live.last_turn_key.is_some() && live.last_turn_at >= self.last_turn_at {
            self.last_turn_key = live.last_turn_key;
            self.last_turn_at = live.last_turn_at;
        }
    }

    /// What of it a reboot makes meaningless, to be written as its live file.
    pub fn live(&self) -> LiveRecord {
        LiveRecord {
            v: super::FORMAT,
            stamp: self.stamp,
            last_seen: self.last_seen,
            processes: self.processes.clone(),
            told: self.told.clone(),
            run_turns: self.run_turns,
            last_turn_key: self.last_turn_key.clone(),
            last_turn_at: self.last_turn_at,
        }
    }
}

/// What a reboot makes meaningless of a session's record, and the run counters (what a power
/// loss may set back by its last seconds' turns): `live/<id>.json`, written
/// atomically (temp file and rename: a killed process leaves the old or the new one) but
/// never synced, when only these changed (see `Locked::update_session`). It overlays the
/// record whose [`stamp`](SessionRecord::stamp) it carries; the record's next durable write
/// carries these fields itself and removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub v: u32,
    /// The `stamp` of the record it overlays.
    #[serde(default)]
    pub stamp: u64,
    /// Unix milliseconds.
    pub last_seen: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<u32>,
    /// The run counters as of the last `run` turn (see [`SessionRecord::same_durable`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run_turns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn_key: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_turn_at: u64,
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
            last_turn_key: None,
            last_turn_at: 0,
            title: None,
            processes: Vec::new(),
            key: None,
            forked: false,
            told: Vec::new(),
            stamp: 0,
        }
    }
}

/// What a scan of the session records ([`Store::sessions_indexed_as`](super::Store)) makes
/// of each: the whole record, or only the part a reader needs ([`SessionHead`]). Taken from
/// the sessions index's entries as they are; a record read from its file is parsed whole
/// first (a new index is written from it) and then made into this.
pub trait Recorded: serde::de::DeserializeOwned + From<SessionRecord> + Send {
    /// Its format (`v`): one of another format is read again from its file.
    fn format(&self) -> u32;
    fn id(&self) -> &SessionId;
    /// See [`SessionRecord::merge_live`].
    fn merge_live(&mut self, live: Option<LiveRecord>);
}

impl Recorded for SessionRecord {
    fn format(&self) -> u32 {
        self.v
    }

    fn id(&self) -> &SessionId {
        &self.id
    }

    fn merge_live(&mut self, live: Option<LiveRecord>) {
        SessionRecord::merge_live(self, live);
    }
}

/// What ordering and filtering the sessions needs of a record (`sessions_list`'s light pass,
/// `crate::list`): its id, when it was last active (the newer of its record's and its live
/// file's), the bot's key that started it, the claude processes open on it. Parsed from the
/// same JSON as the whole record, every other field skipped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionHead {
    pub v: u32,
    pub id: SessionId,
    pub last_seen: u64,
    #[serde(default)]
    pub key: Option<Key>,
    #[serde(default, alias = "terminal_pids")]
    pub processes: Vec<u32>,
    #[serde(default)]
    pub stamp: u64,
}

impl From<SessionRecord> for SessionHead {
    fn from(rec: SessionRecord) -> Self {
        let SessionRecord { v, id, last_seen, key, processes, stamp, .. } = rec;
        SessionHead { v, id, last_seen, key, processes, stamp }
    }
}

impl Recorded for SessionHead {
    fn format(&self) -> u32 {
        self.v
    }

    fn id(&self) -> &SessionId {
        &self.id
    }

    /// As [`SessionRecord::merge_live`] does to these fields.
    fn merge_live(&mut self, live: Option<LiveRecord>) {
        let Some(live) = live.filter(|l| l.stamp == self.stamp) else { return };
        self.processes = live.processes;
        self.last_seen = self.last_seen.max(live.last_seen);
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// A claude process's turn in progress: `busy/<id>.json`, from UserPromptSubmit to Stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusyMarker {
    pub v: u32,
    /// The claude process whose turn it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its start time (`process::start_time`), so a reused pid is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    pub since: u64,
    /// Who it is: a key, or `terminal`, `claude -p`, `Agent SDK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    /// The prompt, shortened, for the catch-up log when the turn ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The claude's permission mode at the prompt (its UserPromptSubmit hook's
    /// `permission_mode`), which a person may have switched since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// How long the session's transcript was when the turn was marked: every line the turn
    /// writes lies after it (see `transcript::branches::stopped_by_interrupt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_len: Option<u64>,
}

impl BusyMarker {
    /// Who holds the turn, for messages.
    pub fn surface(&self) -> &str {
        self.surface.as_deref().unwrap_or("a terminal")
    }
}

/// Who holds a session's run lock, written into the lock file while it is held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunHolder {
    pub key: String,
    pub pid: u32,
    /// The run's start time (see `sys::start_time`), so a reused pid is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    pub since: u64,
    /// The run's `claude` child, once started: it may outlive a SIGKILLed run by a moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_start: Option<u64>,
    /// The keeper whose warm claude answers the turn (`run --warm`): that claude's hooks
    /// name the keeper, not the run, as the process whose child they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeper: Option<u32>,
    /// What the run's claude gets from its prompt hook as `additionalContext` (the turns of a
    /// branch the conversation no longer follows; see `turn::fork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The turn under way, once `run` has begun it: what the next taker of the lock needs to
    /// log it should this run die before it did (see `turn::catchup::recover_dead_turn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<HolderTurn>,
    /// The run let go of the lock with its turn not logged (the log could not be written): it
    /// no longer holds the session, whether or not it lives; the next taker logs the turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl RunHolder {
    /// Run `pid` of `key`, holding the lock since `since` (Unix ms), nothing else noted yet.
    pub fn new(key: String, pid: u32, since: u64) -> Self {
        Self {
            key,
            pid,
            pid_start: crate::claude::process::start_time(pid),
            since,
            child: None,
            child_start: None,
            keeper: None,
            note: None,
            turn: None,
            released: false,
        }
    }

    /// The token its turn is logged with: one run's turn is logged once, by the run or by
    /// whoever finds it died.
    pub fn token(&self) -> String {
        format!("run:{}:{}:{}", self.pid, self.pid_start.unwrap_or(0), self.since)
    }
}

/// A `run` turn as its run lock's note keeps it while it is not logged yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderTurn {
    /// The prompt, as the turn log keeps it (cut to `turn::catchup::TURN_PROMPT_MAX`).
    pub prompt: String,
    /// The session's transcript, where the turn's lines are.
    pub transcript: PathBuf,
}

/// The turns every surface added: `turns/<id>.json`, newest last. A live claude process's
/// prompt-submit hook reads what others added since it loaded the transcript (catch-up, and
/// whether it is behind).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TurnLog {
    pub v: u32,
    pub next_seq: u64,
    pub turns: Vec<SurfaceTurn>,
    /// Per claude process pid: the first `seq` it has not seen.
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

/// One finished turn in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceTurn {
    pub seq: u64,
    /// Who: a key, or `terminal`, `claude -p`, `Agent SDK`.
    pub key: String,
    /// The claude process that answered it, when it was not `run`'s: that process has it in
    /// memory already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_pid: Option<u32>,
    pub at: u64,
    pub prompt: String,
    pub reply: String,
    /// A `run` turn's token (see `RunHolder::token`): it is logged once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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
    /// Its start time, so that a reused pid is not taken for it (absent in older requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_pid_start: Option<u64>,
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
    /// With an allow: the tool input to run it with instead of claude's (the answers to an
    /// AskUserQuestion, put in by `clawsess answer --choice/--text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_input: Option<serde_json::Value>,
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

/// `run --steer`: a message for the turn in progress on a session, which the run `to_pid`
/// driving that turn writes into claude's input: `steer/<session>/<id>.json`. Changed only
/// under the store lock, so the driver taking it and the sender withdrawing it cannot both
/// happen; the driver writes the turn's events from then on to `<id>.events` next to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SteerRequest {
    pub v: u32,
    /// Also the `uuid` of the user message claude gets, whose `command_lifecycle` says when
    /// claude is done with it.
    pub id: String,
    pub session: SessionId,
    /// The run driving the turn; only it takes the message.
    pub to_pid: u32,
    /// The `run --steer` waiting on it.
    pub from_pid: u32,
    pub prompt: String,
    /// Image blocks before the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<serde_json::Value>,
    pub at: u64,
    pub state: SteerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SteerState {
    /// Written; not yet in claude's input.
    Pending,
    /// In claude's input: the turn's events follow in `<id>.events`, its result last.
    Taken,
    /// The turn ended (or cannot take messages) before the driver took it: the sender runs
    /// it as a turn of its own.
    Missed { why: String },
}

/// A turn waiting for a session (a run, a prompt hook): `queue/<session>/<id>.json`. Waiting
/// turns are served oldest first (see `turn::queue`); the waiter removes it once it has the
/// session or gives up, and one whose process is gone no longer counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueTicket {
    pub v: u32,
    pub id: String,
    pub pid: u32,
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Who waits: a run's key, or a claude process's surface.
    pub surface: String,
    /// Unix ms when it began to wait.
    pub at: u64,
}

/// Which queue a [`QueueTicket`] waits in: a session's (`queue/<session>/`: turns waiting
/// to answer it) or the claude cap's (`queue/claudes/`: turns waiting for a claude process
/// to be allowed to start, see `turn::cap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Session(&'a crate::ident::SessionId),
    Claudes,
}

/// A dir a waiter listens to (`Store::bell`): a queue, the claude slots, the busy markers,
/// the claims of interrupting runs on the next turn.
#[derive(Debug, Clone, Copy)]
pub enum Watched<'a> {
    Line(Line<'a>),
    Slots,
    Busy,
    Next,
}

/// A dir that `prune` removes once it is empty and quiet (see `Locked::remove_quiet_dir`).
#[derive(Debug, Clone, Copy)]
pub enum QuietDir<'a> {
    Queue(Line<'a>),
    Steer(&'a crate::ident::SessionId),
}

/// A process, named so that a reused pid is not taken for it: its pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    #[serde(default)]
    pub start: Option<u64>,
}

impl Proc {
    /// This process.
    pub fn me() -> Self {
        Self::of(std::process::id())
    }

    pub fn of(pid: u32) -> Self {
        Self { pid, start: crate::claude::process::start_time(pid) }
    }

    pub fn alive(&self) -> bool {
        crate::claude::process::process_alive(self.pid, self.start)
    }
}

/// One claude process clawsess started, counted against `CLAWSESS_MAX_CLAUDES`:
/// `claudes/<id>.json`, written under the store lock (see `turn::cap`). It counts while any
/// of `procs` lives (the run that took it, its claude, a keeper and its claude), so a slot of
/// processes that all died frees itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaudeSlot {
    pub v: u32,
    pub id: String,
    /// The run's key that took it.
    pub key: String,
    pub procs: Vec<Proc>,
    /// The session of the keeper that holds it (a warm claude), once one does.
    #[serde(default)]
    pub keeper_of: Option<crate::ident::SessionId>,
    /// Unix ms when it was taken.
    pub since: u64,
}

impl ClaudeSlot {
    /// Whether one of its processes lives.
    pub fn live(&self) -> bool {
        self.procs.iter().any(Proc::alive)
    }
}

/// `run --interrupt` stopped the turn on a session and goes next: `next/<session id>.json`.
/// While its process lives, every other turn (run or process) waits for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextTurn {
    pub v: u32,
    pub pid: u32,
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub at: u64,
}

/// `clawsess queue` holds a session for a claude process it hands the turn to (an Agent SDK
/// bot's): `claims/<session id>.json`. The claude's prompt hook, given the token
/// (`CLAWSESS_CLAIM`), takes the turn; every change is made under the store lock, so a claim
/// is taken once, or withdrawn, never both.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnClaim {
    pub v: u32,
    /// What the claude must show (`CLAWSESS_CLAIM`).
    pub token: String,
    /// The `clawsess queue` process holding the session for it.
    pub pid: u32,
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// The key it holds the session for.
    pub key: String,
    pub state: ClaimState,
    /// The claude process that took it (its prompt hook).
    #[serde(default)]
    pub claude: Option<u32>,
    /// Unix ms when it was made.
    pub at: u64,
}

/// Where a [`TurnClaim`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Waiting for the claude's prompt.
    Ready,
    /// A claude's prompt hook is taking it (once only).
    Taking,
    /// The claude's turn is marked busy: the session is its now.
    Taken,
    /// The claude's prompt was refused after all (it was behind): nobody's turn.
    Refused,
}

/// `clawsess stop` asks the run `pid` answering a session to interrupt its turn:
/// `stop/<session id>.json`. The run removes it when it has seen it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopRequest {
    pub v: u32,
    pub pid: u32,
    pub at: u64,
}

/// A warm session's keeper (`run --warm`): `warm/<id>.json`, next to its socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmNote {
    pub v: u32,
    pub session: SessionId,
    /// The keeper process, and its start time (so a reused pid is not taken for it).
    pub keeper: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeper_start: Option<u64>,
    /// The claude it keeps.
    pub claude: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude_start: Option<u64>,
    /// The claude executable, its cwd and the `-A` arguments it was started with: a run
    /// that asks for others cannot use it.
    pub claude_path: PathBuf,
    pub cwd: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// A digest of the claude-relevant environment it was started with (`warm::env_digest`:
    /// model, API key, base URL, proxies, ...): a run with another cannot use it. Absent in
    /// notes of older keepers (then no run can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The key whose run started it.
    pub key: String,
    /// Unix ms.
    pub started_at: u64,
    pub last_used: u64,
    /// It ends after this long without a turn.
    pub idle_ms: u64,
    pub turns: u64,
    /// The session as its last turn left it; `None` until its first turn is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh: Option<Fresh>,
    /// Its claude runs without hooks (`claude::hookless`): the settings, skills, agents and
    /// commands looked at to allow it, as they were. `None`: it runs with its hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hookless: Option<Vec<crate::sys::files::Stamp>>,
}

/// What a session looked like right after a warm process's turn: if anything differs now,
/// someone else wrote to it and the warm process is behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fresh {
    pub transcript: PathBuf,
    pub size: u64,
    /// The transcript's mtime, in ns since the epoch.
    pub mtime_ns: u64,
    /// The turn log's `next_seq`.
    pub next_seq: u64,
    /// Before that turn the transcript had no other branch and needed no correction (see
    /// `turn::fork`): while the claude stays fresh, the next turn on it need not look again.
    /// False in a note written before it was kept.
    #[serde(default)]
    pub unforked: bool,
    /// The kept claude was handed the other branch's turns (a fork note) by one of its turns,
    /// and holds them: while it stays fresh it is not told them again. (The fork check finds a
    /// note already told in the transcript, but Claude Code 2.0.77 does not write a hook's
    /// context where it looks.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub told: bool,
}

/// What `doctor --probe` found with one Claude Code version on this machine:
/// `probes/<version>.json`, one entry per claude binary probed (its newest probe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub v: u32,
    /// `2.1.331`.
    pub version: String,
    pub runs: Vec<ProbeRun>,
}

/// The Claude Code versions of the claude binaries a keeper started (`claude --version` takes
/// seconds on the node-based versions): `claude-versions.json`, at most
/// [`ClaudeVersions::MAX`] binaries, the newest last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaudeVersions {
    pub v: u32,
    pub binaries: Vec<ClaudeVersion>,
}

/// A claude binary as it was (path, size, mtime: a binary replaced in place is another one)
/// and the version it printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaudeVersion {
    pub binary: crate::sys::files::Stamp,
    pub version: String,
}

impl ClaudeVersions {
    /// The most binaries remembered.
    pub const MAX: usize = 16;
}

/// One binary's newest probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// The claude binary as found (`CLAWSESS_CLAUDE` or PATH).
    pub claude: PathBuf,
    /// Unix ms.
    pub at: u64,
    /// Every check passed.
    pub ok: bool,
    /// The checks that failed, by name.
    #[serde(default)]
    pub failed: Vec<String>,
}

impl ProbeRecord {
    /// Whether some binary of this version passed its newest probe.
    pub fn good(&self) -> bool {
        self.runs.iter().any(|r| r.ok)
    }
}

/// What `clawsess set` keeps for a key or a session: `settings/key-<hash>.json`,
/// `settings/<id>.json`. Every field is optional: unset means claude's own default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// Working dir of a new session (keys only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// How long claude stays warm after a turn, as `--warm` takes it (`10m`, `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<String>,
}

impl Settings {
    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }
}

/// Whose settings a [`SettingsRecord`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingsOf {
    Key(Key),
    Session(SessionId),
}

/// A key's or a session's settings, as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub v: u32,
    #[serde(flatten)]
    pub of: SettingsOf,
    pub settings: Settings,
    /// Unix ms of the last change.
    #[serde(default)]
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
    LiveRecord,
    KeyState,
    GlobalState,
    NameEntry,
    BusyMarker,
    TurnLog,
    PermissionRequest,
    StopRequest,
    SteerRequest,
    NextTurn,
    TurnClaim,
    QueueTicket,
    ClaudeSlot,
    WarmNote,
    ProbeRecord,
    ClaudeVersions,
    SettingsRecord
);
