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
        clap_complete::generate(shell, &mut Cli::command(), "clawsess", &mut std::io::stdout());
        Ok(exit::OK)
    }
}

impl Run for Man {
    fn run(&self) -> Result<u8> {
        clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        Ok(exit::OK)
    }
}
