//! What turns leave in the state dir that nobody needs any more, removed by `clawsess prune`
//! (with the store lock held). Each kind is also bounded as it is written or read (see
//! docs/STATE.md); this sweeps what processes killed at the wrong instant left behind.

use std::time::Duration;

use anyhow::Result;

use crate::claude::process::process_alive;
use crate::store::{Line, Locked, QuietDir};
use crate::sys::pid_alive;

/// A queue or steer dir is removed once empty and untouched this long (a waiter that is
/// joining right now writes into it).
const QUIET: Duration = Duration::from_secs(60);
/// A keeper's socket or log without a live keeper is removed once this old (a keeper that is
/// starting binds its socket and opens its log before its note is written).
const WARM_LEFTOVER: Duration = Duration::from_secs(60);
/// Scratch dirs of runs from another machine are removed once this old.
const SCRATCH_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a sweep removed, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Tickets of waiters that are gone (sessions' queues and the claudes' line).
    pub tickets: usize,
    /// Empty, quiet `queue/<id>/` and `steer/<id>/` dirs.
    pub dirs: usize,
    /// Claims on a session's next turn (`run --interrupt`'s, `clawsess queue`'s) whose
    /// process is gone.
    pub next: usize,
    /// `clawsess stop` requests whose run is gone.
    pub stops: usize,
    /// Steer messages whose sender is gone.
    pub steers: usize,
    /// Claude slots whose processes are all gone.
    pub slots: usize,
    /// Keepers' notes, sockets and logs of keepers that are gone.
    pub warm: usize,
    /// Notes of sends to sessions whose record is gone.
    pub sends: usize,
    /// Scratch dirs of runs from another machine.
    pub scratch: usize,
    /// Live files of sessions whose record is gone, or that an older write of it left.
    pub live: usize,
}

impl Swept {
    /// The kinds that had any, e.g. `3 queue tickets, 1 claude slot`.
    pub fn human(&self) -> String {
        let kinds = [
            (self.tickets, "queue ticket"),
            (self.dirs, "empty queue or steer dir"),
            (self.next, "next-turn claim"),
            (self.stops, "stop request"),
            (self.steers, "steer message"),
            (self.slots, "claude slot"),
            (self.warm, "warm note, socket or log"),
            (self.sends, "send note"),
            (self.scratch, "scratch dir"),
            (self.live, "stale live file"),
        ];
        let said: Vec<String> = kinds
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        said.join(", ")
    }

    pub fn total(&self) -> usize {
        let Swept { tickets, dirs, next, stops, steers, slots, warm, sends, scratch, live } = self;
        tickets + dirs + next + stops + steers + slots + warm + sends + scratch + live
    }
}

/// Removes every leftover of a process that is gone; see [`Swept`].
pub fn sweep(tx: &Locked<'_>) -> Result<Swept> {
    let mut swept = sweep_but_live(tx)?;
    swept.live = sweep_live(tx, &tx.ids_in("live").into_iter().collect::<Vec<_>>())?;
    Ok(swept)
}

/// [`sweep`] but the live files, which there may be one of per session: `prune` sweeps them
/// in batches ([`sweep_live`]), letting go of the lock between.
pub fn sweep_but_live(tx: &Locked<'_>) -> Result<Swept> {
    let mut swept = Swept::default();
    let store: &crate::store::Store = tx;
    let tickets = |line: Line<'_>| -> Result<usize> {
        let mut removed = 0;
        for t in store.queue(line)?.iter().filter(|t| !process_alive(t.pid, t.pid_start)) {
            removed += usize::from(store.remove_ticket(line, &t.id)?);
        }
        Ok(removed)
    };
    for id in store.ids_in("queue") {
        swept.tickets += tickets(Line::Session(&id))?;
        swept.dirs += usize::from(tx.remove_quiet_dir(QuietDir::Queue(Line::Session(&id)), QUIET)?);
    }
    swept.tickets += tickets(Line::Claudes)?;
    for id in store.ids_in("next") {
        if tx.next_turn(&id)?.is_some_and(|n| !process_alive(n.pid, n.pid_start))
            && tx.remove_next_turn(&id)?
        {
            swept.next += 1;
        }
    }
    for id in store.ids_in("claims") {
        if tx.claim(&id)?.is_some_and(|c| !process_alive(c.pid, c.pid_start)) && tx.remove_claim(&id)? {
            swept.next += 1;
        }
    }
    for id in store.ids_in("stop") {
        if tx.stop_request(&id)?.is_some_and(|s| !pid_alive(s.pid)) && tx.clear_stop_request(&id)? {
            swept.stops += 1;
        }
    }
    for id in store.ids_in("steer") {
        for steer in tx.steers(&id)?.into_iter().filter(|s| !pid_alive(s.from_pid)) {
            swept.steers += usize::from(tx.remove_steer(&id, &steer.id)?);
        }
        swept.dirs += usize::from(tx.remove_quiet_dir(QuietDir::Steer(&id), QUIET)?);
    }
    let slots = tx.claude_slots()?.len();
    swept.slots = slots - crate::turn::cap::live_slots(tx)?.len();
    swept.warm = sweep_warm(tx)?;
    for id in store.ids_in("sends") {
        if tx.session(&id)?.is_none() && crate::store::SendNote::remove(tx, &id)? {
            swept.sends += 1;
        }
    }
    swept.scratch = tx.remove_old_scratch(SCRATCH_AGE)?;
    Ok(swept)
}

/// Removes the live files of `ids` that are stale (their record is gone, or no longer carries
/// their stamp), each decided under the lock; returns how many.
pub fn sweep_live(tx: &Locked<'_>, ids: &[crate::ident::SessionId]) -> Result<usize> {
    let mut removed = 0;
    for id in ids {
        removed += usize::from(tx.remove_stale_live(id)?);
    }
    Ok(removed)
}

/// Notes of keepers that are gone, and sockets and logs no live keeper's note names.
fn sweep_warm(tx: &Locked<'_>) -> Result<usize> {
    let notes = tx.warm_notes()?.len();
    let live = crate::warm::keepers(tx, true)?;
    let mut removed = notes - live.len();
    let old = |path: std::path::PathBuf| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= WARM_LEFTOVER))
    };
    for id in tx.ids_in("warm") {
        if live.iter().any(|n| n.session == id) || tx.warm_note(&id).ok().flatten().is_some() {
            continue;
        }
        if old(tx.warm_socket(&id)) {
            tx.remove_warm(&id, None)?;
            removed += 1;
        }
        if old(tx.warm_log(&id)) && tx.remove_warm_log(&id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::SessionId;
    use crate::store::{
        COMMAND_LOCK_WAIT, ClaimState, ClaudeSlot, FORMAT, Proc, QueueTicket, SessionRecord, Starter,
        SteerRequest, SteerState, Store, TurnClaim, now_ms,
    };

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    fn ticket(name: &str, pid: u32) -> QueueTicket {
        QueueTicket { v: FORMAT, id: name.into(), pid, pid_start: None, surface: "k".into(), at: 1 }
    }

    fn backdate(path: &std::path::Path) {
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::open(path).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn prune_removes_what_gone_processes_left_and_keeps_what_live_ones_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let dead = u32::MAX;
        // Queues: a dead waiter's ticket goes, a live one's stays; an emptied quiet dir goes.
        store.put_ticket(Line::Session(&id(1)), &ticket("dead", dead)).unwrap();
        store.put_ticket(Line::Session(&id(1)), &ticket("live", 1)).unwrap();
        // A queue emptied long ago (removing a dead ticket touches its dir: that one goes
        // at the next prune).
        store.put_ticket(Line::Session(&id(2)), &ticket("done", 1)).unwrap();
        store.remove_ticket(Line::Session(&id(2)), "done").unwrap();
        store.put_ticket(Line::Claudes, &ticket("dead", dead)).unwrap();
        // A claim on the next turn and a stop request of runs that are gone.
        std::fs::create_dir_all(dir.path().join("next")).unwrap();
        let next = serde_json::json!({"v": 1, "pid": dead, "at": 1});
        std::fs::write(dir.path().join(format!("next/{}.json", id(3))), next.to_string()).unwrap();
        store.put_stop_request(&id(3), dead).unwrap();
        store.put_stop_request(&id(4), 1).unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        // A steer message whose sender is gone; one whose sender lives.
        let steer = |name: &str, from_pid| SteerRequest {
            v: FORMAT,
            id: name.into(),
            session: id(5),
            to_pid: dead,
            from_pid,
            prompt: "p".into(),
            images: Vec::new(),
            at: now_ms(),
            state: SteerState::Pending,
        };
        // A `clawsess queue` claim whose process is gone, and one of ours.
        let claim = |pid| TurnClaim {
            v: FORMAT,
            token: "t".into(),
            pid,
            pid_start: None,
            key: "k".into(),
            state: ClaimState::Ready,
            claude: None,
            at: 1,
        };
        tx.put_claim(&id(8), &claim(dead)).unwrap();
        tx.put_claim(&id(9), &claim(std::process::id())).unwrap();
        tx.put_steer(&steer("gone", dead)).unwrap();
        tx.put_steer(&steer("waiting", std::process::id())).unwrap();
        // A claude slot of processes that are gone, and one of ours.
        let slot = |name: &str, proc| ClaudeSlot {
            v: FORMAT,
            id: name.into(),
            key: "k".into(),
            procs: vec![proc],
            keeper_of: None,
            since: 1,
        };
        tx.put_claude_slot(&slot("gone", Proc { pid: dead, start: None })).unwrap();
        tx.put_claude_slot(&slot("ours", Proc::me())).unwrap();
        // A warm socket and log whose keeper is gone (no note), old enough.
        std::fs::create_dir_all(dir.path().join("warm")).unwrap();
        for ext in ["sock", "log"] {
            let path = dir.path().join(format!("warm/{}.{ext}", id(6)));
            std::fs::write(&path, "").unwrap();
            backdate(&path);
        }
        // A send to a session with no record.
        std::fs::create_dir_all(dir.path().join("sends")).unwrap();
        std::fs::write(dir.path().join(format!("sends/{}.json", id(7))), "{}").unwrap();
        // A live file whose record is gone; one of a live record stays.
        std::fs::create_dir_all(dir.path().join("live")).unwrap();
        std::fs::write(dir.path().join(format!("live/{}.json", id(8))), "{}").unwrap();
        let rec = SessionRecord::new(id(9), "/p".into(), "/p/t.jsonl".into(), Starter::Person, 1);
        tx.put_session(&rec).unwrap();
        let rec = tx.session(&id(9)).unwrap().unwrap();
        tx.update_session(&rec, &SessionRecord { last_seen: 2, ..rec.clone() }).unwrap();
        drop(tx);
        backdate(&dir.path().join(format!("queue/{}", id(2))));

        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let swept = sweep(&tx).unwrap();
        assert_eq!(
            swept,
            Swept {
                tickets: 2,
                dirs: 1,
                next: 2,
                stops: 1,
                steers: 1,
                slots: 1,
                warm: 2,
                sends: 1,
                scratch: 0,
                live: 1
            }
        );
        let left: Vec<String> =
            store.queue(Line::Session(&id(1))).unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(left, ["live"]);
        assert!(!dir.path().join(format!("queue/{}", id(2))).exists());
        assert!(store.stop_request(&id(4)).unwrap().is_some(), "a live run's stop request stays");
        assert!(store.claim(&id(8)).unwrap().is_none() && store.claim(&id(9)).unwrap().is_some());
        assert_eq!(store.steers(&id(5)).unwrap().len(), 1, "a waiting sender's message stays");
        let slots: Vec<String> = store.claude_slots().unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(slots, ["ours"]);
        assert!(store.ids_in("warm").is_empty() && store.ids_in("sends").is_empty());
        assert_eq!(store.ids_in("live").into_iter().collect::<Vec<_>>(), [id(9)]);
        // A second sweep finds nothing.
        assert_eq!(sweep(&tx).unwrap().total(), 0);
    }
}
