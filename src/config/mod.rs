//! The config file and what is in force: `$XDG_CONFIG_HOME/clawsess/config.toml` (or
//! `$CLAWSESS_CONFIG`), under the environment variables, which still win over it.
//!
//! Read lazily and once per process: a command or hook that needs no value from it never
//! opens it. A file that does not parse, has an unknown key or a bad value is an error that
//! names the file and the line; hooks say it on stderr and go on with the defaults.

pub mod policy;
pub mod settings;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use toml::Spanned;

use crate::ident::{Key, SessionId};
pub use policy::{Mode, Policy};
pub use settings::{SettingsInForce, for_key, in_force};

/// Env var: the claude executable for `run`.
pub const CLAUDE_ENV: &str = "CLAWSESS_CLAUDE";
/// Env var: the config file to read instead of the default one.
pub const CONFIG_ENV: &str = "CLAWSESS_CONFIG";
/// Env var: every key's own session resets after this long idle (shorthand for one policy).
pub const IDLE_RESET_ENV: &str = "CLAWSESS_IDLE_RESET";
/// Env var: how long a terminal's prompt waits for another surface's turn, in seconds.
pub const TURN_WAIT_ENV: &str = "CLAWSESS_TURN_WAIT";
/// Env var: what a claude process that is behind gets (`refuse`, `note`).
pub const BEHIND_ENV: &str = "CLAWSESS_BEHIND";
/// Default of [`TURN_WAIT_ENV`].
pub const DEFAULT_TURN_WAIT: Duration = Duration::from_secs(120);
/// Env var: how long a claude stays warm after a turn (`run --warm`); `0`/`off`: not.
pub const WARM_ENV: &str = "CLAWSESS_WARM";
/// Env var: at most this many warm claudes per user (state dir).
pub const WARM_MAX_ENV: &str = "CLAWSESS_WARM_MAX";
/// Default of [`WARM_MAX_ENV`].
pub const DEFAULT_WARM_MAX: usize = 4;

/// Env var: how often `run` prunes the state dir by itself (`prune --auto`); `off`: never.
pub const PRUNE_EVERY_ENV: &str = "CLAWSESS_PRUNE_EVERY";
/// Default of [`PRUNE_EVERY_ENV`].
pub const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Env var: at most this many claude processes started by clawsess at once (`turn::cap`).
pub const MAX_CLAUDES_ENV: &str = "CLAWSESS_MAX_CLAUDES";
/// What one claude process is budgeted: the most a kept claude was measured to hold
/// resident (599 MB on a 50 MB session; 241 MB on a small one).
pub const CLAUDE_MB: u64 = 600;
/// Without /proc/meminfo (not Linux): the default cap.
const FALLBACK_MAX: usize = 4;

/// The default of [`MAX_CLAUDES_ENV`]: half the machine's memory (MemTotal) at [`CLAUDE_MB`] a
/// claude, at least 1. MemTotal, not MemAvailable: what is available shrinks as our own
/// claudes start, and the cap would then fall under load.
pub fn default_max_claudes() -> usize {
    // In one read (`std::fs::read_to_string` takes eight for it: see `read_proc_bytes`).
    let total_kb = crate::sys::proc::read_proc("/proc/meminfo").and_then(|text| mem_total_kb(&text));
    match total_kb {
        Some(kb) => cap_for_memory(kb),
        None => FALLBACK_MAX,
    }
}

fn mem_total_kb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Half of `total_kb` at [`CLAUDE_MB`] a claude, at least 1.
fn cap_for_memory(total_kb: u64) -> usize {
    let claudes = total_kb / 2 / (CLAUDE_MB * 1000);
    usize::try_from(claudes).unwrap_or(usize::MAX).max(1)
}

/// What a process that is behind gets: refused (default), or let through with the missed
/// turns as a note (`CLAWSESS_BEHIND=note`, v1's behaviour, which forks the conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    Refuse,
    Note,
}

impl Behind {
    /// `$CLAWSESS_BEHIND`, else the config file's `behind`, else refuse.
    pub fn from_env() -> Behind {
        file_or_defaults().behind().map(|b| b.value).unwrap_or_else(|err| {
            eprintln!("clawsess: {err:#}; refusing");
            Behind::Refuse
        })
    }
}

/// Where a value in force comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag of this run.
    Flag(&'static str),
    Env(&'static str),
    File {
        path: PathBuf,
        line: usize,
    },
    /// `clawsess set --key K`.
    Key(Key),
    /// `clawsess set SESSION`.
    Session(SessionId),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::File { path, line } => write!(f, "{}:{line}", crate::sys::tilde(path)),
            Origin::Key(key) => write!(f, "set --key {key}"),
            Origin::Session(id) => write!(f, "set {}", id.short()),
            Origin::Default => f.write_str("default"),
        }
    }
}

impl Origin {
    /// `{"from": "env", "var": ...}`, `{"from": "file", "path", "line"}`, `{"from": "key",
    /// "key"}`, `{"from": "session", "session"}`, `{"from": "flag", "flag"}`,
    /// `{"from": "default"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Origin::Flag(flag) => json!({"from": "flag", "flag": flag}),
            Origin::Env(var) => json!({"from": "env", "var": var}),
            Origin::File { path, line } => json!({"from": "file", "path": path, "line": line}),
            Origin::Key(key) => json!({"from": "key", "key": key.as_str()}),
            Origin::Session(id) => json!({"from": "session", "session": id.as_str()}),
            Origin::Default => json!({"from": "default"}),
        }
    }
}

/// A value in force and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> InForce<T> {
    fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }
}

/// The config file as read: every value it sets, checked, with its line.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Whether the file exists (a missing file is no error: everything is default).
    pub found: bool,
    claude: Option<(PathBuf, usize)>,
    warm: Option<(Duration, usize)>,
    warm_max: Option<(usize, usize)>,
    max_claudes: Option<(usize, usize)>,
    turn_wait: Option<(Duration, usize)>,
    behind: Option<(Behind, usize)>,
    idle_reset: Option<(Policy, usize)>,
    prune_every: Option<(Duration, usize)>,
    reset: Vec<Policy>,
}

/// The file exactly as written; every key it may hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    claude: Option<Spanned<String>>,
    warm: Option<Spanned<String>>,
    warm_max: Option<Spanned<i64>>,
    max_claudes: Option<Spanned<i64>>,
    turn_wait: Option<Spanned<toml::Value>>,
    behind: Option<Spanned<String>>,
    idle_reset: Option<Spanned<String>>,
    prune_every: Option<Spanned<String>>,
    #[serde(default)]
    reset: Vec<Spanned<RawPolicy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    key: Spanned<String>,
    mode: Spanned<String>,
    idle: Option<Spanned<String>>,
    daily_at: Option<Spanned<String>>,
}

/// The config file's path: `$CLAWSESS_CONFIG`, else `$XDG_CONFIG_HOME/clawsess/config.toml`,
/// else `~/.config/clawsess/config.toml`.
pub fn path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => {
            let home = directories::BaseDirs::new().context("could not find the home directory")?;
            home.home_dir().join(".config")
        }
    };
    Ok(base.join("clawsess").join("config.toml"))
}

static LOADED: OnceLock<std::result::Result<ConfigFile, String>> = OnceLock::new();

/// The config file (read once per process); an error names the file and the line.
pub fn file() -> Result<&'static ConfigFile> {
    let read = || {
        let path = path()?;
        let file = load(&path)?;
        if !file.found && std::env::var_os(CONFIG_ENV).is_some_and(|p| !p.is_empty()) {
            bail!("{CONFIG_ENV}={}: no such file", path.display());
        }
        Ok(file)
    };
    LOADED.get_or_init(|| read().map_err(|err: anyhow::Error| format!("{err:#}"))).as_ref().map_err(|err| {
        anyhow!("{err}; fix it, or point {CONFIG_ENV} at another file (see `clawsess config`)")
    })
}

/// The config file for a hook: one that cannot be read is said on stderr (once) and the
/// defaults are used, so that a broken file never breaks Claude Code.
pub fn file_or_defaults() -> &'static ConfigFile {
    static EMPTY: OnceLock<ConfigFile> = OnceLock::new();
    match file() {
        Ok(file) => file,
        Err(err) => EMPTY.get_or_init(|| {
            eprintln!(
                "clawsess: {}; going on with the defaults",
                crate::sys::printable(&format!("{err:#}"), false)
            );
            ConfigFile::default()
        }),
    }
}

/// Reads and checks the config file at `path` (missing: every value default).
pub fn load(path: &Path) -> Result<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigFile { path: path.to_path_buf(), ..ConfigFile::default() });
        }
        Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
    };
    parse(path, &text)
}

/// Checks the text of a config file; errors say `path:line: what`.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile> {
    let at = Lines { path, text };
    let raw: Raw = toml::from_str(text).map_err(|err| {
        let line = err.span().map_or(String::new(), |span| format!(":{}", at.line(&span)));
        anyhow!("{}{line}: {}", path.display(), err.message().trim_end())
    })?;
    let claude = |t: &str| {
        if t.trim().is_empty() { bail!("empty: give a path or a command name") } else { Ok(PathBuf::from(t)) }
    };
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        found: true,
        claude: at.check(raw.claude, "claude", claude)?,
        warm: at.check(raw.warm, "warm", crate::sys::parse_duration_or_off)?,
        behind: at.check(raw.behind, "behind", parse_behind)?,
        prune_every: at.check(raw.prune_every, "prune_every", crate::sys::parse_duration_or_off)?,
        ..ConfigFile::default()
    };
    if let Some(idle) = raw.idle_reset {
        let policy = Policy::idle(idle.get_ref(), at.origin(&idle.span()));
        file.idle_reset = Some((at.checked(&idle.span(), "idle_reset", policy)?, at.line(&idle.span())));
    }
    if let Some(max) = raw.warm_max {
        let n = usize::try_from(*max.get_ref()).ok().filter(|&n| n >= 1);
        let n = n.context("give a number of processes, 1 or more");
        file.warm_max = Some((at.checked(&max.span(), "warm_max", n)?, at.line(&max.span())));
    }
    if let Some(max) = raw.max_claudes {
        let n = usize::try_from(*max.get_ref()).ok().filter(|&n| n >= 1);
        let n = n.context("give a number of processes, 1 or more");
        file.max_claudes = Some((at.checked(&max.span(), "max_claudes", n)?, at.line(&max.span())));
    }
    if let Some(wait) = raw.turn_wait {
        let parsed = match wait.get_ref() {
            toml::Value::Integer(n) => crate::sys::parse_wait(&n.to_string()),
            toml::Value::Float(n) => crate::sys::parse_wait(&n.to_string()),
            toml::Value::String(s) => crate::sys::parse_wait(s),
            _ => Err(anyhow!("give a number of seconds")),
        };
        file.turn_wait = Some((at.checked(&wait.span(), "turn_wait", parsed)?, at.line(&wait.span())));
    }
    file.reset = raw.reset.into_iter().map(|rule| at.rule(rule)).collect::<Result<_>>()?;
    if let (Some((_, idle_line)), Some(first)) = (&file.idle_reset, file.reset.first()) {
        let Origin::File { line: rule_line, .. } = &first.origin else { unreachable!() };
        bail!(
            "{}:{idle_line}: idle_reset and [[reset]] rules (line {rule_line}) both say when sessions \
             reset: keep one (idle_reset = \"12h\" is [[reset]] key = \"*\", mode = \"idle\", idle = \"12h\")",
            path.display()
        );
    }
    Ok(file)
}

/// Lines of a config file's text, for errors and origins.
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

type Span = std::ops::Range<usize>;

impl Lines<'_> {
    fn line(&self, span: &Span) -> usize {
        self.text[..span.start.min(self.text.len())].matches('\n').count() + 1
    }

    fn origin(&self, span: &Span) -> Origin {
        Origin::File { path: self.path.to_path_buf(), line: self.line(span) }
    }

    /// `result`, its error said as `path:line: what: error`.
    fn checked<T>(&self, span: &Span, what: &str, result: Result<T>) -> Result<T> {
        result.map_err(|err| anyhow!("{}:{}: {what}: {err:#}", self.path.display(), self.line(span)))
    }

    /// A string value checked by `check`, with its line.
    fn check<T>(
        &self,
        value: Option<Spanned<String>>,
        what: &str,
        check: impl Fn(&str) -> Result<T>,
    ) -> Result<Option<(T, usize)>> {
        let Some(value) = value else { return Ok(None) };
        let span = value.span();
        Ok(Some((self.checked(&span, what, check(value.get_ref()))?, self.line(&span))))
    }

    /// One `[[reset]]` rule.
    fn rule(&self, rule: Spanned<RawPolicy>) -> Result<Policy> {
        let span = rule.span();
        let rule = rule.into_inner();
        let pattern = self.checked(&rule.key.span(), "key", policy::parse_pattern(rule.key.get_ref()))?;
        let mode = match (rule.mode.get_ref().as_str(), &rule.idle, &rule.daily_at) {
            ("off", None, None) => Mode::Off,
            ("idle", Some(idle), None) => {
                let limit = self.checked(&idle.span(), "idle", crate::sys::parse_duration(idle.get_ref()))?;
                Mode::Idle(limit, idle.get_ref().trim().to_owned())
            }
            ("daily", None, None) => Mode::Daily(jiff::civil::Time::new(4, 0, 0, 0)?),
            ("daily", None, Some(at)) => {
                Mode::Daily(self.checked(&at.span(), "daily_at", policy::parse_time_of_day(at.get_ref()))?)
            }
            ("off" | "idle" | "daily", ..) => {
                let why = "mode \"off\" takes no idle or daily_at, \"idle\" needs idle = \"72h\", \"daily\" \
                           takes daily_at = \"04:00\"";
                return self.checked(&span, "reset", Err(anyhow!(why)));
            }
            (other, ..) => {
                let why = anyhow!("{other:?} is not a reset mode: off, idle or daily");
                return self.checked(&rule.mode.span(), "mode", Err(why));
            }
        };
        Ok(Policy { pattern, mode, origin: self.origin(&span) })
    }
}

fn parse_behind(text: &str) -> Result<Behind> {
    match text.trim() {
        "refuse" => Ok(Behind::Refuse),
        "note" => Ok(Behind::Note),
        other => bail!("{other:?} is neither \"refuse\" nor \"note\""),
    }
}

/// The `claude` to run: `explicit`, else `$CLAWSESS_CLAUDE`, else the config file's `claude`,
/// else `claude` on PATH.
pub fn find_claude(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return which::which(path)
            .with_context(|| format!("--claude {} is not an executable", path.display()));
    }
    if let Some(path) = std::env::var_os(CLAUDE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return which::which(&path)
            .with_context(|| format!("{CLAUDE_ENV}={} is not an executable", path.display()));
    }
    if let Some(path) = file()?.claude_in_file() {
        return which::which(&path.value)
            .with_context(|| format!("claude = {:?} ({}) is not an executable", path.value, path.origin));
    }
    which::which("claude").map_err(|_| {
        anyhow::anyhow!(
            "could not find claude: pass --claude PATH, set CLAWSESS_CLAUDE, or put claude on PATH \
             (npm install -g @anthropic-ai/claude-code)"
        )
    })
}

/// `$VAR` when set and not empty, parsed; a bad value is an error naming the variable.
fn from_env<T>(var: &'static str, parse: impl Fn(&str) -> Result<T>) -> Result<Option<InForce<T>>> {
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => {
            let value = parse(&text).with_context(|| format!("{var}={text:?}"))?;
            Ok(Some(InForce::new(value, Origin::Env(var))))
        }
        _ => Ok(None),
    }
}

/// A number of processes in an environment variable: 1 or more.
fn parse_processes(text: &str) -> Result<usize> {
    text.trim().parse::<usize>().ok().filter(|&n| n >= 1).context("give a number of processes, 1 or more")
}

impl ConfigFile {
    fn origin(&self, line: usize) -> Origin {
        Origin::File { path: self.path.clone(), line }
    }

    fn in_file<T: Clone>(&self, value: &Option<(T, usize)>) -> Option<InForce<T>> {
        value.as_ref().map(|(v, line)| InForce::new(v.clone(), self.origin(*line)))
    }

    /// The claude executable named by `CLAWSESS_CLAUDE` or the file (`None`: on PATH).
    pub fn claude(&self) -> Result<Option<InForce<PathBuf>>> {
        Ok(from_env(CLAUDE_ENV, |t| Ok(PathBuf::from(t)))?.or_else(|| self.in_file(&self.claude)))
    }

    /// The claude executable the file names (`claude = ...`).
    pub fn claude_in_file(&self) -> Option<InForce<PathBuf>> {
        self.in_file(&self.claude)
    }

    /// How long claude stays warm after a turn, before any key's or session's setting.
    pub fn warm(&self) -> Result<InForce<Duration>> {
        let found = from_env(WARM_ENV, crate::sys::parse_duration_or_off)?;
        Ok(found
            .or_else(|| self.in_file(&self.warm))
            .unwrap_or(InForce::new(Duration::ZERO, Origin::Default)))
    }

    /// At most this many warm claudes.
    pub fn warm_max(&self) -> Result<InForce<usize>> {
        let found = from_env(WARM_MAX_ENV, parse_processes)?;
        Ok(found
            .or_else(|| self.in_file(&self.warm_max))
            .unwrap_or(InForce::new(DEFAULT_WARM_MAX, Origin::Default)))
    }

    /// At most this many claude processes started by clawsess at once (see `turn::cap`).
    pub fn max_claudes(&self) -> Result<InForce<usize>> {
        let found = from_env(MAX_CLAUDES_ENV, parse_processes)?;
        Ok(found
            .or_else(|| self.in_file(&self.max_claudes))
            .unwrap_or_else(|| InForce::new(default_max_claudes(), Origin::Default)))
    }

    /// How long a terminal's prompt waits for another surface's turn.
    pub fn turn_wait(&self) -> Result<InForce<Duration>> {
        let found = from_env(TURN_WAIT_ENV, crate::sys::parse_wait)?;
        Ok(found
            .or_else(|| self.in_file(&self.turn_wait))
            .unwrap_or(InForce::new(DEFAULT_TURN_WAIT, Origin::Default)))
    }

    /// What a claude process that is behind gets.
    pub fn behind(&self) -> Result<InForce<Behind>> {
        let found = from_env(BEHIND_ENV, parse_behind)?;
        Ok(found
            .or_else(|| self.in_file(&self.behind))
            .unwrap_or(InForce::new(Behind::Refuse, Origin::Default)))
    }

    /// How often the state dir is pruned by itself ([`Duration::ZERO`]: never).
    pub fn prune_every(&self) -> Result<InForce<Duration>> {
        let found = from_env(PRUNE_EVERY_ENV, crate::sys::parse_duration_or_off)?;
        Ok(found
            .or_else(|| self.in_file(&self.prune_every))
            .unwrap_or(InForce::new(DEFAULT_PRUNE_EVERY, Origin::Default)))
    }

    /// The reset policies in order (first match wins; no match: off). `CLAWSESS_IDLE_RESET`
    /// is one policy for every key and replaces the file's.
    pub fn reset_policies(&self) -> Result<Vec<Policy>> {
        if let Some(idle) = from_env(IDLE_RESET_ENV, |t| Policy::idle(t, Origin::Env(IDLE_RESET_ENV)))? {
            return Ok(vec![idle.value]);
        }
        if let Some((idle, _)) = &self.idle_reset {
            return Ok(vec![idle.clone()]);
        }
        Ok(self.reset.clone())
    }
}

/// The reset policy of `key` (`None`: off): `--idle-reset` (given as `flag`), else the first
/// matching one of the config (see [`ConfigFile::reset_policies`]).
pub fn reset_policy(file: &ConfigFile, key: &Key, flag: Option<Duration>) -> Result<Option<Policy>> {
    if let Some(limit) = flag {
        let written = crate::sys::human_duration(limit);
        return Ok(Some(Policy::every_key(Mode::Idle(limit, written), Origin::Flag("--idle-reset"))));
    }
    let policies = file.reset_policies()?;
    Ok(policy::policy_for(&policies, key.as_str()).filter(|p| p.mode != Mode::Off).cloned())
}

/// One value in force for `clawsess config`: its name, as text, as JSON, and its origin.
pub type Row = (&'static str, String, Value, Origin);

/// Everything in force outside keys and sessions, for `clawsess config`, and the reset
/// policies.
pub fn overview(file: &ConfigFile) -> Result<(Vec<Row>, Vec<Policy>)> {
    let mut rows = Vec::new();
    let home = crate::store::Store::open()?;
    let home_origin = if std::env::var_os("CLAWSESS_HOME").is_some_and(|d| !d.is_empty()) {
        Origin::Env("CLAWSESS_HOME")
    } else {
        Origin::Default
    };
    rows.push(("home", crate::sys::tilde(home.dir()), json!(home.dir()), home_origin));
    match file.claude()? {
        Some(c) => rows.push(("claude", crate::sys::tilde(&c.value), json!(c.value), c.origin)),
        None => rows.push(("claude", "claude on PATH".into(), Value::Null, Origin::Default)),
    }
    let warm = file.warm()?;
    let warm_text = if warm.value.is_zero() { "off".into() } else { crate::sys::human_duration(warm.value) };
    rows.push(("warm", warm_text.clone(), json!(warm_text), warm.origin));
    let max = file.warm_max()?;
    rows.push(("warm_max", max.value.to_string(), json!(max.value), max.origin));
    let max = file.max_claudes()?;
    rows.push(("max_claudes", max.value.to_string(), json!(max.value), max.origin));
    let wait = file.turn_wait()?;
    rows.push((
        "turn_wait",
        format!("{} s", wait.value.as_secs_f64()),
        json!(wait.value.as_secs_f64()),
        wait.origin,
    ));
    let behind = file.behind()?;
    let behind_text = if behind.value == Behind::Note { "note" } else { "refuse" };
    rows.push(("behind", behind_text.into(), json!(behind_text), behind.origin));
    let every = file.prune_every()?;
    let every_text =
        if every.value.is_zero() { "off".into() } else { crate::sys::human_duration(every.value) };
    rows.push(("prune_every", every_text.clone(), json!(every_text), every.origin));
    Ok((rows, file.reset_policies()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ConfigFile> {
        parse(Path::new("/etc/c.toml"), text)
    }

    #[test]
    fn the_default_is_half_the_memory_at_600_mb_a_claude_and_at_least_one() {
        assert_eq!(mem_total_kb("MemTotal:       24683792 kB\nMemFree: 1 kB\n"), Some(24_683_792));
        assert_eq!(cap_for_memory(24_683_792), 20);
        assert_eq!(cap_for_memory(8_000_000), 6);
        assert_eq!(cap_for_memory(1_000_000), 1);
        assert_eq!(cap_for_memory(0), 1);
        assert!(default_max_claudes() >= 1);
    }

    #[test]
    fn every_value_says_its_line() {
        let file = parse_text(
            "# comment\nwarm = \"10m\"\nwarm_max = 2\nturn_wait = 30\nbehind = \"note\"\n\n[[reset]]\nkey = \"telegram:*\"\nmode = \"off\"\n\n[[reset]]\nkey = \"*\"\nmode = \"daily\"\ndaily_at = \"04:30\"\n",
        )
        .unwrap();
        let at = |line| Origin::File { path: "/etc/c.toml".into(), line };
        assert_eq!(file.warm, Some((Duration::from_secs(600), 2)));
        assert_eq!(file.warm_max, Some((2, 3)));
        assert_eq!(file.turn_wait, Some((Duration::from_secs(30), 4)));
        assert_eq!(file.behind, Some((Behind::Note, 5)));
        let every = parse_text("prune_every = \"12h\"\n").unwrap();
        assert_eq!(every.prune_every, Some((Duration::from_secs(12 * 3600), 1)));
        let off = parse_text("prune_every = \"off\"\n").unwrap();
        assert_eq!(off.prune_every().unwrap().value, Duration::ZERO);
        assert_eq!(file.reset.len(), 2);
        assert_eq!(
            (file.reset[0].pattern.as_str(), &file.reset[0].mode, &file.reset[0].origin),
            ("telegram:*", &Mode::Off, &at(7))
        );
        assert_eq!(file.reset[1].mode.to_string(), "daily 04:30");
        assert_eq!(at(2).to_string(), "/etc/c.toml:2");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_line() {
        let cases = [
            ("warm = \"10m\"\ncolour = \"red\"\n", "/etc/c.toml:2: unknown field `colour`"),
            ("warm = \"soon\"\n", "/etc/c.toml:1: warm: \"soon\" is not a duration"),
            ("warm_max = 0\n", "/etc/c.toml:1: warm_max"),
            ("turn_wait = \"x\"\n", "/etc/c.toml:1: turn_wait"),
            ("behind = \"yes\"\n", "/etc/c.toml:1: behind"),
            ("prune_every = \"often\"\n", "/etc/c.toml:1: prune_every"),
            ("\n[[reset]]\nkey = \"a b\"\nmode = \"off\"\n", "/etc/c.toml:3: key"),
            (
                "[[reset]]\nkey = \"*\"\nmode = \"weekly\"\n",
                "/etc/c.toml:3: mode: \"weekly\" is not a reset mode",
            ),
            ("[[reset]]\nkey = \"*\"\nmode = \"idle\"\n", "/etc/c.toml:1: reset: mode"),
            ("[[reset]]\nkey = \"*\"\nmode = \"daily\"\ndaily_at = \"25:00\"\n", "/etc/c.toml:4: daily_at"),
            ("[[reset]]\nkey = \"*\"\nmode = \"off\"\nidle = \"1h\"\n", "/etc/c.toml:1: reset"),
            (
                "idle_reset = \"1h\"\n[[reset]]\nkey = \"*\"\nmode = \"off\"\n",
                "/etc/c.toml:1: idle_reset and [[reset]]",
            ),
            ("warm = \n", "/etc/c.toml:1: "),
            ("[[reset]]\nmode = \"off\"\n", "missing field `key`"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse_text(text).err().unwrap_or_else(|| panic!("{text:?} parsed")));
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_every_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = load(&dir.path().join("none.toml")).unwrap();
        assert!(!file.found && file.reset.is_empty() && file.warm.is_none());
    }
}
