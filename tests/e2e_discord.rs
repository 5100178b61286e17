//! The reference Discord bot (examples/discord_bot.py, on discord.py) end to end: the bot
//! against a stand-in Discord (gateway websocket and REST, tests/support/stand_in_discord.rs),
//! clawsess installed into a throw-away HOME, and the real Claude Code CLI against the
//! stand-in Messages API. Everything listens on 127.0.0.1 only.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bot_venv::Bot;
use support::installed::Installed;
use support::real_claude::Cooling;
use support::stand_in_api::{ToolCall, color_question, last_tool_results};
use support::stand_in_discord::{BOT_ID, CHANNEL_ID, GUILD_ID, Say, Sent, StandInDiscord};

const TOKEN: &str = "discord-TEST-token";
const T: Duration = Duration::from_secs(180);
const OWNER: u64 = 777;
const OTHER: u64 = 778;
const STRANGER: u64 = 901;

/// A HOME with Claude Code and clawsess installed into it, a project the bot starts its
/// sessions in (its warm claudes end with the test), and a stand-in Discord.
struct Env {
    home: Cooling<Installed>,
    dc: StandInDiscord,
    state: PathBuf,
}

impl Env {
    fn new() -> Self {
        let home = Cooling(Installed::new("bot"));
        let state = home.home().join("bot-state").join("discord.json");
        Self { home, dc: StandInDiscord::start(TOKEN), state }
    }

    /// Starts the bot (ALLOWED_USERS: `users`, "" for none) and waits until it is ready.
    fn bot(&self, users: &str) -> Bot {
        self.bot_with(users, &[])
    }

    /// [`Env::bot`] with more environment variables.
    fn bot_with(&self, users: &str, extra: &[(&str, &str)]) -> Bot {
        let log = self.home.home().join(format!("discord-bot-{}.log", std::process::id()));
        let _ = fs::remove_file(&log);
        let mut cmd = Bot::command(&self.home, "discord_bot.py", &self.home.project, &self.state);
        cmd.env("DISCORD_BOT_TOKEN", TOKEN)
            .env("DISCORD_API_URL", self.dc.api_url())
            .env("DISCORD_GATEWAY_URL", self.dc.gateway_url());
        if users.is_empty() {
            cmd.env_remove("ALLOWED_USERS");
        } else {
            cmd.env("ALLOWED_USERS", users);
        }
        cmd.envs(extra.iter().copied());
        let mut bot = Bot::start(cmd, log);
        let deadline = Instant::now() + T;
        while !bot.log().contains("connected as") {
            let ended = bot.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                ended.is_none() && Instant::now() < deadline,
                "the bot never got ready ({ended:?}); log:\n{}",
                bot.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        bot
    }

    /// The bot's reply (a message of its own) to message `id`, containing `needle`.
    fn reply_to(&self, bot: &Bot, id: u64, needle: &str) -> Sent {
        let find = |dc: &StandInDiscord| {
            dc.sent().into_iter().find(|s| s.reply_to == Some(id) && s.content.contains(needle))
        };
        assert!(
            self.dc.wait_until(T, |dc| find(dc).is_some()),
            "no reply to {id} with {needle:?}; sent: {:#?}\nlog:\n{}",
            self.dc.sent(),
            bot.log()
        );
        find(&self.dc).unwrap()
    }

    fn turns_with(&self, needle: &str) -> Vec<support::stand_in_api::Recorded> {
        self.home.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(needle)).collect()
    }
}

/// A message that mentions the bot.
fn mention() -> Say {
    Say { mention: true, ..Say::default() }
}

fn pairing_code(bot: &Bot) -> String {
    let log = bot.log();
    let at = log.find("/pair ").unwrap_or_else(|| panic!("no pairing code in the log:\n{log}"));
    log[at + 6..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
}

#[test]
fn the_stand_ins_websocket_accept_key_is_rfc_6455s() {
    use base64::Engine;
    let got =
        support::stand_in_discord::sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    assert_eq!(base64::engine::general_purpose::STANDARD.encode(got), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn closed_by_default_strangers_get_one_refusal_pairing_makes_the_owner() {
    let e = Env::new();
    let bot = e.bot("");
    let commands: Vec<String> =
        e.dc.commands().as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    for name in ["attach", "detach", "new", "sessions", "status", "model", "stop"] {
        assert!(commands.contains(&name.to_owned()), "slash command /{name} registered: {commands:?}");
    }
    let code = pairing_code(&bot);

    // Strangers: one refusal per channel, nothing runs.
    e.dc.message(STRANGER, CHANNEL_ID, "run something", mention());
    e.dc.message(STRANGER, CHANNEL_ID, "run something else", mention());
    e.dc.message(STRANGER, CHANNEL_ID, "not to the bot", Say::default());
    let stop = e.dc.slash(STRANGER, CHANNEL_ID, "stop", &[]);
    // In the guild's channel the code does not pair.
    e.dc.message(OWNER, CHANNEL_ID, &format!("/pair {code}"), Say::default());
    let dm = 6001;
    let paired = e.dc.message(OWNER, dm, &format!("/pair {code}"), Say { dm: true, ..Say::default() });
    e.reply_to(&bot, paired, "Paired: you are my owner now.");
    // discord.py handles events concurrently: wait for the refusal (the count is checked
    // below, after a later turn).
    assert!(e.dc.wait_until(T, |dc| !dc.sent_in(CHANNEL_ID).is_empty()), "no refusal; log:\n{}", bot.log());
    let refusal = e.dc.sent_in(CHANNEL_ID).remove(0);
    assert!(refusal.content.contains("your user id is 901"), "{refusal:?}");
    assert!(e.dc.wait_until(T, |dc| dc.replies().iter().any(|r| r.interaction_id == stop)));
    let r = e.dc.replies().into_iter().find(|r| r.interaction_id == stop).unwrap();
    assert!(r.ephemeral && r.content.contains("I only answer my owner"), "{r:?}");
    assert!(e.home.api.requests().is_empty(), "nothing reached the model");
    let state: Value = serde_json::from_str(&fs::read_to_string(&e.state).unwrap()).unwrap();
    assert_eq!(state["owners"], serde_json::json!([OWNER]));

    // The owner is answered in the channel when mentioning the bot; the code is used up.
    let id = e.dc.message(OWNER, CHANNEL_ID, "hello from the owner", mention());
    let r = e.reply_to(&bot, id, "stand-in reply");
    assert!(r.content.contains("hello from the owner"), "{r:?}");
    let in_channel: Vec<Sent> =
        e.dc.sent_in(CHANNEL_ID).into_iter().filter(|s| s.reply_to != Some(id)).collect();
    assert_eq!(
        in_channel.len(),
        1,
        "one refusal per channel, no answer to the unpaired code: {in_channel:#?}"
    );
    assert!(
        e.home.current(&format!("discord:{GUILD_ID}:{CHANNEL_ID}")).is_some(),
        "the channel has a session"
    );
    let again = e.dc.message(STRANGER, 6002, &format!("/pair {code}"), Say { dm: true, ..Say::default() });
    e.reply_to(&bot, again, "That code does not work");
}

#[test]
fn threads_run_in_parallel_archive_cools_and_delete_forgets() {
    let e = Env::new();
    let bot = e.bot(&format!("{OWNER},{OTHER}"));
    let (a, b) = (e.dc.thread(), e.dc.thread());
    let key = |t: u64| format!("discord:{GUILD_ID}:{CHANNEL_ID}:{t}");
    let ia = e.dc.message(OWNER, a, "thread a [hold=threads]", mention());
    let ib = e.dc.message(OWNER, b, "thread b [hold=threads]", mention());
    // Both held at once: the two threads' turns run in parallel.
    assert!(
        e.home
            .api
            .wait_for(T, |r| r.iter().filter(|r| r.last_user_text.contains("[hold=threads]")).count() == 2),
        "log:\n{}",
        bot.log()
    );
    e.home.api.release("threads");
    e.reply_to(&bot, ia, "thread a");
    e.reply_to(&bot, ib, "thread b");
    let (sa, sb) = (e.home.current(&key(a)).unwrap(), e.home.current(&key(b)).unwrap());
    assert_ne!(sa, sb, "each thread its own session");

    // One thread's messages in order.
    let one = e.dc.message(OWNER, a, "first in a [hold=order]", mention());
    let two = e.dc.message(OWNER, a, "second in a", mention());
    e.home.api.wait_held("order");
    e.home.api.release("order");
    e.reply_to(&bot, one, "first in a");
    e.reply_to(&bot, two, "second in a");
    let (x, y) = (&e.turns_with("first in a")[0], &e.turns_with("second in a")[0]);
    assert!(y.started_ms >= x.finished_ms && y.all_text.contains("first in a"));

    // Archived: the thread's warm claude ends; the session stays the thread's.
    let warm = |id: &str| {
        let list: Value = serde_json::from_str(&e.home.clawsess_ok(&["list", "--json"])).unwrap();
        list.as_array().unwrap().iter().any(|s| s["session_id"] == id && s["warm"] == true)
    };
    assert!(warm(&sa), "the bot's turns are warm");
    e.dc.archive(a);
    let deadline = Instant::now() + T;
    while warm(&sa) {
        assert!(Instant::now() < deadline, "archiving did not cool {sa}; log:\n{}", bot.log());
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(e.home.current(&key(a)).as_deref(), Some(sa.as_str()));
    assert!(warm(&sb), "the other thread stays warm");

    // Deleted: the key is forgotten.
    e.dc.delete(b);
    let deadline = Instant::now() + T;
    while e.home.current(&key(b)).is_some() {
        assert!(Instant::now() < deadline, "deleting did not forget {}; log:\n{}", key(b), bot.log());
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn buttons_only_from_the_asker_or_an_owner_stop_and_an_image() {
    let e = Env::new();
    let bot = e.bot(&format!("{OWNER},{OTHER}"));
    let file = e.home.project.join("from-discord.txt");
    let id = e.dc.message(
        OWNER,
        CHANNEL_ID,
        &format!("write [bash=tee {} < /dev/null]", file.display()),
        mention(),
    );
    let has_buttons = |s: &Sent| s.components.to_string().contains("clawsess:allow:");
    assert!(e.dc.wait_until(T, |dc| dc.sent().iter().any(has_buttons)), "log:\n{}", bot.log());
    let asked = e.dc.sent().into_iter().find(has_buttons).unwrap();
    let allow = format!("clawsess:allow:{OWNER}:");
    let custom_id = asked.components.to_string();
    let at = custom_id.find(&allow).unwrap();
    let custom_id: String = custom_id[at..].chars().take_while(|c| *c != '"').collect();
    // Another allowed user (not the asker, not an owner) presses Allow: refused.
    let press = e.dc.press(OTHER, asked.id, &custom_id);
    assert!(e.dc.wait_until(T, |dc| dc.replies().iter().any(|r| r.interaction_id == press)), "{}", bot.log());
    let r = e.dc.replies().into_iter().find(|r| r.interaction_id == press).unwrap();
    assert!(r.ephemeral && r.content.contains("Only the user who asked"), "{r:?}");
    assert!(!file.exists());
    // The asker's press decides.
    e.dc.press(OWNER, asked.id, &custom_id);
    e.reply_to(&bot, id, "stand-in reply");
    assert!(file.exists(), "the allowed write ran");
    assert!(e.dc.message_now(asked.id).unwrap().content.contains("✅ Allowed."));
    // The progress: one message, sent at the first tool call and edited to its end.
    let progress: Vec<Sent> =
        e.dc.sent().into_iter().filter(|s| s.reply_to == Some(id) && s.id != asked.id).collect();
    let working = progress.iter().find(|s| s.content.contains("🔧 Bash: tee")).expect("a progress message");
    assert!(
        e.dc.wait_until(T, |dc| dc
            .message_now(working.id)
            .is_some_and(|m| m.content.starts_with("✔️ Done."))),
        "{:?}",
        e.dc.message_now(working.id)
    );
    assert!(e.dc.edits().iter().any(|(m, _, _)| *m == working.id), "edited, not sent again");

    // /stop mid-turn.
    let long = e.dc.message(OWNER, CHANNEL_ID, "a long job [hold=L]", mention());
    e.home.api.wait_held("L");
    let stop = e.dc.slash(OWNER, CHANNEL_ID, "stop", &[]);
    assert!(e.dc.wait_until(T, |dc| {
        dc.replies().iter().any(|r| r.interaction_id == stop && r.content == "Stopped.")
    }));
    e.reply_to(&bot, long, "⏹ Stopped before it was done.");

    // An image attachment goes to the model.
    let png = support::stand_in_telegram::png(2, 2);
    let img = e.dc.message(
        OWNER,
        CHANNEL_ID,
        "what is this?",
        Say { mention: true, attachments: vec![("red.png".into(), png.clone())], ..Say::default() },
    );
    e.reply_to(&bot, img, "what is this?");
    let turn = e.home.api.turn_requests().pop().unwrap();
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(&png);
    assert!(turn.body.to_string().contains(&data), "the image reached the model");

    // /status as a slash command.
    let status = e.dc.slash(OWNER, CHANNEL_ID, "status", &[]);
    assert!(
        e.dc.wait_until(T, |dc| dc
            .replies()
            .iter()
            .any(|r| r.interaction_id == status && r.content.contains("talks to session"))),
        "{:#?}",
        e.dc.replies()
    );
    let _ = BOT_ID;
}

#[test]
fn slash_commands_attach_sessions_detach_and_new() {
    let e = Env::new();
    let terminal_dir = e.home.project("terminal");
    let t = e.home.run_p_json(&terminal_dir, &[], "remember the word PAPAYA");
    let trip = t["session_id"].as_str().unwrap().to_owned();
    e.home.clawsess_ok(&["name", &trip, "trip"]);
    let bot = e.bot(&OWNER.to_string());
    let key = format!("discord:{GUILD_ID}:{CHANNEL_ID}");
    let answer = |id: u64| -> String {
        let find = |dc: &StandInDiscord| {
            dc.replies()
                .into_iter()
                .find(|r| r.interaction_id == id && !r.content.is_empty())
                .map(|r| r.content)
        };
        assert!(e.dc.wait_until(T, |dc| find(dc).is_some()), "no answer to {id}; log:\n{}", bot.log());
        find(&e.dc).unwrap()
    };

    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "attach", &[("name", "--key")]));
    assert!(r.starts_with("Usage: /attach"), "{r}");
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "attach", &[("name", "trip")]));
    assert!(r.contains(&format!("Attached {key} to session {trip} (trip)")), "{r}");
    assert!(r.contains("Last prompt: remember the word PAPAYA"), "{r}");
    let id = e.dc.message(OWNER, CHANNEL_ID, "what was the word?", mention());
    e.reply_to(&bot, id, "stand-in reply");
    assert!(e.home.api.turn_requests().pop().unwrap().all_text.contains("PAPAYA"), "continues trip");

    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "sessions", &[]));
    assert!(r.starts_with("```") && r.contains("trip"), "{r}");
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "detach", &[]));
    assert!(r.contains(&format!("Detached {key}")), "{r}");
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "new", &[]));
    assert!(r.contains("next message starts a new conversation"), "{r}");
    let id = e.dc.message(OWNER, CHANNEL_ID, "a fresh start", mention());
    e.reply_to(&bot, id, "stand-in reply");
    let own = e.home.current(&key).unwrap();
    assert_ne!(own, trip);
    assert!(!e.home.api.turn_requests().pop().unwrap().all_text.contains("PAPAYA"), "a new conversation");
}

#[test]
fn long_replies_are_split_at_2000_characters_without_breaking_code_blocks() {
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import discord_bot as b
code = "\n".join(f"x = {i}  # " + "y" * 30 for i in range(200))
text = "intro\n```python\n" + code + "\n```\nafter"
p = b.split_message(text)
assert len(p) > 2 and all(len(x) <= 2000 for x in p), [len(x) for x in p]
for x in p[1:-1]:
    assert x.startswith("```python\n") and x.endswith("\n```"), (x[:20], x[-20:])
assert p[0].startswith("intro\n```python\n") and p[0].endswith("\n```")
assert p[-1].endswith("```\nafter")
body = "".join(x.removeprefix("```python\n").removesuffix("\n```") + "\n" for x in p[1:-1])
assert all(line in text for line in body.splitlines()), "nothing lost or changed"
assert b.split_message("short") == ["short"]
assert all(len(x) <= 2000 for x in b.split_message("a" * 4500))
print("ok")
"#;
    support::bot_venv::assert_script_ok(script);
}

#[test]
fn sigterm_mid_turn_stops_it_says_so_and_a_new_bot_goes_on() {
    let e = Env::new();
    let mut bot = e.bot(&OWNER.to_string());
    let before = e.dc.message(OWNER, CHANNEL_ID, "before the restart", mention());
    e.reply_to(&bot, before, "stand-in reply");
    let long = e.dc.message(OWNER, CHANNEL_ID, "a long turn [hold=never]", mention());
    e.home.api.wait_held("never");
    let mut child = bot.child.take().unwrap();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the bot did not stop; log:\n{}", bot.log());
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}; log:\n{}", bot.log());
    e.reply_to(&bot, long, "the bot is shutting down");
    assert!(
        e.home
            .api
            .wait_for(T, |r| r.iter().any(|r| r.last_user_text.contains("a long turn") && r.client_gone)),
        "claude was stopped"
    );
    let bot = e.bot(&OWNER.to_string());
    let after = e.dc.message(OWNER, CHANNEL_ID, "after the restart", mention());
    e.reply_to(&bot, after, "stand-in reply");
    let last = e.home.api.turn_requests().pop().unwrap();
    assert!(last.all_text.contains("before the restart"), "the same conversation goes on");
}

/// `/model NAME` sets the channel key's model (the stand-in API is asked with it), `/status`
/// shows it and the next reset, and a turn past the reset policy says so in the channel.
#[test]
fn model_and_status_slash_commands_and_a_reset_said_in_the_channel() {
    let e = Env::new();
    let config = e.home.home().join("clawsess.toml");
    fs::write(&config, "[[reset]]\nkey = \"discord:*\"\nmode = \"idle\"\nidle = \"72h\"\n").unwrap();
    let bot =
        e.bot_with(&OWNER.to_string(), &[("CLAWSESS_CONFIG", config.to_str().unwrap()), ("BOT_WARM", "0")]);
    let key = format!("discord:{GUILD_ID}:{CHANNEL_ID}");
    let answer = |id: u64| -> String {
        let find = |dc: &StandInDiscord| {
            dc.replies()
                .into_iter()
                .find(|r| r.interaction_id == id && !r.content.is_empty())
                .map(|r| r.content)
        };
        assert!(e.dc.wait_until(T, |dc| find(dc).is_some()), "no answer to {id}; log:\n{}", bot.log());
        find(&e.dc).unwrap()
    };
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "model", &[("name", "claude-haiku-4-5")]));
    assert_eq!(r, "OK: the next turns in this channel use claude-haiku-4-5.");
    let id = e.dc.message(OWNER, CHANNEL_ID, "hello haiku", mention());
    e.reply_to(&bot, id, "stand-in reply");
    assert_eq!(e.home.api.turn_requests().pop().unwrap().model, "claude-haiku-4-5");
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "model", &[]));
    assert!(r.contains("This channel's model: claude-haiku-4-5 (set here with /model)"), "{r}");
    let old = e.home.current(&key).unwrap();
    let r = answer(e.dc.slash(OWNER, CHANNEL_ID, "status", &[]));
    assert!(r.contains(&old) && r.contains("Model: claude-haiku-4-5 (set here with /model)"), "{r}");
    assert!(r.contains("Next reset: ") && r.contains("(idle 72h)"), "{r}");

    // The session's last activity 73 hours back: the next message starts a new conversation.
    let path = e.home.state().join("sessions").join(format!("{old}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    rec["last_seen"] = (rec["last_seen"].as_u64().unwrap() - 73 * 3_600_000).into();
    fs::write(&path, rec.to_string()).unwrap();
    // Its live file, which may hold a newer `last_seen`, goes too (docs/STATE.md).
    let _ = fs::remove_file(
        path.parent().unwrap().parent().unwrap().join("live").join(path.file_name().unwrap()),
    );
    let id = e.dc.message(OWNER, CHANNEL_ID, "after three days", mention());
    let r = e.reply_to(&bot, id, "stand-in reply");
    let said = format!("Started a new conversation (idle 72h); the old one is {}", &old[..8]);
    assert!(r.content.contains(&said), "{r:?}");
    let turn = e.home.api.turn_requests().pop().unwrap();
    assert!(!turn.all_text.contains("hello haiku") && turn.model == "claude-haiku-4-5", "{turn:?}");
    assert_ne!(e.home.current(&key).unwrap(), old);
}

/// A message's buttons: (label, custom_id).
fn buttons(s: &Sent) -> Vec<(String, String)> {
    let rows = s.components.as_array().cloned().unwrap_or_default();
    rows.iter()
        .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (b["label"].as_str().unwrap_or("").to_owned(), b["custom_id"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// The bot's first message after message `after` that offers a button labelled `label`.
fn wait_for_button(e: &Env, bot: &Bot, label: &str, after: u64) -> (Sent, String) {
    let offers = |s: &Sent| s.id > after && buttons(s).iter().any(|(l, _)| l == label);
    assert!(
        e.dc.wait_until(T, |dc| dc.sent().iter().any(offers)),
        "no button {label:?}; log:\n{}",
        bot.log()
    );
    let sent = e.dc.sent().into_iter().find(offers).unwrap();
    let id = buttons(&sent).into_iter().find(|(l, _)| l == label).unwrap().1;
    (sent, id)
}

/// The ephemeral answer to the interaction `id`.
fn interaction_reply(e: &Env, bot: &Bot, id: u64) -> support::stand_in_discord::InteractionReply {
    assert!(e.dc.wait_until(T, |dc| dc.replies().iter().any(|r| r.interaction_id == id)), "{}", bot.log());
    e.dc.replies().into_iter().find(|r| r.interaction_id == id).unwrap()
}

/// Claude's question shows its options as buttons: a stranger's press does nothing, the
/// asker's answers it (the model reads the choice; the buttons go); a message in words
/// answers the next; a plan is approved with its button.
#[test]
fn claudes_questions_and_plans_are_answered_with_buttons_by_the_asker_only() {
    let e = Env::new();
    let bot = e.bot(&format!("{OWNER},{OTHER}"));
    e.home.api.script_tools("[ask-color]", vec![color_question(false)]);
    let id = e.dc.message(OTHER, CHANNEL_ID, "style it [ask-color]", mention());
    let (asked, blue) = wait_for_button(&e, &bot, "Blue", 0);
    assert_eq!(asked.reply_to, Some(id));
    assert!(asked.content.contains("Color: Which color should the button be?"), "{asked:?}");
    let labels: Vec<String> = buttons(&asked).into_iter().map(|(l, _)| l).collect();
    assert_eq!(labels, ["Red", "Blue", "Green"]);
    // A stranger presses Blue: told off, nothing answered, the buttons stay.
    let press = e.dc.press(STRANGER, asked.id, &blue);
    let r = interaction_reply(&e, &bot, press);
    assert!(r.ephemeral && r.content.contains("Only the user who asked"), "{r:?}");
    assert!(e.dc.edits().iter().all(|(m, _, _)| *m != asked.id), "nothing changed: {:?}", e.dc.edits());
    assert_eq!(e.home.api.turn_requests().len(), 1, "the question still waits");
    // The asker's press answers it.
    let press = e.dc.press(OTHER, asked.id, &blue);
    let r = interaction_reply(&e, &bot, press);
    assert_eq!(r.kind, 7, "the message is updated: {r:?}");
    e.reply_to(&bot, id, "stand-in reply");
    let now = e.dc.message_now(asked.id).unwrap();
    assert!(now.content.contains("✅ Answered: Blue") && buttons(&now).is_empty(), "{now:?}");
    assert!(last_tool_results(&e.home.api).contains("Blue"), "{}", last_tool_results(&e.home.api));

    // In words: the asker's next message answers the open question.
    e.home.api.script_tools("[ask-words]", vec![color_question(false)]);
    let id = e.dc.message(OWNER, CHANNEL_ID, "again [ask-words]", mention());
    let (asked, _) = wait_for_button(&e, &bot, "Green", asked.id);
    let words = e.dc.message(OWNER, CHANNEL_ID, "a soft teal", mention());
    e.reply_to(&bot, words, "✅ Answered: a soft teal");
    e.reply_to(&bot, id, "stand-in reply");
    assert!(last_tool_results(&e.home.api).contains("a soft teal"), "{}", last_tool_results(&e.home.api));
    assert!(e.dc.message_now(asked.id).unwrap().content.contains("✅ Answered: a soft teal"));

    // A plan, in a thread in plan mode: Approve.
    let thread = e.dc.thread();
    e.home.clawsess_ok(&[
        "set",
        "--key",
        &format!("discord:{GUILD_ID}:{CHANNEL_ID}:{thread}"),
        "permission_mode=plan",
    ]);
    let plan = ToolCall::new("ExitPlanMode", serde_json::json!({"plan": "1. Add the flag\n2. Test it"}));
    e.home.api.script_tools("[plan-ok]", vec![plan]);
    let id = e.dc.message(OWNER, thread, "plan it [plan-ok]", mention());
    let (shown, approve) = wait_for_button(&e, &bot, "✅ Approve", asked.id);
    assert!(shown.content.starts_with("📋 Claude's plan:") && shown.content.contains("1. Add the flag"));
    assert!(buttons(&shown).iter().any(|(l, _)| l == "✏️ Keep planning"));
    e.dc.press(OWNER, shown.id, &approve);
    e.reply_to(&bot, id, "stand-in reply");
    assert!(e.dc.message_now(shown.id).unwrap().content.contains("✅ Approved"));
    assert!(last_tool_results(&e.home.api).contains("approved"), "{}", last_tool_results(&e.home.api));
}

/// With BOT_STEER_PREFIX and BOT_NOW_PREFIX set: a message mid-turn waits and is told its
/// place, the steer prefix puts one into the running turn, the now prefix interrupts it.
#[test]
fn a_message_mid_turn_waits_steers_or_interrupts_with_the_configured_prefixes() {
    let e = Env::new();
    let bot = e.bot_with(&OWNER.to_string(), &[("BOT_STEER_PREFIX", "~"), ("BOT_NOW_PREFIX", "!!")]);
    let job = e.dc.message(OWNER, CHANNEL_ID, "job A [bash=echo one] [hold=S1]", mention());
    e.home.api.wait_held("S1");
    let waits = e.dc.message(OWNER, CHANNEL_ID, "the queued one", mention());
    let told = e.reply_to(&bot, waits, "Queued");
    assert!(
        told.content.starts_with("⏳ Queued: #1 in line.") && told.content.contains("with ~"),
        "{told:?}"
    );
    // The default prefix is plain text now: it waits too (#2).
    let plain = e.dc.message(OWNER, CHANNEL_ID, "!not a steer", mention());
    assert!(e.reply_to(&bot, plain, "Queued").content.starts_with("⏳ Queued: #2 in line"));
    let steer = e.dc.message(OWNER, CHANNEL_ID, "~STEER-B also say banana", mention());
    e.reply_to(&bot, steer, "↪️ Sent into the turn in progress");
    e.home.api.release("S1");
    e.reply_to(&bot, job, "stand-in reply");
    e.reply_to(&bot, waits, "stand-in reply");
    e.reply_to(&bot, plain, "stand-in reply");
    let steered: Vec<_> =
        e.turns_with("job A").into_iter().filter(|r| r.all_text.contains("STEER-B")).collect();
    assert!(!steered.is_empty(), "the model read the steer within job A's turn");
    assert!(e.turns_with("STEER-B").is_empty(), "the steer was no turn of its own");
    let (a, q) = (e.turns_with("job A").pop().unwrap(), e.turns_with("the queued one").pop().unwrap());
    assert!(q.started_ms >= a.finished_ms && q.all_text.contains("STEER-B"));
    assert_eq!(e.turns_with("!not a steer").len(), 1);

    let long = e.dc.message(OWNER, CHANNEL_ID, "a long job [hold=N1]", mention());
    e.home.api.wait_held("N1");
    let now = e.dc.message(OWNER, CHANNEL_ID, "!! URGENT do this now", mention());
    e.reply_to(&bot, long, "⏹ Interrupted by a !! message");
    e.reply_to(&bot, now, "stand-in reply");
    let urgent = e.turns_with("URGENT").pop().unwrap();
    assert_eq!(urgent.last_user_text.trim(), "URGENT do this now");
    assert!(urgent.all_text.contains("a long job"), "the same conversation goes on");
}
