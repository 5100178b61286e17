use anyhow::Result;

use super::Run;
use crate::cli::Forget;
use crate::exit;
use crate::ident::Key;
use crate::store::{COMMAND_LOCK_WAIT, FORMAT, KeyState, Settings, SettingsOf, SettingsRecord, Store};

impl Run for Forget {
    fn run(&self) -> Result<u8> {
        let key = Key::parse(&self.key)?;
        let store = Store::open()?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        // Its settings (`clawsess set --key`) go too: the thread they were for is gone.
        let of = SettingsOf::Key(key.clone());
        let settings = tx.settings(&of)?.filter(|r| !r.settings.is_empty());
        if settings.is_some() {
            tx.put_settings(&SettingsRecord { v: FORMAT, of, settings: Settings::default(), at: 0 })?;
        }
        let Some(state) = tx.key_state(&key)?.filter(|s| !s.is_empty()) else {
            drop(tx);
            match settings {
                Some(_) => crate::outln!("Forgot {key}: its settings")?,
                None => crate::outln!("{key} has nothing to forget")?,
            }
            return Ok(exit::OK);
        };
        tx.put_key_state(&KeyState::new(key.clone()))?;
        drop(tx);
        let mut dropped = Vec::new();
        if settings.is_some() {
            dropped.push("its settings".to_owned());
        }
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
