//! `clawsess doctor`'s checks, as data: each is a level, what was checked and what was seen.
//! The command prints them one a line (`cmd/doctor.rs`); the checks themselves look at the
//! binary, the config, Claude Code's version, hooks, commands and MCP server, and the state
//! dir (and sweep what dead warm keepers left).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::claude::commands::COMMANDS;
use crate::claude::settings::{self, HOOK_ARGS, HookSource};
use crate::claude::{self, versions};
use crate::probe::Report;
use crate::store::{Store, now_ms, parse_json};
use crate::warm;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check: what was checked and what was seen (not yet made printable). In `doctor
/// --json` it is `{"name", "level", "detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    #[serde(rename = "name")]
    pub what: &'static str,
    pub level: Level,
    pub detail: String,
}

/// The checks so far, in the order they were made.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    fn add(&mut self, level: Level, what: &'static str, detail: impl AsRef<str>) {
        self.0.push(Check { level, what, detail: detail.as_ref().to_owned() });
    }

    /// Whether any check failed (`doctor` then exits 1).
    pub fn failed(&self) -> bool {
        self.0.iter().any(|c| c.level == Level::Fail)
    }

    /// `doctor --json`'s document: `{"ok", "checks": [{"name", "level", "detail"}]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "ok": !self.failed(), "checks": self.0 })
    }
}

/// Every check of `clawsess doctor`, into `r`. Only a Claude Code config dir that cannot be
/// told is an error: the checks made before it are in `r`.
pub fn check(r: &mut Checks, claude_dir: Option<&Path>) -> Result<()> {
    match which::which("clawsess") {
        Ok(path) => r.add(Level::Ok, "binary on PATH", path.display().to_string()),
        Err(_) => r.add(
            Level::Fail,
            "binary on PATH",
            "clawsess is not on PATH; run ./install.sh or add ~/.cargo/bin to PATH",
        ),
    }
    match crate::config::file() {
        Ok(file) if file.found => r.add(Level::Ok, "config file", crate::sys::tilde(&file.path)),
        Ok(file) => {
            r.add(Level::Ok, "config file", format!("none ({} would be read)", crate::sys::tilde(&file.path)))
        }
        Err(err) => r.add(Level::Fail, "config file", format!("{err:#}")),
    }
    match crate::config::find_claude(None) {
        Ok(path) => {
            r.add(Level::Ok, "claude found", path.display().to_string());
            check_version(r, &path);
        }
        Err(err) => r.add(Level::Fail, "claude found", format!("{err:#}")),
    }
    let config = claude::config_dir(claude_dir)?;
    check_hooks(r, &config);
    check_commands(r, &config);
    check_mcp(r, &config);
    match Store::open() {
        Ok(store) => {
            check_state(r, &store);
            check_retention(r, &store, &config);
            check_warm(r, &store);
            check_auto_prune(r, &store);
        }
        Err(err) => r.add(Level::Fail, "state dir", format!("{err:#}")),
    }
    Ok(())
}

/// The lines of `doctor --probe` without `--json`: each of the probe's checks, the summary,
/// and whether it was recorded (and what that does to checkpoint correction).
pub fn probe_checks(report: &Report, recorded: &Result<()>) -> Checks {
    let mut r = Checks::default();
    for c in &report.checks {
        r.add(if c.ok { Level::Ok } else { Level::Fail }, c.name, &c.detail);
    }
    let passed = report.checks.iter().filter(|c| c.ok).count();
    let summary = format!(
        "Claude Code {} ({}): {passed} of {} checks passed in {:.1} s",
        report.version,
        report.claude.display(),
        report.checks.len(),
        report.elapsed_ms as f64 / 1000.0
    );
    r.add(if report.ok { Level::Ok } else { Level::Fail }, "probe", summary);
    match recorded {
        Err(err) => r.add(Level::Warn, "probe recorded", format!("{err:#}")),
        Ok(()) if report.tested => {}
        Ok(()) if report.ok => r.add(
            Level::Ok,
            "checkpoint correction",
            format!(
                "on for {} on this machine (probed good; tested: {})",
                report.version,
                versions::tested_range()
            ),
        ),
        Ok(()) => r.add(
            Level::Warn,
            "checkpoint correction",
            format!("off for {}: it failed the probe (tested: {})", report.version, versions::tested_range()),
        ),
    }
    r
}

/// The warm sessions' keepers (`run --warm`); the sockets and notes dead ones left go.
fn check_warm(r: &mut Checks, store: &Store) {
    let dead = store.warm_notes().unwrap_or_default().into_iter().filter(|n| !warm::keeper_alive(n)).count();
    let live = match warm::keepers(store, true) {
        Ok(live) => live,
        Err(err) => return r.add(Level::Warn, "warm sessions", format!("{err:#}")),
    };
    // Sockets no note names (a keeper killed before it wrote one).
    let orphans = warm::orphan_sockets(store);
    for socket in &orphans {
        let _ = std::fs::remove_file(socket);
    }
    let swept = dead + orphans.len();
    if swept > 0 {
        r.add(Level::Ok, "warm sessions", format!("removed what {swept} dead keepers left"));
    }
    let now = now_ms();
    let max = match warm::max_from_env() {
        Ok(max) => max,
        Err(err) => return r.add(Level::Fail, "warm sessions", format!("{err:#}")),
    };
    if live.is_empty() {
        return r.add(
            Level::Ok,
            "warm sessions",
            format!("none (at most {max}: {})", crate::config::WARM_MAX_ENV),
        );
    }
    for note in &live {
        let health = if warm::claude_alive(note) { "" } else { "; its claude is gone" };
        let hooks = if note.hookless.is_some() { "without hooks" } else { "with hooks" };
        let detail = format!(
            "{} kept by pid {} (claude pid {}, {hooks}), {} turns, idle {} of {}{health}",
            note.session.short(),
            note.keeper,
            note.claude,
            note.turns,
            crate::sys::human_duration(std::time::Duration::from_millis(now.saturating_sub(note.last_used))),
            crate::sys::human_duration(std::time::Duration::from_millis(note.idle_ms)),
        );
        r.add(if health.is_empty() { Level::Ok } else { Level::Warn }, "warm session", detail);
    }
    if live.len() > max {
        r.add(
            Level::Warn,
            "warm sessions",
            format!("{} kept, more than {}={max}", live.len(), crate::config::WARM_MAX_ENV),
        );
    }
}

/// The installed Claude Code's version, whether it is in the supported range, and what
/// clawsess cannot do with it.
fn check_version(r: &mut Checks, claude: &Path) {
    let version = match versions::installed(claude) {
        Ok(v) => v,
        Err(err) => return r.add(Level::Warn, "claude version", format!("{err:#}")),
    };
    if let Some(why) = versions::unusable_reason(version) {
        return r.add(Level::Fail, "claude version", why);
    }
    let range = format!("tested: {}", versions::tested_range());
    if !version.supported() {
        r.add(
            Level::Warn,
            "claude version",
            format!("{version} is below the fully supported range ({range})"),
        );
    } else if version > versions::NEWEST_TESTED {
        r.add(Level::Ok, "claude version", format!("{version} (newer than the tested range; {range})"));
    } else {
        r.add(Level::Ok, "claude version", format!("{version} ({range})"));
    }
    if !version.tested() {
        let store = Store::open();
        match store
            .as_ref()
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| crate::turn::fork::correction_allowed_in(s, Some(version)))
        {
            Ok(()) => r.add(
                Level::Ok,
                "checkpoint correction",
                format!("on: Claude Code {version} passed `clawsess doctor --probe` on this machine"),
            ),
            Err(why) => r.add(Level::Warn, "checkpoint correction", format!("off: {why}")),
        }
    }
    for limit in version.limits() {
        r.add(Level::Warn, "claude version", format!("with {version}, {limit}"));
    }
}

fn check_hooks(r: &mut Checks, config: &Path) {
    let path = settings::path(config);
    if let HookSource { installed, plugin: Some(plugin) } = HookSource::of(config) {
        return match installed {
            0 => r.add(Level::Ok, "hooks installed", format!("by the plugin {plugin}")),
            _ => r.add(
                Level::Fail,
                "hooks installed",
                format!(
                    "twice: by the plugin {plugin} and by `clawsess install` in {}, so every hook \
                     fires twice; run `clawsess uninstall` (the plugin stays)",
                    path.display()
                ),
            ),
        };
    }
    let settings = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Value>(&text),
        Err(_) => {
            return r.add(
                Level::Fail,
                "hooks installed",
                format!("no {}; run `clawsess install`", path.display()),
            );
        }
    };
    let Ok(settings) = settings else {
        return r.add(
            Level::Fail,
            "hooks installed",
            format!("{} does not parse; fix it, then `clawsess install`", path.display()),
        );
    };
    let commands = settings::our_hook_commands(&settings);
    let missing: Vec<&str> = HOOK_ARGS
        .iter()
        .copied()
        .filter(|arg| !commands.iter().any(|c| c.trim_end().ends_with(arg)))
        .collect();
    if !missing.is_empty() {
        return r.add(
            Level::Fail,
            "hooks installed",
            format!("missing {} in {}; run `clawsess install`", missing.join(", "), path.display()),
        );
    }
    if let Some(mismatch) = crate::turn::hooks::wait_mismatch(&settings) {
        r.add(Level::Warn, "turn wait", mismatch);
    }
    let stale: Vec<&&str> = commands.iter().filter(|c| !settings::hook_binary(c).is_file()).collect();
    if stale.is_empty() {
        r.add(Level::Ok, "hooks installed", path.display().to_string());
    } else {
        r.add(
            Level::Fail,
            "hooks installed",
            format!("{} names a binary that is gone; run `clawsess install` again", stale[0]),
        );
    }
}

/// The cross-session tools' MCP server (`clawsess mcp`) in Claude Code's user config: optional
/// (a warning when missing), but one naming a binary that is gone fails.
fn check_mcp(r: &mut Checks, config: &Path) {
    use crate::mcp::register::{claude_json, is_ours, registered};
    let what = "mcp server";
    match registered(config) {
        Ok(Some(entry)) if is_ours(&entry) => {
            let bin = entry.get("command").and_then(Value::as_str).unwrap_or("");
            if Path::new(bin).is_file() {
                r.add(Level::Ok, what, format!("clawsess ({bin} mcp)"));
            } else {
                r.add(Level::Fail, what, format!("{bin} is gone; run `clawsess install` again"));
            }
        }
        Ok(Some(_)) => r.add(Level::Warn, what, "an MCP server named clawsess that is not clawsess's"),
        Ok(None) if let Some(plugin) = HookSource::of(config).plugin => {
            r.add(Level::Ok, what, format!("by the plugin {plugin}"))
        }
        Ok(None) => {
            let file = claude_json(config).map(|p| p.display().to_string()).unwrap_or_default();
            r.add(Level::Warn, what, format!("not in {file}: the cross-session tools are off; `clawsess install` adds it (or the plugin ships it)"))
        }
        Err(err) => r.add(Level::Warn, what, format!("{err:#}")),
    }
}

fn check_commands(r: &mut Checks, config: &Path) {
    if HookSource::of(config).plugin.is_some() {
        return r.add(Level::Ok, "slash commands", "/clawsess:attach, /clawsess:detach, /clawsess:sessions");
    }
    let dir = config.join("commands");
    let missing: Vec<&str> = COMMANDS.iter().map(|(f, _)| *f).filter(|f| !dir.join(f).is_file()).collect();
    if missing.is_empty() {
        r.add(Level::Ok, "slash commands", "/attach, /detach, /sessions");
    } else {
        r.add(
            Level::Warn,
            "slash commands",
            format!("missing {} in {}; run `clawsess install`", missing.join(", "), dir.display()),
        );
    }
}

fn check_state(r: &mut Checks, store: &Store) {
    let dir = store.dir();
    if !dir.exists() {
        return r.add(Level::Ok, "state dir", format!("{} (not created yet)", dir.display()));
    }
    let stale = store.stale_temp_files();
    if !stale.is_empty() {
        let what = format!(
            "{} left by killed writers (e.g. {}); `clawsess prune` removes them",
            stale.len(),
            stale[0].display()
        );
        r.add(Level::Warn, "stale temp files", what);
    }
    for sub in store.subdirs().iter().filter(|d| d.exists()) {
        if let Err(err) = crate::store::check_private_dir(sub) {
            r.add(Level::Fail, "state dir private", format!("{err:#}"));
        }
    }
    let mode = std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    if mode & 0o077 != 0 {
        r.add(
            Level::Warn,
            "state dir private",
            format!("{} is {mode:o}; run chmod 700 on it", dir.display()),
        );
    }
    if on_nfs(dir) {
        r.add(
            Level::Warn,
            "state dir filesystem",
            "NFS: advisory locks may not work there; set CLAWSESS_HOME to a local dir",
        );
    }
    let mut files = vec![dir.join("global.json")];
    for sub in store.subdirs() {
        if let Ok(entries) = std::fs::read_dir(&sub) {
            files.extend(
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")),
            );
        }
    }
    let mut broken = Vec::new();
    for path in &files {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if let Err(err) = parse_json::<Value>(path, &bytes) {
            broken.push(format!("{err:#}"));
        }
    }
    if broken.is_empty() {
        r.add(Level::Ok, "state dir", format!("{} ({} files parse)", dir.display(), files.len()));
    } else {
        for err in &broken {
            r.add(Level::Fail, "state file", err);
        }
        r.add(
            Level::Fail,
            "state dir",
            "to recover, move each broken file aside (mv FILE FILE.broken): clawsess then treats it as \
             absent (a session record comes back at its next start, or with `clawsess import`); \
             a file from a newer clawsess needs that newer version",
        );
    }
    match store.lock(std::time::Duration::from_secs(2)) {
        Ok(_) => {}
        Err(err) => r.add(Level::Fail, "state lock", format!("{err:#}")),
    }
}

/// When the last automatic prune ran, what it did, and when the next is due.
fn check_auto_prune(r: &mut Checks, store: &Store) {
    match auto_prune(store) {
        Ok(status) if status.failed.is_some() => r.add(Level::Warn, "automatic prune", status.human()),
        Ok(status) => r.add(Level::Ok, "automatic prune", status.human()),
        Err(err) => r.add(Level::Warn, "automatic prune", format!("{err:#}")),
    }
}

/// What `doctor --json` says of automatic pruning (its `auto_prune`).
pub fn auto_prune(store: &Store) -> Result<crate::prune::auto::Status> {
    let every = crate::config::file()?.prune_every()?.value;
    crate::prune::auto::status(store, every)
}

fn on_nfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed statfs to fill.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    const NFS_SUPER_MAGIC: i64 = 0x6969;
    rc == 0 && stat.f_type as i64 == NFS_SUPER_MAGIC
}

/// Named or attached sessions that Claude Code's cleanup will delete soon.
fn check_retention(r: &mut Checks, store: &Store, config: &Path) {
    let days = settings::cleanup_period_days(config);
    let Ok((records, _)) = store.sessions() else {
        return;
    };
    let mut kept: Vec<_> = store
        .key_states()
        .map(|(good, _)| good)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.attached.map(|a| a.session))
        .collect();
    kept.extend(store.global().ok().flatten().map(|a| a.session));
    let limit = days * 86_400_000;
    let old: Vec<String> = records
        .iter()
        .filter(|r| r.name.is_some() || kept.contains(&r.id))
        .filter(|r| now_ms().saturating_sub(r.last_seen) > limit.saturating_sub(86_400_000 * 3))
        .map(|r| r.name.as_ref().map_or_else(|| r.id.short().to_owned(), |n| n.to_string()))
        .collect();
    if old.is_empty() {
        r.add(
            Level::Ok,
            "retention",
            format!("no named or attached session near cleanupPeriodDays ({days})"),
        );
    } else {
        r.add(
            Level::Warn,
            "retention",
            format!(
                "{} idle for nearly or over {days} days: Claude Code deletes such transcripts; \
                 raise cleanupPeriodDays in settings.json to keep them",
                old.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Check as ProbeCheck;

    fn levels(r: &Checks) -> Vec<(Level, &'static str)> {
        r.0.iter().map(|c| (c.level, c.what)).collect()
    }

    fn report(ok: bool, tested: bool) -> Report {
        Report {
            claude: "/opt/claude".into(),
            version: "2.1.999".into(),
            tested,
            ok,
            checks: vec![
                ProbeCheck { name: "hooks", ok: true, detail: "fired".into() },
                ProbeCheck { name: "resume", ok, detail: "seen".into() },
            ],
            elapsed_ms: 2500,
        }
    }

    #[test]
    fn a_probe_gives_a_line_each_check_a_summary_and_what_it_does_to_correction() {
        let r = probe_checks(&report(true, false), &Ok(()));
        assert_eq!(
            levels(&r),
            [
                (Level::Ok, "hooks"),
                (Level::Ok, "resume"),
                (Level::Ok, "probe"),
                (Level::Ok, "checkpoint correction")
            ]
        );
        assert_eq!(r.0[2].detail, "Claude Code 2.1.999 (/opt/claude): 2 of 2 checks passed in 2.5 s");
        assert!(r.0[3].detail.starts_with("on for 2.1.999 on this machine"), "{}", r.0[3].detail);
        assert!(!r.failed());

        let r = probe_checks(&report(false, false), &Ok(()));
        assert!(r.failed());
        assert_eq!(r.0[3].level, Level::Warn);
        assert!(r.0[3].detail.starts_with("off for 2.1.999: it failed the probe"), "{}", r.0[3].detail);

        // A tested version says nothing of correction; a failed record is a warning.
        assert_eq!(probe_checks(&report(true, true), &Ok(())).0.len(), 3);
        let r = probe_checks(&report(true, true), &Err(anyhow::anyhow!("disk full")));
        assert_eq!(
            r.0.last().unwrap(),
            &Check { level: Level::Warn, what: "probe recorded", detail: "disk full".into() }
        );
    }

    #[test]
    fn missing_hooks_fail_and_missing_commands_warn_naming_what_to_run() {
        let config = tempfile::tempdir().unwrap();
        let mut r = Checks::default();
        check_hooks(&mut r, config.path());
        check_commands(&mut r, config.path());
        assert_eq!(levels(&r), [(Level::Fail, "hooks installed"), (Level::Warn, "slash commands")]);
        assert!(r.0.iter().all(|c| c.detail.contains("run `clawsess install`")), "{r:?}");
        assert!(r.failed());

        std::fs::write(config.path().join("settings.json"), "{not json").unwrap();
        let commands = config.path().join("commands");
        std::fs::create_dir(&commands).unwrap();
        for (file, _) in COMMANDS {
            std::fs::write(commands.join(file), "x").unwrap();
        }
        let mut r = Checks::default();
        check_hooks(&mut r, config.path());
        check_commands(&mut r, config.path());
        assert!(r.0[0].detail.ends_with("does not parse; fix it, then `clawsess install`"), "{r:?}");
        assert_eq!(
            r.0[1],
            Check { level: Level::Ok, what: "slash commands", detail: "/attach, /detach, /sessions".into() }
        );
    }

    #[test]
    fn the_state_dir_check_names_each_broken_file_and_how_to_recover() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::at(home.path().join("state"));
        let mut r = Checks::default();
        check_state(&mut r, &store);
        assert_eq!(levels(&r), [(Level::Ok, "state dir")]);
        assert!(r.0[0].detail.ends_with("(not created yet)"), "{r:?}");

        crate::store::create_private_dir(&store.dir().join("sessions")).unwrap();
        std::fs::write(store.dir().join("sessions").join("x.json"), "{not json").unwrap();
        let mut r = Checks::default();
        check_state(&mut r, &store);
        assert_eq!(levels(&r), [(Level::Fail, "state file"), (Level::Fail, "state dir")]);
        assert!(r.0[0].detail.contains("x.json"), "{r:?}");
        assert!(r.0[1].detail.starts_with("to recover, move each broken file aside"), "{r:?}");
        let json = r.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][1]["name"], "state dir");
        assert_eq!(json["checks"][1]["level"], "fail");
        assert_eq!(json["checks"][1]["detail"], r.0[1].detail.as_str());
    }
}
