//! What the commands do with a host: run a turn there, attach, show, stop, answer. The
//! commands (`cmd/`) only decide that an argument names a host and call these.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;

use super::client::{self, Call};
use super::{Request, RunRequest, check_remote_session};
use crate::exit::Unavailable;
use serde_json::{Value, json};

use crate::ident::{Key, RequestId, SessionId};
use crate::store::{COMMAND_LOCK_WAIT, HostEntry, RemoteGlobal, Store, now_ms};
use crate::sys::printable;

/// Where a turn of a key runs when it is not here.
#[derive(Debug, Clone)]
pub struct Route {
    pub host: HostEntry,
    /// The session as named there, when the route names one: the global attachment's.
    pub session: Option<String>,
}

/// Where a `run` of `key` goes: `--host NAME`, `--session NAME:SESSION`, else the key's
/// route ([`key_route`]); `None`: here. A `--new` run without `--host` does not follow a
/// global attachment to a host (its new session is made here, and the key held to it).
pub fn host_for_run(
    key: &Key,
    host: Option<&str>,
    session: Option<&str>,
    new: bool,
) -> Result<Option<Route>> {
    let store = Store::open()?;
    let hosts = store.hosts()?;
    let (name, there) = match (host, session) {
        (Some(name), _) => (name.to_owned(), None),
        (None, Some(session)) => match super::split_remote(&hosts, session) {
            Some((name, _)) => (name, None),
            None => return Ok(None),
        },
        (None, None) if new => match hosts.keys.get(key.as_str()) {
            Some(name) => (name.clone(), None),
            None => return Ok(None),
        },
        (None, None) => match key_route(&store, &hosts, key)? {
            Some(route) => route,
            None => return Ok(None),
        },
    };
    Ok(Some(Route { host: client::host(&store, &name)?, session: there }))
}

/// Where `key`'s turns go when not here, in the order of SPEC "Resolution": the key's own
/// attachment (to a session on a host: the host; to one here: here), else the global
/// attachment when it names a session on a host (that host and the session's id there).
fn key_route(
    store: &Store,
    hosts: &crate::store::HostsFile,
    key: &Key,
) -> Result<Option<(String, Option<String>)>> {
    if let Some(name) = hosts.keys.get(key.as_str()) {
        return Ok(Some((name.clone(), None)));
    }
    let Some(global) = &hosts.global else { return Ok(None) };
    if store.key_state(key)?.is_some_and(|s| s.attached.is_some()) {
        return Ok(None);
    }
    Ok(Some((global.host.clone(), Some(global.session.clone()))))
}

/// Runs one turn of `key` on `host`: the prompt and images go in the request on ssh's
/// stdin, the host's stdout comes back line by line, its exit code is ours. A permission
/// request seen in the stream is noted, so `clawsess answer` reaches the host.
pub fn run(cli: &crate::cli::Run, key: &Key, route: &Route, prompt: String) -> Result<u8> {
    let store = Store::open()?;
    let host = &route.host;
    if cli.claude.is_some() {
        // Kept refused: which program runs on a host is that host's setting, not a path the
        // caller names (docs/SSH.md).
        anyhow::bail!(
            "--claude names a program on this machine; on {} runs use the claude that host's own \
             settings name (`claude = ...` in its clawsess config, else claude on its PATH): set it \
             there, and run without --claude",
            host.name
        );
    }
    let mut images = Vec::new();
    for path in &cli.images {
        crate::live::image::image_block(path)?; // its type and size, checked here first
        let bytes =
            std::fs::read(path).with_context(|| format!("could not read --image {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        images.push((name, base64::engine::general_purpose::STANDARD.encode(bytes)));
    }
    let hosts = store.hosts()?;
    // `--session NAME:SESSION`, else the global attachment's session there: named, so the
    // turn does not make it the key's own there (as a run through the global attachment here).
    let session = cli
        .target
        .session
        .as_deref()
        .and_then(|s| super::split_remote(&hosts, s))
        .map(|(_, id)| id.to_owned())
        .or_else(|| route.session.clone());
    if let Some(session) = &session {
        check_remote_session(session)?;
    }
    let request = RunRequest {
        session,
        key: key.to_string(),
        new: cli.target.new,
        cwd: cli.target.cwd.as_ref().map(|p| p.to_string_lossy().into_owned()),
        wait_s: cli.target.wait.as_secs(),
        json: cli.json,
        stream: cli.stream,
        ask: cli.ask,
        ask_timeout_s: cli.ask_timeout.as_secs(),
        warm_s: cli.warm.map(|d| d.as_secs()),
        allow_slash: cli.allow_slash,
        steer: cli.steer,
        interrupt: cli.interrupt,
        idle_reset_s: cli.target.idle_reset.map(|d| d.as_secs()),
        claude_args: cli.claude_args.clone(),
        // Heartbeats every INTERVAL s (`Call::pass_through`): COUNT+1 missed, the link is dead.
        alive_s: client::keep_alive()?.map(|(i, c)| u64::from(i) * u64::from(c + 1)),
        images,
        prompt,
    };
    let mut call = client::connect(&store, host, true)?;
    if cli.host.is_some() {
        // The host answered: the key's turns run there from now on, whatever this one does
        // (a turn cut mid-way is continued there by the next run).
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        let mut hosts = tx.hosts()?;
        hosts.keys.insert(key.to_string(), host.name.clone());
        tx.put_hosts(&hosts)?;
    }
    call.send(&Request::Run(request))?;
    call.pass_through(|line| note_request(&store, host, line))
}

/// A permission or question event of a remote `run --ask`: which host holds its request.
fn note_request(store: &Store, host: &HostEntry, line: &[u8]) {
    if !line.windows(12).any(|w| w == b"\"request_id\"") {
        return;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else { return };
    let Some(id) = event["request_id"].as_str().and_then(|id| RequestId::parse(id).ok()) else { return };
    let noted = store.lock(COMMAND_LOCK_WAIT).and_then(|tx| {
        let mut hosts = tx.hosts()?;
        hosts.requests.insert(id.to_string(), host.name.clone());
        tx.put_hosts(&hosts)
    });
    if let Err(err) = noted {
        eprintln!("clawsess: could not note the request {id} of {}: {err:#}", host.name);
    }
}

/// Sends `request` to `name` and passes its output on; its exit code.
pub fn call(store: &Store, name: &str, request: &Request) -> Result<u8> {
    let host = client::host(store, name)?;
    let mut call: Call = client::connect(store, &host, true)?;
    call.send(request)?;
    call.pass_through(|_| {})
}

/// `attach HOST:SESSION --key K`: attaches K to the session there, and routes K's runs
/// to that host. Without a key: the global attachment ([`attach_global`]).
pub fn attach(store: &Store, name: &str, session: &str, key: Option<&Key>, json: bool) -> Result<u8> {
    check_remote_session(session)?;
    let Some(key) = key else { return attach_global(store, name, session, json) };
    let request = Request::Attach { session: session.to_owned(), key: key.to_string(), json };
    let code = call(store, name, &request)?;
    if code == crate::exit::OK {
        let tx = store.lock(COMMAND_LOCK_WAIT)?;
        let mut hosts = tx.hosts()?;
        hosts.keys.insert(key.to_string(), name.to_owned());
        tx.put_hosts(&hosts)?;
    }
    Ok(code)
}

/// `attach HOST:SESSION` without `--key`: the global attachment names that session there
/// (its full id, asked of the host with `show --topic`), in place of any global attachment
/// here. Nothing changes on the host: its own keys and global attachment are its own. A key
/// with no attachment of its own then runs its turns there as `run --session ID`, so the
/// session does not become its own (SPEC: a run through the global attachment does not).
pub fn attach_global(store: &Store, name: &str, session: &str, json: bool) -> Result<u8> {
    let host = client::host(store, name)?;
    let mut call = client::connect(store, &host, true)?;
    call.send(&Request::Show { session: session.to_owned(), lines: 1, topic: true, json: true })?;
    let (code, out) = call.collect()?;
    if code != crate::exit::OK {
        return Ok(code); // `show` there said why on stderr (passed through)
    }
    let shown: Value = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("{name} answered `show --topic --json` with no JSON ({e})"))?;
    let id = shown["session_id"]
        .as_str()
        .and_then(|id| SessionId::parse(id).ok())
        .with_context(|| format!("{name} answered `show --topic --json` with no session id"))?;
    let global = RemoteGlobal { host: host.name.clone(), session: id.to_string(), at: now_ms() };
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let mut hosts = tx.hosts()?;
    hosts.global = Some(global.clone());
    tx.put_hosts(&hosts)?;
    tx.set_global(None)?;
    drop(tx);
    let topic = &shown["topic"]; // a SessionTopic: its LatestTopic flattened in
    let last_prompt = topic["prompts"].as_array().and_then(|p| p.last()).map(|p| p["text"].clone());
    let last_reply = topic["last_reply"].clone();
    if json {
        print_json(&json!({
            "session_id": global.named(),
            "host": host.name,
            "key": null,
            "global": true,
            "name": shown["name"],
            "cwd": shown["cwd"],
            "last_prompt": last_prompt,
            "last_reply": last_reply,
            "topic": shown["topic"],
        }))?;
        return Ok(crate::exit::OK);
    }
    let text =
        |v: &Value| printable(&crate::ident::shorten(v.as_str().unwrap_or("-"), 200), false).into_owned();
    let named = shown["name"].as_str().map(|n| format!(" ({})", printable(n, false))).unwrap_or_default();
    crate::outln!("Attached every key (global) to session {}{named}, on {}", global.named(), host.name)?;
    crate::outln!("  {:<12} {}", "cwd:", text(&shown["cwd"]))?;
    if let Some(prompt) = &last_prompt {
        crate::outln!("  {:<12} {}", "last prompt:", text(prompt))?;
    }
    if !last_reply.is_null() {
        crate::outln!("  {:<12} {}", "last reply:", text(&last_reply))?;
    }
    Ok(crate::exit::OK)
}

/// Removes a global attachment to a session on a host (`detach`, or a global `attach` of a
/// session here): what it was.
pub fn forget_global(tx: &crate::store::Locked<'_>) -> Result<Option<RemoteGlobal>> {
    let mut hosts = tx.hosts()?;
    let was = hosts.global.take();
    if was.is_some() {
        tx.put_hosts(&hosts)?;
    }
    Ok(was)
}

/// The global attachment to a session on a host, if there is one.
pub fn remote_global(store: &Store) -> Result<Option<RemoteGlobal>> {
    Ok(store.hosts()?.global)
}

/// `status` of a key that follows the global attachment to `session` on `name`: that
/// session's status there, its id written `NAME:ID` and `"via": "global"`.
pub fn global_status(store: &Store, name: &str, session: &str, json: bool) -> Result<u8> {
    let host = client::host(store, name)?;
    let mut call = client::connect(store, &host, true)?;
    call.send(&Request::Status { session: Some(session.to_owned()), key: None, json })?;
    let (code, out) = call.collect()?;
    if code != crate::exit::OK || !json {
        if code == crate::exit::OK {
            crate::outln!("global attachment: {name}:{session} (on {name})")?;
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&out).and_then(|()| stdout.flush()).map_err(crate::exit::stdout_error)?;
        return Ok(code);
    }
    let mut doc: Value = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("{name} answered `status --json` with no JSON ({e})"))?;
    doc["session_id"] = Value::String(format!("{name}:{session}"));
    doc["host"] = Value::String(name.to_owned());
    doc["via"] = Value::String("global".to_owned());
    print_json(&doc)?;
    Ok(crate::exit::OK)
}

/// The session a key attached to a session on host `name` talks to there (`current --key K`):
/// asked with `status --key K --json` there; its status object, `None` when K has no
/// session there (the host said why on stderr).
pub fn current_there(store: &Store, name: &str, key: &Key) -> Result<Option<Value>> {
    let host = client::host(store, name)?;
    let mut call = client::connect(store, &host, true)?;
    call.send(&Request::Status { session: None, key: Some(key.to_string()), json: true })?;
    let (code, out) = call.collect()?;
    if code != crate::exit::OK {
        return Ok(None);
    }
    let doc = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("{name} answered `status --json` with no JSON ({e})"))?;
    Ok(Some(doc))
}

/// `answer ID` for a request that is not on file here: the host noted for it (this machine
/// saw its event), else the known host that has it on file, asked all at once for at most
/// [`FIND_WAIT`]. `None` when no host is known; an error naming the hosts asked when none
/// has it, or naming the ones that could not be asked.
pub fn host_of_request(store: &Store, id: &RequestId) -> Result<Option<String>> {
    let hosts = store.hosts()?;
    if let Some(name) = hosts.requests.get(id.as_str()) {
        return Ok(Some(name.clone()));
    }
    if hosts.hosts.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel();
    for host in &hosts.hosts {
        let (tx, store, name, id) = (tx.clone(), store.clone(), host.name.clone(), id.to_string());
        // Not scoped: a host that does not answer in time is left behind (its ssh ends with us).
        std::thread::spawn(move || {
            let found = has_request(&store, &name, &id);
            let _ = tx.send((name, found));
        });
    }
    drop(tx);
    let deadline = Instant::now() + FIND_WAIT;
    let mut asked = Vec::new();
    let mut failed = Vec::new();
    let mut waiting: Vec<String> = hosts.hosts.iter().map(|h| h.name.clone()).collect();
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((name, found)) = rx.recv_timeout(left) else { break };
        waiting.retain(|n| *n != name);
        match found {
            Ok(true) => {
                let tx = store.lock(COMMAND_LOCK_WAIT)?;
                let mut hosts = tx.hosts()?;
                hosts.requests.insert(id.to_string(), name.clone());
                tx.put_hosts(&hosts)?;
                return Ok(Some(name));
            }
            Ok(false) => asked.push(name),
            Err(err) => {
                failed.push(format!("{name} ({})", crate::sys::printable(&format!("{err:#}"), false)))
            }
        }
    }
    failed.extend(waiting.into_iter().map(|n| format!("{n} (no answer in {} s)", FIND_WAIT.as_secs())));
    let asked = if asked.is_empty() { String::new() } else { format!(" nor on {}", asked.join(", ")) };
    if failed.is_empty() {
        anyhow::bail!(
            "no permission request or question {id} is waiting here{asked}: its turn is over, or the id is wrong"
        );
    }
    Err(Unavailable(format!(
        "request {id} is not on this machine{asked}, and clawsess could not ask {}: answer it once \
         that host is reachable (`clawsess hosts check`)",
        failed.join(", ")
    ))
    .into())
}

/// How long `answer` asks the hosts for a request it does not know.
pub const FIND_WAIT: Duration = Duration::from_secs(20);

/// Whether host `name` has request `id` on file.
fn has_request(store: &Store, name: &str, id: &str) -> Result<bool> {
    let host = client::host(store, name)?;
    let mut call = client::connect(store, &host, false)?;
    call.send(&Request::FindRequest { request_id: id.to_owned() })?;
    let (code, out) = call.collect()?;
    if code != crate::exit::OK {
        anyhow::bail!("its `serve-ssh` exited {code}: it may be an older clawsess");
    }
    let said: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| anyhow::anyhow!("its answer is not JSON ({e})"))?;
    Ok(said["found"] == true)
}

/// The host `key`'s turns go to, if any ([`key_route`]), and the session there when the
/// route names one (the global attachment's).
pub fn host_of_key(store: &Store, key: &Key) -> Result<Option<(String, Option<String>)>> {
    key_route(store, &store.hosts()?, key)
}

/// Stops routing `key` to a host (a local attach, detach or forget).
pub fn forget_key(tx: &crate::store::Locked<'_>, key: &Key) -> Result<()> {
    let mut hosts = tx.hosts()?;
    if hosts.keys.remove(key.as_str()).is_some() {
        tx.put_hosts(&hosts)?;
    }
    Ok(())
}

fn print_json(doc: &Value) -> Result<()> {
    crate::outln!("{}", serde_json::to_string_pretty(doc)?)
}
