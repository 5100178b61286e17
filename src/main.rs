use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use clawsess::cli::{Cli, Hook};
use clawsess::cmd::{Run, failure_json};
use clawsess::exit;
use clawsess::sys::printable;

fn main() -> ExitCode {
    // Hooks run at every Claude Code start and prompt: skip building clap's command tree
    // for the exact form Claude Code uses. Anything else (`hook --help`, ...) goes to clap.
    let result = match hook_fast_path() {
        Some(hook) => hook.run(),
        None => match Cli::try_parse() {
            Ok(cli) => cli.cmd.run(),
            Err(err) => usage_error(err),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if exit::is_stdout_closed(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            let text = format!("{err:#}");
            let _ = writeln!(std::io::stderr(), "clawsess: {}", printable(&text, true));
            ExitCode::from(exit::code_of(&err))
        }
    }
}

/// A command line clap cannot parse: its message on stderr, and with `--json` also the
/// failure object on stdout (`--json` promises one document, failures included).
fn usage_error(err: clap::Error) -> ! {
    let args: Vec<String> = std::env::args().skip(1).take_while(|a| a != "--").collect();
    let shows_text = matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    if !shows_text && args.iter().any(|a| a == "--json") {
        let text = err.render().to_string();
        let first = text.lines().next().unwrap_or("").trim_start_matches("error: ").to_owned();
        let run = args.iter().find(|a| !a.starts_with('-')).is_some_and(|c| c == "run");
        let doc = failure_json(run, &first, key_given(&args).as_deref(), false);
        let _ = writeln!(std::io::stdout(), "{doc:#}");
    }
    err.exit()
}

/// The value of `--key`/`-k` on a command line clap refused, as given (the last one wins,
/// as with clap).
fn key_given(args: &[String]) -> Option<String> {
    let mut key = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--key" || arg == "-k" {
            key = it.next().cloned().or(key);
        } else if let Some(value) = arg.strip_prefix("--key=").or_else(|| arg.strip_prefix("-k=")) {
            key = Some(value.to_owned());
        } else if let Some(value) = arg.strip_prefix("-k").filter(|v| !v.is_empty() && !arg.starts_with("--"))
        {
            key = Some(value.to_owned());
        }
    }
    key
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
