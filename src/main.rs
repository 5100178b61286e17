use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use clawsess::cli::{Cli, Hook};
use clawsess::cmd::Run;
use clawsess::exit;

fn main() -> ExitCode {
    // Hooks run at every Claude Code start and prompt: skip building clap's command tree
    // for the exact form Claude Code uses. Anything else (`hook --help`, ...) goes to clap.
    let result = match hook_fast_path() {
        Some(hook) => hook.run(),
        None => Cli::parse().cmd.run(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "clawsess: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}

fn hook_fast_path() -> Option<Hook> {
    let mut args = std::env::args_os().skip(1);
    let (Some(first), Some(event), None) = (args.next(), args.next(), args.next()) else {
        return None;
    };
    if first != "hook" {
        return None;
    }
    match event.to_str()? {
        "session-start" => Some(Hook::SessionStart),
        "prompt-submit" => Some(Hook::PromptSubmit),
        "stop" => Some(Hook::Stop),
        "session-end" => Some(Hook::SessionEnd),
        _ => None,
    }
}
