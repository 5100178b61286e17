//! A stand-in for the Anthropic Messages API, on loopback: `doctor --probe` and the end-to-end
//! tests drive the real Claude Code CLI against it (`ANTHROPIC_BASE_URL=StandInApi::base_url()`).
//!
//! - `GET /v1/models`: a small model list.
//! - `POST /v1/messages[?beta=true]`: `"stream": true` gets the SSE events Claude Code expects
//!   (`message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
//!   `message_delta` with `stop_reason: end_turn`, `message_stop`); otherwise a Messages JSON
//!   response. The reply text is
//!   `stand-in reply #N: messages=COUNT last=LAST_USER_TEXT(first 200 chars)`, so a test can
//!   see whether a resume continued the conversation (COUNT grows) and what the prompt was.
//! - `POST /v1/messages/count_tokens`: `{"input_tokens": ...}`; anything else: `{}`.
//! - `[sleep=MS]` anywhere in the last user text of a main-turn request makes the answer wait
//!   MS milliseconds (capped at 10 minutes; cut short when the stand-in is dropped).
//! - `[hold=NAME]` makes the answer wait until the test calls [`StandInApi::release`] with
//!   NAME (a barrier: no test depends on how fast a process starts). A request that arrives
//!   after the release is answered at once. Cut short when the client hangs up or the
//!   stand-in is dropped.
//! - `[hold-reply=NAME]` holds only the text answer that ends the turn, not the tool calls
//!   before it: a test sees what a turn does while it is still running.
//! - Tool calls: `[bash=COMMAND]`, `[write=PATH]` (content `written by the stand-in`) and
//!   `[read=PATH]` in the prompt, in order, or a script registered with
//!   [`StandInApi::script_tools`] for prompts containing a marker: the answer to the prompt is
//!   a `tool_use` block for the first call, the answer to its `tool_result` the next call,
//!   and so on; after the last one, the usual text reply. Each call is decided from the
//!   request's own messages (how many tool calls follow the prompt), so resumes and retries
//!   get the same answers.
//!
//! Every request to `/v1/messages` is recorded (see [`Recorded`]); it is in `requests()` from
//! the moment its body has arrived (`finished_ms == 0` while the answer is still pending).
//!
//! The server stops when the `StandInApi` is dropped (and a connection idle for a minute is
//! closed), so it never outlives its probe or test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::loopback::{Loopback, Served};

/// Longest `[sleep=MS]` honoured.
const MAX_SLEEP_MS: u64 = 10 * 60 * 1000;
/// A keep-alive connection with no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest request body accepted (claude's requests are a few hundred KB at most).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request to `/v1/messages` as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// 1-based number among all `/v1/messages` requests (the `#N` of the reply).
    pub seq: usize,
    /// Request path including the query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Unix millis when the request (its body) had arrived.
    pub started_ms: u64,
    /// Unix millis when the response was fully written; 0 while still pending.
    pub finished_ms: u64,
    pub model: String,
    pub stream: bool,
    pub max_tokens: u64,
    /// Number of tools offered in the request.
    pub tool_count: usize,
    /// Length of `messages`.
    pub message_count: usize,
    /// The prompt the person typed, as far as it can be told: the text of the last user
    /// message with `<system-reminder>` blocks and tool results left out (see
    /// [`last_user_text`]).
    pub last_user_text: String,
    /// All text of the system prompt and every message (every text block, tool result and
    /// tool input), newline separated: to check that some context reached the model.
    pub all_text: String,
    /// True for the requests of the conversation itself; false for Claude Code's side
    /// requests (title generation, quota checks, ...). See [`is_main_turn`].
    pub is_main_turn: bool,
    /// The reply text the stand-in sent.
    pub reply: String,
    /// The raw request body.
    pub body: Value,
    /// The client closed the connection while a `[sleep=MS]` answer was pending.
    pub client_gone: bool,
}

/// One tool call the stand-in makes: a tool name and its input.
#[derive(Clone, Debug)]
pub struct ToolCall {
    pub name: String,
    pub input: Value,
}

impl ToolCall {
    pub fn new(name: &str, input: Value) -> ToolCall {
        ToolCall { name: name.to_owned(), input }
    }

    /// `Bash` running `command`.
    pub fn bash(command: &str) -> ToolCall {
        ToolCall::new("Bash", json!({"command": command, "description": "stand-in command"}))
    }
}

struct Shared {
    stop: AtomicBool,
    seq: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    other_paths: Mutex<Vec<String>>,
    /// Barrier names released so far.
    released: Mutex<std::collections::HashSet<String>>,
    release_cv: std::sync::Condvar,
    /// Prompt marker -> tool calls to make for it.
    scripts: Mutex<Vec<(String, Vec<ToolCall>)>>,
}

/// The stand-in server. Dropping it stops it.
pub struct StandInApi {
    server: Loopback<Shared>,
}

impl Served for Shared {
    fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    fn serve(&self, stream: TcpStream) {
        serve_connection(stream, self)
    }
}

impl StandInApi {
    /// Binds 127.0.0.1 on a free port and serves on background threads.
    pub fn start() -> std::io::Result<StandInApi> {
        let shared = Shared {
            stop: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            other_paths: Mutex::new(Vec::new()),
            released: Mutex::new(std::collections::HashSet::new()),
            release_cv: std::sync::Condvar::new(),
            scripts: Mutex::new(Vec::new()),
        };
        Ok(StandInApi { server: Loopback::start("stand-in-api", shared)? })
    }

    /// Lets every answer held by `[hold=NAME]` go, now and later.
    pub fn release(&self, name: &str) {
        lock(&self.server.shared.released).insert(name.to_owned());
        self.server.shared.release_cv.notify_all();
    }

    /// Waits until a main-turn request held by `[hold=NAME]` has arrived (180 s at most: a
    /// bound for a loaded machine, not a timing assumption);
    /// panics if none does.
    pub fn wait_held(&self, name: &str) {
        let tag = format!("[hold={name}]");
        let arrived = self.wait_for(Duration::from_secs(180), |r| {
            r.iter().any(|r| r.is_main_turn && r.last_user_text.contains(&tag))
        });
        assert!(arrived, "no request with {tag} reached the stand-in within 180 s");
    }

    /// Answers prompts containing `marker` with these tool calls, one per request, then text.
    pub fn script_tools(&self, marker: &str, calls: Vec<ToolCall>) {
        lock(&self.server.shared.scripts).push((marker.to_owned(), calls));
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Every request to `/v1/messages` so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.server.shared.requests).clone()
    }

    /// Only the requests of the conversation itself (see [`is_main_turn`]).
    pub fn turn_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.is_main_turn).collect()
    }

    /// Requests to any path other than `/v1/messages`, as `METHOD PATH`.
    pub fn other_requests(&self) -> Vec<String> {
        lock(&self.server.shared.other_paths).clone()
    }

    /// Forgets what was recorded so far (the reply counter goes on).
    pub fn clear(&self) {
        lock(&self.server.shared.requests).clear();
        lock(&self.server.shared.other_paths).clear();
    }

    /// Waits until `pred` holds for the recorded requests, or `timeout` passes; returns
    /// whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Recorded]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.requests()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The mutex's data, also after a thread panicked holding it (what it guards stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

fn serve_connection(stream: TcpStream, sh: &Shared) {
    let _ = stream.set_nodelay(true);
    // Short read timeouts so an idle keep-alive connection notices the stop flag.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while let Ok(Some(req)) = read_request(&mut reader, sh) {
        let close = req.close;
        if handle(&req, &mut writer, sh).is_err() || close || sh.stop.load(Ordering::SeqCst) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Reads one line, retrying read timeouts until the idle limit or the stop flag.
fn read_line_patiently(
    reader: &mut BufReader<TcpStream>,
    sh: &Shared,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let start = Instant::now();
    loop {
        match reader.read_until(b'\n', buf) {
            Ok(n) => return Ok(n),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if sh.stop.load(Ordering::SeqCst) || start.elapsed() > IDLE_TIMEOUT {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_exact_patiently(
    reader: &mut BufReader<TcpStream>,
    sh: &Shared,
    out: &mut Vec<u8>,
    mut n: usize,
) -> std::io::Result<()> {
    let start = Instant::now();
    let mut chunk = [0u8; 64 * 1024];
    while n > 0 {
        let want = n.min(chunk.len());
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => {
                out.extend_from_slice(&chunk[..k]);
                n -= k;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if sh.stop.load(Ordering::SeqCst) || start.elapsed() > IDLE_TIMEOUT {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_request(reader: &mut BufReader<TcpStream>, sh: &Shared) -> std::io::Result<Option<Request>> {
    // Request line (skip stray empty lines between keep-alive requests).
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line_patiently(reader, sh, &mut line)? == 0 {
            return Ok(None);
        }
        if !String::from_utf8_lossy(&line).trim().is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(&line).trim().to_string();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = version.eq_ignore_ascii_case("HTTP/1.0");
    loop {
        line.clear();
        if read_line_patiently(reader, sh, &mut line)? == 0 {
            return Ok(None);
        }
        let h = String::from_utf8_lossy(&line).trim_end().to_string();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "content-length" => content_length = value.parse().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }

    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            if read_line_patiently(reader, sh, &mut line)? == 0 {
                return Ok(None);
            }
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.trim().split(';').next().unwrap_or("").trim().to_string();
            let size =
                usize::from_str_radix(&size_text, 16).map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    line.clear();
                    if read_line_patiently(reader, sh, &mut line)? == 0 {
                        break;
                    }
                    if String::from_utf8_lossy(&line).trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(std::io::Error::other("body too large"));
            }
            read_exact_patiently(reader, sh, &mut body, size)?;
            line.clear();
            read_line_patiently(reader, sh, &mut line)?; // CRLF after the chunk
        }
    } else if let Some(n) = content_length {
        if n > MAX_BODY {
            return Err(std::io::Error::other("body too large"));
        }
        read_exact_patiently(reader, sh, &mut body, n)?;
    }
    Ok(Some(Request { method, path, body, close }))
}

fn write_response(
    w: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         request-id: req_standin\r\nanthropic-organization-id: 00000000-0000-0000-0000-000000000000\r\n\
         connection: {}\r\n\r\n",
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn handle(req: &Request, w: &mut TcpStream, sh: &Shared) -> std::io::Result<()> {
    let path_only = req.path.split('?').next().unwrap_or("");
    match (req.method.as_str(), path_only) {
        ("POST", "/v1/messages") => handle_messages(req, w, sh),
        ("GET", "/v1/models") => {
            lock(&sh.other_paths).push(format!("{} {}", req.method, req.path));
            let models =
                ["claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"];
            let data: Vec<Value> = models
                .iter()
                .map(|m| {
                    json!({"type": "model", "id": m, "display_name": m,
                           "created_at": "2025-01-01T00:00:00Z"})
                })
                .collect();
            let body = json!({"data": data, "has_more": false,
                              "first_id": models[0], "last_id": models[models.len() - 1]});
            write_response(w, "200 OK", "application/json", body.to_string().as_bytes(), req.close)
        }
        ("POST", "/v1/messages/count_tokens") => {
            lock(&sh.other_paths).push(format!("{} {}", req.method, req.path));
            let tokens = (req.body.len() / 4).max(1);
            let body = json!({"input_tokens": tokens});
            write_response(w, "200 OK", "application/json", body.to_string().as_bytes(), req.close)
        }
        _ => {
            lock(&sh.other_paths).push(format!("{} {}", req.method, req.path));
            write_response(w, "200 OK", "application/json", b"{}", req.close)
        }
    }
}

/// True for a request of the conversation itself, false for Claude Code's side requests.
///
/// Seen on Claude Code 2.1.328: a turn request (`-p` or interactive) has `thinking` and
/// `context_management` and offers the tools (12 in `-p`, 13 interactive; `[]` with
/// `--tools ""`). The one side request seen, the session-title generation (interactive mode,
/// only without `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`), has `tools: []`, no `thinking`,
/// a system prompt "You are naming a coding session ...", one user message
/// `<session>\nPROMPT\n</session>\n\nWrite the title ...`, and asks for structured output
/// (`output_config.format.type == "json_schema"`, schema `{title: string}`). Older versions
/// also sent a quota check with `max_tokens: 1`. From 2.0.x to about 2.0.77, every start
/// also sends "Warmup" requests for the sub-agents (one user message `Warmup`, 0, 1 or 11
/// tools): side requests too ([`is_warmup`]).
pub fn is_main_turn(body: &Value) -> bool {
    let structured = body.pointer("/output_config/format").is_some_and(|f| !f.is_null());
    if structured || body.get("max_tokens").and_then(Value::as_u64) == Some(1) || is_warmup(body) {
        return false;
    }
    let tools = body.get("tools").and_then(Value::as_array).map(|t| t.len()).unwrap_or(0);
    let thinking = body.get("thinking").is_some_and(|t| !t.is_null());
    tools > 0 || thinking || body.get("context_management").is_some()
}

/// A sub-agent's warm-up request: its one message is the user's `Warmup`.
pub fn is_warmup(body: &Value) -> bool {
    match body.get("messages").and_then(Value::as_array).map(Vec::as_slice) {
        Some([only]) => {
            only.get("role").and_then(Value::as_str) == Some("user")
                && content_text(only.get("content").unwrap_or(&Value::Null), true).trim() == "Warmup"
        }
        _ => false,
    }
}

/// A JSON text that fits a simple `output_config.format` JSON schema (an object of string,
/// number, boolean, array properties), for structured-output side requests such as the
/// title generation (`{"title": "..."}`).
fn structured_reply(schema: &Value, seq: usize) -> String {
    let mut obj = serde_json::Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let v = match p.get("type").and_then(Value::as_str) {
                Some("number") | Some("integer") => json!(seq),
                Some("boolean") => json!(false),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(format!("Stand-in {name} {seq}")),
            };
            obj.insert(name.clone(), v);
        }
    }
    Value::Object(obj).to_string()
}

/// The text of a message's content: a string, or its `text` blocks joined with newlines.
fn content_text(content: &Value, skip_reminders: bool) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for b in blocks {
                if b.get("type").and_then(Value::as_str) == Some("text") {
                    let t = b.get("text").and_then(Value::as_str).unwrap_or("");
                    if skip_reminders && t.trim_start().starts_with("<system-reminder>") {
                        continue;
                    }
                    parts.push(t.to_string());
                }
            }
            parts.join("\n")
        }
        _ => String::new(),
    }
}

/// The prompt of the request: the text of the last `user` message that has text outside
/// `<system-reminder>` blocks (tool results and reminders are skipped).
pub fn last_user_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    for m in messages.iter().rev() {
        if m.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let t = content_text(m.get("content").unwrap_or(&Value::Null), true);
        if !t.trim().is_empty() {
            return t;
        }
    }
    String::new()
}

/// Every bit of text in the request: system prompt, text blocks, tool results, tool inputs.
pub fn all_text(body: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => {
                for (k, x) in o {
                    // Skip signatures and cache markers; keep everything textual.
                    if k == "signature" || k == "cache_control" {
                        continue;
                    }
                    walk(x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(s) = body.get("system") {
        walk(s, &mut out);
    }
    if let Some(m) = body.get("messages") {
        walk(m, &mut out);
    }
    out.join("\n")
}

/// `[hold=NAME]` in `text`, if any.
pub fn hold_directive(text: &str) -> Option<String> {
    let start = text.find("[hold=")?;
    let rest = &text[start + "[hold=".len()..];
    let end = rest.find(']')?;
    Some(rest[..end].trim().to_owned())
}

/// `[hold-reply=NAME]` in `text`, if any.
pub fn hold_reply_directive(text: &str) -> Option<String> {
    let start = text.find("[hold-reply=")?;
    let rest = &text[start + "[hold-reply=".len()..];
    let end = rest.find(']')?;
    Some(rest[..end].trim().to_owned())
}

/// The tool calls `text` asks for with `[bash=...]`, `[write=...]`, `[read=...]`, in order.
pub fn tool_directives(text: &str) -> Vec<ToolCall> {
    let mut found: Vec<(usize, ToolCall)> = Vec::new();
    for tag in ["[bash=", "[write=", "[read="] {
        let mut from = 0;
        while let Some(at) = text[from..].find(tag) {
            let start = from + at + tag.len();
            let Some(len) = text[start..].find(']') else { break };
            let arg = text[start..start + len].trim();
            let call = match tag {
                "[bash=" => ToolCall::bash(arg),
                "[write=" => {
                    ToolCall::new("Write", json!({"file_path": arg, "content": "written by the stand-in\n"}))
                }
                _ => ToolCall::new("Read", json!({"file_path": arg})),
            };
            found.push((from + at, call));
            from = start + len;
        }
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, c)| c).collect()
}

/// How many tool calls the assistant made after the last message with prompt text.
fn tool_calls_since_prompt(body: &Value) -> usize {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    let mut count = 0;
    for m in messages.iter().rev() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").unwrap_or(&Value::Null);
        if role == Some("user") && !content_text(content, true).trim().is_empty() {
            break;
        }
        if role == Some("assistant")
            && let Some(blocks) = content.as_array()
        {
            count +=
                blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use")).count();
        }
    }
    count
}

/// `[sleep=MS]` in `text`, if any.
pub fn sleep_directive(text: &str) -> Option<u64> {
    let start = text.find("[sleep=")?;
    let rest = &text[start + "[sleep=".len()..];
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// True when the peer has closed the connection (a read would see EOF or an error).
fn client_gone(w: &TcpStream) -> bool {
    if w.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    let gone = match w.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::Interrupted,
    };
    let _ = w.set_nonblocking(false);
    gone
}

fn handle_messages(req: &Request, w: &mut TcpStream, sh: &Shared) -> std::io::Result<()> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let seq = sh.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("claude-sonnet-4-5").to_string();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let message_count = body.get("messages").and_then(Value::as_array).map(|a| a.len()).unwrap_or(0);
    let last = last_user_text(&body);
    let main = is_main_turn(&body);
    let tool_call = if main { next_tool_call(&body, &last, sh) } else { None };
    let reply = match body.pointer("/output_config/format/schema") {
        Some(schema) if !main => structured_reply(schema, seq),
        _ => format!(
            "stand-in reply #{seq}: messages={message_count} last={}",
            truncate_chars(last.trim(), 200)
        ),
    };
    let rec = Recorded {
        seq,
        path: req.path.clone(),
        started_ms: now_ms(),
        finished_ms: 0,
        model: model.clone(),
        stream,
        max_tokens: body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0),
        tool_count: body.get("tools").and_then(Value::as_array).map(|a| a.len()).unwrap_or(0),
        message_count,
        last_user_text: last.clone(),
        all_text: all_text(&body),
        is_main_turn: main,
        reply: reply.clone(),
        body: body.clone(),
        client_gone: false,
    };
    lock(&sh.requests).push(rec);

    let held =
        hold_directive(&last).or_else(|| tool_call.is_none().then(|| hold_reply_directive(&last)).flatten());
    if main && let Some(name) = held {
        let mut released = lock(&sh.released);
        while !released.contains(&name) && !sh.stop.load(Ordering::SeqCst) {
            released = sh
                .release_cv
                .wait_timeout(released, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if client_gone(w) {
                if let Some(r) = lock(&sh.requests).iter_mut().find(|r| r.seq == seq) {
                    r.client_gone = true;
                }
                break;
            }
        }
    }

    if main && let Some(ms) = sleep_directive(&last) {
        {
            let deadline = Instant::now() + Duration::from_millis(ms.min(MAX_SLEEP_MS));
            while Instant::now() < deadline && !sh.stop.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                thread::sleep(left.min(Duration::from_millis(50)));
                if client_gone(w) {
                    // The client hung up (e.g. claude was killed): stop waiting, answer into
                    // the void and let the connection close.
                    if let Some(r) = lock(&sh.requests).iter_mut().find(|r| r.seq == seq) {
                        r.client_gone = true;
                    }
                    break;
                }
            }
        }
    }

    let msg_id = format!("msg_standin_{seq:06}");
    let input_tokens = (req.body.len() / 4).max(1) as u64;
    let output_tokens = (reply.len() / 4).max(1) as u64;
    if let Some(call) = tool_call {
        let result = write_tool_use(w, req, &msg_id, &model, input_tokens, seq, &call, stream);
        if let Some(r) = lock(&sh.requests).iter_mut().find(|r| r.seq == seq) {
            r.finished_ms = now_ms();
            r.reply = format!("tool_use {} {}", call.name, call.input);
        }
        return result;
    }
    let answer = OneBlock {
        block: json!({"type": "text", "text": reply}),
        start: json!({"type": "text", "text": ""}),
        delta: json!({"type": "text_delta", "text": reply}),
        stop_reason: "end_turn",
        output_tokens,
    };
    let result = write_one_block(w, req, &msg_id, &model, input_tokens, &answer, stream);
    if let Some(r) = lock(&sh.requests).iter_mut().find(|r| r.seq == seq) {
        r.finished_ms = now_ms();
    }
    result
}

/// The tool call to answer this request with, if the prompt asks for calls not made yet.
fn next_tool_call(body: &Value, prompt: &str, sh: &Shared) -> Option<ToolCall> {
    let mut calls = tool_directives(prompt);
    if calls.is_empty() {
        let scripts = lock(&sh.scripts);
        calls = scripts.iter().find(|(marker, _)| prompt.contains(marker.as_str()))?.1.clone();
    }
    calls.into_iter().nth(tool_calls_since_prompt(body))
}

/// Answers with one `tool_use` block (stop reason `tool_use`).
#[allow(clippy::too_many_arguments)]
fn write_tool_use(
    w: &mut TcpStream,
    req: &Request,
    msg_id: &str,
    model: &str,
    input_tokens: u64,
    seq: usize,
    call: &ToolCall,
    stream: bool,
) -> std::io::Result<()> {
    let id = format!("toolu_standin_{seq:06}");
    let answer = OneBlock {
        block: json!({"type": "tool_use", "id": id, "name": call.name, "input": call.input}),
        start: json!({"type": "tool_use", "id": id, "name": call.name, "input": {}}),
        delta: json!({"type": "input_json_delta", "partial_json": call.input.to_string()}),
        stop_reason: "tool_use",
        output_tokens: 10,
    };
    write_one_block(w, req, msg_id, model, input_tokens, &answer, stream)
}

/// An answer of one content block: the block whole (for a JSON answer), as it starts and
/// its one delta (for a streamed one).
struct OneBlock {
    block: Value,
    start: Value,
    delta: Value,
    stop_reason: &'static str,
    output_tokens: u64,
}

/// Writes `answer` as a Messages JSON response, or with `stream` as the SSE events Claude
/// Code expects.
fn write_one_block(
    w: &mut TcpStream,
    req: &Request,
    msg_id: &str,
    model: &str,
    input_tokens: u64,
    answer: &OneBlock,
    stream: bool,
) -> std::io::Result<()> {
    if !stream {
        let resp = json!({
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [answer.block],
            "stop_reason": answer.stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": answer.output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        });
        return write_response(w, "200 OK", "application/json", resp.to_string().as_bytes(), req.close);
    }
    let events: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": answer.start}),
        ),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": answer.delta})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": answer.stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": answer.output_tokens}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut sse = String::new();
    for (name, data) in events {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    write_response(w, "200 OK", "text/event-stream; charset=utf-8", sse.as_bytes(), req.close)
}
