use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell as Target;

use super::Run;
use crate::cli::{Cli, Completions, Man, Shell};
use crate::exit;

impl Run for Completions {
    fn run(&self) -> Result<u8> {
        let shell = match self.shell {
            Shell::Bash => Target::Bash,
            Shell::Zsh => Target::Zsh,
            Shell::Fish => Target::Fish,
            Shell::Elvish => Target::Elvish,
            Shell::Powershell => Target::PowerShell,
        };
        // generate() panics on a write error: build the script first, then write it.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "clawsess", &mut script);
        std::io::stdout().lock().write_all(&script).map_err(exit::stdout_error)?;
        Ok(exit::OK)
    }
}

impl Run for Man {
    fn run(&self) -> Result<u8> {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut page)?;
        std::io::stdout().lock().write_all(&page).map_err(exit::stdout_error)?;
        Ok(exit::OK)
    }
}
