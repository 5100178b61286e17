//! `clawsess status`: what `session_status` gives the model, for scripts.

use anyhow::Result;

use super::{Run, key_or_default, print_json};
use crate::cli::Status;
use crate::exit;
use crate::mcp::status::{Target, status};
use crate::store::Store;

impl Run for Status {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        // A session on another machine (`NAME:SESSION`), or a key whose runs go there.
        let remote = match &self.session {
            Some(arg) => crate::remote::split_remote(&store.hosts()?, arg)
                .map(|(host, session)| (host, Some(session.to_owned()), None)),
            None => {
                let key = key_or_default(&self.key)?;
                match crate::remote::ops::host_of_key(&store, &key)? {
                    // The global attachment to a session there: that session's status.
                    Some((host, Some(session))) => {
                        return crate::remote::ops::global_status(&store, &host, &session, self.json);
                    }
                    Some((host, None)) => Some((host, None, Some(key.to_string()))),
                    None => None,
                }
            }
        };
        if let Some((host, session, key)) = remote {
            let request = crate::remote::Request::Status { session, key, json: self.json };
            return crate::remote::ops::call(&store, &host, &request);
        }
        let target = match &self.session {
            Some(arg) => Target::find(&store, arg)?,
            None => Target::of_key(&store, key_or_default(&self.key)?)?,
        };
        let status = status(&store, &target)?;
        if self.json {
            print_json(&serde_json::to_value(&status)?)?;
        } else {
            crate::outln!("{}", status.human().trim_end())?;
        }
        Ok(exit::OK)
    }
}
