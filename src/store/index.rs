//! The sessions index: what `list` needs of every record, in one file, so that `list` at
//! 100,000 sessions reads two files and a directory instead of 100,000 records.
//!
//! ```text
//! sessions.index     a header line, then `<stem>\t<the record's compact JSON>` per record
//! sessions.journal   the ids of records written since the index, one a line
//! ```
//!
//! Every durable write or removal of a record through the locked guard first appends the
//! session's id to the journal ([`journal`]) and holds a shared `flock` on the journal until
//! the record's rename is done; a batch of removals (`prune`) appends all its ids in one
//! write ([`journal_many`]) and holds the lock until the last of them is done. A reader ([`View::load`]) takes the index and the journal's
//! lines after the offset the index recorded (under the shared lock, so no compaction cuts
//! between the two), re-reads only those records, and compares the index's names with one
//! directory read of `sessions/`: a name the index lacks is read, a name it has that is gone
//! is dropped. A reader that finds the journal long, or the index missing, unparseable, of
//! another format or of another boot, folds it all into a new index ([`View::compact`]) if it
//! can take the exclusive lock at once: with it held no writer is between its append and its
//! rename, so every journaled record is final when it is read again.
//!
//! Power loss: the journal is never synced, so its last appends may vanish while the fsynced
//! record survived; the index carries the boot id, and one of another boot is not trusted
//! (the next `list` reads every record and writes a new one). A killed process never loses a
//! completed `write`, so within one boot the journal is complete.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::SessionRecord;
use crate::ident::SessionId;
use crate::sys::files::{Durability, write_atomic_by};

/// The index's own format version (a cache: one of another version is rebuilt, not refused).
const INDEX_FORMAT: u32 = 1;
/// A journal longer than this is cut by the next writer that can take the exclusive lock at
/// once (the index then no longer matches it and the next `list` rebuilds it): about 28,000
/// record writes with no `list` between them.
const JOURNAL_MAX: u64 = 1 << 20;

pub(super) fn index_path(dir: &Path) -> PathBuf {
    dir.join("sessions.index")
}

pub(super) fn journal_path(dir: &Path) -> PathBuf {
    dir.join("sessions.journal")
}

/// The first line of the index.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Header {
    v: u32,
    /// `/proc/sys/kernel/random/boot_id` when it was written.
    boot: String,
    /// The journal it goes with: its inode and the token of its first line.
    journal_ino: u64,
    journal_token: String,
    /// The journal's lines from this byte on are not in the index.
    offset: u64,
}

/// This boot's id (empty if the kernel does not say: then no index is ever trusted).
pub(super) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn open_journal(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .read(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(journal_path(dir))
}

/// A record write announced in the journal: the shared lock on the journal is held until
/// this is dropped, after the record's rename.
pub(super) struct Journaled {
    file: File,
    long: bool,
}

/// Appends `id` to the journal and holds its shared lock: call before writing or removing the
/// record, and drop after the rename.
pub(super) fn journal(dir: &Path, id: &SessionId) -> Result<Journaled> {
    journal_many(dir, std::slice::from_ref(id))
}

/// [`journal`] for a batch: all of `ids` appended in one `write`, and the shared lock held
/// until the returned [`Journaled`] is dropped, after every one of their writes or removals
/// (`prune` removes a batch of records so: one open, lock and write a batch, not one each).
pub(super) fn journal_many(dir: &Path, ids: &[SessionId]) -> Result<Journaled> {
    let journaled = (|| -> io::Result<Journaled> {
        let mut file = open_journal(dir)?;
        file.lock_shared()?;
        let mut lines = Vec::with_capacity(37 * ids.len());
        for id in ids {
            lines.extend_from_slice(id.as_str().as_bytes());
            lines.push(b'\n');
        }
        file.write_all(&lines)?;
        let long = file.metadata()?.len() > JOURNAL_MAX;
        Ok(Journaled { file, long })
    })();
    journaled.map_err(|err| {
        anyhow::Error::new(err).context(format!("could not append to {}", journal_path(dir).display()))
    })
}

impl Drop for Journaled {
    fn drop(&mut self) {
        if !self.long {
            return;
        }
        // Cut a long journal (no `list` folded it in for a long time). The lock is let go
        // first (flock's conversion is not atomic): the record is renamed already.
        let _ = self.file.unlock();
        if self.file.try_lock().is_ok() {
            let _ = restart_journal(&self.file);
        }
    }
}

/// Empties the journal (held exclusively) and gives it a new token: an index of the old one
/// no longer matches it. Returns the token.
fn restart_journal(file: &File) -> io::Result<()> {
    restart_journal_with(file, &format!("{:016x}", rand_u64()))
}

fn restart_journal_with(mut file: &File, token: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.write_all(format!("#{token}\n").as_bytes())
}

fn rand_u64() -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// The token of a journal's bytes (its first line, `#<token>`; empty for a journal that was
/// never restarted) and where its entries begin.
fn journal_token(bytes: &[u8]) -> (&str, usize) {
    if let Some(rest) = bytes.strip_prefix(b"#")
        && let Some(end) = rest.iter().position(|&b| b == b'\n')
    {
        return (std::str::from_utf8(&rest[..end]).unwrap_or(""), end + 2);
    }
    ("", 0)
}

/// The ids in journal bytes.
fn journal_ids(bytes: &[u8], into: &mut Stems) {
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(line) = std::str::from_utf8(line)
            && SessionId::parse(line).is_ok()
        {
            into.insert(line.to_owned());
        }
    }
}

/// The index and journal as one reader found them.
pub(super) struct View {
    /// The index's bytes (empty when it is not trusted).
    bytes: Vec<u8>,
    /// Stem -> the record's JSON within `bytes`; empty when the index is not trusted.
    entries: Entries,
    /// Whether the index was trusted.
    pub valid: bool,
    /// Stems written since the index (its journal lines); to be read from their files.
    journaled: Stems,
    /// The journal: open, its inode and token, and where this reader stopped reading it.
    journal: Option<File>,
    ino: u64,
    token: String,
    end: u64,
    boot: String,
    /// [`settle`](Self::settle) found no writer between its journal line and its rename: every
    /// record in `journaled` was final before this reader read it.
    settled: bool,
}

impl View {
    /// Reads the index and the journal after it, both under the journal's shared lock.
    pub fn load(dir: &Path, boot: &str) -> View {
        let mut view = View {
            bytes: Vec::new(),
            entries: Entries::default(),
            valid: false,
            journaled: Stems::default(),
            journal: None,
            ino: 0,
            token: String::new(),
            end: 0,
            boot: boot.to_owned(),
            settled: false,
        };
        let Ok(journal) = open_journal(dir) else { return view };
        if journal.lock_shared().is_err() {
            return view;
        }
        let mut jbytes = Vec::new();
        let read = journal.metadata().and_then(|meta| {
            if !meta.is_file() {
                return Err(io::Error::other("not a regular file"));
            }
            view.ino = meta.ino();
            (&journal).read_to_end(&mut jbytes)
        });
        let index = read.is_ok().then(|| read_file(&index_path(dir)));
        let _ = journal.unlock();
        let Some(index) = index else { return view };
        let (token, start) = journal_token(&jbytes);
        view.token = token.to_owned();
        // Only whole lines: a writer mid-append has renamed nothing yet, and its lines are
        // read whole by the next reader (or `settle`) from here.
        let whole = memchr::memrchr(b'\n', &jbytes).map_or(0, |at| at + 1).max(start);
        jbytes.truncate(whole);
        view.end = jbytes.len() as u64;
        // Not trusted: every journal entry may be of a record the index does not hold yet.
        let mut offset = start;
        if let Ok(bytes) = index
            && let Some(entries) = parse_index(&bytes, |h| {
                h.v == INDEX_FORMAT
                    && !boot.is_empty()
                    && h.boot == boot
                    && h.journal_ino == view.ino
                    && h.journal_token == view.token
                    && h.offset >= start as u64
                    && h.offset <= view.end
            })
        {
            offset = usize::try_from(entries.0).unwrap_or(usize::MAX).min(jbytes.len());
            view.entries = entries.1;
            view.bytes = bytes;
            view.valid = true;
        }
        journal_ids(&jbytes[offset..], &mut view.journaled);
        view.journal = Some(journal);
        view
    }

    /// Makes the records this reader is about to read from their files final for a rebuild,
    /// if the journal's exclusive lock is free right now (held only while the journal's new
    /// lines are read): with it, no writer is between its journal line and its rename, so
    /// every record journaled so far is on disk as its writer left it, and a rebuild
    /// ([`compact`](Self::compact)) need read again only the records journaled after this.
    /// The new lines' records are read from their files too. Without it the rebuild reads
    /// again every journaled record, under the lock.
    pub fn settle(&mut self) {
        let Some(journal) = &self.journal else { return };
        if journal.try_lock().is_err() {
            return;
        }
        // Restarted since (None), or unreadable: this reader's view of it no longer holds (no
        // rebuild either).
        let settled = match self.journal_since_load(journal) {
            Ok(Some(all)) => {
                journal_ids(&all[self.end as usize..], &mut self.journaled);
                self.end = all.len() as u64;
                true
            }
            Ok(None) | Err(_) => false,
        };
        let _ = journal.unlock();
        self.settled = settled;
    }

    /// The whole journal (`journal`, this reader's, its lock held), read again: `None` when it
    /// was restarted since this reader loaded it (another inode or token, or shorter than what
    /// was read), so that this reader's view of it no longer holds.
    fn journal_since_load(&self, journal: &File) -> io::Result<Option<Vec<u8>>> {
        let meta = journal.metadata()?;
        let mut all = Vec::new();
        std::io::Seek::seek(&mut &*journal, std::io::SeekFrom::Start(0))?;
        (&*journal).read_to_end(&mut all)?;
        let (token, _) = journal_token(&all);
        let same = meta.ino() == self.ino && token == self.token && all.len() as u64 >= self.end;
        Ok(same.then_some(all))
    }

    /// The record JSON the index holds for `stem`, unless it was written since (or the index
    /// is not trusted). Only regular files are taken from the index.
    pub fn indexed(&self, stem: &str, kind: std::fs::FileType) -> Option<(usize, usize)> {
        if !kind.is_file() || self.journaled.contains(stem) {
            return None;
        }
        self.entries.get(stem).copied()
    }

    pub fn json(&self, range: (usize, usize)) -> &[u8] {
        &self.bytes[range.0..range.1]
    }

    /// Whether a reader that had to read `read` of `total` records from their files should
    /// write a new index.
    pub fn wants_compaction(&self, read: usize, total: usize) -> bool {
        !self.valid || read > (total / 32).max(512)
    }

    /// Writes a new index of `records` (stem, the record's JSON: every record this reader
    /// found, parsed), if the exclusive lock is free right now: the records of journal lines
    /// appended since this reader read the journal are read again under it, and so is every
    /// record it re-read unless it [settled](Self::settle) (a writer may have been between its
    /// append and its rename then). Then the journal is restarted. A cache: any failure leaves
    /// the index to the next reader.
    pub fn compact<'a>(
        &self,
        dir: &Path,
        records: impl Iterator<Item = (&'a str, std::borrow::Cow<'a, [u8]>)>,
    ) -> Result<bool> {
        let Some(journal) = &self.journal else { return Ok(false) };
        if journal.try_lock().is_err() {
            return Ok(false);
        }
        let result = (|| -> Result<bool> {
            // Restarted since (by another reader's compaction, or a writer cutting it).
            let Some(all) = self.journal_since_load(journal)? else { return Ok(false) };
            let mut again = if self.settled { Stems::default() } else { self.journaled.clone() };
            journal_ids(&all[self.end as usize..], &mut again);
            let new_token = format!("{:016x}", rand_u64());
            let header = Header {
                v: INDEX_FORMAT,
                boot: self.boot.clone(),
                journal_ino: self.ino,
                journal_token: new_token.clone(),
                offset: new_token.len() as u64 + 2,
            };
            let header = serde_json::to_vec(&header)?;
            let sessions = dir.join("sessions");
            // Streamed to the file (at 100,000 sessions the index is ~40 MB: built in memory
            // first, its allocation and copy cost more than the write).
            let fill = |file: &File| -> io::Result<()> {
                let mut out = io::BufWriter::with_capacity(1 << 18, file);
                out.write_all(&header)?;
                out.write_all(b"\n")?;
                let mut line = |stem: &str, json: &[u8]| -> io::Result<()> {
                    out.write_all(stem.as_bytes())?;
                    out.write_all(b"\t")?;
                    out.write_all(json)?;
                    out.write_all(b"\n")
                };
                for (stem, json) in records {
                    if !again.contains(stem) {
                        line(stem, &json)?;
                    }
                }
                for stem in &again {
                    let path = sessions.join(format!("{stem}.json"));
                    if let Ok(Some(rec)) = super::read_json::<SessionRecord>(&path) {
                        line(stem, &serde_json::to_vec(&rec).map_err(io::Error::other)?)?;
                    }
                }
                out.flush()
            };
            // Unsynced: a power loss makes it another boot's, which is not trusted.
            write_atomic_by(&index_path(dir), 0o600, Durability::Volatile, fill)?;
            restart_journal_with(journal, &new_token)?;
            Ok(true)
        })();
        let _ = journal.unlock();
        result
    }
}

/// A file's bytes (symlinks refused, a missing file is an error too).
fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut file =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

type Entries = HashMap<Box<str>, (usize, usize), std::hash::BuildHasherDefault<StemHasher>>;

/// Names of records (the journal's), hashed as the index's are: every name of `sessions/` is
/// looked up in them.
type Stems = HashSet<String, std::hash::BuildHasherDefault<StemHasher>>;

/// A fast hash of the index's names (file names of the state dir: no attacker picks them).
#[derive(Default, Clone, Copy)]
struct StemHasher(u64);

impl std::hash::Hasher for StemHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The index's journal offset and entries, if its header passes `trusted` and every line
/// parses as `<stem>\t<json>`.
fn parse_index(bytes: &[u8], trusted: impl Fn(&Header) -> bool) -> Option<(u64, Entries)> {
    let first = memchr::memchr(b'\n', bytes)?;
    let header: Header = serde_json::from_slice(&bytes[..first]).ok()?;
    if !trusted(&header) || bytes.last() != Some(&b'\n') {
        return None;
    }
    let mut entries = Entries::with_capacity_and_hasher(bytes.len() / 300, Default::default());
    let mut at = first + 1;
    while at < bytes.len() {
        let end = at + memchr::memchr(b'\n', &bytes[at..])?;
        let line = &bytes[at..end];
        let tab = memchr::memchr(b'\t', line)?;
        let stem = std::str::from_utf8(&line[..tab]).ok()?;
        entries.insert(stem.into(), (at + tab + 1, end));
        at = end + 1;
    }
    Some((header.offset, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{COMMAND_LOCK_WAIT, Starter, Store, write_json};

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    fn record(n: u8, title: &str) -> SessionRecord {
        SessionRecord {
            title: Some(title.to_owned()),
            ..SessionRecord::new(id(n), "/p".into(), "/p/t.jsonl".into(), Starter::Person, 1)
        }
    }

    /// (id, title) of every session as `list` reads them, sorted.
    fn listed(store: &Store) -> Vec<(SessionId, String)> {
        let (recs, bad, _) = store.sessions_indexed_with(|_: &mut (), r| r).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        let mut out: Vec<_> = recs.into_iter().map(|r| (r.id, r.title.unwrap_or_default())).collect();
        out.sort();
        out
    }

    fn titles(pairs: &[(u8, &str)]) -> Vec<(SessionId, String)> {
        pairs.iter().map(|&(n, t)| (id(n), t.to_owned())).collect()
    }

    fn index(store: &Store) -> String {
        std::fs::read_to_string(index_path(store.dir())).unwrap()
    }

    /// Rewrites the index as if it said `title` for session `n` (what the records never said):
    /// a reader that shows `title` read the index.
    fn plant(store: &Store, n: u8, title: &str) {
        let text = index(store);
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.split_once('\t') {
                Some((stem, json)) if stem == id(n).as_str() => {
                    let mut rec: SessionRecord = serde_json::from_str(json).unwrap();
                    rec.title = Some(title.to_owned());
                    format!("{stem}\t{}", serde_json::to_string(&rec).unwrap())
                }
                _ => line.to_owned(),
            })
            .collect();
        std::fs::write(index_path(store.dir()), lines.join("\n") + "\n").unwrap();
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        for n in 1..=3 {
            tx.put_session(&record(n, "old")).unwrap();
        }
        drop(tx);
        (dir, store)
    }

    #[test]
    fn the_index_and_the_journal_after_it_make_the_records() {
        let (_dir, store) = store();
        // No index yet: every record read, and the index written.
        assert_eq!(listed(&store), titles(&[(1, "old"), (2, "old"), (3, "old")]));
        assert_eq!(index(&store).lines().count(), 4, "a header and three records");
        plant(&store, 3, "from the index");
        assert_eq!(listed(&store), titles(&[(1, "old"), (2, "old"), (3, "from the index")]));

        // Writes through the guard are journaled: those records are read from their files.
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(1, "new")).unwrap();
        tx.remove_session(&id(2)).unwrap();
        tx.put_session(&record(4, "four")).unwrap();
        drop(tx);
        let journal = std::fs::read_to_string(journal_path(store.dir())).unwrap();
        assert_eq!(
            journal.lines().skip(1).collect::<Vec<_>>(),
            [id(1).as_str(), id(2).as_str(), id(4).as_str()]
        );
        assert_eq!(listed(&store), titles(&[(1, "new"), (3, "from the index"), (4, "four")]));
    }

    #[test]
    fn a_batch_of_removals_is_one_append_of_its_ids() {
        let (_dir, store) = store();
        listed(&store);
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        assert_eq!(tx.remove_sessions(&[id(1), id(9), id(3)]).unwrap(), 2, "9 was never there");
        assert_eq!(tx.remove_sessions(&[]).unwrap(), 0);
        drop(tx);
        let journal = std::fs::read_to_string(journal_path(store.dir())).unwrap();
        assert_eq!(
            journal.lines().skip(1).collect::<Vec<_>>(),
            [id(1).as_str(), id(9).as_str(), id(3).as_str()]
        );
        assert_eq!(listed(&store), titles(&[(2, "old")]));
    }

    #[test]
    fn a_reader_takes_only_the_whole_lines_of_the_journal() {
        let (_dir, store) = store();
        listed(&store);
        plant(&store, 2, "from the index");
        // A writer mid-append (its record not renamed yet): half of session 2's line.
        let mut journal = OpenOptions::new().append(true).open(journal_path(store.dir())).unwrap();
        journal.write_all(&id(2).as_str().as_bytes()[..10]).unwrap();
        let view = View::load(store.dir(), &boot_id());
        assert!(view.valid);
        let at = view.end;
        assert!(view.journaled.is_empty());
        // The rest of the line: the next reader reads it whole from where this one stopped.
        journal.write_all(&id(2).as_str().as_bytes()[10..]).unwrap();
        journal.write_all(b"\n").unwrap();
        let all = std::fs::read(journal_path(store.dir())).unwrap();
        let mut stems = Stems::default();
        journal_ids(&all[at as usize..], &mut stems);
        assert!(stems.contains(id(2).as_str()));
        assert_eq!(listed(&store), titles(&[(1, "old"), (2, "old"), (3, "old")]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Whatever is removed in batches after the index, a reader sees every removal (and the
        /// records no batch touched as the index has them).
        #[test]
        fn a_reader_after_batches_of_removals_sees_every_one(
            total in 1u8..40,
            batches in proptest::collection::vec(proptest::collection::vec(0u8..48, 0..12), 0..5),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::at(dir.path().join("state"));
            let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
            for n in 0..total {
                tx.put_session(&record(n, "old")).unwrap();
            }
            drop(tx);
            listed(&store);
            let mut left: std::collections::BTreeSet<u8> = (0..total).collect();
            for n in &left {
                plant(&store, *n, "indexed");
            }
            for batch in &batches {
                let ids: Vec<SessionId> = batch.iter().map(|&n| id(n)).collect();
                store.lock(COMMAND_LOCK_WAIT).unwrap().remove_sessions(&ids).unwrap();
                for n in batch {
                    left.remove(n);
                }
                let want: Vec<(SessionId, String)> = left.iter().map(|&n| (id(n), "indexed".to_owned())).collect();
                proptest::prop_assert_eq!(listed(&store), want);
            }
        }
    }

    #[test]
    fn an_index_of_another_boot_or_format_or_a_broken_or_missing_one_is_not_trusted() {
        let (_dir, store) = store();
        let boot = format!("\"boot\":\"{}\"", boot_id());
        type Spoil = fn(&str, &str) -> Option<String>;
        let spoilt: [(&str, Spoil); 5] = [
            ("another boot", |text, boot| Some(text.replace(boot, "\"boot\":\"another\""))),
            ("another format", |text, _| Some(text.replacen("\"v\":1", "\"v\":2", 1))),
            ("cut short", |text, _| Some(text[..text.len() - 10].to_owned())),
            ("garbage", |_, _| Some("\u{0}not an index\n".to_owned())),
            ("missing", |_, _| None),
        ];
        for (what, spoil) in spoilt {
            listed(&store);
            plant(&store, 2, "planted");
            assert_eq!(listed(&store)[1].1, "planted", "{what}: the index is read");
            let text = index(&store);
            assert!(text.lines().next().unwrap().contains(&boot), "{text}");
            match spoil(&text, &boot) {
                Some(text) => std::fs::write(index_path(store.dir()), text).unwrap(),
                None => std::fs::remove_file(index_path(store.dir())).unwrap(),
            }
            assert_eq!(listed(&store), titles(&[(1, "old"), (2, "old"), (3, "old")]), "{what}");
            assert!(index(&store).lines().next().unwrap().contains(&boot), "{what}: rebuilt");
            assert!(!index(&store).contains("planted"), "{what}: rebuilt from the records");
        }
    }

    #[test]
    fn records_added_or_removed_behind_the_guards_back_are_seen() {
        let (_dir, store) = store();
        listed(&store);
        let sessions = store.dir().join("sessions");
        write_json(&sessions.join(format!("{}.json", id(5))), &record(5, "five"), Durability::Volatile)
            .unwrap();
        std::fs::remove_file(sessions.join(format!("{}.json", id(1)))).unwrap();
        std::fs::write(sessions.join("broken.json"), "{").unwrap();
        assert_eq!(listed_with_broken(&store), (titles(&[(2, "old"), (3, "old"), (5, "five")]), 1));
        // Still after the index is rebuilt (the broken file is never in it: always named).
        std::fs::remove_file(index_path(store.dir())).unwrap();
        assert_eq!(listed_with_broken(&store), (titles(&[(2, "old"), (3, "old"), (5, "five")]), 1));
        assert_eq!(listed_with_broken(&store), (titles(&[(2, "old"), (3, "old"), (5, "five")]), 1));
    }

    fn listed_with_broken(store: &Store) -> (Vec<(SessionId, String)>, usize) {
        let (recs, bad, _) = store.sessions_indexed_with(|_: &mut (), r| r).unwrap();
        let mut out: Vec<_> = recs.into_iter().map(|r| (r.id, r.title.unwrap_or_default())).collect();
        out.sort();
        (out, bad.len())
    }

    #[test]
    fn a_record_written_between_a_readers_read_and_its_rebuild_is_in_the_rebuilt_index() {
        let (_dir, store) = store();
        std::fs::remove_file(journal_path(store.dir())).unwrap();
        // The reader finds no index and reads every record...
        let view = View::load(store.dir(), &boot_id());
        assert!(!view.valid);
        let (recs, _) = store.sessions_with(|_: &mut (), r| r).unwrap();
        let read: Vec<(String, Vec<u8>)> =
            recs.iter().map(|r| (r.id.to_string(), serde_json::to_vec(r).unwrap())).collect();
        // ... a writer writes one, and adds another, before the reader rebuilds.
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(2, "new")).unwrap();
        tx.put_session(&record(6, "six")).unwrap();
        drop(tx);
        assert!(view.compact(store.dir(), borrowed(&read)).unwrap());
        assert_eq!(indexed(&store), titles(&[(1, "old"), (2, "new"), (3, "old"), (6, "six")]));
        plant(&store, 6, "from the index");
        assert_eq!(listed(&store), titles(&[(1, "old"), (2, "new"), (3, "old"), (6, "from the index")]));
    }

    /// Every record in the index as it says it, sorted.
    fn indexed(store: &Store) -> Vec<(SessionId, String)> {
        let mut all: Vec<_> = index(store)
            .lines()
            .skip(1)
            .map(|line| serde_json::from_str::<SessionRecord>(line.split_once('\t').unwrap().1).unwrap())
            .map(|r| (r.id, r.title.unwrap_or_default()))
            .collect();
        all.sort();
        all
    }

    /// What a reader of `store` read from every record file now: (stem, JSON).
    fn read_all(store: &Store) -> Vec<(String, Vec<u8>)> {
        let (recs, _) = store.sessions_with(|_: &mut (), r| r).unwrap();
        recs.iter().map(|r| (r.id.to_string(), serde_json::to_vec(r).unwrap())).collect()
    }

    fn borrowed(read: &[(String, Vec<u8>)]) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, [u8]>)> {
        read.iter().map(|(s, j)| (s.as_str(), std::borrow::Cow::Borrowed(j.as_slice())))
    }

    #[test]
    fn a_settled_reader_rebuilds_from_what_it_read_and_reads_again_only_later_writes() {
        let (_dir, store) = store();
        listed(&store);
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(1, "journaled")).unwrap();
        drop(tx);
        let mut view = View::load(store.dir(), &boot_id());
        assert!(view.valid && view.journaled.contains(id(1).as_str()));
        view.settle();
        assert!(view.settled);
        let read = read_all(&store);
        // Behind the guard's back (no journal line): a settled reader does not read it again,
        // so the rebuilt index holds what the reader read...
        let sessions = store.dir().join("sessions");
        write_json(&sessions.join(format!("{}.json", id(1))), &record(1, "unseen"), Durability::Volatile)
            .unwrap();
        // ... but a write through the guard after it settled is read again.
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(2, "later")).unwrap();
        drop(tx);
        assert!(view.compact(store.dir(), borrowed(&read)).unwrap());
        assert_eq!(indexed(&store), titles(&[(1, "journaled"), (2, "later"), (3, "old")]));
    }

    #[test]
    fn a_reader_that_cannot_settle_reads_every_journaled_record_again_for_its_rebuild() {
        let (_dir, store) = store();
        listed(&store);
        // A writer between its journal line and its rename while the reader reads.
        let writing = journal(store.dir(), &id(1)).unwrap();
        let mut view = View::load(store.dir(), &boot_id());
        view.settle();
        assert!(!view.settled, "the writer holds the journal");
        assert!(view.journaled.contains(id(1).as_str()));
        let read = read_all(&store);
        write_json(
            &store.dir().join("sessions").join(format!("{}.json", id(1))),
            &record(1, "renamed after the read"),
            Durability::Volatile,
        )
        .unwrap();
        drop(writing);
        assert!(view.compact(store.dir(), borrowed(&read)).unwrap());
        assert_eq!(indexed(&store), titles(&[(1, "renamed after the read"), (2, "old"), (3, "old")]));
    }

    #[test]
    fn a_due_rebuild_is_written_when_the_reader_drops_it_from_what_it_loaded() {
        let (_dir, store) = store();
        assert!(!index_path(store.dir()).exists());
        let (recs, bad, rebuild) = store.sessions_indexed_with(|_: &mut (), r| r).unwrap();
        assert_eq!((recs.len(), bad.len()), (3, 0));
        assert!(rebuild.due());
        assert!(!index_path(store.dir()).exists(), "not before the reader is done");
        drop(rebuild);
        assert_eq!(indexed(&store), titles(&[(1, "old"), (2, "old"), (3, "old")]));
        let (_, _, rebuild) = store.sessions_indexed_with(|_: &mut (), r| r).unwrap();
        assert!(!rebuild.due(), "the index is good");
        // A record that does not parse is never in it.
        std::fs::remove_file(index_path(store.dir())).unwrap();
        std::fs::write(store.dir().join("sessions").join(format!("{}.json", id(3))), "{").unwrap();
        let (recs, bad, rebuild) = store.sessions_indexed_with(|_: &mut (), r| r).unwrap();
        assert_eq!((recs.len(), bad.len()), (2, 1));
        drop(rebuild);
        assert_eq!(indexed(&store), titles(&[(1, "old"), (2, "old")]));
    }

    #[test]
    fn no_rebuild_while_a_writer_is_between_its_journal_line_and_its_rename() {
        let (_dir, store) = store();
        std::fs::remove_file(index_path(store.dir())).ok();
        let writing = journal(store.dir(), &id(1)).unwrap();
        let view = View::load(store.dir(), &boot_id());
        assert!(!view.compact(store.dir(), std::iter::empty()).unwrap(), "the writer holds the journal");
        drop(writing);
        assert!(view.compact(store.dir(), std::iter::empty()).unwrap());
        // A reader whose journal was restarted since it read it does not rebuild.
        let stale = View::load(store.dir(), &boot_id());
        assert!(stale.valid);
        let fresh = View::load(store.dir(), &boot_id());
        assert!(fresh.compact(store.dir(), std::iter::empty()).unwrap());
        assert!(!stale.compact(store.dir(), std::iter::empty()).unwrap());
    }

    #[test]
    fn a_long_journal_is_cut_by_a_writer_and_the_index_rebuilt() {
        let (_dir, store) = store();
        listed(&store);
        plant(&store, 1, "planted");
        let file = OpenOptions::new().append(true).open(journal_path(store.dir())).unwrap();
        file.set_len(JOURNAL_MAX).unwrap(); // zeros: no ids
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(2, "new")).unwrap();
        drop(tx);
        assert!(std::fs::metadata(journal_path(store.dir())).unwrap().len() < 100, "cut");
        assert_eq!(listed(&store), titles(&[(1, "old"), (2, "new"), (3, "old")]), "rebuilt from the records");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Writes and removals through the guard, with `list`s between them and rebuilds at
        /// any point: `list` always shows what the record files say, and a rebuilt index holds
        /// exactly the records a full read of the files finds.
        #[test]
        fn the_index_after_journaled_writes_is_a_full_rebuilds(
            steps in proptest::collection::vec((0u8..4, 1u8..8, 0u8..3), 1..24)
        ) {
            let (_dir, store) = store();
            let files = |store: &Store| -> Vec<(SessionId, String)> {
                let (recs, _) = store.sessions_with(|_: &mut (), r| r).unwrap();
                let mut out: Vec<_> =
                    recs.into_iter().map(|r| (r.id, r.title.unwrap_or_default())).collect();
                out.sort();
                out
            };
            for (what, n, t) in steps {
                match what {
                    0 | 1 => {
                        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
                        tx.put_session(&record(n, &format!("t{t}"))).unwrap();
                    }
                    2 => {
                        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
                        tx.remove_session(&id(n)).unwrap();
                    }
                    _ => {
                        let mut view = View::load(store.dir(), &boot_id());
                        view.settle();
                        let read = read_all(&store);
                        proptest::prop_assert!(view.compact(store.dir(), borrowed(&read)).unwrap());
                        proptest::prop_assert_eq!(indexed(&store), files(&store));
                    }
                }
                proptest::prop_assert_eq!(listed(&store), files(&store));
            }
        }
    }
}
