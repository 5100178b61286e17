//! `list`: the sessions (`crate::list`) as a table, or with `--json` one array; `--all` and
//! `--host` add other machines' (`crate::remote::list`).

use std::io::{IsTerminal, Write};

use anyhow::Result;

use super::Run;
use crate::cli::List;
use crate::exit::{self, stdout_error};
use crate::list::{JsonRow, Row};
use crate::store::{Store, now_ms};
use crate::sys::printable;

impl Run for List {
    fn run(&self) -> Result<u8> {
        let store = Store::open()?;
        if self.all || self.host.is_some() {
            return self.with_hosts(&store);
        }
        let (rows, rebuild) = rows(&store, self.limit)?;
        // The sessions index's rebuild, if this `list` found one due: alongside the output,
        // which does not wait for it (the process does, at its end).
        let rebuild = rebuild.start();
        if self.json {
            // Written as it is made, from borrowed rows: no `Value` per row (at 10,000
            // sessions that cost about half of `list --json`), nor the whole text in memory
            // (70 MB at 100,000). A row cannot fail to serialize (its strings and paths came
            // from JSON), so what is written is always the whole document.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let written = crate::list::write_json(&rows, &mut out);
            written.and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).map_err(stdout_error)?;
            // The process ends now: freeing 100,000 rows one by one would cost it ~40 ms.
            std::mem::forget(rows);
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
        drop(rebuild);
        Ok(exit::OK)
    }
}

impl List {
    /// `--all` (this machine and every host) or `--host NAME`: see `remote::list`.
    fn with_hosts(&self, store: &Store) -> Result<u8> {
        let local = if self.all {
            rows(store, self.limit)?
                .0
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

/// The rows, each file that was skipped said on stderr; and the sessions index's rebuild.
fn rows(store: &Store, limit: Option<usize>) -> Result<(Vec<Row>, crate::store::Rebuild)> {
    let mut skipped = Vec::new();
    let rows = crate::list::rows(store, crate::list::Filter::all(limit), &mut skipped);
    skipped.into_iter().for_each(skip);
    rows
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
