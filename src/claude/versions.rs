//! Which Claude Code versions clawsess works with, and what older ones lack. The range is
//! measured: `tests/versions.sh` runs `doctor --probe` and the end-to-end suites on each
//! version (see docs/CLAUDE_CODE.md). [`NEWEST_TESTED`] is the one line to change
//! when a newer version passes; `doctor`, `--help` and the errors read the range from here.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The oldest Claude Code the end-to-end suites pass on, everything included; CI tests it.
pub const OLDEST_SUPPORTED: Version = Version(2, 0, 77);
/// The oldest Claude Code clawsess can work with at all (`install` refuses older ones).
/// Before 2.0.28, SessionStart on `--resume` carries a throw-away id, so resumed sessions
/// are recorded under ids that are no sessions; before 2.0.22 there is no
/// `CLAUDE_ENV_FILE` either, so `/attach` cannot tell its own session.
pub const OLDEST_USABLE: Version = Version(2, 0, 28);
/// The version the end-to-end tests pin.
pub const PINNED: Version = Version(2, 1, 328);
/// The newest version the probe and the end-to-end suites passed on.
pub const NEWEST_TESTED: Version = Version(2, 1, 332);
/// The oldest version measured to write `last-prompt` checkpoints after a `claude -p` turn
/// (2.0.77 writes none; versions between were not measured): from here on the probe fails a
/// version that writes none.
pub const CHECKPOINTS_SEEN: Version = Version(2, 1, 328);
/// `CLAUDE_PID` in the hooks' environment.
pub const CLAUDE_PID_FROM: Version = Version(2, 1, 213);
/// `CLAUDE_CODE_SESSION_ID` in the hooks' environment.
pub const SESSION_ID_ENV_FROM: Version = Version(2, 1, 200);
/// A hook's refusal is the `-p` result's text ("UserPromptSubmit operation blocked by hook").
pub const REFUSAL_TEXT_FROM: Version = Version(2, 1, 200);
/// A stream-json user message marked `client_composed` reaches the model as written.
pub const VERBATIM_FROM: Version = Version(2, 1, 248);
/// How long `claude --version` may take (a `cli.js` version under node on a busy machine
/// takes a few seconds).
const VERSION_WAIT: Duration = Duration::from_secs(15);

/// A Claude Code version, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `2.1.328` or `claude --version`'s `2.1.328 (Claude Code)`.
    pub fn parse(text: &str) -> Option<Version> {
        let word = text.split_whitespace().next()?;
        let mut parts = word.split(['.', '-', '+']).map(str::parse::<u32>);
        Some(Version(parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    }

    /// Whether clawsess works with this version, everything tested.
    pub fn supported(self) -> bool {
        self >= OLDEST_SUPPORTED
    }

    /// Whether the probe and the end-to-end suites passed on this version
    /// ([`OLDEST_SUPPORTED`] to [`NEWEST_TESTED`]).
    pub fn tested(self) -> bool {
        (OLDEST_SUPPORTED..=NEWEST_TESTED).contains(&self)
    }

    /// Whether clawsess can work with this version at all.
    pub fn usable(self) -> bool {
        self >= OLDEST_USABLE
    }

    /// What clawsess cannot do on this (usable) version; empty from 2.1.200 on.
    pub fn limits(self) -> Vec<&'static str> {
        let mut lost = Vec::new();
        if self < Version(2, 0, 77) {
            lost.push(
                "the plugin's /clawsess:attach, :detach and :sessions are refused (\"requires \
                 approval\": ${CLAUDE_PLUGIN_ROOT} in allowed-tools is substituted from 2.0.77); \
                 `clawsess install`'s /attach, /detach and /sessions work",
            );
        }
        if self < Version(2, 1, 248) {
            lost.push(
                "a chat user's `@/any/file` in a `run` prompt puts that file into the request \
                 (Claude Code sends prompts as written only from 2.1.248)",
            );
        }
        if self < Version(2, 1, 200) {
            lost.push(
                "a prompt clawsess refuses shows no reason under `claude -p` (its result is empty; \
                 an interactive terminal shows it)",
            );
        }
        lost
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The tested range, for `doctor`, `--help` and errors: `2.0.77 to 2.1.330`.
pub fn tested_range() -> String {
    format!("{OLDEST_SUPPORTED} to {NEWEST_TESTED}")
}

/// What `doctor --help` says about the versions.
pub fn help_text() -> String {
    format!(
        "Claude Code versions tested: {} (older ones from {OLDEST_USABLE} work with limits). \
         `doctor --probe` checks the installed one on this machine: clawsess corrects a forked \
         transcript's checkpoint only for a tested version or one that passed the probe here.",
        tested_range()
    )
}

/// The version `claude --version` reports, waiting at most a few seconds.
pub fn installed(claude: &Path) -> Result<Version> {
    let mut child = Command::new(claude)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("could not run {} --version", claude.display()))?;
    let deadline = Instant::now() + VERSION_WAIT;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} --version did not answer within {} s", claude.display(), VERSION_WAIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child.stdout.take().context("no stdout")?.read_to_string(&mut out)?;
    Version::parse(&out).with_context(|| {
        format!("{} --version printed {:?}, not a version", claude.display(), crate::sys::one_line(&out, 80))
    })
}

/// Why clawsess cannot work with `v`, for `doctor` and `install`; `None` when it can.
pub fn unusable_reason(v: Version) -> Option<String> {
    (!v.usable()).then(|| {
        format!(
            "Claude Code {v} is older than {OLDEST_USABLE}, the oldest clawsess can work with (it gives \
             SessionStart a throw-away id on --resume, and /attach cannot tell its session); \
             upgrade: npm install -g @anthropic-ai/claude-code, or `claude update`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_claudes_output_and_order_numerically() {
        assert_eq!(Version::parse("2.1.328 (Claude Code)"), Some(Version(2, 1, 328)));
        assert_eq!(Version::parse("2.0.77"), Some(Version(2, 0, 77)));
        assert_eq!(Version::parse("1.0.128 (Claude Code)\n"), Some(Version(1, 0, 128)));
        assert_eq!(Version::parse("2.2.0-beta.1"), Some(Version(2, 2, 0)));
        for bad in ["", "Claude Code", "2.1", "v2.1.3", "2.x.1"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert!(Version(2, 1, 100) > Version(2, 0, 77) && Version(2, 1, 100) < Version(2, 1, 212));
    }

    #[test]
    fn the_range_starts_at_the_oldest_supported_and_usable_goes_further() {
        assert!(!Version(1, 0, 128).usable() && !Version(2, 0, 27).usable());
        assert!(OLDEST_USABLE.usable() && !OLDEST_USABLE.supported());
        assert!(OLDEST_SUPPORTED.supported() && PINNED.supported() && NEWEST_TESTED.supported());
        assert!(OLDEST_SUPPORTED.tested() && PINNED.tested() && NEWEST_TESTED.tested());
        assert!(
            !OLDEST_USABLE.tested()
                && !Version(NEWEST_TESTED.0, NEWEST_TESTED.1, NEWEST_TESTED.2 + 1).tested()
        );
        assert!(PINNED <= NEWEST_TESTED && CHECKPOINTS_SEEN <= PINNED);
        assert_eq!(tested_range(), format!("{OLDEST_SUPPORTED} to {NEWEST_TESTED}"));
        assert!(unusable_reason(Version(2, 0, 0)).unwrap().contains("older than 2.0.28"));
        assert_eq!(unusable_reason(OLDEST_USABLE), None);
        assert!(PINNED.limits().is_empty());
        assert_eq!(Version(2, 1, 100).limits().len(), 2);
        assert_eq!(Version(2, 1, 212).limits().len(), 1, "{:?}", Version(2, 1, 212).limits());
        assert_eq!(OLDEST_USABLE.limits().len(), 3);
    }

    #[test]
    fn a_claude_that_prints_no_version_is_an_error() {
        assert!(installed(Path::new("/bin/true")).unwrap_err().to_string().contains("not a version"));
        assert!(installed(Path::new("/nonexistent/claude")).is_err());
    }
}
