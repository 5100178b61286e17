use std::io::Write;

use anyhow::{Context, Result};
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
        // As clap_mangen names the pages: built, so each subcommand is `clawsess-NAME`.
        let mut cli = Cli::command().disable_help_subcommand(true);
        cli.build();
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
            clap_mangen::generate_to(cli, dir)
                .with_context(|| format!("could not write to {}", dir.display()))?;
            let pages = std::fs::read_dir(dir)?.flatten().filter(|e| is_page(&e.file_name())).count();
            crate::outln!("{pages} man pages in {}", dir.display())?;
            return Ok(exit::OK);
        }
        let mut at = &cli;
        for word in &self.command {
            at = at.find_subcommand(word).filter(|c| !c.is_hide_set()).with_context(|| {
                format!("no command {:?} (see `clawsess --help`)", self.command.join(" "))
            })?;
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(at.clone()).render(&mut page)?;
        std::io::stdout().lock().write_all(&page).map_err(exit::stdout_error)?;
        Ok(exit::OK)
    }
}

/// `clawsess.1`, `clawsess-NAME.1`.
fn is_page(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with("clawsess") && n.ends_with(".1"))
}
