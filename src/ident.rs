//! Validated identifiers: session ids, surface keys and names.
//!
//! Everything a user or a hook hands us passes through here before it reaches a file name
//! or `claude`'s argv.

use std::fmt;

use anyhow::{Result, bail};

/// Longest key or name accepted.
pub const MAX_LEN: usize = 200;

/// A Claude Code session id: a UUID, kept in its lowercase hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Parses a full UUID; anything else (paths, flags, prefixes) is refused.
    pub fn parse(s: &str) -> Result<Self> {
        // Only the canonical 36-char form: `uuid` also accepts braces, urns and simple hex,
        // none of which Claude Code writes.
        if s.len() != 36 {
            bail!("{:?} is not a session id (a UUID like 0b6f2d4e-...)", shorten(s, 60));
        }
        match uuid::Uuid::try_parse(s) {
            Ok(u) => Ok(Self(u.hyphenated().to_string())),
            Err(_) => bail!("{:?} is not a session id (a UUID like 0b6f2d4e-...)", shorten(s, 60)),
        }
    }

    /// A fresh random id for a new session.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 characters, as `list` shows them.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SessionId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The id of a permission request of `run --ask`: a random UUID, so it cannot be guessed, and
/// checked like a session id before it names a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Parses a full UUID; anything else is refused.
    pub fn parse(s: &str) -> Result<Self> {
        match SessionId::parse(s) {
            Ok(id) => Ok(Self(id.0)),
            Err(_) => bail!("{:?} is not a request id (a UUID from a permission event)", shorten(s, 60)),
        }
    }

    /// A fresh random (v4) id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RequestId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A surface key such as `telegram:123456` or `discord:thread:987`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Key(String);

/// The key used when `--key` is not given.
pub const DEFAULT_KEY: &str = "default";

impl Key {
    pub fn parse(s: &str) -> Result<Self> {
        check_chars("key", s, true)?;
        Ok(Self(s.to_owned()))
    }

    pub fn default_key() -> Self {
        Self(DEFAULT_KEY.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Key::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A human name for a session, such as `budget-planning`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Self> {
        check_chars("name", s, false)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn check_chars(what: &str, s: &str, slash_ok: bool) -> Result<()> {
    if s.is_empty() {
        bail!("a {what} cannot be empty");
    }
    if s.len() > MAX_LEN {
        bail!("a {what} is at most {MAX_LEN} characters; this one has {}", s.chars().count());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":._@-".contains(c) || (slash_ok && c == '/');
    if let Some(bad) = s.chars().find(|&c| !allowed(c)) {
        let set = if slash_ok { "A-Z a-z 0-9 : . _ @ / -" } else { "A-Z a-z 0-9 : . _ @ -" };
        bail!("{what} {:?} has the character {bad:?}; a {what} may use only {set}", shorten(s, 60));
    }
    if s.split('/').any(|part| part == "." || part == "..") || s.starts_with('-') {
        bail!("{what} {:?} may not start with '-' or contain '.' or '..' as a part", shorten(s, 60));
    }
    Ok(())
}

/// A stable file name for a key or name: never the raw text, which may hold `/` and be
/// longer than a file name may be. FNV-1a 128 is stable across Rust versions (std's
/// hasher is not), and the file also stores the text, so a collision would be detected.
pub fn file_stem(text: &str) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let hash = text.bytes().fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{hash:032x}")
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn shorten(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_accepts_only_canonical_uuids() {
        let id = SessionId::parse("0B6F2D4E-1C2A-4B3D-9E8F-123456789ABC").unwrap();
        assert_eq!(id.as_str(), "0b6f2d4e-1c2a-4b3d-9e8f-123456789abc");
        for bad in [
            "",
            "-rf",
            "../../x",
            "0b6f2d4e",
            "{0b6f2d4e-1c2a-4b3d-9e8f-123456789abc}",
            "0b6f2d4e1c2a4b3d9e8f123456789abc",
            "0b6f2d4e-1c2a-4b3d-9e8f-123456789abz",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keys_take_the_documented_character_set() {
        for good in ["telegram:123456", "discord:thread:987", "slack:C0123:1700000000.1234", "a", "me@host/x"]
        {
            Key::parse(good).unwrap();
        }
        let long = "k".repeat(201);
        for bad in ["", "a b", "a\nb", "a\0b", "../x", "x/../y", "-rf", "ü", long.as_str(), "a;b"] {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Key::parse(&"k".repeat(200)).is_ok());
    }

    #[test]
    fn names_refuse_slash() {
        Name::parse("budget-planning").unwrap();
        assert!(Name::parse("a/b").is_err());
        let err = Name::parse("a b").unwrap_err().to_string();
        assert!(err.contains("' '"), "{err}");
    }

    #[test]
    fn file_stems_are_stable_and_distinct() {
        assert_eq!(file_stem("telegram:1"), file_stem("telegram:1"));
        assert_ne!(file_stem("telegram:1"), file_stem("telegram:2"));
        assert_eq!(file_stem("x").len(), 32);
    }

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("hello", 10), "hello");
        assert_eq!(shorten("hello world", 5), "hell…");
        assert_eq!(shorten("ééééé", 5), "ééééé");
    }
}
