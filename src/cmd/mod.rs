//! One module per subcommand, each implementing [`Run`].

mod answer;
mod attach;
mod completions;
mod config;
mod cool;
mod current;
mod detach;
mod doctor;
mod forget;
mod hook;
mod hosts;
mod import;
mod install;
mod keep;
mod list;
mod mcp;
mod name;
mod prune;
mod queue;
mod run;
mod serve_ssh;
mod set;
mod show;
mod status;
mod stop;

use anyhow::Result;

use crate::cli::Cmd;
use crate::ident::Key;

/// A subcommand: runs and gives the exit code.
pub trait Run {
    fn run(&self) -> Result<u8>;
}

impl Run for Cmd {
    fn run(&self) -> Result<u8> {
        match (self.dispatch(), self.json()) {
            (Err(err), true) if !crate::exit::is_stdout_closed(&err) => {
                // --json promises one JSON document on stdout, failures included.
                print_json(&failure_json(false, &format!("{err:#}"), None, false))?;
                eprintln!("clawsess: {}", crate::sys::printable(&format!("{err:#}"), true));
                Ok(crate::exit::code_of(&err))
            }
            (result, _) => result,
        }
    }
}

impl Cmd {
    /// Whether the command prints JSON (`run` prints its own failure object).
    fn json(&self) -> bool {
        match self {
            Cmd::Attach(cmd) => cmd.json,
            Cmd::Detach(cmd) => cmd.json,
            Cmd::Current(cmd) => cmd.json,
            Cmd::List(cmd) => cmd.json,
            Cmd::Show(cmd) => cmd.json,
            Cmd::Set(cmd) => cmd.json,
            Cmd::Get(cmd) => cmd.json,
            Cmd::Unset(cmd) => cmd.json,
            Cmd::Config(cmd) => cmd.json,
            Cmd::Status(cmd) => cmd.json,
            Cmd::Hosts(crate::cli::Hosts::List(cmd)) => cmd.json,
            Cmd::Hosts(crate::cli::Hosts::Check(cmd)) => cmd.json,
            // `--probe --json` prints its own failure object.
            Cmd::Doctor(cmd) => cmd.json && !cmd.probe,
            _ => false,
        }
    }

    fn dispatch(&self) -> Result<u8> {
        match self {
            Cmd::Attach(cmd) => cmd.run(),
            Cmd::Detach(cmd) => cmd.run(),
            Cmd::Current(cmd) => cmd.run(),
            Cmd::List(cmd) => cmd.run(),
            Cmd::Show(cmd) => cmd.run(),
            Cmd::Name(cmd) => cmd.run(),
            Cmd::Run(cmd) => cmd.run(),
            Cmd::Queue(cmd) => cmd.run(),
            Cmd::Answer(cmd) => cmd.run(),
            Cmd::Stop(cmd) => cmd.run(),
            Cmd::Cool(cmd) => cmd.run(),
            Cmd::Keep(cmd) => cmd.run(),
            Cmd::Status(cmd) => cmd.run(),
            Cmd::Mcp(cmd) => cmd.run(),
            Cmd::Forget(cmd) => cmd.run(),
            Cmd::Set(cmd) => cmd.run(),
            Cmd::Get(cmd) => cmd.run(),
            Cmd::Unset(cmd) => cmd.run(),
            Cmd::Config(cmd) => cmd.run(),
            Cmd::Import(cmd) => cmd.run(),
            Cmd::Prune(cmd) => cmd.run(),
            Cmd::Install(cmd) => install::install(cmd),
            Cmd::Uninstall(cmd) => install::uninstall(cmd),
            Cmd::Doctor(cmd) => cmd.run(),
            Cmd::Completions(cmd) => cmd.run(),
            Cmd::Man(cmd) => cmd.run(),
            Cmd::Hook(cmd) => cmd.run(),
            Cmd::Hosts(cmd) => cmd.run(),
            Cmd::ServeSsh(cmd) => cmd.run(),
        }
    }
}

/// `--key K`, else the default key.
fn key_or_default(key: &Option<String>) -> Result<Key> {
    key.as_deref().map_or_else(|| Ok(Key::default_key()), Key::parse)
}

/// The object `--json` prints when a command fails: `error`, and for `run` the fields of its
/// result object (`key`, `is_error`, `busy`, `result`), so a bot reads one shape.
pub fn failure_json(run: bool, error: &str, key: Option<&str>, busy: bool) -> serde_json::Value {
    if run {
        return crate::run::failure_object(error, key, busy);
    }
    serde_json::json!({ "error": error })
}

/// Prints one JSON document on stdout.
fn print_json(value: &serde_json::Value) -> Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}
