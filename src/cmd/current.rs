use anyhow::Result;
use serde_json::json;

use super::{Run, failure_json, key_or_default, print_json};
use crate::cli::Current;
use crate::exit;
use crate::resolve::resolve;
use crate::store::Store;

impl Run for Current {
    fn run(&self) -> Result<u8> {
        let key = key_or_default(&self.key.key)?;
        let store = Store::open()?;
        // The global attachment to a session on a host, for a key not attached itself.
        if let Some((host, Some(session))) = crate::remote::ops::host_of_key(&store, &key)? {
            let named = format!("{host}:{session}");
            if self.json {
                print_json(&json!({
                    "session_id": named, "key": key, "via": "global", "host": host, "name": null, "cwd": null,
                }))?;
            } else {
                crate::outln!("{named}")?;
            }
            return Ok(exit::OK);
        }
        let Some(found) = resolve(&store, &key)? else {
            let why =
                format!("no session for key {key} (attach one, or `clawsess run --key {key}` starts one)");
            if self.json {
                let mut doc = failure_json(false, &why, None, false);
                doc["key"] = key.as_str().into();
                doc["session_id"] = serde_json::Value::Null;
                print_json(&doc)?;
            }
            eprintln!("clawsess: {why}");
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
            crate::outln!("{}", found.session)?;
        }
        Ok(exit::OK)
    }
}
