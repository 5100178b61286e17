use anyhow::Result;
use serde_json::json;

use super::{Run, key_or_default, print_json};
use crate::cli::Current;
use crate::exit;
use crate::resolve::resolve;
use crate::store::Store;

impl Run for Current {
    fn run(&self) -> Result<u8> {
        let key = key_or_default(&self.key.key)?;
        let store = Store::open()?;
        let Some(found) = resolve(&store, &key)? else {
            eprintln!(
                "clawsess: no session for key {key} (attach one, or `clawsess run --key {key}` starts one)"
            );
            return Ok(exit::FAILURE);
        };
        if self.json {
            let rec = store.session(&found.session)?;
            print_json(&json!({
                "session_id": found.session,
                "key": key,
                "via": found.via,
                "name": rec.as_ref().and_then(|r| r.name.clone()),
                "cwd": rec.as_ref().map(|r| r.cwd.clone()),
            }))?;
        } else {
            println!("{}", found.session);
        }
        Ok(exit::OK)
    }
}
