use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Run, print_json};
use crate::cli::Attach;
use crate::exit;
use crate::ident::{Key, SessionId};
use crate::resolve::{find_session, most_recent_person_session};
use crate::store::{Attachment, COMMAND_LOCK_WAIT, KeyState, SessionRecord, Store, now_ms};
use crate::sys::{printable, tilde};
use crate::topic::session_topic;

impl Run for Attach {
    fn run(&self) -> Result<u8> {
        let key = self.key.as_deref().map(Key::parse).transpose()?;
        let store = Store::open()?;
        if let Some(arg) = &self.session
            && let Some((host, session)) = crate::remote::split_remote(&store.hosts()?, arg)
        {
            return crate::remote::ops::attach(&store, &host, session, key.as_ref(), self.json);
        }
        let id = match &self.session {
            Some(arg) => find_session(&store, arg)?,
            None => default_session(&store)?,
        };
        let rec = store.session(&id)?.with_context(|| format!("session {id} is not recorded"))?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        let attachment = Attachment { session: id.clone(), at: now_ms() };
        match &key {
            Some(key) => {
                let mut state = tx.key_state(key)?.unwrap_or_else(|| KeyState::new(key.clone()));
                state.attached = Some(attachment);
                tx.put_key_state(&state)?;
                crate::remote::ops::forget_key(&tx, key)?; // its runs stay here from now on
            }
            None => {
                tx.set_global(Some(attachment))?;
                crate::remote::ops::forget_global(&tx)?; // one global attachment: this one
            }
        }
        drop(tx);
        report(&store, &rec, key.as_ref(), self.json)?;
        Ok(exit::OK)
    }
}

/// This Claude Code session (so `/attach` inside Claude Code is race-free), else the most
/// recent session a person started.
fn default_session(store: &Store) -> Result<SessionId> {
    for var in ["CLAUDE_CODE_SESSION_ID", "CLAWSESS_SESSION_ID"] {
        if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            let id = SessionId::parse(&value).with_context(|| format!("${var}"))?;
            if store.session(&id)?.is_none() {
                bail!(
                    "this Claude Code session ({id}, from ${var}) is not recorded: \
                     is the hook installed? Run `clawsess install`, then start a new session"
                );
            }
            return Ok(id);
        }
    }
    most_recent_person_session(store)?.context(
        "no session to attach: start Claude Code (with the hook installed: `clawsess install`), \
         or name one: clawsess attach SESSION",
    )
}

fn report(store: &Store, rec: &SessionRecord, key: Option<&Key>, json: bool) -> Result<()> {
    let topic = session_topic(store, rec);
    if json {
        let topic = topic.as_ref().ok();
        let prompts = topic.map(|t| &t.topic.prompts);
        return print_json(&json!({
            "session_id": rec.id,
            "key": key,
            "global": key.is_none(),
            "name": rec.name,
            "cwd": rec.cwd,
            "last_prompt": prompts.and_then(|p| p.last()).map(|p| &p.text),
            "last_reply": topic.and_then(|t| t.topic.last_reply.as_ref()),
            "topic": topic,
        }));
    }
    let who = key.map_or("every key (global)".to_owned(), |k| k.to_string());
    let name = rec.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
    crate::outln!("Attached {who} to session {}{name}", rec.id)?;
    crate::outln!("  {:<12} {}", "cwd:", printable(&tilde(&rec.cwd), false))?;
    match topic {
        Ok(topic) => crate::outln!("{}", topic.human(false).trim_end_matches('\n'))?,
        Err(_) => crate::outln!("  (no transcript yet at {})", printable(&tilde(&rec.transcript), false))?,
    }
    Ok(())
}
