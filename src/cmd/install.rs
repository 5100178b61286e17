//! `install` / `uninstall`: the hooks in Claude Code's settings.json and the slash commands.
//! The templates are the plugin's own files (`hooks/hooks.json`, `commands/*.md`), with the
//! plugin's `clawsess` replaced by this binary's absolute path.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::claude::settings;
use crate::claude::{self, versions};
use crate::cli::Install;
use crate::exit;

use crate::claude::COMMAND_MARKER as MARKER;
use crate::claude::commands::{COMMANDS, quote, render_command};

pub fn install(args: &Install) -> Result<u8> {
    check_claude_version()?;
    let dir = claude::config_dir(args.claude_dir.as_deref())?;
    let exe = this_exe()?;
    let settings_path = settings::path(&dir);
    let (mut settings, before) = settings::read(&settings_path)?;
    if let Some(plugin) = settings::enabled_plugin(&settings) {
        // Its hooks and commands do this already: ours too would fire every hook twice.
        crate::outln!(
            "The clawsess plugin is enabled ({plugin} in {}): its hooks and /clawsess:* commands do \
             this already, so nothing was installed (every hook would fire twice). To use `clawsess \
             install` instead: `claude plugin uninstall {plugin}`, then `clawsess install`.",
            settings_path.display()
        )?;
        return Ok(exit::OK);
    }
    settings::remove_our_hooks(&mut settings);
    settings::add_hooks(&mut settings, &quote(&exe), crate::turn::hooks::turn_wait())?;
    write_settings(&settings_path, &settings, before.as_deref())?;
    crate::outln!(
        "hooks: {} (SessionStart, UserPromptSubmit, Stop, PreCompact, SessionEnd -> {})",
        settings_path.display(),
        exe.display()
    )?;

    let commands = dir.join("commands");
    fs::create_dir_all(&commands).with_context(|| format!("could not create {}", commands.display()))?;
    for (file, template) in COMMANDS {
        let path = commands.join(file);
        if let Ok(existing) = fs::read_to_string(&path)
            && !existing.contains(MARKER)
        {
            eprintln!(
                "clawsess: left {} alone: it is not clawsess's (remove it to get ours)",
                path.display()
            );
            continue;
        }
        let text = render_command(template, &exe);
        fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))?;
        crate::outln!("command: /{} ({})", file.trim_end_matches(".md"), path.display())?;
    }
    register_mcp(&dir, &exe)?;
    crate::outln!(
        "Installed. New Claude Code sessions are recorded; type /attach in one to hand it to your bots."
    )?;
    Ok(exit::OK)
}

/// Registers `clawsess mcp` (the cross-session tools) through the Claude Code CLI. Without a
/// Claude Code to do it, or when it fails, the rest of the install stands: said on stderr.
fn register_mcp(dir: &Path, exe: &Path) -> Result<()> {
    let name = crate::mcp::SERVER_NAME;
    let claude = crate::config::find_claude(None).ok().filter(|c| versions::installed(c).is_ok());
    let Some(claude) = claude else {
        eprintln!(
            "clawsess: note: no Claude Code found to register the MCP server {name} with; later: \
             claude mcp add-json --scope user {name} '{}'",
            crate::mcp::register::wanted(exe)
        );
        return Ok(());
    };
    match crate::mcp::register::register(&claude, dir, exe) {
        Ok(done) => crate::outln!("mcp: server {name} (tools mcp__{name}__*) {done}"),
        Err(err) => {
            eprintln!("clawsess: the MCP server was not registered: {err:#}");
            Ok(())
        }
    }
}

/// Refuses a Claude Code too old to work with, before anything is written. A claude that
/// is not there yet, or does not say its version, is no reason to refuse, but is said.
fn check_claude_version() -> Result<()> {
    let claude = match crate::config::find_claude(None) {
        Ok(claude) => claude,
        Err(err) => {
            eprintln!(
                "clawsess: note: {}; the hooks take effect in Claude Code sessions started once it is \
                 installed (`clawsess doctor` checks)",
                crate::sys::printable(&format!("{err:#}"), false)
            );
            return Ok(());
        }
    };
    let Ok(version) = versions::installed(&claude) else { return Ok(()) };
    if let Some(why) = versions::unusable_reason(version) {
        bail!("{why}; nothing was installed");
    }
    for limit in version.limits() {
        eprintln!("clawsess: note: with Claude Code {version}, {limit}");
    }
    Ok(())
}

pub fn uninstall(args: &Install) -> Result<u8> {
    let dir = claude::config_dir(args.claude_dir.as_deref())?;
    let settings_path = settings::path(&dir);
    if settings_path.exists() {
        let (mut settings, before) = settings::read(&settings_path)?;
        let removed = settings::remove_our_hooks(&mut settings);
        if removed > 0 {
            write_settings(&settings_path, &settings, before.as_deref())?;
        }
        crate::outln!("hooks: removed {removed} from {}", settings_path.display())?;
    }
    for (file, _) in COMMANDS {
        let path = dir.join("commands").join(file);
        match fs::read_to_string(&path) {
            Ok(text) if text.contains(MARKER) => {
                fs::remove_file(&path).with_context(|| format!("could not remove {}", path.display()))?;
                crate::outln!("command: removed {}", path.display())?;
            }
            Ok(_) => eprintln!("clawsess: left {} alone: it is not clawsess's", path.display()),
            Err(_) => {}
        }
    }
    let claude = crate::config::find_claude(None).ok();
    match crate::mcp::register::unregister(claude.as_deref(), &dir) {
        Ok(Some(done)) => crate::outln!("mcp: {done}")?,
        Ok(None) => {}
        Err(err) => eprintln!("clawsess: {err:#}"),
    }
    crate::outln!("Uninstalled. The state dir is kept (sessions, names, attachments).")?;
    Ok(exit::OK)
}

fn this_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("could not find this binary's path")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

/// Writes settings.json (see [`settings::write`]), saying where the old text was backed up.
fn write_settings(
    path: &Path,
    settings: &serde_json::Map<String, serde_json::Value>,
    before: Option<&str>,
) -> Result<()> {
    if let Some(backup) = settings::write(path, settings, before)? {
        crate::outln!("backup: {}", backup.display())?;
    }
    Ok(())
}
