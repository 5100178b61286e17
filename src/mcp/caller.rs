//! Which session is calling the tools, and which sessions wait on this one.
//!
//! Never from anything the model says: Claude Code starts a stdio MCP server as its own child
//! (seen on 2.1.328: the server's parent is the claude process, through a `/bin/sh` that execs
//! when the plugin's wrapper runs it). A tool call comes in the middle of that claude's turn,
//! and every turn on a recorded session is marked in the store: a `run` turn by the session's
//! run lock (whose holder names its claude child, or the keeper of a warm claude), any other
//! claude's turn by its busy marker (its pid). So the caller is the session whose turn in
//! progress is this claude's: found from `$CLAUDE_CODE_SESSION_ID` (the session the claude was
//! on when it started this server; checked, not trusted) in one read, else among the few
//! sessions with a turn marked.
//!
//! The chain of sends travels two ways: `CLAWSESS_SEND_CHAIN` (the sessions whose sends led
//! here, oldest first), which `sessions_send` gives its `run`, whose claude gives it to its MCP
//! server; and the run locks themselves: a turn whose surface is `session:<id>` is a send from
//! `<id>`, whose own turn may in turn be a send.

use anyhow::{Result, bail};

use crate::ident::SessionId;
use crate::store::Store;
use crate::turn::exclusion;

/// Env var holding the chain of sends that led to this process: session ids, oldest first,
/// comma separated.
pub const CHAIN_ENV: &str = "CLAWSESS_SEND_CHAIN";
/// The surface key prefix of a send's turn: `session:<caller id>`.
pub const SEND_KEY_PREFIX: &str = "session:";
/// Sends in a chain at most: A → B → C → D.
pub const MAX_DEPTH: usize = 3;

/// The session calling, and how it is being answered.
#[derive(Debug, Clone)]
pub struct Caller {
    pub session: SessionId,
    /// The caller's claude process.
    pub claude: u32,
}

/// The claude process this MCP server belongs to: the nearest claude among its parent and
/// grandparent.
pub fn claude_pid() -> Option<u32> {
    crate::claude::process::nearest_claude_ancestor(std::process::id())
}

/// The session whose turn in progress is claude `pid`'s.
pub fn session_of(store: &Store, pid: u32) -> Result<Option<SessionId>> {
    let hint = std::env::var("CLAUDE_CODE_SESSION_ID").ok().and_then(|s| SessionId::parse(&s).ok());
    if let Some(id) = &hint
        && turn_is(store, id, pid)?
    {
        return Ok(hint);
    }
    // `/clear` or `/resume` moved the claude to another session since it started us.
    for id in store.maybe_busy() {
        if Some(&id) != hint.as_ref() && turn_is(store, &id, pid)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Whether the turn in progress on `id` is claude `pid`'s.
fn turn_is(store: &Store, id: &SessionId, pid: u32) -> Result<bool> {
    if let Some(holder) = exclusion::run_holder(store, id) {
        let parent = crate::claude::process::parent_of(pid);
        return Ok(holder.child == Some(pid) || (holder.keeper.is_some() && holder.keeper == parent));
    }
    Ok(exclusion::busy_marker(store, id)?.is_some_and(|m| m.pid == Some(pid)))
}

/// The caller, or why it cannot be told.
pub fn find(store: &Store) -> Result<Caller> {
    let Some(claude) = claude_pid() else {
        bail!(
            "clawsess cannot tell which session is calling: this MCP server's parent is not a \
             Claude Code process"
        );
    };
    match session_of(store, claude)? {
        Some(session) => Ok(Caller { session, claude }),
        None => bail!(
            "clawsess cannot tell which session is calling (claude pid {claude} has no turn in \
             progress on a recorded session); are clawsess's hooks installed? (`clawsess install`)"
        ),
    }
}

/// The sessions that led to `caller`'s turn, oldest first (without `caller` itself): the
/// chain in the env, and the sends waiting on each other through their run locks.
pub fn chain(store: &Store, caller: &SessionId) -> Vec<SessionId> {
    let mut chain: Vec<SessionId> = std::env::var(CHAIN_ENV)
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| SessionId::parse(s.trim()).ok())
        .collect();
    let mut at = caller.clone();
    // Bounded: a chain longer than this is refused anyway.
    for _ in 0..=MAX_DEPTH + 1 {
        let Some(holder) = exclusion::run_holder(store, &at) else { break };
        let Some(from) = holder.key.strip_prefix(SEND_KEY_PREFIX).and_then(|s| SessionId::parse(s).ok())
        else {
            break;
        };
        if !chain.contains(&from) {
            chain.insert(0, from.clone());
        }
        at = from;
    }
    chain.retain(|id| id != caller);
    chain
}

/// Why sending from `caller` (after `chain`) to `target` is refused, if it is.
pub fn refusal(caller: &SessionId, chain: &[SessionId], target: &SessionId) -> Option<String> {
    if target == caller {
        return Some(format!(
            "{target} is this session itself: a session cannot send to itself (it is busy \
             answering you now)"
        ));
    }
    if chain.contains(target) {
        let path: Vec<&str> = chain.iter().chain([caller]).map(SessionId::short).collect();
        return Some(format!(
            "{target} is earlier in this chain of sends ({} → here): it is waiting for this \
             session's answer, so a send to it would never be answered; answer it instead",
            path.join(" → ")
        ));
    }
    if chain.len() + 1 > MAX_DEPTH {
        return Some(format!(
            "this would be send number {} in one chain (at most {MAX_DEPTH}: {} → here); answer \
             with what you have instead",
            chain.len() + 1,
            chain.iter().map(SessionId::short).collect::<Vec<_>>().join(" → ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    #[test]
    fn self_sends_chain_loops_and_deep_chains_are_refused() {
        assert!(refusal(&id(1), &[], &id(1)).unwrap().contains("itself"));
        assert!(refusal(&id(2), &[id(1)], &id(1)).unwrap().contains("earlier in this chain"));
        assert!(refusal(&id(2), &[id(1)], &id(3)).is_none());
        assert!(refusal(&id(3), &[id(1), id(2)], &id(4)).is_none());
        assert!(refusal(&id(4), &[id(1), id(2), id(3)], &id(5)).unwrap().contains("at most 3"));
    }

    #[test]
    fn a_chain_comes_from_the_env_and_the_run_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        // Session 2's turn is a send from 1 (its run lock's key says so).
        let _lock =
            exclusion::RunLock::acquire(&store, &id(2), &format!("session:{}", id(1)), Default::default())
                .unwrap();
        assert_eq!(chain(&store, &id(2)), vec![id(1)]);
        assert!(chain(&store, &id(3)).is_empty());
    }
}
