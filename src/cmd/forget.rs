use anyhow::Result;

use super::Run;
use crate::cli::Forget;
use crate::exit;
use crate::ident::Key;
use crate::store::{COMMAND_LOCK_WAIT, KeyState, Store};

impl Run for Forget {
    fn run(&self) -> Result<u8> {
        let key = Key::parse(&self.key)?;
        let store = Store::open()?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        let Some(state) = tx.key_state(&key)? else {
            crate::outln!("{key} has nothing to forget")?;
            return Ok(exit::OK);
        };
        tx.put_key_state(&KeyState::new(key.clone()))?;
        drop(tx);
        let mut dropped = Vec::new();
        if let Some(own) = &state.own {
            dropped.push(format!("its own session {}", own.short()));
        }
        if let Some(a) = &state.attached {
            dropped.push(format!("its attachment to {}", a.session.short()));
        }
        crate::outln!("Forgot {key}: {} (the sessions themselves are kept)", dropped.join(" and "))?;
        Ok(exit::OK)
    }
}
