use anyhow::Result;

use super::Run;
use crate::cli::Prune;
use crate::exit;
use crate::ident::SessionId;
use crate::store::{COMMAND_LOCK_WAIT, Store};

impl Run for Prune {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        // First, so that a broken file below does not keep the sweep from happening.
        let swept = if self.dry_run { 0 } else { sweep_temp_files(&store)? };
        let requests = if self.dry_run { 0 } else { crate::live::ask::sweep_locked(&tx)? };
        if requests > 0 {
            crate::outln!("removed {requests} permission requests whose run is gone")?;
        }
        let (records, broken) = tx.sessions()?;
        let (key_states, broken_keys) = tx.key_states()?;
        for err in broken.iter().chain(&broken_keys) {
            eprintln!("clawsess: skipped {err:#}");
        }
        let gone: Vec<SessionId> =
            records.iter().filter(|r| !r.transcript.exists()).map(|r| r.id.clone()).collect();
        let verb = if self.dry_run { "would drop" } else { "dropped" };
        for rec in records.iter().filter(|r| gone.contains(&r.id)) {
            let name = rec.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            crate::outln!("{verb} {}{name}: transcript gone", rec.id.short())?;
        }
        if self.dry_run {
            crate::outln!("{} of {} sessions would go", gone.len(), records.len())?;
            return Ok(exit::OK);
        }
        for rec in records.iter().filter(|r| gone.contains(&r.id)) {
            if let Some(name) = &rec.name {
                tx.remove_name(name)?;
            }
            tx.remove_session(&rec.id)?;
            tx.clear_busy(&rec.id)?;
        }
        let mut keys = 0;
        for mut state in key_states {
            let attached_gone = state.attached.as_ref().is_some_and(|a| gone.contains(&a.session));
            let own_gone = state.own.as_ref().is_some_and(|s| gone.contains(s));
            if attached_gone {
                state.attached = None;
            }
            if own_gone {
                state.own = None;
            }
            if attached_gone || own_gone {
                keys += 1;
                tx.put_key_state(&state)?;
            }
        }
        // After the records: a send note of a session dropped just now goes too.
        let left = crate::sweep::sweep(&tx)?;
        if left.total() > 0 {
            let n = left.total();
            let what = if n == 1 { "leftover" } else { "leftovers" };
            crate::outln!("removed {n} {what} of processes that are gone ({})", left.human())?;
        }
        if tx.global()?.is_some_and(|g| gone.contains(&g.session)) {
            tx.set_global(None)?;
            crate::outln!("dropped the global attachment to a gone session")?;
        }
        crate::outln!(
            "{} of {} sessions dropped; {keys} keys let go of them; {swept} stale temp files removed",
            gone.len(),
            records.len()
        )?;
        Ok(exit::OK)
    }
}

/// Removes temp files that a writer killed mid-write left behind.
pub fn sweep_temp_files(store: &Store) -> Result<usize> {
    Ok(store.stale_temp_files().iter().filter(|path| std::fs::remove_file(path).is_ok()).count())
}
