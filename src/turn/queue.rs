//! First come, first served: turns waiting for a session (runs, prompt hooks of terminals,
//! `claude -p` and SDK bots) are served in the order they began to wait.
//!
//! The run lock alone has no order (whoever's `flock` the kernel wakes first wins). So a turn
//! that has to wait puts a ticket in the session's queue (`queue/<session>/<id>.json`, its
//! pid and the time); when the session is free, only the oldest live ticket may take it, the
//! others let go of the lock at once and look again. A ticket whose process is gone does not
//! count (and is removed), so a killed waiter never blocks the queue.
//!
//! The same tickets order the turns waiting for the claude cap (`queue/claudes/`, see
//! [`super::cap`]): a queue is a [`Line`].

use anyhow::Result;

use crate::claude::process::{process_alive, start_time};
use crate::ident::SessionId;
use crate::store::{FORMAT, Line, QueueTicket, Store, now_ms};

/// When a waiter began to wait, and its ticket's id: the order it is served in. A run takes
/// its place once, before it waits for its key's lock, and keeps it in the session's queue:
/// runs of one key and every other waiter are then served in one order (first come, first
/// served), and a run never waits in the session's queue behind a later run of its own key
/// that waits for the key's lock it holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub at: u64,
    pub id: String,
}

impl Place {
    pub fn now() -> Place {
        Place { at: now_ms(), id: uuid::Uuid::new_v4().to_string() }
    }
}

/// This process's place in a session's queue; dropping it leaves the queue.
pub struct Ticket<'a> {
    store: &'a Store,
    line: Line<'a>,
    id: String,
}

impl<'a> Ticket<'a> {
    /// Joins `line` as `surface`. `None` if the ticket cannot be written: the turn then
    /// waits without a place (as before there was a queue), it does not fail.
    pub fn join(store: &'a Store, line: Line<'a>, surface: &str) -> Option<Ticket<'a>> {
        Self::join_as(store, line, surface, &Place::now())
    }

    /// Joins `line` at `place`: a run that began to wait for its key's lock keeps the place
    /// it took then (see [`Place`]).
    pub fn join_as(store: &'a Store, line: Line<'a>, surface: &str, place: &Place) -> Option<Ticket<'a>> {
        let me = std::process::id();
        let ticket = QueueTicket {
            v: FORMAT,
            id: place.id.clone(),
            pid: me,
            pid_start: start_time(me),
            surface: surface.to_owned(),
            at: place.at,
        };
        store.put_ticket(line, &ticket).ok()?;
        Some(Ticket { store, line, id: ticket.id })
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let _ = self.store.remove_ticket(self.line, &self.id);
    }
}

/// The live waiters in `line` ahead of `mine` (every live one without a ticket), oldest
/// first. Tickets of processes that are gone are removed.
pub fn ahead(store: &Store, line: Line<'_>, mine: Option<&Ticket<'_>>) -> Result<Vec<QueueTicket>> {
    let mut out = Vec::new();
    for t in store.queue(line)? {
        if mine.is_some_and(|m| m.id == t.id) {
            break;
        }
        if t.pid == std::process::id() {
            continue; // a ticket of ours left by an earlier wait of this process
        }
        if !process_alive(t.pid, t.pid_start) {
            let _ = store.remove_ticket(line, &t.id);
            continue;
        }
        out.push(t);
    }
    Ok(out)
}

/// This process's place in `session`'s queue (1: next), while it waits there.
pub fn position(store: &Store, session: &SessionId) -> Option<usize> {
    let me = std::process::id();
    let queue = store.queue(Line::Session(session)).ok()?;
    let live = queue.iter().filter(|t| t.pid == me || process_alive(t.pid, t.pid_start));
    let place = live.take_while(|t| t.pid != me).count() + 1;
    queue.iter().any(|t| t.pid == me).then_some(place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_served_oldest_first_and_a_dead_one_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let id = SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap();
        let line = Line::Session(&id);
        assert!(ahead(&store, line, None).unwrap().is_empty());
        let other = QueueTicket {
            v: FORMAT,
            id: "b".into(),
            pid: 1, // init: alive, not us
            pid_start: start_time(1),
            surface: "terminal".into(),
            at: 1,
        };
        store.put_ticket(line, &other).unwrap();
        let dead = QueueTicket { id: "c".into(), pid: u32::MAX, pid_start: None, at: 2, ..other.clone() };
        store.put_ticket(line, &dead).unwrap();
        let mine = Ticket::join(&store, line, "telegram:1").unwrap();
        let before: Vec<String> =
            ahead(&store, line, Some(&mine)).unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(before, ["b"], "the older live waiter; the dead one is gone");
        assert_eq!(store.queue(line).unwrap().len(), 2);
        store.remove_ticket(line, "b").unwrap();
        assert!(ahead(&store, line, Some(&mine)).unwrap().is_empty(), "first in line now");
        drop(mine);
        assert!(store.queue(line).unwrap().is_empty(), "leaving the queue removes the ticket");
    }
}
