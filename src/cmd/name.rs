use anyhow::{Result, bail};

use super::Run;
use crate::cli::NameCmd;
use crate::exit;
use crate::ident::Name;
use crate::resolve::find_session;
use crate::store::{COMMAND_LOCK_WAIT, Store};

impl Run for NameCmd {
    fn run(&self) -> Result<u8> {
        let name = Name::parse(&self.name)?;
        let store = Store::open()?;
        // A session on another machine: named there (the name is that machine's).
        if let Some((host, session)) = crate::remote::split_remote(&store.hosts()?, &self.session) {
            let request =
                crate::remote::Request::Name { session: session.to_owned(), name: name.to_string() };
            return crate::remote::ops::call(&store, &host, &request);
        }
        let id = find_session(&store, &self.session)?;
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        if let Some(owner) = tx.named(&name)?
            && owner != id
        {
            bail!("the name {name} is taken by session {owner}; rename that one first");
        }
        let Some(mut rec) = tx.session(&id)? else { bail!("session {id} was removed meanwhile") };
        let old = rec.name.replace(name.clone());
        // New name, then record, then the old name: a crash in between leaves the session
        // reachable by a name at every instant.
        tx.put_name(&name, &id)?;
        tx.put_session(&rec)?;
        if let Some(old) = old.filter(|old| *old != name) {
            tx.remove_name(&old)?;
        }
        drop(tx);
        crate::outln!("Named {} {name}", id.short())?;
        Ok(exit::OK)
    }
}
