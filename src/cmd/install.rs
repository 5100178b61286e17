//! `install` / `uninstall`: the hooks in Claude Code's settings.json, the slash commands and
//! the MCP server (`crate::install`); here the arguments and what is said of each step.
//! The templates are the plugin's own files (`hooks/hooks.json`, `commands/*.md`), with the
//! plugin's `clawsess` replaced by this binary's absolute path.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::claude;
use crate::cli::Install;
use crate::exit;
use crate::install::Step;

pub fn install(args: &Install) -> Result<u8> {
    let mut steps = Vec::new();
    let checked = crate::install::check_claude_version(crate::config::find_claude(None), &mut steps);
    say(&mut steps, false)?;
    checked?;
    let result = claude::config_dir(args.claude_dir.as_deref()).and_then(|dir| {
        let exe = this_exe()?;
        crate::install::install(&dir, &exe, &crate::config::find_claude(None), &mut steps)
    });
    say(&mut steps, false)?;
    if result? {
        crate::outln!(
            "Installed. New Claude Code sessions are recorded; type /attach in one to hand it to your bots."
        )?;
    }
    Ok(exit::OK)
}

pub fn uninstall(args: &Install) -> Result<u8> {
    let mut steps = Vec::new();
    let result = claude::config_dir(args.claude_dir.as_deref()).and_then(|dir| {
        let claude = crate::config::find_claude(None).ok();
        crate::install::uninstall(&dir, claude.as_deref(), &mut steps)
    });
    say(&mut steps, true)?;
    result?;
    crate::outln!("Uninstalled. The state dir is kept (sessions, names, attachments).")?;
    Ok(exit::OK)
}

/// Says (and drains) the steps of install (or with `undo` of uninstall): what was done on
/// stdout, notes on stderr.
fn say(steps: &mut Vec<Step>, undo: bool) -> Result<()> {
    let name = crate::mcp::SERVER_NAME;
    for step in steps.drain(..) {
        match step {
            Step::NoClaude(err) => eprintln!(
                "clawsess: note: {}; the hooks take effect in Claude Code sessions started once it is \
                 installed (`clawsess doctor` checks)",
                crate::sys::printable(&format!("{err:#}"), false)
            ),
            Step::Limit(version, limit) => eprintln!("clawsess: note: with Claude Code {version}, {limit}"),
            Step::Plugin { plugin, settings } => crate::outln!(
                "The clawsess plugin is enabled ({plugin} in {}): its hooks and /clawsess:* commands do \
                 this already, so nothing was installed (every hook would fire twice). To use `clawsess \
                 install` instead: `claude plugin uninstall {plugin}`, then `clawsess install`.",
                settings.display()
            )?,
            Step::Backup(backup) => crate::outln!("backup: {}", backup.display())?,
            Step::Hooks { settings, exe } => crate::outln!(
                "hooks: {} (SessionStart, UserPromptSubmit, Stop, PreCompact, SessionEnd -> {})",
                settings.display(),
                exe.display()
            )?,
            Step::HooksRemoved { count, settings } => {
                crate::outln!("hooks: removed {count} from {}", settings.display())?
            }
            Step::Command { name, path } => crate::outln!("command: /{name} ({})", path.display())?,
            Step::CommandRemoved(path) => crate::outln!("command: removed {}", path.display())?,
            Step::NotOurs(path) if undo => {
                eprintln!("clawsess: left {} alone: it is not clawsess's", path.display())
            }
            Step::NotOurs(path) => eprintln!(
                "clawsess: left {} alone: it is not clawsess's (remove it to get ours)",
                path.display()
            ),
            Step::McpNoClaude { wanted } => eprintln!(
                "clawsess: note: no Claude Code found to register the MCP server {name} with; later: \
                 claude mcp add-json --scope user {name} '{wanted}'"
            ),
            Step::Mcp(done) if undo => crate::outln!("mcp: {done}")?,
            Step::Mcp(done) => crate::outln!("mcp: server {name} (tools mcp__{name}__*) {done}")?,
            Step::McpFailed(err) if undo => eprintln!("clawsess: {err:#}"),
            Step::McpFailed(err) => eprintln!("clawsess: the MCP server was not registered: {err:#}"),
        }
    }
    Ok(())
}

fn this_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("could not find this binary's path")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}
