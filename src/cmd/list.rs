use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::Run;
use crate::cli::List;
use crate::exit::{self, stdout_error};
use crate::ident::{Name, SessionId};
use crate::store::{SessionRecord, Starter, Store, now_ms};
use crate::sys::{ago, printable, rfc3339, tilde};
use crate::turn::exclusion;

/// One row of `list`: a record and what surrounds it.
struct Row {
    rec: SessionRecord,
    attached: Vec<String>,
    own_of: Vec<String>,
    busy: Option<String>,
    live: bool,
    /// A warm claude (`run --warm`) is kept for it.
    warm: bool,
    gone: bool,
    /// Forked, and clawsess may not correct its checkpoint: why (`probe::correction_allowed`).
    uncorrected: Option<String>,
    /// The last `reply: none` send to it (cross-session tools) failed: why.
    send_failed: Option<String>,
}

impl Run for List {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        if self.all || self.host.is_some() {
            return self.with_hosts(&store);
        }
        let rows = rows(&store, self.limit)?;
        if self.json {
            // Streamed from borrowed rows: at 10,000 sessions, building a Value per row cost
            // about half of `list --json`.
            let rows: Vec<JsonRow> = rows.iter().map(JsonRow::from).collect();
            let mut bytes = serde_json::to_vec_pretty(&rows)?;
            bytes.push(b'\n');
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).and_then(|()| out.flush()).map_err(stdout_error)?;
        } else {
            print_table(&rows).map_err(stdout_error)?;
            if let Some(g) = crate::remote::ops::remote_global(&store)? {
                crate::outln!(
                    "*: every key follows the global attachment {} (on {}; `clawsess list --all`)",
                    g.named(),
                    g.host
                )?;
            }
        }
        Ok(exit::OK)
    }
}

impl List {
    /// `--all` (this machine and every host) or `--host NAME`: see `remote::list`.
    fn with_hosts(&self, store: &Store) -> Result<u8> {
        let local = if self.all {
            rows(store, self.limit)?
                .iter()
                .map(|r| serde_json::to_value(JsonRow::from(r)))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let hosts = match &self.host {
            Some(name) => vec![crate::remote::client::host(store, name)?.name],
            None => store.hosts()?.hosts.into_iter().map(|h| h.name).collect(),
        };
        crate::remote::list::print(store, local, &hosts, self.limit, self.json)
    }
}

/// One broken file must not hide every session: say which, and go on.
fn skip(err: anyhow::Error) {
    eprintln!("clawsess: skipped {err:#}");
}

/// The sessions, most recently active first, with their keys and marks.
fn rows(store: &Store, limit: Option<usize>) -> Result<Vec<Row>> {
    let (mut records, broken) = store.sessions()?;
    broken.into_iter().for_each(skip);
    records.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
    records.truncate(limit.unwrap_or(usize::MAX));
    let (mut attached, mut own_of) = keys_by_session(store)?;
    let maybe_busy = store.maybe_busy();
    // Read only: `list` never sweeps a dead keeper's files (`doctor` and `run` do).
    let warm: std::collections::BTreeSet<SessionId> =
        crate::warm::keepers(store, false).unwrap_or_default().into_iter().map(|n| n.session).collect();
    let mut send_failed = crate::mcp::send::SendNote::failed(store);
    let rows = records.into_iter().map(|rec| Row {
        send_failed: send_failed.remove(&rec.id),
        attached: attached.remove(&rec.id).unwrap_or_default(),
        own_of: own_of.remove(&rec.id).unwrap_or_default(),
        busy: if maybe_busy.contains(&rec.id) { busy_by(store, &rec.id) } else { None },
        live: rec.process_open(),
        warm: warm.contains(&rec.id),
        gone: !rec.transcript.exists(),
        // Only a forked session's transcript is read: its last lines name their Claude Code.
        uncorrected: rec
            .forked
            .then(|| crate::turn::fork::correction_allowed(&rec.transcript).err())
            .flatten(),
        rec,
    });
    Ok(rows.collect())
}

type KeysBySession = BTreeMap<SessionId, Vec<String>>;

/// Which keys are attached to each session (`*`: the global attachment), and whose own
/// session each is.
fn keys_by_session(store: &Store) -> Result<(KeysBySession, KeysBySession)> {
    let mut attached = KeysBySession::new();
    let mut own_of = KeysBySession::new();
    if let Some(global) = store.global().unwrap_or_else(|e| {
        skip(e);
        None
    }) {
        attached.entry(global.session).or_default().push("*".to_owned());
    }
    let (states, broken) = store.key_states()?;
    broken.into_iter().for_each(skip);
    for state in states {
        if let Some(a) = state.attached {
            attached.entry(a.session).or_default().push(state.key.to_string());
        }
        if let Some(own) = state.own {
            own_of.entry(own).or_default().push(state.key.to_string());
        }
    }
    Ok((attached, own_of))
}

/// Who answers a session right now: a run's key, or a process's surface.
fn busy_by(store: &Store, id: &SessionId) -> Option<String> {
    exclusion::busy_by(store, id).unwrap_or_else(|e| {
        skip(e);
        None
    })
}

impl Row {
    /// The table's cells: short id, name, last active, cwd, keys, state.
    fn cells(&self, now: u64) -> [String; 6] {
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
struct JsonRow<'a> {
    session_id: &'a SessionId,
    name: Option<&'a Name>,
    cwd: &'a Path,
    transcript: &'a Path,
    started_by: Starter,
    /// The key of the bot that started it.
    key: Option<&'a crate::ident::Key>,
    source: &'a str,
    first_seen: String,
    last_active: String,
    run_turns: u64,
    attached_keys: &'a [String],
    own_session_of: &'a [String],
    busy: Option<&'a str>,
    live: bool,
    warm: bool,
    transcript_exists: bool,
    forked: bool,
    /// Forked, and clawsess does not correct its checkpoint: why.
    checkpoint_correction_off: Option<&'a str>,
    /// The last `reply: none` send to it (cross-session tools) failed: why.
    detached_send_failed: Option<&'a str>,
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

fn print_table(rows: &[Row]) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = std::io::BufWriter::new(stdout.lock());
    if rows.is_empty() {
        writeln!(
            out,
            "no sessions recorded yet: start Claude Code with the hook installed (`clawsess install`)"
        )?;
        return out.flush();
    }
    let now = now_ms();
    let header = ["ID", "NAME", "ACTIVE", "CWD", "KEYS", "STATE"].map(str::to_owned);
    let cells: Vec<[String; 6]> = rows.iter().map(|row| row.cells(now)).collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 6]| {
        let (last, rest) = row.split_last().expect("six cells");
        let mut text: String = rest.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}  ")).collect();
        text.push_str(last);
        text.trim_end().to_owned()
    };
    if color {
        writeln!(out, "\x1b[1m{}\x1b[0m", line(&header))?;
    } else {
        writeln!(out, "{}", line(&header))?;
    }
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    for row in rows {
        if let Some(why) = &row.send_failed {
            writeln!(
                out,
                "send-failed: the last message another session sent {} on its own failed: {} (`clawsess status {}`)",
                row.rec.id.short(),
                printable(why, false),
                row.rec.id.short()
            )?;
        }
    }
    if let Some((row, why)) = rows.iter().find_map(|r| r.uncorrected.as_ref().map(|w| (r, w))) {
        writeln!(
            out,
            "forked(uncorrected): a resume of {} may follow an older branch; checkpoint correction off: {}",
            row.rec.id.short(),
            printable(why, false)
        )?;
    }
    out.flush()
}
