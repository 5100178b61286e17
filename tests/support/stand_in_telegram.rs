//! A stand-in for the Telegram Bot API, on loopback, for end-to-end tests of a bot
//! (`TELEGRAM_API_URL=StandInTelegram::api_url()`).
//!
//! - `GET|POST /bot<TOKEN>/getUpdates` (`offset`, `timeout`, `limit`): the queued updates
//!   with `update_id >= offset`, oldest first; when there are none it waits for one up to
//!   `timeout` seconds, capped at [`MAX_POLL`], then answers `[]`. Unlike Telegram it keeps
//!   confirmed updates (as if the confirmation had been lost), so a bot that forgets its
//!   offset answers old messages again, which a test can see.
//! - `/bot<TOKEN>/sendMessage` (`chat_id`, `text`, `message_thread_id`,
//!   `reply_to_message_id` or `reply_parameters`, `parse_mode`, ...): recorded (see [`Sent`]); a text that is empty
//!   or longer than 4096 UTF-16 code units is refused with 400 as Telegram does.
//! - `/bot<TOKEN>/getMe`: the bot user `@clawsess_test_bot` ([`BOT_USERNAME`]).
//! - `editMessageText` (`chat_id`, `message_id`, `text`, `reply_markup`): recorded (see
//!   [`Edit`]); like Telegram it refuses an unknown message, an empty or too long text, and
//!   an edit that changes nothing ("message is not modified").
//! - `answerCallbackQuery`: recorded ([`StandInTelegram::callback_answers`]).
//! - `getFile` (`file_id`) for files queued with [`StandInTelegram::push_photo`], and the
//!   download `GET /file/bot<TOKEN>/<file_path>`.
//! - `getUpdates` honours `allowed_updates` (`message`, `callback_query`, ...) as Telegram
//!   does: other updates are not delivered.
//! - Any other method (`sendChatAction`, ...): `{"ok": true, "result": true}`, recorded in
//!   [`StandInTelegram::other_calls`]. A wrong token gets 401, as from Telegram.
//!
//! Parameters are read from the query string, a JSON body or a form body. Every response
//! closes its connection. The server stops when the `StandInTelegram` is dropped.
#![allow(dead_code)]

use std::io::BufReader;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http::{Request, read_request, respond};
use super::loopback::{Loopback, Served};

/// Longest wait of one `getUpdates` call, whatever `timeout` asks for.
pub const MAX_POLL: Duration = Duration::from_secs(1);
/// The username `getMe` reports.
pub const BOT_USERNAME: &str = "clawsess_test_bot";
/// The bot's user id (the part of a token before the colon).
pub const BOT_ID: i64 = 4242;
/// The user id of the person whose messages [`StandInTelegram::push_message`] queues.
pub const USER_ID: i64 = 777;
/// Longest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// One `sendMessage` call as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Sent {
    /// 1-based number among all sendMessage calls (also the message_id it got).
    pub seq: usize,
    pub chat_id: i64,
    pub text: String,
    pub message_thread_id: Option<i64>,
    pub reply_to_message_id: Option<i64>,
    pub parse_mode: Option<String>,
    /// Unix millis when it arrived.
    pub at_ms: u64,
    /// All parameters as JSON.
    pub params: Value,
}

/// One `editMessageText` call that Telegram would accept.
#[derive(Clone, Debug)]
pub struct Edit {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    /// Unix millis when it arrived.
    pub at_ms: u64,
    /// All parameters as JSON.
    pub params: Value,
}

/// One `getUpdates` call.
#[derive(Clone, Debug)]
pub struct Poll {
    pub offset: Option<i64>,
    pub timeout: Option<f64>,
    pub at_ms: u64,
    /// update_ids returned.
    pub returned: Vec<i64>,
}

#[derive(Default)]
struct State {
    next_update_id: i64,
    next_message_id: i64,
    updates: Vec<Value>,
    sent: Vec<Sent>,
    polls: Vec<Poll>,
    other: Vec<String>,
    edits: Vec<Edit>,
    /// message_id -> (chat_id, current text, current reply_markup) of the bot's messages.
    current: std::collections::HashMap<i64, (i64, String, Value)>,
    callback_answers: Vec<Value>,
    /// file_id -> (file_path, bytes).
    files: std::collections::HashMap<String, (String, Vec<u8>)>,
    next_callback_id: i64,
}

struct Shared {
    token: String,
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

/// The stand-in server. Dropping it stops it.
pub struct StandInTelegram {
    server: Loopback<Shared>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl StandInTelegram {
    /// Binds 127.0.0.1 on a free port for the bot with `token` (like `4242:TEST-token`).
    pub fn start(token: &str) -> StandInTelegram {
        let shared = Shared {
            token: token.to_owned(),
            stop: AtomicBool::new(false),
            state: Mutex::new(State { next_update_id: 1000, next_message_id: 1, ..State::default() }),
            changed: Condvar::new(),
        };
        StandInTelegram {
            server: Loopback::start("stand-in-telegram", shared).expect("start the stand-in Telegram API"),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): what `https://api.telegram.org` is to a bot.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn token(&self) -> &str {
        &self.server.shared.token
    }

    /// Queues a text message from the person [`USER_ID`] in `chat_id` (a forum topic when
    /// `thread_id` is given) and returns its message_id.
    pub fn push_message(&self, chat_id: i64, thread_id: Option<i64>, text: &str) -> i64 {
        self.push_message_as(USER_ID, chat_id, thread_id, text, None)
    }

    /// Queues a text message from the user `user_id` in `chat_id` (a forum topic when
    /// `thread_id` is given), replying to the bot's message `reply_to` when given; returns
    /// its message_id.
    pub fn push_message_as(
        &self,
        user_id: i64,
        chat_id: i64,
        thread_id: Option<i64>,
        text: &str,
        reply_to: Option<i64>,
    ) -> i64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let message_id = st.next_message_id;
        st.next_message_id += 1;
        let chat = chat_json(chat_id, thread_id.is_some());
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": user_id, "is_bot": false, "first_name": format!("User {user_id}"), "language_code": "en"},
            "chat": chat,
            "date": now_ms() / 1000,
            "text": text,
        });
        if let Some(t) = thread_id {
            message["message_thread_id"] = json!(t);
            message["is_topic_message"] = json!(true);
        }
        if let Some(r) = reply_to {
            let text = st.current.get(&r).map(|c| c.1.clone()).unwrap_or_default();
            message["reply_to_message"] = json!({
                "message_id": r, "chat": chat_json(chat_id, thread_id.is_some()), "date": now_ms() / 1000,
                "text": text, "from": {"id": BOT_ID, "is_bot": true, "first_name": "clawsess test",
                                       "username": BOT_USERNAME}});
        }
        if text.starts_with('/') {
            let len = text.split_whitespace().next().unwrap_or("").encode_utf16().count();
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        st.updates.push(json!({"update_id": update_id, "message": message}));
        self.server.shared.changed.notify_all();
        message_id
    }

    /// Queues a photo message from a person in `chat_id` (a forum topic when `thread_id` is
    /// given): `sizes` are (file_id, width, height, bytes), smallest first as Telegram sends
    /// them, each then served by `getFile` and its download. Returns the message_id.
    pub fn push_photo(
        &self,
        chat_id: i64,
        thread_id: Option<i64>,
        sizes: &[(&str, u32, u32, Vec<u8>)],
        caption: Option<&str>,
    ) -> i64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let mut photo = Vec::new();
        for (file_id, width, height, bytes) in sizes {
            let path = format!("photos/file_{}.jpg", st.files.len());
            photo.push(json!({"file_id": file_id, "file_unique_id": format!("u{file_id}"),
                              "width": width, "height": height, "file_size": bytes.len()}));
            st.files.insert((*file_id).to_owned(), (path, bytes.clone()));
        }
        let message_id = st.next_message_id;
        st.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": USER_ID, "is_bot": false, "first_name": "Tester"},
            "chat": chat_json(chat_id, thread_id.is_some()),
            "date": now_ms() / 1000,
            "photo": photo,
        });
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        if let Some(t) = thread_id {
            message["message_thread_id"] = json!(t);
            message["is_topic_message"] = json!(true);
        }
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        st.updates.push(json!({"update_id": update_id, "message": message}));
        self.server.shared.changed.notify_all();
        message_id
    }

    /// Queues a press on an inline-keyboard button with `data` under the bot's message
    /// `message_id` in `chat_id`; returns the callback query's id.
    pub fn push_callback(&self, chat_id: i64, message_id: i64, data: &str) -> String {
        self.push_callback_as(USER_ID, chat_id, message_id, data)
    }

    /// [`Self::push_callback`] by the user `user_id`.
    pub fn push_callback_as(&self, user_id: i64, chat_id: i64, message_id: i64, data: &str) -> String {
        let mut st = self.server.shared.state.lock().unwrap();
        st.next_callback_id += 1;
        let id = format!("cb{}", st.next_callback_id);
        let text = st.current.get(&message_id).map(|c| c.1.clone()).unwrap_or_default();
        let update = json!({
            "update_id": st.next_update_id,
            "callback_query": {
                "id": id,
                "from": {"id": user_id, "is_bot": false, "first_name": format!("User {user_id}")},
                "message": {"message_id": message_id, "chat": chat_json(chat_id, false),
                            "date": now_ms() / 1000, "text": text,
                            "from": {"id": BOT_ID, "is_bot": true, "first_name": "clawsess test", "username": BOT_USERNAME}},
                "chat_instance": format!("ci{chat_id}"),
                "data": data,
            }
        });
        st.next_update_id += 1;
        st.updates.push(update);
        self.server.shared.changed.notify_all();
        id
    }

    /// Every accepted editMessageText so far, in arrival order.
    pub fn edits(&self) -> Vec<Edit> {
        self.server.shared.state.lock().unwrap().edits.clone()
    }

    /// The text of the bot's message `message_id` now (after its edits).
    pub fn text_of(&self, message_id: i64) -> Option<String> {
        self.server.shared.state.lock().unwrap().current.get(&message_id).map(|c| c.1.clone())
    }

    /// Every answerCallbackQuery so far (its parameters).
    pub fn callback_answers(&self) -> Vec<Value> {
        self.server.shared.state.lock().unwrap().callback_answers.clone()
    }

    /// Waits until `pred` holds (it may call this stand-in's getters), or `timeout` passes;
    /// returns whether it held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let st = self.server.shared.state.lock().unwrap();
            // A change between `pred` and here is caught by the short wait.
            let _ = self.server.shared.changed.wait_timeout(st, left.min(Duration::from_millis(50))).unwrap();
        }
    }

    /// Queues a raw update (its `update_id` is set here) and returns the update_id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        update["update_id"] = json!(update_id);
        st.updates.push(update);
        self.server.shared.changed.notify_all();
        update_id
    }

    /// Every sendMessage so far, in arrival order.
    pub fn sent(&self) -> Vec<Sent> {
        self.server.shared.state.lock().unwrap().sent.clone()
    }

    /// The messages sent to `chat_id` (and topic `thread_id` when given).
    pub fn sent_to(&self, chat_id: i64, thread_id: Option<i64>) -> Vec<Sent> {
        self.sent()
            .into_iter()
            .filter(|s| s.chat_id == chat_id && (thread_id.is_none() || s.message_thread_id == thread_id))
            .collect()
    }

    /// Every getUpdates call so far.
    pub fn polls(&self) -> Vec<Poll> {
        self.server.shared.state.lock().unwrap().polls.clone()
    }

    /// Calls of other methods, as `METHOD PARAMS_JSON`.
    pub fn other_calls(&self) -> Vec<String> {
        self.server.shared.state.lock().unwrap().other.clone()
    }

    /// Waits until `pred` holds for what was sent, or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Sent]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.server.shared.state.lock().unwrap();
        loop {
            if pred(&st.sent) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.server.shared.changed.wait_timeout(st, left.min(Duration::from_millis(100))).unwrap().0;
        }
    }

    /// Waits until at least `n` messages were sent in all and returns them; panics with what
    /// was sent when `timeout` passes first.
    pub fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<Sent> {
        if !self.wait_for(timeout, |s| s.len() >= n) {
            panic!(
                "stand-in Telegram: expected {n} sent messages within {timeout:?}, got {:#?}",
                self.sent()
            );
        }
        self.sent()
    }

    /// Waits until at least `n` messages were sent to `chat_id` (topic `thread_id` if given)
    /// and returns those; panics with everything sent when `timeout` passes first.
    pub fn wait_for_sent_to(
        &self,
        chat_id: i64,
        thread_id: Option<i64>,
        n: usize,
        timeout: Duration,
    ) -> Vec<Sent> {
        let matches =
            |s: &Sent| s.chat_id == chat_id && (thread_id.is_none() || s.message_thread_id == thread_id);
        if !self.wait_for(timeout, |all| all.iter().filter(|s| matches(s)).count() >= n) {
            panic!(
                "stand-in Telegram: expected {n} messages to chat {chat_id} topic {thread_id:?} within \
                 {timeout:?}; everything sent: {:#?}",
                self.sent()
            );
        }
        self.sent_to(chat_id, thread_id)
    }
}

fn chat_json(chat_id: i64, forum: bool) -> Value {
    if chat_id > 0 && !forum {
        json!({"id": chat_id, "type": "private", "first_name": "Tester"})
    } else {
        json!({"id": chat_id, "type": "supergroup", "title": format!("group {chat_id}"), "is_forum": forum})
    }
}

impl Served for Shared {
    fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    fn serve(&self, stream: TcpStream) {
        serve_connection(stream, self)
    }

    fn on_stop(&self) {
        self.changed.notify_all();
    }
}

fn serve_connection(stream: TcpStream, sh: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let Ok(Some(req)) = read_request(&mut reader, MAX_BODY) else {
        let _ = writer.shutdown(Shutdown::Both);
        return;
    };
    let (status, content_type, body) = match download(&req, sh) {
        Some((status, body)) => (status, "application/octet-stream", body),
        None => {
            let (status, body) = handle(&req, sh);
            (status, "application/json", body.into_bytes())
        }
    };
    respond(writer, &status, content_type, &body);
}

/// `GET /file/bot<TOKEN>/<file_path>`: a file's bytes; `None` for every other path.
fn download(req: &Request, sh: &Shared) -> Option<(String, Vec<u8>)> {
    // Percent-decoded, as Telegram does (python-telegram-bot quotes the token's colon).
    let rest = percent_decode(req.path.strip_prefix("/file/bot")?);
    let (token, path) = rest.split_once('/')?;
    if token != sh.token {
        return Some(("401 Unauthorized".into(), Vec::new()));
    }
    let st = sh.state.lock().unwrap();
    match st.files.values().find(|(p, _)| p == path) {
        Some((_, bytes)) => Some(("200 OK".into(), bytes.clone())),
        None => Some(("404 Not Found".into(), Vec::new())),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x` into a JSON object of strings (numbers, booleans, JSON arrays and objects, as
/// python-telegram-bot sends `reply_markup`, are parsed).
fn parse_form(s: &str, into: &mut serde_json::Map<String, Value>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        let value = serde_json::from_str::<Value>(&v)
            .ok()
            .filter(|j| j.is_number() || j.is_array() || j.is_boolean() || j.is_object())
            .unwrap_or(Value::String(v));
        into.insert(percent_decode(k), value);
    }
}

fn params_of(req: &Request) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    if let Some((_, q)) = req.path.split_once('?') {
        parse_form(q, &mut map);
    }
    if !req.body.is_empty() {
        if req.header("content-type").to_ascii_lowercase().starts_with("application/json") {
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(o)) => map.extend(o),
                _ => return Err("Bad Request: can't parse JSON body".into()),
            }
        } else {
            parse_form(&String::from_utf8_lossy(&req.body), &mut map);
        }
    }
    Ok(Value::Object(map))
}

fn int_param(p: &Value, name: &str) -> Option<i64> {
    match p.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn error(code: u16, description: &str) -> (String, String) {
    let status = match code {
        400 => "400 Bad Request",
        401 => "401 Unauthorized",
        404 => "404 Not Found",
        _ => "500 Internal Server Error",
    };
    (status.into(), json!({"ok": false, "error_code": code, "description": description}).to_string())
}

fn ok(result: Value) -> (String, String) {
    ("200 OK".into(), json!({"ok": true, "result": result}).to_string())
}

fn handle(req: &Request, sh: &Shared) -> (String, String) {
    if req.method != "GET" && req.method != "POST" {
        return error(404, "Not Found");
    }
    let path = req.path.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/bot") else { return error(404, "Not Found") };
    let Some((token, method)) = rest.split_once('/') else { return error(404, "Not Found") };
    if token != sh.token {
        return error(401, "Unauthorized");
    }
    let params = match params_of(req) {
        Ok(p) => p,
        Err(e) => return error(400, &e),
    };
    match method {
        "getMe" => ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "clawsess test",
                              "username": BOT_USERNAME, "can_join_groups": true,
                              "can_read_all_group_messages": false, "supports_inline_queries": false})),
        "getUpdates" => get_updates(&params, sh),
        "sendMessage" => send_message(params, sh),
        "editMessageText" => edit_message(params, sh),
        "answerCallbackQuery" => {
            sh.state.lock().unwrap().callback_answers.push(params);
            sh.changed.notify_all();
            ok(json!(true))
        }
        "getFile" => get_file(&params, sh),
        _ => {
            sh.state.lock().unwrap().other.push(format!("{method} {params}"));
            ok(json!(true))
        }
    }
}

fn get_updates(params: &Value, sh: &Shared) -> (String, String) {
    let offset = int_param(params, "offset");
    let timeout = params.get("timeout").and_then(|t| t.as_f64().or_else(|| t.as_str()?.parse().ok()));
    let limit = int_param(params, "limit").filter(|l| (1..=100).contains(l)).unwrap_or(100) as usize;
    let allowed: Option<Vec<String>> = params.get("allowed_updates").and_then(|a| {
        let list = match a {
            Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
            other => other.clone(),
        };
        list.as_array().map(|l| l.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
    });
    let wanted = |u: &Value| {
        allowed.as_ref().is_none_or(|kinds| kinds.is_empty() || kinds.iter().any(|k| u.get(k).is_some()))
    };
    let wait = Duration::from_secs_f64(timeout.unwrap_or(0.0).clamp(0.0, MAX_POLL.as_secs_f64()));
    let deadline = Instant::now() + wait;
    let at_ms = now_ms();
    let mut st = sh.state.lock().unwrap();
    loop {
        let found: Vec<Value> = st
            .updates
            .iter()
            .filter(|u| offset.is_none_or(|o| u["update_id"].as_i64().unwrap_or(0) >= o))
            .filter(|u| wanted(u))
            .take(limit)
            .cloned()
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if !found.is_empty() || left.is_zero() || sh.stop.load(Ordering::SeqCst) {
            let returned = found.iter().map(|u| u["update_id"].as_i64().unwrap_or(0)).collect();
            st.polls.push(Poll { offset, timeout, at_ms, returned });
            return ok(Value::Array(found));
        }
        st = sh.changed.wait_timeout(st, left.min(Duration::from_millis(100))).unwrap().0;
    }
}

fn edit_message(params: Value, sh: &Shared) -> (String, String) {
    let (Some(chat_id), Some(message_id)) = (int_param(&params, "chat_id"), int_param(&params, "message_id"))
    else {
        return error(400, "Bad Request: chat_id and message_id are required");
    };
    let text = params.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: MESSAGE_TOO_LONG");
    }
    let markup = params.get("reply_markup").cloned().unwrap_or(Value::Null);
    let mut st = sh.state.lock().unwrap();
    match st.current.get(&message_id) {
        Some((chat, _, _)) if *chat != chat_id => {
            return error(400, "Bad Request: message to edit not found");
        }
        None => return error(400, "Bad Request: message to edit not found"),
        Some((_, old, old_markup)) if *old == text && *old_markup == markup => {
            return error(400, "Bad Request: message is not modified");
        }
        Some(_) => {}
    }
    st.current.insert(message_id, (chat_id, text.clone(), markup));
    st.edits.push(Edit { chat_id, message_id, text: text.clone(), at_ms: now_ms(), params });
    sh.changed.notify_all();
    let chat = json!({"id": chat_id, "type": if chat_id > 0 { "private" } else { "supergroup" }});
    ok(json!({"message_id": message_id, "chat": chat, "date": now_ms() / 1000, "text": text}))
}

fn get_file(params: &Value, sh: &Shared) -> (String, String) {
    let file_id = params.get("file_id").and_then(Value::as_str).unwrap_or("");
    let st = sh.state.lock().unwrap();
    match st.files.get(file_id) {
        Some((path, bytes)) => ok(json!({"file_id": file_id, "file_unique_id": format!("u{file_id}"),
                                         "file_size": bytes.len(), "file_path": path})),
        None => error(400, "Bad Request: invalid file_id"),
    }
}

fn send_message(params: Value, sh: &Shared) -> (String, String) {
    let Some(chat_id) = int_param(&params, "chat_id") else {
        return error(400, "Bad Request: chat_id is empty");
    };
    let text = params.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty");
    }
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: message is too long");
    }
    let mut st = sh.state.lock().unwrap();
    let seq = st.sent.len() + 1;
    let thread = int_param(&params, "message_thread_id");
    // `reply_parameters.message_id` (Bot API 7) or the older `reply_to_message_id`.
    let reply_to = int_param(&params, "reply_to_message_id")
        .or_else(|| params.get("reply_parameters").and_then(|r| int_param(r, "message_id")));
    st.sent.push(Sent {
        seq,
        chat_id,
        text: text.clone(),
        message_thread_id: thread,
        reply_to_message_id: reply_to,
        parse_mode: params.get("parse_mode").and_then(Value::as_str).map(str::to_owned),
        at_ms: now_ms(),
        params: params.clone(),
    });
    let markup = params.get("reply_markup").cloned().unwrap_or(Value::Null);
    st.current.insert(100_000 + seq as i64, (chat_id, text.clone(), markup));
    sh.changed.notify_all();
    let mut message = json!({
        "message_id": 100_000 + seq as i64,
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "clawsess test", "username": BOT_USERNAME},
        "chat": {"id": chat_id, "type": if chat_id > 0 { "private" } else { "supergroup" }},
        "date": now_ms() / 1000,
        "text": text,
    });
    if let Some(t) = thread {
        message["message_thread_id"] = json!(t);
    }
    ok(message)
}

/// A valid PNG of `w` x `h` red pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut row = vec![0u8]; // filter type None
    row.extend([255u8, 0, 0].repeat(w as usize));
    let raw = row.repeat(h as usize);
    // zlib with one stored (uncompressed) block.
    let mut z = vec![0x78, 0x01, 1];
    z.extend((raw.len() as u16).to_le_bytes());
    z.extend((!(raw.len() as u16)).to_le_bytes());
    z.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
