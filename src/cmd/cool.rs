//! `clawsess cool [SESSION]`: ends warm sessions' claude processes now (`run --warm`).

use anyhow::Result;

use super::Run;
use crate::cli::Cool;
use crate::exit;
use crate::resolve::find_session;
use crate::store::Store;
use crate::warm;

impl Run for Cool {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        // A session on another machine: its warm claude is there.
        if let Some(arg) = &self.session
            && let Some((host, session)) = crate::remote::split_remote(&store.hosts()?, arg)
        {
            let request = crate::remote::Request::Cool { session: session.to_owned() };
            return crate::remote::ops::call(&store, &host, &request);
        }
        let only = self.session.as_deref().map(|arg| find_session(&store, arg)).transpose()?;
        // Without a SESSION: this machine's warm sessions only (a host's warm claude is one
        // `cool NAME:SESSION` away, and asking every host would cost a call each).
        let hosts = if only.is_none() { store.hosts()?.hosts } else { Vec::new() };
        if let Some(host) = hosts.first() {
            crate::outln!(
                "cooling this machine's warm sessions only; a session on a host: `clawsess cool {}:SESSION`",
                host.name
            )?;
        }
        let notes: Vec<_> = warm::keepers(&store, true)?
            .into_iter()
            .filter(|n| only.as_ref().is_none_or(|id| n.session == *id))
            .collect();
        if notes.is_empty() {
            let what = only
                .map_or("no session is warm".to_owned(), |id| format!("session {} is not warm", id.short()));
            crate::outln!("{what}")?;
            return Ok(exit::OK);
        }
        for note in &notes {
            warm::cool(&store, note)?;
            crate::outln!(
                "cooled session {} (its claude, pid {}, has ended)",
                note.session.short(),
                note.claude
            )?;
        }
        Ok(exit::OK)
    }
}
