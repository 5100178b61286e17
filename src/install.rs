//! `clawsess install` / `uninstall`: clawsess's hooks in Claude Code's settings.json, its
//! slash commands (`claude::commands`) and its MCP server (`mcp::register`). What each did
//! comes back as [`Step`]s, in order; `cmd/install.rs` says them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::claude::COMMAND_MARKER as MARKER;
use crate::claude::commands::{COMMANDS, quote, render_command};
use crate::claude::settings;
use crate::claude::versions::{self, Version};

/// One thing install or uninstall did or found.
#[derive(Debug)]
pub enum Step {
    /// No Claude Code was found (why): the hooks take effect once it is installed.
    NoClaude(anyhow::Error),
    /// What clawsess cannot do with this Claude Code.
    Limit(Version, String),
    /// The clawsess plugin is enabled in settings.json: it does this already, nothing was
    /// installed.
    Plugin { plugin: String, settings: PathBuf },
    /// settings.json's old text was backed up here.
    Backup(PathBuf),
    /// The hooks are in settings.json, running `exe`.
    Hooks { settings: PathBuf, exe: PathBuf },
    /// Hooks removed from settings.json.
    HooksRemoved { count: usize, settings: PathBuf },
    /// A slash command file written (`attach`, …).
    Command { name: String, path: PathBuf },
    /// A slash command file removed.
    CommandRemoved(PathBuf),
    /// A command file of that name that is not clawsess's, left alone.
    NotOurs(PathBuf),
    /// No Claude Code to register the MCP server with; the entry it would have added.
    McpNoClaude { wanted: serde_json::Value },
    /// The MCP server registered or unregistered: how.
    Mcp(String),
    /// Registering or unregistering the MCP server failed (the rest stands).
    McpFailed(anyhow::Error),
}

/// Installs the hooks, the slash commands and the MCP server into the Claude Code config
/// dir `dir`, for the clawsess binary `exe`; `claude` is the Claude Code found (or why not).
/// A Claude Code too old to work with is refused before anything is written. What was done
/// before an error is in `steps`. False when the plugin does it already ([`Step::Plugin`]).
pub fn install(dir: &Path, exe: &Path, claude: &Result<PathBuf>, steps: &mut Vec<Step>) -> Result<bool> {
    let settings_path = settings::path(dir);
    let (mut settings, before) = settings::read(&settings_path)?;
    if let Some(plugin) = settings::enabled_plugin(&settings) {
        // Its hooks and commands do this already: ours too would fire every hook twice.
        steps.push(Step::Plugin { plugin, settings: settings_path });
        return Ok(false);
    }
    settings::remove_our_hooks(&mut settings);
    settings::add_hooks(&mut settings, &quote(exe), crate::turn::hooks::turn_wait())?;
    if let Some(backup) = settings::write(&settings_path, &settings, before.as_deref())? {
        steps.push(Step::Backup(backup));
    }
    steps.push(Step::Hooks { settings: settings_path, exe: exe.to_owned() });

    let commands = dir.join("commands");
    fs::create_dir_all(&commands).with_context(|| format!("could not create {}", commands.display()))?;
    for (file, template) in COMMANDS {
        let path = commands.join(file);
        if let Ok(existing) = fs::read_to_string(&path)
            && !existing.contains(MARKER)
        {
            steps.push(Step::NotOurs(path));
            continue;
        }
        let text = render_command(template, exe);
        fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))?;
        steps.push(Step::Command { name: file.trim_end_matches(".md").to_owned(), path });
    }
    // Registered through the Claude Code CLI. Without a Claude Code to do it, or when it
    // fails, the rest of the install stands.
    match claude.as_ref().ok().filter(|c| versions::installed(c).is_ok()) {
        None => steps.push(Step::McpNoClaude { wanted: crate::mcp::register::wanted(exe) }),
        Some(claude) => match crate::mcp::register::register(claude, dir, exe) {
            Ok(done) => steps.push(Step::Mcp(done)),
            Err(err) => steps.push(Step::McpFailed(err)),
        },
    }
    Ok(true)
}

/// Refuses a Claude Code too old to work with, before anything is written. A claude that
/// is not there yet, or does not say its version, is no reason to refuse, but is said.
pub fn check_claude_version(claude: Result<PathBuf>, steps: &mut Vec<Step>) -> Result<()> {
    let claude = match claude {
        Ok(claude) => claude,
        Err(err) => {
            steps.push(Step::NoClaude(err));
            return Ok(());
        }
    };
    let Ok(version) = versions::installed(&claude) else { return Ok(()) };
    if let Some(why) = versions::unusable_reason(version) {
        bail!("{why}; nothing was installed");
    }
    steps.extend(version.limits().into_iter().map(|limit| Step::Limit(version, limit.to_string())));
    Ok(())
}

/// Removes clawsess's hooks, slash commands and MCP server from the Claude Code config dir
/// `dir` (the state dir stays); `claude` is the Claude Code found, if any. What was done
/// before an error is in `steps`.
pub fn uninstall(dir: &Path, claude: Option<&Path>, steps: &mut Vec<Step>) -> Result<()> {
    let settings_path = settings::path(dir);
    if settings_path.exists() {
        let (mut settings, before) = settings::read(&settings_path)?;
        let count = settings::remove_our_hooks(&mut settings);
        if count > 0
            && let Some(backup) = settings::write(&settings_path, &settings, before.as_deref())?
        {
            steps.push(Step::Backup(backup));
        }
        steps.push(Step::HooksRemoved { count, settings: settings_path });
    }
    for (file, _) in COMMANDS {
        let path = dir.join("commands").join(file);
        match fs::read_to_string(&path) {
            Ok(text) if text.contains(MARKER) => {
                fs::remove_file(&path).with_context(|| format!("could not remove {}", path.display()))?;
                steps.push(Step::CommandRemoved(path));
            }
            Ok(_) => steps.push(Step::NotOurs(path)),
            Err(_) => {}
        }
    }
    match crate::mcp::register::unregister(claude, dir) {
        Ok(Some(done)) => steps.push(Step::Mcp(done)),
        Ok(None) => {}
        Err(err) => steps.push(Step::McpFailed(err)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| format!("{s:?}").split([' ', '(']).next().unwrap().to_owned()).collect()
    }

    #[test]
    fn install_writes_hooks_and_commands_and_uninstall_removes_just_them() {
        let dir = tempfile::tempdir().unwrap();
        let commands = dir.path().join("commands");
        fs::create_dir(&commands).unwrap();
        fs::write(commands.join("detach.md"), "my own /detach").unwrap();
        let exe = Path::new("/opt/clawsess");
        let mut steps = Vec::new();
        assert!(install(dir.path(), exe, &Err(anyhow::anyhow!("no claude")), &mut steps).unwrap());
        assert_eq!(kinds(&steps), ["Hooks", "Command", "NotOurs", "Command", "McpNoClaude"]);
        let settings = fs::read_to_string(settings::path(dir.path())).unwrap();
        assert!(settings.contains("/opt/clawsess hook prompt-submit"), "{settings}");
        assert!(fs::read_to_string(commands.join("attach.md")).unwrap().contains(MARKER));
        assert_eq!(fs::read_to_string(commands.join("detach.md")).unwrap(), "my own /detach");

        // Again: the same hooks (settings.json unchanged, so no backup), no second copy.
        let mut again = Vec::new();
        install(dir.path(), exe, &Err(anyhow::anyhow!("no claude")), &mut again).unwrap();
        assert_eq!(kinds(&again), kinds(&steps));
        assert_eq!(fs::read_to_string(settings::path(dir.path())).unwrap(), settings);

        let mut steps = Vec::new();
        uninstall(dir.path(), None, &mut steps).unwrap();
        assert_eq!(kinds(&steps), ["Backup", "HooksRemoved", "CommandRemoved", "NotOurs", "CommandRemoved"]);
        assert!(matches!(steps[1], Step::HooksRemoved { count: 5, .. }), "{steps:?}");
        assert!(!fs::read_to_string(settings::path(dir.path())).unwrap().contains("/opt/clawsess"));
        assert!(!commands.join("attach.md").exists() && commands.join("detach.md").exists());
    }

    #[test]
    fn with_the_plugin_enabled_install_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"enabledPlugins\": {\"clawsess@clawsess\": true}}\n";
        fs::write(settings::path(dir.path()), text).unwrap();
        let mut steps = Vec::new();
        assert!(
            !install(dir.path(), Path::new("/opt/clawsess"), &Err(anyhow::anyhow!("x")), &mut steps).unwrap()
        );
        assert!(
            matches!(&steps[..], [Step::Plugin { plugin, .. }] if plugin == "clawsess@clawsess"),
            "{steps:?}"
        );
        assert_eq!(fs::read_to_string(settings::path(dir.path())).unwrap(), text);
        assert!(!dir.path().join("commands").exists());
    }

    #[test]
    fn a_claude_that_cannot_be_found_is_a_note_not_a_refusal() {
        let mut steps = Vec::new();
        check_claude_version(Err(anyhow::anyhow!("claude is not on PATH")), &mut steps).unwrap();
        assert!(matches!(&steps[..], [Step::NoClaude(err)] if err.to_string() == "claude is not on PATH"));
    }
}
