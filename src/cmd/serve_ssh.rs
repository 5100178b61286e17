//! `clawsess serve-ssh`: the host's side of a call over ssh (see `crate::remote`).

use anyhow::Result;

use super::Run;
use crate::cli::ServeSsh;

impl Run for ServeSsh {
    fn run(&self) -> Result<u8> {
        crate::serve_ssh::serve(self.protocol)
    }
}
