//! The state dir: every file clawsess keeps, behind one type.
//!
//! ```text
//! $CLAWSESS_HOME/
//!   lock                  the store lock: guards every read-modify-write; never renamed
//!   sessions/<id>.json    one record per session (O(1) lookups by id)
//!   live/<id>.json        what of it a reboot voids (live pids, `last_seen`) and the run
//!                         counters, never synced
//!   keys/<hash>.json      per surface key: attachment and own session
//!   names/<hash>.json     name -> session
//!   global.json           the global attachment
//!   turns/<id>.json       the turns every surface added (catch-up, behind)
//!   busy/<id>.json        a claude process's turn in progress
//!   run/<id>.lock         held by `run` for a whole turn; holds who and since when
//!   requests/<id>.json    a tool call `run --ask` waits on, until `clawsess answer`
//!   stop/<id>.json        `clawsess stop` asking the run answering a session to interrupt
//!   claudes/<id>.json     a claude process clawsess started, counted against the cap
//!   queue/<id>/, queue/claudes/   turns waiting for a session, or for the claude cap
//!   warm/<id>.sock        a warm session's keeper listens here (`run --warm`)
//!   warm/<id>.json        the keeper's note: its pids, and the transcript after its last turn
//!   warm/<id>.log         what the keeper's claude wrote on stderr (cut at 1 MiB)
//!   prune-due             its mtime: when the next automatic prune is due; its lock: one at a time
//!   prune.log             what the last automatic prune did
//!   probes/<version>.json what `doctor --probe` found with that Claude Code version
//!   settings/key-<hash>.json   a key's settings (`clawsess set --key K`)
//!   settings/<id>.json    a session's settings (`clawsess set SESSION`)
//!   sessions.index        what `list` needs of every record, in one file (see `index`)
//!   sessions.journal      ids of records written since the index
//!   hosts.json            other machines (`clawsess hosts`), keys and requests routed there
//!   ssh/                  ssh's control sockets (0700)
//! ```
//!
//! [`Store`] reads; writes go through [`Locked`], which only exists while the store lock is
//! held, so no read-modify-write can run unlocked.

mod files;
mod hosts;
mod index;
mod lock;
mod records;
mod sends;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use crate::sys::files::{Durability, TMP_SUFFIX, remove_if_exists, write_atomic, write_atomic_mode};
/// Kept here too: every record is stamped with it.
pub use crate::sys::now_ms;
pub use files::{Versioned, check_private_dir, create_private_dir, parse_json, read_json, write_json};
pub use hosts::{HostEntry, HostsFile, RemoteGlobal};
pub use lock::{Acquired, lock_until, lock_while_moving, open_lock_file};
pub use records::*;
pub use sends::SendNote;

use crate::claude::versions::Version;
use crate::ident::{Key, Name, RequestId, SessionId, file_stem};

/// The state format this build reads and writes; files say theirs in `"v"`.
pub const FORMAT: u32 = 1;

/// How long hooks wait for the store lock: Claude Code is waiting on them (our hooks'
/// timeout is 10 s), and a burst of starts must all land.
pub const HOOK_LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long commands wait for the store lock.
pub const COMMAND_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The state dir.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The state dir of `$CLAWSESS_HOME`, else the platform data dir. One that another user
    /// owns or can write is refused (it may not exist yet: writers create it private).
    pub fn open() -> Result<Self> {
        let dir = default_dir()?;
        if dir.exists() {
            files::check_private_dir(&dir)?;
        }
        Ok(Self::at(dir))
    }

    /// The state dir at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the store lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    fn session_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("sessions").join(format!("{id}.json"))
    }

    fn live_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("live").join(format!("{id}.json"))
    }

    fn key_path(&self, key: &Key) -> PathBuf {
        self.dir.join("keys").join(format!("{}.json", file_stem(key.as_str())))
    }

    fn name_path(&self, name: &Name) -> PathBuf {
        self.dir.join("names").join(format!("{}.json", file_stem(name.as_str())))
    }

    fn global_path(&self) -> PathBuf {
        self.dir.join("global.json")
    }

    fn turns_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("turns").join(format!("{id}.json"))
    }

    /// Path of the terminal busy marker of a session.
    pub fn busy_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("busy").join(format!("{id}.json"))
    }

    /// Path of a session's run lock, for readers (nothing is created).
    pub fn run_lock_file(&self, id: &SessionId) -> PathBuf {
        self.dir.join("run").join(format!("{id}.lock"))
    }

    /// Path of a session's run lock, creating its dir (for the processes that lock it).
    pub fn run_lock_path(&self, id: &SessionId) -> Result<PathBuf> {
        let path = self.run_lock_file(id);
        create_private_dir(path.parent().expect("run/ dir"))?;
        Ok(path)
    }

    /// Path of a key's run lock (runs of one key go one at a time), creating its dir.
    pub fn run_lock_path_for_key(&self, key: &Key) -> Result<PathBuf> {
        let path = self.dir.join("run").join(format!("key-{}.lock", file_stem(key.as_str())));
        create_private_dir(path.parent().expect("run/ dir"))?;
        Ok(path)
    }

    fn request_path(&self, id: &RequestId) -> PathBuf {
        self.dir.join("requests").join(format!("{id}.json"))
    }

    fn steer_dir(&self, id: &SessionId) -> PathBuf {
        self.dir.join("steer").join(id.as_str())
    }

    /// Where the driver of a taken steer message writes the turn's events (JSON lines).
    pub fn steer_events_path(&self, session: &SessionId, steer: &str) -> PathBuf {
        self.steer_dir(session).join(format!("{}.events", file_stem(steer)))
    }

    fn steer_path(&self, session: &SessionId, steer: &str) -> PathBuf {
        self.steer_dir(session).join(format!("{}.json", file_stem(steer)))
    }

    fn queue_dir(&self, line: Line<'_>) -> PathBuf {
        match line {
            Line::Session(id) => self.dir.join("queue").join(id.as_str()),
            Line::Claudes => self.dir.join("queue").join("claudes"),
        }
    }

    fn claudes_dir(&self) -> PathBuf {
        self.dir.join("claudes")
    }

    fn claude_slot_path(&self, id: &str) -> PathBuf {
        self.claudes_dir().join(format!("{}.json", file_stem(id)))
    }

    fn next_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("next").join(format!("{id}.json"))
    }

    fn claim_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("claims").join(format!("{id}.json"))
    }

    fn stop_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("stop").join(format!("{id}.json"))
    }

    fn settings_path(&self, of: &SettingsOf) -> PathBuf {
        let stem = match of {
            SettingsOf::Key(key) => format!("key-{}", file_stem(key.as_str())),
            SettingsOf::Session(id) => id.to_string(),
        };
        self.dir.join("settings").join(format!("{stem}.json"))
    }

    /// Every state dir clawsess writes into (for `doctor` and `prune`).
    pub fn subdirs(&self) -> [PathBuf; 14] {
        [
            "sessions", "live", "keys", "names", "turns", "busy", "run", "requests", "stop", "warm",
            "probes", "settings", "claudes", "next",
        ]
        .map(|d| self.dir.join(d))
    }

    /// The dir of warm sessions' sockets and notes, created private.
    pub fn warm_dir(&self) -> Result<PathBuf> {
        let dir = self.dir.join("warm");
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Where the keeper of session `id` listens.
    pub fn warm_socket(&self, id: &SessionId) -> PathBuf {
        self.dir.join("warm").join(format!("{id}.sock"))
    }

    /// Where the keeper's claude writes its stderr.
    pub fn warm_log(&self, id: &SessionId) -> PathBuf {
        self.dir.join("warm").join(format!("{id}.log"))
    }

    /// The automatic prune's stamp (its mtime is when the next one is due) and lock.
    pub fn prune_stamp(&self) -> PathBuf {
        self.dir.join("prune-due")
    }

    /// What the last automatic prune did.
    pub fn prune_log(&self) -> PathBuf {
        self.dir.join("prune.log")
    }

    fn warm_note_path(&self, id: &SessionId) -> PathBuf {
        self.dir.join("warm").join(format!("{id}.json"))
    }

    pub fn warm_note(&self, id: &SessionId) -> Result<Option<WarmNote>> {
        read_json(&self.warm_note_path(id))
    }

    /// Every keeper's note (a note that does not parse is skipped).
    pub fn warm_notes(&self) -> Result<Vec<WarmNote>> {
        let files = files::json_files(&self.dir.join("warm"))?;
        Ok(files.into_iter().filter_map(|(_, path)| read_json(&path).ok().flatten()).collect())
    }

    /// Writes a keeper's note. One whole file, written by its keeper when it starts and by
    /// the run that holds the session's run lock after each turn: no store lock needed.
    pub fn put_warm_note(&self, note: &WarmNote) -> Result<()> {
        self.warm_dir()?;
        // Meaningless after a reboot (its keeper is gone): no fsync.
        write_json(&self.warm_note_path(&note.session), note, Durability::Volatile)
    }

    /// Removes a session's keeper socket and note: with `keeper`, only when the note is that
    /// keeper's. With no note there is nothing to tell whose the socket is (a new keeper's
    /// socket is bound before its note is written), so a keeper that ends leaves it alone.
    pub fn remove_warm(&self, id: &SessionId, keeper: Option<u32>) -> Result<()> {
        let note = self.warm_note(id).ok().flatten();
        if keeper.is_some() && note.as_ref().is_none_or(|n| Some(n.keeper) != keeper) {
            return Ok(());
        }
        remove_if_exists(&self.warm_socket(id))?;
        remove_if_exists(&self.warm_note_path(id))?;
        Ok(())
    }

    fn probe_path(&self, version: Version) -> PathBuf {
        self.dir.join("probes").join(format!("{version}.json"))
    }

    fn claude_versions_path(&self) -> PathBuf {
        self.dir.join("claude-versions.json")
    }

    /// The version the claude binary `binary` (as it is now) printed, if remembered.
    pub fn claude_version(&self, binary: &crate::sys::files::Stamp) -> Option<Version> {
        let known: ClaudeVersions = read_json(&self.claude_versions_path()).ok().flatten()?;
        let found = known.binaries.into_iter().find(|b| b.binary == *binary)?;
        Version::parse(&found.version)
    }

    /// What `doctor --probe` found with Claude Code `version` on this machine.
    pub fn probe_record(&self, version: Version) -> Result<Option<ProbeRecord>> {
        read_json(&self.probe_path(version))
    }

    /// A session's record, with its live file merged in (see [`SessionRecord::merge_live`]).
    pub fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let Some(mut rec) = read_json::<SessionRecord>(&self.session_path(id))? else { return Ok(None) };
        rec.merge_live(self.live(id));
        Ok(Some(rec))
    }

    /// A session's live file; one that is missing or does not parse is none (it only ever
    /// says what a reboot voids, and the record says what it said before).
    fn live(&self, id: &SessionId) -> Option<LiveRecord> {
        read_json(&self.live_path(id)).ok().flatten()
    }

    /// Ids of all recorded sessions, from file names alone.
    pub fn session_ids(&self) -> Result<Vec<SessionId>> {
        let files = files::json_files(&self.dir.join("sessions"))?;
        Ok(files.into_iter().filter_map(|(stem, _)| SessionId::parse(&stem).ok()).collect())
    }

    /// All session records. Ones that do not parse are returned as errors, so a reader can
    /// go on with the rest and say which file is broken.
    pub fn sessions(&self) -> Result<(Vec<SessionRecord>, Vec<anyhow::Error>)> {
        self.sessions_with(|_: &mut (), rec| rec)
    }

    /// What `each` makes of every session record (given a state of its thread's), in the
    /// order of the dir; records that do not parse are returned as errors. Every record file
    /// is read (`prune`, `doctor`: see [`sessions_indexed_with`](Self::sessions_indexed_with)).
    pub fn sessions_with<S: Default, T: Send>(
        &self,
        each: impl Fn(&mut S, SessionRecord) -> T + Sync,
    ) -> Result<(Vec<T>, Vec<anyhow::Error>)> {
        let (good, bad, _) = self.scan_sessions(false, each)?;
        Ok((good, bad))
    }

    /// [`sessions_with`](Self::sessions_with) through the sessions index (`list`): the records
    /// the index holds and no write touched since are taken from it, only the others read
    /// from their files (see `index`). A record edited in place behind clawsess's back (not
    /// renamed over, not added, not removed) shows as the index has it until the index is
    /// rebuilt. The rebuild this reader found due is written when the [`Rebuild`] it returns
    /// is dropped: a reader drops it once its answer is out.
    pub fn sessions_indexed_with<S: Default, T: Send>(
        &self,
        each: impl Fn(&mut S, SessionRecord) -> T + Sync,
    ) -> Result<(Vec<T>, Vec<anyhow::Error>, Rebuild)> {
        self.scan_sessions(true, each)
    }

    /// [`sessions_indexed_with`](Self::sessions_indexed_with), each record parsed as `R`: a
    /// [`SessionHead`] skips what a reader does not need (a record read from its file is
    /// parsed whole, then made into `R`).
    pub fn sessions_indexed_as<R: Recorded, S: Default, T: Send>(
        &self,
        each: impl Fn(&mut S, R) -> T + Sync,
    ) -> Result<(Vec<T>, Vec<anyhow::Error>, Rebuild)> {
        self.scan_sessions(true, each)
    }

    /// Many records are read on several threads, each file opened relative to the dir (see
    /// [`files::StateDir`]). Live files are found with one directory read, and only the
    /// sessions that have one read a second file.
    fn scan_sessions<R: Recorded, S: Default, T: Send>(
        &self,
        use_index: bool,
        each: impl Fn(&mut S, R) -> T + Sync,
    ) -> Result<(Vec<T>, Vec<anyhow::Error>, Rebuild)> {
        /// Below this many records one thread reads them all.
        const PER_THREAD: usize = 2048;
        let sessions = self.dir.join("sessions");
        // The index is read and parsed on a second thread while `sessions/` is read on this
        // one (at 100,000 sessions each takes about 50 ms). A record written meanwhile shows
        // as it was before or after that write, as it would had this read come a moment
        // earlier or later; a rebuild reads again what was journaled after its reader.
        let load = || index::View::load(&self.dir, &index::boot_id());
        let open = || files::StateDir::open(&sessions);
        let (opened, mut view) = if use_index {
            let (opened, view) = crate::sys::both(open, load);
            (opened, Some(view))
        } else {
            (open(), None)
        };
        let Some((dir, names)) = opened? else {
            return Ok((Vec::new(), Vec::new(), Rebuild(None)));
        };
        // Where each name's record is in the index, on two threads past many names.
        let sources_of = |view: &Option<index::View>| -> Vec<Option<(usize, usize)>> {
            let Some(view) = view.as_ref().filter(|v| v.valid) else { return vec![None; names.len()] };
            let look = |part: &[(String, std::fs::FileType)]| -> Vec<Option<(usize, usize)>> {
                part.iter().map(|(stem, kind)| view.indexed(stem, *kind)).collect()
            };
            if names.len() < 2 * PER_THREAD {
                return look(&names);
            }
            let (first, second) = names.split_at(names.len() / 2);
            let (mut sources, rest) = crate::sys::both(|| look(first), || look(second));
            sources.extend(rest);
            sources
        };
        let mut sources = sources_of(&view);
        let from_files = sources.iter().filter(|s| s.is_none()).count();
        let compact = view.as_ref().is_some_and(|v| v.wants_compaction(from_files, names.len()));
        if compact && let Some(v) = &mut view {
            // So that the rebuild need not read again what this reader reads now.
            v.settle();
            sources = sources_of(&view);
        }
        let view = view;
        let live = self.ids_in("live");
        let parse =
            |bytes: &[u8]| serde_json::from_slice::<SessionRecord>(bytes).ok().filter(|r| r.v == FORMAT);
        let parse_indexed =
            |bytes: &[u8]| serde_json::from_slice::<R>(bytes).ok().filter(|r| r.format() == FORMAT);
        let read_part = |part: std::ops::Range<usize>| {
            let path = |stem: &str| sessions.join(format!("{stem}.json"));
            let mut reader = dir.reader();
            let mut state = S::default();
            let mut good = Vec::with_capacity(part.len());
            let mut bad = Vec::new();
            // Every record read from its file, for a new index: (position in `names`, its JSON
            // if it parsed).
            let mut lines: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
            for i in part {
                let (stem, kind) = &names[i];
                let indexed = match (sources[i], &view) {
                    (Some(range), Some(view)) => parse_indexed(view.json(range)),
                    _ => None,
                };
                let read = match indexed {
                    Some(rec) => Ok(Some(rec)),
                    None => {
                        let read = match reader.read(stem, *kind, parse) {
                            Ok(Ok(rec)) => Ok(Some(rec)),
                            Ok(Err(files::DirFile::Gone)) => Ok(None), // removed while we listed
                            Ok(Err(files::DirFile::Bytes(bytes))) => parse_json(&path(stem), bytes).map(Some),
                            Ok(Err(files::DirFile::Other)) => read_json::<SessionRecord>(&path(stem)),
                            Err(err) => Err(anyhow::Error::new(err)
                                .context(format!("could not read {}", path(stem).display()))),
                        };
                        if compact {
                            let json = read
                                .as_ref()
                                .ok()
                                .and_then(Option::as_ref)
                                .and_then(|r| serde_json::to_vec(r).ok());
                            lines.push((i, json));
                        }
                        read.map(|rec| rec.map(R::from))
                    }
                };
                match read {
                    Ok(Some(mut rec)) => {
                        if live.contains(rec.id()) {
                            rec.merge_live(self.live(rec.id()));
                        }
                        good.push(each(&mut state, rec));
                    }
                    Ok(None) => {}
                    Err(err) => bad.push(err),
                }
            }
            (good, bad, lines)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let threads = threads.min(names.len().div_ceil(PER_THREAD)).max(1);
        let size = names.len().div_ceil(threads).max(1);
        let mut parts = (0..names.len()).step_by(size).map(|at| at..(at + size).min(names.len()));
        let first = parts.next().unwrap_or_default();
        let read_part = &read_part;
        let results = std::thread::scope(|scope| {
            // A thread that cannot be started leaves its part to this one.
            let others: Vec<_> = parts
                .map(|part| {
                    let thread = std::thread::Builder::new().spawn_scoped(scope, {
                        let part = part.clone();
                        move || read_part(part)
                    });
                    (part, thread.ok())
                })
                .collect();
            let mut results = vec![read_part(first)];
            for (part, thread) in others {
                results.push(match thread {
                    Some(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    None => read_part(part),
                });
            }
            results
        });
        let mut good = Vec::with_capacity(names.len());
        let mut bad = Vec::new();
        let mut lines = Vec::new();
        for (g, b, l) in results {
            good.extend(g);
            bad.extend(b);
            lines.extend(l);
        }
        let rebuild = match view {
            Some(view) if compact => {
                Some(Box::new(RebuildOf { dir: self.dir.clone(), view, names, sources, lines }))
            }
            _ => None,
        };
        Ok((good, bad, Rebuild(rebuild)))
    }

    /// Recorded sessions, the most recently written first (for `attach`'s default: a
    /// directory read and a stat per session, no record parsed). A session's time is its
    /// record's or its live file's, the newer: one of the two is written whenever its
    /// `last_seen` moves.
    pub fn sessions_by_mtime(&self) -> Result<Vec<(std::time::SystemTime, SessionId)>> {
        let live: std::collections::HashMap<String, std::time::SystemTime> =
            files::json_mtimes(&self.dir.join("live"))?.into_iter().collect();
        let mut out = Vec::new();
        for (stem, time) in files::json_mtimes(&self.dir.join("sessions"))? {
            let Ok(id) = SessionId::parse(&stem) else { continue };
            out.push((live.get(&stem).map_or(time, |&l| l.max(time)), id));
        }
        out.sort_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// Temp files that a writer killed between create and rename left behind (older than a
    /// minute, so no live writer's).
    pub fn stale_temp_files(&self) -> Vec<PathBuf> {
        const STALE: Duration = Duration::from_secs(60);
        let now = std::time::SystemTime::now();
        let dirs = std::iter::once(self.dir.clone()).chain(self.subdirs());
        let entries = dirs.filter_map(|dir| std::fs::read_dir(dir).ok()).flatten().flatten();
        entries
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(TMP_SUFFIX)))
            .filter(|e| {
                let modified = e.metadata().and_then(|m| m.modified());
                modified.is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE)
            })
            .map(|e| e.path())
            .collect()
    }

    /// Sessions that have a run lock file (ever ran through `run`) or a busy marker: the
    /// only ones that can be busy, found with two directory reads.
    pub fn maybe_busy(&self) -> std::collections::BTreeSet<SessionId> {
        let mut ids = std::collections::BTreeSet::new();
        for (dir, suffix) in [("run", ".lock"), ("busy", ".json")] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(dir)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let id =
                    name.to_str().and_then(|n| n.strip_suffix(suffix)).and_then(|s| SessionId::parse(s).ok());
                ids.extend(id);
            }
        }
        ids
    }

    pub fn key_state(&self, key: &Key) -> Result<Option<KeyState>> {
        let path = self.key_path(key);
        let state: Option<KeyState> = read_json(&path)?;
        if let Some(state) = &state
            && state.key != *key
        {
            bail!("{} belongs to key {:?}, not {:?}", path.display(), state.key.as_str(), key.as_str());
        }
        Ok(state)
    }

    /// All key states (for `list`, `prune`, `doctor`); ones that do not parse come back as
    /// errors, so a reader can go on with the rest.
    pub fn key_states(&self) -> Result<(Vec<KeyState>, Vec<anyhow::Error>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (_, path) in files::json_files(&self.dir.join("keys"))? {
            match read_json::<KeyState>(&path) {
                Ok(Some(state)) => good.push(state),
                Ok(None) => {}
                Err(err) => bad.push(err),
            }
        }
        Ok((good, bad))
    }

    pub fn global(&self) -> Result<Option<Attachment>> {
        Ok(read_json::<GlobalState>(&self.global_path())?.and_then(|g| g.attached))
    }

    /// The session called `name`. The name file and the session's record must agree: a
    /// rename killed halfway leaves a name file the record does not carry, which is ignored.
    pub fn named(&self, name: &Name) -> Result<Option<SessionId>> {
        let Some(entry) = read_json::<NameEntry>(&self.name_path(name))?.filter(|e| e.name == *name) else {
            return Ok(None);
        };
        let agrees = self.session(&entry.session)?.is_some_and(|rec| rec.name.as_ref() == Some(name));
        Ok(agrees.then_some(entry.session))
    }

    /// The settings kept for a key or a session (`clawsess set`).
    pub fn settings(&self, of: &SettingsOf) -> Result<Option<SettingsRecord>> {
        let path = self.settings_path(of);
        let rec: Option<SettingsRecord> = read_json(&path)?;
        if let Some(rec) = &rec
            && rec.of != *of
        {
            bail!("{} holds the settings of {:?}, not of {:?}", path.display(), rec.of, of);
        }
        Ok(rec)
    }

    pub fn turn_log(&self, id: &SessionId) -> Result<Option<TurnLog>> {
        read_json(&self.turns_path(id))
    }

    pub fn busy(&self, id: &SessionId) -> Result<Option<BusyMarker>> {
        read_json(&self.busy_path(id))
    }

    /// Marks a terminal turn in progress. Needs no store lock: the marker is one whole file,
    /// written only while the session's run lock is held (see `turn`).
    pub fn put_busy(&self, id: &SessionId, marker: &BusyMarker) -> Result<()> {
        // A marker that does not parse is not replaced: reading it first names the file.
        self.busy(id)?;
        let path = self.busy_path(id);
        create_private_dir(path.parent().expect("busy/ dir"))?;
        // Meaningless after a reboot (its terminal is gone): no fsync.
        write_json(&path, marker, Durability::Volatile)
    }

    pub fn clear_busy(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.busy_path(id))
    }

    pub fn request(&self, id: &RequestId) -> Result<Option<PermissionRequest>> {
        read_json(&self.request_path(id))
    }

    /// Every permission request on file; ones that do not parse are skipped (`doctor` names
    /// them).
    pub fn requests(&self) -> Result<Vec<PermissionRequest>> {
        let files = files::json_files(&self.dir.join("requests"))?;
        Ok(files.into_iter().filter_map(|(_, path)| read_json(&path).ok().flatten()).collect())
    }

    pub fn steer(&self, session: &SessionId, steer: &str) -> Result<Option<SteerRequest>> {
        read_json(&self.steer_path(session, steer))
    }

    /// The steer messages on file for `session`, oldest first; ones that do not parse are
    /// skipped.
    pub fn steers(&self, session: &SessionId) -> Result<Vec<SteerRequest>> {
        let files = files::json_files(&self.steer_dir(session))?;
        let mut all: Vec<SteerRequest> =
            files.into_iter().filter_map(|(_, path)| read_json(&path).ok().flatten()).collect();
        all.sort_by_key(|s| s.at);
        Ok(all)
    }

    /// The turns waiting in `line`, oldest first; ones that do not parse are skipped.
    pub fn queue(&self, line: Line<'_>) -> Result<Vec<QueueTicket>> {
        let files = files::json_files(&self.queue_dir(line))?;
        let mut all: Vec<QueueTicket> =
            files.into_iter().filter_map(|(_, path)| read_json(&path).ok().flatten()).collect();
        all.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(all)
    }

    /// Puts a waiting turn in `line`. One whole file per waiter: no store lock needed.
    /// The name of ticket `id`'s file in its line's dir: what the bell names when it leaves.
    pub fn ticket_file(id: &str) -> String {
        format!("{}.json", file_stem(id))
    }

    pub fn put_ticket(&self, line: Line<'_>, ticket: &QueueTicket) -> Result<()> {
        let path = self.queue_dir(line).join(Self::ticket_file(&ticket.id));
        create_private_dir(path.parent().expect("queue/ dir"))?;
        write_json(&path, ticket, Durability::Volatile)
    }

    pub fn remove_ticket(&self, line: Line<'_>, ticket: &str) -> Result<bool> {
        remove_if_exists(&self.queue_dir(line).join(Self::ticket_file(ticket)))
    }

    /// The claude processes clawsess started that count against the cap (see `turn::cap`),
    /// live or not; ones that do not parse are skipped.
    pub fn claude_slots(&self) -> Result<Vec<ClaudeSlot>> {
        let files = files::json_files(&self.claudes_dir())?;
        let mut all: Vec<ClaudeSlot> =
            files.into_iter().filter_map(|(_, path)| read_json(&path).ok().flatten()).collect();
        all.sort_by(|a, b| (a.since, &a.id).cmp(&(b.since, &b.id)));
        Ok(all)
    }

    pub fn claude_slot(&self, id: &str) -> Result<Option<ClaudeSlot>> {
        read_json(&self.claude_slot_path(id))
    }

    /// A bell that rings when a file leaves one of `dirs` (see [`crate::sys::bell`]): how a
    /// waiting turn hears that a slot, a ticket ahead of it or a busy marker went. The dirs
    /// are created if missing; `None` where inotify cannot be had (the waiter looks again at
    /// its timeouts only).
    pub fn bell(&self, dirs: &[Watched<'_>]) -> Option<crate::sys::bell::Bell> {
        let paths: Vec<PathBuf> = dirs
            .iter()
            .map(|d| match d {
                Watched::Line(line) => self.queue_dir(*line),
                Watched::Slots => self.claudes_dir(),
                Watched::Busy => self.dir.join("busy"),
                Watched::Next => self.dir.join("next"),
            })
            .collect();
        for path in &paths {
            create_private_dir(path).ok()?;
        }
        crate::sys::bell::Bell::on(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())
    }

    /// Who goes next on `id` (`run --interrupt`), if anyone claimed it.
    pub fn next_turn(&self, id: &SessionId) -> Result<Option<NextTurn>> {
        read_json(&self.next_path(id))
    }

    /// Claims the next turn on `id` for this process. One whole file; the last claim wins.
    pub fn put_next_turn(&self, id: &SessionId) -> Result<()> {
        let path = self.next_path(id);
        create_private_dir(path.parent().expect("next/ dir"))?;
        let me = std::process::id();
        let next =
            NextTurn { v: FORMAT, pid: me, pid_start: crate::claude::process::start_time(me), at: now_ms() };
        write_json(&path, &next, Durability::Volatile)
    }

    /// Drops this process's claim on the next turn of `id` (another's stays).
    pub fn clear_next_turn(&self, id: &SessionId) -> Result<()> {
        if self.next_turn(id)?.is_some_and(|n| n.pid == std::process::id()) {
            remove_if_exists(&self.next_path(id))?;
        }
        Ok(())
    }

    /// The claim `clawsess queue` holds on `id` for a claude it hands the turn to, if any.
    pub fn claim(&self, id: &SessionId) -> Result<Option<TurnClaim>> {
        read_json(&self.claim_path(id))
    }

    pub fn stop_request(&self, id: &SessionId) -> Result<Option<StopRequest>> {
        read_json(&self.stop_path(id))
    }

    /// Asks the run `pid` answering `id` to interrupt its turn. One whole file, and only the
    /// run it names acts on it: no store lock needed.
    pub fn put_stop_request(&self, id: &SessionId, pid: u32) -> Result<()> {
        let path = self.stop_path(id);
        create_private_dir(path.parent().expect("stop/ dir"))?;
        // Meaningless after a reboot (its run is gone): no fsync.
        write_json(&path, &StopRequest { v: FORMAT, pid, at: now_ms() }, Durability::Volatile)
    }

    pub fn clear_stop_request(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.stop_path(id))
    }

    /// The sessions that have something under `sub` (`queue`, `steer`, `next`, `stop`,
    /// `turns`, `sends`, `warm`, ...): a dir named by the id or a file `<id>.<ext>`, from one
    /// directory read. Names that are no session id are left out.
    pub fn ids_in(&self, sub: &str) -> std::collections::BTreeSet<SessionId> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(sub)) else { return Default::default() };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let stem = name.split_once('.').map_or(name.as_str(), |(stem, _)| stem);
                SessionId::parse(stem).ok()
            })
            .collect()
    }

    /// Takes the store lock, giving up when one process has held it for `wait`, or after
    /// `wait * 1.8` in all while a queue of others takes turns with it (a burst of hooks on a
    /// busy machine; hooks wait 5 s of one holder and 9 s in all, within their 10 s timeout).
    pub fn lock(&self, wait: Duration) -> Result<Locked<'_>> {
        create_private_dir(&self.dir)?;
        let path = self.lock_path();
        let file = open_lock_file(&path)?;
        let started = Instant::now();
        match lock_while_moving(&file, wait, wait.mul_f64(1.8), || {})? {
            Acquired::Yes => Ok(Locked { store: self, _file: file }),
            Acquired::TimedOut => bail!(
                "could not take the state lock {} in {:.1} s (another process held it for over \
                 {:.1} s, or too many waited for it); retry, or look for a stuck clawsess (`fuser {}`)",
                path.display(),
                started.elapsed().as_secs_f64(),
                wait.as_secs_f64(),
                path.display()
            ),
        }
    }
}

/// How [`Locked::update_session`] writes `after` over `before`: not at all (`None`) when
/// nothing changed, [`Durability::Volatile`] (the live file alone, unsynced) when only what a
/// reboot makes meaningless did, [`Durability::Full`] (the record) otherwise.
fn update_durability(before: &SessionRecord, after: &SessionRecord) -> Option<Durability> {
    let bytes = |r: &SessionRecord| serde_json::to_vec(r).ok();
    if before.id == after.id && bytes(before).is_some() && bytes(before) == bytes(after) {
        return None;
    }
    Some(if before.id == after.id && before.stamp == after.stamp && before.same_durable(after) {
        Durability::Volatile
    } else {
        Durability::Full
    })
}

/// A new [`SessionRecord::stamp`]: random, and never 0 (the tag of records of before it).
fn new_stamp() -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")).max(1)
}

/// The store while its lock is held: the only way to write. Dropping it unlocks.
pub struct Locked<'a> {
    store: &'a Store,
    _file: File,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store
    }
}

impl Locked<'_> {
    fn write<T: serde::Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        self.write_with(path, value, Durability::Full)
    }

    fn write_with<T: serde::Serialize>(&self, path: &Path, value: &T, durability: Durability) -> Result<()> {
        create_private_dir(path.parent().expect("state files live in a dir"))?;
        write_json(path, value, durability)
    }

    /// Writes a session's record, durably (fsync of the file and of its rename), with a new
    /// [`SessionRecord::stamp`], live fields and all, and removes its live file, which now says
    /// nothing the record does not (should the removal be lost, the live file's old `stamp`
    /// marks it stale).
    pub fn put_session(&self, rec: &SessionRecord) -> Result<()> {
        let rec = SessionRecord { stamp: new_stamp(), ..rec.clone() };
        // Announced before the rename, and the journal held until it is done (`index`).
        let _journaled = index::journal(&self.dir, &rec.id)?;
        self.write(&self.session_path(&rec.id), &rec)?;
        remove_if_exists(&self.live_path(&rec.id)).map(drop)
    }

    /// Replaces the session record `before` (as read under this lock, live file merged) with
    /// `after`, paying for no more durability than the change needs: nothing is written when
    /// nothing changed; when only what a reboot makes meaningless changed (the live pids
    /// `processes` and `told`, `last_seen`, and the run counters: see
    /// [`SessionRecord::same_durable`]), only the
    /// session's live file is written, atomically but never synced; any other change writes
    /// the record with [`Durability::Full`] ([`put_session`](Self::put_session)).
    ///
    /// Why that keeps every field a user relies on: the record alone holds them (its cwd,
    /// transcript, key, name, title, `forked`, who started it), and every
    /// change of one is a `Full` write of the whole record, so a power loss leaves the record
    /// of its last such write, whole. The live file holds only pids of claude processes (which
    /// a reboot ends) and the time of the last activity. A killed process is no risk: both
    /// writes are atomic renames. What a power loss can take is the live file of its last
    /// seconds (the file system's commit interval): the record comes back with the pids and
    /// `last_seen` of its last durable write, as if those seconds' starts and prompts had not
    /// been (`list`'s "last active", where a reset policy's idle time starts, may be older).
    pub fn update_session(&self, before: &SessionRecord, after: &SessionRecord) -> Result<()> {
        match update_durability(before, after) {
            None => Ok(()),
            Some(Durability::Full) => self.put_session(after),
            Some(Durability::Volatile) => {
                let live = SessionRecord { stamp: before.stamp, ..after.clone() }.live();
                self.write_with(&self.live_path(&after.id), &live, Durability::Volatile)
            }
        }
    }

    /// Removes a session's live file when its record is gone or no longer carries its `stamp`
    /// (`prune`: a removal that a kill or a power loss lost).
    pub fn remove_stale_live(&self, id: &SessionId) -> Result<bool> {
        let current = match read_json::<SessionRecord>(&self.session_path(id)) {
            Ok(Some(rec)) => self.live(id).is_some_and(|l| l.stamp == rec.stamp),
            Ok(None) => false,
            // A record that does not parse: its live file may still be its.
            Err(_) => true,
        };
        if current { Ok(false) } else { remove_if_exists(&self.live_path(id)) }
    }

    pub fn remove_session(&self, id: &SessionId) -> Result<bool> {
        let _journaled = index::journal(&self.dir, id)?;
        self.remove_session_files(id)
    }

    /// [`remove_session`](Self::remove_session) of each of `ids`, announced in the sessions
    /// journal by one append and its lock held until the last is removed (`index`); returns
    /// how many records there were.
    pub fn remove_sessions(&self, ids: &[SessionId]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let _journaled = index::journal_many(&self.dir, ids)?;
        let mut removed = 0;
        for id in ids {
            removed += usize::from(self.remove_session_files(id)?);
        }
        Ok(removed)
    }

    fn remove_session_files(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.live_path(id))?;
        remove_if_exists(&self.turns_path(id))?;
        remove_if_exists(&self.settings_path(&SettingsOf::Session(id.clone())))?;
        remove_if_exists(&self.session_path(id))
    }

    /// Writes a key's state, removing the file once nothing is left in it.
    pub fn put_key_state(&self, state: &KeyState) -> Result<()> {
        let path = self.key_path(&state.key);
        if state.is_empty() { remove_if_exists(&path).map(drop) } else { self.write(&path, state) }
    }

    /// Writes a key's or a session's settings, removing the file once none is left.
    pub fn put_settings(&self, rec: &SettingsRecord) -> Result<()> {
        let path = self.settings_path(&rec.of);
        // A file that does not parse is not replaced: reading it first names the file.
        self.settings(&rec.of)?;
        if rec.settings.is_empty() { remove_if_exists(&path).map(drop) } else { self.write(&path, rec) }
    }

    pub fn set_global(&self, attached: Option<Attachment>) -> Result<()> {
        // A global.json that does not parse is not replaced: reading it first names the file.
        self.global()?;
        match attached {
            Some(a) => self.write(&self.global_path(), &GlobalState { v: FORMAT, attached: Some(a) }),
            None => remove_if_exists(&self.global_path()).map(drop),
        }
    }

    pub fn put_name(&self, name: &Name, session: &SessionId) -> Result<()> {
        let entry = NameEntry { v: FORMAT, name: name.clone(), session: session.clone() };
        self.write(&self.name_path(name), &entry)
    }

    pub fn remove_name(&self, name: &Name) -> Result<()> {
        // A name file that does not parse is not deleted: reading it first names the file.
        self.named(name)?;
        remove_if_exists(&self.name_path(name)).map(drop)
    }

    /// Writes a session's turn log. Unsynced: it serves live claude processes only, which
    /// a reboot ends (and the store lock orders writers).
    pub fn put_turn_log(&self, id: &SessionId, log: &TurnLog) -> Result<()> {
        let path = self.turns_path(id);
        create_private_dir(path.parent().expect("turns/ dir"))?;
        write_json(&path, log, Durability::Volatile)
    }

    pub fn put_request(&self, req: &PermissionRequest) -> Result<()> {
        self.write(&self.request_path(&req.id), req)
    }

    /// Writes a steer message (volatile: meaningless once its runs are gone).
    pub fn put_steer(&self, steer: &SteerRequest) -> Result<()> {
        let path = self.steer_path(&steer.session, &steer.id);
        create_private_dir(path.parent().expect("steer/ dir"))?;
        write_json(&path, steer, Durability::Volatile)
    }

    /// Removes a steer message and its events.
    pub fn remove_steer(&self, session: &SessionId, steer: &str) -> Result<bool> {
        remove_if_exists(&self.steer_events_path(session, steer))?;
        remove_if_exists(&self.steer_path(session, steer))
    }

    /// Writes the claim on `id`'s turn (volatile: meaningless once its process is gone).
    pub fn put_claim(&self, id: &SessionId, claim: &TurnClaim) -> Result<()> {
        self.write_with(&self.claim_path(id), claim, Durability::Volatile)
    }

    /// Removes the claim on `id`'s turn.
    pub fn remove_claim(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.claim_path(id))
    }

    /// Removes a claim on the next turn of `id` whoever made it (`prune`: its process is gone).
    pub fn remove_next_turn(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.next_path(id))
    }

    /// Removes `line`'s dir (`queue/<id>/`) or `id`'s steer dir if it is empty and nothing
    /// was added or removed there for `quiet` (a waiter joining right now is left alone).
    pub fn remove_quiet_dir(&self, dir: QuietDir<'_>, quiet: Duration) -> Result<bool> {
        let path = match dir {
            QuietDir::Queue(line) => self.queue_dir(line),
            QuietDir::Steer(id) => self.steer_dir(id),
        };
        let untouched = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= quiet));
        if !untouched {
            return Ok(false);
        }
        match std::fs::remove_dir(&path) {
            Ok(()) => Ok(true),
            // Not empty, or gone already: nothing to do.
            Err(_) => Ok(false),
        }
    }

    /// Removes a warm session's stderr log (`prune`: its keeper is gone).
    pub fn remove_warm_log(&self, id: &SessionId) -> Result<bool> {
        remove_if_exists(&self.warm_log(id))
    }

    /// Removes the scratch dirs (`ssh-in/<uuid>/`: pictures of a run from another machine)
    /// untouched for `age`: the run that made one removes it, a killed one does not.
    pub fn remove_old_scratch(&self, age: Duration) -> Result<usize> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("ssh-in")) else { return Ok(0) };
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|a| a >= age));
            if old && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes a claude slot (volatile: its processes are gone after a reboot).
    pub fn put_claude_slot(&self, slot: &ClaudeSlot) -> Result<()> {
        let path = self.claude_slot_path(&slot.id);
        create_private_dir(path.parent().expect("claudes/ dir"))?;
        write_json(&path, slot, Durability::Volatile)
    }

    pub fn remove_claude_slot(&self, id: &str) -> Result<bool> {
        remove_if_exists(&self.claude_slot_path(id))
    }

    pub fn remove_request(&self, id: &RequestId) -> Result<bool> {
        remove_if_exists(&self.request_path(id))
    }

    /// Remembers the version `binary` printed (the newest [`ClaudeVersions::MAX`] binaries).
    pub fn put_claude_version(&self, binary: &crate::sys::files::Stamp, version: Version) -> Result<()> {
        let path = self.store.claude_versions_path();
        let mut known: ClaudeVersions = read_json(&path).ok().flatten().unwrap_or_default();
        known.v = FORMAT;
        known.binaries.retain(|b| b.binary.path != binary.path);
        known.binaries.push(ClaudeVersion { binary: binary.clone(), version: version.to_string() });
        let excess = known.binaries.len().saturating_sub(ClaudeVersions::MAX);
        known.binaries.drain(..excess);
        self.write_with(&path, &known, Durability::Volatile)
    }

    /// Records `run` as the newest probe of its binary with Claude Code `version`.
    pub fn put_probe_run(&self, version: Version, run: ProbeRun) -> Result<()> {
        let mut record = self.probe_record(version)?.unwrap_or_else(|| ProbeRecord {
            v: FORMAT,
            version: version.to_string(),
            runs: Vec::new(),
        });
        record.runs.retain(|r| r.claude != run.claude);
        record.runs.push(run);
        self.write(&self.probe_path(version), &record)
    }
}

fn default_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAWSESS_HOME").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            bail!("CLAWSESS_HOME must be an absolute path, not {}", dir.display());
        }
        return Ok(dir);
    }
    let dirs = directories::ProjectDirs::from("", "", "clawsess")
        .context("could not find a home directory for the state dir; set CLAWSESS_HOME")?;
    Ok(dirs.data_dir().to_path_buf())
}

/// When `path` was last modified, in milliseconds since the Unix epoch.
pub fn mtime_ms(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    modified.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// A new sessions index that a reader found due ([`Store::sessions_indexed_with`]), written
/// when this is dropped: `list` drops it after its output is written, so the output never
/// waits for it. From what the reader loaded (the index's entries it used, the records it read
/// from their files): only records written after the reader read the journal are read again.
pub struct Rebuild(Option<Box<RebuildOf>>);

struct RebuildOf {
    dir: PathBuf,
    view: index::View,
    names: files::Entries,
    /// Where each of `names` is in the index, if it was taken from it.
    sources: Vec<Option<(usize, usize)>>,
    /// Each record read from its file, in the order of `names`: its position, its JSON if it
    /// parsed.
    lines: Vec<(usize, Option<Vec<u8>>)>,
}

impl Rebuild {
    /// Whether a rebuild is pending.
    pub fn due(&self) -> bool {
        self.0.is_some()
    }

    /// Lets the rebuild go unwritten (`prune --dry-run` writes nothing, the cache included).
    pub fn skip(mut self) {
        self.0 = None;
    }

    /// Does the rebuild on a thread of its own, alongside what the reader does next (`list`
    /// writing its output: at 100,000 sessions the rebuild writes 45 MB, ~0.1 s); the
    /// [`Rebuilding`] returned waits for it when dropped. Done here if no thread can start.
    pub fn start(self) -> Rebuilding {
        if !self.due() {
            return Rebuilding(None);
        }
        // A thread that cannot be started drops its closure, and with it the rebuild: done.
        Rebuilding(std::thread::Builder::new().spawn(move || drop(self)).ok())
    }
}

/// A [`Rebuild`] under way on its own thread: dropping this waits for it.
pub struct Rebuilding(Option<std::thread::JoinHandle<()>>);

impl Drop for Rebuilding {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        let Some(of) = self.0.take() else { return };
        let RebuildOf { dir, view, names, sources, lines } = *of;
        // In the order of `names`: an index entry that parsed (one that did not was read from
        // its file), else what was read from the file. Nothing is parsed again.
        let mut read = lines.into_iter().peekable();
        let records = (0..names.len()).filter_map(|i| {
            let json = match read.next_if(|(at, _)| *at == i) {
                Some((_, json)) => std::borrow::Cow::Owned(json?),
                None => std::borrow::Cow::Borrowed(view.json(sources[i]?)),
            };
            Some((names[i].0.as_str(), json))
        });
        // A cache: a rebuild that fails leaves it to the next reader.
        let _ = view.compact(&dir, records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    fn record(id: &SessionId) -> SessionRecord {
        SessionRecord::new(id.clone(), "/p".into(), "/p/t.jsonl".into(), Starter::Person, 1)
    }

    #[test]
    fn a_claude_binarys_version_is_remembered_until_it_is_replaced_and_only_the_newest_sixteen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let bin = |n: usize| {
            let path = dir.path().join(format!("claude-{n}"));
            std::fs::write(&path, format!("binary {n}")).unwrap();
            crate::sys::files::Stamp::of(&path)
        };
        let first = bin(0);
        assert_eq!(store.claude_version(&first), None);
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_claude_version(&first, Version(2, 1, 328)).unwrap();
        assert_eq!(store.claude_version(&first), Some(Version(2, 1, 328)));
        // Replaced in place (another size): another binary, whose version is not known.
        std::fs::write(&first.path, "a newer binary").unwrap();
        let replaced = crate::sys::files::Stamp::of(&first.path);
        assert_eq!(store.claude_version(&replaced), None);
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_claude_version(&replaced, Version(2, 1, 400)).unwrap();
        for n in 1..=ClaudeVersions::MAX {
            tx.put_claude_version(&bin(n), Version(2, 0, 77)).unwrap();
        }
        drop(tx);
        let known: ClaudeVersions = read_json(&store.claude_versions_path()).unwrap().unwrap();
        assert_eq!(known.binaries.len(), ClaudeVersions::MAX);
        assert_eq!(store.claude_version(&replaced), None, "the oldest went");
        let newest = crate::sys::files::Stamp::of(&dir.path().join("claude-16"));
        assert_eq!(store.claude_version(&newest), Some(Version(2, 0, 77)));
    }

    #[test]
    fn a_session_update_pays_only_for_the_durability_its_change_needs() {
        let before = SessionRecord { processes: vec![7], ..record(&id(1)) };
        assert_eq!(update_durability(&before, &before.clone()), None, "nothing changed: no write");
        // Live pids and the time of the last activity mean nothing after a reboot.
        let volatile =
            SessionRecord { processes: vec![7, 8], told: vec![8], last_seen: 99, ..before.clone() };
        // Only the live file, which is never synced: no fsync at all.
        assert_eq!(update_durability(&before, &volatile), Some(Durability::Volatile));
        // So are a run turn's counters (docs/STATE.md: what a power loss can set back).
        let counted = SessionRecord {
            run_turns: 3,
            last_turn_key: Some("telegram:1".into()),
            last_turn_at: 99,
            ..volatile.clone()
        };
        assert_eq!(update_durability(&before, &counted), Some(Durability::Volatile));
        for durable in [
            SessionRecord { source: "resume".into(), ..volatile.clone() },
            SessionRecord { cwd: "/q".into(), ..volatile.clone() },
            SessionRecord { title: Some("t".into()), ..volatile.clone() },
            SessionRecord { forked: true, ..volatile.clone() },
            SessionRecord { key: Some(Key::parse("k:1").unwrap()), ..volatile.clone() },
        ] {
            assert_eq!(update_durability(&before, &durable), Some(Durability::Full), "{durable:?}");
        }
    }

    #[test]
    fn a_volatile_change_writes_the_live_file_and_a_durable_one_the_record() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(&id(2))).unwrap();
        let before = tx.session(&id(2)).unwrap().unwrap();
        assert_ne!(before.stamp, 0, "a durable write tags the record");
        let inode = || std::fs::metadata(tx.session_path(&before.id)).unwrap().ino();
        let first = inode();
        tx.update_session(&before, &before.clone()).unwrap();
        assert_eq!(inode(), first, "rewritten though nothing changed");
        assert!(!tx.live_path(&before.id).exists());

        let after = SessionRecord {
            processes: vec![42],
            told: vec![42],
            last_seen: 5,
            run_turns: 1,
            last_turn_key: Some("k:1".into()),
            last_turn_at: 5,
            ..before.clone()
        };
        tx.update_session(&before, &after).unwrap();
        assert_eq!(inode(), first, "the record was rewritten for a change of live fields only");
        let read = tx.session(&before.id).unwrap().unwrap();
        assert_eq!((&read.processes, &read.told, read.last_seen), (&vec![42], &vec![42], 5));
        assert_eq!((read.run_turns, read.last_turn_key.as_deref(), read.last_turn_at), (1, Some("k:1"), 5));
        let (all, _) = tx.sessions().unwrap();
        assert_eq!(all[0].processes, vec![42], "list merges the live file too");

        // A durable change writes everything into the record and drops the live file.
        let named = SessionRecord { title: Some("t".into()), ..read };
        tx.update_session(&tx.session(&before.id).unwrap().unwrap(), &named).unwrap();
        assert_ne!(inode(), first);
        assert!(!tx.live_path(&before.id).exists());
        let on_disk: SessionRecord = read_json(&tx.session_path(&before.id)).unwrap().unwrap();
        assert_eq!((on_disk.processes, on_disk.last_seen), (vec![42], 5));
        assert_eq!(
            (on_disk.run_turns, on_disk.last_turn_key.as_deref()),
            (1, Some("k:1")),
            "counters folded in"
        );

        // Removing the session removes its live file.
        let rec = tx.session(&before.id).unwrap().unwrap();
        tx.update_session(&rec, &SessionRecord { last_seen: 9, ..rec.clone() }).unwrap();
        assert!(tx.live_path(&before.id).exists());
        tx.remove_session(&before.id).unwrap();
        assert!(!tx.live_path(&before.id).exists());
    }

    #[test]
    fn a_live_file_overlays_only_the_record_it_was_written_over() {
        let rec = SessionRecord { processes: vec![7], last_seen: 100, stamp: 5, ..record(&id(1)) };
        let live = |stamp, last_seen| LiveRecord {
            stamp,
            last_seen,
            processes: vec![8],
            told: vec![8],
            ..rec.live()
        };
        let merged = |l: Option<LiveRecord>| {
            let mut r = rec.clone();
            r.merge_live(l);
            (r.processes, r.told, r.last_seen)
        };
        // Missing (or unparseable: the store reads it as missing): the record as it is.
        assert_eq!(merged(None), (vec![7], vec![], 100));
        // Its own: the live pids, and the newer last_seen from either side.
        assert_eq!(merged(Some(live(5, 200))), (vec![8], vec![8], 200));
        assert_eq!(merged(Some(live(5, 50))), (vec![8], vec![8], 100));
        // Written over an older durable write (its removal lost): ignored.
        assert_eq!(merged(Some(live(4, 200))), (vec![7], vec![], 100));
        // The run counters: the live file's, written over this record, so never behind it;
        // one of an older clawsess (no counters) leaves the record's.
        let counted = SessionRecord {
            run_turns: 4,
            last_turn_key: Some("a:1".into()),
            last_turn_at: 40,
            ..rec.clone()
        };
        let counters = |l: LiveRecord| {
            let mut r = counted.clone();
            r.merge_live(Some(l));
            (r.run_turns, r.last_turn_key, r.last_turn_at)
        };
        let newer =
            LiveRecord { run_turns: 6, last_turn_key: Some("b:2".into()), last_turn_at: 60, ..live(5, 200) };
        assert_eq!(counters(newer), (6, Some("b:2".into()), 60));
        let older_clawsess =
            LiveRecord { run_turns: 0, last_turn_key: None, last_turn_at: 0, ..live(5, 200) };
        assert_eq!(counters(older_clawsess), (4, Some("a:1".into()), 40));
        // A record of before live files (no stamp, pids in it) still reads, pids and all.
        let old: SessionRecord = serde_json::from_value(serde_json::json!({
            "v": 1, "id": id(1), "cwd": "/p", "transcript": "/p/t.jsonl", "source": "startup",
            "started_by": "person", "first_seen": 1, "last_seen": 2, "terminal_pids": [3]
        }))
        .unwrap();
        assert_eq!((old.stamp, old.processes), (0, vec![3]));
    }

    #[test]
    fn a_torn_or_stale_live_file_is_no_live_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&SessionRecord { processes: vec![7], last_seen: 10, ..record(&id(3)) }).unwrap();
        let rec = tx.session(&id(3)).unwrap().unwrap();
        tx.update_session(&rec, &SessionRecord { processes: vec![8], last_seen: 20, ..rec.clone() }).unwrap();
        let path = tx.live_path(&id(3));
        for torn in [&b""[..], b"{\"v\": 1, \"stamp\""] {
            std::fs::write(&path, torn).unwrap();
            let read = tx.session(&id(3)).unwrap().unwrap();
            assert_eq!((read.processes, read.last_seen), (vec![7], 10), "{torn:?}");
            assert_eq!(tx.sessions().unwrap().1.len(), 0, "a torn live file is no broken record");
        }
        // Stale: the record was written again since (a kill between the record's write and
        // the live file's removal).
        tx.update_session(&rec, &SessionRecord { processes: vec![8], last_seen: 20, ..rec.clone() }).unwrap();
        let stale = std::fs::read(&path).unwrap();
        tx.put_session(&rec).unwrap();
        std::fs::write(&path, &stale).unwrap();
        assert_eq!(tx.session(&id(3)).unwrap().unwrap().processes, vec![7]);
        assert!(tx.remove_stale_live(&id(3)).unwrap() && !path.exists());
        // Its record gone: prune removes it too.
        std::fs::write(&path, &stale).unwrap();
        std::fs::remove_file(tx.session_path(&id(3))).unwrap();
        assert!(tx.remove_stale_live(&id(3)).unwrap());
    }

    #[test]
    fn sessions_reads_every_record_on_threads_and_says_of_each_odd_file_what_a_path_read_says() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let sessions = store.dir().join("sessions");
        create_private_dir(&sessions).unwrap();
        // Past the count that `sessions_by_mtime` asks on two threads, too.
        let ids: Vec<SessionId> = (0..4500u32)
            .map(|n| SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap())
            .collect();
        for id in &ids {
            write_json(&store.session_path(id), &record(id), Durability::Volatile).unwrap();
        }
        // Larger than the first read's buffer.
        let big_id = SessionId::parse("ffffffff-0000-4000-8000-000000000000").unwrap();
        let big = SessionRecord { title: Some("t".repeat(40_000)), ..record(&big_id) };
        write_json(&store.session_path(&big.id), &big, Durability::Volatile).unwrap();
        // A live file overlays its record on whichever thread reads it.
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let rec = tx.session(&ids[4499]).unwrap().unwrap();
        tx.update_session(&rec, &SessionRecord { processes: vec![4], ..rec.clone() }).unwrap();
        drop(tx);
        std::fs::write(sessions.join("broken.json"), "{").unwrap();
        std::fs::write(sessions.join("future.json"), r#"{"v": 99}"#).unwrap();
        std::fs::write(sessions.join(".x.json.tmp"), "{").unwrap();
        std::fs::create_dir(sessions.join("dir.json")).unwrap();
        std::os::unix::fs::symlink(store.session_path(&ids[0]), sessions.join("link.json")).unwrap();

        let (good, bad) = store.sessions().unwrap();
        let mut read: Vec<SessionId> = good.iter().map(|r| r.id.clone()).collect();
        read.sort();
        let mut expected = ids.clone();
        expected.push(big.id.clone());
        expected.sort();
        assert_eq!(read, expected);
        assert_eq!(good.iter().find(|r| r.id == big.id).unwrap().title, big.title);
        assert_eq!(good.iter().find(|r| r.id == ids[4499]).unwrap().processes, vec![4]);
        let mut said: Vec<String> = bad.iter().map(|e| format!("{e:#}")).collect();
        said.sort();
        let mut by_path: Vec<String> = ["broken", "dir", "future", "link"]
            .iter()
            .map(|stem| {
                format!(
                    "{:#}",
                    read_json::<SessionRecord>(&sessions.join(format!("{stem}.json"))).unwrap_err()
                )
            })
            .collect();
        by_path.sort();
        assert_eq!(said, by_path);

        let mut by_time: Vec<SessionId> =
            store.sessions_by_mtime().unwrap().into_iter().map(|(_, id)| id).collect();
        by_time.sort();
        assert_eq!(by_time, expected, "every record, no file whose name is no id");
    }

    #[test]
    fn the_newer_of_a_record_and_its_live_file_orders_sessions_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        for n in [1, 2] {
            tx.put_session(&record(&id(n))).unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for n in [1, 2] {
            std::fs::File::options()
                .write(true)
                .open(tx.session_path(&id(n)))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let rec = tx.session(&id(1)).unwrap().unwrap();
        tx.update_session(&rec, &SessionRecord { last_seen: 99, ..rec.clone() }).unwrap();
        let order: Vec<SessionId> = tx.sessions_by_mtime().unwrap().into_iter().map(|(_, id)| id).collect();
        assert_eq!(order, vec![id(1), id(2)]);
    }

    #[test]
    fn records_round_trip_through_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("state"));
        assert!(store.session(&id(1)).unwrap().is_none());
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        tx.put_session(&record(&id(1))).unwrap();
        drop(tx);
        assert_eq!(store.session(&id(1)).unwrap().unwrap().cwd, PathBuf::from("/p"));
        assert_eq!(store.session_ids().unwrap(), vec![id(1)]);
    }

    #[test]
    fn empty_key_state_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let key = Key::parse("telegram:1").unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let mut state = KeyState::new(key.clone());
        state.own = Some(id(3));
        tx.put_key_state(&state).unwrap();
        assert_eq!(store.key_state(&key).unwrap().unwrap().own, Some(id(3)));
        state.own = None;
        tx.put_key_state(&state).unwrap();
        assert!(store.key_state(&key).unwrap().is_none());
        assert!(store.key_states().unwrap().0.is_empty());
    }

    #[test]
    fn second_locker_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let _held = store.lock(COMMAND_LOCK_WAIT).unwrap();
        let start = Instant::now();
        let err = store.lock(Duration::from_millis(100)).err().unwrap().to_string();
        assert!(err.contains("state lock"), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
