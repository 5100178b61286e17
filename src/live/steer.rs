//! `run --steer`: a message that goes into the turn in progress instead of waiting for it.
//!
//! Claude Code reads user messages on its stream-json stdin while a turn runs: the model gets
//! one at its next step (with the next tool result), or, when the model is writing its last
//! answer, as the next turn right after (docs/MIDTURN.md has the measurements). Only the run
//! that drives the turn holds claude's stdin, so a steering `run` hands it the message
//! through the state dir: `steer/<session>/<id>.json`, addressed to the driver's pid and
//! changed only under the store lock. The driver looks every [`super::TICK`] (as it does for
//! stop requests and answers), takes it, writes it to claude with `uuid` = the id, and from
//! then on appends the turn's events to `<id>.events`, the result last; the steering run
//! prints them as they come. Claude Code (2.1.x, `msg_lifecycle_v1`) says when it is done
//! with a message (`command_lifecycle` `completed`): the driver's turn ends only when claude
//! is done with every message it took, so the result is the whole turn's.
//!
//! Files and a poll rather than a socket or a FIFO: the driver already polls the store every
//! tick, a file survives either side dying (the other side sees the pid gone), the state
//! change under the store lock decides every race (taken, or withdrawn, never both), and a
//! message is never lost: one the turn did not take is marked missed and its sender runs it
//! as a turn of its own.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Map, Value};

use super::{Event, Input, TICK, wire};
use crate::claude::process::process_alive;
use crate::ident::SessionId;
use crate::store::{COMMAND_LOCK_WAIT, FORMAT, RunHolder, SteerRequest, SteerState, Store, now_ms};
use crate::turn::exclusion::{busy_marker, run_holder};

/// The capability in claude's `system` `init` line that says it reports `command_lifecycle`.
pub const LIFECYCLE: &str = "msg_lifecycle_v1";

/// The driver's side: steer messages taken into this turn, and whom to tell its events.
#[derive(Default)]
pub struct Inbox {
    /// claude's init line was seen: `Some(true)` when it reports message lifecycles.
    able: Option<bool>,
    /// The ids of the taken messages claude is not done with.
    open: HashSet<String>,
    /// The events files of the runs that steered into this turn.
    followers: Vec<File>,
}

impl Inbox {
    /// claude printed its init line with these capabilities.
    pub fn init(&mut self, capabilities: &[String]) {
        self.able = Some(capabilities.iter().any(|c| c == LIFECYCLE));
    }

    /// claude's `command_lifecycle` for message `uuid`: done with it unless queued or started.
    pub fn lifecycle(&mut self, uuid: &str, state: &str) {
        if !matches!(state, "queued" | "started") {
            self.open.remove(uuid);
        }
    }

    /// Whether claude still has a steer message to answer: the turn is not over yet.
    pub fn busy(&self) -> bool {
        !self.open.is_empty()
    }

    /// Takes the steer messages for this run into claude's input. Before claude's init line
    /// nothing is taken; a claude that cannot report when it is done with a message gets
    /// none (each is marked missed and runs as a turn of its own).
    pub fn take(
        &mut self,
        store: &Store,
        session: &SessionId,
        input: &mut dyn Input,
        verbatim: bool,
    ) -> Result<()> {
        let Some(able) = self.able else { return Ok(()) };
        let me = std::process::id();
        let mine = |s: &SteerRequest| s.to_pid == me && s.state == SteerState::Pending;
        if !store.steers(session)?.iter().any(mine) {
            return Ok(()); // the common case, without the store lock
        }
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        for mut steer in tx.steers(session)?.into_iter().filter(mine) {
            if !able {
                let why = format!(
                    "this Claude Code does not report when it has read a message sent mid-turn (no {LIFECYCLE})"
                );
                steer.state = SteerState::Missed { why };
                tx.put_steer(&steer)?;
                continue;
            }
            let file = File::options()
                .create(true)
                .append(true)
                .open(store.steer_events_path(session, &steer.id))?;
            steer.state = SteerState::Taken;
            tx.put_steer(&steer)?;
            input.send(&wire::steer_message(&steer.prompt, &steer.images, verbatim, &steer.id));
            self.open.insert(steer.id.clone());
            self.followers.push(file);
        }
        Ok(())
    }

    /// Tells the runs that steered into this turn an event.
    pub fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            self.tell(line.as_bytes());
        }
    }

    fn tell(&mut self, line: &[u8]) {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        // One write per line, in append mode: a reader never sees two lines interleaved.
        self.followers.retain_mut(|f| f.write_all(&bytes).is_ok());
    }

    /// The turn is over: the steering runs get its result (`None`: it failed), and messages
    /// still waiting for this run are marked missed, so their senders run them.
    pub fn finish(&mut self, store: &Store, session: &SessionId, result: Option<&[u8]>) -> Result<()> {
        let failed = br#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"","error":"the turn this message was steered into failed"}"#;
        let result = result.filter(|r| !r.is_empty()).unwrap_or(failed);
        self.tell(result);
        self.followers.clear();
        let me = std::process::id();
        let mine = |s: &SteerRequest| s.to_pid == me && s.state == SteerState::Pending;
        // A sender killed while it waited leaves its file: it goes here.
        let orphan = |s: &SteerRequest| !crate::sys::pid_alive(s.from_pid);
        if !store.steers(session)?.iter().any(|s| mine(s) || orphan(s)) {
            return Ok(());
        }
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        for mut steer in tx.steers(session)? {
            if orphan(&steer) {
                tx.remove_steer(session, &steer.id)?;
            } else if mine(&steer) {
                let why = "the turn ended before it could take the message".into();
                steer.state = SteerState::Missed { why };
                tx.put_steer(&steer)?;
            }
        }
        Ok(())
    }
}

/// How a steer went, for the steering run.
#[derive(Debug)]
pub enum Steered {
    /// The message went into the turn of the run `into` (its key); this is the turn's result.
    Followed { into: String, result: Map<String, Value> },
    /// It could not go into a turn: run it as a turn of its own, in the queue. Why.
    Queue(String),
}

/// The steering run's side: offers `prompt` to the turn in progress on `session`, prints
/// (`each`) the turn's events from then on, and returns its result; or says why it must
/// queue instead.
pub fn offer(
    store: &Store,
    session: &SessionId,
    prompt: &str,
    images: &[Value],
    each: &mut dyn FnMut(&Value),
) -> Result<Steered> {
    let Some(driver) = run_holder(store, session).filter(|h| process_alive(h.pid, h.pid_start)) else {
        return Ok(Steered::Queue(match busy_marker(store, session)? {
            Some(marker) => format!(
                "the turn in progress is a {}'s, which clawsess cannot write into; the message waits for it",
                marker.surface.as_deref().unwrap_or("terminal")
            ),
            None => "no turn is in progress on the session; the message runs as a turn now".into(),
        }));
    };
    let steer = SteerRequest {
        v: FORMAT,
        id: uuid::Uuid::new_v4().to_string(),
        session: session.clone(),
        to_pid: driver.pid,
        from_pid: std::process::id(),
        prompt: prompt.to_owned(),
        images: images.to_vec(),
        at: now_ms(),
        state: SteerState::Pending,
    };
    store.lock(COMMAND_LOCK_WAIT)?.put_steer(&steer)?;
    let outcome = wait_and_follow(store, &steer, &driver, each);
    let _ = store.lock(COMMAND_LOCK_WAIT).and_then(|tx| tx.remove_steer(session, &steer.id));
    outcome
}

fn wait_and_follow(
    store: &Store,
    steer: &SteerRequest,
    driver: &RunHolder,
    each: &mut dyn FnMut(&Value),
) -> Result<Steered> {
    loop {
        let now = store.steer(&steer.session, &steer.id)?.map(|s| s.state);
        match now {
            Some(SteerState::Taken) => break,
            Some(SteerState::Missed { why }) => return Ok(Steered::Queue(why)),
            None => bail!("the steer message was removed from the state dir before the turn took it"),
            Some(SteerState::Pending) if !process_alive(driver.pid, driver.pid_start) => {
                // Withdrawn under the lock, unless the driver took it just now.
                let tx = store.lock(COMMAND_LOCK_WAIT)?;
                if tx.steer(&steer.session, &steer.id)?.is_some_and(|s| s.state == SteerState::Pending) {
                    tx.remove_steer(&steer.session, &steer.id)?;
                    return Ok(Steered::Queue("the turn ended before it could take the message".into()));
                }
            }
            Some(SteerState::Pending) => std::thread::sleep(TICK),
        }
    }
    // Taken: the turn's events follow, the result last.
    each(&serde_json::json!({"type": "steer", "into": "turn", "key": driver.key}));
    let path = store.steer_events_path(&steer.session, &steer.id);
    let mut file = File::open(&path)?;
    let mut pending = Vec::new();
    let mut offset = 0u64;
    let mut driver_gone = false;
    loop {
        file.seek(SeekFrom::Start(offset))?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        offset += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let Ok(value) = serde_json::from_slice::<Value>(&line) else { continue };
            if value.get("type").and_then(Value::as_str) == Some("result") {
                let mut result = value.as_object().cloned().unwrap_or_default();
                result.remove("type");
                return Ok(Steered::Followed { into: driver.key.clone(), result });
            }
            each(&value);
        }
        if chunk.is_empty() {
            if driver_gone {
                bail!("the run driving the turn (pid {}) ended without telling its result", driver.pid);
            }
            // Read once more after seeing it gone: it may have written the result and exited.
            driver_gone = !process_alive(driver.pid, driver.pid_start);
            if !driver_gone {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
