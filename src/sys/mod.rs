//! Small bits of the operating system and of human-readable output.

pub mod bell;
pub mod exists;
pub mod files;
pub mod proc;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Whether a process with this pid exists (it may belong to another user).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// "12s ago", "5m ago", "3h ago", "2d ago" for a Unix-milliseconds time.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// A duration as `1d2h3m4s` (the units `parse_duration` reads).
pub fn human_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [('d', 86400), ('h', 3600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// A Unix-milliseconds time in RFC 3339, UTC.
pub fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// A Unix-milliseconds time as local wall-clock `HH:MM:SS`.
pub fn clock(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `path` with the home dir shown as `~`.
pub fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return if rest.as_os_str().is_empty() { "~".into() } else { format!("~/{}", rest.display()) };
    }
    path.display().to_string()
}

/// Text on one line, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::ident::shorten(&flat, max)
}

/// `text` safe to print on a terminal: control characters (ESC, BEL, C1 codes, DEL, ...)
/// are shown escaped (`\u{1b}`), so text from a chat, a transcript or a directory name
/// cannot move the cursor, set the title or write the clipboard (OSC 52). Newlines and tabs
/// stay when `keep_lines`; `--json` output keeps text exact and never goes through this.
pub fn printable(text: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && !(keep_lines && (c == '\n' || c == '\t'));
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The longest wait or duration clawsess takes: a year (longer ones overflow timers, or are
/// typos).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// Parses `--wait` seconds: a number from 0 to a year (fractions allowed).
pub fn parse_wait(text: &str) -> Result<Duration> {
    let secs: f64 = text.trim().parse().with_context(|| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs)) {
        bail!("{text:?} is out of range: give seconds from 0 to {}", MAX_DURATION.as_secs());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `here()` on this thread and `there()` on a thread of its own, at once: both results. When
/// no thread can be started, `there()` runs here after `here()`; a panic in it is this
/// thread's. (Work split in two halves: `list`'s rows, the sessions scan, many `stat`s.)
pub fn both<A, B: Send>(here: impl FnOnce() -> A, there: impl Fn() -> B + Sync) -> (A, B) {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().spawn_scoped(scope, &there).ok();
        let a = here();
        let b = match thread {
            Some(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => there(),
        };
        (a, b)
    })
}

/// Parses a duration that can be off (`--warm`, `warm`, `prune_every`): `0`, `off` or `no`
/// is [`Duration::ZERO`], anything else a [`parse_duration`].
pub fn parse_duration_or_off(text: &str) -> Result<Duration> {
    match text.trim() {
        "0" | "off" | "no" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

/// Parses `90s`, `30m`, `12h`, `7d`, `2w` and sums like `1h30m`, up to a year.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || format!("{text:?} is not a duration like 30m, 12h, 7d or 1h30m");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => bail!(bad()),
        };
        let n: u64 = digits.parse().with_context(bad)?;
        total = total.checked_add(n.checked_mul(unit).with_context(bad)?).with_context(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        bail!(bad());
    }
    if total > MAX_DURATION.as_secs() {
        bail!("{text:?} is longer than a year");
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_picks_the_largest_unit() {
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(ago(0, 125_000), "2m ago");
        assert_eq!(ago(0, 7_200_000), "2h ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3d ago");
        assert_eq!(ago(10, 0), "0s ago");
    }

    #[test]
    fn our_own_pid_is_alive_and_zero_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }

    #[test]
    fn printable_escapes_terminal_controls() {
        let osc52 = "hi\x1b]52;c;ZXZpbA==\x07 there\x1b[2J\u{9b}x\r";
        let shown = printable(osc52, true);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.contains("\\u{1b}]52;c;ZXZpbA==\\u{7}"), "{shown}");
        assert_eq!(printable("a\n\tb", true), "a\n\tb");
        assert_eq!(printable("a\nb", false), "a\\u{a}b");
    }

    #[test]
    fn one_line_folds_whitespace() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
    }

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        for bad in ["", "12", "h", "1x", "0s", "-1h", "18446744073709552s", "53w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_wait("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["1e19", "99999999999999999999", "-1", "NaN", "inf", "x"] {
            assert!(parse_wait(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_duration_or_off_takes_off_no_and_zero() {
        assert_eq!(parse_duration_or_off("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration_or_off(" 1h30m ").unwrap(), Duration::from_secs(5400));
        for off in ["off", "no", "0", " off "] {
            assert_eq!(parse_duration_or_off(off).unwrap(), Duration::ZERO, "{off:?}");
        }
        for bad in ["soon", "", "0s", "OFF", "53w"] {
            assert!(parse_duration_or_off(bad).is_err(), "{bad:?}");
        }
        let err = parse_duration_or_off("soon").unwrap_err().to_string();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
    }
}
