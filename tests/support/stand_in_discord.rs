//! A stand-in for Discord, on loopback, for end-to-end tests of a discord.py bot: the REST
//! routes the bot uses (`DISCORD_API_URL=StandInDiscord::api_url()`, what discord.py's
//! `Route.BASE` is) and the gateway websocket (`DISCORD_GATEWAY_URL`, what
//! `DiscordWebSocket.DEFAULT_GATEWAY` is), both on one port.
//!
//! Gateway (`GET /gateway`, a websocket): HELLO; IDENTIFY is answered with READY and a
//! GUILD_CREATE of [`GUILD_ID`] (one text channel [`CHANNEL_ID`], and the threads made so
//! far); heartbeats get their ACK. Events the test pushes (messages, threads, interactions)
//! are sent once the bot has identified. Frames are zlib-stream compressed as discord.py
//! asks (with stored deflate blocks: no compression library needed).
//!
//! REST (`/api/v10/...`, `Authorization: Bot TOKEN`, else 401): `GET /users/@me`,
//! `GET /oauth2/applications/@me`,
//! `GET /gateway/bot`, `PUT /applications/{app}/commands` (recorded), `POST
//! /channels/{id}/messages` and `PATCH /channels/{id}/messages/{id}` (recorded, see
//! [`Sent`]; content over 2,000 characters is refused with 400 as Discord does), `POST
//! /channels/{id}/typing`, `POST /interactions/{id}/{token}/callback`, `POST
//! /webhooks/{app}/{token}` and `PATCH .../messages/@original` (interaction replies,
//! recorded), and the attachments pushed with a message (`GET /attachments/...`). Any other
//! route: 404, recorded in [`StandInDiscord::other_calls`].
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http::{Request, read_request, respond};
use super::loopback::{Loopback, Served};

pub const BOT_ID: u64 = 4343;
pub const BOT_NAME: &str = "clawsess-test";
pub const GUILD_ID: u64 = 5000;
pub const CHANNEL_ID: u64 = 5001;
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A message the bot sent (REST), with its current content after edits.
#[derive(Clone, Debug)]
pub struct Sent {
    pub id: u64,
    pub channel_id: u64,
    pub content: String,
    /// The message it replies to (`message_reference.message_id`).
    pub reply_to: Option<u64>,
    pub components: Value,
    pub at_ms: u64,
}

/// How a pushed message is sent.
#[derive(Default)]
pub struct Say {
    /// In a DM (no guild).
    pub dm: bool,
    /// It mentions the bot (`<@BOT_ID> ` before the text).
    pub mention: bool,
    /// It replies to the bot's message with this id.
    pub reply_to: Option<u64>,
    /// Image attachments: (file name, bytes).
    pub attachments: Vec<(String, Vec<u8>)>,
}

/// One interaction reply: the callback (`kind` its type: 4 message, 5 deferred, 7 update)
/// or a follow-up (`kind` 0).
#[derive(Clone, Debug)]
pub struct InteractionReply {
    pub interaction_id: u64,
    pub kind: i64,
    pub content: String,
    pub ephemeral: bool,
}

#[derive(Default)]
struct State {
    next_id: u64,
    seq: i64,
    /// The gateway connection now served (older ones end).
    generation: u64,
    identified: bool,
    outbox: VecDeque<Value>,
    backlog: Vec<Value>,
    threads: HashMap<u64, Value>,
    sent: Vec<Sent>,
    edits: Vec<(u64, String, u64)>,
    replies: Vec<InteractionReply>,
    /// interaction id -> (token, the message of a component interaction).
    interactions: HashMap<u64, (String, Option<u64>)>,
    commands: Value,
    attachments: HashMap<String, Vec<u8>>,
    other: Vec<String>,
}

struct Shared {
    token: String,
    base: Mutex<String>,
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

/// The stand-in server. Dropping it stops it.
pub struct StandInDiscord {
    server: Loopback<Shared>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn timestamp() -> String {
    "2026-01-01T00:00:00.000000+00:00".into()
}

fn user(id: u64, bot: bool) -> Value {
    let name = if id == BOT_ID { BOT_NAME.to_owned() } else { format!("user{id}") };
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": name,
           "avatar": null, "bot": bot, "public_flags": 0})
}

fn member(id: u64) -> Value {
    json!({"user": user(id, id == BOT_ID), "roles": [], "joined_at": timestamp(), "deaf": false,
           "mute": false, "flags": 0, "permissions": "1099511627775"})
}

impl StandInDiscord {
    pub fn start(token: &str) -> StandInDiscord {
        let shared = Shared {
            token: token.to_owned(),
            base: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                next_id: 900_000_000_000_000_000,
                commands: json!([]),
                ..State::default()
            }),
            changed: Condvar::new(),
        };
        let server = Loopback::start("stand-in-discord", shared).expect("start the stand-in Discord");
        *server.shared.base.lock().unwrap() = format!("http://{}", server.addr);
        StandInDiscord { server }
    }

    /// `http://127.0.0.1:PORT/api/v10`: what `https://discord.com/api/v10` is to a bot.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.server.addr)
    }

    /// `ws://127.0.0.1:PORT/gateway`.
    pub fn gateway_url(&self) -> String {
        format!("ws://{}/gateway", self.server.addr)
    }

    fn id(st: &mut State) -> u64 {
        st.next_id += 1;
        st.next_id
    }

    fn push(&self, st: &mut State, t: &str, d: Value) {
        let event = json!({"op": 0, "t": t, "d": d});
        if st.identified {
            st.outbox.push_back(event);
        } else {
            st.backlog.push(event);
        }
        self.server.shared.changed.notify_all();
    }

    /// Whether a bot identified on the gateway (READY was sent).
    pub fn identified(&self) -> bool {
        self.server.shared.state.lock().unwrap().identified
    }

    /// A message from user `user_id` in `channel_id` (a thread made with [`Self::thread`],
    /// [`CHANNEL_ID`], or any other id for a DM), as `how` says. Returns its id.
    pub fn message(&self, user_id: u64, channel_id: u64, content: &str, how: Say) -> u64 {
        let Say { dm, mention, reply_to, attachments } = how;
        let base = self.server.shared.base.lock().unwrap().clone();
        let mut st = self.server.shared.state.lock().unwrap();
        let id = Self::id(&mut st);
        let content = if mention { format!("<@{BOT_ID}> {content}") } else { content.to_owned() };
        let mut files = Vec::new();
        for (name, bytes) in &attachments {
            let aid = Self::id(&mut st);
            let path = format!("/attachments/{aid}/{name}");
            files.push(json!({"id": aid.to_string(), "filename": name, "size": bytes.len(),
                              "url": format!("{base}{path}"), "proxy_url": format!("{base}{path}"),
                              "content_type": "image/png", "width": 2, "height": 2}));
            st.attachments.insert(path, bytes.clone());
        }
        let mut m = json!({
            "id": id.to_string(), "channel_id": channel_id.to_string(), "author": user(user_id, false),
            "content": content, "timestamp": timestamp(), "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": if mention { json!([user(BOT_ID, true)]) } else { json!([]) },
            "mention_roles": [], "attachments": files, "embeds": [], "pinned": false, "type": 0, "flags": 0,
            "components": [],
        });
        if !dm {
            m["guild_id"] = json!(GUILD_ID.to_string());
            m["member"] = member(user_id);
        }
        if let Some(r) = reply_to {
            let text = st.sent.iter().find(|s| s.id == r).map(|s| s.content.clone()).unwrap_or_default();
            m["type"] = json!(19);
            m["message_reference"] =
                json!({"message_id": r.to_string(), "channel_id": channel_id.to_string()});
            m["referenced_message"] = json!({
                "id": r.to_string(), "channel_id": channel_id.to_string(), "author": user(BOT_ID, true),
                "content": text, "timestamp": timestamp(), "edited_timestamp": null, "tts": false,
                "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
                "embeds": [], "pinned": false, "type": 0, "flags": 0});
        }
        self.push(&mut st, "MESSAGE_CREATE", m);
        id
    }

    fn thread_json(id: u64, archived: bool) -> Value {
        json!({"id": id.to_string(), "guild_id": GUILD_ID.to_string(), "parent_id": CHANNEL_ID.to_string(),
               "owner_id": "1", "type": 11, "name": format!("thread {id}"), "last_message_id": null,
               "rate_limit_per_user": 0, "message_count": 0, "member_count": 1, "flags": 0,
               "thread_metadata": {"archived": archived, "auto_archive_duration": 1440,
                                   "archive_timestamp": timestamp(), "locked": false}})
    }

    /// Makes a thread in [`CHANNEL_ID`] (THREAD_CREATE); returns its id.
    pub fn thread(&self) -> u64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let id = Self::id(&mut st);
        let mut t = Self::thread_json(id, false);
        st.threads.insert(id, t.clone());
        t["newly_created"] = json!(true);
        self.push(&mut st, "THREAD_CREATE", t);
        id
    }

    /// Archives the thread (THREAD_UPDATE).
    pub fn archive(&self, thread: u64) {
        let mut st = self.server.shared.state.lock().unwrap();
        let t = Self::thread_json(thread, true);
        st.threads.insert(thread, t.clone());
        self.push(&mut st, "THREAD_UPDATE", t);
    }

    /// Deletes the thread (THREAD_DELETE).
    pub fn delete(&self, thread: u64) {
        let mut st = self.server.shared.state.lock().unwrap();
        st.threads.remove(&thread);
        let d = json!({"id": thread.to_string(), "guild_id": GUILD_ID.to_string(),
                       "parent_id": CHANNEL_ID.to_string(), "type": 11});
        self.push(&mut st, "THREAD_DELETE", d);
    }

    fn channel_json(st: &State, channel_id: u64) -> Value {
        st.threads.get(&channel_id).cloned().unwrap_or_else(|| {
            json!({"id": channel_id.to_string(), "type": 0, "guild_id": GUILD_ID.to_string(),
                   "name": "general", "position": 0, "permission_overwrites": [], "nsfw": false,
                   "parent_id": null})
        })
    }

    /// A slash command `/name` with string options, by `user_id` in `channel_id`; returns the
    /// interaction's id.
    pub fn slash(&self, user_id: u64, channel_id: u64, name: &str, options: &[(&str, &str)]) -> u64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let id = Self::id(&mut st);
        let token = format!("itoken{id}");
        let cmd_id = st
            .commands
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["id"].clone())
            .unwrap_or(json!("1"));
        let options: Vec<Value> =
            options.iter().map(|(k, v)| json!({"name": k, "type": 3, "value": v})).collect();
        let d = json!({
            "id": id.to_string(), "application_id": BOT_ID.to_string(), "type": 2, "token": token,
            "version": 1, "guild_id": GUILD_ID.to_string(), "channel_id": channel_id.to_string(),
            "channel": Self::channel_json(&st, channel_id), "member": member(user_id),
            "data": {"id": cmd_id, "name": name, "type": 1, "options": options},
            "app_permissions": "1099511627775", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": GUILD_ID.to_string()}, "context": 0,
            "attachment_size_limit": 10_485_760,
        });
        st.interactions.insert(id, (token, None));
        self.push(&mut st, "INTERACTION_CREATE", d);
        id
    }

    /// A press by `user_id` on the button `custom_id` under the bot's message `message_id`;
    /// returns the interaction's id.
    pub fn press(&self, user_id: u64, message_id: u64, custom_id: &str) -> u64 {
        let mut st = self.server.shared.state.lock().unwrap();
        let id = Self::id(&mut st);
        let token = format!("itoken{id}");
        let sent = st.sent.iter().find(|s| s.id == message_id).cloned().expect("a message of the bot's");
        let message = json!({
            "id": sent.id.to_string(), "channel_id": sent.channel_id.to_string(), "author": user(BOT_ID, true),
            "content": sent.content, "timestamp": timestamp(), "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "type": 0, "flags": 0, "components": sent.components,
        });
        let d = json!({
            "id": id.to_string(), "application_id": BOT_ID.to_string(), "type": 3, "token": token,
            "version": 1, "guild_id": GUILD_ID.to_string(), "channel_id": sent.channel_id.to_string(),
            "channel": Self::channel_json(&st, sent.channel_id), "member": member(user_id),
            "message": message, "data": {"custom_id": custom_id, "component_type": 2},
            "app_permissions": "1099511627775", "locale": "en-US", "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": GUILD_ID.to_string()}, "context": 0,
            "attachment_size_limit": 10_485_760,
        });
        st.interactions.insert(id, (token, Some(message_id)));
        self.push(&mut st, "INTERACTION_CREATE", d);
        id
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.server.shared.state.lock().unwrap().sent.clone()
    }

    pub fn sent_in(&self, channel_id: u64) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.channel_id == channel_id).collect()
    }

    /// The bot's message `id` now (after edits).
    pub fn message_now(&self, id: u64) -> Option<Sent> {
        self.sent().into_iter().find(|s| s.id == id)
    }

    /// Every edit: (message id, content, unix millis).
    pub fn edits(&self) -> Vec<(u64, String, u64)> {
        self.server.shared.state.lock().unwrap().edits.clone()
    }

    pub fn replies(&self) -> Vec<InteractionReply> {
        self.server.shared.state.lock().unwrap().replies.clone()
    }

    pub fn commands(&self) -> Value {
        self.server.shared.state.lock().unwrap().commands.clone()
    }

    pub fn other_calls(&self) -> Vec<String> {
        self.server.shared.state.lock().unwrap().other.clone()
    }

    /// Waits until `pred` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&StandInDiscord) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let st = self.server.shared.state.lock().unwrap();
            drop(self.server.shared.changed.wait_timeout(st, Duration::from_millis(100)).unwrap());
        }
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
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let Ok(Some(req)) = read_request(&mut reader, MAX_BODY) else { return };
    if req.path.starts_with("/gateway")
        && req.headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    {
        gateway(req, reader, writer, sh);
        return;
    }
    let (status, content_type, body) = if let Some(bytes) = attachment(&req, sh) {
        ("200 OK", "image/png", bytes)
    } else {
        match rest(&req, sh) {
            (status, Some(body)) => (status, "application/json", body.to_string().into_bytes()),
            (status, None) => (status, "text/plain", Vec::new()),
        }
    };
    respond(writer, status, content_type, &body);
}

fn attachment(req: &Request, sh: &Shared) -> Option<Vec<u8>> {
    if req.method != "GET" || !req.path.starts_with("/attachments/") {
        return None;
    }
    let path = req.path.split('?').next().unwrap_or("");
    sh.state.lock().unwrap().attachments.get(path).cloned()
}

fn message_json(s: &Sent, st: &State) -> Value {
    let dm = !st.threads.contains_key(&s.channel_id) && s.channel_id != CHANNEL_ID;
    let mut m = json!({
        "id": s.id.to_string(), "channel_id": s.channel_id.to_string(), "author": user(BOT_ID, true),
        "content": s.content, "timestamp": timestamp(), "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": if s.reply_to.is_some() { 19 } else { 0 }, "flags": 0, "components": s.components,
    });
    if !dm {
        m["guild_id"] = json!(GUILD_ID.to_string());
    }
    if let Some(r) = s.reply_to {
        m["message_reference"] = json!({"message_id": r.to_string(), "channel_id": s.channel_id.to_string()});
    }
    m
}

fn not_found(st: &mut State, req: &Request) -> (&'static str, Option<Value>) {
    st.other.push(format!("{} {}", req.method, req.path));
    ("404 Not Found", Some(json!({"message": "Unknown route (stand-in)", "code": 0})))
}

fn rest(req: &Request, sh: &Shared) -> (&'static str, Option<Value>) {
    let path = req.path.split('?').next().unwrap_or("");
    let Some(route) = path.strip_prefix("/api/v10") else {
        let mut st = sh.state.lock().unwrap();
        return not_found(&mut st, req);
    };
    let webhook = route.starts_with("/webhooks/") || route.starts_with("/interactions/");
    if !webhook && req.headers.get("authorization").map(String::as_str) != Some(&format!("Bot {}", sh.token))
    {
        return ("401 Unauthorized", Some(json!({"message": "401: Unauthorized", "code": 0})));
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let parts: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let mut st = sh.state.lock().unwrap();
    let result = match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["users", "@me"]) => ("200 OK", Some(user(BOT_ID, true))),
        ("GET", ["oauth2", "applications", "@me"]) => (
            "200 OK",
            Some(json!({
            "id": BOT_ID.to_string(), "name": BOT_NAME, "icon": null, "description": "", "rpc_origins": [],
            "bot_public": false, "bot_require_code_grant": false, "owner": user(1, false), "verify_key": "00",
            "team": null, "flags": 0, "summary": ""})),
        ),
        ("GET", ["gateway", ..]) => {
            let url = sh.base.lock().unwrap().replace("http://", "ws://") + "/gateway";
            (
                "200 OK",
                Some(json!({"url": url, "shards": 1, "session_start_limit":
                {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})),
            )
        }
        ("PUT", ["applications", _, "commands"]) => {
            let mut commands = body.as_array().cloned().unwrap_or_default();
            for c in commands.iter_mut() {
                st.next_id += 1;
                c["id"] = json!(st.next_id.to_string());
                c["application_id"] = json!(BOT_ID.to_string());
                c["version"] = json!("1");
                if c.get("type").is_none() {
                    c["type"] = json!(1);
                }
                if c.get("options").is_none() {
                    c["options"] = json!([]);
                }
            }
            st.commands = Value::Array(commands.clone());
            ("200 OK", Some(Value::Array(commands)))
        }
        ("POST", ["channels", channel, "messages"]) => {
            let content = body["content"].as_str().unwrap_or("").to_owned();
            if content.chars().count() > 2000 {
                return ("400 Bad Request", Some(json!({"message": "Invalid Form Body", "code": 50035})));
            }
            st.next_id += 1;
            let s = Sent {
                id: st.next_id,
                channel_id: channel.parse().unwrap_or(0),
                content,
                reply_to: body["message_reference"]["message_id"]
                    .as_str()
                    .and_then(|m| m.parse().ok())
                    .or_else(|| body["message_reference"]["message_id"].as_u64()),
                components: body.get("components").cloned().unwrap_or(json!([])),
                at_ms: now_ms(),
            };
            let m = message_json(&s, &st);
            st.sent.push(s);
            ("200 OK", Some(m))
        }
        ("PATCH", ["channels", _, "messages", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            edit(&mut st, id, &body);
            match st.sent.iter().find(|s| s.id == id) {
                Some(s) => ("200 OK", Some(message_json(s, &st))),
                None => ("404 Not Found", Some(json!({"message": "Unknown Message", "code": 10008}))),
            }
        }
        ("POST", ["channels", _, "typing"]) => ("204 No Content", None),
        ("POST", ["interactions", id, _token, "callback"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let kind = body["type"].as_i64().unwrap_or(0);
            let data = &body["data"];
            if let (7, Some((_, Some(message)))) = (kind, st.interactions.get(&id).cloned()) {
                edit(&mut st, message, data);
            }
            st.replies.push(InteractionReply {
                interaction_id: id,
                kind,
                content: data["content"].as_str().unwrap_or("").to_owned(),
                ephemeral: data["flags"].as_u64().unwrap_or(0) & 64 != 0,
            });
            let response = json!({"interaction": {"id": id.to_string(), "type": 2,
                                  "response_message_loading": kind == 5,
                                  "response_message_ephemeral": data["flags"].as_u64().unwrap_or(0) & 64 != 0},
                                  "resource": {"type": kind}});
            ("200 OK", Some(response))
        }
        ("POST", ["webhooks", _, token]) | ("PATCH", ["webhooks", _, token, "messages", "@original"]) => {
            let id = st.interactions.iter().find(|(_, (t, _))| t == token).map(|(id, _)| *id).unwrap_or(0);
            st.replies.push(InteractionReply {
                interaction_id: id,
                kind: 0,
                content: body["content"].as_str().unwrap_or("").to_owned(),
                ephemeral: body["flags"].as_u64().unwrap_or(0) & 64 != 0,
            });
            st.next_id += 1;
            let s = Sent {
                id: st.next_id,
                channel_id: CHANNEL_ID,
                content: body["content"].as_str().unwrap_or("").to_owned(),
                reply_to: None,
                components: json!([]),
                at_ms: now_ms(),
            };
            let m = message_json(&s, &st);
            ("200 OK", Some(m))
        }
        _ => not_found(&mut st, req),
    };
    sh.changed.notify_all();
    result
}

fn edit(st: &mut State, id: u64, body: &Value) {
    let now = now_ms();
    let mut edited = None;
    if let Some(s) = st.sent.iter_mut().find(|s| s.id == id) {
        if let Some(c) = body.get("content").and_then(Value::as_str) {
            s.content = c.to_owned();
        }
        if let Some(c) = body.get("components") {
            s.components = c.clone();
        }
        edited = Some(s.content.clone());
    }
    if let Some(c) = edited {
        st.edits.push((id, c, now));
    }
}

// --- the gateway websocket --------------------------------------------------------------------

/// SHA-1 (for the websocket handshake's accept key).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend(bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// `data` as the next part of a zlib stream (stored blocks), ending in a sync flush.
fn zlib_part(data: &[u8], first: bool) -> Vec<u8> {
    let mut out = if first { vec![0x78, 0x01] } else { Vec::new() };
    for chunk in data.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(chunk);
    }
    out.extend([0, 0, 0, 0xff, 0xff]);
    out
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(payload);
    out
}

/// One frame from the client: (opcode, unmasked payload).
fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let mut len = (head[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    if len > MAX_BODY as u64 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

fn guild_create(st: &State) -> Value {
    let channel = json!({"id": CHANNEL_ID.to_string(), "type": 0, "name": "general", "position": 0,
                         "permission_overwrites": [], "nsfw": false, "parent_id": null, "topic": null,
                         "last_message_id": null, "rate_limit_per_user": 0});
    let threads: Vec<Value> = st.threads.values().cloned().collect();
    json!({
        "id": GUILD_ID.to_string(), "name": "stand-in guild", "icon": null, "owner_id": "1",
        "unavailable": false, "member_count": 2, "large": false, "joined_at": timestamp(),
        "features": [], "emojis": [], "stickers": [], "channels": [channel], "threads": threads,
        "roles": [{"id": GUILD_ID.to_string(), "name": "@everyone", "permissions": "1099511627775",
                   "position": 0, "color": 0, "hoist": false, "managed": false, "mentionable": false, "flags": 0}],
        "members": [member(BOT_ID)], "voice_states": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "soundboard_sounds": [], "premium_tier": 0,
        "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
        "mfa_level": 0, "system_channel_flags": 0, "nsfw_level": 0, "afk_timeout": 300,
        "preferred_locale": "en-US",
    })
}

fn gateway(req: Request, reader: BufReader<TcpStream>, mut writer: TcpStream, sh: &Shared) {
    let key = req.headers.get("sec-websocket-key").cloned().unwrap_or_default();
    use base64::Engine;
    let accept = base64::engine::general_purpose::STANDARD
        .encode(sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()));
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    let generation = {
        let mut st = sh.state.lock().unwrap();
        st.generation += 1;
        st.identified = false;
        st.outbox.clear();
        st.outbox.push_back(json!({"op": 10, "d": {"heartbeat_interval": 41250}}));
        sh.changed.notify_all();
        st.generation
    };
    std::thread::scope(|scope| {
        let mut stream = reader.into_inner();
        let _ = stream.set_read_timeout(None);
        let closer = stream.try_clone().ok();
        scope.spawn(move || {
            while let Ok((opcode, payload)) = read_frame(&mut stream) {
                if opcode == 8 {
                    break;
                }
                let Ok(msg) = serde_json::from_slice::<Value>(&payload) else { continue };
                let mut st = sh.state.lock().unwrap();
                if st.generation != generation {
                    break;
                }
                match msg["op"].as_i64() {
                    Some(1) => st.outbox.push_back(json!({"op": 11})),
                    Some(2) | Some(6) => {
                        let base = sh.base.lock().unwrap().replace("http://", "ws://") + "/gateway";
                        let ready = json!({"op": 0, "t": "READY", "d": {
                            "v": 10, "user": user(BOT_ID, true), "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
                            "session_id": format!("stand-in-{generation}"), "resume_gateway_url": base,
                            "shard": [0, 1], "application": {"id": BOT_ID.to_string(), "flags": 0},
                            "private_channels": [], "relationships": [], "presences": []}});
                        let guild = json!({"op": 0, "t": "GUILD_CREATE", "d": guild_create(&st)});
                        st.outbox.push_back(ready);
                        st.outbox.push_back(guild);
                        let backlog = std::mem::take(&mut st.backlog);
                        st.outbox.extend(backlog);
                        st.identified = true;
                    }
                    _ => {}
                }
                sh.changed.notify_all();
            }
            // The bot closed (or is gone): this connection ends, its writer too.
            let mut st = sh.state.lock().unwrap();
            if st.generation == generation {
                st.identified = false;
                st.generation += 1;
            }
            sh.changed.notify_all();
        });
        // The writer: sends what is queued while this is the connection served.
        let mut first = true;
        loop {
            let next = {
                let mut st = sh.state.lock().unwrap();
                loop {
                    if sh.stop.load(Ordering::SeqCst) || st.generation != generation {
                        break None;
                    }
                    if let Some(mut m) = st.outbox.pop_front() {
                        if m["op"] == 0 {
                            st.seq += 1;
                            m["s"] = json!(st.seq);
                        }
                        break Some(m);
                    }
                    st = sh.changed.wait_timeout(st, Duration::from_millis(200)).unwrap().0;
                }
            };
            let Some(m) = next else { break };
            let bytes = zlib_part(m.to_string().as_bytes(), first);
            first = false;
            if writer.write_all(&frame(2, &bytes)).is_err() {
                let mut st = sh.state.lock().unwrap();
                if st.generation == generation {
                    st.generation += 1; // this connection is gone
                }
                break;
            }
        }
        if let Some(c) = closer {
            let _ = c.shutdown(Shutdown::Both);
        }
        let _ = writer.shutdown(Shutdown::Both);
    });
}
