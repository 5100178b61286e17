//! `clawsess set`, `get`, `unset`: settings kept for a key or a session, passed to claude by
//! every `run` on it (see `config::settings`).

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{Run, key_or_default, print_json};
use crate::cli::{Get, Set, SettingsTarget, Unset};
use crate::config::settings::{self, NAMES};
use crate::exit;
use crate::remote::{Request, SettingsVerb};
use crate::resolve::find_session;
use crate::store::{COMMAND_LOCK_WAIT, FORMAT, Settings, SettingsOf, SettingsRecord, Store, now_ms};

impl Run for Set {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let first = self.args.first().filter(|a| !a.contains('='));
        if let Some(code) = remote(&store, SettingsVerb::Set, &self.of, first, &self.args, self.json)? {
            return Ok(code);
        }
        let (of, assignments) = split_session(&store, &self.of, &self.args, |a| !a.contains('='))?;
        if assignments.is_empty() {
            bail!("nothing to set: give NAME=VALUE ({})", NAMES.join(", "));
        }
        let settings = change(&store, &of, |settings| {
            for assignment in assignments {
                let Some((name, value)) = assignment.split_once('=') else {
                    bail!("{assignment:?} is not NAME=VALUE");
                };
                settings::assign(settings, &of, name.trim(), value)?;
            }
            Ok(())
        })?;
        print(&of, &settings, self.json)
    }
}

impl Run for Get {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let session = self.session.as_ref();
        if let Some(code) = remote(&store, SettingsVerb::Get, &self.of, session, &[], self.json)? {
            return Ok(code);
        }
        let of = match &self.session {
            Some(arg) => SettingsOf::Session(find_session(&store, arg)?),
            None => SettingsOf::Key(key_or_default(&self.of.key)?),
        };
        let settings = store.settings(&of)?.map(|r| r.settings).unwrap_or_default();
        print(&of, &settings, self.json)
    }
}

impl Run for Unset {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let first = self.args.first().filter(|a| !NAMES.contains(&a.as_str()));
        if let Some(code) = remote(&store, SettingsVerb::Unset, &self.of, first, &self.args, self.json)? {
            return Ok(code);
        }
        let (of, names) = split_session(&store, &self.of, &self.args, |a| !NAMES.contains(&a))?;
        let settings = change(&store, &of, |settings| {
            if names.is_empty() {
                *settings = Settings::default();
            }
            for name in names {
                settings::unassign(settings, name)?;
            }
            Ok(())
        })?;
        print(&of, &settings, self.json)
    }
}

/// Changes the settings of `of` with `edit` under the store lock and writes them back;
/// returns them as written.
fn change(
    store: &Store,
    of: &SettingsOf,
    edit: impl FnOnce(&mut Settings) -> Result<()>,
) -> Result<Settings> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let mut settings = tx.settings(of)?.map(|r| r.settings).unwrap_or_default();
    edit(&mut settings)?;
    tx.put_settings(&SettingsRecord { v: FORMAT, of: of.clone(), settings: settings.clone(), at: now_ms() })?;
    Ok(settings)
}

/// `set`/`get`/`unset` on a host, when `session` is written `NAME:SESSION` (NAME a known
/// host) or, with no session, the key's runs go to a host: its exit code. `args` are all
/// the words, `session` (the first of them for `set`/`unset`) among them.
fn remote(
    store: &Store,
    verb: SettingsVerb,
    target: &SettingsTarget,
    session: Option<&String>,
    args: &[String],
    json: bool,
) -> Result<Option<u8>> {
    let (host, session, key) = match session {
        Some(arg) => {
            let Some((host, there)) = crate::remote::split_remote(&store.hosts()?, arg) else {
                return Ok(None);
            };
            if let Some(key) = &target.key {
                bail!("give --key {key} or a SESSION ({arg}), not both");
            }
            (host, Some(there.to_owned()), None)
        }
        None => {
            let key = key_or_default(&target.key)?;
            let Some((host, _)) = crate::remote::ops::host_of_key(store, &key)? else { return Ok(None) };
            (host, None, Some(key.to_string()))
        }
    };
    let words = if session.is_some() && verb != SettingsVerb::Get { &args[1..] } else { args };
    let request = Request::Settings { verb, session, key, args: words.to_vec(), json };
    crate::remote::ops::call(store, &host, &request).map(Some)
}

/// Whose settings, and the rest of the words: the first word is a SESSION when `is_session`
/// says so (`set` takes NAME=VALUE, `unset` setting names), else the key's (`--key`, or the
/// default key).
fn split_session<'a>(
    store: &Store,
    target: &SettingsTarget,
    args: &'a [String],
    is_session: impl Fn(&str) -> bool,
) -> Result<(SettingsOf, &'a [String])> {
    match args.split_first() {
        Some((first, rest)) if is_session(first) => {
            if let Some(key) = &target.key {
                bail!("give --key {key} or a SESSION ({first}), not both");
            }
            Ok((SettingsOf::Session(find_session(store, first)?), rest))
        }
        _ => Ok((SettingsOf::Key(key_or_default(&target.key)?), args)),
    }
}

/// The settings of `of`, one `name = value` a line (or one JSON object).
fn print(of: &SettingsOf, settings: &Settings, json: bool) -> Result<u8> {
    let pairs = settings::pairs(settings);
    let whose = match of {
        SettingsOf::Key(key) => format!("key {key}"),
        SettingsOf::Session(id) => format!("session {}", id.short()),
    };
    if json {
        let values: Map<String, Value> = pairs.into_iter().map(|(n, v)| (n.to_owned(), json!(v))).collect();
        let mut doc = serde_json::to_value(of)?;
        doc["settings"] = Value::Object(values);
        print_json(&doc)?;
        return Ok(exit::OK);
    }
    if pairs.is_empty() {
        crate::outln!("No settings for {whose}: its runs get claude's defaults")?;
    }
    for (name, value) in pairs {
        crate::outln!("{name} = {}", crate::sys::printable(&value, false))?;
    }
    Ok(exit::OK)
}
