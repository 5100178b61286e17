use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Run;
use crate::claude;
use crate::cli::Import;
use crate::exit;
use crate::ident::SessionId;
use crate::store::{COMMAND_LOCK_WAIT, SessionRecord, Starter, Store, mtime_ms, now_ms};

/// How much of a transcript's head is read to find its cwd.
const HEAD_BYTES: u64 = 256 * 1024;

impl Run for Import {
    fn run(&self) -> Result<u8> {
        let config = claude::config_dir(self.claude_dir.as_deref())?;
        let projects = config.join("projects");
        let Some(found) = transcripts(&projects)? else {
            crate::outln!("no transcripts at {}; nothing to import", projects.display())?;
            return Ok(exit::OK);
        };
        let store = Store::open()?;
        let (mut imported, mut unreadable) = (0, 0);
        // Transcripts are read without the store lock, and records are written in short
        // pieces: hooks and runs wait at most a few seconds for the lock, and an import of
        // tens of thousands of transcripts takes far longer.
        let mut batch = Vec::new();
        for (id, path) in &found {
            if store.session(id)?.is_some() {
                continue;
            }
            let Some((cwd, first)) = read_head(path) else {
                unreadable += 1;
                continue;
            };
            let modified = mtime_ms(path).unwrap_or_else(now_ms);
            batch.push(SessionRecord {
                source: "import".into(),
                first_seen: first.unwrap_or(modified).min(modified),
                ..SessionRecord::new(id.clone(), cwd, path.clone(), Starter::Import, modified)
            });
            if batch.len() == BATCH {
                imported += write_batch(&store, &mut batch)?;
            }
        }
        imported += write_batch(&store, &mut batch)?;
        let skipped =
            if unreadable > 0 { format!(", {unreadable} without a cwd skipped") } else { String::new() };
        crate::outln!(
            "imported {imported} sessions from {} ({} already recorded{skipped})",
            projects.display(),
            found.len() - imported - unreadable,
        )?;
        Ok(exit::OK)
    }
}

/// Records written under one hold of the store lock (each costs two fsyncs: ~1-3 ms).
const BATCH: usize = 64;

/// Writes the records of `batch` that are still unrecorded (a hook may have recorded one
/// meanwhile, with better information); returns how many it wrote.
fn write_batch(store: &Store, batch: &mut Vec<SessionRecord>) -> Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let mut written = 0;
    for rec in batch.drain(..) {
        if tx.session(&rec.id)?.is_none() {
            tx.put_session(&rec)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Every `projects/*/<uuid>.jsonl` (others, such as agents' side transcripts, are not
/// sessions); `None` when there is no `projects/` dir at all.
fn transcripts(projects: &Path) -> Result<Option<Vec<(SessionId, PathBuf)>>> {
    let dirs = match std::fs::read_dir(projects) {
        Ok(dirs) => dirs,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", projects.display())),
    };
    let mut found = Vec::new();
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else { continue };
        for path in files.flatten().map(|f| f.path()) {
            let stem = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl"));
            if let Some(id) = stem.and_then(|stem| SessionId::parse(stem).ok()) {
                found.push((id, path));
            }
        }
    }
    Ok(Some(found))
}

/// The cwd and the first timestamp (Unix ms) of a transcript, from its first lines.
fn read_head(path: &Path) -> Option<(PathBuf, Option<u64>)> {
    let file = crate::transcript::open_regular(path).ok()?;
    let reader = BufReader::new(file.take(HEAD_BYTES));
    let mut first = None;
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if first.is_none() {
            first = value
                .get("timestamp")
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond() as u64);
        }
        if let Some(cwd) = value.get("cwd").and_then(|c| c.as_str()).map(PathBuf::from)
            && cwd.is_absolute()
        {
            return Some((cwd, first));
        }
    }
    None
}
