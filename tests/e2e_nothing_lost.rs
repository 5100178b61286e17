//! Nothing lost (issue 20): lines Claude Code writes for a process that took no turn (a
//! terminal refused as behind, `/compact` or `!cmd` in a terminal that is behind) never move a
//! resume off the turns other surfaces took, and a `run` turn that failed is still a turn every
//! open terminal must load first. The real interactive Claude Code (in tmux) against the
//! stand-in API; assertions on what the model saw.

mod support;

use serde_json::Value;
use support::real_claude::ClaudeHome;
use support::terminal::{Terminal, a_bot_session, resume_in_terminal, run_json};

fn dump(home: &ClaudeHome, project: &std::path::Path, id: &str) {
    let text = std::fs::read_to_string(home.transcript_path(project, id)).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let msg = v["message"]["content"].to_string();
        eprintln!(
            "{:>12} {:8} p={:8} model={} {}",
            v["type"].as_str().unwrap_or(""),
            v["uuid"].as_str().unwrap_or("").get(..8).unwrap_or(""),
            v["parentUuid"].as_str().unwrap_or("").get(..8).unwrap_or(""),
            v["message"]["model"],
            msg.get(..100.min(msg.len())).unwrap_or(&msg)
        );
        if v["type"] == "last-prompt" {
            eprintln!("   leaf {}", v["leafUuid"]);
        }
    }
}

/// Whether the request carried an assistant message holding `text`: a turn in the history
/// the model was sent, not one quoted in a note.
fn answered_in_history(req: &support::stand_in_api::Recorded, text: &str) -> bool {
    req.body["messages"].as_array().into_iter().flatten().any(|m| {
        m["role"] == "assistant"
            && m["content"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| b["text"].as_str().is_some_and(|t| t.contains(text)))
    })
}

/// Waits for a background `run` and asserts it succeeded.
fn finish(child: std::process::Child) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_terminal_opened_during_a_bot_turn_and_refused_as_behind_loses_no_bot_answer() {
    let (home, project, id) = a_bot_session();
    // The bot's prompt is in the transcript, its answer not yet, when the terminal loads it.
    let bot = home.spawn_run(&["--json", "--key", "telegram:1", "book the hotel in LISBON [hold=bot]"]);
    home.api.wait_held("bot");
    let term: Terminal = resume_in_terminal(&home, &project, &id);
    home.api.release("bot");
    finish(bot);
    // The person's prompt is refused: the terminal is behind.
    term.type_line("what did the bot do COIMBRA");
    term.wait_for("the refusal", |s| s.contains("/resume") && s.contains("telegram:1"));
    term.keys(&["C-u"]);
    term.exit();
    dump(&home, &project, &id);
    run_json(&home, &["--key", "telegram:1", "and after the terminal closed EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(
        answered_in_history(&seen, "last=book the hotel in LISBON"),
        "the bot's answer left the conversation: {}",
        seen.all_text
    );
    assert!(!seen.all_text.contains("This conversation forked"), "{}", seen.all_text);
}

/// A terminal up to date on the bot's session, then a bot turn that fails after its prompt
/// reached the transcript (`fail`): the terminal's next prompt must be refused as behind, never
/// answered on its stale leaf.
fn a_failed_bot_turn_makes_an_open_terminal_behind(fail: impl FnOnce(&ClaudeHome)) {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    fail(&home);
    term.type_line("the person says COIMBRA");
    let screen = term.wait_for("the refusal or the reply", |s| {
        (s.contains("/resume") && s.contains("telegram:1")) || s.contains("last=the person says COIMBRA")
    });
    assert!(
        home.api.turn_requests().iter().all(|r| !r.last_user_text.contains("COIMBRA")),
        "a terminal behind a failed bot turn answered on its stale leaf:\n{screen}"
    );
}

#[test]
fn a_bot_turn_that_ends_on_max_turns_is_a_turn_an_open_terminal_must_load() {
    a_failed_bot_turn_makes_an_open_terminal_behind(|home| {
        let out =
            home.run(&["--json", "--key", "telegram:1", "-A", "--max-turns", "-A", "1", "look [bash=ls]"]);
        assert!(
            !out.status.success(),
            "max turns is a failed turn: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
}

#[test]
fn a_bot_run_terminated_mid_turn_is_a_turn_an_open_terminal_must_load() {
    a_failed_bot_turn_makes_an_open_terminal_behind(|home| {
        let bot = home.spawn_run(&["--json", "--key", "telegram:1", "a long task [hold=bot]"]);
        home.api.wait_held("bot");
        unsafe { libc::kill(bot.id() as i32, libc::SIGTERM) };
        let out = bot.wait_with_output().unwrap();
        assert!(!out.status.success());
        home.api.release("bot");
    });
}

#[test]
fn a_turn_wait_longer_than_the_prompt_hooks_timeout_never_lets_a_prompt_through_a_bots_turn() {
    let (home, project, id) = a_bot_session();
    // The installed prompt hook gets 35 s (Claude Code lets the prompt through when it is
    // killed then); the terminal's environment asks for a 60 s wait.
    let settings_path = home.claude_dir().join("settings.json");
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    for group in settings["hooks"]["UserPromptSubmit"].as_array_mut().unwrap() {
        for hook in group["hooks"].as_array_mut().unwrap() {
            hook["timeout"] = 35.into();
        }
    }
    std::fs::write(&settings_path, settings.to_string()).unwrap();
    let doctor = home.clawsess_cmd(&["doctor"]).env("CLAWSESS_TURN_WAIT", "60").output().unwrap();
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.contains("turn wait") && doctor.contains("35 s"), "doctor says nothing: {doctor}");

    let bot = home.spawn_run(&["--json", "--key", "telegram:1", "book the hotel in LISBON [hold=bot]"]);
    home.api.wait_held("bot");
    let term = Terminal::start_with_env(&home, &project, &["--resume", &id], &[("CLAWSESS_TURN_WAIT", "60")]);
    term.wait_for("the conversation", |s| s.contains("PORTO"));
    term.type_line("the person says COIMBRA");
    let screen = term.wait_for("the refusal or the prompt going through", |s| {
        s.contains("is busy") || s.contains("last=the person says COIMBRA")
    });
    let through = home.api.turn_requests().iter().any(|r| r.last_user_text.contains("COIMBRA"));
    home.api.release("bot");
    finish(bot);
    assert!(!through, "the prompt went through while the bot's turn ran:\n{screen}");
    assert!(screen.contains("is busy"), "{screen}");
}

/// A terminal with a turn of its own (BRAGA), then a bot turn (LISBON): the terminal is
/// behind.
fn a_terminal_left_behind() -> (ClaudeHome, std::path::PathBuf, String, Terminal) {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("the person says BRAGA");
    run_json(&home, &["--key", "telegram:1", "book the hotel in LISBON"]);
    (home, project, id, term)
}

#[test]
fn a_shell_command_in_a_terminal_that_is_behind_loses_no_bot_turn() {
    let (home, _project, _id, term) = a_terminal_left_behind();
    // Bash mode: no prompt hook fires, and Claude Code writes the command and its output on
    // the terminal's stale leaf.
    term.keys(&["-l", "!"]);
    term.wait_for("shell mode", |s| s.contains("for shell mode"));
    term.type_line("echo SHELLMARK");
    term.wait_for("the command's output", |s| s.matches("SHELLMARK").count() >= 2);
    term.exit();
    run_json(&home, &["--key", "telegram:1", "and after the terminal closed EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(
        answered_in_history(&seen, "last=book the hotel in LISBON"),
        "the bot's turn left the conversation: {}",
        seen.all_text
    );
    // The shell exchange on the old branch is told, not lost.
    assert!(seen.all_text.contains("This conversation forked") && seen.all_text.contains("SHELLMARK"));
}

#[test]
fn compact_in_a_terminal_that_is_behind_loses_no_bot_turn() {
    let (home, _project, id, term) = a_terminal_left_behind();
    // No prompt hook fires for /compact: the summary would be made from the terminal's stale
    // view.
    term.type_line("/compact");
    let first = term.wait_for("the compaction or its refusal", |s| {
        s.to_lowercase().contains("compacted") || s.contains("not compacting")
    });
    assert!(!first.to_lowercase().contains("compacted"), "a terminal that is behind compacted:\n{first}");
    let screen = term.wait_for("the whole refusal", |s| s.contains("not compacting") && s.contains(&id));
    assert!(screen.contains("/resume"), "the refusal says how to catch up:\n{screen}");
    term.exit();
    run_json(&home, &["--key", "telegram:1", "and after the terminal closed EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(
        answered_in_history(&seen, "last=book the hotel in LISBON"),
        "the bot's turn left the conversation: {}",
        seen.all_text
    );
    assert!(
        !seen.all_text.contains("This conversation forked"),
        "a refused /compact is no fork: {}",
        seen.all_text
    );
    let list = home.clawsess_ok(&["list", "--json"]);
    assert!(!list.contains("\"forked\": true"), "a refused /compact is no fork: {list}");
}

#[test]
fn stop_of_a_key_whose_run_waits_for_its_session_withdraws_that_turn() {
    let (home, _project, id) = a_bot_session();
    let first = home.spawn_run(&["--json", "--key", "telegram:1", "a long task [hold=first]"]);
    home.api.wait_held("first");
    let mut waiting = home.spawn_run(&[
        "--json",
        "--key",
        "discord:2",
        "--session",
        &id,
        "--wait",
        "120",
        "then WITHDRAWN",
    ]);
    let (_, rest) = support::real_claude::read_stderr_until(&mut waiting, "waiting up to");
    let said = home.clawsess_ok(&["stop", "--key", "discord:2"]);
    assert!(said.contains("withdrew"), "{said}");
    let status = waiting.wait().unwrap();
    let _ = rest.join();
    assert!(!status.success(), "the withdrawn run failed");
    home.api.release("first");
    finish(first);
    run_json(&home, &["--key", "telegram:1", "and the next one"]);
    assert!(
        home.api.turn_requests().iter().all(|r| !r.all_text.contains("WITHDRAWN")),
        "a withdrawn turn reached the model"
    );
}

/// The turns in session `id`'s turn log that have `text` in their prompt.
fn logged(home: &ClaudeHome, id: &str, text: &str) -> Vec<Value> {
    support::installed::logged_turns(&home.state(), id, text)
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

/// A bot's `run` on session `id` SIGKILLed while the stand-in holds the model's answer (its
/// prompt is in the transcript, no reply yet); returns once the run's claude is gone too (the
/// kernel sends it SIGTERM: it does not finish the turn), then lets the held answer go.
fn kill_a_run_mid_turn(home: &ClaudeHome, id: &str) {
    let bot = home.spawn_run(&["--json", "--key", "telegram:1", "a long task KILLED [hold=bot]"]);
    home.api.wait_held("bot");
    let lock = home.state().join("run").join(format!("{id}.lock"));
    let note: Value = serde_json::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
    let claude = note["child"].as_u64().expect("the run noted its claude") as u32;
    unsafe { libc::kill(bot.id() as i32, libc::SIGKILL) };
    let out = bot.wait_with_output().unwrap();
    assert!(!out.status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while alive(claude) {
        assert!(std::time::Instant::now() < deadline, "the killed run's claude lives on");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    home.api.release("bot");
}

/// The killed turn is logged exactly once, as the transcript shows it: its prompt, and no reply
/// (its claude never wrote one, then or later: no second writer).
fn assert_killed_turn_logged_once(home: &ClaudeHome, project: &std::path::Path, id: &str) {
    let found = logged(home, id, "KILLED");
    assert_eq!(found.len(), 1, "the killed turn is logged once: {found:?}");
    assert_eq!(found[0]["key"], "telegram:1");
    assert_eq!(found[0]["reply"], "(the run ended before claude replied)", "{found:?}");
    let transcript = std::fs::read_to_string(home.transcript_path(project, id)).unwrap();
    assert!(!transcript.contains("last=a long task KILLED"), "the killed run's claude answered after all");
}

#[test]
fn a_bot_run_killed_mid_turn_is_logged_once_and_an_open_terminal_must_load_it() {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    kill_a_run_mid_turn(&home, &id);
    // The terminal's prompt takes the session: the killed turn is logged, and the terminal,
    // which loaded before it, is behind by exactly that turn.
    term.type_line("the person says COIMBRA");
    let screen = term.wait_for("the refusal or the reply", |s| {
        (s.contains("/resume") && s.contains("telegram:1")) || s.contains("last=the person says COIMBRA")
    });
    assert!(
        home.api.turn_requests().iter().all(|r| !r.last_user_text.contains("COIMBRA")),
        "a terminal behind a killed bot turn answered on its stale leaf:\n{screen}"
    );
    assert!(screen.contains("telegram:1 (1 turn)"), "{screen}");
    term.keys(&["C-u"]);
    term.exit();
    // A later turn of another surface: the killed prompt is in the conversation it continues.
    run_json(&home, &["--key", "discord:2", "--session", &id, "and then EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("a long task KILLED"), "{}", seen.all_text);
    assert_killed_turn_logged_once(&home, &project, &id);
}

#[test]
fn the_turn_of_a_killed_run_is_logged_once_however_many_processes_meet_the_session_at_once() {
    let (home, project, id) = a_bot_session();
    kill_a_run_mid_turn(&home, &id);
    let transcript = home.transcript_path(&project, &id);
    let start = serde_json::json!({
        "session_id": id, "cwd": project, "transcript_path": transcript, "source": "resume",
        "hook_event_name": "SessionStart",
    })
    .to_string();
    let mut runs = Vec::new();
    let mut hooks = Vec::new();
    for i in 0..3 {
        let key = format!("discord:{i}");
        let prompt = format!("after the kill {i}");
        runs.push(home.spawn_run(&["--json", "--key", &key, "--session", &id, "--wait", "120", &prompt]));
        let mut hook = home
            .clawsess_cmd(&["hook", "session-start"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut hook.stdin.take().unwrap(), start.as_bytes()).unwrap();
        hooks.push(hook);
    }
    for hook in hooks {
        let out = hook.wait_with_output().unwrap();
        assert!(out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for run in runs {
        finish(run);
    }
    assert_killed_turn_logged_once(&home, &project, &id);
    assert_eq!(logged(&home, &id, "after the kill").len(), 3);
}

#[test]
fn a_terminal_opened_after_a_run_was_killed_loads_its_turn_and_is_not_behind() {
    let (home, project, id) = a_bot_session();
    kill_a_run_mid_turn(&home, &id);
    // Nobody took the session since: the terminal's start logs the killed turn, which it loaded.
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("the person says COIMBRA");
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("COIMBRA") && seen.all_text.contains("a long task KILLED"));
    term.exit();
    assert_killed_turn_logged_once(&home, &project, &id);
}
