//! The note of the last `reply: none` send to a session (`clawsess mcp`'s `sessions_send`,
//! delivered by a detached `clawsess mcp --deliver`): how it went, for `list` and
//! `session_status`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Durability, Store, create_private_dir, now_ms, read_json, write_json};
use crate::ident::SessionId;
use anyhow::Result;

/// The last `reply: none` send to a session: `sends/<id>.json` in the state dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendNote {
    pub v: u32,
    pub from: SessionId,
    /// The deliverer's pid while it runs.
    pub pid: u32,
    /// Unix ms.
    pub started: u64,
    pub finished: Option<u64>,
    /// None while running.
    pub ok: Option<bool>,
    pub error: Option<String>,
}

impl super::Versioned for SendNote {
    fn version(&self) -> Option<u32> {
        Some(self.v)
    }
}

impl SendNote {
    fn path(store: &Store, id: &SessionId) -> PathBuf {
        store.dir().join("sends").join(format!("{id}.json"))
    }

    pub fn read(store: &Store, id: &SessionId) -> Option<SendNote> {
        read_json(&Self::path(store, id)).ok().flatten()
    }

    /// One whole file per target, the newest send's: no store lock needed.
    pub fn write(&self, store: &Store, id: &SessionId) -> Result<()> {
        let path = Self::path(store, id);
        create_private_dir(path.parent().expect("sends/ dir"))?;
        write_json(&path, self, Durability::Volatile)
    }

    /// Removes the note of a send to `id` (`prune`: the session's record is gone).
    pub fn remove(tx: &super::Locked<'_>, id: &SessionId) -> Result<bool> {
        super::remove_if_exists(&Self::path(tx, id))
    }

    /// Why this send failed, if it did: an error it noted, or a deliverer gone without a word.
    pub fn failure(&self) -> Option<String> {
        match (self.ok, &self.error) {
            (Some(false), err) => Some(err.clone().unwrap_or_else(|| "no reason given".into())),
            (None, _) if !crate::sys::pid_alive(self.pid) => Some("its delivery ended without a word".into()),
            _ => None,
        }
    }

    /// The sessions whose last `reply: none` send failed, with why (one directory read, then
    /// only the notes there: `list` calls this whatever the number of sessions).
    pub fn failed(store: &Store) -> std::collections::BTreeMap<SessionId, String> {
        let Ok(dir) = std::fs::read_dir(store.dir().join("sends")) else {
            return Default::default();
        };
        dir.filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let id = SessionId::parse(name.to_str()?.strip_suffix(".json")?).ok()?;
            let why = Self::read(store, &id)?.failure()?;
            Some((id, why))
        })
        .collect()
    }

    pub fn human(&self) -> String {
        let when = crate::sys::ago(self.started, now_ms());
        match (self.ok, &self.error) {
            (None, _) if crate::sys::pid_alive(self.pid) => format!("from {}, {when}: running", self.from),
            (None, _) => format!("from {}, {when}: its delivery ended without a word", self.from),
            (Some(true), _) => format!("from {}, {when}: answered", self.from),
            (Some(false), err) => {
                format!("from {}, {when}: failed: {}", self.from, err.as_deref().unwrap_or("?"))
            }
        }
    }
}
