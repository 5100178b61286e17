use anyhow::{Result, bail};
use serde_json::json;

use super::{Run, print_json};
use crate::cli::Show;
use crate::exit;
use crate::resolve::find_session;
use crate::store::Store;
use crate::sys::{printable, tilde};
use crate::transcript::{self, Role};

impl Run for Show {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let id = find_session(&store, &self.session)?;
        let Some(rec) = store.session(&id)? else { bail!("session {id} was removed meanwhile") };
        if !rec.transcript.is_file() {
            bail!(
                "the transcript of {id} is gone ({}); Claude Code deletes old ones \
                 (cleanupPeriodDays); `clawsess prune` drops such records",
                tilde(&rec.transcript)
            );
        }
        let messages = transcript::last_messages(&rec.transcript, self.n as usize)?;
        if self.json {
            return print_json(
                &json!({ "session_id": id, "name": rec.name, "cwd": rec.cwd, "messages": messages }),
            )
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
