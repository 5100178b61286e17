//! `clawsess prune`: drops the records of sessions whose transcript Claude Code deleted, and
//! sweeps what processes killed at the wrong instant left (`crate::sweep`). [`auto`] runs it
//! by itself once per `prune_every`.

pub mod auto;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::ident::{Key, Name, SessionId};
use crate::store::{COMMAND_LOCK_WAIT, Locked, SessionRecord, Store};
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
    /// How many times it took the store lock, and the longest it held it.
    pub holds: usize,
    pub longest_hold: Duration,
}

/// How many records (or keys, or live files) a prune decides on in one hold of the store
/// lock: at 100,000 sessions, one hold for all would keep every run and hook waiting.
pub const BATCH: usize = 256;

/// Between two holds of the store lock, so that a writer waiting for it gets it: flock hands
/// the lock to no one, it wakes the waiters, and the prune, running, mostly takes it back
/// before a woken waiter runs. Measured (`tests/load.rs`,
/// `a_writer_waiting_during_a_prune_gets_in_between_batches`; docs/BENCHMARKS.md): with it,
/// a writer that asked during a hold got the lock right after that hold, every time; without
/// it, some waited 3 or 4 batches (up to 97 ms instead of 22 ms). It costs a millisecond a
/// batch: 0.1 s of a prune of 25,000 records.
pub const PAUSE: Duration = Duration::from_millis(1);

/// Prunes the state dir, taking the store lock in batches of [`BATCH`]; `dry_run` changes
/// nothing, takes no lock and writes neither the sessions index nor its journal.
pub fn prune(store: &Store, dry_run: bool) -> Result<Pruned> {
    prune_in_batches(store, dry_run, BATCH, PAUSE, |_| {})
}

/// [`prune`], `batch` records to a hold of the store lock, `pause` between two holds. What is
/// to go is found without the lock, through the sessions index
/// ([`Store::sessions_indexed_with`]: the index and the records written since, not every
/// record file) and a look at each transcript; each batch then takes the lock and reads again
/// each of its records from its file before removing it: one that is gone, changed since (a
/// turn or a hook wrote it, or the index was behind it) or whose transcript is back stays.
/// `between(n)` is called after the `n`th hold (from 0), with the lock let go.
pub fn prune_in_batches(
    store: &Store,
    dry_run: bool,
    batch: usize,
    pause: Duration,
    between: impl FnMut(usize),
) -> Result<Pruned> {
    let batch = batch.max(1);
    let mut done = Pruned { dry_run, ..Pruned::default() };
    let mut holds = Holds { store, pause, between, count: 0, longest: Duration::ZERO };
    if !dry_run {
        // First, so that a broken file below does not keep the sweep from happening.
        (done.temp_files, done.requests) = holds.with(|tx| {
            let temp = store.stale_temp_files().iter().filter(|p| std::fs::remove_file(p).is_ok()).count();
            Ok((temp, crate::live::ask::sweep_locked(tx)?))
        })?;
    }
    // Only the candidates are kept (boxed: a record kept is one pointer), not 100,000
    // records. The index's rebuild, if this read found one due, is written at the end
    // (`_rebuild` dropped): the records dropped meanwhile are journaled, so it leaves them out.
    let (seen, broken, rebuild) = store.sessions_indexed_with(|_: &mut (), rec: SessionRecord| {
        (!rec.transcript.exists()).then(|| Box::new(rec))
    })?;
    done.skipped = broken.iter().map(|err| format!("{err:#}")).collect();
    done.sessions = seen.len();
    let mut gone: Vec<Box<SessionRecord>> = seen.into_iter().flatten().collect();
    gone.sort_by(|a, b| a.id.cmp(&b.id));
    if dry_run {
        // A dry run writes nothing, not even the index (a cache).
        rebuild.skip();
        done.dropped = gone.into_iter().map(|r| (r.id, r.name)).collect();
        let (_, broken_keys) = store.key_states()?;
        done.skipped.extend(broken_keys.iter().map(|err| format!("{err:#}")));
        return Ok(done);
    }
    for chunk in gone.chunks(batch) {
        let dropped = holds.with(|tx| {
            let mut dropped = Vec::new();
            for seen in chunk {
                if still_gone(tx, seen)? {
                    dropped.push((seen.id.clone(), seen.name.clone()));
                }
            }
            // One journal append for the batch's removals (`Locked::remove_sessions`).
            let ids: Vec<SessionId> = dropped.iter().map(|(id, _)| id.clone()).collect();
            tx.remove_sessions(&ids)?;
            for id in &ids {
                tx.clear_busy(id)?;
            }
            Ok(dropped)
        })?;
        done.dropped.extend(dropped);
    }
    // Read after the drops: a key that took one of them meanwhile is let go of it too.
    let (key_states, broken_keys) = store.key_states()?;
    done.skipped.extend(broken_keys.iter().map(|err| format!("{err:#}")));
    let dropped: BTreeSet<&SessionId> = done.dropped.iter().map(|(id, _)| id).collect();
    let holding: Vec<Key> = key_states
        .into_iter()
        .filter(|s| s.attached.iter().map(|a| &a.session).chain(&s.own).any(|id| dropped.contains(id)))
        .map(|s| s.key)
        .collect();
    for chunk in holding.chunks(batch) {
        done.keys += holds.with(|tx| {
            let mut let_go = 0;
            for key in chunk {
                let_go += usize::from(let_go_of_dropped(tx, key, &dropped)?);
            }
            Ok(let_go)
        })?;
    }
    // After the records: a send note of a session dropped just now goes too.
    let (mut swept, global) = holds.with(|tx| {
        let swept = crate::sweep::sweep_but_live(tx)?;
        let global = match tx.global()? {
            Some(g) if dropped.contains(&g.session) && tx.session(&g.session)?.is_none() => {
                tx.set_global(None)?;
                true
            }
            _ => false,
        };
        Ok((swept, global))
    })?;
    done.global = global;
    let live: Vec<SessionId> = store.ids_in("live").into_iter().collect();
    for chunk in live.chunks(batch) {
        swept.live += holds.with(|tx| crate::sweep::sweep_live(tx, chunk))?;
    }
    done.swept = swept;
    done.holds = holds.count;
    done.longest_hold = holds.longest;
    Ok(done)
}

/// The store lock, taken again for each batch.
struct Holds<'a, F> {
    store: &'a Store,
    pause: Duration,
    between: F,
    count: usize,
    longest: Duration,
}

impl<F: FnMut(usize)> Holds<'_, F> {
    /// `work` with the lock held; how long it was held is kept.
    fn with<T>(&mut self, work: impl FnOnce(&Locked<'_>) -> Result<T>) -> Result<T> {
        let tx = self.store.lock(COMMAND_LOCK_WAIT)?;
        let held = Instant::now();
        let result = work(&tx);
        drop(tx);
        self.longest = self.longest.max(held.elapsed());
        // flock hands the lock to no one: taken again at once, it would often be ours again
        // before a waiter woke. A pause lets the runs and hooks waiting for it in (`PAUSE`).
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        (self.between)(self.count);
        self.count += 1;
        result
    }
}

/// Whether the session `seen` (as read without the lock), read again under it, is still what
/// it was and its transcript still gone; if so its name goes now, its record with its batch.
fn still_gone(tx: &Locked<'_>, seen: &SessionRecord) -> Result<bool> {
    let Some(now) = tx.session(&seen.id)? else { return Ok(false) };
    let bytes = |r: &SessionRecord| serde_json::to_vec(r).ok();
    let now_bytes = bytes(&now);
    if now_bytes.is_none() || now_bytes != bytes(seen) || now.transcript.exists() {
        return Ok(false);
    }
    if let Some(name) = &now.name
        && tx.named(name)?.as_ref() == Some(&now.id)
    {
        tx.remove_name(name)?;
    }
    Ok(true)
}

/// Lets `key` go of the sessions of `dropped` that are still gone; returns whether it did.
fn let_go_of_dropped(tx: &Locked<'_>, key: &Key, dropped: &BTreeSet<&SessionId>) -> Result<bool> {
    let Some(mut state) = tx.key_state(key)? else { return Ok(false) };
    let gone = |id: &SessionId| -> Result<bool> { Ok(dropped.contains(id) && tx.session(id)?.is_none()) };
    let attached_gone = match &state.attached {
        Some(a) => gone(&a.session)?,
        None => false,
    };
    let own_gone = match &state.own {
        Some(id) => gone(id)?,
        None => false,
    };
    if attached_gone {
        state.attached = None;
    }
    if own_gone {
        state.own = None;
    }
    if attached_gone || own_gone {
        tx.put_key_state(&state)?;
    }
    Ok(attached_gone || own_gone)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Starter;

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    /// A record whose transcript is gone: what a prune drops.
    fn vanished(store: &Store, n: u8) {
        let rec = SessionRecord::new(id(n), "/p".into(), "/nowhere/t.jsonl".into(), Starter::Person, 1);
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_session(&rec).unwrap();
    }

    #[test]
    fn a_prune_lets_go_of_the_lock_between_batches_and_keeps_what_was_touched_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        for n in 1..=4 {
            vanished(&store, n);
        }
        let mut seen_free = Vec::new();
        // Holds: temp files and requests (0), then one record each (1 to 4), ...
        let done = prune_in_batches(&store, false, 1, PAUSE, |n| {
            // Another writer: takes the lock without waiting, so only if the prune let go.
            let tx = store.lock(Duration::ZERO).expect("the lock is free between batches");
            seen_free.push(n);
            if n == 1 {
                // After the first record: a turn touches the third (its last activity), and
                // a hook writes the fourth anew.
                let third = tx.session(&id(3)).unwrap().unwrap();
                tx.update_session(&third, &SessionRecord { last_seen: 99, ..third.clone() }).unwrap();
                let fourth = tx.session(&id(4)).unwrap().unwrap();
                tx.put_session(&fourth).unwrap();
            }
        })
        .unwrap();
        assert!(seen_free.starts_with(&[0, 1, 2, 3, 4]), "{seen_free:?}");
        assert_eq!(done.holds, seen_free.len());
        let dropped: Vec<SessionId> = done.dropped.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(dropped, [id(1), id(2)]);
        assert_eq!(done.sessions, 4);
        assert!(store.session(&id(1)).unwrap().is_none() && store.session(&id(2)).unwrap().is_none());
        assert!(store.session(&id(3)).unwrap().is_some(), "touched between batches: kept");
        assert!(store.session(&id(4)).unwrap().is_some(), "written anew between batches: kept");
        // The next prune, nothing touching them, drops them.
        let again = prune(&store, false).unwrap();
        assert_eq!(again.dropped.len(), 2);
        assert!(store.session_ids().unwrap().is_empty());
    }

    #[test]
    fn a_prune_finds_what_to_drop_in_the_index_and_drops_only_what_its_file_still_says() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let here = dir.path().join("t.jsonl");
        std::fs::write(&here, "{}\n").unwrap();
        let record = |n: u8, transcript: &std::path::Path| {
            SessionRecord::new(id(n), "/p".into(), transcript.into(), Starter::Person, 1)
        };
        vanished(&store, 1);
        vanished(&store, 2);
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_session(&record(3, &here)).unwrap();
        // `list` reads them and writes the index.
        drop(store.sessions_indexed_with(|_: &mut (), r| r).unwrap().2);
        // Behind the guard's back (no journal line), so the index no longer says what the
        // files do: 2's transcript is back, 3's is gone.
        let behind = |rec: &SessionRecord| {
            let path = dir.path().join("sessions").join(format!("{}.json", rec.id));
            std::fs::write(path, serde_json::to_vec(rec).unwrap()).unwrap();
        };
        let on_file = store.session(&id(2)).unwrap().unwrap();
        behind(&SessionRecord { transcript: here.clone(), ..on_file });
        let on_file = store.session(&id(3)).unwrap().unwrap();
        behind(&SessionRecord { transcript: "/nowhere/t.jsonl".into(), ..on_file });
        let done = prune(&store, false).unwrap();
        let dropped: Vec<SessionId> = done.dropped.iter().map(|(id, _)| id.clone()).collect();
        // 2 was a candidate (the index said gone), but its file, read again under the lock,
        // says otherwise: kept. 3 was no candidate: the index said its transcript was there.
        assert_eq!(dropped, [id(1)]);
        assert_eq!(done.sessions, 3);
        assert!(store.session(&id(2)).unwrap().is_some());
        assert!(store.session(&id(3)).unwrap().is_some());
        // Once the index learns of 3's edit (its rebuild: here, the index is removed), 3 goes.
        std::fs::remove_file(dir.path().join("sessions.index")).unwrap();
        let again = prune(&store, false).unwrap();
        assert_eq!(again.dropped.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [id(3)]);
        assert_eq!(store.session_ids().unwrap(), [id(2)]);
    }

    #[test]
    fn a_dry_prune_takes_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        vanished(&store, 1);
        let _held = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let done = prune_in_batches(&store, true, 1, PAUSE, |_| panic!("no hold")).unwrap();
        assert_eq!(done.dropped.len(), 1);
        assert!(store.session(&id(1)).unwrap().is_some());
    }

    #[test]
    fn a_dry_prune_writes_neither_the_sessions_index_nor_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let files = || ["sessions.index", "sessions.journal"].map(|f| std::fs::read(dir.path().join(f)).ok());
        for n in 1..=3 {
            vanished(&store, n);
        }
        // No index yet (a reader would write one), then an index with journal lines after it.
        for round in 0..2 {
            let before = files();
            assert_eq!(before[0].is_some(), round == 1);
            let done = prune(&store, true).unwrap();
            assert_eq!(done.dropped.len(), 3 + round);
            assert_eq!(files(), before, "round {round}");
            if round == 0 {
                drop(store.sessions_indexed_with(|_: &mut (), r: SessionRecord| r).unwrap());
                vanished(&store, 4);
            }
        }
    }
}
