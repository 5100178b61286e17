use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::Run;
use crate::cli::List;
use crate::exit;
use crate::ident::{Name, SessionId};
use crate::store::{SessionRecord, Starter, Store, now_ms};
use crate::sys::{ago, pid_alive, rfc3339, tilde};
use crate::turn::{run_holder, terminal_busy};

/// One row of `list`: a record and what surrounds it.
struct Row {
    rec: SessionRecord,
    attached: Vec<String>,
    own_of: Vec<String>,
    busy: Option<String>,
    live: bool,
    gone: bool,
}

impl Run for List {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        let (mut records, broken) = store.sessions()?;
        for err in &broken {
            eprintln!("clawsess: skipped {err:#}");
        }
        records.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
        records.truncate(self.limit.unwrap_or(usize::MAX));

        let mut attached: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
        let mut own_of: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
        // One broken file must not hide every session: say which, and go on.
        let skip = |err: anyhow::Error| eprintln!("clawsess: skipped {err:#}");
        if let Some(global) = store.global().unwrap_or_else(|e| {
            skip(e);
            None
        }) {
            attached.entry(global.session).or_default().push("*".to_owned());
        }
        let (states, broken_keys) = store.key_states()?;
        broken_keys.into_iter().for_each(skip);
        for state in states {
            if let Some(a) = state.attached {
                attached.entry(a.session).or_default().push(state.key.to_string());
            }
            if let Some(own) = state.own {
                own_of.entry(own).or_default().push(state.key.to_string());
            }
        }
        let maybe_busy = store.maybe_busy();
        let mut rows = Vec::with_capacity(records.len());
        for rec in records {
            let busy = if !maybe_busy.contains(&rec.id) {
                None
            } else if let Some(h) = run_holder(&store, &rec.id) {
                Some(h.key)
            } else {
                terminal_busy(&store, &rec.id)
                    .unwrap_or_else(|e| {
                        skip(e);
                        None
                    })
                    .map(|_| "terminal".to_owned())
            };
            rows.push(Row {
                attached: attached.remove(&rec.id).unwrap_or_default(),
                own_of: own_of.remove(&rec.id).unwrap_or_default(),
                busy,
                live: rec.terminal_pid.is_some_and(pid_alive),
                gone: !rec.transcript.exists(),
                rec,
            });
        }
        if self.json {
            // Streamed from borrowed rows: at 10,000 sessions, building a Value per row cost
            // about half of `list --json`.
            let rows: Vec<JsonRow> = rows.iter().map(JsonRow::from).collect();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
            out.flush()?;
        } else {
            print_table(&rows)?;
        }
        Ok(exit::OK)
    }
}

/// One element of `list --json` (the schema the README documents).
#[derive(Serialize)]
struct JsonRow<'a> {
    session_id: &'a SessionId,
    name: Option<&'a Name>,
    cwd: &'a Path,
    transcript: &'a Path,
    started_by: Starter,
    source: &'a str,
    first_seen: String,
    last_active: String,
    run_turns: u64,
    attached_keys: &'a [String],
    own_session_of: &'a [String],
    busy: Option<&'a str>,
    live: bool,
    transcript_exists: bool,
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
            source: &rec.source,
            first_seen: rfc3339(rec.first_seen),
            last_active: rfc3339(rec.last_seen),
            run_turns: rec.run_turns,
            attached_keys: &row.attached,
            own_session_of: &row.own_of,
            busy: row.busy.as_deref(),
            live: row.live,
            transcript_exists: !row.gone,
        }
    }
}

fn print_table(rows: &[Row]) -> Result<()> {
    let now = now_ms();
    let header = ["ID", "NAME", "ACTIVE", "CWD", "KEYS", "STATE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let mut keys = row.attached.clone();
            keys.extend(row.own_of.iter().map(|k| format!("{k} (own)")));
            let mut state = Vec::new();
            if let Some(by) = &row.busy {
                state.push(format!("busy:{by}"));
            }
            if row.live {
                state.push("live".to_owned());
            }
            if row.gone {
                state.push("gone".to_owned());
            }
            [
                row.rec.id.short().to_owned(),
                row.rec.name.as_ref().map_or("-".to_owned(), |n| n.to_string()),
                ago(row.rec.last_seen, now),
                tilde(&row.rec.cwd),
                if keys.is_empty() { "-".to_owned() } else { keys.join(",") },
                if state.is_empty() { "-".to_owned() } else { state.join(",") },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = std::io::BufWriter::new(stdout.lock());
    let line = |out: &mut dyn Write, row: &[String]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    if rows.is_empty() {
        writeln!(
            out,
            "no sessions recorded yet: start Claude Code with the hook installed (`clawsess install`)"
        )?;
        return Ok(());
    }
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    if color {
        write!(out, "\x1b[1m")?;
        line(&mut out, &head)?;
        write!(out, "\x1b[0m")?;
    } else {
        line(&mut out, &head)?;
    }
    for row in &cells {
        line(&mut out, row)?;
    }
    out.flush()?;
    Ok(())
}
