//! Which session a turn of key K goes to: `--session S`, a new one (`--new`), else K's
//! resolution (its attachment, the global attachment, its own session), else a new one. A
//! resolved session whose transcript is gone, or K's own session idle past the idle reset, is
//! replaced by a new one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::ident::{Key, SessionId};
use crate::resolve::{Via, find_session, resolve};
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
    /// Replace the key's own session when it has been idle longer than this.
    pub idle_reset: Option<Duration>,
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
    /// The key's session that was given up (transcript gone, idle reset).
    pub replaced: Option<SessionId>,
}

/// The session `key`'s turn goes to (see the module doc). Says on stderr when it replaces one.
pub fn route(store: &Store, key: &Key, req: &Request<'_>) -> Result<Target> {
    if req.new {
        return new_target(req, None);
    }
    if let Some(arg) = req.session {
        let id = find_session(store, arg)?;
        let rec = store.session(&id)?.with_context(|| format!("session {id} was removed meanwhile"))?;
        if !rec.transcript.is_file() {
            bail!(
                "the transcript of session {id} is gone ({}): Claude Code deleted it; \
                 use --new, or run without --session",
                rec.transcript.display()
            );
        }
        return Ok(Target { id, cwd: checked_cwd(&rec)?, resume: true, via: None, replaced: None });
    }
    let Some(found) = resolve(store, key)? else {
        return new_target(req, None);
    };
    let rec = store.session(&found.session)?;
    let why_not = match &rec {
        None => Some("is no longer recorded".to_owned()),
        Some(rec) if !rec.transcript.is_file() => {
            Some("has no transcript any more (Claude Code deletes old ones)".into())
        }
        Some(rec) => match req.idle_reset {
            Some(limit)
                if found.via == Via::Own
                    && u128::from(now_ms().saturating_sub(rec.last_seen)) > limit.as_millis() =>
            {
                Some(format!("was idle for longer than {}", crate::sys::human_duration(limit)))
            }
            _ => None,
        },
    };
    match (rec, why_not) {
        (Some(rec), None) => Ok(Target {
            id: rec.id.clone(),
            cwd: checked_cwd(&rec)?,
            resume: true,
            via: Some(found.via),
            replaced: None,
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
            let mut target = new_target(req, Some(found.session))?;
            target.via = Some(found.via);
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
    Ok(Target { id: SessionId::new_random(), cwd, resume: false, via: None, replaced })
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
