//! `clawsess mcp`: the cross-session tools as an MCP server on stdio (see `crate::mcp`).

use anyhow::Result;

use super::Run;
use crate::cli::Mcp;
use crate::exit;

impl Run for Mcp {
    fn run(&self) -> Result<u8> {
        if let (Some(target), Some(from)) = (&self.deliver, &self.from) {
            let timeout = std::time::Duration::from_secs(self.timeout);
            return crate::mcp::send::deliver(target, from, &self.mode, [&self.allow, &self.deny], timeout);
        }
        crate::mcp::serve()?;
        Ok(exit::OK)
    }
}
