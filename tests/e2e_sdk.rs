//! The Agent SDK bot (examples/sdk_bot.py) end to end: the real Python Agent SDK (PyPI
//! `claude-agent-sdk`, pinned, installed into a venv under `target/` on first use) driving
//! the real Claude Code CLI (pinned, given to the SDK as `cli_path`), clawsess installed into
//! a throw-away HOME, everything against the stand-in Messages API on 127.0.0.1.
//!
//! Whatever depends on how fast a process is goes through the stand-in's `[hold=NAME]`
//! barrier; the asserts are on what the stand-in received (what the model saw).

mod support;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::agent_sdk;
use support::installed::{Installed, Running};
use support::real_claude::{read_stderr_until, run_with_stdin};
use support::stand_in_api::Recorded;
use support::terminal::OpenTerminal;

/// Longest a bot turn may take (a claude start is about 2 s on a busy 2-core machine).
const T: Duration = Duration::from_secs(120);

fn bot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("sdk_bot.py")
}

/// The shared world ([`Installed`]), its project the one the bot starts its sessions in.
fn sdk() -> Installed {
    // The first use installs the SDK (about a minute): before this test starts anything.
    agent_sdk::python();
    Installed::new("bot")
}

impl Installed {
    /// `python3 examples/sdk_bot.py --key KEY --json --claude <pinned> --cwd <project> ARGS`
    /// with this home's environment (clawsess from `HOME/bin` on PATH).
    fn bot_cmd(&self, key: &str, args: &[&str]) -> Command {
        let mut cmd = self.home.command(agent_sdk::python());
        cmd.arg(bot_script())
            .args(["--key", key, "--json", "--claude"])
            .arg(self.home.claude())
            .arg("--cwd")
            .arg(&self.project)
            .args(args)
            .current_dir(self.home.home())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// One bot turn; returns its exit status and its JSON reply.
    fn bot_out(&self, key: &str, args: &[&str], prompt: &str) -> (Output, Value) {
        let mut all = args.to_vec();
        all.extend(["--", prompt]);
        let out = run_with_stdin(&mut self.bot_cmd(key, &all), "", T);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reply = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "the bot printed no JSON ({e}; {}):\n--- stdout\n{stdout}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, reply)
    }

    /// One bot turn that must be answered; returns its JSON reply.
    fn bot(&self, key: &str, prompt: &str) -> Value {
        let (out, reply) = self.bot_out(key, &[], prompt);
        assert!(
            out.status.success() && reply["is_error"] == false && reply["busy"] == false,
            "bot turn {prompt:?} failed ({}): {reply}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        reply
    }

    /// A bot turn in the background.
    fn spawn_bot(&self, key: &str, args: &[&str], prompt: &str) -> Child {
        let mut all = args.to_vec();
        all.extend(["--", prompt]);
        self.bot_cmd(key, &all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the bot")
    }

    fn run_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "run {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A person's `claude -p` turn in the project, resuming `session` if given.
    fn terminal(&self, session: Option<&str>, prompt: &str) -> Value {
        let mut args = vec![];
        if let Some(id) = session {
            args.extend(["--resume", id]);
        }
        self.home.run_p_json(&self.project, &args, prompt)
    }

    /// A person's session, as an interactive Claude Code's SessionStart hook records it (its
    /// hooks see `CLAUDE_CODE_ENTRYPOINT=cli`; `claude -p` always says `sdk-cli`), with a
    /// transcript of one exchange. Returns its id.
    fn person(&self, prompt: &str) -> String {
        let id = uuid_v4();
        let transcript = self.home.transcript_path(&self.project, &id);
        std::fs::create_dir_all(transcript.parent().unwrap()).unwrap();
        let line = json!({"type": "user", "cwd": self.project, "sessionId": id,
                          "message": {"role": "user", "content": prompt}});
        std::fs::write(&transcript, format!("{line}\n")).unwrap();
        let input = json!({"session_id": id, "transcript_path": transcript, "cwd": self.project,
                           "hook_event_name": "SessionStart", "source": "startup"});
        let mut hook = self.clawsess_cmd(&["hook", "session-start"]);
        hook.env("CLAUDE_CODE_ENTRYPOINT", "cli");
        let out = support::real_claude::run_with_stdin(
            &mut hook,
            &input.to_string(),
            std::time::Duration::from_secs(60),
        );
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        id
    }

    fn record(&self, id: &str) -> Value {
        self.list().into_iter().find(|s| s["session_id"] == id).unwrap_or_else(|| panic!("{id} not recorded"))
    }

    fn current_json(&self, key: &str) -> Value {
        let out = self.clawsess(&["current", "--key", key, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The main-turn requests whose prompt contains `needle`.
    fn requests_with(&self, needle: &str) -> Vec<Recorded> {
        self.home.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(needle)).collect()
    }

    /// The one main-turn request whose prompt contains `needle`.
    fn request_with(&self, needle: &str) -> Recorded {
        let mut found = self.requests_with(needle);
        assert_eq!(found.len(), 1, "requests with {needle:?}: {:#?}", self.home.api.turn_requests());
        found.remove(0)
    }

    fn transcript(&self, id: &str) -> PathBuf {
        self.home.transcript_path(&self.project, id)
    }
}

/// The session a main-turn request belongs to: Claude Code names it in `metadata.user_id`
/// (a JSON text with `session_id` on 2.1.x).
fn session_of(r: &Recorded) -> Option<String> {
    let user_id = r.body.pointer("/metadata/user_id")?.as_str()?;
    if let Ok(v) = serde_json::from_str::<Value>(user_id)
        && let Some(s) = v["session_id"].as_str()
    {
        return Some(s.to_owned());
    }
    user_id.rsplit("_session_").next().map(str::to_owned)
}

/// No two main-turn requests of `session` were pending at the stand-in at the same time: the
/// session was never answered by two processes at once.
fn assert_never_two_at_once(reqs: &[Recorded], session: &str) {
    let mine: Vec<&Recorded> = reqs.iter().filter(|r| session_of(r).as_deref() == Some(session)).collect();
    assert!(!mine.is_empty(), "no request names session {session}: {reqs:#?}");
    for (i, a) in mine.iter().enumerate() {
        for b in &mine[i + 1..] {
            let a_end = if a.finished_ms == 0 { u64::MAX } else { a.finished_ms };
            let b_end = if b.finished_ms == 0 { u64::MAX } else { b.finished_ms };
            assert!(
                a_end <= b.started_ms || b_end <= a.started_ms,
                "two requests of {session} were answered at once:\n#{} {:?} ({}..{})\n#{} {:?} ({}..{})",
                a.seq,
                a.last_user_text,
                a.started_ms,
                a.finished_ms,
                b.seq,
                b.last_user_text,
                b.started_ms,
                b.finished_ms
            );
        }
    }
}

/// The conversation in a transcript is one chain: every user and assistant line lies on the
/// `parentUuid` chain from the newest of them back to the first (no message hangs off a
/// branch a later reader would not follow). Returns the chain's message texts, oldest first.
fn assert_linear(transcript: &Path) -> Vec<String> {
    let text = fs::read_to_string(transcript).unwrap_or_else(|e| panic!("{}: {e}", transcript.display()));
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let by_uuid: std::collections::HashMap<&str, &Value> =
        lines.iter().filter_map(|l| Some((l["uuid"].as_str()?, l))).collect();
    let is_message = |l: &Value| matches!(l["type"].as_str(), Some("user" | "assistant"));
    let messages: Vec<&Value> = lines.iter().filter(|l| is_message(l) && l["uuid"].is_string()).collect();
    let Some(leaf) = messages.last() else { return vec![] };
    let mut on_chain = HashSet::new();
    let mut texts = vec![];
    let mut at = Some(*leaf);
    while let Some(line) = at {
        let uuid = line["uuid"].as_str().unwrap_or_default();
        if !on_chain.insert(uuid.to_owned()) {
            break; // a loop: stop
        }
        if is_message(line) {
            texts.push(message_text(line));
        }
        at = line["parentUuid"].as_str().and_then(|p| by_uuid.get(p).copied());
    }
    texts.reverse();
    let off: Vec<String> = messages
        .iter()
        .filter(|m| !on_chain.contains(m["uuid"].as_str().unwrap_or_default()))
        .map(|m| format!("{} {}: {:?}", m["type"], m["uuid"], message_text(m)))
        .collect();
    assert!(off.is_empty(), "the transcript forked; messages off the newest chain:\n{}", off.join("\n"));
    texts
}

fn message_text(line: &Value) -> String {
    match &line["message"]["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().unwrap_or_default().to_owned(),
                Some(t) => format!("[{t}]"),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Waits for a background bot or run (2 minutes at most); returns its output and the one
/// JSON document it printed (Null if none).
fn finish(child: Child) -> (Output, Value) {
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = std::time::Instant::now() + T;
    while !waiter.is_finished() {
        if std::time::Instant::now() >= deadline {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("process {id} did not finish within {T:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = waiter.join().unwrap();
    let v = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or(Value::Null);
    (out, v)
}

/// The bot's JSON reply says it was answered, in `session`.
fn assert_answered(out: &Output, reply: &Value, session: &str) {
    assert!(
        out.status.success() && reply["busy"] == false && reply["is_error"] == false,
        "not answered ({}): {reply}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reply["session_id"], session, "{reply}");
}

/// The bot's JSON reply and exit status say "busy".
fn assert_busy(out: &Output, reply: &Value) {
    assert_eq!(
        (out.status.code(), &reply["busy"], &reply["is_error"]),
        (Some(75), &Value::Bool(true), &Value::Bool(false)),
        "expected busy: {reply}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The end of a long text, for failure messages (a request's text starts with the system
/// prompt, tens of KB).
fn tail(text: &str) -> &str {
    let mut at = text.len().saturating_sub(3000);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}

fn id_of(v: &Value) -> String {
    v["session_id"].as_str().expect("session_id").to_owned()
}

#[test]
fn the_bot_continues_the_session_its_key_is_attached_to_with_the_prompt_as_written() {
    let s = sdk();
    let id = id_of(&s.terminal(None, "remember the word PAPAYA"));
    s.clawsess_ok(&["attach", &id, "--key", "telegram:7"]);
    let first = s.request_with("remember the word PAPAYA");

    let reply = s.bot("telegram:7", "what was the word?");
    assert_eq!(
        (reply["session_id"].as_str(), &reply["new_session"]),
        (Some(id.as_str()), &Value::Bool(false))
    );
    let req = s.request_with("what was the word?");
    assert_eq!(session_of(&req).as_deref(), Some(id.as_str()), "the SDK resumed the session");
    assert!(
        req.all_text.contains("remember the word PAPAYA"),
        "the turn carries the terminal's: {}",
        tail(&req.all_text)
    );
    assert!(req.message_count > first.message_count, "{} > {}", req.message_count, first.message_count);
    // Streamed as it came: the text event is the stand-in's reply, and the result is it too.
    assert_eq!(reply["events"][0]["type"], "text", "{reply}");
    assert_eq!(reply["events"][0]["text"].as_str(), Some(req.reply.as_str()), "{reply}");
    assert_eq!(reply["text"].as_str(), Some(req.reply.as_str()), "{reply}");

    // A chat user's text reaches the model as written: `/attach` runs nothing, `@FILE`
    // reads nothing (claude -p and the SDK's default would read the file into the context).
    s.bot("telegram:7", "/attach");
    assert_eq!(s.home.api.turn_requests().pop().unwrap().last_user_text.trim(), "/attach");
    assert_eq!(s.current("anyone-else"), None, "no global attachment was made");
    let secret = s.home.home().join("secret.txt");
    fs::write(&secret, "SECRET-TOKEN-4711\n").unwrap();
    s.bot("telegram:7", &format!("show me @{}", secret.display()));
    let req = s.home.api.turn_requests().pop().unwrap();
    assert!(req.last_user_text.contains("show me @"), "{}", req.last_user_text);
    assert!(!req.all_text.contains("SECRET-TOKEN-4711"), "the file was read into the context");

    let chain = assert_linear(&s.transcript(&id));
    assert!(chain.iter().any(|t| t == "what was the word?"), "{chain:?}");
}

#[test]
fn the_bots_first_message_starts_a_session_that_its_next_message_continues() {
    let s = sdk();
    let key = "telegram:8";
    let first = s.bot(key, "my name is ZORRO");
    let id = id_of(&first);
    assert_eq!(first["new_session"], true, "{first}");
    let req1 = s.request_with("my name is ZORRO");
    assert_eq!(session_of(&req1).as_deref(), Some(id.as_str()));
    assert!(s.transcript(&id).is_file(), "started in the bot's --cwd");

    // clawsess made the new session K's own (SessionStart saw CLAWSESS_KEY=K) ...
    assert_eq!(first["warning"], Value::Null, "{first}");
    let cur = s.current_json(key);
    assert_eq!((cur["session_id"].as_str(), cur["via"].as_str()), (Some(id.as_str()), Some("own")), "{cur}");
    // ... so the next message continues it.
    let second = s.bot(key, "what is my name?");
    assert_eq!(
        (second["session_id"].as_str(), &second["new_session"]),
        (Some(id.as_str()), &Value::Bool(false))
    );
    let req2 = s.request_with("what is my name?");
    assert!(req2.all_text.contains("my name is ZORRO"), "{}", tail(&req2.all_text));
    assert!(req2.message_count > req1.message_count, "{} > {}", req2.message_count, req1.message_count);
    assert_eq!(s.list().len(), 1, "one session: {:#?}", s.list());
    assert_linear(&s.transcript(&id));
}

#[test]
fn a_session_the_bot_starts_is_recorded_as_the_bots_not_a_persons() {
    let s = sdk();
    let person = s.person("the person's own work");
    let bot = id_of(&s.bot("telegram:9", "the bot's first message"));
    assert_eq!(s.record(&person)["started_by"], "person");
    let rec = s.record(&bot);
    assert_eq!((rec["started_by"].as_str(), rec["key"].as_str()), (Some("bot"), Some("telegram:9")), "{rec}");
    assert_eq!(rec["own_session_of"], json!(["telegram:9"]), "{rec}");
    // `attach` with no session picks the person's session, though the bot's is newer.
    let attached: Value =
        serde_json::from_str(&s.clawsess_ok(&["attach", "--key", "discord:1", "--json"])).unwrap();
    assert_eq!(attached["session_id"], person.as_str(), "{attached}");
}

/// A session a terminal started, with `keys` attached to it.
fn shared_session(s: &Installed, keys: &[&str]) -> String {
    let id = id_of(&s.terminal(None, "base turn"));
    for key in keys {
        s.clawsess_ok(&["attach", &id, "--key", key]);
    }
    id
}

#[test]
fn an_sdk_turn_waits_for_a_run_answering_the_session_and_then_sees_its_turn() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:run", "sdk:c"]);
    let run = s.spawn_run(&["--key", "telegram:run", "--json", "run turn RUNTOKEN [hold=run]"]);
    s.home.api.wait_held("run");

    // Busy past --wait: a clear "busy", and claude never started.
    let (out, reply) = s.bot_out("sdk:c", &["--wait", "0"], "sdk turn while busy NOTSENT");
    assert_busy(&out, &reply);
    assert!(reply["text"].as_str().unwrap().contains("telegram:run"), "says who: {reply}");
    assert!(s.requests_with("NOTSENT").is_empty());

    // Within --wait: it says so, waits, and its turn comes after the run's and sees it.
    let mut waiting = s.spawn_bot("sdk:c", &["--wait", "120"], "sdk turn after the run");
    let (said, _rest) = read_stderr_until(&mut waiting, "waiting up to");
    assert!(said.contains("telegram:run"), "{said}");
    s.home.api.release("run");
    let (run_out, run_reply) = finish(run);
    assert!(run_out.status.success(), "{run_reply}");
    let (out, reply) = finish(waiting);
    assert_answered(&out, &reply, &id);
    let req = s.request_with("sdk turn after the run");
    assert!(
        req.all_text.contains("run turn RUNTOKEN")
            && req.all_text.contains(run_reply["result"].as_str().unwrap()),
        "the SDK turn sees the run's prompt and reply: {}",
        tail(&req.all_text)
    );

    // A third turn sees all of it.
    s.run_json(&["--key", "telegram:run", "third turn"]);
    let third = s.request_with("third turn");
    assert!(
        third.all_text.contains("run turn RUNTOKEN") && third.all_text.contains("sdk turn after the run")
    );
    assert!(!third.all_text.contains("NOTSENT"), "a prompt never answered is not in the conversation");
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

#[test]
fn an_sdk_prompt_the_hook_refuses_while_a_run_answers_is_busy_and_loses_no_turn() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:run", "sdk:d"]);
    let run = s.spawn_run(&["--key", "telegram:run", "--json", "run turn RUNTOKEN [hold=run]"]);
    s.home.api.wait_held("run");
    // No busy check before the turn: claude starts, and clawsess's prompt-submit hook refuses.
    let (out, reply) = s.bot_out("sdk:d", &["--no-precheck", "--wait", "0"], "sdk prompt REFUSED");
    assert_busy(&out, &reply);
    assert!(reply["text"].as_str().unwrap().contains("telegram:run"), "the hook's reason: {reply}");
    assert!(s.requests_with("REFUSED").is_empty(), "the refused prompt never reached the model");
    s.home.api.release("run");
    let (run_out, run_reply) = finish(run);
    assert!(run_out.status.success(), "{run_reply}");

    // The next turn of any surface sees the run's turn, and not the refused prompt.
    let next = s.bot("sdk:d", "next sdk turn");
    assert_eq!(next["session_id"], id.as_str());
    let req = s.request_with("next sdk turn");
    assert!(
        req.all_text.contains("run turn RUNTOKEN")
            && req.all_text.contains(run_reply["result"].as_str().unwrap()),
        "the run's turn was lost: {}",
        tail(&req.all_text)
    );
    assert!(!req.all_text.contains("REFUSED"), "{}", tail(&req.all_text));
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

#[test]
fn a_run_during_an_sdk_turn_exits_75_with_wait_0_or_waits_and_sees_it() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:run", "sdk:e"]);
    let bot = s.spawn_bot("sdk:e", &[], "sdk turn SDKTOKEN [hold=sdk]");
    s.home.api.wait_held("sdk");

    let out = s.run(&["--key", "telegram:run", "--wait", "0", "--json", "run while busy NOTSENT"]);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["busy"], true, "{j}");

    let mut run =
        s.spawn_run(&["--key", "telegram:run", "--wait", "120", "--json", "run after the sdk turn"]);
    let (said, rest) = read_stderr_until(&mut run, "waiting up to");
    assert!(said.contains("busy"), "{said}");
    s.home.api.release("sdk");
    let (out, reply) = finish(bot);
    assert_answered(&out, &reply, &id);
    let (run_out, run_reply) = finish(run);
    assert!(run_out.status.success(), "{run_reply} {}", rest.join().unwrap());
    let req = s.request_with("run after the sdk turn");
    assert!(
        req.all_text.contains("sdk turn SDKTOKEN") && req.all_text.contains(reply["text"].as_str().unwrap()),
        "the run sees the SDK turn's prompt and reply: {}",
        tail(&req.all_text)
    );
    assert!(s.requests_with("NOTSENT").is_empty());
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

#[test]
fn two_sdk_bots_on_one_session_take_turns() {
    let s = sdk();
    let id = shared_session(&s, &["sdk:g1", "sdk:g2"]);
    let first = s.spawn_bot("sdk:g1", &[], "first bot FIRSTTOKEN [hold=g1]");
    s.home.api.wait_held("g1");

    // With the busy check (the default), the second bot waits and then sees the first's turn.
    let mut second = s.spawn_bot("sdk:g2", &["--wait", "120"], "second bot after the first");
    let (said, _rest) = read_stderr_until(&mut second, "waiting up to");
    assert!(said.contains("busy"), "{said}");
    // Without it, clawsess's hook must refuse the prompt while the first bot's turn runs.
    let (refused_out, refused) = s.bot_out("sdk:g2", &["--no-precheck", "--wait", "0"], "third bot REFUSED");
    s.home.api.release("g1");
    let (out, reply) = finish(first);
    assert_answered(&out, &reply, &id);
    let (out, reply2) = finish(second);
    assert_answered(&out, &reply2, &id);
    let req = s.request_with("second bot after the first");
    assert!(
        req.all_text.contains("first bot FIRSTTOKEN")
            && req.all_text.contains(reply["text"].as_str().unwrap()),
        "{}",
        tail(&req.all_text)
    );

    assert_busy(&refused_out, &refused);
    assert!(s.requests_with("REFUSED").is_empty(), "answered while another SDK turn ran");
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

#[test]
fn a_terminal_prompt_during_an_sdk_turn_is_refused_or_waits() {
    let s = sdk();
    let id = shared_session(&s, &["sdk:f"]);
    let bot = s.spawn_bot("sdk:f", &[], "sdk turn SDKTOKEN [hold=sdkf]");
    s.home.api.wait_held("sdkf");

    let mut cmd = s.home.claude_p(&s.project);
    cmd.args(["--output-format", "json", "--resume", &id, "terminal prompt TERMTOKEN"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let terminal = cmd.spawn().unwrap();
    // Either the terminal's claude ends (refused), or it stays (waiting) without its prompt
    // reaching the model; give it time to get there, then let the SDK turn end.
    let terminal_pid = terminal.id();
    s.home.api.wait_for(Duration::from_secs(30), |r| {
        r.iter().any(|r| r.last_user_text.contains("TERMTOKEN"))
            || !std::path::Path::new(&format!("/proc/{terminal_pid}")).exists()
            || fs::read_to_string(format!("/proc/{terminal_pid}/stat")).is_ok_and(|st| st.contains(") Z "))
    });
    let answered_meanwhile = !s.requests_with("TERMTOKEN").is_empty();
    s.home.api.release("sdkf");
    let (out, reply) = finish(bot);
    assert_answered(&out, &reply, &id);
    let (term_out, term) = finish(terminal);
    assert!(!answered_meanwhile, "the terminal's prompt was answered while the SDK turn ran");

    let sent = s.requests_with("TERMTOKEN");
    if let Some(req) = sent.first() {
        // It waited: its turn comes after the SDK's and sees it.
        assert!(req.all_text.contains("sdk turn SDKTOKEN"), "{}", tail(&req.all_text));
    } else {
        // Refused: the caller sees a failure (claude's exit status, or is_error), never an
        // empty success.
        assert!(
            !term_out.status.success() || term["is_error"] == true,
            "{term}\n{}",
            String::from_utf8_lossy(&term_out.stderr)
        );
    }
    s.clawsess_ok(&["attach", &id, "--key", "telegram:after"]);
    s.run_json(&["--key", "telegram:after", "after both"]);
    let last = s.request_with("after both");
    assert!(last.all_text.contains("sdk turn SDKTOKEN"), "the SDK turn was lost: {}", tail(&last.all_text));
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

#[test]
fn an_open_terminal_learns_what_the_sdk_bot_said() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:1"]);
    // The catch-up note mode: the terminal is told, in its next prompt's context.
    let mut term = OpenTerminal::start(&s.home, &s.project, &id, &[("CLAWSESS_BEHIND", "note")]);
    term.turn("first terminal turn");
    s.bot("telegram:1", "book the hotel in LISBON please");
    let bot_req = s.request_with("book the hotel in LISBON please");
    term.turn("what did the bot just do?");
    let seen = s.request_with("what did the bot just do?");
    assert!(
        seen.all_text.contains("book the hotel in LISBON please")
            && seen.all_text.contains(&bot_req.reply)
            && seen.all_text.contains("telegram:1"),
        "the terminal's next request carries the SDK bot's turn: {}",
        tail(&seen.all_text)
    );
}

#[test]
fn the_bot_answers_busy_whichever_way_a_hook_refuses_its_prompt() {
    let s = sdk();
    let id = shared_session(&s, &["sdk:v"]);
    // A second UserPromptSubmit hook that refuses prompts marked [refuse=VARIANT].
    let hook = s.home.bin_dir().join("refuse-hook");
    fs::write(
        &hook,
        r#"#!/bin/sh
input=$(cat)
case "$input" in
*"[refuse=exit2]"*) echo "clawsess-test: refused by exit 2" >&2; exit 2 ;;
*"[refuse=block]"*) echo '{"decision":"block","reason":"clawsess-test: refused by decision block"}' ;;
*"[refuse=stop]"*) echo '{"continue":false,"stopReason":"clawsess-test: refused by continue false"}' ;;
*"[refuse=sigint]"*) echo "clawsess: refused by SIGINT" > /proc/$CLAUDE_PID/fd/2; kill -INT $CLAUDE_PID; sleep 2; exit 2 ;;
*"[refuse=policy]"*) echo "policy: no such prompts here" >&2; exit 2 ;;
*"[refuse=sigterm]"*) echo "clawsess: refused by SIGTERM" > /proc/$CLAUDE_PID/fd/2; kill -TERM $CLAUDE_PID; sleep 2; exit 2 ;;
esac
exit 0
"#,
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(&hook).status().unwrap();
    let path = s.home.claude_dir().join("settings.json");
    let mut settings: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    settings["hooks"]["UserPromptSubmit"]
        .as_array_mut()
        .unwrap()
        .push(json!({"hooks": [{"type": "command", "command": hook.to_str().unwrap()}]}));
    s.home.write_settings(&settings);

    for (variant, reason) in [
        ("exit2", "refused by exit 2"),
        ("block", "refused by decision block"),
        ("stop", "refused by continue false"),
        ("sigint", "refused by SIGINT"),
        ("sigterm", "refused by SIGTERM"),
    ] {
        let prompt = format!("prompt for [refuse={variant}]");
        let (out, reply) = s.bot_out("sdk:v", &["--no-precheck", "--wait", "0"], &prompt);
        eprintln!("{variant}: {reply}");
        assert_busy(&out, &reply);
        assert!(reply["text"].as_str().unwrap().contains(reason), "{variant}: {reply}");
        assert!(s.requests_with(&prompt).is_empty(), "{variant}: the prompt reached the model");
    }
    // Another hook's refusal is not "busy" (waiting would not help): an error that says why.
    let prompt = "prompt for [refuse=policy]";
    let (out, reply) = s.bot_out("sdk:v", &["--no-precheck", "--wait", "30"], prompt);
    assert_eq!(
        (out.status.code(), &reply["busy"], &reply["is_error"]),
        (Some(1), &json!(false), &json!(true))
    );
    assert!(reply["text"].as_str().unwrap().contains("policy: no such prompts here"), "{reply}");
    assert!(s.requests_with(prompt).is_empty());
    // The session goes on.
    let reply = s.bot("sdk:v", "after the refusals");
    assert_eq!(reply["session_id"], id.as_str());
}

#[test]
fn with_setting_sources_empty_no_hook_runs_and_the_module_says_so() {
    let s = sdk();
    // The module's turn(), as a bot would call it, with setting_sources=[] (the SDK's
    // "isolation mode"): no settings, so none of clawsess's hooks.
    let script = r#"
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import sdk_bot
texts = []
reply = asyncio.run(sdk_bot.turn("sdk:iso", "isolated turn", cwd=sys.argv[2], cli_path=sys.argv[3],
                                 on_text=texts.append, options={"setting_sources": []}))
print(json.dumps({"reply": reply.to_json(), "streamed": texts}))
"#;
    let mut cmd = s.home.command(agent_sdk::python());
    cmd.arg("-c")
        .arg(script)
        .arg(bot_script().parent().unwrap())
        .arg(&s.project)
        .arg(s.home.claude())
        .current_dir(s.home.home())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_stdin(&mut cmd, "", T);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reply = &v["reply"];
    let req = s.request_with("isolated turn");
    assert_eq!(v["streamed"], json!([req.reply]), "on_text got the reply as it came: {v}");
    assert_eq!(session_of(&req).as_deref(), reply["session_id"].as_str());
    // The turn was answered, but clawsess never heard of it ...
    assert!(s.list().is_empty(), "no hook ran, so nothing was recorded: {:#?}", s.list());
    // ... and the reply says so, so the operator can tell.
    let warning = reply["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("setting_sources=[]"), "{reply}");
}

#[test]
fn the_command_streams_each_reply_and_takes_a_turn_per_line_of_stdin() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:repl"]);
    let mut cmd = s.home.command(agent_sdk::python());
    cmd.arg(bot_script())
        .args(["--key", "telegram:repl"])
        .current_dir(s.home.home())
        .env("CLAWSESS_CLAUDE", s.home.claude())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_with_stdin(&mut cmd, "first line [bash=echo hi]\n\nsecond line\n", T);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let first = s.requests_with("first line").remove(0);
    let second = s.request_with("second line");
    assert_eq!(session_of(&second).as_deref(), Some(id.as_str()));
    assert!(second.all_text.contains("first line"), "the second line continues the first");
    // The reply text on stdout, the tool call on stderr, as they came.
    assert!(stdout.contains(&second.reply), "{stdout}");
    assert!(stderr.contains("[Bash]") && stderr.contains("echo hi"), "{stderr}");
    assert!(stdout.contains("stand-in reply") && first.last_user_text.contains("[bash=echo hi]"), "{stdout}");
}

/// The index of the one main-turn request whose prompt contains `needle`, in arrival order.
fn arrival(s: &Installed, needle: &str) -> usize {
    let all = s.home.api.turn_requests();
    let found: Vec<usize> =
        all.iter().enumerate().filter(|(_, r)| r.last_user_text.contains(needle)).map(|(i, _)| i).collect();
    assert_eq!(found.len(), 1, "requests with {needle:?}: {all:#?}");
    found[0]
}

#[test]
fn an_sdk_bot_waiting_behind_a_run_is_first_in_line_and_goes_before_a_later_run() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:qa", "sdk:q", "telegram:qc"]);
    let run_a = s.spawn_run(&["--key", "telegram:qa", "--json", "run turn QFIRST [hold=qa]"]);
    s.home.api.wait_held("qa");

    // The bot takes a ticket in the session's queue and learns its place.
    let mut bot = s.spawn_bot("sdk:q", &["--wait", "120"], "sdk turn QBOT [hold=qb]");
    let (said, _rest) = read_stderr_until(&mut bot, "queued: #1 in line");
    assert!(said.contains("telegram:qa"), "who answers now: {said}");
    // A run that comes later is behind it.
    let mut run_c =
        Running::of(s.spawn_run(&["--key", "telegram:qc", "--stream", "--wait", "120", "run turn QLATER"]));
    assert_eq!(run_c.until("queued")["position"], 2, "{:?}", run_c.seen);

    s.home.api.release("qa");
    let (out, reply) = finish(run_a);
    assert!(out.status.success(), "{reply}");
    // The bot's claude is answering (held): the later run still waits for it.
    s.home.api.wait_held("qb");
    assert!(s.requests_with("QLATER").is_empty(), "the later run went before the bot");
    s.home.api.release("qb");
    let (out, reply) = finish(bot);
    assert_answered(&out, &reply, &id);
    assert_eq!(reply["queued"], 1, "{reply}");
    let (code, events) = run_c.finish();
    assert_eq!(code, 0, "{events:?}");
    assert!(arrival(&s, "QFIRST") < arrival(&s, "QBOT") && arrival(&s, "QBOT") < arrival(&s, "QLATER"));
    let later = s.request_with("QLATER");
    assert!(later.all_text.contains("QBOT") && later.all_text.contains(reply["text"].as_str().unwrap()));
    let bot_req = s.request_with("QBOT");
    assert!(
        bot_req.all_text.contains("QFIRST"),
        "the bot's turn sees the run's: {}",
        tail(&bot_req.all_text)
    );
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

/// The live `clawsess queue` processes waiting for `key` (their tickets in the state dir).
fn queue_waiters(s: &Installed, key: &str) -> Vec<u32> {
    let dir = s.home.state().join("queue");
    let mut pids = Vec::new();
    for session in fs::read_dir(dir).into_iter().flatten().flatten() {
        for ticket in fs::read_dir(session.path()).into_iter().flatten().flatten() {
            let Ok(text) = fs::read_to_string(ticket.path()) else { continue };
            let Ok(t) = serde_json::from_str::<Value>(&text) else { continue };
            let pid = t["pid"].as_u64().unwrap_or(0) as u32;
            if t["surface"] == key && Path::new(&format!("/proc/{pid}")).exists() {
                pids.push(pid);
            }
        }
    }
    pids
}

#[test]
fn an_sdk_bot_that_dies_while_queued_frees_its_place_and_the_next_is_served() {
    let s = sdk();
    let id = shared_session(&s, &["telegram:ka", "sdk:k", "telegram:kc"]);
    let run_a = s.spawn_run(&["--key", "telegram:ka", "--json", "run turn KFIRST [hold=ka]"]);
    s.home.api.wait_held("ka");
    let mut bot = s.spawn_bot("sdk:k", &["--wait", "120"], "sdk turn KDEAD");
    let _said = read_stderr_until(&mut bot, "queued: #1 in line");
    let mut run_c =
        Running::of(s.spawn_run(&["--key", "telegram:kc", "--stream", "--wait", "120", "run turn KNEXT"]));
    assert_eq!(run_c.until("queued")["position"], 2, "{:?}", run_c.seen);
    assert_eq!(queue_waiters(&s, "sdk:k").len(), 1, "the bot's place in line");

    // The bot dies: its `clawsess queue` sees its stdin close and goes, place and all.
    bot.kill().unwrap();
    bot.wait().unwrap();
    let deadline = std::time::Instant::now() + T;
    while !queue_waiters(&s, "sdk:k").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the dead bot's place is still held");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.home.api.release("ka");
    let (out, reply) = finish(run_a);
    assert!(out.status.success(), "{reply}");
    let (code, events) = run_c.finish();
    assert_eq!(code, 0, "the next waiter is served: {events:?}");
    assert!(s.requests_with("KDEAD").is_empty(), "the dead bot's prompt never ran");
    assert!(s.request_with("KNEXT").all_text.contains("KFIRST"));
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

/// `clawsess queue --key KEY`, its stdin a pipe kept open, its stdout read line by line.
fn spawn_queue(s: &Installed, key: &str) -> Running {
    let child = s
        .clawsess_cmd(&["queue", "--key", key, "--wait", "120"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clawsess queue");
    Running::of(child)
}

/// `claude -p --resume ID` with `env`, `prompt` on stdin.
fn claude_with(s: &Installed, id: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = s.home.claude_p(&s.project);
    cmd.args(["--output-format", "json", "--resume", id]).envs(env.iter().copied());
    cmd
}

#[test]
fn a_held_turn_is_taken_once_and_only_by_the_claude_given_its_claim() {
    let s = sdk();
    let id = shared_session(&s, &["sdk:h"]);
    let mut queue = spawn_queue(&s, "sdk:h");
    let ready = queue.until("ready");
    assert_eq!((&ready["session_id"], &ready["resume"]), (&json!(id), &json!(true)), "{ready}");
    let claim = ready["claim"].as_str().unwrap().to_owned();

    // Another claude (without the claim, or with another token) meets a session held: refused.
    for (env, prompt) in
        [(vec![], "NOCLAIM turn"), (vec![("CLAWSESS_CLAIM", "not-the-claim")], "WRONGCLAIM turn")]
    {
        let out = run_with_stdin(&mut claude_with(&s, &id, &env), prompt, T);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("busy") && stderr.contains("sdk:h"),
            "{prompt}: {stderr}"
        );
    }
    // The claude given the claim takes the turn; `queue` says so and lets go.
    let first = claude_with(&s, &id, &[("CLAWSESS_CLAIM", &claim), ("CLAWSESS_KEY", "sdk:h")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut first = first;
        first.stdin.take().unwrap().write_all(b"CLAIMED turn [hold=ch]").unwrap();
        s.home.api.wait_held("ch");
        let claimed = queue.until("claimed");
        assert_eq!(claimed["refused"], false, "{claimed}");
        let (code, events) = queue.finish();
        assert_eq!(code, 0, "{events:?}");
        // The same claim again, while that turn runs: no way past the session's turn.
        let out = run_with_stdin(&mut claude_with(&s, &id, &[("CLAWSESS_CLAIM", &claim)]), "TWICE turn", T);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("busy"), "{stderr}");
        s.home.api.release("ch");
        let (out, reply) = finish(first);
        assert!(out.status.success() && reply["is_error"] == false, "{reply}");
    }
    for refused in ["NOCLAIM", "WRONGCLAIM", "TWICE"] {
        assert!(s.requests_with(refused).is_empty(), "{refused} reached the model");
    }
    assert_eq!(s.requests_with("CLAIMED").len(), 1);

    // A queue whose caller goes away before its claude comes lets go of the session.
    let mut queue = spawn_queue(&s, "sdk:h");
    queue.until("ready");
    drop(queue.child.stdin.take());
    let released = queue.until("released");
    assert!(released["why"].as_str().unwrap().contains("stdin"), "{released}");
    let (code, _) = queue.finish();
    assert_eq!(code, 0);
    // So does `clawsess stop` (exit 130, as a stopped run).
    let mut queue = spawn_queue(&s, "sdk:h");
    queue.until("ready");
    let out = s.clawsess(&["stop", "--key", "sdk:h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let released = queue.until("released");
    assert!(released["why"].as_str().unwrap().contains("stop"), "{released}");
    assert_eq!(queue.finish().0, 130);
    let out = s.run(&["--key", "sdk:h", "--wait", "0", "--json", "run after the release"]);
    assert!(out.status.success(), "the session is free: {}", String::from_utf8_lossy(&out.stderr));
    assert!(s.request_with("run after the release").all_text.contains("CLAIMED turn"));
    assert_never_two_at_once(&s.home.api.requests(), &id);
    assert_linear(&s.transcript(&id));
}

/// A fork clawsess could not prevent (hooks off): the SDK bot's turn, held for it by
/// `clawsess queue`, continues the branch with the newest turn and is told the other one, as a
/// run's is.
#[test]
fn an_sdk_turn_on_a_forked_session_continues_its_newest_branch_and_is_told_the_other() {
    let s = sdk();
    let id = shared_session(&s, &["sdk:f2"]);
    s.home.fork_without_hooks(&s.project, &id, "the person says BRAGA", "a script says LISBON");
    let reply = s.bot("sdk:f2", "what do we know OBIDOS");
    assert_eq!(reply["session_id"], id.as_str(), "{reply}");
    let seen = s.request_with("OBIDOS");
    for word in ["base turn", "BRAGA", "LISBON", "This conversation forked"] {
        assert!(seen.all_text.contains(word), "{word} not seen: {}", tail(&seen.all_text));
    }
    assert_eq!(s.record(&id)["forked"], true);
}

/// A random session id (what Claude Code would pick).
fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
