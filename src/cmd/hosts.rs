//! `clawsess hosts`: the machines whose sessions are reached over ssh.

use anyhow::{Result, bail};
use serde_json::json;

use super::{Run, print_json};
use crate::cli::Hosts;
use crate::exit;
use crate::remote::{self, client};
use crate::store::{COMMAND_LOCK_WAIT, HostEntry, Store, now_ms};
use crate::sys::{printable, rfc3339};

impl Run for Hosts {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        match self {
            Hosts::Add(add) => {
                remote::check_host_name(&add.name)?;
                remote::check_dest(&add.dest)?;
                if let Some(cmd) = &add.clawsess {
                    remote::check_remote_command(cmd)?;
                }
                let tx = store.lock(COMMAND_LOCK_WAIT)?;
                let mut hosts = tx.hosts()?;
                let entry = HostEntry {
                    name: add.name.clone(),
                    dest: add.dest.clone(),
                    clawsess: add.clawsess.clone(),
                    added: now_ms(),
                };
                let replaced = hosts.hosts.iter().position(|h| h.name == add.name);
                match replaced {
                    Some(i) => hosts.hosts[i] = entry,
                    None => hosts.hosts.push(entry),
                }
                tx.put_hosts(&hosts)?;
                drop(tx);
                let verb = if replaced.is_some() { "Changed" } else { "Added" };
                crate::outln!(
                    "{verb} host {} ({}); check it with `clawsess hosts check {}`",
                    add.name,
                    add.dest,
                    add.name
                )?;
            }
            Hosts::List(list) => {
                let hosts = store.hosts()?;
                if list.json {
                    let docs: Vec<serde_json::Value> = hosts
                        .hosts
                        .iter()
                        .map(|h| {
                            let mut doc = json!(h);
                            doc["keys"] = json!(hosts.keys_on(&h.name));
                            doc["global_attachment"] = json!(hosts.global_on(&h.name).map(|g| json!({
                                "session_id": g.session,
                                "at": rfc3339(g.at),
                            })));
                            doc
                        })
                        .collect();
                    print_json(&json!(docs))?;
                } else if hosts.hosts.is_empty() {
                    crate::outln!("no hosts; add one with `clawsess hosts add NAME [user@]HOST`")?;
                } else {
                    for h in &hosts.hosts {
                        let keys = hosts.keys_on(&h.name);
                        let keys = if keys.is_empty() {
                            String::new()
                        } else {
                            format!("  keys: {}", printable(&keys.join(","), false))
                        };
                        let global = match hosts.global_on(&h.name) {
                            Some(g) => format!("  global attachment: {}", printable(&g.named(), false)),
                            None => String::new(),
                        };
                        crate::outln!("{}  {}{keys}{global}", h.name, printable(&h.dest, false))?;
                    }
                }
            }
            Hosts::Remove(rm) => {
                let tx = store.lock(COMMAND_LOCK_WAIT)?;
                let mut hosts = tx.hosts()?;
                let Some(gone) = hosts.host(&rm.name).cloned() else {
                    bail!("no host called {}", printable(&rm.name, false));
                };
                hosts.hosts.retain(|h| h.name != rm.name);
                hosts.keys.retain(|_, n| *n != rm.name);
                hosts.requests.retain(|_, n| *n != rm.name);
                if hosts.global.as_ref().is_some_and(|g| g.host == rm.name) {
                    hosts.global = None;
                    crate::outln!("Removed the global attachment to a session on {}", rm.name)?;
                }
                tx.put_hosts(&hosts)?;
                drop(tx);
                client::close_master(&store, &gone); // its ssh connection, if one is kept
                crate::outln!("Removed host {}", rm.name)?;
            }
            Hosts::Check(check) => return check_hosts(&store, check.name.as_deref(), check.json),
        }
        Ok(exit::OK)
    }
}

/// Reaches each host (or one) and says what answers there; 69 when any cannot be reached.
fn check_hosts(store: &Store, name: Option<&str>, json: bool) -> Result<u8> {
    let names: Vec<String> = match name {
        Some(n) => vec![client::host(store, n)?.name],
        None => store.hosts()?.hosts.into_iter().map(|h| h.name).collect(),
    };
    let mut code = exit::OK;
    let mut docs = Vec::new();
    for name in names {
        let host = client::host(store, &name)?;
        let start = std::time::Instant::now();
        let result = client::connect(store, &host, false).and_then(|mut call| {
            call.send(&remote::Request::Check)?;
            let hello = call.hello.clone();
            call.collect()?;
            Ok(hello)
        });
        let ms = start.elapsed().as_millis() as u64;
        match result {
            Ok(hello) => {
                docs.push(json!({"name": name, "dest": host.dest, "reachable": true,
                    "version": hello.version, "protocol": hello.protocol, "ms": ms}));
                if !json {
                    crate::outln!(
                        "{name}  {}  ok: clawsess {} (protocol {}), {ms} ms",
                        host.dest,
                        printable(&hello.version, false),
                        hello.protocol
                    )?;
                }
            }
            Err(err) => {
                code = exit::UNAVAILABLE;
                let text = format!("{err:#}");
                docs.push(json!({"name": name, "dest": host.dest, "reachable": false, "error": text}));
                if !json {
                    crate::outln!("{name}  {}  unreachable: {}", host.dest, printable(&text, false))?;
                }
            }
        }
    }
    if json {
        print_json(&json!(docs))?;
    }
    Ok(code)
}
