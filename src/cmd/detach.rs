use anyhow::Result;
use serde_json::json;

use super::{Run, print_json};
use crate::cli::Detach;
use crate::exit;
use crate::ident::Key;
use crate::store::{COMMAND_LOCK_WAIT, Store};

impl Run for Detach {
    fn run(&self) -> Result<u8> {
        let key = self.key.as_deref().map(Key::parse).transpose()?;
        let store = Store::open()?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        if let Some(key) = &key {
            crate::remote::ops::forget_key(&tx, key)?; // a key attached on a host: here again
        }
        let (was, own) = match &key {
            Some(key) => match tx.key_state(key)? {
                Some(mut state) => {
                    let was = state.attached.take();
                    if was.is_some() {
                        tx.put_key_state(&state)?;
                    }
                    (was, state.own)
                }
                None => (None, None),
            },
            None => {
                let was = tx.global()?;
                if was.is_some() {
                    tx.set_global(None)?;
                }
                (was, None)
            }
        };
        // The global attachment to a session on a host.
        let remote = if key.is_none() { crate::remote::ops::forget_global(&tx)? } else { None };
        drop(tx);
        let who = key.as_ref().map_or("the global attachment".to_owned(), |k| k.to_string());
        if self.json {
            print_json(&json!({
                "key": key,
                "detached": remote.as_ref().map(|g| g.named()).or_else(|| was.as_ref().map(|a| a.session.to_string())),
                "own_session": own,
            }))?;
            return Ok(exit::OK);
        }
        if let Some(g) = &remote {
            crate::outln!("Detached the global attachment (was {}, on {})", g.named(), g.host)?;
            return Ok(exit::OK);
        }
        match (&was, &key) {
            (None, Some(_)) => crate::outln!("{who} was not attached; nothing to do")?,
            (None, None) => crate::outln!("there is no global attachment; nothing to do")?,
            (Some(a), None) => crate::outln!("Detached the global attachment (was {})", a.session.short())?,
            (Some(a), Some(_)) => {
                let then = match &own {
                    Some(own) => format!("it returns to its own session {}", own.short()),
                    None => "its next run starts a session of its own".to_owned(),
                };
                crate::outln!("Detached {who} from {}; {then}", a.session.short())?;
            }
        }
        Ok(exit::OK)
    }
}
