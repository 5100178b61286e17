//! The rows of `clawsess list`: every recorded session, most recently active first, with the
//! keys attached to it and its marks (busy, live, warm, gone, forked, a failed send); the
//! cells of its table and the objects of its `--json` (docs/JSON.md). The MCP tool
//! `sessions_list` takes its rows from here too, filtered ([`Filter`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::ident::{Name, SessionId};
use crate::store::{Rebuild, SessionHead, SessionRecord, Starter, Store};
use crate::sys::{ago, printable, rfc3339, tilde};
use crate::turn::exclusion;

/// One row of `list`: a record and what surrounds it.
pub struct Row {
    pub rec: SessionRecord,
    pub attached: Vec<String>,
    pub own_of: Vec<String>,
    /// The keys that talk to it, attached (`*` first) or own, each once, in the order of the
    /// keys' files (`sessions_list`'s `keys`, with the starting bot's key after them).
    pub keys: Vec<String>,
    pub busy: Option<String>,
    pub live: bool,
    /// A warm claude (`run --warm`) is kept for it.
    pub warm: bool,
    pub gone: bool,
    /// Forked, and clawsess may not correct its checkpoint: why (`probe::correction_allowed`).
    pub uncorrected: Option<String>,
    /// The last `reply: none` send to it (cross-session tools) failed: why.
    pub send_failed: Option<String>,
}

/// Which sessions [`rows`] gives: every one (`list`), or those `sessions_list` asks for.
#[derive(Default, Clone, Copy)]
pub struct Filter<'a> {
    /// Only sessions with a key (attached, own, or the bot's that started it) that starts
    /// with this.
    pub key_prefix: Option<&'a str>,
    /// Only sessions with a claude open, a turn running, or a warm claude.
    pub active_only: bool,
    /// At most this many (the most recently active).
    pub limit: Option<usize>,
}

impl Filter<'_> {
    /// Every session, or the `limit` most recently active.
    pub fn all(limit: Option<usize>) -> Self {
        Filter { limit, ..Filter::default() }
    }
}

/// The sessions, most recently active first (by `last_seen`, the record's or its live file's,
/// the newer; then by id), with their keys and marks; those `filter` lets through. Records
/// are read through the sessions index (`Store::sessions_indexed_with`): the index's rebuild,
/// if one is due, is done when the [`Rebuild`] is dropped (once the rows are out).
pub fn rows(store: &Store, filter: Filter, skipped: &mut Vec<anyhow::Error>) -> Result<(Vec<Row>, Rebuild)> {
    let mut keys_skipped = Vec::new();
    let ByKeys { attached, own_of, keys } = keys_by_session(store, &mut keys_skipped)?;
    // Read only: `list` never sweeps a dead keeper's files (`doctor` and `run` do).
    let warm: std::collections::BTreeSet<SessionId> =
        crate::warm::keepers(store, false).unwrap_or_default().into_iter().map(|n| n.session).collect();
    let send_failed = crate::store::SendNote::failed(store);
    let around = Around { attached, own_of, keys, warm, send_failed };
    if let Some(limit) = filter.limit {
        let rows = few_rows(store, filter, limit, &around, skipped);
        skipped.extend(keys_skipped);
        return rows;
    }
    // Each row is made on the thread that read its record, which asks each pid once (they
    // repeat: a bot's process on many sessions).
    let (mut rows, broken, rebuild) = store.sessions_indexed_with(|seen: &mut Seen, rec| {
        let mut row = around.row(rec);
        row.live = seen.live(&row.rec.processes);
        row
    })?;
    skipped.extend(broken);
    skipped.extend(keys_skipped);
    if let Some(prefix) = filter.key_prefix {
        rows.retain(|row| row.has_key_starting(prefix));
    }
    // Their times and places sorted (the rows' ids looked at only on a tie), then each row
    // moved once to its place: a row is large, and a sort moves what it sorts many times over.
    let mut order: Vec<(u64, usize)> = rows.iter().map(|row| row.rec.last_seen).zip(0..).collect();
    order.sort_unstable_by(|&(a_seen, a), &(b_seen, b)| {
        newest_first((a_seen, &rows[a].rec.id), (b_seen, &rows[b].rec.id))
    });
    let mut place = vec![0; rows.len()];
    for (to, &(_, from)) in order.iter().enumerate() {
        place[from] = to;
    }
    for i in 0..rows.len() {
        while place[i] != i {
            let to = place[i];
            rows.swap(i, to);
            place.swap(i, to);
        }
    }
    mark_gone(&mut rows);
    let maybe_busy = store.maybe_busy();
    for row in &mut rows {
        if maybe_busy.contains(&row.rec.id) {
            row.busy = busy_by(store, &row.rec.id, skipped);
        }
    }
    if filter.active_only {
        rows.retain(Row::active);
    }
    for row in &mut rows {
        // Only a forked session's transcript is read: its last lines name their Claude Code.
        if row.rec.forked {
            row.uncorrected = crate::turn::fork::correction_allowed(&row.rec.transcript).err();
        }
    }
    Ok((rows, rebuild))
}

/// Marks the rows whose transcript is gone. Transcripts live in a few dirs (one per project)
/// and a dir is read whole once many of its names are asked (`sys::exists`): past a few
/// thousand rows, two threads ask each about its own half of the dirs, so that no dir is
/// read twice.
fn mark_gone(rows: &mut [Row]) {
    use std::hash::BuildHasher;
    use std::os::unix::ffi::OsStrExt;
    /// Below this many rows one thread asks them all.
    const PER_THREAD: usize = 4096;
    let dirs = crate::sys::exists::Fast::default();
    // By the last bytes of its dir's name (dirs that share them fall in one half).
    let half = |row: &Row| {
        let path = row.rec.transcript.as_os_str().as_bytes();
        let parent = &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        dirs.hash_one(&parent[parent.len().saturating_sub(8)..]) & 1
    };
    let ask = |of: u64, rows: &[Row]| -> Vec<(usize, bool)> {
        let mut exists = crate::sys::exists::Exists::new();
        rows.iter()
            .enumerate()
            .filter(|(_, row)| half(row) == of)
            .map(|(i, row)| (i, !exists.check(&row.rec.transcript)))
            .collect()
    };
    if rows.len() < PER_THREAD {
        let mut exists = crate::sys::exists::Exists::new();
        for row in rows.iter_mut() {
            row.gone = !exists.check(&row.rec.transcript);
        }
        return;
    }
    let shared: &[Row] = rows;
    let (zeros, ones) = crate::sys::both(|| ask(0, shared), || ask(1, shared));
    for (i, gone) in ones.into_iter().chain(zeros) {
        rows[i].gone = gone;
    }
}

/// `list`'s order: the most recently active first, then by id.
fn newest_first(a: (u64, &SessionId), b: (u64, &SessionId)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// [`rows`] with a `limit` (`sessions_list`): every record is read only as far as ordering
/// and filtering need ([`SessionHead`]: id, last active, the bot's key, the processes), the
/// first `limit` in order are picked (without sorting the rest), and only those rows are
/// made, each from its whole record; the same rows, in the same order, as [`rows`] without a
/// limit cut at `limit` (`few_rows_are_the_first_of_every_row`).
fn few_rows(
    store: &Store,
    filter: Filter,
    limit: usize,
    around: &Around,
    skipped: &mut Vec<anyhow::Error>,
) -> Result<(Vec<Row>, Rebuild)> {
    let (mut heads, broken, rebuild) = store.sessions_indexed_as(|_: &mut (), head: SessionHead| head)?;
    skipped.extend(broken);
    if let Some(prefix) = filter.key_prefix {
        heads.retain(|h| {
            around.keys.get(&h.id).is_some_and(|keys| keys.iter().any(|k| k.starts_with(prefix)))
                || h.key.as_ref().is_some_and(|k| k.as_str().starts_with(prefix))
        });
    }
    let maybe_busy = store.maybe_busy();
    let order = |a: &SessionHead, b: &SessionHead| newest_first((a.last_seen, &a.id), (b.last_seen, &b.id));
    if filter.active_only {
        // Only those that may be active (a process recorded, a warm claude, a turn's files):
        // whether each is, is asked in order until `limit` are found.
        heads
            .retain(|h| !h.processes.is_empty() || around.warm.contains(&h.id) || maybe_busy.contains(&h.id));
    } else if heads.len() > limit {
        heads.select_nth_unstable_by(limit, order);
        heads.truncate(limit);
    }
    heads.sort_unstable_by(order);
    let mut seen = Seen::default();
    let mut rows = Vec::with_capacity(limit.min(heads.len()));
    for head in heads {
        if rows.len() == limit {
            break;
        }
        let live = seen.live(&head.processes);
        let busy = if maybe_busy.contains(&head.id) { busy_by(store, &head.id, skipped) } else { None };
        if filter.active_only && !(live || busy.is_some() || around.warm.contains(&head.id)) {
            continue;
        }
        let rec = match store.session(&head.id) {
            Ok(Some(rec)) => rec,
            Ok(None) => continue, // removed since
            Err(err) => {
                skipped.push(err);
                continue;
            }
        };
        let mut row = around.row(rec);
        row.live = live;
        row.busy = busy;
        row.gone = !seen.exists.check(&row.rec.transcript);
        if row.rec.forked {
            row.uncorrected = crate::turn::fork::correction_allowed(&row.rec.transcript).err();
        }
        rows.push(row);
    }
    Ok((rows, rebuild))
}

/// What surrounds the records: the keys of each session, the warm ones, failed sends.
struct Around {
    attached: KeysBySession,
    own_of: KeysBySession,
    keys: KeysBySession,
    warm: std::collections::BTreeSet<SessionId>,
    send_failed: BTreeMap<SessionId, String>,
}

impl Around {
    /// `rec`'s row, its marks that need asking (busy, live, gone, uncorrected) not yet asked.
    fn row(&self, rec: SessionRecord) -> Row {
        Row {
            send_failed: self.send_failed.get(&rec.id).cloned(),
            attached: self.attached.get(&rec.id).cloned().unwrap_or_default(),
            own_of: self.own_of.get(&rec.id).cloned().unwrap_or_default(),
            keys: self.keys.get(&rec.id).cloned().unwrap_or_default(),
            busy: None,
            live: false,
            warm: self.warm.contains(&rec.id),
            gone: false,
            uncorrected: None,
            rec,
        }
    }
}

/// What a thread making rows has found so far.
#[derive(Default)]
struct Seen {
    exists: crate::sys::exists::Exists,
    alive: std::collections::HashMap<u32, bool>,
}

impl Seen {
    /// Whether one of a session's claude processes is open (each pid asked once).
    fn live(&mut self, processes: &[u32]) -> bool {
        processes.iter().any(|&pid| *self.alive.entry(pid).or_insert_with(|| crate::sys::pid_alive(pid)))
    }
}

type KeysBySession = BTreeMap<SessionId, Vec<String>>;

/// Each session's keys (see [`Row`]).
struct ByKeys {
    attached: KeysBySession,
    own_of: KeysBySession,
    keys: KeysBySession,
}

/// Which keys are attached to each session (`*`: the global attachment), and whose own
/// session each is.
fn keys_by_session(store: &Store, skipped: &mut Vec<anyhow::Error>) -> Result<ByKeys> {
    let mut by =
        ByKeys { attached: KeysBySession::new(), own_of: KeysBySession::new(), keys: KeysBySession::new() };
    if let Some(global) = store.global().unwrap_or_else(|e| {
        skipped.push(e);
        None
    }) {
        by.attached.entry(global.session.clone()).or_default().push("*".to_owned());
        by.keys.entry(global.session).or_default().push("*".to_owned());
    }
    let (states, broken) = store.key_states()?;
    skipped.extend(broken);
    for state in states {
        let key = state.key.to_string();
        if let Some(a) = state.attached {
            by.attached.entry(a.session.clone()).or_default().push(key.clone());
            by.keys.entry(a.session).or_default().push(key.clone());
        }
        if let Some(own) = state.own {
            by.own_of.entry(own.clone()).or_default().push(key.clone());
            let keys = by.keys.entry(own).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(by)
}

/// Who answers a session right now: a run's key, or a process's surface.
fn busy_by(store: &Store, id: &SessionId, skipped: &mut Vec<anyhow::Error>) -> Option<String> {
    exclusion::busy_by(store, id).unwrap_or_else(|e| {
        skipped.push(e);
        None
    })
}

impl Row {
    /// A claude open on it, a turn running, or a warm claude (`sessions_list`'s `active_only`).
    pub fn active(&self) -> bool {
        self.busy.is_some() || self.live || self.warm
    }

    /// Whether a key that talks to it, or the bot's that started it, starts with `prefix`.
    pub fn has_key_starting(&self, prefix: &str) -> bool {
        self.keys.iter().any(|k| k.starts_with(prefix))
            || self.rec.key.as_ref().is_some_and(|k| k.as_str().starts_with(prefix))
    }

    /// The table's cells: short id, name, last active, cwd, keys, state.
    pub fn cells(&self, now: u64) -> [String; 6] {
        let mut keys = self.attached.clone();
        keys.extend(self.own_of.iter().map(|k| format!("{k} (own)")));
        let mut state = Vec::new();
        if let Some(by) = &self.busy {
            state.push(format!("busy:{by}"));
        }
        if self.live {
            state.push("live".to_owned());
        }
        if self.warm {
            state.push("warm".to_owned());
        }
        if self.gone {
            state.push("gone".to_owned());
        }
        if self.send_failed.is_some() {
            state.push("send-failed".to_owned());
        }
        if self.rec.forked {
            state.push(if self.uncorrected.is_some() { "forked(uncorrected)" } else { "forked" }.to_owned());
        }
        let or_dash = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(",") };
        [
            self.rec.id.short().to_owned(),
            self.rec.name.as_ref().map_or("-".to_owned(), |n| n.to_string()),
            ago(self.rec.last_seen, now),
            printable(&tilde(&self.rec.cwd), false).into_owned(),
            or_dash(keys),
            or_dash(state),
        ]
    }
}

/// One element of `list --json` (the schema docs/JSON.md documents).
#[derive(Serialize)]
pub struct JsonRow<'a> {
    pub session_id: &'a SessionId,
    pub name: Option<&'a Name>,
    pub cwd: &'a Path,
    pub transcript: &'a Path,
    pub started_by: Starter,
    /// The key of the bot that started it.
    pub key: Option<&'a crate::ident::Key>,
    pub source: &'a str,
    pub first_seen: String,
    pub last_active: String,
    pub run_turns: u64,
    pub attached_keys: &'a [String],
    pub own_session_of: &'a [String],
    pub busy: Option<&'a str>,
    pub live: bool,
    pub warm: bool,
    pub transcript_exists: bool,
    pub forked: bool,
    /// Forked, and clawsess does not correct its checkpoint: why.
    pub checkpoint_correction_off: Option<&'a str>,
    /// The last `reply: none` send to it (cross-session tools) failed: why.
    pub detached_send_failed: Option<&'a str>,
}

impl<'a> From<&'a Row> for JsonRow<'a> {
    fn from(row: &'a Row) -> Self {
        let rec = &row.rec;
        Self {
            session_id: &rec.id,
            name: rec.name.as_ref(),
            cwd: &rec.cwd,
            transcript: &rec.transcript,
            started_by: rec.started_by,
            key: rec.key.as_ref(),
            source: &rec.source,
            first_seen: rfc3339(rec.first_seen),
            last_active: rfc3339(rec.last_seen),
            run_turns: rec.run_turns,
            attached_keys: &row.attached,
            own_session_of: &row.own_of,
            busy: row.busy.as_deref(),
            live: row.live,
            warm: row.warm,
            transcript_exists: !row.gone,
            forked: rec.forked,
            checkpoint_correction_off: row.uncorrected.as_deref(),
            detached_send_failed: row.send_failed.as_deref(),
        }
    }
}

/// Writes `rows` as `list --json`'s one array, byte for byte as `serde_json::to_writer_pretty`
/// writes it. Many rows are turned into text on two threads: this one writes every other
/// block of rows straight to `out`, a second one the blocks between, into buffers this one
/// writes in their turn (at 100,000 sessions the text is 70 MB).
pub fn write_json(rows: &[Row], out: &mut impl std::io::Write) -> std::io::Result<()> {
    /// Rows a block.
    const BLOCK: usize = 256;
    if rows.is_empty() {
        return out.write_all(b"[]");
    }
    out.write_all(b"[")?;
    let mut blocks = rows.chunks(BLOCK);
    let first = blocks.next().unwrap_or_default();
    write_rows(first, true, out)?;
    if rows.len() <= 4 * BLOCK {
        for block in blocks {
            write_rows(block, false, out)?;
        }
        return out.write_all(b"\n]");
    }
    let blocks: Vec<&[Row]> = blocks.collect();
    std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let theirs = blocks.iter().skip(1).step_by(2);
        let helper = std::thread::Builder::new().spawn_scoped(scope, move || {
            for block in theirs {
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.clear();
                write_rows(block, false, &mut buf).expect("writing to a Vec cannot fail");
                if done.send(buf).is_err() {
                    return; // the writer failed and stopped
                }
            }
        });
        for (i, block) in blocks.iter().enumerate() {
            if !i.is_multiple_of(2) && helper.is_ok() {
                let buf = finished.recv().map_err(std::io::Error::other)?;
                out.write_all(&buf)?;
                let _ = give_back.send(buf);
            } else {
                write_rows(block, false, out)?;
            }
        }
        Ok::<_, std::io::Error>(())
    })?;
    out.write_all(b"\n]")
}

/// The array elements of `rows`, each after its `,` (none before the first of the array) and
/// indented one level, as `serde_json`'s pretty printer writes them.
fn write_rows(rows: &[Row], first: bool, out: &mut impl std::io::Write) -> std::io::Result<()> {
    for (i, row) in rows.iter().enumerate() {
        out.write_all(if first && i == 0 { b"\n  " } else { b",\n  " })?;
        let mut ser =
            serde_json::Serializer::with_formatter(&mut *out, Pretty { indent: 1, has_value: false });
        JsonRow::from(row).serialize(&mut ser).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// `serde_json::ser::PrettyFormatter` (two spaces) started at a given depth: the same bytes
/// as the value printed inside an array by `to_writer_pretty`.
struct Pretty {
    indent: usize,
    has_value: bool,
}

impl Pretty {
    fn newline(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        out.write_all(b"\n")?;
        (0..self.indent).try_for_each(|_| out.write_all(b"  "))
    }

    /// `[` or `{`: one level deeper, nothing in it yet.
    fn open(&mut self, out: &mut (impl std::io::Write + ?Sized), bracket: &[u8]) -> std::io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    /// `]` or `}`: on a line of its own when something was in it.
    fn close(&mut self, out: &mut (impl std::io::Write + ?Sized), bracket: &[u8]) -> std::io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            self.newline(out)?;
        }
        out.write_all(bracket)
    }

    /// Before an array element or an object key: `,` unless it is the first, a new line.
    fn item(&self, out: &mut (impl std::io::Write + ?Sized), first: bool) -> std::io::Result<()> {
        if !first {
            out.write_all(b",")?;
        }
        self.newline(out)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _out: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Key;
    use crate::store::{Attachment, COMMAND_LOCK_WAIT, KeyState};

    fn id(n: u64) -> SessionId {
        SessionId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).unwrap()
    }

    #[test]
    fn write_json_writes_what_serde_json_pretty_prints_at_any_count() {
        let row = |n: u64| {
            let mut rec =
                SessionRecord::new(id(n), format!("/p/{n}").into(), "/t/\"q\".jsonl".into(), Starter::Bot, n);
            rec.name = (n.is_multiple_of(3)).then(|| Name::parse(&format!("n{n}")).unwrap());
            rec.key = (n.is_multiple_of(5)).then(|| Key::parse(&format!("telegram:{n}")).unwrap());
            rec.forked = n.is_multiple_of(7);
            Row {
                rec,
                attached: (0..n % 3).map(|k| format!("k:{k}")).collect(),
                keys: Vec::new(),
                own_of: (0..n % 2).map(|k| format!("o:{k}")).collect(),
                busy: (n.is_multiple_of(4)).then(|| "telegram:\u{7}1".to_owned()),
                live: n.is_multiple_of(2),
                warm: n.is_multiple_of(9),
                gone: n.is_multiple_of(11),
                uncorrected: (n.is_multiple_of(7)).then(|| "why\nnot".to_owned()),
                send_failed: (n.is_multiple_of(13)).then(|| "ü".to_owned()),
            }
        };
        for count in [0, 1, 2, 256, 257, 1024, 1025, 3000] {
            let rows: Vec<Row> = (0..count).map(row).collect();
            let mut written = Vec::new();
            write_json(&rows, &mut written).unwrap();
            let json: Vec<JsonRow> = rows.iter().map(JsonRow::from).collect();
            let expected = serde_json::to_vec_pretty(&json).unwrap();
            assert!(written == expected, "{count} rows: {}", String::from_utf8_lossy(&written));
        }
    }

    /// A row as the tools see it: its `--json` object and its keys.
    fn seen_as(row: &Row) -> (serde_json::Value, Vec<String>) {
        (serde_json::to_value(JsonRow::from(row)).unwrap(), row.keys.clone())
    }

    /// One session of a generated store: its `last_seen` (few values: ties), whether its
    /// record names an open claude, a dead one or none, whether a live file newer than the
    /// record says so, which key (of three) is attached to it or owns it, or started it.
    type Made = (u8, u8, Option<(u8, u8)>, u8, u8, bool, bool);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn few_rows_are_the_first_of_every_row(
            made in proptest::collection::vec(
                (0u8..6, 0u8..3, proptest::option::of((0u8..6, 0u8..3)), 0u8..4, 0u8..4, proptest::bool::ANY, proptest::bool::ANY),
                0..24,
            ),
            indexed_first in proptest::bool::ANY,
            limit in 1usize..30,
            prefix in proptest::option::of(proptest::sample::select(vec!["telegram:", "telegram:1", "discord:", "x"])),
            active_only in proptest::bool::ANY,
        ) {
            few_rows_are_the_first_of_every_row_in(&made, indexed_first, limit, prefix, active_only);
        }
    }

    fn few_rows_are_the_first_of_every_row_in(
        made: &[Made],
        indexed_first: bool,
        limit: usize,
        prefix: Option<&str>,
        active_only: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let transcript = dir.path().join("t.jsonl");
        std::fs::write(&transcript, "").unwrap();
        let me = std::process::id();
        let dead = u32::MAX - 1; // no such pid
        let pids = |which: u8| match which {
            0 => vec![],
            1 => vec![me],
            _ => vec![dead],
        };
        let key = |k: u8| Key::parse(["telegram:1", "telegram:2", "discord:3"][usize::from(k % 3)]).unwrap();
        let write = |made: &[Made], from: usize| {
            let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
            let mut states: BTreeMap<u8, KeyState> = BTreeMap::new();
            for (n, &(seen, procs, live, attached, owned, started, forked)) in
                made.iter().enumerate().skip(from)
            {
                let n = n as u64;
                let gone =
                    if n.is_multiple_of(5) { dir.path().join("gone.jsonl") } else { transcript.clone() };
                let mut rec = SessionRecord::new(id(n), dir.path().into(), gone, Starter::Bot, 1);
                rec.last_seen = 1_000 * u64::from(seen);
                rec.processes = pids(procs);
                rec.key = started.then(|| key(attached));
                rec.forked = forked;
                tx.put_session(&rec).unwrap();
                if let Some((later, procs)) = live {
                    let stored = store.session(&id(n)).unwrap().unwrap();
                    let after = SessionRecord {
                        last_seen: stored.last_seen + 500 * u64::from(later),
                        processes: pids(procs),
                        ..stored.clone()
                    };
                    tx.update_session(&stored, &after).unwrap();
                }
                if attached < 3 {
                    let state = states.entry(attached).or_insert_with(|| KeyState::new(key(attached)));
                    state.attached = Some(Attachment { session: id(n), at: 1 });
                }
                if owned < 3 {
                    let state = states.entry(owned).or_insert_with(|| KeyState::new(key(owned)));
                    state.own = Some(id(n));
                }
            }
            for state in states.values() {
                tx.put_key_state(state).unwrap();
            }
        };
        // Some records in the index, the others written since (journaled), or none indexed.
        let half = if indexed_first { made.len() / 2 } else { 0 };
        write(&made[..half], 0);
        if indexed_first {
            drop(rows(&store, Filter::default(), &mut Vec::new()).unwrap());
        }
        write(made, half);
        let every = Filter { key_prefix: prefix, active_only, limit: None };
        let (all, _) = rows(&store, every, &mut Vec::new()).unwrap();
        let few = Filter { limit: Some(limit), ..every };
        let (some, _) = rows(&store, few, &mut Vec::new()).unwrap();
        let expected: Vec<_> = all.iter().take(limit).map(seen_as).collect();
        let got: Vec<_> = some.iter().map(seen_as).collect();
        assert_eq!(got, expected, "limit {limit}, prefix {prefix:?}, active only {active_only}");
    }

    #[test]
    fn rows_are_most_recent_first_with_their_keys_and_marks_and_skip_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let transcript = dir.path().join("t.jsonl");
        std::fs::write(&transcript, "").unwrap();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        for n in 1..=3 {
            let gone = if n == 2 { dir.path().join("gone.jsonl") } else { transcript.clone() };
            let mut rec = SessionRecord::new(id(n), dir.path().into(), gone, Starter::Run, 0);
            rec.last_seen = 1_000 * n;
            tx.put_session(&rec).unwrap();
        }
        let mut bot = KeyState::new(Key::parse("telegram:1").unwrap());
        bot.attached = Some(Attachment { session: id(1), at: 5 });
        bot.own = Some(id(3));
        tx.put_key_state(&bot).unwrap();
        tx.set_global(Some(Attachment { session: id(1), at: 6 })).unwrap();
        drop(tx);
        std::fs::write(dir.path().join("sessions").join("broken.json"), "{").unwrap();

        let mut skipped = Vec::new();
        let (rows, _) = rows(&store, Filter::default(), &mut skipped).unwrap();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(format!("{:#}", skipped[0]).contains("broken.json"), "{skipped:?}");
        let ids: Vec<_> = rows.iter().map(|r| r.rec.id.clone()).collect();
        assert_eq!(ids, [id(3), id(2), id(1)]);
        assert_eq!(rows[2].attached, ["*", "telegram:1"]);
        assert_eq!(rows[0].own_of, ["telegram:1"]);
        assert!(rows[1].gone && !rows[0].gone);

        let cells = rows.iter().map(|r| r.cells(10_000)).collect::<Vec<_>>();
        assert_eq!(cells[0][4], "telegram:1 (own)");
        assert_eq!(cells[1][5], "gone");
        assert_eq!(cells[2][4], "*,telegram:1");
        assert_eq!(cells[2][5], "-");
        let json = serde_json::to_value(JsonRow::from(&rows[1])).unwrap();
        assert_eq!(json["transcript_exists"], false);
        assert_eq!(json["session_id"], id(2).as_str());

        let mut skipped = Vec::new();
        assert_eq!(super::rows(&store, Filter::all(Some(1)), &mut skipped).unwrap().0.len(), 1);
    }
}
