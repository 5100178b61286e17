use anyhow::{Result, bail};
use serde_json::json;

use super::{Run, print_json};
use crate::cli::Show;
use crate::exit;
use crate::resolve::find_session;
use crate::store::Store;
use crate::sys::{printable, tilde};
use crate::topic::session_topic;
use crate::transcript::{self, Role};

impl Run for Show {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        if let Some((host, session)) = crate::remote::split_remote(&store.hosts()?, &self.session) {
            crate::remote::check_remote_session(session)?;
            let request = crate::remote::Request::Show {
                session: session.to_owned(),
                lines: self.n,
                topic: self.topic,
                json: self.json,
            };
            return crate::remote::ops::call(&store, &host, &request);
        }
        let id = find_session(&store, &self.session)?;
        let Some(rec) = store.session(&id)? else { bail!("session {id} was removed meanwhile") };
        if !rec.transcript.is_file() {
            bail!(
                "the transcript of {id} is gone ({}); Claude Code deletes old ones \
                 (cleanupPeriodDays); `clawsess prune` drops such records",
                tilde(&rec.transcript)
            );
        }
        if self.topic {
            let topic = session_topic(&store, &rec)?;
            if self.json {
                print_json(&json!({ "session_id": id, "name": rec.name, "cwd": rec.cwd, "topic": topic }))?;
            } else {
                let name = rec.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                crate::outln!("Session {id}{name}")?;
                crate::outln!("  {:<12} {}", "cwd:", printable(&tilde(&rec.cwd), false))?;
                crate::outln!("{}", topic.human(true).trim_end_matches('\n'))?;
            }
            return Ok(exit::OK);
        }
        let messages = transcript::last_messages(&rec.transcript, self.n as usize)?;
        if self.json {
            let topic = session_topic(&store, &rec)?;
            return print_json(&json!({
                "session_id": id, "name": rec.name, "cwd": rec.cwd, "messages": messages, "topic": topic,
            }))
            .map(|()| exit::OK);
        }
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                crate::outln!()?;
            }
            let who = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let when =
                m.timestamp.as_deref().map(|t| format!(" · {}", printable(t, false))).unwrap_or_default();
            crate::outln!("── {who}{when}")?;
            crate::outln!("{}", printable(m.text.trim_end(), true))?;
        }
        Ok(exit::OK)
    }
}
