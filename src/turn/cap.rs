//! The claude cap: at most `CLAWSESS_MAX_CLAUDES` claude processes that clawsess starts run
//! at once, per user (state dir), kept (warm) ones counted.
//!
//! Each such claude holds a slot, `claudes/<id>.json`, taken and counted under the store lock,
//! so two runs can never both take the last one. A slot names its processes (pid and start
//! time): the run that took it, its claude, the keeper it was handed to and the keeper's
//! claude. It counts while any of them lives, so processes that crashed or were killed free
//! their slot by themselves (the next count removes it).
//!
//! A turn that finds the cap reached waits in the claudes' queue (`queue/claudes/`, the same
//! tickets as a session's queue, [`super::queue`]): first come, first served across keys; a
//! key's own turns keep their order because a key's runs go one at a time (its key lock).
//! Only the first in line takes a free slot. Waiters do not poll: a slot freed or a ticket
//! leaving removes a file, which rings their [`Store::bell`]; they look again then, and after
//! [`RECHECK`] anyway (a process killed with its slot or ticket on file rings nothing).
//! While it waits at the head of the line, an idle warm claude (its keeper alive, no turn on
//! its session) is ended to make room, the least recently used first: a kept claude saves
//! the next turn of one session a few seconds, while a turn that waits for a slot cannot
//! start at all.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::queue::{self, Ticket};
use crate::config::MAX_CLAUDES_ENV;
use crate::exit::Busy;
use crate::ident::SessionId;
use crate::store::{COMMAND_LOCK_WAIT, ClaudeSlot, FORMAT, Line, Locked, Proc, Store, Watched, now_ms};
use crate::sys::bell::Listener;

/// How long a waiting turn waits for the bell before it looks again anyway: a slot freed or a
/// ticket left rings it at once (its file removed, [`Store::bell`]); a run or claude killed
/// with its slot or ticket still on file rings nothing, and counts no more from the next look.
const RECHECK: Duration = Duration::from_secs(1);

/// Without a bell (no inotify), the first waiting turn looks again every `POLL`, the one at
/// place N N times less often, up to [`RECHECK`]: fifty waiters reading the line every 50 ms
/// kept two cores busy.
const POLL: Duration = Duration::from_millis(50);

/// `CLAWSESS_MAX_CLAUDES`, else the config file's `max_claudes`, else half the machine's
/// memory at 600 MB a claude (`crate::config::default_max_claudes`); a
/// value that is not a number of processes is an error, not the default.
pub fn max_claudes() -> Result<usize> {
    Ok(crate::config::file_or_defaults().max_claudes()?.value)
}

/// How a turn waits for a slot: where it stands, told each time it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// 1: next.
    pub position: usize,
    /// Claudes running now.
    pub running: usize,
    pub cap: usize,
}

/// A slot held: the claude this turn starts counts against the cap until the slot is left
/// (on drop) and its processes are gone.
pub struct Slot<'a> {
    store: &'a Store,
    id: String,
    /// Processes this side added (itself, its claude); dropping takes them off.
    mine: Vec<Proc>,
}

impl Slot<'_> {
    /// The slot's id (a keeper given it leaves it when it ends).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Notes the claude this turn started: the slot counts while it runs, even if this
    /// process is killed first (leaving the slot takes it off).
    pub fn add(&mut self, pid: u32) -> Result<()> {
        let proc = Proc::of(pid);
        self.mine.push(proc);
        update(self.store, &self.id, |slot| slot.procs.push(proc))
    }

    /// Notes the claude a keeper this slot was handed to started: it stays on the slot when
    /// this side leaves (the keeper takes it off).
    pub fn add_kept(&mut self, pid: u32) -> Result<()> {
        update(self.store, &self.id, |slot| slot.procs.push(Proc::of(pid)))
    }

    /// Hands the slot to the keeper `keeper` of `session` (a warm claude): it counts while the
    /// keeper or its claude lives, and the keeper leaves it when it ends.
    pub fn hand_to_keeper(&mut self, keeper: u32, session: &SessionId) -> Result<()> {
        update(self.store, &self.id, |slot| {
            slot.procs.push(Proc::of(keeper));
            slot.keeper_of = Some(session.clone());
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = leave(self.store, &self.id, &self.mine);
    }
}

/// Takes `slot`'s processes `procs` off it (and dead ones); the slot goes once none is left.
pub fn leave(store: &Store, slot: &str, procs: &[Proc]) -> Result<()> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let Some(mut found) = tx.claude_slot(slot)? else { return Ok(()) };
    found.procs.retain(|p| !procs.contains(p) && p.alive());
    if found.procs.is_empty() {
        tx.remove_claude_slot(slot)?;
    } else {
        tx.put_claude_slot(&found)?;
    }
    Ok(())
}

/// Changes a slot under the store lock (a slot already gone stays gone).
fn update(store: &Store, slot: &str, change: impl FnOnce(&mut ClaudeSlot)) -> Result<()> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    if let Some(mut found) = tx.claude_slot(slot)? {
        change(&mut found);
        tx.put_claude_slot(&found)?;
    }
    Ok(())
}

/// The slots that count, with the store lock held; slots all of whose processes are gone are
/// removed.
pub fn live_slots(tx: &Locked<'_>) -> Result<Vec<ClaudeSlot>> {
    let mut live = Vec::new();
    for slot in tx.claude_slots()? {
        if slot.live() {
            live.push(slot);
        } else {
            tx.remove_claude_slot(&slot.id)?;
        }
    }
    Ok(live)
}

/// How many claudes clawsess runs now (live slots), read without the lock.
pub fn running(store: &Store) -> usize {
    store.claude_slots().map_or(0, |slots| slots.iter().filter(|s| s.live()).count())
}

/// Who holds each live slot, read without the lock: its key (a run's key, or what took it,
/// e.g. `doctor --probe`), a slot each, oldest first (a tie by key).
pub fn holders(store: &Store) -> Vec<String> {
    let mut live: Vec<ClaudeSlot> =
        store.claude_slots().unwrap_or_default().into_iter().filter(|s| s.live()).collect();
    live.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
    live.into_iter().map(|s| s.key).collect()
}

/// [`holders`] for people: each key once, with how many it holds, e.g. `doctor --probe x3,
/// telegram:1`; empty when none.
pub fn held_by(store: &Store) -> String {
    let mut keys: Vec<(String, usize)> = Vec::new();
    for key in holders(store) {
        let key = crate::sys::printable(&key, false).to_string();
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => keys.push((key, 1)),
        }
    }
    keys.iter()
        .map(|(k, n)| if *n > 1 { format!("{k} x{n}") } else { k.clone() })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes a slot for a claude that `key`'s turn is about to start, waiting in line until
/// `deadline` while `cap` (see [`max_claudes`]) claudes run; `waiting` hears where the turn
/// stands each time that changes. First in line with the cap reached, it asks `make_room`
/// (given the live slots) to end an idle claude: true when it did. Past the deadline: a
/// [`Busy`] error.
pub fn take<'a>(
    store: &'a Store,
    key: &str,
    cap: usize,
    deadline: Instant,
    make_room: impl FnMut(&[ClaudeSlot]) -> Result<bool>,
    waiting: impl FnMut(&Waiting),
) -> Result<Slot<'a>> {
    let mut slots = take_with(store, key, 1, cap, deadline, make_room, waiting, RECHECK)?;
    Ok(slots.pop().expect("one slot taken"))
}

/// [`take`] for `n` claudes that `key` starts at once (`doctor --probe` runs three): the
/// slots are taken together, when `n` are free, so that two such takers never each hold some
/// and wait for the rest. More than `cap`: an error at once, naming what to raise.
pub fn take_many<'a>(
    store: &'a Store,
    key: &str,
    n: usize,
    cap: usize,
    deadline: Instant,
    make_room: impl FnMut(&[ClaudeSlot]) -> Result<bool>,
    waiting: impl FnMut(&Waiting),
) -> Result<Vec<Slot<'a>>> {
    if n > cap {
        anyhow::bail!(
            "{key} starts {n} claude processes at once, more than clawsess may start \
             ({MAX_CLAUDES_ENV}={cap}); raise {MAX_CLAUDES_ENV} to {n} or more for it"
        );
    }
    take_with(store, key, n, cap, deadline, make_room, waiting, RECHECK)
}

/// [`take_many`], looking again every `recheck` when the bell does not ring.
#[allow(clippy::too_many_arguments)]
fn take_with<'a>(
    store: &'a Store,
    key: &str,
    n: usize,
    cap: usize,
    deadline: Instant,
    mut make_room: impl FnMut(&[ClaudeSlot]) -> Result<bool>,
    mut waiting: impl FnMut(&Waiting),
    recheck: Duration,
) -> Result<Vec<Slot<'a>>> {
    // Listening (from the first wait on) before each look: a slot freed between a look and
    // the wait still rings.
    let mut listener = Listener::default();
    let mut ticket: Option<Ticket<'a>> = None;
    let mut told: Option<Waiting> = None;
    loop {
        // The files of the tickets ahead, oldest first: the last one is this turn's
        // predecessor, whose leaving is what it waits for (see the bell below).
        let tickets_ahead = queue::ahead(store, Line::Claudes, ticket.as_ref())?;
        let mut ahead_files: Vec<String> = tickets_ahead.iter().map(|t| Store::ticket_file(&t.id)).collect();
        let ahead = ahead_files.len();
        // Whose end it waits for too (killed, it removes nothing, so rings nothing): the turn
        // just ahead, or, first in line, the processes of the slots.
        let mut awaited: Vec<(u32, Option<u64>)> =
            tickets_ahead.last().map(|t| (t.pid, t.pid_start)).into_iter().collect();
        let mut running = None;
        if ahead == 0 {
            let tx = store.lock(COMMAND_LOCK_WAIT)?;
            let live = live_slots(&tx)?;
            awaited =
                live.iter().flat_map(|s| &s.procs).filter(|p| p.alive()).map(|p| (p.pid, p.start)).collect();
            if live.len() + n <= cap {
                let mut taken = Vec::with_capacity(n);
                for _ in 0..n {
                    let slot = ClaudeSlot {
                        v: FORMAT,
                        id: uuid::Uuid::new_v4().to_string(),
                        key: key.to_owned(),
                        procs: vec![Proc::me()],
                        keeper_of: None,
                        since: now_ms(),
                    };
                    tx.put_claude_slot(&slot)?;
                    taken.push(Slot { store, id: slot.id, mine: vec![Proc::me()] });
                }
                return Ok(taken);
            }
            drop(tx);
            // First in line and the cap reached: an idle claude makes room (a warm one,
            // `crate::warm::end_idle`), the least recently used first.
            if make_room(&live)? {
                continue;
            }
            running = Some(live.len());
        }
        if listener.start(|| store.bell(&[Watched::Line(Line::Claudes), Watched::Slots])) {
            continue; // listening now: look again before waiting
        }
        if ticket.is_none() {
            ticket = Ticket::join(store, Line::Claudes, key);
            if ticket.is_some() {
                continue; // our place is known once the ticket is in
            }
        }
        let now =
            Waiting { position: ahead + 1, running: running.unwrap_or_else(|| self::running(store)), cap };
        if told.as_ref().is_none_or(|t| t.position != now.position) {
            waiting(&now);
            told = Some(now.clone());
        }
        if Instant::now() >= deadline {
            return Err(Busy(format!(
                "{} claude processes are running ({}), the most clawsess starts at once \
                 ({MAX_CLAUDES_ENV}={cap}), and {} turn(s) wait ahead of this one; try again later, \
                 or raise {MAX_CLAUDES_ENV}",
                now.running,
                held_by(store),
                ahead
            ))
            .into());
        }
        let until = deadline.min(Instant::now() + recheck);
        // Only what can change this turn's chance wakes it: the ticket just ahead of it
        // leaving, and, first in line, a slot freed. A ticket further ahead leaving moves it
        // up a place, told without reading the line again; fifty waiters reading it at every
        // turn that leaves were a thundering herd. A waiter ahead that was killed, or a slot's
        // processes, wake it by their end (pidfds); where those cannot be had, the recheck
        // finds them. Without a bell, the further back, the slower it polls.
        let poll = (POLL * u32::try_from(now.position).unwrap_or(u32::MAX)).min(recheck);
        listener.wait_until(until, poll, &awaited, |rang| {
            let predecessor = ahead_files.last().cloned();
            ahead_files.retain(|f| !rang.gone[0].contains(f));
            if predecessor.is_some_and(|p| !ahead_files.contains(&p))
                || (!rang.gone[1].is_empty() && ahead == 0)
            {
                return true;
            }
            let moved = Waiting { position: ahead_files.len() + 1, ..now.clone() };
            if told.as_ref().is_none_or(|t| t.position != moved.position) {
                waiting(&moved);
                told = Some(moved);
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_while_one_of_its_processes_lives_and_dead_ones_are_freed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let dead = ClaudeSlot {
            v: FORMAT,
            id: "dead".into(),
            key: "k".into(),
            procs: vec![Proc { pid: u32::MAX, start: None }],
            keeper_of: None,
            since: 1,
        };
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_claude_slot(&dead).unwrap();
        // pid 1 lives, but not with this start time: a reused pid is not the slot's.
        let reused = ClaudeSlot { id: "reused".into(), procs: vec![Proc { pid: 1, start: Some(1) }], ..dead };
        tx.put_claude_slot(&reused).unwrap();
        assert!(live_slots(&tx).unwrap().is_empty());
        assert!(tx.claude_slots().unwrap().is_empty(), "dead slots are removed");
        drop(tx);
        let mut slot = take(&store, "k", 1, Instant::now(), |_| Ok(false), |_| panic!("no wait")).unwrap();
        slot.add(1).unwrap(); // init: a "claude" that outlives us
        assert_eq!(running(&store), 1);
        let id = slot.id().to_owned();
        drop(slot);
        assert!(store.claude_slot(&id).unwrap().is_none(), "leaving takes our processes off");
    }

    #[test]
    fn past_the_cap_a_turn_waits_in_line_and_is_busy_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let first = take(&store, "a", 1, Instant::now(), |_| Ok(false), |_| panic!("free")).unwrap();
        let mut heard = Vec::new();
        let err = take(
            &store,
            "b",
            1,
            Instant::now() + Duration::from_millis(120),
            |_| Ok(false),
            |w| heard.push(w.clone()),
        )
        .err()
        .expect("the cap is reached");
        assert!(err.downcast_ref::<Busy>().is_some(), "{err:#}");
        assert!(format!("{err}").contains("CLAWSESS_MAX_CLAUDES=1"), "{err}");
        assert_eq!(heard, [Waiting { position: 1, running: 1, cap: 1 }]);
        assert!(store.queue(Line::Claudes).unwrap().is_empty(), "giving up leaves the line");
        drop(first);
        let second = take(&store, "b", 1, Instant::now(), |_| Ok(false), |_| panic!("free again")).unwrap();
        drop(second);
    }

    /// `take_with` on a thread, long rechecks unless told: what it heard and what it got.
    fn waiter(
        dir: &std::path::Path,
        recheck: Duration,
    ) -> (std::sync::mpsc::Receiver<Waiting>, std::sync::mpsc::Receiver<Result<String, String>>) {
        // Where inotify cannot be had a waiter polls, and these tests would not show the bell.
        assert!(Store::at(dir).bell(&[Watched::Slots]).is_some(), "inotify on Linux");
        let (heard_tx, heard) = std::sync::mpsc::channel();
        let (got_tx, got) = std::sync::mpsc::channel();
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            let store = Store::at(&dir);
            let far = Instant::now() + Duration::from_secs(600);
            let slot = take_with(
                &store,
                "b",
                1,
                1,
                far,
                |_| Ok(false),
                |w| heard_tx.send(w.clone()).unwrap(),
                recheck,
            );
            let _ = got_tx.send(slot.map(|s| s[0].id().to_owned()).map_err(|e| format!("{e:#}")));
        });
        (heard, got)
    }

    /// The slot `id` (key `a`) on file, held by a process started for it (a `sleep` the test
    /// kills).
    fn slot_held_by_a_process(store: &Store, id: &str) -> std::process::Child {
        let releaser = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let slot = ClaudeSlot {
            v: FORMAT,
            id: id.into(),
            key: "a".into(),
            procs: vec![Proc::of(releaser.id())],
            keeper_of: None,
            since: now_ms(),
        };
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_claude_slot(&slot).unwrap();
        releaser
    }

    /// Long enough for a loaded machine, far shorter than a waiter's recheck in these tests:
    /// a waiter that answers within it was woken, it did not look again on its own.
    const ANSWER: Duration = Duration::from_secs(60);

    #[test]
    fn a_waiter_wakes_when_the_slot_it_waits_for_frees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let first = take(&store, "a", 1, Instant::now(), |_| Ok(false), |_| panic!("free")).unwrap();
        let (heard, got) = waiter(dir.path(), Duration::from_secs(600));
        // The barrier: it waits, first in line, before the slot frees.
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 1, running: 1, cap: 1 });
        assert!(got.try_recv().is_err(), "no slot while the cap is reached");
        let freed = first.id().to_owned();
        drop(first);
        let id = got.recv_timeout(ANSWER).expect("woken by the slot freed").unwrap();
        assert_ne!(id, freed, "a slot of its own");
        assert!(store.queue(Line::Claudes).unwrap().is_empty(), "its ticket is gone");
    }

    #[test]
    fn a_waiter_wakes_when_the_turn_ahead_of_it_leaves_the_line_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let ahead = crate::store::QueueTicket {
            v: FORMAT,
            id: "ahead".into(),
            pid: 1, // init: alive, not us
            pid_start: crate::claude::process::start_time(1),
            surface: "a".into(),
            at: 1,
        };
        store.put_ticket(Line::Claudes, &ahead).unwrap();
        // A slot is free, but a turn waits ahead of this one: first come, first served.
        let (heard, got) = waiter(dir.path(), Duration::from_secs(600));
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 2, running: 0, cap: 1 });
        assert!(got.try_recv().is_err(), "it does not pass the turn ahead");
        store.remove_ticket(Line::Claudes, "ahead").unwrap();
        got.recv_timeout(ANSWER).expect("woken by the ticket ahead leaving").unwrap();
    }

    #[test]
    fn a_waiter_moves_up_without_reading_the_line_when_a_turn_further_ahead_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let first = crate::store::QueueTicket {
            v: FORMAT,
            id: "first".into(),
            pid: 1, // init: alive, not us
            pid_start: crate::claude::process::start_time(1),
            surface: "a".into(),
            at: 1,
        };
        let second = crate::store::QueueTicket { id: "second".into(), at: 2, ..first.clone() };
        store.put_ticket(Line::Claudes, &first).unwrap();
        store.put_ticket(Line::Claudes, &second).unwrap();
        let (heard, got) = waiter(dir.path(), Duration::from_secs(600));
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 3, running: 0, cap: 1 });
        // The turn just ahead dies unseen (rewritten in place: that rings nothing). A waiter
        // that read the line again would drop it, find itself first with a slot free and take
        // it; one that was not woken only moves up a place when the first leaves.
        let dead = crate::store::QueueTicket { pid: u32::MAX, pid_start: None, ..second };
        store.put_ticket(Line::Claudes, &dead).unwrap();
        store.remove_ticket(Line::Claudes, "first").unwrap();
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 2, running: 0, cap: 1 });
        assert!(got.try_recv().is_err(), "it did not read the line");
        assert_eq!(store.queue(Line::Claudes).unwrap().len(), 2, "the dead ticket is still on file");
        store.remove_ticket(Line::Claudes, "second").unwrap();
        got.recv_timeout(ANSWER).expect("woken by the ticket just ahead leaving").unwrap();
    }

    #[test]
    fn a_releaser_killed_with_its_slot_on_file_does_not_strand_a_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let mut releaser = slot_held_by_a_process(&store, "killed");
        // Rechecks at 20 ms: nothing rings when a process is killed, the recheck finds it.
        let (heard, got) = waiter(dir.path(), Duration::from_millis(20));
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 1, running: 1, cap: 1 });
        releaser.kill().unwrap(); // SIGKILL: it leaves nothing
        releaser.wait().unwrap();
        let id = got.recv_timeout(ANSWER).expect("the recheck finds the slot dead").unwrap();
        assert_ne!(id, "killed");
        assert!(store.claude_slot("killed").unwrap().is_none(), "the dead slot is removed");
    }

    #[test]
    fn a_releaser_killed_with_its_slot_on_file_wakes_the_waiter_by_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let mut releaser = slot_held_by_a_process(&store, "killed");
        // Rechecks at 600 s: only the end of the slot's process can wake it in time.
        let (heard, got) = waiter(dir.path(), Duration::from_secs(600));
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 1, running: 1, cap: 1 });
        releaser.kill().unwrap(); // SIGKILL: it removes nothing, rings nothing
        let id = got.recv_timeout(ANSWER).expect("woken by the end of the slot's process").unwrap();
        assert_ne!(id, "killed");
        releaser.wait().unwrap();
    }

    #[test]
    fn a_turn_ahead_killed_with_its_ticket_on_file_wakes_the_waiter_by_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let mut doomed = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let ahead = crate::store::QueueTicket {
            v: FORMAT,
            id: "ahead".into(),
            pid: doomed.id(),
            pid_start: crate::claude::process::start_time(doomed.id()),
            surface: "a".into(),
            at: 1,
        };
        store.put_ticket(Line::Claudes, &ahead).unwrap();
        let (heard, got) = waiter(dir.path(), Duration::from_secs(600));
        assert_eq!(heard.recv_timeout(ANSWER).unwrap(), Waiting { position: 2, running: 0, cap: 1 });
        assert!(got.try_recv().is_err(), "it does not pass the turn ahead");
        doomed.kill().unwrap();
        got.recv_timeout(ANSWER).expect("woken by the end of the turn ahead").unwrap();
        assert!(store.queue(Line::Claudes).unwrap().is_empty(), "the dead ticket is removed");
        doomed.wait().unwrap();
    }

    #[test]
    fn the_slots_say_who_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        assert_eq!(held_by(&store), "");
        let probe =
            take_many(&store, "doctor --probe", 3, 4, Instant::now(), |_| Ok(false), |_| panic!("free"))
                .unwrap();
        let run = take(&store, "telegram:1\u{1b}[2J", 4, Instant::now(), |_| Ok(false), |_| panic!("free"))
            .unwrap();
        assert_eq!(
            holders(&store),
            ["doctor --probe", "doctor --probe", "doctor --probe", "telegram:1\u{1b}[2J"]
        );
        // For people: each once, counted, control characters shown, not passed through.
        let said = held_by(&store);
        assert!(said.starts_with("doctor --probe x3, telegram:1") && !said.contains('\u{1b}'), "{said}");
        drop(probe);
        assert_eq!(held_by(&store), crate::sys::printable("telegram:1\u{1b}[2J", false));
        drop(run);
    }
}
