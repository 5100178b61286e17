//! `clawsess answer`: answers a permission request of `run --ask`.

use anyhow::Result;

use super::Run;
use crate::cli::{Answer, Decision};
use crate::exit;
use crate::ident::RequestId;
use crate::live::ask;
use crate::store::Store;
use crate::sys::printable;

impl Run for Answer {
    fn run(&self) -> Result<u8> {
        let id = RequestId::parse(&self.request_id)?;
        let store = Store::open()?;
        let allow = self.decision == Decision::Allow;
        let req = ask::answer(&store, &id, allow, self.reason.as_deref())?;
        let verb = if allow { "allowed" } else { "denied" };
        crate::outln!("{verb} {} for {}", printable(&req.tool, false), printable(&req.key, false))?;
        Ok(exit::OK)
    }
}
