//! `install` / `uninstall`: the hooks in Claude Code's settings.json and the slash commands.
//! The templates are the plugin's own files (`hooks/hooks.json`, `commands/*.md`), with the
//! plugin's `clawsess` replaced by this binary's absolute path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::claude;
use crate::claude::versions;
use crate::cli::Install;
use crate::exit;
use crate::store::write_atomic_mode;

const HOOKS_JSON: &str = include_str!("../../hooks/hooks.json");
const PLUGIN_BIN: &str = "${CLAUDE_PLUGIN_ROOT}/bin/clawsess";
/// The slash commands install puts into `commands/`.
pub const COMMANDS: [(&str, &str); 3] = [
    ("attach.md", include_str!("../../commands/attach.md")),
    ("detach.md", include_str!("../../commands/detach.md")),
    ("sessions.md", include_str!("../../commands/sessions.md")),
];
use crate::claude::COMMAND_MARKER as MARKER;
/// The hook subcommands, as they end our hook commands.
pub const HOOK_ARGS: [&str; 5] =
    ["hook session-start", "hook prompt-submit", "hook stop", "hook pre-compact", "hook session-end"];

pub fn install(args: &Install) -> Result<u8> {
    check_claude_version()?;
    let dir = claude::config_dir(args.claude_dir.as_deref())?;
    let exe = this_exe()?;
    let settings_path = dir.join("settings.json");
    let (mut settings, before) = read_settings(&settings_path)?;
    if let Some(plugin) = enabled_plugin(&settings) {
        // Its hooks and commands do this already: ours too would fire every hook twice.
        crate::outln!(
            "The clawsess plugin is enabled ({plugin} in {}): its hooks and /clawsess:* commands do \
             this already, so nothing was installed (every hook would fire twice). To use `clawsess \
             install` instead: `claude plugin uninstall {plugin}`, then `clawsess install`.",
            settings_path.display()
        )?;
        return Ok(exit::OK);
    }
    remove_our_hooks(&mut settings);
    add_hooks(&mut settings, &quote(&exe))?;
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
    let claude = claude::find_claude(None).ok().filter(|c| versions::installed(c).is_ok());
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
    let claude = match claude::find_claude(None) {
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
    let settings_path = dir.join("settings.json");
    if settings_path.exists() {
        let (mut settings, before) = read_settings(&settings_path)?;
        let removed = remove_our_hooks(&mut settings);
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
    let claude = claude::find_claude(None).ok();
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

/// `path` quoted for `sh -c`.
fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A command file for this binary: the plugin's `${CLAUDE_PLUGIN_ROOT}/bin/clawsess` becomes the
/// absolute path.
pub fn render_command(template: &str, exe: &Path) -> String {
    // The plugin's commands name its bin/clawsess by path: Claude Code 2.0.77 does not put a
    // plugin's bin/ on the PATH of a command's `!` line (2.1.100 does), but substitutes
    // ${CLAUDE_PLUGIN_ROOT} there and in allowed-tools, as every later version tried does.
    let body = template.replace(PLUGIN_BIN, &quote(exe));
    // The marker is a YAML comment in the frontmatter (which must stay first in the file):
    // the body is the prompt the model reads when the command runs as a prompt.
    match body.strip_prefix("---\n") {
        Some(rest) => format!("---\n# {MARKER}\n{rest}"),
        None => format!("<!-- {MARKER} -->\n{body}"),
    }
}

/// settings.json and its text; a missing file is `{}`. One that does not parse is refused.
fn read_settings(path: &Path) -> Result<(Map<String, Value>, Option<String>)> {
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

/// Writes settings.json (through a symlink, to its target), after a backup of the old text.
fn write_settings(path: &Path, settings: &Map<String, Value>, before: Option<&str>) -> Result<()> {
    let mut text = serde_json::to_string_pretty(settings)?;
    text.push('\n');
    if before == Some(text.as_str()) {
        return Ok(()); // already as wanted: no write, no backup
    }
    let target = settings_target(path)?;
    let mut mode = 0o600;
    if let Some(old) = before {
        mode = fs::metadata(&target).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
        let backup = target.with_file_name(format!("settings.json.clawsess-backup-{stamp}"));
        write_atomic_mode(&backup, old.as_bytes(), mode)?;
        crate::outln!("backup: {}", backup.display())?;
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    write_atomic_mode(&target, text.as_bytes(), mode)
}

/// The file to write for `path`: through a symlink (even a dangling one) to its target, so
/// a settings.json kept in a dotfiles repo stays a link.
fn settings_target(path: &Path) -> Result<PathBuf> {
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
        let settings = fs::read_to_string(config.join("settings.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let installed = settings
            .get("hooks")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|events| events.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|group| group.get("hooks").and_then(Value::as_array))
            .flatten()
            .filter_map(|h| h.get("command").and_then(Value::as_str))
            .filter(|c| is_our_command(c))
            .count();
        HookSource { installed, plugin: enabled_plugin(&settings) }
    }

    /// Neither installed hooks nor the plugin.
    pub fn none(&self) -> bool {
        self.installed == 0 && self.plugin.is_none()
    }
}

/// Whether a hook command is one of ours (any binary path, old or new).
pub fn is_our_command(command: &str) -> bool {
    let command = command.trim_end();
    command.contains("clawsess") && HOOK_ARGS.iter().any(|arg| command.ends_with(&format!(" {arg}")))
}

/// Removes our hook entries everywhere in `settings.hooks`; returns how many.
fn remove_our_hooks(settings: &mut Map<String, Value>) -> usize {
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
/// timeout must outlast the longest wait for another surface's turn (`CLAWSESS_TURN_WAIT`,
/// read when installing) with room for its own work.
fn fit_prompt_timeout(template: &mut Value, wait: std::time::Duration) {
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

/// Adds our hooks (from the plugin's hooks.json) with `bin` as the binary.
fn add_hooks(settings: &mut Map<String, Value>, bin: &str) -> Result<()> {
    let template: Value = serde_json::from_str(
        &HOOKS_JSON.replace(PLUGIN_BIN, &bin.replace('\\', "\\\\").replace('"', "\\\"")),
    )
    .context("hooks/hooks.json is broken")?;
    let mut template = template;
    fit_prompt_timeout(&mut template, crate::turn::hooks::turn_wait());
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn install_keeps_other_hooks_and_is_idempotent() {
        let mut settings = json!({
            "model": "opus",
            "hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "atuin hook claude-code"}]}]}
        })
        .as_object()
        .unwrap()
        .clone();
        add_hooks(&mut settings, "/bin/clawsess").unwrap();
        let once = settings.clone();
        assert_eq!(remove_our_hooks(&mut settings), HOOK_ARGS.len());
        add_hooks(&mut settings, "/bin/clawsess").unwrap();
        assert_eq!(settings, once);
        let start = &settings["hooks"]["SessionStart"];
        assert_eq!(start.as_array().unwrap().len(), 2);
        assert_eq!(start[0]["hooks"][0]["command"], "atuin hook claude-code");
        assert_eq!(start[1]["hooks"][0]["command"], "/bin/clawsess hook session-start");
        remove_our_hooks(&mut settings);
        assert_eq!(
            Value::Object(settings),
            json!({"model": "opus", "hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "atuin hook claude-code"}]}]}})
        );
    }

    #[test]
    fn paths_with_spaces_are_quoted_for_the_shell() {
        assert_eq!(quote(Path::new("/usr/bin/clawsess")), "/usr/bin/clawsess");
        assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
        assert!(is_our_command("'/a b/clawsess' hook stop"));
        assert!(!is_our_command("other hook stop"));
    }

    #[test]
    fn rendered_commands_name_the_binary_and_keep_frontmatter_first() {
        let text = render_command(COMMANDS[0].1, Path::new("/opt/clawsess"));
        assert!(text.starts_with("---\n"));
        assert!(text.contains("Bash(/opt/clawsess attach"));
        assert!(text.contains("!`/opt/clawsess attach $ARGUMENTS`"));
        // The marker is in the frontmatter: not in the prompt the model reads.
        let (front, body) = text[4..].split_once("\n---\n").unwrap();
        assert!(front.starts_with(&format!("# {MARKER}\n")), "{front}");
        assert!(!body.contains("clawsess uninstall"), "{body}");
    }

    #[test]
    fn a_command_file_an_older_install_wrote_is_ours_too() {
        let old =
            "---\ndescription: x\n---\n<!-- installed by clawsess; `clawsess uninstall` removes it -->\n!`x`";
        assert!(old.contains(MARKER));
    }
}
