//! Which session a turn of key K goes to: `--session S`, a new one (`--new`), else K's
//! resolution (its attachment, the global attachment, its own session), else a new one. A
//! resolved session whose transcript is gone, or K's own session past K's reset policy (see
//! `config::policy`; an attached session never resets by policy), is replaced by a new one.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

use crate::config::Policy;
use crate::ident::{Key, SessionId};
use crate::resolve::{Via, find_session, find_session_record, resolve};
use crate::store::{SessionRecord, Store, now_ms};

/// What the caller asks for.
#[derive(Debug, Default, Clone)]
pub struct Request<'a> {
    /// This session (id, prefix or name) instead of the key's.
    pub session: Option<&'a str>,
    /// A new session, made the key's own.
    pub new: bool,
    /// Working dir of a new session (default: the current dir).
    pub cwd: Option<&'a Path>,
    /// The key's reset policy: its own session, once past it, is replaced by a new one.
    pub reset: Option<Policy>,
}

/// The session a turn goes to.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: SessionId,
    pub cwd: PathBuf,
    /// Resume it (else start it with `--session-id`).
    pub resume: bool,
    /// How the key reached it; `None` for `--session` and `--new`.
    pub via: Option<Via>,
    /// The key's session that was given up (transcript gone, reset policy).
    pub replaced: Option<SessionId>,
    /// Why, when the key's reset policy gave it up: `idle 72h`, `daily 04:00`.
    pub reset_why: Option<String>,
    /// The transcript its record names, as read when it was routed (none for a new session:
    /// see [`Target::transcript_path`]). A turn reads the record once, here.
    pub transcript: Option<PathBuf>,
}

impl Target {
    /// The session's transcript: where its record said, else where Claude Code puts it for
    /// the target's cwd.
    pub fn transcript_path(&self) -> Result<PathBuf> {
        match &self.transcript {
            Some(path) => Ok(path.clone()),
            None => Ok(crate::claude::transcript_path(
                &crate::claude::config_dir(None)?,
                &self.cwd,
                self.id.as_str(),
            )),
        }
    }
}

/// The session a turn of `key` would go to now, if it resumes one: `--session`'s (`session`),
/// else the key's resolution; `None` for `--new` or when nothing is found. Read only, for a
/// place in that session's queue while the turn waits for its key's lock ([`route`] decides).
pub fn current(store: &Store, key: &Key, session: Option<&str>, new: bool) -> Option<SessionId> {
    if new {
        return None;
    }
    match session {
        Some(arg) => find_session(store, arg).ok(),
        None => resolve(store, key).ok().flatten().map(|found| found.session),
    }
}

/// The session `key`'s turn goes to (see the module doc). Says on stderr when it replaces one.
pub fn route(store: &Store, key: &Key, req: &Request<'_>) -> Result<Target> {
    if req.new {
        return new_target(req, None);
    }
    if let Some(arg) = req.session {
        let rec = find_session_record(store, arg)?;
        let id = rec.id.clone();
        if !rec.transcript.is_file() {
            bail!(
                "the transcript of session {id} is gone ({}): Claude Code deleted it; \
                 use --new, or run without --session",
                rec.transcript.display()
            );
        }
        return Ok(Target {
            id,
            cwd: checked_cwd(&rec)?,
            resume: true,
            via: None,
            replaced: None,
            reset_why: None,
            transcript: Some(rec.transcript),
        });
    }
    let Some(found) = resolve(store, key)? else {
        return new_target(req, None);
    };
    let rec = store.session(&found.session)?;
    let mut reset_why = None;
    let why_not = match &rec {
        None => Some("is no longer recorded".to_owned()),
        Some(rec) if !rec.transcript.is_file() => {
            Some("has no transcript any more (Claude Code deletes old ones)".into())
        }
        Some(rec) => match &req.reset {
            Some(policy) if found.via == Via::Own && past(policy, rec.last_seen) => {
                reset_why = Some(policy.mode.to_string());
                Some(format!(
                    "is past its reset policy ({} for {}, {})",
                    policy.mode, policy.pattern, policy.origin
                ))
            }
            _ => None,
        },
    };
    // A session reset by policy goes on in the same project: its new session starts in the
    // old one's dir, unless the run or the key's settings name one.
    let old_cwd = rec.as_ref().map(|r| r.cwd.clone()).filter(|dir| reset_why.is_some() && dir.is_dir());
    match (rec, why_not) {
        (Some(rec), None) => Ok(Target {
            id: rec.id.clone(),
            cwd: checked_cwd(&rec)?,
            resume: true,
            via: Some(found.via),
            replaced: None,
            reset_why: None,
            transcript: Some(rec.transcript),
        }),
        (_, why) => {
            let how = match found.via {
                Via::Key => format!("{key}'s attachment"),
                Via::Global => "the global attachment".into(),
                Via::Own => format!("{key}'s own session"),
            };
            eprintln!(
                "clawsess: {how} {} {}; starting a new session for {key}",
                found.session.short(),
                why.unwrap_or_default()
            );
            let req = Request { cwd: req.cwd.or(old_cwd.as_deref()), ..req.clone() };
            let mut target = new_target(&req, Some(found.session))?;
            target.via = Some(found.via);
            target.reset_why = reset_why;
            Ok(target)
        }
    }
}

fn new_target(req: &Request<'_>, replaced: Option<SessionId>) -> Result<Target> {
    let cwd = match req.cwd {
        Some(dir) => dir.to_path_buf(),
        None => std::env::current_dir().context("could not read the current dir")?,
    };
    let cwd = cwd.canonicalize().with_context(|| format!("--cwd {} is not a directory", cwd.display()))?;
    if !cwd.is_dir() {
        bail!("--cwd {} is not a directory", cwd.display());
    }
    Ok(Target {
        id: SessionId::new_random(),
        cwd,
        resume: false,
        via: None,
        replaced,
        reset_why: None,
        transcript: None,
    })
}

/// Whether a session last active at `last_ms` (Unix ms) is past `policy` now, in the local
/// time zone.
fn past(policy: &Policy, last_ms: u64) -> bool {
    let at = |ms: u64| jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).ok();
    match (at(last_ms), at(now_ms())) {
        (Some(last), Some(now)) => policy.due(last, now, &jiff::tz::TimeZone::system()),
        _ => false,
    }
}

fn checked_cwd(rec: &SessionRecord) -> Result<PathBuf> {
    if !rec.cwd.is_dir() {
        bail!(
            "session {}'s working dir {} is gone; recreate it, or start a new session (--new --cwd DIR)",
            rec.id,
            rec.cwd.display()
        );
    }
    Ok(rec.cwd.clone())
}
