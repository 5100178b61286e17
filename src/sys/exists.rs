//! Whether many files exist, asked cheaply: `list` asks it of every session's transcript,
//! and transcripts live in a few dirs (one per project).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Dirs kept open at most; past them, paths are asked whole.
const MAX_DIRS: usize = 256;
/// Paths asked in one dir before its names are read at once (one directory read instead of a
/// lookup per path: at 100,000 sessions in 16 projects the lookups were 70% of `list`'s
/// system calls).
const READ_DIR_AFTER: u32 = 32;

/// Answers [`Path::exists`] (symlinks followed; any error is "no") for many paths: each
/// path's dir is opened once (`O_PATH`) and the file looked up relative to it, so the kernel
/// walks one name per path instead of every component of it.
#[derive(Default)]
pub struct Exists {
    dirs: HashMap<Vec<u8>, Option<Dir>, Fast>,
    name: Vec<u8>,
}

/// A fast hash of file names (of this user's own dirs: no attacker picks them against it):
/// at 100,000 transcripts SipHash of every name listed and asked was a tenth of `list`.
pub type Fast = std::hash::BuildHasherDefault<FastHasher>;

#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A dir paths were asked in.
struct Dir {
    fd: OwnedFd,
    asked: u32,
    /// A lookup in it found a file.
    found: bool,
    /// Its names, once read: those of regular files and dirs, which exist as listed (a symlink
    /// may dangle, and a name that is not listed is still looked up: the listing is a moment
    /// earlier, and a lookup may match a name it does not spell the same way).
    listed: Option<std::collections::HashSet<Vec<u8>, Fast>>,
}

impl Exists {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `path` exists, as `path.exists()` says.
    pub fn check(&mut self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        // Only an absolute path whose last component is a plain name (not `.`, `..`, nor a
        // trailing slash, which ask more of the file than that it exists) goes the short way.
        let Some(slash) = bytes.iter().rposition(|&b| b == b'/') else { return path.exists() };
        let name = &bytes[slash + 1..];
        if !bytes.starts_with(b"/") || matches!(name, b"" | b"." | b"..") || name.contains(&0) {
            return path.exists();
        }
        let parent = if slash == 0 { &b"/"[..] } else { &bytes[..slash] };
        if !self.dirs.contains_key(parent) {
            if self.dirs.len() >= MAX_DIRS {
                return path.exists();
            }
            let dir = open_dir(parent).map(|fd| Dir { fd, asked: 0, found: false, listed: None });
            self.dirs.insert(parent.to_vec(), dir);
        }
        // A dir that cannot be opened: nothing in it can be found either.
        let Some(Some(dir)) = self.dirs.get_mut(parent) else { return false };
        dir.asked += 1;
        // Listed only once a lookup in it found a file: a dir that can be read but not
        // searched lists names that a lookup does not find.
        if dir.asked >= READ_DIR_AFTER && dir.found && dir.listed.is_none() {
            dir.listed = Some(list_dir(parent).unwrap_or_default());
        }
        if dir.listed.as_ref().is_some_and(|names| names.contains(name)) {
            return true;
        }
        self.name.clear();
        self.name.extend_from_slice(name);
        self.name.push(0);
        let Ok(name) = CStr::from_bytes_with_nul(&self.name) else { return path.exists() };
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid dir descriptor, a NUL-terminated name, and room for the answer.
        let found = unsafe { libc::fstatat(dir.fd.as_raw_fd(), name.as_ptr(), stat.as_mut_ptr(), 0) == 0 };
        dir.found |= found;
        found
    }
}

/// The names of `dir`'s regular files and dirs (none if it cannot be read).
fn list_dir(dir: &[u8]) -> Option<std::collections::HashSet<Vec<u8>, Fast>> {
    let entries = std::fs::read_dir(std::ffi::OsStr::from_bytes(dir)).ok()?;
    let mut names = std::collections::HashSet::default();
    for entry in entries {
        let entry = entry.ok()?;
        // The type the listing gives (no `stat` unless the file system gives none).
        if entry.file_type().is_ok_and(|t| t.is_file() || t.is_dir()) {
            names.insert(entry.file_name().into_encoded_bytes());
        }
    }
    Some(names)
}

/// `dir` opened for lookups only (symlinks followed, as a whole path's lookup would).
fn open_dir(dir: &[u8]) -> Option<OwnedFd> {
    let dir = std::ffi::CString::new(dir).ok()?;
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a NUL-terminated path; the descriptor returned is owned right away.
    let fd = unsafe { libc::open(dir.as_ptr(), flags) };
    // SAFETY: `fd` was just opened and nothing else owns it.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_path_exists_does() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/file"), "").unwrap();
        std::os::unix::fs::symlink(d.join("sub/file"), d.join("sub/link")).unwrap();
        std::os::unix::fs::symlink(d.join("sub/none"), d.join("sub/dangling")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("linked")).unwrap();
        std::fs::write(d.join("plain"), "").unwrap();
        let mut exists = Exists::new();
        let paths = [
            "sub/file",
            "sub/link",
            "sub/dangling",
            "sub/none",
            "linked/file",
            "linked/none",
            "sub",
            "sub/",
            "sub/.",
            "sub/..",
            "sub/file/",
            "sub/file/.",
            "plain/x",
            "none/x",
            "sub/./file",
            "sub/../plain",
        ];
        // Past `READ_DIR_AFTER` asks the dirs' names are read: the same answers.
        for _ in 0..2 * READ_DIR_AFTER {
            for p in paths {
                let path = d.join(p);
                assert_eq!(exists.check(&path), path.exists(), "{p}");
            }
        }
        assert!(exists.check(Path::new("/")));
        assert_eq!(exists.check(Path::new("relative/x")), Path::new("relative/x").exists());
    }
}
