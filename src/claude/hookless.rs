//! Whether a claude that clawsess drives itself, a kept one (`crate::warm`), may run without
//! hooks.
//!
//! clawsess's hooks have nothing to do in a claude that a run drives: the run holds the
//! session's turn and records it, and the keeper ends that claude only on a fresh session
//! (`turn::hooks`, `Who::RunChild`). The one exception, a fork note for the model, is handed
//! to a claude that keeps its hooks (`warm::take`). There they only cost Claude Code the start
//! of two hook processes a turn, about two thirds of what a warm turn adds to a bare claude
//! (docs/CLAUDE_CODE.md, "What a hook costs a kept claude"). Claude Code cannot leave out some
//! hooks and keep others: `--settings '{"disableAllHooks":true}'` ([`SETTINGS`]) stops them
//! all. So a kept claude runs with it only when clawsess's hooks are the only ones that claude
//! would load:
//!
//! - settings: the user's (`settings.json` in the config dir), the project's and the local
//!   ones (`.claude/settings.json`, `.claude/settings.local.json` in the cwd and every folder
//!   above it), the managed ones (`/etc/claude-code/managed-settings.json`): no hook that is
//!   not clawsess's, no plugin turned on but clawsess's;
//! - skills, agents and commands (the config dir's and `.claude/` of the cwd and above): no
//!   `hooks:` in a file's frontmatter;
//! - the `-A` arguments: no `--settings`, `--setting-sources`, `--plugin-dir` or `--agents`.
//!
//! Anything it cannot tell (a file that does not parse, a folder it cannot read) keeps the
//! hooks. Every file and folder looked at is stamped ([`Stamp`]): when one changes, the kept
//! claude is ended before its next turn (`warm::reuse`), and the next one looks again.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::settings::{enabled_plugin, hook_entries, is_our_command};
use crate::sys::files::Stamp;

/// The `--settings` value that turns every hook off.
pub const SETTINGS: &str = r#"{"disableAllHooks":true}"#;

/// Managed settings on Linux.
const MANAGED: &str = "/etc/claude-code/managed-settings.json";

/// `-A` arguments that bring settings, plugins or agents clawsess does not read.
const OPAQUE_ARGS: [&str; 4] = ["--settings", "--setting-sources", "--plugin-dir", "--agents"];

/// The longest frontmatter read from a skill, agent or command file.
const FRONTMATTER_MAX: u64 = 64 * 1024;

/// Whether a claude in `cwd`, started with `extra` (`-A`) arguments and Claude Code's config
/// dir `config`, may run without hooks: the stamps of what was looked at, else why not.
pub fn check(config: &Path, cwd: &Path, extra: &[String]) -> Result<Vec<Stamp>, String> {
    if let Some(arg) = extra.iter().find(|a| OPAQUE_ARGS.iter().any(|o| a.split('=').next() == Some(*o))) {
        return Err(format!("its -A arguments include {arg}"));
    }
    let mut looked = Looked::default();
    looked.settings(&super::settings::path(config))?;
    looked.settings(&config.join("settings.local.json"))?;
    looked.settings(Path::new(MANAGED))?;
    looked.components(config)?;
    for dir in cwd.ancestors() {
        let dot = dir.join(".claude");
        looked.settings(&dot.join("settings.json"))?;
        looked.settings(&dot.join("settings.local.json"))?;
        if dot != config {
            looked.components(&dot)?;
        }
    }
    Ok(looked.stamps)
}

/// What [`check`] has looked at so far.
#[derive(Default)]
struct Looked {
    stamps: Vec<Stamp>,
}

impl Looked {
    /// A settings file (or its absence): no hook but ours, no plugin but ours.
    fn settings(&mut self, path: &Path) -> Result<(), String> {
        self.stamps.push(Stamp::of(path));
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(format!("{} could not be read: {err}", path.display())),
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        let settings: Value =
            serde_json::from_str(&text).map_err(|err| format!("{} does not parse: {err}", path.display()))?;
        if let Some(hook) = other_hook(&settings) {
            return Err(format!("{} has a hook that is not clawsess's ({hook})", path.display()));
        }
        let plugins = settings.get("enabledPlugins").and_then(Value::as_object);
        let ours = settings.as_object().and_then(enabled_plugin);
        if let Some((name, _)) = plugins
            .into_iter()
            .flatten()
            .find(|(name, on)| on.as_bool() != Some(false) && Some(name.as_str()) != ours.as_deref())
        {
            return Err(format!("{} turns on the plugin {name}, which may bring hooks", path.display()));
        }
        Ok(())
    }

    /// The skills, agents and commands under a `.claude` folder (or the config dir): no
    /// `hooks:` in a frontmatter. Each folder is stamped (a file added or removed changes it),
    /// and each file read.
    fn components(&mut self, dot: &Path) -> Result<(), String> {
        for (folder, nested) in [("skills", true), ("agents", false), ("commands", false)] {
            let dir = dot.join(folder);
            self.stamps.push(Stamp::of(&dir));
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if nested {
                    self.stamps.push(Stamp::of(&path));
                    self.file(&path.join("SKILL.md"))?;
                } else if path.extension().is_some_and(|e| e == "md") {
                    self.file(&path)?;
                }
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path) -> Result<(), String> {
        self.stamps.push(Stamp::of(path));
        let mut text = String::new();
        match fs::File::open(path) {
            Ok(file) => {
                // A file that is not text has no frontmatter Claude Code reads either.
                let _ = file.take(FRONTMATTER_MAX).read_to_string(&mut text);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(format!("{} could not be read: {err}", path.display())),
        }
        if frontmatter_has_hooks(&text) {
            return Err(format!("{} has hooks in its frontmatter", path.display()));
        }
        Ok(())
    }
}

/// The first hook in `settings` that is not one of clawsess's commands, as its command (or
/// type).
fn other_hook(settings: &Value) -> Option<String> {
    if settings.get("hooks").is_some_and(|events| !events.is_object()) {
        return Some("hooks is not an object".into());
    }
    hook_entries(settings).find_map(|hook| match hook.get("command").and_then(Value::as_str) {
        Some(command) if hook_type(hook) == Some("command") && is_our_command(command) => None,
        Some(command) => Some(command.to_owned()),
        None => Some(format!("a hook {}", hook_type(hook).unwrap_or("of no type"))),
    })
}

fn hook_type(hook: &Value) -> Option<&str> {
    hook.get("type").and_then(Value::as_str)
}

/// Whether a Markdown file's YAML frontmatter (between a first line `---` and the next) has a
/// top-level `hooks` key.
fn frontmatter_has_hooks(text: &str) -> bool {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return false;
    }
    lines
        .take_while(|line| line.trim_end() != "---")
        .any(|line| line.strip_prefix("hooks").is_some_and(|rest| rest.trim_start().starts_with(':')))
}

/// Whether any stamped file or folder changed since [`check`]: the first one that did.
pub fn changed(stamps: &[Stamp]) -> Option<&PathBuf> {
    stamps.iter().find(|s| s.changed()).map(|s| &s.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours(event: &str) -> Value {
        json!({"type": "command", "command": format!("/opt/bin/clawsess hook {event}"), "timeout": 10})
    }

    fn world() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("home/.claude");
        let cwd = dir.path().join("home/work/project");
        fs::create_dir_all(&config).unwrap();
        fs::create_dir_all(&cwd).unwrap();
        (dir, config, cwd)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn only_our_hooks_and_plugin_let_a_kept_claude_run_without_hooks() {
        let (_dir, config, cwd) = world();
        let settings = json!({
            "hooks": {"UserPromptSubmit": [{"hooks": [ours("prompt-submit")]}], "Stop": [{"hooks": [ours("stop")]}]},
            "enabledPlugins": {"clawsess@clawsess": true, "other@market": false},
            "model": "opus"
        });
        write(&config.join("settings.json"), &settings.to_string());
        write(&config.join("commands/attach.md"), "---\ndescription: attach\n---\nbody with hooks: in it\n");
        write(&config.join("skills/zebra/SKILL.md"), "---\nname: zebra\n---\nhooks: not frontmatter\n");
        let stamps = check(&config, &cwd, &["--model".into(), "opus".into()]).expect("only ours");
        assert!(stamps.iter().any(|s| s.path == config.join("settings.json") && s.len.is_some()));
        assert!(stamps.iter().any(|s| s.path == cwd.join(".claude/settings.json") && s.len.is_none()));
        assert_eq!(changed(&stamps), None);
    }

    #[test]
    fn any_other_hook_plugin_or_opaque_argument_keeps_the_hooks() {
        let other = json!({"hooks": {"Stop": [{"hooks": [ours("stop"), {"type": "command", "command": "notify-send done"}]}]}});
        let http = json!({"hooks": {"Stop": [{"hooks": [{"type": "http", "url": "http://127.0.0.1:1/"}]}]}});
        let plugin = json!({"enabledPlugins": {"formatter@market": true}});
        for (file, text, why) in [
            ("home/.claude/settings.json", other.to_string(), "notify-send done"),
            ("home/work/.claude/settings.local.json", http.to_string(), "a hook http"),
            ("home/work/project/.claude/settings.json", plugin.to_string(), "formatter@market"),
            ("home/work/project/.claude/settings.json", "{not json".into(), "does not parse"),
            ("home/.claude/agents/a.md", "---\nname: a\nhooks:\n  Stop: []\n---\n".into(), "frontmatter"),
            ("home/work/.claude/skills/s/SKILL.md", "---\nhooks :\n---\n".into(), "frontmatter"),
        ] {
            let (dir, config, cwd) = world();
            write(&dir.path().join(file), &text);
            let why_not = check(&config, &cwd, &[]).expect_err(file);
            assert!(why_not.contains(why), "{file}: {why_not}");
        }
        let (_dir, config, cwd) = world();
        for arg in ["--settings", "--plugin-dir=/x", "--setting-sources", "--agents"] {
            let why_not = check(&config, &cwd, &["-p".into(), arg.into()]).expect_err(arg);
            assert!(why_not.contains(arg), "{why_not}");
        }
    }

    #[test]
    fn a_settings_file_or_skill_made_or_changed_later_is_seen() {
        let (_dir, config, cwd) = world();
        let stamps = check(&config, &cwd, &[]).unwrap();
        write(&cwd.join(".claude/settings.local.json"), "{}");
        assert_eq!(changed(&stamps), Some(&cwd.join(".claude/settings.local.json")));
        let stamps = check(&config, &cwd, &[]).unwrap();
        write(&config.join("skills/new/SKILL.md"), "---\nname: new\n---\n");
        assert_eq!(changed(&stamps), Some(&config.join("skills")));
    }
}
