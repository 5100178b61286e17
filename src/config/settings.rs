//! Settings per key or session (`clawsess set`): model, effort, permission mode, cwd of new
//! sessions, warm duration. Every `run` passes them to claude as its flags; `-A` with the same
//! flag wins for that run. A key's setting wins over its session's (the chat chose it; the
//! session's are the default of whoever talks to it), and stays with the key when its
//! session resets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::{ConfigFile, InForce, Origin, Policy};
use crate::ident::{Key, SessionId};
use crate::store::{Settings, SettingsOf, Store};

/// Every setting's name, in the order they are shown.
pub const NAMES: [&str; 5] = ["model", "effort", "permission_mode", "cwd", "warm"];

/// `--effort` levels of Claude Code 2.1.328.
pub const EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

/// `--permission-mode` choices of Claude Code 2.1.328 (`manual` is `default` before it).
pub const PERMISSION_MODES: [&str; 7] =
    ["acceptEdits", "auto", "bypassPermissions", "manual", "default", "dontAsk", "plan"];

/// Sets `name` to `value` in `settings`, checked (`of` says whose: `cwd` is a key's only).
pub fn assign(settings: &mut Settings, of: &SettingsOf, name: &str, value: &str) -> Result<()> {
    let value = value.trim();
    match name {
        "model" => settings.model = Some(check_model(value)?),
        "effort" => settings.effort = Some(one_of(value, &EFFORTS, "effort")?),
        "permission_mode" => {
            settings.permission_mode = Some(one_of(value, &PERMISSION_MODES, "permission_mode")?)
        }
        "cwd" => {
            if let SettingsOf::Session(id) = of {
                bail!(
                    "cwd is where a key's new sessions start; session {} keeps the dir it was started in",
                    id.short()
                );
            }
            let dir = Path::new(value);
            let dir = dir.canonicalize().with_context(|| format!("cwd={value}: no such directory"))?;
            if !dir.is_dir() {
                bail!("cwd={value} is not a directory");
            }
            settings.cwd = Some(dir);
        }
        "warm" => {
            crate::sys::parse_duration_or_off(value).context("warm")?;
            settings.warm = Some(value.to_owned());
        }
        other => bail!("{other:?} is not a setting: {}", NAMES.join(", ")),
    }
    Ok(())
}

/// Unsets `name` in `settings`.
pub fn unassign(settings: &mut Settings, name: &str) -> Result<()> {
    match name {
        "model" => settings.model = None,
        "effort" => settings.effort = None,
        "permission_mode" => settings.permission_mode = None,
        "cwd" => settings.cwd = None,
        "warm" => settings.warm = None,
        other => bail!("{other:?} is not a setting: {}", NAMES.join(", ")),
    }
    Ok(())
}

/// The settings as (name, value) pairs, in [`NAMES`] order.
pub fn pairs(settings: &Settings) -> Vec<(&'static str, String)> {
    let cwd = settings.cwd.as_ref().map(|p| p.display().to_string());
    let values = [&settings.model, &settings.effort, &settings.permission_mode, &cwd, &settings.warm];
    NAMES.iter().zip(values).filter_map(|(n, v)| v.clone().map(|v| (*n, v))).collect()
}

fn check_model(value: &str) -> Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._:/@[]-".contains(c);
    if value.is_empty() || value.len() > 200 || value.starts_with('-') || !value.chars().all(ok) {
        bail!("model={value:?} is not a model name or alias (like opus, sonnet, claude-opus-4-1)");
    }
    Ok(value.to_owned())
}

fn one_of(value: &str, choices: &[&str], name: &str) -> Result<String> {
    match choices.iter().find(|c| **c == value) {
        Some(c) => Ok((*c).to_owned()),
        None => bail!("{name}={value:?} is not one of {}", choices.join(", ")),
    }
}

/// A key's and its session's settings, merged: the key's win.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub key: Option<(Key, Settings)>,
    pub session: Option<(SessionId, Settings)>,
}

impl Merged {
    pub fn read(store: &Store, key: Option<&Key>, session: Option<&SessionId>) -> Result<Self> {
        let key = match key {
            Some(k) => store.settings(&SettingsOf::Key(k.clone()))?.map(|r| (k.clone(), r.settings)),
            None => None,
        };
        let session = match session {
            Some(id) => store.settings(&SettingsOf::Session(id.clone()))?.map(|r| (id.clone(), r.settings)),
            None => None,
        };
        Ok(Self { key, session })
    }

    /// One setting in force, and whose it is.
    fn get<T: Clone>(&self, field: impl Fn(&Settings) -> &Option<T>) -> Option<InForce<T>> {
        let from_key = self
            .key
            .as_ref()
            .and_then(|(k, s)| field(s).clone().map(|v| InForce::new(v, Origin::Key(k.clone()))));
        from_key.or_else(|| {
            self.session
                .as_ref()
                .and_then(|(id, s)| field(s).clone().map(|v| InForce::new(v, Origin::Session(id.clone()))))
        })
    }

    /// The key's cwd for a new session.
    pub fn cwd(&self) -> Option<PathBuf> {
        self.key.as_ref().and_then(|(_, s)| s.cwd.clone())
    }

    /// claude's flags for these settings, leaving out any flag `over` (the run's `-A`
    /// arguments) gives itself.
    pub fn claude_args(&self, over: &[String]) -> Vec<String> {
        let given = |flag: &str| {
            over.iter().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
        };
        let mut args = Vec::new();
        for (flag, value) in [
            ("--model", self.get(|s| &s.model)),
            ("--effort", self.get(|s| &s.effort)),
            ("--permission-mode", self.get(|s| &s.permission_mode)),
        ] {
            if let Some(value) = value.filter(|_| !given(flag)) {
                args.extend([flag.to_owned(), value.value]);
            }
        }
        args
    }

    /// How long claude stays warm after the turn: `flag` (`--warm`), else these settings,
    /// else `CLAWSESS_WARM`, else the config file, else off.
    pub fn warm(&self, file: &ConfigFile, flag: Option<Duration>) -> Result<InForce<Duration>> {
        if let Some(warm) = flag {
            return Ok(InForce::new(warm, Origin::Flag("--warm")));
        }
        match self.get(|s| &s.warm) {
            Some(text) => {
                let warm = crate::sys::parse_duration_or_off(&text.value)
                    .with_context(|| format!("warm={} ({})", text.value, text.origin))?;
                Ok(InForce::new(warm, text.origin))
            }
            None => file.warm(),
        }
    }
}

/// What a `run` of `key` takes from the config and the settings, in two steps: before the
/// session is known (the reset policy, a new session's cwd), then for it (claude's flags,
/// warm).
pub struct RunConfig<'a> {
    file: &'a ConfigFile,
    key: Key,
    pub policy: Option<Policy>,
    /// The key's `cwd` setting.
    pub cwd: Option<PathBuf>,
}

/// What the run passes to claude on `session`.
pub struct ForSession {
    /// The settings' flags, then the run's `-A` arguments.
    pub claude_args: Vec<String>,
    pub warm: Duration,
}

impl<'a> RunConfig<'a> {
    /// `file` (the config file, read by the caller) and `key`'s settings; `idle_reset` is
    /// `--idle-reset`.
    pub fn for_key(
        store: &Store,
        file: &'a ConfigFile,
        key: &Key,
        idle_reset: Option<Duration>,
    ) -> Result<Self> {
        let policy = super::reset_policy(file, key, idle_reset)?;
        let merged = Merged::read(store, Some(key), None)?;
        Ok(Self { file, key: key.clone(), policy, cwd: merged.cwd() })
    }

    /// claude's arguments and the warm duration for a turn on `session`.
    pub fn for_session(
        &self,
        store: &Store,
        session: &SessionId,
        extra: &[String],
        warm: Option<Duration>,
    ) -> Result<ForSession> {
        let merged = Merged::read(store, Some(&self.key), Some(session))?;
        let mut claude_args = merged.claude_args(extra);
        claude_args.extend(extra.iter().cloned());
        Ok(ForSession { claude_args, warm: merged.warm(self.file, warm)?.value })
    }
}

/// The settings in force for a key's or a session's next run and where each comes from, the
/// reset policy and when the session resets next (for `status` and `session_status`).
#[derive(Debug, Clone)]
pub struct SettingsInForce {
    /// (name, value, origin) of each setting that is set, and `warm` always.
    pub values: Vec<(&'static str, String, Origin)>,
    /// The key's reset policy (`None`: off, or no key).
    pub reset: Option<Policy>,
    /// When the key's own session resets at its next run (`None`: never, or not the key's own).
    pub next_reset: Option<Timestamp>,
}

/// What is in force for `key`'s next run (`clawsess status --key K`, `session_status` of a
/// caller's key): the session it resolves to, whose settings apply too, and when that session
/// resets if it is the key's own.
pub fn for_key(store: &Store, key: &Key) -> Result<SettingsInForce> {
    let found = crate::resolve::resolve(store, key)?;
    let session = found.as_ref().map(|f| f.session.clone());
    let own_last_active = match &found {
        Some(f) if f.via == crate::resolve::Via::Own => store.session(&f.session)?.map(|r| r.last_seen),
        _ => None,
    };
    in_force(store, Some(key), session.as_ref(), own_last_active)
}

/// See [`SettingsInForce`]. `key`: whose turn it would be; `session`: the session it would run
/// on; `own_last_active`: when `session` was last active (Unix ms) if it is `key`'s own
/// session (attached ones never reset by policy).
pub fn in_force(
    store: &Store,
    key: Option<&Key>,
    session: Option<&SessionId>,
    own_last_active: Option<u64>,
) -> Result<SettingsInForce> {
    let file = super::file()?;
    let merged = Merged::read(store, key, session)?;
    let mut values = Vec::new();
    for (name, value) in [
        ("model", merged.get(|s| &s.model)),
        ("effort", merged.get(|s| &s.effort)),
        ("permission_mode", merged.get(|s| &s.permission_mode)),
    ] {
        values.extend(value.map(|v| (name, v.value, v.origin)));
    }
    if let Some(cwd) = merged.key.as_ref().and_then(|(k, s)| s.cwd.clone().map(|c| (k, c))) {
        values.push(("cwd", cwd.1.display().to_string(), Origin::Key(cwd.0.clone())));
    }
    let warm = merged.warm(file, None)?;
    let warm_text = if warm.value.is_zero() { "off".into() } else { crate::sys::human_duration(warm.value) };
    values.push(("warm", warm_text, warm.origin));
    let reset = match key {
        Some(key) => super::reset_policy(file, key, None)?,
        None => None,
    };
    let next_reset = match (&reset, own_last_active) {
        (Some(policy), Some(ms)) => {
            let last =
                Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX);
            policy.next_reset(last, &jiff::tz::TimeZone::system())
        }
        _ => None,
    };
    Ok(SettingsInForce { values, reset, next_reset })
}

impl SettingsInForce {
    /// `{"settings": {NAME: {"value", "from"...}}, "reset": {"key", "mode", "from"...} | null,
    /// "next_reset": RFC 3339 | null}`.
    pub fn to_json(&self) -> Value {
        let mut settings = Map::new();
        for (name, value, origin) in &self.values {
            let mut entry = origin.to_json();
            entry["value"] = json!(value);
            settings.insert((*name).to_owned(), entry);
        }
        json!({
            "settings": settings,
            "reset": self.reset.as_ref().map(policy_json),
            "next_reset": self.next_reset.map(|t| t.to_string()),
        })
    }
}

/// `{"key": PATTERN, "mode": "idle 72h", "from"...}`.
pub fn policy_json(policy: &Policy) -> Value {
    let mut entry = policy.origin.to_json();
    entry["key"] = json!(policy.pattern);
    entry["mode"] = json!(policy.mode.to_string());
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::parse("telegram:1").unwrap()
    }

    #[test]
    fn settings_are_checked_when_set() {
        let of = SettingsOf::Key(key());
        let mut s = Settings::default();
        assign(&mut s, &of, "model", "claude-opus-4-1[1m]").unwrap();
        assign(&mut s, &of, "effort", "high").unwrap();
        assign(&mut s, &of, "warm", "10m").unwrap();
        assert!(assign(&mut s, &of, "model", "--dangerously-skip-permissions").is_err());
        assert!(assign(&mut s, &of, "effort", "extreme").is_err());
        assert!(assign(&mut s, &of, "permission_mode", "yolo").is_err());
        assert!(assign(&mut s, &of, "warm", "soon").is_err());
        assert!(assign(&mut s, &of, "colour", "red").unwrap_err().to_string().contains("not a setting"));
        let session = SettingsOf::Session(SessionId::new_random());
        assert!(assign(&mut s, &session, "cwd", "/").unwrap_err().to_string().contains("cwd"));
        assert_eq!(
            pairs(&s),
            [("model", "claude-opus-4-1[1m]".into()), ("effort", "high".into()), ("warm", "10m".into())]
        );
    }

    #[test]
    fn key_settings_win_over_the_session_and_dash_a_over_both() {
        let id = SessionId::new_random();
        let merged = Merged {
            key: Some((key(), Settings { model: Some("opus".into()), ..Settings::default() })),
            session: Some((
                id,
                Settings { model: Some("haiku".into()), effort: Some("low".into()), ..Settings::default() },
            )),
        };
        assert_eq!(merged.claude_args(&[]), ["--model", "opus", "--effort", "low"]);
        let over = ["--model=sonnet".to_owned()];
        assert_eq!(merged.claude_args(&over), ["--effort", "low"]);
        let over = ["--effort".to_owned(), "max".to_owned()];
        assert_eq!(merged.claude_args(&over), ["--model", "opus"]);
    }
}
