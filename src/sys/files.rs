//! Atomic, private file writes: the operating system's side of every state file, and of
//! Claude Code's settings.json.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Suffix of the temp files `write_atomic` renames into place; readers skip them and
/// `prune` sweeps ones a killed writer left behind.
pub const TMP_SUFFIX: &str = ".tmp";

/// How much a write must survive. Every write is atomic (temp file and rename), so a killed
/// process leaves the old or the new content; these say what survives a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The file's content and its rename (fsync of the file, then of the dir).
    Full,
    /// Neither: for what means nothing after a reboot (a terminal turn in progress, a
    /// session's live pids: see `Locked::update_session`). Still atomic: a killed process
    /// leaves the old file or the new one; a power loss may leave the old one, or none, or
    /// (on file systems that do not order a rename after its file's data, such as ext4 with
    /// `data=writeback`) an empty one, which readers take as missing.
    Volatile,
}

/// Replaces `path` with `bytes` so that a reader, or a crash at any instant, sees either the
/// old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, 0o600, Durability::Full)
}

/// `write_atomic` with another mode than 0600 (for files of Claude Code's, which keep theirs).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, bytes, mode, Durability::Full)
}

/// `write_atomic` with a mode and a durability.
pub fn write_atomic_with(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> Result<()> {
    write_atomic_by(path, mode, durability, |mut file| file.write_all(bytes))
}

/// `write_atomic_with` of what `fill` writes to the new file (a large file need not be whole
/// in memory first).
pub fn write_atomic_by(
    path: &Path,
    mode: u32,
    durability: Durability,
    fill: impl FnOnce(&File) -> io::Result<()>,
) -> Result<()> {
    let dir = path.parent().context("state file has no parent dir")?;
    let tmp = temp_path(path);
    let result = (|| -> io::Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        fill(&file)?;
        // Errors of the last write only show at close, which Drop ignores: sync first.
        if durability != Durability::Volatile {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        // The rename itself is only durable once the directory is.
        if durability == Durability::Full {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("could not write {}", path.display()));
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let nonce: u32 = rand_u32();
    path.with_file_name(format!(".{name}.{}.{nonce:08x}{TMP_SUFFIX}", std::process::id()))
}

fn rand_u32() -> u32 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Removes `path`; a file that is already gone is fine.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("could not remove {}", path.display())),
    }
}

/// Opens (creating, 0600) a log that several processes append to, emptied: every write
/// lands at its end (`O_APPEND`), so [`cap_log`] can cut it while they write.
pub fn open_log(path: &Path) -> io::Result<File> {
    let file =
        OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)?;
    file.set_len(0)?;
    Ok(file)
}

/// Keeps a log that its writers append to (opened by [`open_log`]) under `max` bytes: once
/// it is longer, it is cut to about its last `keep` bytes, from a line's start, after a line
/// that says so. Returns whether it cut. A line written at the instant of the cut may be
/// lost; nothing else is.
pub fn cap_log(path: &Path, max: u64, keep: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let len = meta.len();
    if !meta.is_file() || len <= max {
        return Ok(false);
    }
    let keep = keep.min(len);
    let mut tail = vec![0u8; usize::try_from(keep).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut tail, len - keep)?;
    let start = tail.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut kept = format!(
        "[clawsess: cut {} bytes before this line, to keep the log under {max}]\n",
        len - keep + start as u64
    )
    .into_bytes();
    kept.extend_from_slice(&tail[start..]);
    file.set_len(0)?;
    (&file).write_all(&kept)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_replaces_content_privately_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_atomic_failure_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        // A directory where the file should be makes the rename fail.
        let blocked = dir.path().join("b.json");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_log_over_its_cap_keeps_its_last_lines_and_its_writers_go_on_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        let mut writer = open_log(&path).unwrap();
        for i in 0..1000 {
            writeln!(writer, "line {i:04} {}", "x".repeat(90)).unwrap();
        }
        let before = fs::metadata(&path).unwrap().len();
        assert!(!cap_log(&path, before, 1000).unwrap(), "at its cap: left alone");
        assert!(cap_log(&path, 50_000, 1000).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.len() <= 1000 + 100, "{} bytes kept", text.len());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("[clawsess: cut "), "{}", lines[0]);
        assert!(lines[1].starts_with("line 09"), "a whole line: {}", lines[1]);
        assert!(lines.last().unwrap().starts_with("line 0999"));
        // The writer's next line lands right after, not at its old offset (no hole).
        writeln!(writer, "after").unwrap();
        let after = fs::read_to_string(&path).unwrap();
        assert_eq!(after, format!("{text}after\n"));
        // A new log starts empty.
        drop(writer);
        open_log(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }
}

/// A path's size and mtime at one moment (both `None`: it was not there), to tell later
/// whether it changed: created, removed, written or replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// Its mtime in ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<u64>,
}

impl Stamp {
    /// `path` as it is now (one `stat`, following symlinks).
    pub fn of(path: &Path) -> Stamp {
        let meta = fs::metadata(path).ok();
        let mtime_ns = meta.as_ref().and_then(|m| m.modified().ok()).and_then(|t| {
            let since = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            u64::try_from(since.as_nanos()).ok()
        });
        Stamp { path: path.to_path_buf(), len: meta.map(|m| m.len()), mtime_ns }
    }

    /// Whether the path differs now from this stamp.
    pub fn changed(&self) -> bool {
        Stamp::of(&self.path) != *self
    }
}
