//! The four tools: what `tools/list` tells the model, and `tools/call`.
//!
//! A tool that fails (an unknown session, a refused send) answers with `isError: true` and the
//! reason as text, so the model can act on it; only a call of a tool that does not exist, or
//! arguments that are not an object, is a JSON-RPC error.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::rpc::RpcError;
use super::send::{self, Reply, Send};
use super::status;
use super::turns;
use crate::ident::{Key, Name, SessionId};
use crate::resolve::find_session_or_key;
use crate::store::{Starter, Store};

use crate::sys::rfc3339;

/// `sessions_list` rows given at most.
pub const LIST_MAX: usize = 200;
/// `sessions_history` turns given at most.
pub const HISTORY_MAX: usize = 20;

/// The tools with their input schemas and descriptions.
pub fn list() -> Value {
    json!([
        {
            "name": "sessions_list",
            "title": "List sessions",
            "description": "List the Claude Code sessions (conversations) on this machine that clawsess knows: \
                terminals, chat-bot threads (Telegram, Discord), scripts. Most recently active first. Each has an \
                id (use it, a unique prefix of 4+ characters, or its name as `session` in the other tools), name, \
                surface keys attached to it, working directory, who started it, last activity, whether a turn is \
                running now (busy) and whether a claude is kept warm for it. With `all` (or `host`), also sessions \
                on other machines reached over ssh, written `HOST:ID`: the other tools take that form too.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "key_prefix": {"type": "string", "description": "Only sessions with a surface key starting with this, e.g. `telegram:` or `discord:`"},
                    "active_only": {"type": "boolean", "description": "Only sessions with a claude open, a turn running, or a warm claude", "default": false},
                    "last_n": {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "default": 20, "description": "How many sessions at most"},
                    "all": {"type": "boolean", "default": false, "description": "Also the sessions on the other machines clawsess reaches over ssh (`clawsess hosts`); their ids are written `HOST:ID`"},
                    "host": {"type": "string", "description": "Only the sessions on this other machine (a name from `clawsess hosts`)"}
                },
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        },
        {
            "name": "sessions_history",
            "title": "Read a session",
            "description": "Read the last turns of another session's conversation: each turn's prompt, the tools it \
                used, and the reply (long texts are shortened). Use it to learn what was asked or decided there.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "session": {"type": "string", "description": "Session id, unique id prefix, name, `key:KEY` (the session a surface key such as key:telegram:123 talks to), or `HOST:ID` for a session on another machine"},
                    "last_n": {"type": "integer", "minimum": 1, "maximum": HISTORY_MAX, "default": 5, "description": "How many turns"}
                },
                "required": ["session"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        },
        {
            "name": "sessions_send",
            "title": "Send to a session",
            "description": "Send a message to another session: it is answered there as a turn of that session's own \
                conversation (with its own context, working directory and tools; a tool call that needs permission \
                is denied there). reply `wait` (default) returns that session's reply; `none` hands the message \
                over and returns at once (the other session works on it by itself). If the session is busy the \
                send waits for it, up to timeout_s. A session cannot send to itself, or back to a session that is \
                waiting for it.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "session": {"type": "string", "description": "Session id, unique id prefix, name, `key:KEY`, or `HOST:ID` for a session on another machine"},
                    "message": {"type": "string", "description": "What to say to that session's model, self-contained (it does not see this conversation)"},
                    "reply": {"type": "string", "enum": ["wait", "none"], "default": "wait", "description": "`wait`: return its reply; `none`: return at once"},
                    "timeout_s": {"type": "integer", "minimum": 1, "maximum": 86400, "default": DEFAULT_TIMEOUT_S, "description": "Seconds to wait for the reply, the wait for a busy session included"}
                },
                "required": ["session", "message"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": false, "openWorldHint": false}
        },
        {
            "name": "session_status",
            "title": "Session status",
            "description": "A session's model, number of turns, tokens used, context size of its last request, \
                whether it is busy or warm, which surface spoke last, the settings its next turn runs with (model, \
                effort... and where each comes from) and, for a key (`key:KEY`), its reset policy and next reset. \
                Without `session`: this session's own.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "session": {"type": "string", "description": "Session id, unique id prefix, name, `key:KEY`, or `HOST:ID` for a session on another machine [default: this session]"}
                },
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }
    ])
}

const DEFAULT_TIMEOUT_S: u64 = send::DEFAULT_TIMEOUT.as_secs();

/// Answers a `tools/call`.
pub fn call(params: &Value) -> std::result::Result<Value, RpcError> {
    let name =
        params.get("name").and_then(Value::as_str).ok_or_else(|| RpcError::invalid_params("no tool name"))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(args @ Value::Object(_)) => args.clone(),
        Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
    };
    let result = match name {
        "sessions_list" => sessions_list(&args),
        "sessions_history" => sessions_history(&args).map(Content::from),
        "sessions_send" => sessions_send(&args).map(Content::from),
        "session_status" => session_status(&args).map(Content::from),
        other => return Err(RpcError::invalid_params(format!("unknown tool: {other}"))),
    };
    Ok(match result {
        Ok(Content(texts)) => {
            let content: Vec<Value> = texts.into_iter().map(|t| json!({"type": "text", "text": t})).collect();
            json!({"content": content, "isError": false})
        }
        Err(err) => json!({"content": [{"type": "text", "text": format!("{err:#}")}], "isError": true}),
    })
}

/// A tool's result: its text blocks.
pub struct Content(pub Vec<String>);

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content(vec![text])
    }
}

/// A read-only tool run for a caller on another machine (`serve-ssh`'s `tool` request): its
/// text. `sessions_list` of this machine only, `session_status` of a named session only.
pub fn served(name: &str, args: &Value) -> Result<String> {
    for field in ["all", "host"] {
        if !matches!(args.get(field), None | Some(Value::Null | Value::Bool(false))) {
            bail!("`{field}` is the caller's: a host lists its own sessions");
        }
    }
    match name {
        "sessions_list" => Ok(sessions_list(args)?.0.concat()),
        "sessions_history" => sessions_history(args),
        "session_status" if string(args, "session")?.is_some() => session_status(args),
        "session_status" => bail!("a session on another machine is asked for by name"),
        other => bail!("{other:?} is not a tool a host serves"),
    }
}

/// Where a SESSION argument names a session on a host: `HOST:SESSION` (HOST a known host),
/// or `key:K` for a key whose turns go to a host (its attachment there: `key:K` there; the
/// global attachment to a session there: that session). The host's name and the argument
/// as the host reads it; `None`: here.
fn on_host(store: &Store, arg: &str) -> Result<Option<(String, String)>> {
    let arg = arg.trim();
    if let Some(key) = arg.strip_prefix("key:") {
        let key = Key::parse(key)?;
        return Ok(crate::remote::ops::host_of_key(store, &key)?
            .map(|(host, session)| (host, session.unwrap_or_else(|| format!("key:{key}")))));
    }
    let hosts = store.hosts()?;
    let Some((host, there)) = crate::remote::split_remote(&hosts, arg) else { return Ok(None) };
    crate::remote::check_remote_session(there)?;
    Ok(Some((host, there.to_owned())))
}

/// Runs read-only tool `name` on host `host` with `args` (`serve-ssh`'s `tool` request):
/// its result, parsed as the JSON it is. A host that cannot be reached is an error naming it
/// (ssh's ConnectTimeout and keep-alives bound the wait).
fn tool_on_host(store: &Store, host: &str, name: &str, args: Value) -> Result<Value> {
    let entry = crate::remote::client::host(store, host)?;
    let mut call = crate::remote::client::connect(store, &entry, true)?;
    call.send(&crate::remote::Request::Tool { name: name.to_owned(), args })?;
    let (code, out) = call.collect()?;
    let doc: Value = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("{host} gave no answer to read (its serve-ssh exited {code}: {e})"))?;
    if let Some(err) = doc.get("error").and_then(Value::as_str) {
        bail!("{host}: {err}");
    }
    let text = doc.get("text").and_then(Value::as_str).unwrap_or_default();
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{host} answered {name} with no JSON ({e})"))
}

/// `session_id` written `HOST:ID`, and `host`.
fn mark_host(doc: &mut Value, host: &str) {
    if let Some(id) = doc.get("session_id").and_then(Value::as_str) {
        doc["session_id"] = Value::String(format!("{host}:{id}"));
    }
    doc["host"] = Value::String(host.to_owned());
}

fn string<'a>(args: &'a Value, field: &str) -> Result<Option<&'a str>> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bail!("`{field}` must be a string"),
    }
}

fn number(args: &Value, field: &str, default: u64, max: u64) -> Result<u64> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => bail!("`{field}` must be a whole number from 1 to {max}"),
        },
    }
}

fn required<'a>(args: &'a Value, field: &str) -> Result<&'a str> {
    string(args, field)?.ok_or_else(|| anyhow::anyhow!("`{field}` is required"))
}

fn pretty(value: &impl Serialize) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// One row of `sessions_list`.
#[derive(Serialize)]
struct Row {
    session_id: SessionId,
    name: Option<Name>,
    keys: Vec<String>,
    cwd: std::path::PathBuf,
    started_by: Starter,
    last_active: String,
    /// Turns answered through `clawsess run` (the transcript's own count is in session_status).
    run_turns: u64,
    busy: Option<String>,
    warm: bool,
    live: bool,
    /// Where the session lives: `local` (this machine), or a host's name.
    host: &'static str,
}

/// The sessions, most recently active first, as `list` orders them. Cost: `list`'s reading
/// of the sessions index (no transcript read), then the rows asked for. With `all`, every host's too, asked at once; with `host`, that host's only. A host that
/// cannot be asked is said in a second text block (with `host`: the tool fails).
pub fn sessions_list(args: &Value) -> Result<Content> {
    let prefix = string(args, "key_prefix")?;
    let flag = |field: &str| match args.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => bail!("`{field}` must be true or false"),
    };
    let active_only = flag("active_only")?;
    let all = flag("all")?;
    let host = string(args, "host")?;
    let last_n = number(args, "last_n", 20, LIST_MAX as u64)? as usize;
    let store = Store::open()?;
    let mut found = match host {
        Some(_) => Vec::new(),
        None => rows(&store, prefix, active_only, last_n)?,
    };
    let names: Vec<String> = match host {
        Some(name) => vec![crate::remote::client::host(&store, name)?.name],
        None if all => store.hosts()?.hosts.into_iter().map(|h| h.name).collect(),
        None => Vec::new(),
    };
    if names.is_empty() {
        return Ok(pretty(&found)?.into());
    }
    let mut there = args.clone();
    if let Some(fields) = there.as_object_mut() {
        fields.remove("all");
        fields.remove("host");
    }
    let global = store.hosts()?.global;
    let store = &store;
    let answers: Vec<Result<Value>> = std::thread::scope(|scope| {
        let calls: Vec<_> = names
            .iter()
            .map(|name| {
                let there = there.clone();
                scope.spawn(move || tool_on_host(store, name, "sessions_list", there))
            })
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err(anyhow::anyhow!("its call panicked"))))
            .collect()
    });
    let mut failed = Vec::new();
    for (name, answer) in names.iter().zip(answers) {
        match answer {
            Ok(Value::Array(rows)) => {
                for mut row in rows {
                    let id = row["session_id"].as_str().unwrap_or_default().to_owned();
                    if global.as_ref().is_some_and(|g| g.host == *name && g.session == id)
                        && let Some(keys) = row["keys"].as_array_mut()
                    {
                        keys.insert(0, Value::String("*".to_owned()));
                    }
                    mark_host(&mut row, name);
                    found.push(row);
                }
            }
            Ok(other) => failed.push(format!("{name}: its answer is not a list ({other})")),
            Err(err) => failed.push(format!("{err:#}")),
        }
    }
    if host.is_some()
        && let Some(why) = failed.pop()
    {
        bail!("{why}");
    }
    let when = |row: &Value| {
        row["last_active"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond())
    };
    found.sort_by_key(|row| std::cmp::Reverse(when(row)));
    found.truncate(last_n);
    let mut texts = vec![pretty(&found)?];
    if !failed.is_empty() {
        texts.push(format!("Not listed, could not be asked: {}", failed.join("; ")));
    }
    Ok(Content(texts))
}

/// The rows, most recently active first: `list`'s rows ([`crate::list::rows`], through the
/// sessions index, in its order), filtered, at most `last_n`.
fn rows(store: &Store, prefix: Option<&str>, active_only: bool, last_n: usize) -> Result<Vec<Value>> {
    let filter = crate::list::Filter { key_prefix: prefix, active_only, limit: Some(last_n) };
    // A broken file is left out, as `list` leaves it out (which names it).
    let (rows, rebuild) = crate::list::rows(store, filter, &mut Vec::new())?;
    // The sessions index's rebuild, if one is due, before the answer (a tool call's answer is
    // written by the server).
    drop(rebuild);
    rows.into_iter().map(|r| Ok(serde_json::to_value(row(r))?)).collect()
}

fn row(row: crate::list::Row) -> Row {
    let crate::list::Row { rec, mut keys, busy, live, warm, .. } = row;
    keys.extend(rec.key.as_ref().map(Key::to_string).filter(|k| !keys.contains(k)));
    Row {
        live,
        warm,
        session_id: rec.id,
        name: rec.name,
        keys,
        cwd: rec.cwd,
        started_by: rec.started_by,
        last_active: rfc3339(rec.last_seen),
        run_turns: rec.run_turns,
        busy,
        host: "local",
    }
}

/// The last turns of a session, bounded (see `turns::last_turns`).
pub fn sessions_history(args: &Value) -> Result<String> {
    let session = required(args, "session")?;
    let last_n = number(args, "last_n", 5, HISTORY_MAX as u64)? as usize;
    let store = Store::open()?;
    if let Some((host, there)) = on_host(&store, session)? {
        let mut doc =
            tool_on_host(&store, &host, "sessions_history", json!({"session": there, "last_n": last_n}))?;
        mark_host(&mut doc, &host);
        return pretty(&doc);
    }
    let id = find_session_or_key(&store, session)?;
    let Some(rec) = store.session(&id)? else { bail!("session {id} was removed meanwhile") };
    if !rec.transcript.is_file() {
        bail!("the transcript of {id} is gone; Claude Code deletes old ones (cleanupPeriodDays)");
    }
    let turns = turns::last_turns(&rec.transcript, last_n)?;
    pretty(&json!({
        "session_id": id,
        "name": rec.name,
        "cwd": rec.cwd,
        "turns": turns,
    }))
}

fn session_status(args: &Value) -> Result<String> {
    let store = Store::open()?;
    if let Some(arg) = string(args, "session")?
        && let Some((host, there)) = on_host(&store, arg)?
    {
        let mut doc = tool_on_host(&store, &host, "session_status", json!({"session": there}))?;
        mark_host(&mut doc, &host);
        return pretty(&doc);
    }
    let target = match string(args, "session")? {
        Some(arg) => status::Target::find(&store, arg)?,
        None => status::Target::running(&store, super::caller::find(&store)?.session),
    };
    pretty(&status::status(&store, &target)?)
}

fn sessions_send(args: &Value) -> Result<String> {
    let session = required(args, "session")?;
    let message = required(args, "message")?;
    let reply = match string(args, "reply")? {
        None | Some("wait") => Reply::Wait,
        Some("none") => Reply::None,
        Some(other) => bail!("`reply` must be `wait` or `none`, not {other:?}"),
    };
    let timeout = Duration::from_secs(number(args, "timeout_s", DEFAULT_TIMEOUT_S, 86_400)?);
    let store = Store::open()?;
    if let Some((host, there)) = on_host(&store, session)? {
        return send::to_host(&store, &host, &there, message, reply, timeout);
    }
    let target = find_session_or_key(&store, session)?;
    let send = Send::check(&store, target, message.to_owned(), timeout)?;
    match reply {
        Reply::Wait => {
            let text = send.wait()?;
            Ok(format!("Reply from session {}:\n\n{text}", send.target))
        }
        Reply::None => {
            send.detach()?;
            Ok(format!(
                "Sent to session {}; it works on it by itself (session_status shows how the delivery went).",
                send.target
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_description_and_an_object_schema() {
        let tools = list();
        let names: Vec<&str> =
            tools.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["sessions_list", "sessions_history", "sessions_send", "session_status"]);
        for tool in tools.as_array().unwrap() {
            assert!(tool["description"].as_str().unwrap().len() > 80);
            assert_eq!(tool["inputSchema"]["type"], "object");
        }
    }

    #[test]
    fn the_list_holds_the_most_recent_sessions_whatever_order_their_files_were_written_in() {
        use crate::store::{COMMAND_LOCK_WAIT, SessionRecord};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let now = crate::store::now_ms();
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        // Written in a shuffled order; the files of half of them dated at their last activity
        // (as they would be), so that the read stops early.
        let order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4, 12, 10, 11];
        for (n, i) in order.iter().enumerate() {
            let id = SessionId::parse(&format!("{i:08x}-0000-4000-8000-000000000000")).unwrap();
            let mut rec = SessionRecord::new(id.clone(), "/p".into(), "/p/t.jsonl".into(), Starter::Run, 0);
            rec.last_seen = now - 3_600_000 + i * 60_000;
            tx.put_session(&rec).unwrap();
            if n % 2 == 0 {
                let path = dir.path().join("sessions").join(format!("{id}.json"));
                let when = std::time::UNIX_EPOCH + Duration::from_millis(rec.last_seen);
                std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
            }
        }
        drop(tx);
        let ids = |rows: Vec<Value>| -> Vec<u64> {
            rows.iter()
                .map(|r| u64::from_str_radix(&r["session_id"].as_str().unwrap()[..8], 16).unwrap())
                .collect()
        };
        assert_eq!(ids(rows(&store, None, false, 3).unwrap()), [12, 11, 10]);
        assert_eq!(ids(rows(&store, None, false, 20).unwrap()), (0..13).rev().collect::<Vec<_>>());
        assert!(rows(&store, Some("telegram:"), false, 5).unwrap().is_empty());
        assert!(rows(&store, None, true, 5).unwrap().is_empty());
    }

    #[test]
    fn a_host_serves_only_the_read_only_tools_of_its_own_sessions() {
        let refused = |name: &str, args: Value| format!("{:#}", served(name, &args).unwrap_err());
        assert!(
            refused("sessions_send", json!({"session": "x", "message": "m"}))
                .contains("not a tool a host serves")
        );
        assert!(refused("sessions_list", json!({"all": true})).contains("`all` is the caller's"));
        assert!(refused("sessions_list", json!({"host": "box"})).contains("`host` is the caller's"));
        assert!(refused("session_status", json!({})).contains("asked for by name"));
    }

    #[test]
    fn an_unknown_tool_is_a_protocol_error_and_bad_arguments_a_tool_error() {
        assert_eq!(call(&json!({"name": "nope"})).unwrap_err().code, -32602);
        assert_eq!(call(&json!({"name": "sessions_list", "arguments": 3})).unwrap_err().code, -32602);
        let result = call(&json!({"name": "sessions_history", "arguments": {}})).unwrap();
        assert_eq!(result["isError"], true);
        assert!(result["content"][0]["text"].as_str().unwrap().contains("`session` is required"));
        let result = call(&json!({"name": "sessions_list", "arguments": {"last_n": 0}})).unwrap();
        assert_eq!(result["isError"], true);
    }
}
