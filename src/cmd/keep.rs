//! `clawsess keep` (hidden): the keeper of a warm session's claude; see `crate::warm::keeper`.

use std::time::Duration;

use anyhow::Result;

use super::Run;
use crate::cli::Keep;
use crate::ident::SessionId;
use crate::warm::keeper::{self, Args};

impl Run for Keep {
    fn run(&self) -> Result<u8> {
        keeper::main(Args {
            session: SessionId::parse(&self.session)?,
            claude: self.claude.clone(),
            cwd: self.cwd.clone(),
            key: self.key.clone(),
            extra: self.claude_args.clone(),
            idle: Duration::from_millis(self.idle_ms),
            resume: self.resume,
            slot: self.slot.clone(),
            keep_hooks: self.keep_hooks,
        })
    }
}
