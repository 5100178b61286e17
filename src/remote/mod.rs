//! Sessions on other machines, over the user's own OpenSSH (`clawsess hosts`).
//!
//! The command line ssh runs on the host is fixed: `clawsess serve-ssh --protocol N` (the
//! remote clawsess command checked to a safe charset). Everything else, the request with its
//! ids, keys, prompt and images, travels as one JSON line on ssh's stdin, never through the
//! remote shell. The remote side answers first with a hello line (its protocol and version),
//! so a clawsess that differs is refused before anything runs.
//!
//! ```text
//! client                         ssh                      host: clawsess serve-ssh
//!   <- {"protocol":1,"version":"0.1.0"}                     (hello)
//!   -> {"op":"run","key":...,"prompt":...}                  (request, one line)
//!   <- the subcommand's stdout, line by line                 (its stderr on ssh's stderr)
//!   stdin kept open: its EOF tells the host the link is gone -> the turn is stopped
//!   exit status: the subcommand's; 255 (ssh's own failure) -> 74 mid-command, 69 before
//! ```

pub mod client;
pub mod list;
pub mod ops;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::ident::shorten;

/// The protocol of `serve-ssh`; both sides must speak the same one. 2 added the `tool` and
/// `send` requests (the cross-session tools across hosts): a host of protocol 1 could not
/// read them, so a caller of 2 is refused there with both versions named, before anything
/// runs, rather than failing on its first tool call.
pub const PROTOCOL: u32 = 2;

/// The first line `serve-ssh` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
}

impl Hello {
    pub fn ours() -> Self {
        Self { protocol: PROTOCOL, version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// One request to a host: what `serve-ssh` runs there. Everything in it is checked again
/// on the host before it reaches an argv.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Nothing: the hello was the answer (`hosts check`).
    Check,
    List {
        limit: Option<usize>,
    },
    Show {
        session: String,
        lines: u32,
        topic: bool,
        json: bool,
    },
    /// `status SESSION` or `status --key K` there.
    Status {
        session: Option<String>,
        key: Option<String>,
        json: bool,
    },
    Attach {
        session: String,
        key: String,
        json: bool,
    },
    /// `set`, `get` or `unset` there, of a session or of a key: `args` are `set`'s
    /// NAME=VALUE words or `unset`'s setting names (none for `get`).
    Settings {
        verb: SettingsVerb,
        session: Option<String>,
        key: Option<String>,
        #[serde(default)]
        args: Vec<String>,
        json: bool,
    },
    /// `name SESSION NEWNAME` there.
    Name {
        session: String,
        name: String,
    },
    /// `cool SESSION` there.
    Cool {
        session: String,
    },
    Run(RunRequest),
    Stop {
        key: String,
        wait_s: u64,
    },
    /// `decision`: allow (true) or deny (false); or a question's `choices`/`text`.
    Answer {
        request_id: String,
        decision: Option<bool>,
        reason: Option<String>,
        #[serde(default)]
        choices: Vec<String>,
        text: Option<String>,
    },
    /// Whether a permission request or question is on file there (`answer ID` for a request
    /// this machine never saw): prints `{"found": bool}`, runs nothing.
    FindRequest {
        request_id: String,
    },
    /// One of the read-only cross-session tools there (`sessions_list`, `sessions_history`,
    /// `session_status` with a session), its arguments as the model gave them: prints
    /// `{"text": ...}` (the tool's result) or `{"error": ...}`.
    Tool {
        name: String,
        args: serde_json::Value,
    },
    /// `sessions_send` to a session there, from a session here.
    Send(SendRequest),
}

/// `sessions_send` on the host: the caller's side of the permission grant is carried, the
/// host adds the target's side and runs the turn as a local send does. Prints the `run
/// --json` object of the turn (`reply: wait`), `{"text": ...}` (`none`: handed over), or
/// `{"refused": why}` when it runs nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// The target as named there: an id, a unique prefix, a name or `key:K`.
    pub session: String,
    pub message: String,
    /// `reply: wait`.
    pub wait: bool,
    pub timeout_s: u64,
    /// The calling session (here).
    pub from: String,
    /// The sessions whose sends led to the caller, oldest first.
    pub chain: Vec<String>,
    /// What the caller's own turn may do ([`crate::perms::caller_rules`]).
    pub rules: crate::perms::CallerRules,
}

/// Which of `set`, `get`, `unset` a [`Request::Settings`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsVerb {
    Set,
    Get,
    Unset,
}

impl SettingsVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            SettingsVerb::Set => "set",
            SettingsVerb::Get => "get",
            SettingsVerb::Unset => "unset",
        }
    }
}

/// `run` on the host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRequest {
    pub key: String,
    /// `run --session NAME:SESSION`: the session as named there.
    #[serde(default)]
    pub session: Option<String>,
    pub new: bool,
    pub cwd: Option<String>,
    pub wait_s: u64,
    pub json: bool,
    pub stream: bool,
    pub ask: bool,
    pub ask_timeout_s: u64,
    pub warm_s: Option<u64>,
    pub allow_slash: bool,
    #[serde(default)]
    pub steer: bool,
    #[serde(default)]
    pub interrupt: bool,
    #[serde(default)]
    pub idle_reset_s: Option<u64>,
    /// `-A ARG`s for claude there.
    #[serde(default)]
    pub claude_args: Vec<String>,
    /// The caller sends a newline at least this often while the run goes on: this long
    /// without one (a frozen link), and `serve-ssh` stops the turn as if the link had closed.
    #[serde(default)]
    pub alive_s: Option<u64>,
    /// Pictures: a file name (for its type) and the bytes in base64.
    pub images: Vec<(String, String)>,
    pub prompt: String,
}

/// Checks a host name: letters, digits, `-` and `_`, starting with a letter or digit, at
/// most 64 (no `:`: `NAME:ID` names a session there).
pub fn check_host_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        bail!(
            "host name {:?}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit",
            shorten(name, 60)
        );
    }
    Ok(())
}

/// Checks an ssh destination (`[user@]host[:port]` or a `~/.ssh/config` alias): it must
/// never read as an ssh option or carry anything a shell or ssh would interpret.
pub fn check_dest(dest: &str) -> Result<()> {
    if dest.is_empty() || dest.len() > 255 {
        bail!("the ssh destination must be 1-255 characters");
    }
    if dest.starts_with('-') {
        bail!("ssh destination {:?} starts with '-': it would be an ssh option", shorten(dest, 60));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "@.:_-[]%".contains(c);
    if let Some(bad) = dest.chars().find(|&c| !allowed(c)) {
        bail!(
            "ssh destination {:?} has the character {bad:?}; use [user@]host[:port] or an ssh \
             config alias (letters, digits, @ . : _ - [ ] %)",
            shorten(dest, 60)
        );
    }
    Ok(())
}

/// Checks the remote clawsess command (`hosts add --clawsess PATH`): a path of safe
/// characters, since ssh hands it to the remote shell.
pub fn check_remote_command(cmd: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/._~+-".contains(c);
    if cmd.is_empty() || cmd.len() > 255 || cmd.starts_with('-') || !cmd.chars().all(allowed) {
        bail!(
            "remote clawsess command {:?}: give a path of letters, digits and / . _ ~ + - \
             (not starting with '-')",
            shorten(cmd, 60)
        );
    }
    Ok(())
}

/// Checks a session as named on a host: a full id, a unique id prefix or a name (the
/// characters of a name, not starting with '-').
pub fn check_remote_session(arg: &str) -> Result<()> {
    crate::ident::Name::parse(arg).map(drop).map_err(|e| e.context("not a session on a host"))
}

/// `NAME:SESSION` where NAME is a known host: that host and the session as named there.
/// Anything else names a local session.
pub fn split_remote<'a>(hosts: &crate::store::HostsFile, arg: &'a str) -> Option<(String, &'a str)> {
    let (name, rest) = arg.split_once(':')?;
    hosts.host(name).map(|h| (h.name.clone(), rest))
}

/// Splits `CLAWSESS_SSH` into words as a shell would split a plain command (quotes and
/// backslashes), with no expansion and no shell.
pub fn split_words(text: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                Some(n) => {
                    word.push('\\');
                    word.push(n);
                }
                None => bail!("CLAWSESS_SSH ends inside quotes"),
            },
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("CLAWSESS_SSH has an unclosed quote");
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_never_become_options_or_shell_words() {
        for good in ["box", "me@box.lan", "me@10.0.0.2:2222", "[::1]:22", "alias_1"] {
            check_dest(good).unwrap();
        }
        for bad in ["", "-oProxyCommand=x", "a b", "a\nb", "a;b", "$(x)", "`x`", "a'b", "a\"b", "a\tb"] {
            assert!(check_dest(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_names_have_no_colon() {
        check_host_name("box-1").unwrap();
        for bad in ["", "a:b", "-a", "a b", "a/b", "é"] {
            assert!(check_host_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ssh_command_splits_like_a_plain_shell_command() {
        assert_eq!(split_words("ssh -F '/a b/cfg' -v").unwrap(), ["ssh", "-F", "/a b/cfg", "-v"]);
        assert_eq!(split_words(r#" ssh "-o" a\ b "" "#).unwrap(), ["ssh", "-o", "a b", ""]);
        assert_eq!(split_words("ssh $(x)").unwrap(), ["ssh", "$(x)"]);
        assert!(split_words("ssh 'x").is_err());
    }

    #[test]
    fn remote_sessions_take_only_safe_words() {
        check_remote_session("0b6f2d4e-1c2a-4b3d-9e8f-123456789abc").unwrap();
        check_remote_session("budget").unwrap();
        for bad in ["-x", "a b", "$(x)", "a;b", ""] {
            assert!(check_remote_session(bad).is_err(), "{bad:?} accepted");
        }
    }
}
