//! The state dir's privacy and careful reads and writes of its JSON state files (the atomic
//! write itself is `crate::sys::files`'s).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sys::files::{Durability, write_atomic_with};

/// Creates `dir` (and parents) private to the user, and refuses one that another user owns
/// or can write (see [`check_private_dir`]).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create {}", dir.display()))?;
    check_private_dir(dir)
}

/// Refuses a state dir that is not the user's own or that others can write: whoever can
/// write there can plant a lock file as a symlink or hard link to one of the user's files,
/// or route a bot's key to a session of their choice.
pub fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).with_context(|| format!("could not read {}", dir.display()))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let problem = if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != me {
        Some(format!("belongs to uid {}, not to you (uid {me})", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!("can be written by others (mode {:o})", meta.mode() & 0o777))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(what) => bail!(
            "refusing the state dir {}: it {what}; another user could plant files in it. \
             Fix it with `chmod 700 {0}` if it is yours (or remove it), or set CLAWSESS_HOME \
             to a private dir",
            dir.display()
        ),
    }
}

/// Serializes `value` and writes it with `write_atomic`.
pub fn write_json<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic_with(path, &bytes, 0o600, durability)
}

/// Reads a JSON state file; `None` when it does not exist. A file that does not parse is an
/// error naming it, and is left as it is.
pub fn read_json<T: DeserializeOwned + Versioned>(path: &Path) -> Result<Option<T>> {
    let bytes = match read_no_follow(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
    };
    parse_json(path, &bytes).map(Some)
}

/// A state file's bytes; a symlink is refused (state files are never links).
fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    // Sized from the metadata just read: `File::read_to_end` would ask the size and the
    // position again (two more system calls on every state file a hook reads). The one byte
    // over lets the read that finds the end need no growing; a file that grew meanwhile is
    // still read whole.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    (&file).take(u64::MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The `.json` files of one state dir, read the cheap way: each opened relative to the dir's
/// own descriptor (the kernel walks one name, not the whole path) and read with one `read`
/// into a buffer kept from file to file, no `stat` (the dir entry says it is a regular file).
/// At 100,000 sessions `list` reads 100,000 records: a full path and a `stat` each cost it
/// about half its time. Several [`DirReader`]s may read one dir at once.
pub struct StateDir {
    dir: fs::File,
}

/// The `.json` entries of a [`StateDir`]: (stem, file type).
pub type Entries = Vec<(String, fs::FileType)>;

/// One file of a [`StateDir`] that was not parsed.
pub enum DirFile<'a> {
    /// Its bytes, which did not parse.
    Bytes(&'a [u8]),
    /// Removed since the dir was listed.
    Gone,
    /// Not a regular file as the dir listed it (a symlink, a dir, ...): to be read by its
    /// path, which says what is wrong with it.
    Other,
}

impl StateDir {
    /// `dir` opened, with its `.json` entries (not temp files) as (stem, file type); an absent
    /// dir is none.
    pub fn open(dir: &Path) -> Result<Option<(Self, Entries)>> {
        let context = || format!("could not read {}", dir.display());
        let handle = match OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(dir) {
            Ok(handle) => handle,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(context),
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).with_context(context)? {
            let entry = entry.with_context(context)?;
            // The name's own allocation becomes the stem's (100,000 of them in `list`).
            let Ok(mut name) = entry.file_name().into_string() else { continue };
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            name.truncate(name.len() - ".json".len());
            names.push((name, entry.file_type().with_context(context)?));
        }
        Ok(Some((Self { dir: handle }, names)))
    }

    /// A reader of its files, with a buffer of its own.
    pub fn reader(&self) -> DirReader<'_> {
        // Zeroed once: a record is about 500 bytes, and a larger file goes on into `rest`.
        DirReader { dir: &self.dir, buf: vec![0; 8 << 10], rest: Vec::new(), name: Vec::new() }
    }
}

/// Reads files of a [`StateDir`] one after another.
pub struct DirReader<'a> {
    dir: &'a fs::File,
    /// What the first `read` of a file fills.
    buf: Vec<u8>,
    /// A file that did not fit in `buf`, or did not parse.
    rest: Vec<u8>,
    name: Vec<u8>,
}

impl DirReader<'_> {
    /// Reads `<stem>.json`, of type `kind` as the dir listed it, and hands its bytes to
    /// `parse`. The first `read` is taken for the whole file when `parse` accepts it (a short
    /// read of a regular file is its end; and were it not, a JSON document cut short does not
    /// parse): only a file that fills the buffer or does not parse is read on to its end and
    /// parsed again.
    pub fn read<T>(
        &mut self,
        stem: &str,
        kind: fs::FileType,
        mut parse: impl FnMut(&[u8]) -> Option<T>,
    ) -> io::Result<Result<T, DirFile<'_>>> {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd};
        if !kind.is_file() {
            return Ok(Err(DirFile::Other));
        }
        self.name.clear();
        self.name.extend_from_slice(stem.as_bytes());
        self.name.extend_from_slice(b".json\0");
        let Ok(name) = std::ffi::CStr::from_bytes_with_nul(&self.name) else {
            return Ok(Err(DirFile::Other));
        };
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a valid dir descriptor and a NUL-terminated name; the descriptor returned
        // is owned by the `File` right away.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::NotFound => Ok(Err(DirFile::Gone)),
                _ => Err(err),
            };
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let mut file = unsafe { fs::File::from_raw_fd(fd) };
        let n = loop {
            match file.read(&mut self.buf) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        };
        if n < self.buf.len()
            && let Some(value) = parse(&self.buf[..n])
        {
            return Ok(Ok(value));
        }
        self.rest.clear();
        self.rest.extend_from_slice(&self.buf[..n]);
        file.read_to_end(&mut self.rest)?;
        Ok(match parse(&self.rest) {
            Some(value) => Ok(value),
            None => Err(DirFile::Bytes(&self.rest)),
        })
    }
}

/// The `.json` files of `dir` (not temp files) with their modification times (as
/// `fs::metadata` says: symlinks followed), each asked relative to the dir (one name for the
/// kernel to walk, not the whole path); a file that vanished meanwhile is left out, an
/// absent dir is empty.
pub fn json_mtimes(dir: &Path) -> Result<Vec<(String, std::time::SystemTime)>> {
    let Some((dir, names)) = StateDir::open(dir)? else { return Ok(Vec::new()) };
    let dir = &dir;
    // Many files are asked on two threads (each `stat` is mostly the kernel's work).
    if names.len() < 4096 {
        return Ok(dir.mtimes(&names));
    }
    let (mine, theirs) = names.split_at(names.len() / 2);
    let (mut all, rest) = crate::sys::both(|| dir.mtimes(mine), || dir.mtimes(theirs));
    all.extend(rest);
    Ok(all)
}

impl StateDir {
    /// The modification times of `<stem>.json` of `names`, each asked relative to the dir.
    fn mtimes(&self, names: &[(String, fs::FileType)]) -> Vec<(String, std::time::SystemTime)> {
        use std::os::fd::AsRawFd;
        let mut name = Vec::new();
        let mut out = Vec::with_capacity(names.len());
        for (stem, _) in names {
            name.clear();
            name.extend_from_slice(stem.as_bytes());
            name.extend_from_slice(b".json\0");
            let Ok(cname) = std::ffi::CStr::from_bytes_with_nul(&name) else { continue };
            let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: a valid dir descriptor, a NUL-terminated name, and room for the answer.
            if unsafe { libc::fstatat(self.dir.as_raw_fd(), cname.as_ptr(), stat.as_mut_ptr(), 0) } != 0 {
                continue;
            }
            // SAFETY: `fstatat` succeeded, so it filled `stat`.
            let stat = unsafe { stat.assume_init() };
            let nanos = std::time::Duration::from_nanos(u64::try_from(stat.st_mtime_nsec).unwrap_or(0));
            let secs = std::time::Duration::from_secs(stat.st_mtime.unsigned_abs());
            let time = match stat.st_mtime >= 0 {
                true => std::time::UNIX_EPOCH + secs + nanos,
                false => std::time::UNIX_EPOCH - secs + nanos,
            };
            out.push((stem.clone(), time));
        }
        out
    }
}

/// A state file's format version (its `"v"`).
pub trait Versioned {
    fn version(&self) -> Option<u32>;
}

impl Versioned for serde_json::Value {
    fn version(&self) -> Option<u32> {
        self.get("v").and_then(serde_json::Value::as_u64).and_then(|v| u32::try_from(v).ok())
    }
}

/// Parses the bytes of the state file `path` (once: this is on every hot path), then checks
/// its format version. Only when that fails is the version looked at alone, to tell a file
/// from a newer clawsess from a broken one.
pub fn parse_json<T: DeserializeOwned + Versioned>(path: &Path, bytes: &[u8]) -> Result<T> {
    #[derive(serde::Deserialize)]
    struct Probe {
        v: Option<u32>,
    }
    let (version, err) = match serde_json::from_slice::<T>(bytes) {
        Ok(value) if value.version() == Some(super::FORMAT) => return Ok(value),
        Ok(value) => (value.version(), anyhow::anyhow!("missing or unknown format version")),
        Err(err) => (serde_json::from_slice::<Probe>(bytes).ok().and_then(|p| p.v), err.into()),
    };
    if let Some(v) = version.filter(|&v| v > super::FORMAT) {
        bail!(
            "{} was written by a newer clawsess (state format {v}, this one knows {}); \
             upgrade clawsess, it was left untouched",
            path.display(),
            super::FORMAT
        );
    }
    Err(err.context(format!(
        "{} is not a valid clawsess state file; it was left untouched (see `clawsess doctor`)",
        path.display()
    )))
}

/// The `.json` files of `dir` (not temp files), as (stem, path); an absent dir is empty.
pub fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("could not read {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Some(stem) = name.strip_suffix(".json") {
            out.push((stem.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_json_names_a_corrupt_file_and_a_future_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        fs::write(&path, b"{not json").unwrap();
        let err = format!("{:#}", read_json::<serde_json::Value>(&path).unwrap_err());
        assert!(err.contains("x.json") && err.contains("doctor"), "{err}");
        fs::write(&path, b"{\"v\": 99}").unwrap();
        let err = format!("{:#}", read_json::<serde_json::Value>(&path).unwrap_err());
        assert!(err.contains("newer clawsess"), "{err}");
        assert!(read_json::<serde_json::Value>(&dir.path().join("none.json")).unwrap().is_none());
    }
}
