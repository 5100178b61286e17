use anyhow::Result;

use super::Run;
use crate::cli::Prune;
use crate::exit;
use crate::store::Store;

impl Run for Prune {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        if self.auto {
            // Quiet: what it did is in the state dir's prune.log.
            crate::prune::auto::run(&store)?;
            return Ok(exit::OK);
        }
        let done = crate::prune::prune(&store, self.dry_run)?;
        for err in &done.skipped {
            eprintln!("clawsess: skipped {err}");
        }
        for line in done.lines() {
            crate::outln!("{line}")?;
        }
        Ok(exit::OK)
    }
}
