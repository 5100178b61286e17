//! `run --ask`: a tool call that needs permission becomes a request file that any process of
//! the user answers (`clawsess answer`), so a bot's button handler, or a bot restarted since
//! it showed the buttons, can answer it.
//!
//! Every change to a request goes through the store lock: the caller's answer and the run's
//! timeout cannot both land, and an answered request cannot be answered again.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::ident::{RequestId, SessionId};
use crate::store::{
    COMMAND_LOCK_WAIT, Decision, FORMAT, Locked, PermissionAnswer, PermissionRequest, Store, now_ms,
};
use crate::sys::pid_alive;

/// Puts a tool call to the caller: writes its request file and returns it.
pub fn ask(
    store: &Store,
    session: &SessionId,
    key: &str,
    tool: &str,
    input: &Value,
    timeout: Duration,
) -> Result<PermissionRequest> {
    let now = now_ms();
    let req = PermissionRequest {
        v: FORMAT,
        id: RequestId::new_random(),
        session: session.clone(),
        key: key.to_owned(),
        run_pid: std::process::id(),
        tool: tool.to_owned(),
        input: input.clone(),
        asked_at: now,
        timeout_at: now.saturating_add(timeout.as_millis() as u64),
        answer: None,
    };
    store.lock(COMMAND_LOCK_WAIT)?.put_request(&req)?;
    Ok(req)
}

/// What the run waiting on `id` should do now: the answer, once there is one. A request whose
/// file is gone (swept, or removed by hand) counts as denied.
pub fn check(store: &Store, id: &RequestId) -> Result<Option<PermissionAnswer>> {
    match store.request(id)? {
        Some(req) => Ok(req.answer),
        None => Ok(Some(PermissionAnswer {
            decision: Decision::Deny,
            reason: Some("the permission request was withdrawn".into()),
            at: now_ms(),
        })),
    }
}

/// The run gives up waiting: the request is denied as timed out, unless an answer landed
/// first, which then stands. Returns the answer that stands.
pub fn time_out(store: &Store, id: &RequestId, reason: &str) -> Result<PermissionAnswer> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let Some(mut req) = tx.request(id)? else {
        return Ok(PermissionAnswer {
            decision: Decision::Timeout,
            reason: Some(reason.into()),
            at: now_ms(),
        });
    };
    if let Some(answer) = req.answer {
        return Ok(answer);
    }
    let answer = PermissionAnswer { decision: Decision::Timeout, reason: Some(reason.into()), at: now_ms() };
    req.answer = Some(answer.clone());
    tx.put_request(&req)?;
    Ok(answer)
}

/// `clawsess answer`: answers request `id` once. Unknown, already answered or timed out, or
/// its run gone: an error saying so.
pub fn answer(store: &Store, id: &RequestId, allow: bool, reason: Option<&str>) -> Result<PermissionRequest> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let Some(mut req) = tx.request(id)? else {
        bail!("no permission request {id} is waiting: its turn is over, or the id is wrong");
    };
    if let Some(done) = &req.answer {
        let how = match done.decision {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
            Decision::Timeout => "denied: nobody answered in time",
        };
        bail!("permission request {id} was already answered ({how})");
    }
    if !pid_alive(req.run_pid) {
        tx.remove_request(id)?;
        bail!("the run that asked permission request {id} is gone; nothing is waiting for it");
    }
    let decision = if allow { Decision::Allow } else { Decision::Deny };
    req.answer = Some(PermissionAnswer { decision, reason: reason.map(str::to_owned), at: now_ms() });
    tx.put_request(&req)?;
    Ok(req)
}

/// Removes the requests of a turn that is over (a late answer then says so).
pub fn forget(store: &Store, ids: &[RequestId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    for id in ids {
        tx.remove_request(id)?;
    }
    Ok(())
}

/// Removes the requests whose run has died (SIGKILL leaves them); returns how many.
pub fn sweep(store: &Store) -> Result<usize> {
    if store.requests()?.iter().all(|r| pid_alive(r.run_pid)) {
        return Ok(0); // the common case, without the store lock
    }
    sweep_locked(&store.lock(COMMAND_LOCK_WAIT)?)
}

/// [`sweep`] with the store lock already held.
pub fn sweep_locked(tx: &Locked<'_>) -> Result<usize> {
    let mut swept = 0;
    for req in tx.requests()?.into_iter().filter(|r| !pid_alive(r.run_pid)) {
        if tx.remove_request(&req.id)? {
            swept += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> SessionId {
        SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap()
    }

    #[test]
    fn a_request_is_answered_once_and_a_timeout_does_not_override_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let req = ask(&store, &session(), "k", "Bash", &json!({"command": "tee x"}), Duration::from_secs(60))
            .unwrap();
        assert_eq!(check(&store, &req.id).unwrap(), None);
        answer(&store, &req.id, true, None).unwrap();
        let err = answer(&store, &req.id, false, Some("no")).unwrap_err().to_string();
        assert!(err.contains("already answered (allowed)"), "{err}");
        assert_eq!(time_out(&store, &req.id, "late").unwrap().decision, Decision::Allow);
        assert_eq!(check(&store, &req.id).unwrap().unwrap().decision, Decision::Allow);

        let second = ask(&store, &session(), "k", "Write", &json!({}), Duration::ZERO).unwrap();
        assert_eq!(time_out(&store, &second.id, "no answer").unwrap().decision, Decision::Timeout);
        assert!(answer(&store, &second.id, true, None).unwrap_err().to_string().contains("in time"));
        forget(&store, &[req.id.clone(), second.id.clone()]).unwrap();
        assert!(
            answer(&store, &req.id, true, None).unwrap_err().to_string().contains("no permission request")
        );
        assert_eq!(check(&store, &req.id).unwrap().unwrap().decision, Decision::Deny);
    }

    #[test]
    fn requests_of_a_dead_run_are_swept_and_cannot_be_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let mut req = ask(&store, &session(), "k", "Bash", &json!({}), Duration::from_secs(60)).unwrap();
        let live = ask(&store, &session(), "k", "Bash", &json!({}), Duration::from_secs(60)).unwrap();
        req.run_pid = u32::MAX; // no such process
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_request(&req).unwrap();
        assert!(answer(&store, &req.id, true, None).unwrap_err().to_string().contains("is gone"));
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_request(&req).unwrap();
        assert_eq!(sweep(&store).unwrap(), 1);
        assert!(store.request(&req.id).unwrap().is_none());
        assert!(store.request(&live.id).unwrap().is_some(), "a live run's request stays");
    }
}
