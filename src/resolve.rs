//! Which session a key talks to, and what a SESSION argument names.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::ident::{Key, Name, SessionId};
use crate::store::{SessionRecord, Starter, Store};

/// Which rule answered a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The key's own attachment.
    Key,
    /// The global attachment.
    Global,
    /// The key's own session.
    Own,
}

/// A key's session and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub session: SessionId,
    pub via: Via,
}

/// Resolves `key`: its attachment, else the global attachment, else its own session.
/// Reads at most two small files, whatever the number of sessions.
pub fn resolve(store: &Store, key: &Key) -> Result<Option<Resolved>> {
    let state = store.key_state(key)?;
    if let Some(a) = state.as_ref().and_then(|s| s.attached.as_ref()) {
        return Ok(Some(Resolved { session: a.session.clone(), via: Via::Key }));
    }
    if let Some(a) = store.global()? {
        return Ok(Some(Resolved { session: a.session, via: Via::Global }));
    }
    Ok(state.and_then(|s| s.own).map(|session| Resolved { session, via: Via::Own }))
}

/// Shortest id prefix a SESSION argument may use.
pub const MIN_PREFIX: usize = 4;

/// What a SESSION argument of the tools names: an id, a unique prefix, a name, or `key:K`
/// for the session key K resolves to.
pub fn find_session_or_key(store: &Store, arg: &str) -> Result<SessionId> {
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

/// Finds the session a SESSION argument names: a full id, a name, or a unique id prefix.
pub fn find_session(store: &Store, arg: &str) -> Result<SessionId> {
    if let Ok(id) = SessionId::parse(arg) {
        if store.session(&id)?.is_some() {
            return Ok(id);
        }
        bail!(not_recorded(&id));
    }
    if let Ok(name) = Name::parse(arg)
        && let Some(id) = store.named(&name)?
    {
        return Ok(id);
    }
    let lower = arg.to_ascii_lowercase();
    let looks_like_prefix = lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !looks_like_prefix {
        bail!("no session is named {arg:?} (see `clawsess list`)");
    }
    if lower.len() < MIN_PREFIX {
        bail!("{arg:?} is too short: give at least {MIN_PREFIX} characters of a session id, or a name");
    }
    let mut matches: Vec<SessionId> =
        store.session_ids()?.into_iter().filter(|id| id.as_str().starts_with(&lower)).collect();
    matches.sort();
    match matches.len() {
        0 => match unrecorded_transcript(&lower) {
            Some(id) => bail!(
                "no recorded session id starts with {arg:?}, but Claude Code has session {id} from \
                 before clawsess was installed: `clawsess import` records it"
            ),
            None => bail!(
                "no session id starts with {arg:?} (see `clawsess list`; `clawsess import` records \
                 sessions from before the install)"
            ),
        },
        1 => Ok(matches.remove(0)),
        n => {
            let list: Vec<&str> = matches.iter().take(10).map(SessionId::as_str).collect();
            let more = if n > 10 { format!(" and {} more", n - 10) } else { String::new() };
            bail!("{arg:?} matches {n} sessions: {}{more}; give more characters", list.join(", "))
        }
    }
}

/// [`find_session`] with the session's record: a full id's read once, to find it and to give it.
pub fn find_session_record(store: &Store, arg: &str) -> Result<SessionRecord> {
    if let Ok(id) = SessionId::parse(arg) {
        return store.session(&id)?.ok_or_else(|| anyhow::anyhow!(not_recorded(&id)));
    }
    let id = find_session(store, arg)?;
    store.session(&id)?.ok_or_else(|| anyhow::anyhow!("session {id} was removed meanwhile"))
}

fn not_recorded(id: &SessionId) -> String {
    format!("no recorded session {id}; `clawsess import` records sessions the hook never saw")
}

/// The id of a Claude Code transcript (`projects/*/ID.jsonl`) whose id starts with `prefix`,
/// if there is one: a session the hooks never saw. Only on the way to an error.
fn unrecorded_transcript(prefix: &str) -> Option<String> {
    let projects = crate::claude::config_dir(None).ok()?.join("projects");
    std::fs::read_dir(projects).ok()?.flatten().find_map(|project| {
        std::fs::read_dir(project.path()).ok()?.flatten().find_map(|file| {
            let name = file.file_name();
            let id = name.to_str()?.strip_suffix(".jsonl")?;
            (id.starts_with(prefix) && SessionId::parse(id).is_ok()).then(|| id.to_owned())
        })
    })
}

/// The person's session active most recently whose transcript still exists: what `attach`
/// picks when given nothing. Only sessions a person started in interactive Claude Code count
/// (not `run`'s, a bot's, or imported ones), and not a throw-away id some Claude Code versions
/// announce on resume (its transcript never appears).
///
/// Records are visited newest file first; among those written within a second of the first
/// match (file times are coarse), the latest `last_seen` wins.
pub fn most_recent_person_session(store: &Store) -> Result<Option<SessionId>> {
    let mut best: Option<(u64, SessionId)> = None;
    let mut horizon = None;
    for (modified, id) in store.sessions_by_mtime()? {
        if horizon.is_some_and(|h| modified < h) {
            break;
        }
        let Some(rec) = store.session(&id)? else { continue };
        if rec.started_by != Starter::Person || !rec.transcript.is_file() {
            continue;
        }
        horizon.get_or_insert(modified - std::time::Duration::from_secs(1));
        if best.as_ref().is_none_or(|(seen, _)| rec.last_seen > *seen) {
            best = Some((rec.last_seen, rec.id));
        }
    }
    Ok(best.map(|(_, id)| id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Attachment, COMMAND_LOCK_WAIT, KeyState, SessionRecord};

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    const A: &str = "aaaa1111-0000-4000-8000-000000000000";
    const B: &str = "aaaa2222-0000-4000-8000-000000000000";
    const C: &str = "cccc3333-0000-4000-8000-000000000000";

    fn store_with_sessions(dir: &std::path::Path) -> Store {
        let store = Store::at(dir);
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        for s in [A, B, C] {
            tx.put_session(&SessionRecord::new(
                id(s),
                dir.into(),
                dir.join(format!("{s}.jsonl")),
                Starter::Person,
                1,
            ))
            .unwrap();
        }
        drop(tx);
        store
    }

    #[test]
    fn resolution_order_is_key_then_global_then_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_sessions(dir.path());
        let key = Key::parse("telegram:1").unwrap();
        assert_eq!(resolve(&store, &key).unwrap(), None);

        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let mut state = KeyState::new(key.clone());
        state.own = Some(id(A));
        tx.put_key_state(&state).unwrap();
        assert_eq!(resolve(&store, &key).unwrap().unwrap().via, Via::Own);

        tx.set_global(Some(Attachment { session: id(B), at: 1 })).unwrap();
        let r = resolve(&store, &key).unwrap().unwrap();
        assert_eq!((r.session, r.via), (id(B), Via::Global));

        state.attached = Some(Attachment { session: id(C), at: 2 });
        tx.put_key_state(&state).unwrap();
        let r = resolve(&store, &key).unwrap().unwrap();
        assert_eq!((r.session, r.via), (id(C), Via::Key));
    }

    #[test]
    fn session_arguments_resolve_by_id_prefix_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_sessions(dir.path());
        assert_eq!(find_session(&store, A).unwrap(), id(A));
        assert_eq!(find_session(&store, "cccc").unwrap(), id(C));
        assert_eq!(find_session(&store, "AAAA2").unwrap(), id(B));
        let err = find_session(&store, "aaaa").unwrap_err().to_string();
        assert!(err.contains(A) && err.contains(B) && err.contains("2 sessions"), "{err}");
        let err = find_session(&store, "ccc").unwrap_err().to_string();
        assert!(err.contains("at least 4"), "{err}");
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let budget = Name::parse("budget").unwrap();
        tx.put_name(&budget, &id(B)).unwrap();
        assert!(find_session(&store, "budget").is_err(), "a name file the record does not carry is ignored");
        let mut rec = store.session(&id(B)).unwrap().unwrap();
        rec.name = Some(budget);
        tx.put_session(&rec).unwrap();
        drop(tx);
        assert_eq!(find_session(&store, "budget").unwrap(), id(B));
        assert!(find_session(&store, "nothing").is_err());
        assert!(find_session(&store, "dddd4444-0000-4000-8000-000000000000").is_err());
    }
}
