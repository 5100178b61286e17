//! One module per subcommand, each implementing [`Run`].

mod answer;
mod attach;
mod completions;
mod current;
mod detach;
mod doctor;
mod forget;
mod hook;
mod import;
mod install;
mod list;
mod name;
mod prune;
mod run;
mod show;
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
        match self {
            Cmd::Attach(cmd) => cmd.run(),
            Cmd::Detach(cmd) => cmd.run(),
            Cmd::Current(cmd) => cmd.run(),
            Cmd::List(cmd) => cmd.run(),
            Cmd::Show(cmd) => cmd.run(),
            Cmd::Name(cmd) => cmd.run(),
            Cmd::Run(cmd) => cmd.run(),
            Cmd::Answer(cmd) => cmd.run(),
            Cmd::Stop(cmd) => cmd.run(),
            Cmd::Forget(cmd) => cmd.run(),
            Cmd::Import(cmd) => cmd.run(),
            Cmd::Prune(cmd) => cmd.run(),
            Cmd::Install(cmd) => install::install(cmd),
            Cmd::Uninstall(cmd) => install::uninstall(cmd),
            Cmd::Doctor(cmd) => cmd.run(),
            Cmd::Completions(cmd) => cmd.run(),
            Cmd::Man(cmd) => cmd.run(),
            Cmd::Hook(cmd) => cmd.run(),
        }
    }
}

/// `--key K`, else the default key.
fn key_or_default(key: &Option<String>) -> Result<Key> {
    key.as_deref().map_or_else(|| Ok(Key::default_key()), Key::parse)
}

/// Prints one JSON document on stdout.
fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
