//! `list --all` / `list --host NAME`: sessions of this machine and of hosts, ids written
//! `NAME:ID` for the ones on a host.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use super::{Request, client};
use crate::exit;
use crate::store::{Store, now_ms};
use crate::sys::{ago, printable};

/// Prints `local` rows (`list --json` objects; empty for `--host`) and the rows of `hosts`,
/// one JSON array or one table. A host that cannot be reached is said on stderr, the rest
/// is printed, and the exit code is 69.
pub fn print(
    store: &Store,
    local: Vec<Value>,
    hosts: &[String],
    limit: Option<usize>,
    json: bool,
) -> Result<u8> {
    let mut rows: Vec<Value> = local
        .into_iter()
        .map(|mut row| {
            row["host"] = Value::Null;
            row
        })
        .collect();
    let mut code = exit::OK;
    // Every host at once: one slow host costs its own time, not the sum.
    let found: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let calls: Vec<_> =
            hosts.iter().map(|name| scope.spawn(move || host_rows(store, name, limit))).collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err(anyhow::anyhow!("its listing panicked"))))
            .collect()
    });
    for (name, found) in hosts.iter().zip(found) {
        match found {
            Ok(found) => rows.extend(found),
            Err(err) => {
                code = exit::code_of(&err).max(exit::UNAVAILABLE);
                eprintln!("clawsess: {name}: {}", printable(&format!("{err:#}"), true));
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        let mut bytes = serde_json::to_vec_pretty(&rows)?;
        bytes.push(b'\n');
        out.write_all(&bytes).map_err(exit::stdout_error)?;
    } else {
        table(&mut out, &rows).map_err(exit::stdout_error)?;
    }
    out.flush().map_err(exit::stdout_error)?;
    Ok(code)
}

/// The sessions on host `name`, their ids written `NAME:ID`.
fn host_rows(store: &Store, name: &str, limit: Option<usize>) -> Result<Vec<Value>> {
    let host = client::host(store, name)?;
    let mut call = client::connect(store, &host, true)?;
    call.send(&Request::List { limit })?;
    let (code, out) = call.collect()?;
    if code != exit::OK {
        anyhow::bail!("`clawsess list` there exited {code}");
    }
    let rows: Vec<Value> = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("its `list --json` is not a JSON array ({e})"))?;
    // This machine's global attachment may name one of them (`*`, as `list` marks it here).
    let global = store.hosts()?.global.filter(|g| g.host == name).map(|g| g.session);
    Ok(rows
        .into_iter()
        .map(|mut row| {
            let id = row["session_id"].as_str().unwrap_or("").to_owned();
            if global.as_deref() == Some(id.as_str())
                && let Some(keys) = row["attached_keys"].as_array_mut()
            {
                keys.insert(0, Value::String("*".to_owned()));
            }
            row["session_id"] = Value::String(format!("{name}:{id}"));
            row["host"] = Value::String(name.to_owned());
            row
        })
        .collect())
}

fn table(out: &mut impl Write, rows: &[Value]) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no sessions");
    }
    let now = now_ms();
    let s = |v: &Value| printable(v.as_str().unwrap_or("-"), false).into_owned();
    let list = |v: &Value| {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
        if items.is_empty() { "-".to_owned() } else { items.join(",") }
    };
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let id = r["session_id"].as_str().unwrap_or("");
            // HOST:ID shown as HOST:first 8 of the id, like `list`'s short ids.
            let short = match id.rsplit_once(':') {
                Some((host, id)) => format!("{host}:{}", &id[..id.len().min(8)]),
                None => id[..id.len().min(8)].to_owned(),
            };
            let active = r["last_active"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| ago(t.as_millisecond().max(0) as u64, now))
                .unwrap_or_else(|| "-".to_owned());
            let mut state = Vec::new();
            if let Some(by) = r["busy"].as_str() {
                state.push(format!("busy:{}", printable(by, false)));
            }
            for mark in ["live", "warm", "forked"] {
                if r[mark] == Value::Bool(true) {
                    state.push(mark.to_owned());
                }
            }
            [
                printable(&short, false).into_owned(),
                s(&r["name"]),
                active,
                s(&r["cwd"]),
                list(&r["attached_keys"]),
                if state.is_empty() { "-".to_owned() } else { state.join(",") },
            ]
        })
        .collect();
    let header = ["ID", "NAME", "ACTIVE", "CWD", "KEYS", "STATE"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line: String = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}  ")).collect();
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
