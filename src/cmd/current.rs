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
        // A key whose turns go to a host: attached to a session there (asked there), or
        // following the global attachment to one.
        let remote = match crate::remote::ops::host_of_key(&store, &key)? {
            Some((host, Some(session))) => Some(Some(json!({
                "session_id": format!("{host}:{session}"), "key": key, "via": "global", "host": host,
                "name": null, "cwd": null,
            }))),
            Some((host, None)) => Some(crate::remote::ops::current_there(&store, &host, &key)?.map(|doc| {
                json!({
                    "session_id": format!("{host}:{}", doc["session_id"].as_str().unwrap_or_default()),
                    "key": key, "via": doc["via"], "host": host, "name": doc["name"], "cwd": doc["cwd"],
                })
            })),
            None => None,
        };
        if let Some(Some(doc)) = remote {
            if self.json {
                print_json(&doc)?;
            } else {
                crate::outln!("{}", doc["session_id"].as_str().unwrap_or_default())?;
            }
            return Ok(exit::OK);
        }
        let found = if remote.is_some() { None } else { resolve(&store, &key)? };
        let Some(found) = found else {
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
