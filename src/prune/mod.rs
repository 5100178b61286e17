//! `clawsess prune`: drops the records of sessions whose transcript Claude Code deleted, and
//! sweeps what processes killed at the wrong instant left (`crate::sweep`). [`auto`] runs it
//! by itself once per `prune_every`.

pub mod auto;

use anyhow::Result;

use crate::ident::{Name, SessionId};
use crate::store::{COMMAND_LOCK_WAIT, Store};
use crate::sweep::Swept;

/// What a prune did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Pruned {
    pub dry_run: bool,
    /// Sessions whose transcript is gone: dropped (or, dry, to be dropped).
    pub dropped: Vec<(SessionId, Option<Name>)>,
    /// Sessions recorded before.
    pub sessions: usize,
    /// Keys whose own or attached session was dropped.
    pub keys: usize,
    /// Permission requests whose run is gone.
    pub requests: usize,
    /// Temp files a killed writer left.
    pub temp_files: usize,
    pub swept: Swept,
    /// The global attachment pointed at a dropped session.
    pub global: bool,
    /// Files that could not be read (left alone).
    pub skipped: Vec<String>,
}

/// Prunes the state dir with the store lock held; `dry_run` changes nothing.
pub fn prune(store: &Store, dry_run: bool) -> Result<Pruned> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let mut done = Pruned { dry_run, ..Pruned::default() };
    if !dry_run {
        // First, so that a broken file below does not keep the sweep from happening.
        done.temp_files = store.stale_temp_files().iter().filter(|p| std::fs::remove_file(p).is_ok()).count();
        done.requests = crate::live::ask::sweep_locked(&tx)?;
    }
    let (records, broken) = tx.sessions()?;
    let (key_states, broken_keys) = tx.key_states()?;
    done.skipped = broken.iter().chain(&broken_keys).map(|err| format!("{err:#}")).collect();
    done.sessions = records.len();
    done.dropped =
        records.iter().filter(|r| !r.transcript.exists()).map(|r| (r.id.clone(), r.name.clone())).collect();
    if dry_run {
        return Ok(done);
    }
    let gone = |id: &SessionId| done.dropped.iter().any(|(d, _)| d == id);
    for (id, name) in &done.dropped {
        if let Some(name) = name {
            tx.remove_name(name)?;
        }
        tx.remove_session(id)?;
        tx.clear_busy(id)?;
    }
    for mut state in key_states {
        let attached_gone = state.attached.as_ref().is_some_and(|a| gone(&a.session));
        let own_gone = state.own.as_ref().is_some_and(&gone);
        if attached_gone {
            state.attached = None;
        }
        if own_gone {
            state.own = None;
        }
        if attached_gone || own_gone {
            done.keys += 1;
            tx.put_key_state(&state)?;
        }
    }
    // After the records: a send note of a session dropped just now goes too.
    done.swept = crate::sweep::sweep(&tx)?;
    if tx.global()?.is_some_and(|g| gone(&g.session)) {
        tx.set_global(None)?;
        done.global = true;
    }
    Ok(done)
}

impl Pruned {
    /// What it did, a line each, as `clawsess prune` says it.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.requests > 0 {
            lines.push(format!("removed {} permission requests whose run is gone", self.requests));
        }
        let verb = if self.dry_run { "would drop" } else { "dropped" };
        for (id, name) in &self.dropped {
            let name = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            lines.push(format!("{verb} {}{name}: transcript gone", id.short()));
        }
        if self.dry_run {
            lines.push(format!("{} of {} sessions would go", self.dropped.len(), self.sessions));
            return lines;
        }
        let n = self.swept.total();
        if n > 0 {
            let what = if n == 1 { "leftover" } else { "leftovers" };
            lines.push(format!("removed {n} {what} of processes that are gone ({})", self.swept.human()));
        }
        if self.global {
            lines.push("dropped the global attachment to a gone session".into());
        }
        lines.push(format!(
            "{} of {} sessions dropped; {} keys let go of them; {} stale temp files removed",
            self.dropped.len(),
            self.sessions,
            self.keys,
            self.temp_files
        ));
        lines
    }
}
