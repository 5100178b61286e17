//! `clawsess status`: what `session_status` gives the model, for scripts.

use anyhow::{Result, bail};

use super::{Run, key_or_default, print_json};
use crate::cli::Status;
use crate::exit;
use crate::mcp::status::{find, status};
use crate::resolve::resolve;
use crate::store::Store;

impl Run for Status {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let id = match &self.session {
            Some(arg) => find(&store, arg)?,
            None => {
                let key = key_or_default(&self.key)?;
                match resolve(&store, &key)? {
                    Some(resolved) => resolved.session,
                    None => bail!("the key {key} has no session; give SESSION or --key"),
                }
            }
        };
        let status = status(&store, &id)?;
        if self.json {
            print_json(&serde_json::to_value(&status)?)?;
        } else {
            crate::outln!("{}", status.human().trim_end())?;
        }
        Ok(exit::OK)
    }
}
