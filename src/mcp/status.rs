//! What `session_status` tells the model and `clawsess status` tells a script: one function,
//! [`status`], for both. Bounded whatever the transcript: the usage figures come from its last
//! [`USAGE_SCAN`] bytes at most (and say whether that was all of it).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::send::SendNote;
use super::turns::{self, USAGE_SCAN, Usage};
use crate::ident::{Key, Name, SessionId};
use crate::resolve::{Via, find_session, resolve};
use crate::store::{Starter, Store};
use crate::sys::rfc3339;
use crate::topic::millis;
use crate::turn::exclusion;

/// A session as `session_status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub session_id: SessionId,
    pub name: Option<Name>,
    pub cwd: PathBuf,
    pub started_by: Starter,
    /// The model of its last request.
    pub model: Option<String>,
    /// Prompts in the transcript (see `counted`).
    pub turns: u64,
    /// Turns answered through `clawsess run` (and so `sessions_send`).
    pub run_turns: u64,
    /// Tokens sent to the model (input, cache writes and reads) and received, summed over
    /// its requests (see `counted`).
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tokens: Usage,
    /// Always null: Claude Code's transcript does not keep what a request cost (`run --json`
    /// gives `total_cost_usd` of each turn).
    pub cost_usd: Option<f64>,
    /// The context the last request sent the model, in tokens.
    pub context_used: Option<u64>,
    /// `whole transcript`, or `last 16 MiB of N MiB` for a transcript too big to read whole.
    pub counted: String,
    /// Who is answering it right now (a run's key, or a process's surface).
    pub busy: Option<String>,
    /// A warm claude (`run --warm`) is kept for it.
    pub warm: bool,
    /// A claude process (a terminal, a bot) is open on it.
    pub live: bool,
    /// The surface that wrote the last turn: a key, or `terminal`.
    pub last_surface: Option<String>,
    pub last_active: String,
    pub transcript_exists: bool,
    /// The last send to it with `reply: none` (`sessions_send`): who, when, how it went.
    pub last_detached_send: Option<SendNote>,
    /// The key whose next run this status is about (`--key K`, `key:K`, the run answering
    /// the caller): its settings and reset policy are in force. `null` for a session asked
    /// for by id or name: then only the session's own settings are shown, and no reset.
    pub key: Option<Key>,
    /// How `key` reaches the session: `key` (attached), `global` (the global attachment),
    /// `own`; `null` without a key.
    pub via: Option<Via>,
    /// The settings its next run passes to claude, each with where it comes from:
    /// `{NAME: {"value", "from": "key"|"session"|"env"|"file"|"default", ...}}` (see
    /// `clawsess config`). `null` when the config file cannot be read (see `config_error`).
    pub settings: Value,
    /// The key's reset policy (`{"key": PATTERN, "mode": "idle 72h", "from"...}`), `null`:
    /// off, or no key.
    pub reset: Value,
    /// When the key's own session is given up for a new one at its next run (RFC 3339);
    /// `null`: never, or the session is attached (attachments never reset by policy).
    pub next_reset: Option<String>,
    /// Why the settings could not be told (a broken config file), else `null`.
    pub config_error: Option<String>,
}

/// Which session a status is of, and for which key's next run.
#[derive(Debug, Clone)]
pub struct Target {
    pub session: SessionId,
    pub key: Option<Key>,
    /// How `key` reaches `session`: only its own one (`Via::Own`) resets by its policy.
    pub via: Option<Via>,
}

impl Target {
    /// `key`'s session, or an error saying it has none.
    pub fn of_key(store: &Store, key: Key) -> Result<Self> {
        match resolve(store, &key)? {
            Some(found) => Ok(Self { session: found.session, via: Some(found.via), key: Some(key) }),
            None => bail!("the key {key} has no session; give SESSION or --key"),
        }
    }

    /// What a SESSION argument names (see [`find_session_or_key`](crate::resolve::find_session_or_key)); `key:K` is the key's next run.
    pub fn find(store: &Store, arg: &str) -> Result<Self> {
        if let Some(key) = arg.trim().strip_prefix("key:") {
            return Self::of_key(store, Key::parse(key)?);
        }
        Ok(Self { session: find_session(store, arg.trim())?, key: None, via: None })
    }

    /// The session `id` asked for by itself; the key of the `clawsess run` answering it right
    /// now, if one is (`session_status` of the caller's own session).
    pub fn running(store: &Store, id: SessionId) -> Self {
        let key = exclusion::run_holder(store, &id).and_then(|h| Key::parse(&h.key).ok());
        let via = key
            .as_ref()
            .and_then(|k| resolve(store, k).ok().flatten())
            .filter(|r| r.session == id)
            .map(|r| r.via);
        Self { session: id, key, via }
    }
}

/// The status of `target`'s session, with the settings in force for its key's next run.
pub fn status(store: &Store, target: &Target) -> Result<SessionStatus> {
    let id = &target.session;
    let Some(rec) = store.session(id)? else { bail!("session {id} was removed meanwhile") };
    let exists = rec.transcript.is_file();
    let spent = if exists { turns::spent(&rec.transcript, USAGE_SCAN)? } else { turns::Spent::default() };
    let counted = if !exists {
        "nothing: the transcript is gone".to_owned()
    } else if spent.whole {
        "whole transcript".to_owned()
    } else {
        let size = std::fs::metadata(&rec.transcript).map(|m| m.len()).unwrap_or(0);
        format!("last {} MiB of {} MiB", USAGE_SCAN >> 20, size >> 20)
    };
    let last_surface = spent
        .last_prompt_at
        .as_deref()
        .and_then(millis)
        .map(|at| crate::topic::last_surface(store, &rec, at));
    let warm = store.warm_note(id).ok().flatten().is_some_and(|note| crate::warm::keeper_alive(&note));
    let t = spent.tokens;
    let own_last_active = (target.via == Some(Via::Own)).then_some(rec.last_seen);
    let (settings, reset, next_reset, config_error) =
        match crate::config::in_force(store, target.key.as_ref(), Some(id), own_last_active) {
            Ok(in_force) => {
                let mut doc = in_force.to_json();
                (
                    doc["settings"].take(),
                    doc["reset"].take(),
                    in_force.next_reset.map(|t| t.to_string()),
                    None,
                )
            }
            Err(err) => (Value::Null, Value::Null, None, Some(format!("{err:#}"))),
        };
    Ok(SessionStatus {
        session_id: rec.id.clone(),
        name: rec.name.clone(),
        cwd: rec.cwd.clone(),
        started_by: rec.started_by,
        model: spent.model,
        turns: spent.turns,
        run_turns: rec.run_turns,
        tokens_in: t.context(),
        tokens_out: t.output_tokens,
        tokens: t,
        cost_usd: None,
        context_used: spent.context_used,
        counted,
        busy: exclusion::busy_by(store, id)?,
        warm,
        live: rec.process_open(),
        last_surface,
        last_active: rfc3339(rec.last_seen.max(crate::store::mtime_ms(&rec.transcript).unwrap_or(0))),
        transcript_exists: exists,
        last_detached_send: SendNote::read(store, id),
        key: target.key.clone(),
        via: target.via,
        settings,
        reset,
        next_reset,
        config_error,
    })
}

/// Where a value comes from, as `clawsess config` says it: `set --key K`, `env VAR`,
/// `FILE:LINE`, `default`.
fn origin_text(entry: &Value) -> String {
    let text = |field: &str| entry.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    match entry.get("from").and_then(Value::as_str).unwrap_or_default() {
        "key" => format!("set --key {}", text("key")),
        "session" => format!("set {}", text("session").get(..8).unwrap_or_default()),
        "env" => format!("env {}", text("var")),
        "file" => {
            let path = entry.get("path").and_then(Value::as_str).unwrap_or_default();
            let line = entry.get("line").and_then(Value::as_u64).unwrap_or_default();
            format!("{}:{line}", crate::sys::tilde(std::path::Path::new(path)))
        }
        "flag" => text("flag"),
        other => other.to_owned(),
    }
}

/// An RFC 3339 time as local time (`2026-06-02 04:00 CEST`), as given if it does not parse.
fn local_time(at: &str) -> String {
    match at.parse::<jiff::Timestamp>() {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
        Err(_) => at.to_owned(),
    }
}

impl SessionStatus {
    /// Human lines, control characters escaped.
    pub fn human(&self) -> String {
        use crate::sys::printable;
        let mut out = String::new();
        let mut line = |label: &str, text: &str| {
            out.push_str(&format!("{label:<14} {}\n", printable(text, false)));
        };
        let name = self.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
        line("session:", &format!("{}{name}", self.session_id));
        line("cwd:", &crate::sys::tilde(&self.cwd));
        line("model:", self.model.as_deref().unwrap_or("-"));
        line("turns:", &format!("{} ({} through clawsess run)", self.turns, self.run_turns));
        line("tokens:", &format!("{} in, {} out ({})", self.tokens_in, self.tokens_out, self.counted));
        line("context used:", &self.context_used.map_or("-".to_owned(), |c| format!("{c} tokens")));
        let mut state = Vec::new();
        state.extend(self.busy.as_ref().map(|b| format!("busy: {b}")));
        state.extend(self.live.then(|| "live".to_owned()));
        state.extend(self.warm.then(|| "warm".to_owned()));
        state.extend((!self.transcript_exists).then(|| "transcript gone".to_owned()));
        line("state:", &if state.is_empty() { "idle".to_owned() } else { state.join(", ") });
        line("last surface:", self.last_surface.as_deref().unwrap_or("-"));
        line("last active:", &self.last_active);
        if let Some(send) = &self.last_detached_send {
            line("last send:", &send.human());
        }
        if let Some(err) = &self.config_error {
            line("settings:", &format!("unknown: {err}"));
            return out;
        }
        let settings = self.settings.as_object().into_iter().flatten();
        for (i, (name, entry)) in settings.enumerate() {
            let label = if i == 0 { "settings:" } else { "" };
            let value = entry["value"].as_str().unwrap_or_default();
            line(label, &format!("{name} = {value}  ({})", origin_text(entry)));
        }
        let reset = match (&self.key, self.reset.as_object()) {
            (None, _) => "(a key's policy: give --key KEY)".to_owned(),
            (Some(_), None) => "off".to_owned(),
            (Some(_), Some(policy)) => {
                let mode = policy.get("mode").and_then(Value::as_str).unwrap_or_default();
                let pattern = policy.get("key").and_then(Value::as_str).unwrap_or_default();
                format!("{mode} (key {pattern}, {})", origin_text(&self.reset))
            }
        };
        line("reset:", &reset);
        let next = match (&self.next_reset, self.via, self.reset.is_null()) {
            (Some(at), ..) => local_time(at),
            (None, Some(Via::Key | Via::Global), false) => {
                "never: an attached session does not reset by the key's policy".to_owned()
            }
            _ => "never".to_owned(),
        };
        line("next reset:", &next);
        out
    }
}
