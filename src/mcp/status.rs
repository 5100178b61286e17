//! What `session_status` tells the model and `clawsess status` tells a script: one function,
//! [`status`], for both. Bounded whatever the transcript: the usage figures come from its last
//! [`USAGE_SCAN`] bytes at most (and say whether that was all of it).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;

use super::send::SendNote;
use super::turns::{self, USAGE_SCAN, Usage};
use crate::ident::{Key, Name, SessionId};
use crate::resolve::{find_session, resolve};
use crate::store::{Starter, Store};
use crate::sys::rfc3339;
use crate::transcript::millis;
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
}

/// What a SESSION argument of the tools names: an id, a unique prefix, a name, or `key:K`
/// for the session key K resolves to.
pub fn find(store: &Store, arg: &str) -> Result<SessionId> {
    let arg = arg.trim();
    if let Some(key) = arg.strip_prefix("key:") {
        let key = Key::parse(key)?;
        return match resolve(store, &key)? {
            Some(resolved) => Ok(resolved.session),
            None => bail!("the key {key} has no session (see sessions_list)"),
        };
    }
    find_session(store, arg)
}

/// The status of session `id`.
pub fn status(store: &Store, id: &SessionId) -> Result<SessionStatus> {
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
    })
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
        out
    }
}
