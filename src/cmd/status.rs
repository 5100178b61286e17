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
