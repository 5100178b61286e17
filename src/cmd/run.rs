//! `clawsess run`: one turn of a key's session (the library's `crate::run::turn`, which
//! holds the session's run lock for the whole turn); here the arguments, the prompt, and
//! what is printed: the reply, or with `--json` / `--stream` the result object.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Run, key_or_default, print_json};
use crate::cli;
use crate::config::ConfigFile;
use crate::exit;
use crate::live::{self, Event, Sink};
use crate::run::{self, Done, Request};
use crate::store::Store;

impl Run for cli::Run {
    fn run(&self) -> Result<u8> {
        let (code, ran) = match self.turn() {
            Ok(ran) => (Ok(ran.code), Some(ran)),
            Err(err) if self.json || self.stream => {
                // --json promises one JSON document on stdout, failures included; --stream
                // ends with a result object whatever happened.
                self.print_object(run::failure(&err, self.target.key.key.as_deref()))?;
                eprintln!("clawsess: {}", crate::sys::printable(&format!("{err:#}"), true));
                (Ok(exit::code_of(&err)), None)
            }
            Err(err) => (Err(err), None),
        };
        // The reply is out: one stat, and when due a prune in the background (docs/STATE.md).
        // Not after a run that failed: it changes nothing in the state dir.
        let _ = std::io::stdout().flush();
        if let Some(ran) = ran {
            ran.prune_when_due();
        }
        code
    }
}

/// A turn that ran: its exit status, and the state dir and config file it read (`None`: it
/// ran on the key's host, and read neither here).
struct Ran {
    code: u8,
    here: Option<(Store, &'static ConfigFile)>,
}

impl Ran {
    /// Starts a prune in the background when one is due (`prune::auto`), by the config file's
    /// `prune_every`; quietly nothing when the state dir or the config cannot be had.
    fn prune_when_due(&self) {
        let here = match &self.here {
            Some((store, config)) => Some((store.clone(), *config)),
            None => Store::open().ok().zip(crate::config::file().ok()),
        };
        if let Some((store, config)) = here
            && let Ok(every) = config.prune_every()
        {
            let _ = crate::prune::auto::poke(&store, crate::prune::auto::Interval::Configured(every.value));
        }
    }
}

impl cli::Run {
    /// One turn: here, or on the key's host.
    fn turn(&self) -> Result<Ran> {
        let key = key_or_default(&self.target.key.key)?;
        // A key attached to a session on another machine (or --host): the turn runs there.
        if let Some(route) = crate::remote::ops::host_for_run(
            &key,
            self.host.as_deref(),
            self.target.session.as_deref(),
            self.target.new,
        )? {
            let code = crate::remote::ops::run(self, &key, &route, self.prompt_text()?)?;
            return Ok(Ran { code, here: None });
        }
        let start_timeout = live::start_timeout_from_env()?;
        let claude = crate::config::find_claude(self.claude.as_deref())?;
        let prompt = self.prompt_text()?;
        let images =
            self.images.iter().map(|path| live::image::image_block(path)).collect::<Result<Vec<_>>>()?;
        let store = Store::open()?;
        let config = crate::config::file()?;
        let request = Request {
            config,
            key: &key,
            prompt: &prompt,
            images: &images,
            claude: &claude,
            session: self.target.session.as_deref(),
            new: self.target.new,
            cwd: self.target.cwd.as_deref(),
            idle_reset: self.target.idle_reset,
            wait: self.target.wait,
            claude_args: &self.claude_args,
            warm: self.warm,
            ask: self.ask.then_some(self.ask_timeout),
            verbatim: !self.allow_slash,
            start_timeout,
            steer: self.steer,
            interrupt: self.interrupt,
        };
        let mut quiet = |_: &Event| {};
        let sink: &mut dyn Sink = if self.stream { &mut live::JsonLines } else { &mut quiet };
        let done = run::turn(&store, &request, sink)?;
        self.print(&done, &key)?;
        Ok(Ran { code: done.code, here: Some((store, config)) })
    }

    /// The reply, or with --json / --stream the result object.
    fn print(&self, done: &Done, key: &crate::ident::Key) -> Result<()> {
        if !self.json && !self.stream {
            let text = done.text();
            return crate::outln!("{}", text.strip_suffix('\n').unwrap_or(text));
        }
        self.print_object(done.object(key, self.stream))
    }

    /// The result object: with --json pretty, with --stream as the last line, with
    /// `"type": "result"`.
    fn print_object(&self, mut object: Value) -> Result<()> {
        if !self.stream {
            return print_json(&object);
        }
        if let Value::Object(fields) = &mut object {
            fields.insert("type".into(), Value::String("result".into()));
        }
        crate::outln!("{}", serde_json::to_string(&object)?)
    }

    /// The prompt: PROMPT words joined by spaces, else all of stdin.
    fn prompt_text(&self) -> Result<String> {
        let text = if self.prompt.is_empty() {
            if std::io::stdin().is_terminal() {
                eprintln!("clawsess: reading the prompt from the terminal; end it with Ctrl-D");
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("could not read the prompt from stdin")?;
            text
        } else {
            self.prompt.join(" ")
        };
        if text.trim().is_empty() {
            bail!("the prompt is empty: give PROMPT words, or pipe the prompt on stdin");
        }
        // `claude -p` runs a prompt that starts with `/` as a slash command (custom commands
        // run shell lines); one leading space makes it plain text.
        if text.starts_with('/') && !self.allow_slash {
            return Ok(format!(" {text}"));
        }
        Ok(text)
    }
}
