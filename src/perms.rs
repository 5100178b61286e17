//! What a send's turn may do: never more than the caller's own turn could.
//!
//! The target's claude keeps all its own settings (its CLAUDE.md, hooks, env, and its own deny
//! and ask rules, which hold as always), and is started with flags that take away whatever
//! the caller could not do:
//!
//! - `--permission-mode`: the strictest of `default`, the caller's mode (its command line, the
//!   `defaultMode` of each settings file it loads, and its mode at the prompt of the turn that
//!   sends, which a person may have switched since it started) and the target's (its `clawsess set
//!   permission_mode` and its settings files' `defaultMode`). With nobody to ask, `default`
//!   denies every call that needs permission.
//! - `--disallowedTools`: every deny and ask rule of the caller (its command line, its
//!   `--settings`, and the user, project and local settings files it loads: an ask becomes a
//!   deny, as there is nobody to ask), and every allow rule of the target's settings files that
//!   no allow rule of the caller covers. Deny rules beat allow rules (and a hook's allow) in
//!   Claude Code, so a target's own allow can no longer let through what the caller's cannot.
//! - `--allowedTools`: the caller's allow rules, so that what the caller's run allowed runs.
//!
//! A rule on a path relative to a project (`Read(./.env)`, `Edit(/src/**)`, `Edit(src/**)`)
//! means other files in another project: such a caller's allow rule is passed on only when
//! both sessions share a cwd; such a deny rule is passed on as written and as the absolute
//! paths it meant in the caller's project (`Read(//home/me/app/.env)`), and a target's allow
//! rule of that kind is denied as written and as its absolute paths.
//!
//! A target whose claude loads a PreToolUse or PermissionRequest hook (its settings files or
//! the plugins they enable) gets no send at all: such a hook's `allow` beats `claude -p`'s
//! denial ([`loosening_hooks`]).
//!
//! When any of this cannot be told (a settings file that is not valid JSON, a mode clawsess
//! does not know, a rule it cannot read, the caller's command line gone), the send is refused
//! with the reason: it never runs looser for want of knowing. An empty intersection is no
//! error: the target then answers with the tools that need no permission.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The permission modes clawsess knows, strictest first; one not listed is refused.
const MODES: [(&str, u8); 7] = [
    ("plan", 0),
    ("dontAsk", 1),
    ("default", 2),
    ("manual", 2),
    ("acceptEdits", 3),
    ("auto", 4),
    ("bypassPermissions", 5),
];

/// Tools whose rules name paths (gitignore patterns, relative ones resolved in a project).
const PATH_TOOLS: [&str; 9] =
    ["Read", "Edit", "Write", "MultiEdit", "NotebookEdit", "NotebookRead", "Glob", "Grep", "LS"];

/// The settings sources Claude Code loads unless `--setting-sources` says otherwise.
const SOURCES: [&str; 3] = ["user", "project", "local"];

/// What a claude's command line says about permissions and settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// `--permission-mode M`, or `bypassPermissions` for `--dangerously-skip-permissions`.
    pub mode: Option<String>,
    /// `--allowedTools` values, each split into rules.
    pub allowed: Vec<String>,
    /// `--disallowedTools` values, each split into rules.
    pub disallowed: Vec<String>,
    /// `--settings FILE-OR-JSON`.
    pub settings: Option<String>,
    /// `--setting-sources a,b` (None: all of them).
    pub sources: Option<Vec<String>>,
}

impl CommandLine {
    /// Claude `pid`'s command line, or why it cannot be read.
    pub fn of(pid: u32) -> Result<CommandLine> {
        let path = PathBuf::from(format!("/proc/{pid}/cmdline"));
        let bytes = std::fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
        if bytes.is_empty() {
            bail!("the caller's claude (pid {pid}) has gone");
        }
        let args: Vec<String> =
            bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        Ok(Self::parse(&args))
    }

    /// Reads the flags; each list flag takes the values that follow it (as Claude Code does).
    pub fn parse(args: &[String]) -> CommandLine {
        let mut c = CommandLine::default();
        let mut list: Option<bool> = None; // Some(true): allowed values follow; Some(false): disallowed
        let mut args = args.iter().peekable();
        while let Some(arg) = args.next() {
            if let Some(allow) = list.filter(|_| !arg.starts_with('-')) {
                let rules = split_rules(arg);
                if allow {
                    c.allowed.extend(rules)
                } else {
                    c.disallowed.extend(rules)
                }
                continue;
            }
            list = None;
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| args.next_if(|a| !a.starts_with("--")).cloned());
            match flag {
                "--permission-mode" => c.mode = value(),
                "--dangerously-skip-permissions" => c.mode = Some("bypassPermissions".to_owned()),
                "--settings" => c.settings = value(),
                "--setting-sources" => {
                    c.sources = Some(
                        value()
                            .unwrap_or_default()
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                "--allowedTools" | "--allowed-tools" | "--disallowedTools" | "--disallowed-tools" => {
                    let allow = flag.starts_with("--allowed");
                    match inline {
                        Some(v) if allow => c.allowed.extend(split_rules(&v)),
                        Some(v) => c.disallowed.extend(split_rules(&v)),
                        None => list = Some(allow),
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// Splits a flag value into rules at commas and spaces outside parentheses
/// (`"Bash(git log:*) Edit,Read"` is three rules).
pub fn split_rules(value: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut depth = 0usize;
    let mut rule = String::new();
    for ch in value.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | ' ' | '\t' | '\n' if depth == 0 => {
                if !rule.trim().is_empty() {
                    rules.push(std::mem::take(&mut rule));
                }
                rule.clear();
                continue;
            }
            _ => {}
        }
        rule.push(ch);
    }
    if !rule.trim().is_empty() {
        rules.push(rule);
    }
    rules
}

/// A permission rule: `Tool` or `Tool(specifier)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule<'a> {
    tool: &'a str,
    spec: Option<&'a str>,
}

fn rule(text: &str) -> Option<Rule<'_>> {
    let text = text.trim();
    match text.split_once('(') {
        None if !text.is_empty() && !text.contains(')') => Some(Rule { tool: text, spec: None }),
        Some((tool, rest)) if !tool.is_empty() => {
            let spec = rest.strip_suffix(')')?;
            Some(Rule { tool, spec: Some(spec) })
        }
        _ => None,
    }
}

impl Rule<'_> {
    /// A path rule whose path is relative to a project (not `//abs` nor `~/home`).
    fn relative(&self) -> bool {
        PATH_TOOLS.contains(&self.tool)
            && self.spec.is_some_and(|s| !s.is_empty() && !s.starts_with("//") && !s.starts_with("~/"))
    }

    /// Whether this allow rule lets through everything `other` does.
    fn covers(&self, other: &Rule<'_>, same_cwd: bool) -> bool {
        if self.spec.is_none() {
            if self.tool == other.tool {
                return true;
            }
            // `mcp__server` (or `mcp__server__*`) covers each tool of that server.
            let server = self.tool.strip_suffix("__*").unwrap_or(self.tool);
            return server.starts_with("mcp__")
                && server.matches("__").count() == 1
                && other.tool.strip_prefix(server).is_some_and(|t| t.starts_with("__"));
        }
        self == other && (same_cwd || !self.relative())
    }

    /// The rule as written, and, for a project-relative path, the absolute paths it meant in
    /// project `cwd` (`./x` and `x`: `cwd/x`; `/x`: `cwd/x` and `cwd/.claude/x`, as a
    /// settings file's own folder may be meant). A path that cannot be written into a rule
    /// (parentheses, commas, spaces) gives the bare tool instead: denying more, never less.
    fn deny_forms(&self, text: &str, cwd: &Path) -> Vec<String> {
        let mut forms = vec![text.trim().to_owned()];
        let Some(spec) = self.spec.filter(|_| self.relative()) else { return forms };
        let dir = cwd.to_string_lossy();
        if dir.contains(['(', ')', ',', ' ', '\t', '\n']) || !dir.starts_with('/') {
            forms.push(self.tool.to_owned());
            return forms;
        }
        let dir = dir.trim_end_matches('/');
        let paths = match spec.strip_prefix('/') {
            Some(rest) => vec![format!("{dir}/{rest}"), format!("{dir}/.claude/{rest}")],
            None => vec![format!("{dir}/{}", spec.strip_prefix("./").unwrap_or(spec))],
        };
        forms.extend(paths.into_iter().map(|p| format!("{}(/{p})", self.tool)));
        forms
    }
}

/// The permission rules and modes of one or more settings.
#[derive(Debug, Clone, Default)]
struct Rules {
    allow: Vec<String>,
    deny: Vec<String>,
    ask: Vec<String>,
    modes: Vec<String>,
}

impl Rules {
    fn add(&mut self, other: Rules) {
        self.allow.extend(other.allow);
        self.deny.extend(other.deny);
        self.ask.extend(other.ask);
        self.modes.extend(other.modes);
    }

    /// `permissions.{allow,deny,ask,defaultMode}` of a settings document.
    fn of(doc: &Value, origin: &str) -> Result<Rules> {
        let mut rules = Rules::default();
        let Some(perms) = doc.get("permissions") else { return Ok(rules) };
        if perms.is_null() {
            return Ok(rules);
        }
        let Some(perms) = perms.as_object() else { bail!("{origin}: \"permissions\" is not an object") };
        for (name, into) in [("allow", &mut rules.allow), ("deny", &mut rules.deny), ("ask", &mut rules.ask)]
        {
            match perms.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        let Some(text) = item.as_str() else {
                            bail!("{origin}: permissions.{name} holds {item}, not a rule")
                        };
                        into.push(text.to_owned());
                    }
                }
                Some(other) => bail!("{origin}: permissions.{name} is {other}, not a list of rules"),
            }
        }
        match perms.get("defaultMode") {
            None | Some(Value::Null) => {}
            Some(Value::String(mode)) => rules.modes.push(mode.clone()),
            Some(other) => bail!("{origin}: permissions.defaultMode is {other}, not a mode"),
        }
        Ok(rules)
    }

    /// A settings file's rules; none when it does not exist.
    fn file(path: &Path) -> Result<Rules> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Rules::default()),
            Err(e) => bail!("could not read {}: {e}", path.display()),
        };
        if text.trim().is_empty() {
            return Ok(Rules::default());
        }
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid JSON ({e})", path.display()))?;
        Rules::of(&doc, &path.display().to_string())
    }
}

fn parse<'a>(text: &'a str, whose: &str) -> Result<Rule<'a>> {
    rule(text).with_context(|| format!("{whose} rule {text:?} cannot be read as Tool or Tool(specifier)"))
}

/// The settings files of a project and of the user, as Claude Code finds them.
fn source_file(source: &str, user_dir: &Path, cwd: &Path) -> Option<PathBuf> {
    match source {
        "user" => Some(user_dir.join("settings.json")),
        "project" => Some(cwd.join(".claude").join("settings.json")),
        "local" => Some(cwd.join(".claude").join("settings.local.json")),
        _ => None,
    }
}

/// Who is calling, for [`grant`].
pub struct Caller<'a> {
    pub args: &'a CommandLine,
    pub cwd: &'a Path,
    /// Its permission mode at the prompt of the turn that sends (its UserPromptSubmit hook's
    /// `permission_mode`, kept in the turn's busy marker): a person may have switched it
    /// (Shift+Tab to `plan`, or out of `bypassPermissions`) since the claude started.
    pub mode_now: Option<&'a str>,
}

/// The target of a send, for [`grant`].
pub struct Target<'a> {
    pub cwd: &'a Path,
    /// Its `clawsess set permission_mode`.
    pub mode: Option<&'a str>,
}

/// The flags of a send's turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub mode: String,
    pub allowed: Vec<String>,
    pub disallowed: Vec<String>,
}

/// The caller's side of a grant: what its own turn may do, as rules that mean the same on
/// another machine. A send to a session on a host carries these in its request, and the host
/// adds the target's side there ([`combine`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerRules {
    /// Its allow rules, as written.
    pub allow: Vec<String>,
    /// Its deny and ask rules, each as written and, for a path relative to its project, as
    /// the absolute paths it meant there.
    pub deny: Vec<String>,
    /// Its permission modes (command line, settings files, at its prompt now).
    pub modes: Vec<String>,
}

/// Rules carried in one request at most (a caller with more is refused, never cut).
pub const MAX_CARRIED: usize = 2000;

impl CallerRules {
    /// Checks rules that came from another machine before any reaches a command line: each
    /// reads as `Tool` or `Tool(specifier)` with a tool name of letters, digits, `_`, `-`
    /// and `*` starting with a letter or digit (so none can read as an option of claude's),
    /// no NUL, and every mode is one clawsess knows.
    pub fn check_carried(&self) -> Result<()> {
        if self.allow.len() + self.deny.len() + self.modes.len() > MAX_CARRIED {
            bail!("the caller's rules are more than {MAX_CARRIED}");
        }
        for text in self.allow.iter().chain(&self.deny) {
            let ok = rule(text).is_some_and(|r| {
                r.tool.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && r.tool.chars().all(|c| c.is_ascii_alphanumeric() || "_-*".contains(c))
            }) && !text.contains('\0')
                && text.trim() == text;
            if !ok {
                bail!("the caller's rule {:?} cannot be carried as a rule", crate::ident::shorten(text, 80));
            }
        }
        let modes: Vec<&str> = self.modes.iter().map(String::as_str).collect();
        strictest(&modes).map(drop)
    }
}

/// The caller's side of [`grant`]: its command line, its `--settings`, the settings files it
/// loads; what cannot be read is an error.
pub fn caller_rules(caller: &Caller<'_>, user_dir: &Path) -> Result<CallerRules> {
    let mut mine = Rules {
        allow: caller.args.allowed.clone(),
        deny: caller.args.disallowed.clone(),
        ask: Vec::new(),
        modes: caller.args.mode.iter().cloned().chain(caller.mode_now.map(str::to_owned)).collect(),
    };
    let sources = caller.args.sources.clone().unwrap_or_else(|| SOURCES.map(str::to_owned).to_vec());
    for source in &sources {
        let Some(path) = source_file(source, user_dir, caller.cwd) else {
            bail!("the caller's claude loads setting source {source:?}, which clawsess does not know")
        };
        mine.add(Rules::file(&path).context("the caller's settings cannot be read")?);
    }
    if let Some(flag) = &caller.args.settings {
        let flag = flag.trim();
        let rules = if flag.starts_with('{') {
            let doc: Value = serde_json::from_str(flag)
                .map_err(|e| anyhow::anyhow!("the caller's --settings is not valid JSON ({e})"))?;
            Rules::of(&doc, "the caller's --settings")?
        } else {
            Rules::file(&caller.cwd.join(flag)).context("the caller's --settings cannot be read")?
        };
        mine.add(rules);
    }
    strictest(&mine.modes.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut deny = Vec::new();
    for text in mine.deny.iter().chain(&mine.ask) {
        deny.extend(parse(text, "the caller's deny or ask")?.deny_forms(text, caller.cwd));
    }
    Ok(CallerRules { allow: mine.allow, deny, modes: mine.modes })
}

/// What the target's turn of a send from `caller` may do (see the module doc); `user_dir`
/// is Claude Code's config dir (`~/.claude`), the same for both.
pub fn grant(caller: &Caller<'_>, target: &Target<'_>, user_dir: &Path) -> Result<Grant> {
    let mine = caller_rules(caller, user_dir)?;
    combine(&mine, target, user_dir, caller.cwd == target.cwd)
}

/// The caller's side and the target's: the target's rules come from the settings files its
/// claude loads (all of them; it is started without --setting-sources) in `user_dir` and its
/// project. `same_cwd`: both sessions work in one project on one machine (a caller's rule on
/// a project-relative path then means the same files).
pub fn combine(mine: &CallerRules, target: &Target<'_>, user_dir: &Path, same_cwd: bool) -> Result<Grant> {
    let mut theirs =
        Rules { modes: target.mode.iter().map(|m| (*m).to_owned()).collect(), ..Rules::default() };
    for source in SOURCES {
        let path = source_file(source, user_dir, target.cwd).expect("a known source");
        theirs.add(Rules::file(&path).context("the target's settings cannot be read")?);
    }

    let modes: Vec<&str> = mine.modes.iter().chain(&theirs.modes).map(String::as_str).collect();
    let mode = strictest(&modes)?;
    // Allow rules the caller's run had; one that cannot be read, or that names a path of the
    // caller's project while the target has another, is simply not passed on.
    let allowed: Vec<&String> =
        mine.allow.iter().filter(|t| rule(t).is_some_and(|r| same_cwd || !r.relative())).collect();
    let mut disallowed = mine.deny.clone();
    for text in &theirs.allow {
        let r = parse(text, "the target's allow")?;
        if !mine.allow.iter().filter_map(|a| rule(a)).any(|a| a.covers(&r, same_cwd)) {
            disallowed.extend(r.deny_forms(text, target.cwd));
        }
    }
    let mut seen = std::collections::HashSet::new();
    disallowed.retain(|r| seen.insert(r.clone()));
    let mut seen = std::collections::HashSet::new();
    let allowed = allowed.into_iter().filter(|r| seen.insert(*r)).cloned().collect();
    Ok(Grant { mode, allowed, disallowed })
}

/// Hook events whose answer lets a tool call through that no rule allows: a PreToolUse hook's
/// `allow` runs a call that `default` and `dontAsk` would deny in `claude -p`, and a
/// PermissionRequest hook's `allow` one that `default` or even `plan` would deny (measured on
/// 2.1.328, docs/CLAUDE_CODE.md). Deny rules still beat both.
pub const LOOSENING_HOOKS: [&str; 2] = ["PreToolUse", "PermissionRequest"];

/// The hooks of the target's settings that could let its turn do more than the caller's run
/// (see [`LOOSENING_HOOKS`]), each as "a PreToolUse hook (`cmd`) in FILE": those of the
/// settings files its claude loads (`user_dir`'s, and the project's and local ones in `cwd`)
/// and of the plugins they enable (listed in `user_dir/plugins/installed_plugins.json`). What
/// cannot be read is an error: the send is then refused all the same.
pub fn loosening_hooks(cwd: &Path, user_dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut plugins = std::collections::BTreeMap::new();
    for source in SOURCES {
        let path = source_file(source, user_dir, cwd).expect("a known source");
        let Some(doc) = settings_doc(&path)? else { continue };
        found.extend(hooks_in(doc.get("hooks"), &path.display().to_string()));
        if let Some(enabled) = doc.get("enabledPlugins").and_then(Value::as_object) {
            for (name, on) in enabled {
                // A later source (local over project over user) decides.
                plugins.insert(name.clone(), on.as_bool() == Some(true));
            }
        }
    }
    let enabled: Vec<&String> = plugins.iter().filter(|(_, on)| **on).map(|(name, _)| name).collect();
    if enabled.is_empty() {
        return Ok(found);
    }
    let index = user_dir.join("plugins").join("installed_plugins.json");
    let installed = settings_doc(&index)?.unwrap_or(Value::Null);
    for name in enabled {
        // `{"plugins": {NAME: [{"installPath": ...}]}}` (or one object instead of the list).
        let entries = match installed.pointer("/plugins").and_then(|p| p.get(name.as_str())) {
            Some(Value::Array(items)) => items.clone(),
            Some(item @ Value::Object(_)) => vec![item.clone()],
            _ => bail!("plugin {name} is enabled but {} does not say where it is", index.display()),
        };
        for entry in entries {
            let Some(root) = entry.get("installPath").and_then(Value::as_str) else {
                bail!("{}: plugin {name} has no installPath", index.display())
            };
            let root = Path::new(root);
            let hooks = root.join("hooks").join("hooks.json");
            if let Some(doc) = settings_doc(&hooks)? {
                found.extend(hooks_in(doc.get("hooks"), &format!("plugin {name} ({})", hooks.display())));
            }
            let manifest = root.join(".claude-plugin").join("plugin.json");
            match settings_doc(&manifest)?.as_ref().and_then(|m| m.get("hooks")) {
                Some(inline @ Value::Object(_)) => {
                    let origin = format!("plugin {name} ({})", manifest.display());
                    found.extend(hooks_in(inline.get("hooks").or(Some(inline)), &origin));
                }
                Some(Value::Null) | None => {}
                Some(other) => {
                    // Paths to more hook files.
                    let paths: Vec<&str> = match other {
                        Value::String(p) => vec![p.as_str()],
                        Value::Array(ps) => ps.iter().filter_map(Value::as_str).collect(),
                        _ => bail!("{}: \"hooks\" is {other}", manifest.display()),
                    };
                    for p in paths {
                        let file = root.join(p.trim_start_matches("./"));
                        let doc = settings_doc(&file)?.unwrap_or(Value::Null);
                        let origin = format!("plugin {name} ({})", file.display());
                        found.extend(hooks_in(doc.get("hooks"), &origin));
                    }
                }
            }
        }
    }
    Ok(found)
}

/// A JSON settings file, None when it is not there (or empty).
fn settings_doc(path: &Path) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("could not read {}: {e}", path.display()),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let doc = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON ({e})", path.display()))?;
    Ok(Some(doc))
}

/// The [`LOOSENING_HOOKS`] of a `hooks` object, described.
fn hooks_in(hooks: Option<&Value>, origin: &str) -> Vec<String> {
    let mut found = Vec::new();
    for event in LOOSENING_HOOKS {
        let groups = hooks.and_then(|h| h.get(event)).and_then(Value::as_array).cloned().unwrap_or_default();
        for group in groups {
            let each = group.get("hooks").and_then(Value::as_array).cloned().unwrap_or_default();
            for hook in each {
                let what = hook
                    .get("command")
                    .or_else(|| hook.get("prompt"))
                    .or_else(|| hook.get("url"))
                    .and_then(Value::as_str)
                    .map(|c| crate::ident::shorten(c, 80))
                    .unwrap_or_else(|| hook.to_string());
                found.push(format!("a {event} hook ({what:?}) in {origin}"));
            }
        }
    }
    found
}

/// The strictest of `default` and these modes: `plan` runs nothing, `dontAsk` only what is
/// allowed beforehand, `default` (`manual` in 2.1.328) asks, and with nobody to ask denies;
/// `acceptEdits`, `auto` and `bypassPermissions` let more through, so they give `default`. A
/// mode clawsess does not know (2.0.77's `delegate`, say) is refused: it might be stricter.
pub fn strictest(modes: &[&str]) -> Result<String> {
    let mut best = ("default", 2);
    for mode in modes {
        let Some(&(name, rank)) = MODES.iter().find(|(name, _)| name == mode) else {
            bail!(
                "permission mode {mode:?} is not one clawsess knows, so it cannot tell what the send may do"
            )
        };
        if rank < best.1 {
            best = (name, rank);
        }
    }
    Ok(best.0.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_sends_turn_takes_the_strictest_mode_and_never_a_looser_one_than_default() {
        assert_eq!(strictest(&["bypassPermissions", "acceptEdits"]).unwrap(), "default");
        assert_eq!(strictest(&["plan", "acceptEdits"]).unwrap(), "plan");
        assert_eq!(strictest(&["default", "dontAsk"]).unwrap(), "dontAsk");
        assert_eq!(strictest(&["manual", "auto"]).unwrap(), "default");
        assert!(strictest(&["delegate"]).is_err());
        assert_eq!(strictest(&[]).unwrap(), "default");
        assert!(strictest(&["default", "yolo"]).unwrap_err().to_string().contains("\"yolo\""));
    }

    #[test]
    fn a_callers_flags_are_read_from_its_command_line() {
        let args = strings(&[
            "claude",
            "-p",
            "--allowedTools",
            "mcp__clawsess",
            "Bash(git log:*) Edit,Read",
            "--model",
            "x",
            "--disallowedTools=Write",
            "--permission-mode",
            "plan",
            "--setting-sources",
            "user,local",
            "--settings={\"a\":1}",
        ]);
        let c = CommandLine::parse(&args);
        assert_eq!(c.allowed, ["mcp__clawsess", "Bash(git log:*)", "Edit", "Read"]);
        assert_eq!(c.disallowed, ["Write"]);
        assert_eq!(c.mode.as_deref(), Some("plan"));
        assert_eq!(c.sources, Some(strings(&["user", "local"])));
        assert_eq!(c.settings.as_deref(), Some("{\"a\":1}"));
        assert_eq!(CommandLine::parse(&strings(&["claude", "--setting-sources", ""])).sources, Some(vec![]));
        assert_eq!(CommandLine::parse(&strings(&["claude"])), CommandLine::default());
        let skip = CommandLine::parse(&strings(&["claude", "--dangerously-skip-permissions"]));
        assert_eq!(skip.mode.as_deref(), Some("bypassPermissions"));
    }

    #[test]
    fn allow_rules_cover_the_same_rule_a_bare_tool_or_an_mcp_server() {
        let covers = |a: &str, b: &str, same| rule(a).unwrap().covers(&rule(b).unwrap(), same);
        assert!(covers("Bash", "Bash(rm:*)", false));
        assert!(covers("Bash(npm test:*)", "Bash(npm test:*)", false));
        assert!(!covers("Bash(git:*)", "Bash", false));
        assert!(!covers("Bash(git:*)", "Bash(git log:*)", false), "no pattern reasoning: denied");
        assert!(covers("mcp__clawsess", "mcp__clawsess__sessions_send", false));
        assert!(covers("mcp__clawsess__*", "mcp__clawsess__sessions_send", false));
        assert!(!covers("mcp__claw", "mcp__clawsess__sessions_send", false));
        assert!(!covers("Edit(src/**)", "Edit(src/**)", false), "another project's src");
        assert!(covers("Edit(src/**)", "Edit(src/**)", true));
        assert!(covers("Read(~/notes/**)", "Read(~/notes/**)", false));
        assert!(rule("Bash(oops").is_none() && rule("").is_none() && rule("(x)").is_none());
    }

    #[test]
    fn a_project_relative_deny_is_also_denied_where_it_pointed() {
        let r = |t: &str, cwd: &str| rule(t).unwrap().deny_forms(t, Path::new(cwd));
        assert_eq!(r("Read(./.env)", "/p/a"), ["Read(./.env)", "Read(//p/a/.env)"]);
        assert_eq!(
            r("Edit(/src/**)", "/p/a"),
            ["Edit(/src/**)", "Edit(//p/a/src/**)", "Edit(//p/a/.claude/src/**)"]
        );
        assert_eq!(r("Read(//etc/x)", "/p/a"), ["Read(//etc/x)"]);
        assert_eq!(r("Bash(rm:*)", "/p/a"), ["Bash(rm:*)"]);
        assert_eq!(r("Read(.env)", "/p/my app"), ["Read(.env)", "Read"]);
    }

    /// Two projects under a user dir, with these settings files.
    fn world(user: Value, a: Value, b: Value) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (u, pa, pb) = (dir.path().join("u"), dir.path().join("a"), dir.path().join("b"));
        for (d, v) in [(u.clone(), user), (pa.join(".claude"), a), (pb.join(".claude"), b)] {
            std::fs::create_dir_all(&d).unwrap();
            if !v.is_null() {
                std::fs::write(d.join("settings.json"), v.to_string()).unwrap();
            }
        }
        (dir, u, pa, pb)
    }

    #[test]
    fn the_targets_turn_gets_the_callers_denies_and_none_of_its_own_extra_allows() {
        let (_dir, user, a, b) = world(
            json!({"permissions": {"allow": ["WebSearch"], "deny": ["Bash(curl:*)"]}}),
            json!({"permissions": {"allow": ["Bash(touch:*)"], "deny": ["Bash(rm:*)"], "ask": ["Edit"], "defaultMode": "acceptEdits"}}),
            json!({"permissions": {"allow": ["Bash(touch:*)", "Bash(mkdir:*)", "Bash", "mcp__x__y"], "defaultMode": "bypassPermissions"}}),
        );
        let args = CommandLine { allowed: strings(&["mcp__x"]), ..CommandLine::default() };
        let g =
            grant(&Caller { args: &args, cwd: &a, mode_now: None }, &Target { cwd: &b, mode: None }, &user)
                .unwrap();
        assert_eq!(g.mode, "default");
        assert_eq!(g.allowed, ["mcp__x", "WebSearch", "Bash(touch:*)"]);
        assert_eq!(g.disallowed, ["Bash(curl:*)", "Bash(rm:*)", "Edit", "Bash(mkdir:*)", "Bash"]);

        // The target's own `clawsess set permission_mode plan` holds; an SDK caller that loads
        // no settings files has none of the user's allows, so they are denied in the target.
        // A mode a person switched to after the caller started (its prompt's) holds.
        let g = grant(
            &Caller { args: &args, cwd: &a, mode_now: Some("plan") },
            &Target { cwd: &b, mode: None },
            &user,
        )
        .unwrap();
        assert_eq!(g.mode, "plan");
        let sdk = CommandLine { sources: Some(vec![]), ..CommandLine::default() };
        let g = grant(
            &Caller { args: &sdk, cwd: &a, mode_now: None },
            &Target { cwd: &b, mode: Some("plan") },
            &user,
        )
        .unwrap();
        assert_eq!(g.mode, "plan");
        assert!(g.allowed.is_empty());
        assert!(g.disallowed.contains(&"WebSearch".to_owned()), "{g:?}");
        assert!(
            !g.disallowed.contains(&"Bash(curl:*)".to_owned()),
            "the target loads the user's deny itself"
        );
    }

    #[test]
    fn a_targets_pretooluse_or_permissionrequest_hook_is_found_in_its_settings_and_plugins() {
        let hook = json!({"hooks": {"PreToolUse": [{"matcher": "", "hooks": [{"type": "command", "command": "allow.sh"}]}],
                                    "Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}});
        let (_dir, user, _a, b) =
            world(json!({"enabledPlugins": {"p@m": true, "off@m": false}}), Value::Null, hook);
        // An enabled plugin that cannot be found: cannot tell.
        assert!(loosening_hooks(&b, &user).is_err());
        let root = user.join("plugins/p");
        std::fs::create_dir_all(root.join("hooks")).unwrap();
        std::fs::write(
            user.join("plugins/installed_plugins.json"),
            json!({"version": 2, "plugins": {"p@m": [{"installPath": root}]}}).to_string(),
        )
        .unwrap();
        std::fs::write(
            root.join("hooks/hooks.json"),
            json!({"hooks": {"PermissionRequest": [{"hooks": [{"type": "command", "command": "yes.sh"}]}]}})
                .to_string(),
        )
        .unwrap();
        let found = loosening_hooks(&b, &user).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("PreToolUse hook (\"allow.sh\")") && found[0].contains("settings.json"));
        assert!(found[1].contains("PermissionRequest") && found[1].contains("plugin p@m"));
        std::fs::write(b.join(".claude/settings.json"), "{}").unwrap();
        std::fs::write(root.join("hooks/hooks.json"), "{}").unwrap();
        assert!(loosening_hooks(&b, &user).unwrap().is_empty());
    }

    #[test]
    fn carried_rules_never_read_as_options_and_unknown_modes_are_refused() {
        let ok = CallerRules {
            allow: strings(&["mcp__clawsess", "Bash(git log:*)", "mcp__my-srv__*"]),
            deny: strings(&["Read(//p/a/.env)"]),
            modes: strings(&["plan"]),
        };
        ok.check_carried().unwrap();
        for bad in ["--dangerously-skip-permissions", "-x", "Bash(oops", " Bash", "Ba sh", "Bash\0"] {
            let rules = CallerRules { allow: strings(&[bad]), ..CallerRules::default() };
            assert!(rules.check_carried().is_err(), "{bad:?} carried");
        }
        let odd = CallerRules { modes: strings(&["yolo"]), ..CallerRules::default() };
        assert!(odd.check_carried().is_err());
    }

    #[test]
    fn what_cannot_be_told_refuses_the_send() {
        let (_dir, user, a, b) = world(Value::Null, Value::Null, json!({"permissions": {"allow": "Bash"}}));
        let args = CommandLine::default();
        let err =
            grant(&Caller { args: &args, cwd: &a, mode_now: None }, &Target { cwd: &b, mode: None }, &user)
                .unwrap_err();
        assert!(format!("{err:#}").contains("permissions.allow is \"Bash\""), "{err:#}");
        std::fs::write(a.join(".claude/settings.local.json"), "{ nope").unwrap();
        let err =
            grant(&Caller { args: &args, cwd: &a, mode_now: None }, &Target { cwd: &b, mode: None }, &user)
                .unwrap_err();
        assert!(format!("{err:#}").contains("settings.local.json is not valid JSON"), "{err:#}");
        // Not loaded by the caller: not read.
        let user_only = CommandLine { sources: Some(strings(&["user"])), ..CommandLine::default() };
        std::fs::write(b.join(".claude/settings.json"), "{}").unwrap();
        assert!(
            grant(
                &Caller { args: &user_only, cwd: &a, mode_now: None },
                &Target { cwd: &b, mode: None },
                &user
            )
            .is_ok()
        );
        let odd = CommandLine { mode: Some("yolo".into()), ..CommandLine::default() };
        assert!(
            grant(&Caller { args: &odd, cwd: &a, mode_now: None }, &Target { cwd: &b, mode: None }, &user)
                .is_err()
        );
        let bad = CommandLine { disallowed: strings(&["Bash(oops"]), ..user_only.clone() };
        let err =
            grant(&Caller { args: &bad, cwd: &a, mode_now: None }, &Target { cwd: &b, mode: None }, &user)
                .unwrap_err();
        assert!(format!("{err:#}").contains("\"Bash(oops\" cannot be read"), "{err:#}");
    }
}
