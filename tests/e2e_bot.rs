//! The reference Telegram bot (examples/telegram_bot.py) end to end: the bot against a
//! stand-in Telegram Bot API, clawsess installed into a throw-away HOME, and the real Claude
//! Code CLI (pinned, installed by tests/support on first use) against the stand-in Messages
//! API. Everything listens on 127.0.0.1 only.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bot_venv::Bot;
use support::installed::Installed;
use support::real_claude::{Cooling, Facts, run_with_stdin};
use support::stand_in_api::{Recorded, ToolCall, color_question, last_tool_results};
use support::stand_in_telegram::{BOT_USERNAME, Sent, StandInTelegram, USER_ID, png};

const TOKEN: &str = "4242:TEST-token";
/// Longest wait for one answer (a claude turn takes about a second; the bound is for a
/// machine loaded by other suites, never reached when things work).
const T: Duration = Duration::from_secs(180);
const BUSY_TEXT: &str = "this conversation is busy in another place";
const STOPPING_TEXT: &str = "the bot is shutting down";

/// The Python the test runs the bot with: a venv with the bots' pinned packages
/// (examples/requirements.txt), installed by the test support on first use.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(support::bot_venv::python)
}

fn bot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("telegram_bot.py")
}

/// A HOME with Claude Code and clawsess installed into it, a project the bot starts its
/// sessions in (the bot runs turns with `--warm 10m`: its warm claudes end with the test),
/// and a stand-in Telegram.
struct Env {
    home: Cooling<Installed>,
    tg: StandInTelegram,
    state: PathBuf,
}

impl std::ops::Deref for Env {
    type Target = Installed;
    fn deref(&self) -> &Installed {
        &self.home
    }
}

impl Env {
    fn new() -> Self {
        let home = Cooling(Installed::new("bot"));
        let state = home.home().join("bot-state").join("state.json");
        Self { home, tg: StandInTelegram::start(TOKEN), state }
    }

    /// Starts the bot with this env plus `extra` variables.
    fn bot(&self, extra: &[(&str, &str)]) -> Bot {
        let log = self.home.home().join(format!("bot-{}.log", unique()));
        let mut cmd = Bot::command(&self.home, "telegram_bot.py", &self.project, &self.state);
        cmd.env("TELEGRAM_BOT_TOKEN", TOKEN)
            .env("TELEGRAM_API_URL", self.tg.api_url())
            .env("BOT_POLL_TIMEOUT", "1");
        if !extra.iter().any(|(k, _)| *k == "ALLOWED_USERS") {
            cmd.env("ALLOWED_USERS", USER_ID.to_string());
        }
        for (k, v) in extra {
            if *k == "ALLOWED_USERS" && v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        Bot::start(cmd, log)
    }

    /// Sends `text` to the bot from `chat` (topic `thread`) and waits for the next message the
    /// bot sends there; returns it.
    fn say(&self, bot: &Bot, chat: i64, thread: Option<i64>, text: &str) -> Sent {
        let before = self.tg.sent_to(chat, thread).len();
        let id = self.tg.push_message(chat, thread, text);
        let ok = self.tg.wait_for(T, |s| {
            s.iter()
                .filter(|m| m.chat_id == chat && (thread.is_none() || m.message_thread_id == thread))
                .count()
                > before
        });
        assert!(ok, "no answer to {text:?} in chat {chat}/{thread:?}; bot log:\n{}", bot.log());
        let reply = self.tg.sent_to(chat, thread).swap_remove(before);
        assert_eq!(reply.reply_to_message_id, Some(id), "{reply:?}");
        assert_eq!(reply.message_thread_id, thread, "{reply:?}");
        reply
    }

    /// The last main-turn request the stand-in Messages API saw.
    fn last_turn(&self) -> Recorded {
        self.home.api.turn_requests().pop().expect("no turn reached the model")
    }

    fn turns_with(&self, needle: &str) -> Vec<Recorded> {
        self.home.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(needle)).collect()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn assert_replies_to(reply: &Sent, prompt: &str) {
    assert!(
        reply.text.contains("stand-in reply") && reply.text.contains(prompt),
        "expected the model's answer to {prompt:?}, got {reply:?}"
    );
}

#[test]
fn each_chat_and_forum_topic_keeps_its_own_session() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "100,200")]);

    let first = e.say(&bot, 100, None, "hello from chat 100");
    assert_replies_to(&first, "hello from chat 100");
    let session = e.current("telegram:100").expect("chat 100 has a session");
    let rec: Value = serde_json::from_str(&e.clawsess_ok(&["list", "--json"])).unwrap();
    assert_eq!(rec[0]["cwd"], e.project.to_str().unwrap(), "a new session starts in BOT_CWD");

    let second = e.say(&bot, 100, None, "second message in chat 100");
    assert_replies_to(&second, "second message in chat 100");
    let req = e.last_turn();
    assert_eq!(req.last_user_text.trim(), "second message in chat 100");
    assert!(req.all_text.contains("hello from chat 100"), "the second turn continues the first");
    assert_eq!(e.current("telegram:100").as_deref(), Some(session.as_str()));
    // A turn with a tool call sends its progress message first: wait for the reply itself.
    let run_it = e.tg.push_message(100, None, "run it [bash=echo from chat 100]");
    assert_replies_to(&wait_for_reply(&e, &bot, 100, run_it, "stand-in reply"), "run it");
    // The bot's turns are warm: one claude answered them (the keeper's note names it).
    let list: Value = serde_json::from_str(&e.clawsess_ok(&["list", "--json"])).unwrap();
    assert_eq!(list[0]["warm"], true, "{list}");
    let r = e.say(&bot, 100, None, "/status");
    assert!(r.text.contains(&session) && r.text.contains("its own conversation"), "{r:?}");
    assert!(r.text.contains("Last topic: 3 prompts, last turn by telegram:100"), "{r:?}");
    assert!(r.text.contains("Done: ran `echo from chat 100`."), "{r:?}");
    assert!(r.text.contains("Last prompt: run it [bash=echo from chat 100]"), "{r:?}");

    // A forum topic is its own conversation, and the answer goes to the topic.
    // In a group the bot hears a message that mentions it; the mention is not part of the prompt.
    let topic = e.say(&bot, 200, Some(7), &format!("@{BOT_USERNAME} hello from topic 7"));
    assert_replies_to(&topic, "hello from topic 7");
    assert_eq!(topic.message_thread_id, Some(7));
    let req = e.last_turn();
    assert!(!req.all_text.contains("chat 100"), "the topic does not see chat 100");
    let topic_session = e.current("telegram:200:7").expect("the topic has a session");
    assert_ne!(topic_session, session);
    assert_eq!(e.current("telegram:200"), None, "the topic's key is telegram:200:7");
}

#[test]
fn attach_detach_new_and_sessions_commands() {
    let e = Env::new();
    // A person's terminal session, named.
    let terminal_dir = e.home.project("terminal");
    let t = e.home.run_p_json(&terminal_dir, &[], "remember the word PAPAYA");
    let trip = t["session_id"].as_str().unwrap().to_owned();
    e.clawsess_ok(&["name", &trip, "trip"]);

    let bot = e.bot(&[("ALLOWED_CHATS", "100"), ("BOT_WAIT", "0")]);
    assert_replies_to(&e.say(&bot, 100, None, "chat's own first"), "chat's own first");
    let own = e.current("telegram:100").unwrap();
    assert_ne!(own, trip);

    let r = e.say(&bot, 100, None, "/attach nosuch");
    assert!(r.text.contains("no session is named \"nosuch\""), "{r:?}");
    let r = e.say(&bot, 100, None, "/attach --key telegram:1");
    assert!(r.text.starts_with("Usage: /attach"), "{r:?}");
    // A command for another bot in the group is not ours; the @-form for us is.
    e.tg.push_message(100, None, "/sessions@other_bot");
    let r = e.say(&bot, 100, None, &format!("/attach@{BOT_USERNAME} trip"));
    assert!(r.text.contains("Attached telegram:100 to session") && r.text.contains("(trip)"), "{r:?}");
    assert!(r.text.contains("Last prompt: remember the word PAPAYA"), "attach shows the last topic: {r:?}");
    assert!(r.text.contains("last turn by claude -p") && r.text.contains("Done: no tool calls."), "{r:?}");
    assert_eq!(e.current("telegram:100").as_deref(), Some(trip.as_str()));

    let r = e.say(&bot, 100, None, "what was the word?");
    assert_replies_to(&r, "what was the word?");
    let req = e.last_turn();
    assert!(req.all_text.contains("remember the word PAPAYA"), "continues the terminal's session");
    assert!(!req.all_text.contains("chat's own first"));

    // The terminal answering the session: the chat is told it is busy (BOT_WAIT=0).
    let mut terminal = e.home.claude_p(&terminal_dir);
    terminal.args(["--output-format", "json", "--resume", &trip]);
    let term = thread::spawn(move || {
        run_with_stdin(&mut terminal, "terminal turn [hold=term]", Duration::from_secs(120))
    });
    e.home.api.wait_held("term");
    let r = e.say(&bot, 100, None, "while the terminal talks");
    assert!(r.text.contains(BUSY_TEXT), "{r:?}");
    e.home.api.release("term");
    assert!(term.join().unwrap().status.success());
    assert!(e.turns_with("while the terminal talks").is_empty(), "a busy turn never reached the model");

    let r = e.say(&bot, 100, None, "/detach");
    assert!(r.text.contains("Detached telegram:100"), "{r:?}");
    assert_replies_to(&e.say(&bot, 100, None, "back home"), "back home");
    let req = e.last_turn();
    assert!(
        req.all_text.contains("chat's own first") && !req.all_text.contains("PAPAYA"),
        "own session again"
    );
    assert_eq!(e.current("telegram:100").as_deref(), Some(own.as_str()));

    let r = e.say(&bot, 100, None, "/new");
    assert!(r.text.contains("next message starts a new conversation"), "{r:?}");
    assert_replies_to(&e.say(&bot, 100, None, "fresh start"), "fresh start");
    let req = e.last_turn();
    assert!(
        !req.all_text.contains("chat's own first") && !req.all_text.contains("back home"),
        "a new session"
    );
    let fresh = e.current("telegram:100").unwrap();
    assert!(fresh != own && fresh != trip);
    // Only the next message: the one after continues the new session.
    assert_replies_to(&e.say(&bot, 100, None, "fresh second"), "fresh second");
    assert!(e.last_turn().all_text.contains("fresh start"));
    assert_eq!(e.current("telegram:100").as_deref(), Some(fresh.as_str()));

    let r = e.say(&bot, 100, None, "/sessions");
    assert_eq!(r.parse_mode.as_deref(), Some("HTML"), "{r:?}");
    assert!(r.text.starts_with("<pre>") && r.text.contains("trip") && r.text.contains("NAME"), "{r:?}");
    assert!(r.text.contains(&fresh[..8]) && r.text.contains("telegram:100 (own)"), "{r:?}");

    // Every message got exactly one answer: none for /sessions@other_bot.
    let sent = e.tg.sent_to(100, None);
    assert_eq!(sent.len(), 12, "{sent:#?}");
}

#[test]
fn chats_are_answered_in_parallel_and_one_chat_in_order() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "300,400")]);
    e.tg.push_message(300, None, "chat 300 [hold=chats]");
    e.tg.push_message(400, None, "chat 400 [hold=chats]");
    // Both chats' turns reach the model while both are held: they run at once.
    assert!(
        e.home
            .api
            .wait_for(T, |r| r.iter().filter(|r| r.last_user_text.contains("[hold=chats]")).count() == 2)
    );
    e.home.api.release("chats");
    e.tg.wait_for_sent_to(300, None, 1, T);
    e.tg.wait_for_sent_to(400, None, 1, T);
    let (a, b) = (&e.turns_with("chat 300")[0], &e.turns_with("chat 400")[0]);
    assert!(a.started_ms < b.finished_ms && b.started_ms < a.finished_ms, "two chats overlap: {a:?} {b:?}");
    assert_replies_to(&e.tg.sent_to(300, None)[0], "chat 300");
    assert_replies_to(&e.tg.sent_to(400, None)[0], "chat 400");

    let one = e.tg.push_message(300, None, "first in order [hold=first]");
    let two = e.tg.push_message(300, None, "second in order");
    e.home.api.wait_held("first");
    // The second waits, and is told so, while the first is held.
    let told = wait_for_reply(&e, &bot, 300, two, "⏳ Queued: #1 in line.");
    e.home.api.release("first");
    let sent = e.tg.wait_for_sent_to(300, None, 4, T);
    let (x, y) = (&e.turns_with("first in order")[0], &e.turns_with("second in order")[0]);
    assert!(y.started_ms >= x.finished_ms, "one chat, one turn at a time: {x:?} {y:?}");
    assert!(y.all_text.contains("first in order"), "the second turn saw the first");
    assert_eq!(sent[1].seq, told.seq);
    assert_eq!(sent[2].reply_to_message_id, Some(one));
    assert_replies_to(&sent[2], "first in order");
    assert_eq!(sent[3].reply_to_message_id, Some(two));
    assert_replies_to(&sent[3], "second in order");
    drop(bot);
}

#[test]
fn dash_prompts_are_text_and_strangers_are_refused() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "500")]);
    e.tg.push_message(501, None, "hello from a stranger");
    e.tg.push_message(501, None, "stranger again");
    let r = e.say(&bot, 500, None, "--help");
    assert_replies_to(&r, "--help");
    assert_eq!(e.last_turn().last_user_text.trim(), "--help");
    let r = e.say(&bot, 500, None, "-rf /");
    assert_replies_to(&r, "-rf /");
    assert_eq!(e.last_turn().last_user_text.trim(), "-rf /");
    // A slash command that is not the bot's goes to the model as text, not run as a command.
    let r = e.say(&bot, 500, None, "/compact now");
    assert_replies_to(&r, "/compact now");
    assert_eq!(e.last_turn().last_user_text.trim(), "/compact now");

    let refused = e.tg.sent_to(501, None);
    assert_eq!(refused.len(), 1, "one refusal, then silence: {refused:#?}");
    assert!(refused[0].text.contains("does not talk to this chat (id 501)"), "{refused:?}");
    assert!(e.turns_with("stranger").is_empty(), "a stranger's message never reaches the model");
    assert_eq!(e.current("telegram:501"), None);
}

#[test]
fn a_restarted_bot_does_not_answer_old_messages_and_sigterm_stops_a_running_turn() {
    let e = Env::new();
    let mut bot = e.bot(&[("ALLOWED_CHATS", "600")]);
    assert_replies_to(&e.say(&bot, 600, None, "before restart"), "before restart");
    let session = e.current("telegram:600").unwrap();

    // SIGTERM while a turn runs: the turn is stopped, the chat told, the bot ends cleanly.
    let long = e.tg.push_message(600, None, "a long turn [hold=never]");
    assert!(e.home.api.wait_for(T, |r| r.iter().any(|r| r.last_user_text.contains("a long turn"))));
    let status = bot.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}; log:\n{}", bot.log());
    let sent = e.tg.sent_to(600, None);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[1].text.contains(STOPPING_TEXT) && sent[1].reply_to_message_id == Some(long), "{sent:?}");
    assert!(
        e.home.api.wait_for(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.last_user_text.contains("a long turn") && r.client_gone)),
        "claude was stopped"
    );
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    let offset = state["offset"].as_i64().unwrap();

    let bot = e.bot(&[("ALLOWED_CHATS", "600")]);
    let polls_before = e.tg.polls().len();
    let r = e.say(&bot, 600, None, "after restart");
    assert_replies_to(&r, "after restart");
    let sent = e.tg.sent_to(600, None);
    assert_eq!(sent.len(), 3, "old messages are not answered again: {sent:#?}");
    assert_eq!(e.turns_with("before restart").len(), 1);
    assert_eq!(e.turns_with("a long turn").len(), 1);
    let first_poll = &e.tg.polls()[polls_before];
    assert_eq!(first_poll.offset, Some(offset), "the new bot polls from the saved offset");
    // The stopped turn left the session free and the same.
    let req = e.last_turn();
    assert!(req.all_text.contains("before restart"));
    assert_eq!(e.current("telegram:600").as_deref(), Some(session.as_str()));

    // A crash (SIGKILL: no shutdown) does not lose the offset either.
    drop(bot);
    let bot = e.bot(&[("ALLOWED_CHATS", "600")]);
    assert_replies_to(&e.say(&bot, 600, None, "after the crash"), "after the crash");
    let sent = e.tg.sent_to(600, None);
    assert_eq!(sent.len(), 4, "{sent:#?}");
    assert_eq!(e.turns_with("after restart").len(), 1, "not answered again after the crash");
    assert!(e.last_turn().all_text.contains("after restart"));
}

#[test]
fn long_replies_are_split_to_telegram_size() {
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import telegram_bot as b
p = b.split_message("a" * 5000)
assert [len(x) for x in p] == [4096, 904], [len(x) for x in p]
text = "\n".join(f"line {i:05d}" for i in range(2000))
p = b.split_message(text)
assert all(b.utf16_len(x) <= 4096 for x in p) and len(p) == 6, [len(x) for x in p]
assert "\n".join(p) == text, "split at line breaks, nothing lost"
p = b.split_message("\U0001F600" * 3000)  # 2 UTF-16 units each
assert [b.utf16_len(x) for x in p] == [4096, 1904], [b.utf16_len(x) for x in p]
assert b.split_message("short") == ["short"]
print("ok")
"#;
    support::bot_venv::assert_script_ok(script);
}

/// The message of the bot's in `chat` with Allow / Deny buttons, once there is one more than
/// `before`; returns it with its two callback_data values.
fn wait_for_buttons(e: &Env, bot: &Bot, chat: i64, before: usize) -> (Sent, String, String) {
    let has_buttons = |s: &Sent| s.chat_id == chat && s.params["reply_markup"]["inline_keyboard"].is_array();
    let ok = e.tg.wait_for(T, |sent| sent.iter().filter(|s| has_buttons(s)).count() > before);
    assert!(ok, "no Allow / Deny message; bot log:\n{}", bot.log());
    let asked = e.tg.sent().into_iter().filter(has_buttons).nth(before).unwrap();
    let row = &asked.params["reply_markup"]["inline_keyboard"][0];
    let data = |i: usize| row[i]["callback_data"].as_str().unwrap().to_owned();
    assert_eq!(row[0]["text"], "✅ Allow");
    (asked.clone(), data(0), data(1))
}

fn message_id(sent: &Sent) -> i64 {
    100_000 + sent.seq as i64
}

/// Waits until the bot's message `id` reads `needle`.
fn wait_for_text(e: &Env, bot: &Bot, id: i64, needle: &str) {
    let ok = e.tg.wait_until(T, || e.tg.text_of(id).is_some_and(|t| t.contains(needle)));
    assert!(ok, "message {id} never read {needle:?}: {:?}; bot log:\n{}", e.tg.text_of(id), bot.log());
}

/// The bot's answer to the person's message `id` that is not the progress message.
fn wait_for_reply(e: &Env, bot: &Bot, chat: i64, id: i64, needle: &str) -> Sent {
    let is_reply =
        |s: &Sent| s.chat_id == chat && s.reply_to_message_id == Some(id) && s.text.contains(needle);
    assert!(
        e.tg.wait_for(T, |sent| sent.iter().any(is_reply)),
        "no reply with {needle:?}; log:\n{}",
        bot.log()
    );
    e.tg.sent().into_iter().find(is_reply).unwrap()
}

#[test]
fn a_turn_shows_its_tools_asks_before_writing_and_replies_in_its_own_message() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "700")]);
    let file = e.project.join("from-telegram.txt");
    let prompt =
        format!("make a file [bash=echo step one] [bash=tee {} < /dev/null] [hold-reply=R7]", file.display());
    let asked_id = e.tg.push_message(700, None, &prompt);

    // The progress message: sent at the first tool call, edited with the next one.
    let (asked, allow, deny) = wait_for_buttons(&e, &bot, 700, 0);
    assert!(asked.text.contains("Bash") && asked.text.contains("tee"), "{asked:?}");
    assert!(deny.starts_with("deny:"));
    let progress = e.tg.sent_to(700, None).into_iter().find(|s| s.text.starts_with("⏳ Working")).unwrap();
    assert_eq!(progress.reply_to_message_id, Some(asked_id));
    assert!(progress.text.contains("🔧 Bash: echo step one"), "{progress:?}");
    wait_for_text(&e, &bot, message_id(&progress), "tee");
    assert!(!file.exists(), "nothing is written before the button");

    e.tg.push_callback(700, message_id(&asked), &allow);
    assert!(e.tg.wait_until(T, || !e.tg.callback_answers().is_empty()), "{}", bot.log());
    assert_eq!(e.tg.callback_answers()[0]["text"], "✅ Allowed.");
    wait_for_text(&e, &bot, message_id(&asked), "✅ Allowed.");
    // The reply is held: the turn still runs, and nothing but progress was sent.
    assert!(e.tg.sent_to(700, None).iter().all(|s| !s.text.contains("stand-in reply")));

    e.api.release("R7");
    let reply = wait_for_reply(&e, &bot, 700, asked_id, "stand-in reply");
    assert!(reply.seq > progress.seq, "the reply is a message of its own, after the progress");
    assert!(file.exists(), "the allowed write ran");
    wait_for_text(&e, &bot, message_id(&progress), "✔️ Done.");
    // Telegram's limit is about one edit a second per chat: no two edits of the progress
    // message came closer than BOT_EDIT_INTERVAL (1.5 s) apart, but the last.
    let edits: Vec<_> = e.tg.edits().into_iter().filter(|x| x.message_id == message_id(&progress)).collect();
    for pair in edits[..edits.len() - 1].windows(2) {
        assert!(pair[1].at_ms - pair[0].at_ms >= 1400, "{edits:#?}");
    }

    // Deny: the tool does not run and the model is told.
    let denied = e.project.join("denied.txt");
    let id = e.tg.push_message(700, None, &format!("again [bash=tee {} < /dev/null]", denied.display()));
    let (asked, _, deny) = wait_for_buttons(&e, &bot, 700, 1);
    e.tg.push_callback(700, message_id(&asked), &deny);
    wait_for_reply(&e, &bot, 700, id, "stand-in reply");
    wait_for_text(&e, &bot, message_id(&asked), "❌ Denied.");
    assert!(!denied.exists());
    assert!(e.last_turn().all_text.contains("the user denied this tool call"));
    // A second press on an answered request: refused, said so.
    e.tg.push_callback(700, message_id(&asked), &deny);
    assert!(e.tg.wait_until(T, || e.tg.callback_answers().len() == 3), "{}", bot.log());
    assert!(
        e.tg.callback_answers()[2]["text"].as_str().unwrap().starts_with("⚠️"),
        "{:?}",
        e.tg.callback_answers()
    );
}

#[test]
fn an_unanswered_permission_request_times_out_as_denied() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "710"), ("BOT_ASK_TIMEOUT", "1")]);
    let file = e.project.join("late.txt");
    let id = e.tg.push_message(710, None, &format!("write [bash=tee {} < /dev/null]", file.display()));
    let (asked, _, _) = wait_for_buttons(&e, &bot, 710, 0);
    assert!(asked.text.contains("No answer in 1 s"), "{asked:?}");
    wait_for_reply(&e, &bot, 710, id, "stand-in reply");
    wait_for_text(&e, &bot, message_id(&asked), "⌛ Not answered: denied.");
    assert!(!file.exists());
}

#[test]
fn stop_ends_the_chats_turn_and_the_next_message_continues_it() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "720")]);
    let long = e.tg.push_message(720, None, "a long job [hold=L720]");
    e.api.wait_held("L720");
    let stop = e.tg.push_message(720, None, "/stop");
    let told = wait_for_reply(&e, &bot, 720, stop, "Stopped.");
    assert_eq!(told.text, "Stopped.");
    wait_for_reply(&e, &bot, 720, long, "⏹ Stopped before it was done.");
    let idle = e.tg.push_message(720, None, "/stop");
    wait_for_reply(&e, &bot, 720, idle, "Nothing is running");
    let next = e.say(&bot, 720, None, "after the stop");
    assert_replies_to(&next, "after the stop");
    assert!(e.last_turn().all_text.contains("a long job [hold=L720]"), "the stopped turn is in the session");
}

#[test]
fn a_photo_goes_to_claude_with_its_caption() {
    let e = Env::new();
    let bot = e.bot(&[("ALLOWED_CHATS", "730")]);
    let (small, large) = (png(1, 1), png(2, 2));
    let id = e.tg.push_photo(
        730,
        None,
        &[("small-id", 1, 1, small), ("large-id", 2, 2, large.clone())],
        Some("what is on it?"),
    );
    let reply = wait_for_reply(&e, &bot, 730, id, "stand-in reply");
    assert!(reply.text.contains("what is on it?"), "{reply:?}");
    let turn = e.last_turn();
    let messages = turn.body["messages"].as_array().unwrap();
    let mut blocks = messages.iter().flat_map(|m| m["content"].as_array().cloned().unwrap_or_default());
    let image = blocks.find(|b| b["type"] == "image").expect("an image block");
    use base64::Engine;
    assert_eq!(
        image["source"]["data"],
        base64::engine::general_purpose::STANDARD.encode(&large),
        "the largest size"
    );
    assert_eq!(image["source"]["media_type"], "image/png");
    assert!(e.tg.other_calls().iter().all(|c| !c.starts_with("getFile")), "getFile is served, not unknown");
}

/// A `clawsess` that writes each call's arguments to `calls` before running the real one:
/// a test can see that nothing called clawsess at all.
fn logged_clawsess(e: &Env) -> (PathBuf, PathBuf) {
    let calls = e.home.home().join("clawsess-calls.log");
    let wrapper = e.home.home().join("clawsess-logged");
    let real = e.home.bin_dir().join("clawsess");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n", calls.display(), real.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, calls)
}

/// The pairing code the bot logged at start (`/pair CODE`).
fn pairing_code(bot: &Bot) -> String {
    let deadline = Instant::now() + T;
    loop {
        let log = bot.log();
        if let Some(at) = log.find("/pair ") {
            let code: String = log[at + 6..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            if code.len() == 8 {
                return code;
            }
        }
        assert!(Instant::now() < deadline, "no pairing code in the log:\n{log}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the next message the bot sends to `chat` after `before` of them; returns it.
fn next_to(e: &Env, bot: &Bot, chat: i64, before: usize) -> Sent {
    let ok = e.tg.wait_for(T, |s| s.iter().filter(|m| m.chat_id == chat).count() > before);
    assert!(ok, "nothing sent to chat {chat}; bot log:\n{}", bot.log());
    e.tg.sent_to(chat, None).swap_remove(before)
}

#[test]
fn closed_by_default_a_stranger_gets_one_refusal_and_nothing_runs() {
    let e = Env::new();
    let (clawsess, calls) = logged_clawsess(&e);
    let clawsess = clawsess.to_str().unwrap().to_owned();
    // No ALLOWED_USERS and nobody paired: nobody is answered.
    let bot = e.bot(&[("ALLOWED_USERS", ""), ("CLAWSESS", &clawsess)]);
    let code = pairing_code(&bot);
    assert!(bot.log().contains("nobody may use this bot yet"), "{}", bot.log());

    e.tg.push_message_as(901, 901, None, "hello, run rm -rf ~", None);
    e.tg.push_message_as(901, 901, None, "/status", None);
    e.tg.push_message_as(901, 901, None, "/stop", None);
    // A group: a stranger who does not address the bot gets nothing, one who does, one refusal.
    e.tg.push_message_as(902, -300, None, "just chatting in the group", None);
    e.tg.push_message_as(902, -300, None, &format!("@{BOT_USERNAME} do something"), None);
    e.tg.push_message_as(902, -300, None, &format!("/attach@{BOT_USERNAME} trip"), None);
    // A wrong pairing code is refused; the right one in a group does not pair.
    e.tg.push_message_as(903, -300, None, &format!("/pair {code}"), None);
    e.tg.push_message_as(904, 904, None, "/pair WRONGCOD", None);
    let last = e.tg.push_message_as(905, 905, None, "the last stranger", None);
    // The bot handles updates concurrently (python-telegram-bot's concurrent_updates), so no
    // one answer orders the others: wait for each chat's own. A refusal marks its chat before
    // it is sent, so a second one for the same chat can never follow.
    for chat in [901, -300, 904] {
        assert!(
            e.tg.wait_for(T, |s| s.iter().any(|m| m.chat_id == chat)),
            "nothing to {chat}: {}",
            bot.log()
        );
    }
    assert!(e.tg.wait_for(T, |s| s.iter().any(|m| m.reply_to_message_id == Some(last))), "{}", bot.log());

    let to_901 = e.tg.sent_to(901, None);
    assert_eq!(to_901.len(), 1, "one refusal per chat: {to_901:#?}");
    assert!(to_901[0].text.contains("I only answer my owner (your user id is 901"), "{to_901:?}");
    let to_group = e.tg.sent_to(-300, None);
    assert_eq!(to_group.len(), 1, "one refusal in the group: {to_group:#?}");
    assert!(to_group[0].text.contains("your user id is 902"), "{to_group:?}");
    assert!(e.tg.sent_to(904, None)[0].text.contains("That code does not work"), "{:?}", e.tg.sent());
    // Nothing ran: no clawsess call, no request to the model, no session.
    assert!(!calls.exists(), "clawsess was called: {}", fs::read_to_string(&calls).unwrap_or_default());
    assert!(e.home.api.requests().is_empty(), "the model got a request: {:?}", e.home.api.requests());
    assert_eq!(e.clawsess_ok(&["list", "--json"]).trim(), "[]");
    assert!(!e.state.exists() || !fs::read_to_string(&e.state).unwrap().contains("\"owners\": [9"));
}

#[test]
fn pairing_makes_one_owner_once_whose_messages_stream_and_a_restart_keeps_it() {
    let e = Env::new();
    let mut bot = e.bot(&[("ALLOWED_USERS", "")]);
    let code = pairing_code(&bot);

    // The right code in a group does not pair (and does not use the code up).
    e.tg.push_message_as(USER_ID, -310, None, &format!("/pair {code}"), None);
    let r = next_to(&e, &bot, -310, 0);
    assert!(r.text.contains("only in a private chat"), "{r:?}");
    // In private it does: the user is the owner.
    let r = e.say(&bot, USER_ID, None, &format!("/pair {}", code.to_lowercase()));
    assert!(r.text.starts_with("Paired: you are my owner now."), "{r:?}");
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    assert_eq!(state["owners"], serde_json::json!([USER_ID]), "{state}");
    // The code worked once: nobody else becomes an owner with it.
    e.tg.push_message_as(906, 906, None, &format!("/pair {code}"), None);
    assert!(next_to(&e, &bot, 906, 0).text.contains("That code does not work"));
    e.tg.push_message_as(906, 906, None, "let me in", None);
    assert!(next_to(&e, &bot, 906, 1).text.contains("I only answer my owner"));
    assert!(e.turns_with("let me in").is_empty());

    // The owner's message streams: the progress message shows the tool as it runs, before the reply.
    let id = e.tg.push_message(USER_ID, None, "owner's turn [bash=echo streamed] [hold-reply=OWN]");
    let progress = e.tg.wait_for(T, |s| s.iter().any(|m| m.text.contains("🔧 Bash: echo streamed")));
    assert!(progress, "no progress while the turn runs; log:\n{}", bot.log());
    assert!(e.tg.sent_to(USER_ID, None).iter().all(|s| !s.text.contains("stand-in reply")));
    e.api.release("OWN");
    assert_replies_to(&wait_for_reply(&e, &bot, USER_ID, id, "stand-in reply"), "owner's turn");

    // A restart keeps the owner, and prints no new code.
    assert!(bot.terminate(Duration::from_secs(30)).success());
    let bot = e.bot(&[("ALLOWED_USERS", "")]);
    assert_replies_to(&e.say(&bot, USER_ID, None, "after the restart"), "after the restart");
    assert!(!bot.log().contains("/pair "), "an owner exists: no pairing code; log:\n{}", bot.log());
}

#[test]
fn in_a_group_only_allowed_users_addressing_the_bot_are_heard_and_only_they_press_buttons() {
    let e = Env::new();
    let bot = e.bot(&[]);
    let group = -320;
    // Not addressed to the bot: not heard, even from an allowed user.
    e.tg.push_message_as(USER_ID, group, None, "talking to the others", None);
    let asked_id = e.tg.push_message_as(
        USER_ID,
        group,
        None,
        &format!("@{BOT_USERNAME} write it [bash=tee {} < /dev/null]", e.project.join("g.txt").display()),
        None,
    );
    let (asked, allow, _) = wait_for_buttons(&e, &bot, group, 0);
    // A stranger in the group presses Allow: ignored, nothing decided.
    e.tg.push_callback_as(908, group, message_id(&asked), &allow);
    assert!(e.tg.wait_until(T, || !e.tg.callback_answers().is_empty()), "{}", bot.log());
    assert!(e.tg.callback_answers()[0]["text"].as_str().unwrap().contains("Only the bot's allowed users"));
    assert!(!e.project.join("g.txt").exists());
    assert!(e.tg.text_of(message_id(&asked)).is_some_and(|t| !t.contains("Allowed")));
    // The allowed user's press decides.
    e.tg.push_callback(group, message_id(&asked), &allow);
    wait_for_text(&e, &bot, message_id(&asked), "✅ Allowed.");
    let reply = wait_for_reply(&e, &bot, group, asked_id, "stand-in reply");
    assert!(e.project.join("g.txt").exists());
    assert!(e.turns_with("talking to the others").is_empty(), "an unaddressed message is not heard");
    assert!(
        e.last_turn().last_user_text.trim().starts_with("write it"),
        "the mention is not part of the prompt: {:?}",
        e.last_turn().last_user_text
    );
    // A reply to the bot's message is addressed to it.
    let r = e.tg.push_message_as(USER_ID, group, None, "and one more thing", Some(message_id(&reply)));
    assert_replies_to(&wait_for_reply(&e, &bot, group, r, "stand-in reply"), "and one more thing");
}

#[test]
fn help_prints_the_settings_without_a_token() {
    let out = Command::new(python())
        .arg(bot_script())
        .arg("--help")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for name in
        ["TELEGRAM_BOT_TOKEN", "ALLOWED_USERS", "ALLOWED_CHATS", "TELEGRAM_API_URL", "BOT_STATE", "CLAWSESS"]
    {
        assert!(text.contains(name), "--help names {name}: {text}");
    }
    assert!(!text.contains("is not set"), "{text}");
}

#[test]
fn a_restarted_bots_buttons_still_work() {
    let e = Env::new();
    let mut bot = e.bot(&[]);
    let file = e.project.join("after-restart.txt");
    let id = e.tg.push_message(USER_ID, None, &format!("write [bash=tee {} < /dev/null]", file.display()));
    let (asked, allow, _) = wait_for_buttons(&e, &bot, USER_ID, 0);
    // The bot crashes (SIGKILL: no shutdown) while the question is open; a new one starts.
    let mut child = bot.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let bot = e.bot(&[]);
    // The old message's Allow works with the new bot: the request id is in the button.
    e.tg.push_callback(USER_ID, message_id(&asked), &allow);
    assert!(e.tg.wait_until(T, || !e.tg.callback_answers().is_empty()), "{}", bot.log());
    assert_eq!(e.tg.callback_answers()[0]["text"], "✅ Allowed.", "{}", bot.log());
    wait_for_text(&e, &bot, message_id(&asked), "✅ Allowed.");
    let deadline = Instant::now() + T;
    while !file.exists() {
        assert!(Instant::now() < deadline, "the allowed write never ran; log:\n{}", bot.log());
        thread::sleep(Duration::from_millis(50));
    }
    let _ = id;
}

/// What a question's buttons mean is kept in the state file: a bot that crashed and
/// started again answers a press on one, and the model reads the choice.
#[test]
fn a_restarted_bot_still_knows_what_a_questions_buttons_mean() {
    let e = Env::new();
    let mut bot = e.bot(&[]);
    e.api.script_tools("[ask-restart]", vec![color_question(false)]);
    e.tg.push_message(USER_ID, None, "style it [ask-restart]");
    let (asked, buttons) = wait_for_button(&e, &bot, USER_ID, "Blue", 0);
    let blue = data_of(&buttons, "Blue");
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    assert_eq!(state["asks"].as_array().map(Vec::len), Some(1), "{state}");
    // The bot crashes (SIGKILL: no shutdown) while the question is open; a new one starts.
    let mut child = bot.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let bot = e.bot(&[]);
    e.tg.push_callback(USER_ID, message_id(&asked), &blue);
    assert!(e.tg.wait_until(T, || !e.tg.callback_answers().is_empty()), "{}", bot.log());
    assert_eq!(e.tg.callback_answers()[0]["text"], "✅ Answered: Blue", "{}", bot.log());
    wait_for_text(&e, &bot, message_id(&asked), "✅ Answered: Blue");
    // The model reads the choice in the question's tool result (worded differently by each
    // Claude Code version: 2.0.77 does not say "have been answered").
    // The run the killed bot started lives on and sends no reply to the chat: look at the
    // requests themselves.
    let answered = |reqs: &[Recorded]| {
        reqs.iter().any(|r| {
            r.body["messages"].as_array().into_iter().flatten().any(|m| {
                m["content"].as_array().into_iter().flatten().any(|b| {
                    let text = b["content"].to_string();
                    b["type"] == "tool_result"
                        && text.contains("Which color should the button be?")
                        && text.contains("Blue")
                })
            })
        })
    };
    assert!(e.api.wait_for(T, answered), "the model never read the choice; log:\n{}", bot.log());
    // Answered, it is no longer kept.
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    assert_eq!(state["asks"], serde_json::json!([]), "{state}");
}

#[test]
fn the_standard_library_bots_state_file_is_read_as_it_is() {
    let e = Env::new();
    // What the bot of clawsess v2 wrote: the offset and the keys after /new, no owners.
    fs::create_dir_all(e.state.parent().unwrap()).unwrap();
    fs::write(&e.state, r#"{"offset": 1000, "fresh": ["telegram:777"]}"#).unwrap();
    let bot = e.bot(&[]);
    let r = e.say(&bot, USER_ID, None, "/status");
    assert!(r.text.contains("After /new: your next message starts a new conversation."), "{r:?}");
    assert_eq!(e.tg.polls()[0].offset, Some(1000), "it polls from the saved offset");
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    assert_eq!(state["fresh"], serde_json::json!(["telegram:777"]), "{state}");
    assert!(state["offset"].as_i64().unwrap() > 1000, "{state}");
}

#[test]
fn model_command_status_settings_and_a_reset_said_in_the_chat() {
    let e = Env::new();
    let config = e.home.home().join("clawsess.toml");
    fs::write(&config, "[[reset]]\nkey = \"telegram:*\"\nmode = \"idle\"\nidle = \"30m\"\n").unwrap();
    let config = config.to_str().unwrap();
    let bot = e.bot(&[("ALLOWED_CHATS", "100"), ("CLAWSESS_CONFIG", config), ("BOT_WARM", "0")]);
    let r = e.say(&bot, 100, None, "/status");
    assert!(
        r.text.contains("no conversation yet") && r.text.contains("Model: Claude Code's default"),
        "{r:?}"
    );
    let r = e.say(&bot, 100, None, "/model");
    assert!(r.text.contains("uses Claude Code's default model"), "{r:?}");
    let r = e.say(&bot, 100, None, "/model --dangerously-skip-permissions");
    assert!(r.text.starts_with("⚠️") && r.text.contains("is not a model name"), "{r:?}");
    let r = e.say(&bot, 100, None, "/model claude-haiku-4-5");
    assert_eq!(r.text, "OK: the next turns in this chat use claude-haiku-4-5.");
    assert_replies_to(&e.say(&bot, 100, None, "hello sonnet"), "hello sonnet");
    assert_eq!(e.last_turn().model, "claude-haiku-4-5", "the chat's model reached the API");
    let old = e.current("telegram:100").unwrap();
    let r = e.say(&bot, 100, None, "/model");
    assert!(r.text.contains("This chat's model: claude-haiku-4-5 (set here with /model)"), "{r:?}");
    let r = e.say(&bot, 100, None, "/status");
    assert!(r.text.contains(&old) && r.text.contains("its own conversation"), "{r:?}");
    assert!(r.text.contains("Model: claude-haiku-4-5 (set here with /model)"), "{r:?}");
    assert!(r.text.contains("Next reset: ") && r.text.contains("(idle 30m)"), "{r:?}");
    assert!(r.text.contains("Last prompt: hello sonnet"), "the topic is still there: {r:?}");

    // Idle past the policy: the next message starts a new conversation, and the chat is told.
    e.home.idle_for_an_hour(&old);
    let r = e.say(&bot, 100, None, "after a long pause");
    assert!(
        r.text.contains(&format!("Started a new conversation (idle 30m); the old one is {}", &old[..8])),
        "{r:?}"
    );
    assert_replies_to(&r, "after a long pause");
    let turn = e.last_turn();
    assert!(!turn.all_text.contains("hello sonnet"), "a new session");
    assert_eq!(turn.model, "claude-haiku-4-5", "the chat's model survives the reset");
    assert_ne!(e.current("telegram:100").unwrap(), old);

    // `/model default` is Claude Code's default model, also for a conversation that goes on
    // (Claude Code 2.1 resumes one with the model it last used when given no --model).
    let r = e.say(&bot, 100, None, "/model default");
    assert_eq!(r.text, "OK: the next turns in this chat use Claude Code's default model.");
    assert_replies_to(&e.say(&bot, 100, None, "back to default"), "back to default");
    assert_ne!(e.last_turn().model, "claude-haiku-4-5", "the default model: {}", bot.log());
    let r = e.say(&bot, 100, None, "/model");
    assert!(r.text.contains("uses Claude Code's default model (set here with /model)"), "{r:?}");
    // `/model -`: the chat picks no model any more.
    let r = e.say(&bot, 100, None, "/model -");
    assert!(r.text.starts_with("OK: this chat no longer picks a model"), "{r:?}");
    assert!(e.clawsess_ok(&["get", "--key", "telegram:100"]).contains("No settings"));
}

/// The bot's first message in `chat` after its `after`th (`Sent::seq`) that offers a button
/// labelled `label`, once there is one; with its buttons (label, callback_data).
fn wait_for_button(
    e: &Env,
    bot: &Bot,
    chat: i64,
    label: &str,
    after: usize,
) -> (Sent, Vec<(String, String)>) {
    let buttons = |s: &Sent| -> Vec<(String, String)> {
        let rows = s.params["reply_markup"]["inline_keyboard"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .flat_map(|r| r.as_array().cloned().unwrap_or_default())
            .map(|b| {
                (
                    b["text"].as_str().unwrap_or("").to_owned(),
                    b["callback_data"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let offers = |s: &Sent| s.seq > after && s.chat_id == chat && buttons(s).iter().any(|(l, _)| l == label);
    assert!(e.tg.wait_for(T, |sent| sent.iter().any(offers)), "no button {label:?}; log:\n{}", bot.log());
    let sent = e.tg.sent().into_iter().find(offers).unwrap();
    let b = buttons(&sent);
    (sent, b)
}

fn data_of(buttons: &[(String, String)], label: &str) -> String {
    buttons
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no {label:?} in {buttons:?}"))
        .1
        .clone()
}

/// Claude's question (AskUserQuestion) shows its options as buttons: a stranger's press does
/// nothing, the allowed user's press answers it (the model reads the choice) and the message
/// loses its buttons; a reply in words answers the next one; a plan gets Approve / Keep
/// planning, and a reply in words sends it back with what to change.
#[test]
fn claudes_questions_and_plans_are_answered_from_the_chat_by_allowed_users_only() {
    let e = Env::new();
    let bot = e.bot(&[]);
    let group = -330;
    e.api.script_tools("[ask-color]", vec![color_question(false)]);
    let id =
        e.tg.push_message_as(USER_ID, group, None, &format!("@{BOT_USERNAME} style it [ask-color]"), None);
    let (asked, buttons) = wait_for_button(&e, &bot, group, "Blue", 0);
    assert_eq!(buttons.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["Red", "Blue", "Green"]);
    assert!(
        asked.text.contains("Color: Which color should the button be?")
            && asked.text.contains("• Blue: calm")
    );
    assert_eq!(asked.reply_to_message_id, Some(id));
    let blue = data_of(&buttons, "Blue");

    // A stranger in the group presses Blue: told off, nothing answered, the buttons stay.
    e.tg.push_callback_as(908, group, message_id(&asked), &blue);
    assert!(e.tg.wait_until(T, || !e.tg.callback_answers().is_empty()), "{}", bot.log());
    assert!(e.tg.callback_answers()[0]["text"].as_str().unwrap().contains("Only the bot's allowed users"));
    assert!(e.tg.edits().iter().all(|x| x.message_id != message_id(&asked)), "{:?}", e.tg.edits());
    assert_eq!(e.api.turn_requests().len(), 1, "the question still waits");

    // The allowed user's press answers it: the model reads Blue, the buttons go.
    e.tg.push_callback(group, message_id(&asked), &blue);
    wait_for_text(&e, &bot, message_id(&asked), "✅ Answered: Blue");
    let edit = e.tg.edits().into_iter().rfind(|x| x.message_id == message_id(&asked)).unwrap();
    assert!(edit.params.get("reply_markup").is_none_or(Value::is_null), "buttons removed: {edit:?}");
    wait_for_reply(&e, &bot, group, id, "stand-in reply");
    let results = last_tool_results(&e.api);
    assert!(results.contains("Which color should the button be?") && results.contains("Blue"), "{results}");
    assert_eq!(e.tg.callback_answers()[1]["text"], "✅ Answered: Blue");

    // In words: a reply to the question message is the answer.
    e.api.script_tools("[ask-words]", vec![color_question(false)]);
    let id = e.tg.push_message_as(USER_ID, group, None, &format!("@{BOT_USERNAME} again [ask-words]"), None);
    let (asked, _) = wait_for_button(&e, &bot, group, "Green", asked.seq);
    let words = e.tg.push_message_as(USER_ID, group, None, "a soft teal", Some(message_id(&asked)));
    wait_for_reply(&e, &bot, group, words, "✅ Answered: a soft teal");
    wait_for_text(&e, &bot, message_id(&asked), "✅ Answered: a soft teal");
    wait_for_reply(&e, &bot, group, id, "stand-in reply");
    assert!(last_tool_results(&e.api).contains("a soft teal"), "{}", last_tool_results(&e.api));
    assert!(e.turns_with("a soft teal").is_empty(), "the answer is no turn of its own");

    // A plan (plan mode): sent back in words, then one approved with its button.
    e.clawsess_ok(&["set", "--key", &format!("telegram:{group}"), "permission_mode=plan"]);
    let plan = ToolCall::new("ExitPlanMode", serde_json::json!({"plan": "1. Add the flag\n2. Test it"}));
    e.api.script_tools("[plan-back]", vec![plan.clone()]);
    let id =
        e.tg.push_message_as(USER_ID, group, None, &format!("@{BOT_USERNAME} plan it [plan-back]"), None);
    let (shown, buttons) = wait_for_button(&e, &bot, group, "✏️ Keep planning", 0);
    assert!(
        shown.text.starts_with("📋 Claude's plan:") && shown.text.contains("1. Add the flag"),
        "{shown:?}"
    );
    assert!(data_of(&buttons, "✅ Approve").starts_with("allow:"));
    let back = e.tg.push_message_as(USER_ID, group, None, "smaller steps please", Some(message_id(&shown)));
    wait_for_reply(&e, &bot, group, back, "✏️ Sent back: smaller steps please");
    wait_for_reply(&e, &bot, group, id, "stand-in reply");
    assert!(last_tool_results(&e.api).contains("smaller steps please"), "{}", last_tool_results(&e.api));

    e.api.script_tools("[plan-ok]", vec![plan]);
    let id = e.tg.push_message_as(USER_ID, group, None, &format!("@{BOT_USERNAME} plan it [plan-ok]"), None);
    let (shown, buttons) = wait_for_button(&e, &bot, group, "✅ Approve", shown.seq);
    let approve = data_of(&buttons, "✅ Approve");
    e.tg.push_callback(group, message_id(&shown), &approve);
    wait_for_text(&e, &bot, message_id(&shown), "✅ Approved");
    wait_for_reply(&e, &bot, group, id, "stand-in reply");
    assert!(last_tool_results(&e.api).contains("approved"), "{}", last_tool_results(&e.api));
}

/// A message that arrives while the chat's turn runs waits and is told its place; one that
/// starts with `!` goes into the running turn (the model reads it before the turn ends, and
/// the turn's one reply answers both); `/now` stops the turn and runs at once.
#[test]
fn a_message_mid_turn_waits_its_place_steers_with_a_bang_or_interrupts_with_now() {
    let e = Env::new();
    let bot = e.bot(&[]);
    let chat = USER_ID;
    let job = e.tg.push_message(chat, None, "job A [bash=echo one] [hold=S1]");
    e.api.wait_held("S1");
    let waits = e.tg.push_message(chat, None, "the queued one");
    let told = wait_for_reply(&e, &bot, chat, waits, "Queued");
    assert!(told.text.starts_with("⏳ Queued: #1 in line.") && told.text.contains("with !"), "{told:?}");
    // Steering needs the stream-json driver, which clawsess uses only where Claude Code takes
    // stream-json input as written (2.1.248 on); below, `run` is a plain `claude -p` turn.
    let steers = Facts::get().verbatim_prompts();
    let steer = steers.then(|| e.tg.push_message(chat, None, "!STEER-B also say banana"));
    if let Some(steer) = steer {
        // The bot says so once the turn took it: the barrier before the turn goes on.
        wait_for_reply(&e, &bot, chat, steer, "↪️ Sent into the turn in progress");
    }
    e.api.release("S1");
    wait_for_reply(&e, &bot, chat, job, "stand-in reply");
    let queued = wait_for_reply(&e, &bot, chat, waits, "stand-in reply");
    assert!(queued.text.contains("the queued one"), "{queued:?}");
    if let Some(steer) = steer {
        steered_into_the_turn(&e, steer);
    }
    now_stops_the_turn_and_runs_at_once(&e, &bot, chat);
}

/// The steer reached the model within job A's turn, was no turn of its own, and is answered
/// by the turn's one reply.
fn steered_into_the_turn(e: &Env, steer: i64) {
    let steered: Vec<Recorded> =
        e.turns_with("job A").into_iter().filter(|r| r.all_text.contains("STEER-B")).collect();
    assert!(!steered.is_empty(), "the model read the steer within job A's turn");
    assert!(
        steered[0]
            .all_text
            .contains("The user sent a new message while you were working:\nSTEER-B also say banana"),
        "{:?}",
        steered[0].all_text
    );
    assert!(e.turns_with("STEER-B").is_empty(), "the steer was no turn of its own");
    let (a, q) = (e.turns_with("job A").pop().unwrap(), e.turns_with("the queued one").pop().unwrap());
    assert!(q.started_ms >= a.finished_ms, "the queued message ran after the turn");
    assert!(q.all_text.contains("job A") && q.all_text.contains("STEER-B"), "and continued it");
    let to_steer: Vec<Sent> =
        e.tg.sent().into_iter().filter(|s| s.reply_to_message_id == Some(steer)).collect();
    assert_eq!(to_steer.len(), 1, "the steer's answer is the turn's reply: {to_steer:#?}");
}

fn now_stops_the_turn_and_runs_at_once(e: &Env, bot: &Bot, chat: i64) {
    // `/now` alone: how to use it; `/now TEXT` stops the turn and runs TEXT now.
    let bare = e.tg.push_message(chat, None, "/now");
    wait_for_reply(e, bot, chat, bare, "Usage: /now TEXT");
    let long = e.tg.push_message(chat, None, "a long job [hold=N1]");
    e.api.wait_held("N1");
    let now = e.tg.push_message(chat, None, "/now URGENT do this now");
    wait_for_reply(e, bot, chat, long, "⏹ Interrupted by a /now message");
    let r = wait_for_reply(e, bot, chat, now, "stand-in reply");
    assert!(r.text.contains("URGENT do this now"), "{r:?}");
    let urgent = e.turns_with("URGENT").pop().unwrap();
    assert_eq!(urgent.last_user_text.trim(), "URGENT do this now");
    assert!(urgent.all_text.contains("a long job"), "the same conversation goes on");
    assert!(
        e.api.wait_for(T, |r| r.iter().any(|r| r.last_user_text.contains("a long job") && r.client_gone)),
        "the long job's claude was stopped"
    );
}

/// The bots' shared reading of a chat message mid-turn and of a question's buttons
/// (examples/bot_common.py), without a platform: prefixes, a multi-select question's picks.
#[test]
fn prefixes_and_a_questions_picks_as_the_bots_read_them() {
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import bot_common as b
from clawsess_client import Event
m = b.MidTurn({})
assert m.split("!also this") == ("steer", "also this")
assert m.split("/now do it") == ("now", "do it")
assert m.split("/now@clawsess_test_bot do it", "clawsess_test_bot") == ("now", "do it")
assert m.split("/nowhere") == ("queue", "/nowhere"), "a prefix is a word"
assert m.split("hi !") == ("queue", "hi !")
m = b.MidTurn({"BOT_STEER_PREFIX": "", "BOT_NOW_PREFIX": "!!"})
assert m.split("!x") == ("queue", "!x") and m.split("!! x") == ("now", "x")
try:
    b.MidTurn({"BOT_STEER_PREFIX": "!", "BOT_NOW_PREFIX": "!"}); raise AssertionError("same prefixes")
except SystemExit:
    pass
q = {"question": "Which?", "options": [{"label": "A"}, {"label": "B"}], "multi": True}
p = {"question": "Size?", "options": [{"label": "S"}, {"label": "L"}], "multi": False}
a = b.Asked(Event("question", {"type": "question", "request_id": "r1", "questions": [q, p]}), "k", 1)
assert a.buttons()[-1] == [("📨 Send", "q:r1:send")], a.buttons()
assert a.pick(0, 0) is False and a.pick(0, 1) is False and a.pick(1, 1) is False
assert a.choices() == ["A", "B", "L"], a.choices()
assert a.pick(0, 0) is False and a.choices() == ["B", "L"], "a second tap unpicks"
assert a.buttons()[0][1][0] == "✅ 1: B" and a.buttons()[1][1][0] == "✅ 2: L", a.buttons()
assert b.button_data("q:r1:0:1") == ("q", "r1", (0, 1)) and b.button_data("q:r1:send") == ("q", "r1", "send")
assert b.button_data("allow:r1") == ("allow", "r1", None) and b.button_data("nonsense") is None
print("ok")
"#;
    support::bot_venv::assert_script_ok(script);
}

/// A chat's line (examples/bot_common.py, both bots): a message leaves it when its Claude turn
/// is over, before its reply goes out, so a message that comes once the reply is seen is not
/// told "Queued" (a stand-in Turn; the reply is where the next message is taken in).
#[test]
fn a_message_leaves_the_chats_line_before_its_reply_is_sent() {
    let script = r#"
import asyncio, sys, types
sys.path.insert(0, sys.argv[1])
import bot_common as b
from clawsess_client import Result

class Turn:
    result = None
    async def __aenter__(self):
        return self
    async def __aexit__(self, *exc):
        self.result = Result.of({"result": "the answer", "session_id": "s"})
        return False
    def __aiter__(self):
        return self
    async def __anext__(self):
        raise StopAsyncIteration

line, seen = b.Line(), []

async def reply(message, text):
    later = line.join("k")  # a message that comes while the reply is on its way
    seen.append((text, later.ahead))
    later.leave()

bot = types.SimpleNamespace(
    cs=types.SimpleNamespace(stream=lambda *a, **kw: Turn()),
    cfg=types.SimpleNamespace(ask=False, ask_timeout=60, cwd=None, wait=0, warm=None, run_args=[]),
    running={}, side=set(), interrupted={}, asks={}, stopping=False, mid=b.MidTurn({}), reply=reply)

async def main():
    first, second = line.join("k"), line.join("k")
    assert (first.ahead, second.ahead) == (0, 1)
    progress = b.Progress(None, None, 1, 4096)
    assert await b.chat_turn(bot, "k", None, "hi", progress, place=first) is True
    assert seen == [("the answer", 1)], f"only the second is before it: {seen}"
    first.leave()  # the caller leaves again: nothing happens
    assert line.counts == {"k": 1}, line.counts
    second.leave()
    assert not line.counts, line.counts

asyncio.run(main())
print("ok")
"#;
    support::bot_venv::assert_script_ok(script);
}
