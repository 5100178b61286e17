//! Reset policies: when a key's own session is given up for a new one at its next `run`.
//! `off` (never), `idle` (no activity for a while), `daily` (a local time of day has passed
//! since the last activity). The first policy whose key pattern matches wins.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::Origin;

/// How a policy resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// No activity for this long (and the duration as written: `72h`).
    Idle(Duration, String),
    /// At this local time of day.
    Daily(Time),
}

/// One reset policy: keys matching `pattern` reset by `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// A key, where `*` stands for any run of characters (`telegram:*`, `*`).
    pub pattern: String,
    pub mode: Mode,
    pub origin: Origin,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => f.write_str("off"),
            Mode::Idle(_, written) => write!(f, "idle {written}"),
            Mode::Daily(at) => write!(f, "daily {:02}:{:02}", at.hour(), at.minute()),
        }
    }
}

impl Policy {
    /// Idle for `text` (a duration like `72h`), for every key.
    pub fn idle(text: &str, origin: Origin) -> Result<Self> {
        let limit = crate::sys::parse_duration(text)?;
        Ok(Self::every_key(Mode::Idle(limit, text.trim().to_owned()), origin))
    }

    /// The policy of `mode` for every key (`CLAWSESS_IDLE_RESET`, `--idle-reset`).
    pub fn every_key(mode: Mode, origin: Origin) -> Self {
        Self { pattern: "*".into(), mode, origin }
    }

    pub fn matches(&self, key: &str) -> bool {
        glob(self.pattern.as_bytes(), key.as_bytes())
    }

    /// When a session last active at `last` is due for a new one under this policy: the
    /// first moment past the idle limit, or the first local `daily` time after `last`.
    /// `None` for `off`.
    pub fn next_reset(&self, last: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match &self.mode {
            Mode::Off => None,
            Mode::Idle(limit, _) => {
                let limit = jiff::SignedDuration::try_from(*limit).ok()?;
                last.checked_add(limit).ok()
            }
            Mode::Daily(at) => {
                let last_local = last.to_zoned(tz.clone());
                let mut day = last_local.date();
                // Two days at most: today's time may be before `last`; a day whose time
                // falls into a DST gap still has one (moved forward by the gap).
                for _ in 0..3 {
                    let at = day.to_datetime(*at).to_zoned(tz.clone()).ok()?.timestamp();
                    if at > last {
                        return Some(at);
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
        }
    }

    /// Whether a session last active at `last` is past this policy at `now`.
    pub fn due(&self, last: Timestamp, now: Timestamp, tz: &TimeZone) -> bool {
        self.next_reset(last, tz).is_some_and(|at| at <= now)
    }
}

/// The first policy in `policies` that matches `key`.
pub fn policy_for<'a>(policies: &'a [Policy], key: &str) -> Option<&'a Policy> {
    policies.iter().find(|p| p.matches(key))
}

/// Parses a key pattern: a key's characters, and `*`.
pub fn parse_pattern(text: &str) -> Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ":._@/-*".contains(c);
    if text.is_empty() || text.len() > 200 || !text.chars().all(ok) {
        bail!(
            "{text:?} is not a key pattern: a key's characters [A-Za-z0-9:._@/-], with * for any run of them"
        );
    }
    Ok(text.to_owned())
}

/// Parses `daily_at`: `HH:MM`, 24-hour local time.
pub fn parse_time_of_day(text: &str) -> Result<Time> {
    let bad = || format!("{text:?} is not a time of day like 04:00 (24-hour, local)");
    let (h, m) = text.trim().split_once(':').with_context(bad)?;
    let (h, m): (i8, i8) = (h.parse().with_context(bad)?, m.parse().with_context(bad)?);
    if m.to_string().len() > 2 || !(0..24).contains(&h) || !(0..60).contains(&m) {
        bail!(bad());
    }
    Time::new(h, m, 0, 0).with_context(bad)
}

/// `*` matches any run of bytes; everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use jiff::civil::date;

    /// New York's rules as a POSIX TZ string, so the test needs no tz database: DST from the
    /// second Sunday of March (02:00 -> 03:00) to the first Sunday of November (02:00 -> 01:00).
    fn new_york() -> TimeZone {
        TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()
    }

    fn local(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        date(y, mo, d).at(h, mi, 0, 0).to_zoned(tz.clone()).unwrap().timestamp()
    }

    fn daily(h: i8, m: i8) -> Policy {
        Policy::every_key(Mode::Daily(Time::new(h, m, 0, 0).unwrap()), Origin::Default)
    }

    #[test]
    fn patterns_match_with_stars_and_first_match_wins() {
        let p = |pattern: &str, mode| Policy { pattern: pattern.into(), mode, origin: Origin::Default };
        let policies = [
            p("telegram:*", Mode::Off),
            p("discord:*", Mode::Idle(Duration::from_secs(72 * 3600), "72h".into())),
            p("*", Mode::Daily(Time::new(4, 0, 0, 0).unwrap())),
        ];
        assert_eq!(policy_for(&policies, "telegram:123").unwrap().mode, Mode::Off);
        assert_eq!(policy_for(&policies, "discord:1:2:3").unwrap().pattern, "discord:*");
        assert_eq!(policy_for(&policies, "slack:C1").unwrap().pattern, "*");
        assert!(policy_for(&policies[..2], "telegram").is_none());
        assert!(glob(b"a*b*c", b"aXXbYc") && !glob(b"a*b", b"ab:c"));
        assert!(parse_pattern("tele gram").is_err() && parse_pattern("").is_err());
    }

    #[test]
    fn idle_policy_is_due_after_its_duration() {
        let tz = new_york();
        let idle = Policy::every_key(Mode::Idle(Duration::from_secs(3600), "1h".into()), Origin::Default);
        let last = local(&tz, 2026, 6, 1, 10, 0);
        assert!(!idle.due(last, local(&tz, 2026, 6, 1, 10, 59), &tz));
        assert!(idle.due(last, local(&tz, 2026, 6, 1, 11, 0), &tz));
        assert_eq!(idle.to_string_mode(), "idle 1h");
        assert_eq!(Policy::every_key(Mode::Off, Origin::Default).next_reset(last, &tz), None);
    }

    #[test]
    fn daily_policy_resets_once_past_the_local_time() {
        let tz = new_york();
        let at4 = daily(4, 0);
        // Active at 03:00: due from 04:00 the same day; active at 05:00: from 04:00 next day.
        assert!(!at4.due(local(&tz, 2026, 6, 1, 3, 0), local(&tz, 2026, 6, 1, 3, 59), &tz));
        assert!(at4.due(local(&tz, 2026, 6, 1, 3, 0), local(&tz, 2026, 6, 1, 4, 0), &tz));
        assert!(!at4.due(local(&tz, 2026, 6, 1, 5, 0), local(&tz, 2026, 6, 2, 3, 59), &tz));
        assert!(at4.due(local(&tz, 2026, 6, 1, 5, 0), local(&tz, 2026, 6, 2, 4, 0), &tz));
        // Local means local: 04:00 in New York is 08:00 UTC in summer.
        let next = at4.next_reset(local(&tz, 2026, 6, 1, 5, 0), &tz).unwrap();
        assert_eq!(next.to_string(), "2026-06-02T08:00:00Z");
    }

    /// 2026-03-08 in New York: 02:00 EST becomes 03:00 EDT, the day has 23 hours.
    #[test]
    fn daily_policy_across_the_spring_dst_change() {
        let tz = new_york();
        let at4 = daily(4, 0);
        let last = local(&tz, 2026, 3, 7, 23, 0); // Saturday 23:00 EST
        let next = at4.next_reset(last, &tz).unwrap();
        // 04:00 EDT is 08:00 UTC (it was 09:00 UTC the day before): 4 hours after 23:00 EST,
        // not the 5 hours a fixed offset would give.
        assert_eq!(next.to_string(), "2026-03-08T08:00:00Z");
        assert!(!at4.due(last, local(&tz, 2026, 3, 8, 3, 59), &tz));
        assert!(at4.due(last, local(&tz, 2026, 3, 8, 4, 0), &tz));
        // A time inside the gap (02:30 does not exist that day) still resets once that day,
        // as soon as the clock jumps past it (03:00 EDT).
        let at230 = daily(2, 30);
        let next = at230.next_reset(last, &tz).unwrap();
        assert_eq!(next.to_zoned(tz.clone()).datetime(), date(2026, 3, 8).at(3, 30, 0, 0));
        assert!(next > local(&tz, 2026, 3, 8, 1, 59));
        // And the next day it is 02:30 again.
        let after = at230.next_reset(next, &tz).unwrap();
        assert_eq!(after.to_zoned(tz.clone()).datetime(), date(2026, 3, 9).at(2, 30, 0, 0));
    }

    /// 2026-11-01 in New York: 02:00 EDT becomes 01:00 EST, 01:00-02:00 happens twice, the day
    /// has 25 hours.
    #[test]
    fn daily_policy_across_the_autumn_dst_change() {
        let tz = new_york();
        let at4 = daily(4, 0);
        let last = local(&tz, 2026, 10, 31, 23, 0); // Saturday 23:00 EDT
        let next = at4.next_reset(last, &tz).unwrap();
        assert_eq!(next.to_string(), "2026-11-01T09:00:00Z"); // 04:00 EST, 6 h later
        assert!(!at4.due(last, "2026-11-01T08:59:59Z".parse().unwrap(), &tz));
        assert!(at4.due(last, next, &tz));
        // A time inside the repeated hour resets once, at its first occurrence (EDT), and not
        // again at the second (EST) an hour later.
        let at130 = daily(1, 30);
        let first = at130.next_reset(last, &tz).unwrap();
        assert_eq!(first.to_string(), "2026-11-01T05:30:00Z"); // 01:30 EDT
        let active_between = "2026-11-01T06:00:00Z".parse::<Timestamp>().unwrap(); // 01:00 EST
        let again = at130.next_reset(active_between, &tz).unwrap();
        assert_eq!(again.to_zoned(tz.clone()).datetime(), date(2026, 11, 2).at(1, 30, 0, 0));
        assert!(!at130.due(active_between, "2026-11-01T06:30:00Z".parse().unwrap(), &tz));
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_time_of_day("04:00").unwrap(), Time::new(4, 0, 0, 0).unwrap());
        assert_eq!(parse_time_of_day("23:59").unwrap(), Time::new(23, 59, 0, 0).unwrap());
        for bad in ["24:00", "4", "04:60", "4pm", "-1:00", ""] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }

    impl Policy {
        fn to_string_mode(&self) -> String {
            self.mode.to_string()
        }
    }
}
