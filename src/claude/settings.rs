//! Claude Code's user settings (`settings.json` in its config dir), as clawsess reads and
//! writes them: the hooks `install` adds and `uninstall` removes (from the plugin's own
//! `hooks/hooks.json`), the clawsess plugin, and `cleanupPeriodDays`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::sys::files::write_atomic_mode;

const HOOKS_JSON: &str = include_str!("../../hooks/hooks.json");
/// How the plugin's files name its binary; `install` puts this binary's path in its place.
pub const PLUGIN_BIN: &str = "${CLAUDE_PLUGIN_ROOT}/bin/clawsess";
/// The hook subcommands, as they end our hook commands.
pub const HOOK_ARGS: [&str; 5] =
    ["hook session-start", "hook prompt-submit", "hook stop", "hook pre-compact", "hook session-end"];
/// How long Claude Code keeps a transcript when settings.json does not say.
const DEFAULT_CLEANUP_DAYS: u64 = 30;

/// The user settings file in Claude Code's config dir `config`.
pub fn path(config: &Path) -> PathBuf {
    config.join("settings.json")
}

/// settings.json and its text; a missing file is `{}`. One that does not parse is refused.
pub fn read(path: &Path) -> Result<(Map<String, Value>, Option<String>)> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Map::new(), None)),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok((Map::new(), Some(text)));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok((map, Some(text))),
        Ok(_) => bail!("{} is not a JSON object; fix it by hand, nothing was changed", path.display()),
        Err(err) => bail!("{} does not parse ({err}); fix it by hand, nothing was changed", path.display()),
    }
}

/// Writes settings.json (through a symlink, to its target), after a backup of the old text
/// (`before`, as [`read`] returned it); the backup's path, when one was written.
pub fn write(path: &Path, settings: &Map<String, Value>, before: Option<&str>) -> Result<Option<PathBuf>> {
    let mut text = serde_json::to_string_pretty(settings)?;
    text.push('\n');
    if before == Some(text.as_str()) {
        return Ok(None); // already as wanted: no write, no backup
    }
    let target = target(path)?;
    let mut mode = 0o600;
    let mut backup = None;
    if let Some(old) = before {
        mode = fs::metadata(&target).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
        let file = target.with_file_name(format!("settings.json.clawsess-backup-{stamp}"));
        write_atomic_mode(&file, old.as_bytes(), mode)?;
        backup = Some(file);
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    write_atomic_mode(&target, text.as_bytes(), mode)?;
    Ok(backup)
}

/// The file to write for `path`: through a symlink (even a dangling one) to its target, so
/// a settings.json kept in a dotfiles repo stays a link.
fn target(path: &Path) -> Result<PathBuf> {
    if !path.is_symlink() {
        return Ok(path.to_path_buf());
    }
    if let Ok(target) = path.canonicalize() {
        return Ok(target);
    }
    let link =
        fs::read_link(path).with_context(|| format!("could not read the symlink {}", path.display()))?;
    let target = path.parent().map_or_else(|| link.clone(), |dir| dir.join(&link));
    if target.is_symlink() {
        bail!("{} is a chain of dangling symlinks; fix it by hand, nothing was changed", path.display());
    }
    Ok(target)
}

/// The clawsess plugin (`clawsess@MARKETPLACE`) if settings.json enables it: `claude plugin
/// install` writes `"enabledPlugins": {"clawsess@clawsess": true}` there (measured on 2.1.328;
/// it also lists it in `plugins/installed_plugins.json`). A `--plugin-dir` session leaves no
/// trace.
pub fn enabled_plugin(settings: &Map<String, Value>) -> Option<String> {
    let plugins = settings.get("enabledPlugins")?.as_object()?;
    plugins
        .iter()
        .find(|(name, on)| name.split('@').next() == Some("clawsess") && on.as_bool() == Some(true))
        .map(|(name, _)| name.clone())
}

/// What fires clawsess's hooks in Claude Code (user settings in `config`), from one read of
/// settings.json: cheap enough for every `run`.
#[derive(Debug, PartialEq, Eq)]
pub struct HookSource {
    /// `clawsess install`'s hook commands found there.
    pub installed: usize,
    /// The clawsess plugin, if enabled.
    pub plugin: Option<String>,
}

impl HookSource {
    pub fn of(config: &Path) -> HookSource {
        let settings = fs::read_to_string(path(config))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .unwrap_or_default();
        let installed = our_hook_commands(&settings).len();
        let plugin = settings.as_object().and_then(enabled_plugin);
        HookSource { installed, plugin }
    }

    /// Neither installed hooks nor the plugin.
    pub fn none(&self) -> bool {
        self.installed == 0 && self.plugin.is_none()
    }
}

/// Every hook in `settings.hooks` (any event, any matcher group), as its JSON.
pub fn hook_entries(settings: &Value) -> impl Iterator<Item = &Value> {
    settings
        .get("hooks")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|events| events.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|group| group.get("hooks").and_then(Value::as_array))
        .flatten()
}

/// The hook commands of ours in `settings` (any event, any binary path).
pub fn our_hook_commands(settings: &Value) -> Vec<&str> {
    hook_entries(settings)
        .filter_map(|h| h.get("command").and_then(Value::as_str))
        .filter(|c| is_our_command(c))
        .collect()
}

/// Whether a hook command is one of ours (any binary path, old or new).
pub fn is_our_command(command: &str) -> bool {
    let command = command.trim_end();
    command.contains("clawsess") && HOOK_ARGS.iter().any(|arg| command.ends_with(&format!(" {arg}")))
}

/// The binary a hook command runs (its first word, unquoted).
pub fn hook_binary(command: &str) -> PathBuf {
    let command = command.trim();
    match command.strip_prefix('\'') {
        Some(rest) => rest.split("' ").next().unwrap_or(rest).replace(r"'\''", "'").into(),
        None => command.split(' ').next().unwrap_or(command).into(),
    }
}

/// Removes our hook entries everywhere in `settings.hooks`; returns how many.
pub fn remove_our_hooks(settings: &mut Map<String, Value>) -> usize {
    let Some(Value::Object(hooks)) = settings.get_mut("hooks") else {
        return 0;
    };
    let mut removed = 0;
    for groups in hooks.values_mut() {
        let Value::Array(groups) = groups else {
            continue;
        };
        for group in groups.iter_mut() {
            let Some(Value::Array(list)) = group.get_mut("hooks") else {
                continue;
            };
            let before = list.len();
            list.retain(|h| !h.get("command").and_then(Value::as_str).is_some_and(is_our_command));
            removed += before - list.len();
        }
        groups.retain(|g| !matches!(g.get("hooks"), Some(Value::Array(l)) if l.is_empty()));
    }
    hooks.retain(|_, groups| !matches!(groups, Value::Array(g) if g.is_empty()));
    if hooks.is_empty() {
        settings.remove("hooks");
    }
    removed
}

/// Claude Code lets a prompt through when its hook times out: the prompt-submit hook's
/// timeout must outlast the longest wait for another surface's turn (`wait`) with room for its
/// own work.
fn fit_prompt_timeout(template: &mut Value, wait: Duration) {
    let needed = wait.as_secs() + 30;
    for group in
        template.pointer_mut("/hooks/UserPromptSubmit").and_then(Value::as_array_mut).into_iter().flatten()
    {
        for hook in group.get_mut("hooks").and_then(Value::as_array_mut).into_iter().flatten() {
            let timeout = hook.get("timeout").and_then(Value::as_u64).unwrap_or(0);
            hook["timeout"] = Value::from(timeout.max(needed));
        }
    }
}

/// Adds our hooks (from the plugin's hooks.json) with `bin` as the binary (quoted for the
/// shell), the prompt hook's timeout fitted to `wait` (the turn wait, `CLAWSESS_TURN_WAIT`).
pub fn add_hooks(settings: &mut Map<String, Value>, bin: &str, wait: Duration) -> Result<()> {
    let template: Value = serde_json::from_str(
        &HOOKS_JSON.replace(PLUGIN_BIN, &bin.replace('\\', "\\\\").replace('"', "\\\"")),
    )
    .context("hooks/hooks.json is broken")?;
    let mut template = template;
    fit_prompt_timeout(&mut template, wait);
    let Some(Value::Object(ours)) = template.get("hooks").cloned() else {
        bail!("hooks/hooks.json has no hooks")
    };
    let hooks = settings.entry("hooks").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(hooks) = hooks else {
        bail!("settings.json's \"hooks\" is not an object; nothing was changed")
    };
    for (event, groups) in ours {
        let entry = hooks.entry(event.clone()).or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(list) = entry else {
            bail!("settings.json's hooks.{event} is not a list; nothing was changed")
        };
        list.extend(groups.as_array().cloned().unwrap_or_default());
    }
    Ok(())
}

/// `cleanupPeriodDays` in the user settings of `config`: how many days Claude Code keeps an
/// idle transcript (30 when unset or unreadable).
pub fn cleanup_period_days(config: &Path) -> u64 {
    fs::read_to_string(path(config))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|s| s.get("cleanupPeriodDays").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_CLEANUP_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn install_keeps_other_hooks_and_is_idempotent() {
        let wait = Duration::from_secs(120);
        let mut settings = json!({
            "model": "opus",
            "hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "atuin hook claude-code"}]}]}
        })
        .as_object()
        .unwrap()
        .clone();
        add_hooks(&mut settings, "/bin/clawsess", wait).unwrap();
        let once = settings.clone();
        assert_eq!(remove_our_hooks(&mut settings), HOOK_ARGS.len());
        add_hooks(&mut settings, "/bin/clawsess", wait).unwrap();
        assert_eq!(settings, once);
        let start = &settings["hooks"]["SessionStart"];
        assert_eq!(start.as_array().unwrap().len(), 2);
        assert_eq!(start[0]["hooks"][0]["command"], "atuin hook claude-code");
        assert_eq!(start[1]["hooks"][0]["command"], "/bin/clawsess hook session-start");
        let whole = Value::Object(settings.clone());
        assert_eq!(our_hook_commands(&whole).len(), HOOK_ARGS.len(), "{whole}");
        remove_our_hooks(&mut settings);
        assert_eq!(
            Value::Object(settings),
            json!({"model": "opus", "hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "atuin hook claude-code"}]}]}})
        );
    }

    #[test]
    fn our_commands_are_told_by_their_subcommand_whatever_the_binary_path() {
        assert!(is_our_command("'/a b/clawsess' hook stop"));
        assert!(!is_our_command("other hook stop"));
        assert_eq!(hook_binary("'/a b/it'\\''s/clawsess' hook stop"), Path::new("/a b/it's/clawsess"));
        assert_eq!(hook_binary("/bin/clawsess hook stop"), Path::new("/bin/clawsess"));
    }
}
