use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use clawsess::cli::Cli;
use clawsess::cmd::Run;
use clawsess::exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd.run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "clawsess: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}
