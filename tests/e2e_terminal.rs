//! The real interactive Claude Code (in tmux) left open while a bot adds turns: the person's
//! next prompt is refused as behind, `/resume` loads the bot's turns, and nothing is lost for
//! any later reader. Waits are on what the screen or the stand-in shows, never on time.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::real_claude::ClaudeHome;
use support::terminal::{Terminal, a_bot_session, resume_in_terminal, run_json};

/// What the prompt box holds: the last line that starts with the prompt sign.
fn in_box(screen: &str) -> String {
    let line = screen.lines().rfind(|l| l.starts_with('❯')).unwrap_or_default();
    line.trim_start_matches('❯').trim_matches(|c: char| c.is_whitespace()).to_owned()
}

#[test]
fn a_terminal_left_open_is_refused_until_it_resumes_and_no_surface_loses_a_turn() {
    let (home, project, id) = a_bot_session();

    let term = resume_in_terminal(&home, &project, &id);
    term.type_line("the person says BRAGA");
    assert!(home.api.wait_for(Duration::from_secs(90), |r| {
        r.iter().any(|r| r.last_user_text.contains("BRAGA") && r.finished_ms > 0)
    }));
    term.wait_for("the reply to BRAGA", |s| s.contains("last=the person says BRAGA"));

    // The bot adds a turn while the terminal stays open.
    run_json(&home, &["--key", "telegram:1", "book the hotel in LISBON"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("BRAGA"), "the bot saw the terminal's turn");

    // The person's next prompt is refused: the terminal is behind.
    term.type_line("what did the bot do COIMBRA");
    let screen = term.wait_for("the refusal", |s| s.contains("/resume") && s.contains("telegram:1"));
    assert!(screen.contains(&id), "the refusal names the session to resume:\n{screen}");
    assert!(home.api.turn_requests().iter().all(|r| !r.last_user_text.contains("COIMBRA")), "never answered");

    // /resume loads the bot's turn; the prompt then goes through, after it.
    term.keys(&["C-u"]);
    term.type_line(&format!("/resume {id}"));
    term.wait_for("the bot's turn after /resume", |s| s.contains("LISBON"));
    term.type_line("again after resume FARO");
    assert!(
        home.api.wait_for(Duration::from_secs(90), |r| r.iter().any(|r| r.last_user_text.contains("FARO")))
    );
    let req = home.api.turn_requests().into_iter().find(|r| r.last_user_text.contains("FARO")).unwrap();
    assert!(req.all_text.contains("LISBON") && req.all_text.contains("BRAGA"), "{}", req.all_text);
    term.wait_for("the reply to FARO", |s| s.contains("last=again after resume FARO"));

    // The terminal closes; every later reader sees every turn.
    term.exit();
    run_json(&home, &["--key", "telegram:1", "and after the terminal closed"]);
    let last = home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "FARO"] {
        assert!(last.all_text.contains(word), "{word} lost: {}", last.all_text);
    }
    assert!(!last.all_text.contains("COIMBRA"), "the refused prompt never entered the conversation");
}

#[test]
fn a_terminal_closed_while_behind_without_a_prompt_loses_no_bot_turn() {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("the person says BRAGA");
    for turn in ["book the hotel in LISBON", "and the train to EVORA"] {
        run_json(&home, &["--key", "telegram:1", turn]);
    }
    // Closed behind, without a prompt: its exit checkpoint is an ancestor of the bot's turns.
    term.exit();
    run_json(&home, &["--key", "telegram:1", "after the terminal closed"]);
    let last = home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "EVORA"] {
        assert!(last.all_text.contains(word), "{word} lost: {}", last.all_text);
    }
}

/// A terminal on the bot's session with a turn of its own (BRAGA), a bot turn after it
/// (LISBON), and its next prompt (COIMBRA) refused as behind: Claude Code has written the
/// refusal notice onto the terminal's old leaf.
fn a_terminal_refused_as_behind() -> (ClaudeHome, std::path::PathBuf, String, Terminal) {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("the person says BRAGA");
    run_json(&home, &["--key", "telegram:1", "book the hotel in LISBON"]);
    term.type_line("what did the bot do COIMBRA");
    term.wait_for("the refusal", |s| s.contains("/resume") && s.contains("telegram:1"));
    (home, project, id, term)
}

#[test]
fn a_terminal_refused_as_behind_and_closed_without_resume_loses_no_bot_turn() {
    let (home, project, id, term) = a_terminal_refused_as_behind();
    // Closed without /resume: its exit checkpoint names that notice (Claude Code 2.1.328), and
    // would send every later resume down the old branch without LISBON.
    term.keys(&["C-u"]);
    term.exit();
    assert!(!term.alive(), "the terminal did not exit");

    let transcript = home.transcript_path(&project, &id);
    let lines: Vec<Value> = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let checkpoints: Vec<&Value> = lines.iter().filter(|l| l["type"] == "last-prompt").collect();
    let newest = checkpoints.last().expect("Claude Code wrote checkpoints");
    // The branch it names, from that message up.
    let mut branch = String::new();
    let mut at = newest["leafUuid"].clone();
    while let Some(line) = lines.iter().find(|l| l["uuid"] == at && !at.is_null()) {
        branch.push_str(&line["message"].to_string());
        at = line["parentUuid"].clone();
    }
    assert!(
        branch.contains("LISBON") && branch.contains("BRAGA"),
        "the newest checkpoint names the branch with the newest turn: {branch}"
    );

    // A plain `claude -p --resume` (no clawsess in its way) and the bot's next run see it all.
    home.run_p_json(&project, &["--resume", &id], "a script resumes OBIDOS");
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("OBIDOS"));
    for word in ["PORTO", "BRAGA", "LISBON"] {
        assert!(seen.all_text.contains(word), "claude -p lost {word}: {}", seen.all_text);
    }
    run_json(&home, &["--key", "telegram:1", "after the terminal closed"]);
    let last = home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "OBIDOS"] {
        assert!(last.all_text.contains(word), "{word} lost: {}", last.all_text);
    }
    assert!(!last.all_text.contains("COIMBRA"), "the refused prompt never entered the conversation");
    let list = home.clawsess_ok(&["list", "--json"]);
    assert!(!list.contains("\"forked\": true"), "a refusal notice is no forked turn: {list}");
}

#[test]
fn a_terminal_refused_as_behind_whose_window_is_closed_loses_no_bot_turn() {
    let (home, project, id, term) = a_terminal_refused_as_behind();
    // The window closes: the terminal gets SIGHUP, not /exit.
    let _ = Command::new("tmux").args(["kill-session", "-t", &term.name]).status();
    // Until its claude has gone (whatever it writes as it goes is written by then).
    let record = home.state().join("sessions").join(format!("{id}.json"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rec: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
        // The live pids: the live file's when it overlays the record (docs/STATE.md).
        let live = record.parent().unwrap().parent().unwrap().join("live").join(format!("{id}.json"));
        let live: Option<Value> =
            std::fs::read_to_string(live).ok().and_then(|t| serde_json::from_str(&t).ok());
        let rec = live.filter(|l| l["stamp"] == rec["stamp"]).unwrap_or(rec);
        let open = rec["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()));
        if !open {
            break;
        }
        assert!(Instant::now() < deadline, "the closed terminal's claude never exited: {rec}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A person resumes in a new terminal before any bot turn.
    let out = home.run_p(&project, &["--output-format", "json", "--resume", &id], "back again OBIDOS");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("OBIDOS"));
    for word in ["PORTO", "BRAGA", "LISBON"] {
        assert!(seen.all_text.contains(word), "{word} lost: {}", seen.all_text);
    }
}

#[test]
fn turns_a_person_rewound_away_are_not_told_as_a_fork() {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("first person turn ALPHA");
    term.turn("second person turn BETA");
    // `/rewind` to before BETA, conversation only: BETA's turn is left on a branch of its own.
    term.type_line("/rewind");
    term.wait_for("the rewind menu", |s| s.contains("Restore the code and/or conversation"));
    term.keys(&["Up"]);
    term.keys(&["Enter"]);
    term.wait_for("the restore choices", |s| s.contains("Restore conversation"));
    term.keys(&["Enter"]);
    term.wait_for("the restored prompt box", |s| !s.contains("Restore conversation"));
    term.keys(&["C-u"]);
    term.turn("after the rewind GAMMA");
    term.exit();

    run_json(&home, &["--key", "telegram:1", "and now EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "ALPHA", "GAMMA"] {
        assert!(seen.all_text.contains(word), "{word} lost: {}", seen.all_text);
    }
    assert!(!seen.all_text.contains("second person turn BETA"), "rewound away: {}", seen.all_text);
    assert!(!seen.all_text.contains("This conversation forked"), "{}", seen.all_text);
    let list = home.clawsess_ok(&["list", "--json"]);
    assert!(!list.contains("\"forked\": true"), "a rewind is no fork: {list}");
}

#[test]
fn a_compacted_conversation_is_no_fork() {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("first person turn ALPHA");
    term.type_line("/compact");
    term.wait_for("the compaction", |s| s.to_lowercase().contains("compacted"));
    term.type_line("after compaction GAMMA");
    // The prompt after a compaction goes out behind a caveat: found by the stand-in, and its
    // reply then waited for on screen.
    assert!(home.api.wait_for(Duration::from_secs(90), |r| {
        r.iter().any(|r| r.is_main_turn && r.last_user_text.contains("GAMMA") && r.finished_ms > 0)
    }));
    let seq = home.api.turn_requests().into_iter().find(|r| r.last_user_text.contains("GAMMA")).unwrap().seq;
    term.wait_for("the reply to GAMMA", |s| s.contains(&format!("stand-in reply #{seq}:")));
    term.exit();
    run_json(&home, &["--key", "telegram:1", "and now EVORA"]);
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("GAMMA"), "{}", seen.all_text);
    assert!(!seen.all_text.contains("This conversation forked"), "{}", seen.all_text);
    let list = home.clawsess_ok(&["list", "--json"]);
    assert!(!list.contains("\"forked\": true"), "a compaction is no fork: {list}");
}

#[test]
fn clawsess_commands_in_a_terminal_behind_run_in_the_hook_without_a_model_turn() {
    let (home, project, id) = a_bot_session();
    let term = resume_in_terminal(&home, &project, &id);
    term.turn("the person says BRAGA");
    // Attached from the terminal (not behind yet): every key now talks to this session.
    let before = home.api.requests().len();
    term.type_line("/attach");
    term.wait_for("/attach's output", |s| s.contains("Attached every key (global)"));
    // The bot adds a turn: the terminal is behind.
    run_json(&home, &["--key", "telegram:1", "book the hotel in LISBON"]);
    let after_bot = home.api.requests().len();

    term.type_line("/sessions");
    let short = &id[..8];
    let screen = term.wait_for("/sessions' table", |s| s.contains(&format!("(this conversation: {short})")));
    assert!(screen.contains("telegram:1") && screen.contains("~/work/trip"), "{screen}");
    term.type_line("/detach");
    term.wait_for("/detach's output", |s| {
        s.contains(&format!("Detached the global attachment (was {short})"))
    });
    let current = home.clawsess(&["current", "--key", "telegram:9"]);
    assert!(!current.status.success(), "detached for real: {}", String::from_utf8_lossy(&current.stdout));
    // No model request for any of the three commands, none with their text.
    assert_eq!(home.api.requests().len(), after_bot, "no request after the bot's turn");
    let commands_sent: Vec<_> = home.api.requests()[before..]
        .iter()
        .filter(|r| {
            ["/attach", "/sessions", "/detach", "command-message"].iter().any(|c| r.all_text.contains(c))
        })
        .map(|r| r.seq)
        .collect();
    assert!(commands_sent.is_empty(), "requests with a command: {commands_sent:?}");

    // Still behind (a command is no catch-up): the prompt is refused, and the refusal's way
    // back loses no typing: Ctrl+S, /resume, the prompt is back in the box.
    term.type_line("what did the bot do COIMBRA");
    term.wait_for("the refusal", |s| s.contains("Ctrl+S") && s.contains(&format!("/resume {id}")));
    term.keys(&["C-s"]);
    term.wait_for("the box set aside", |s| in_box(s).is_empty());
    term.type_line(&format!("/resume {id}"));
    term.wait_for("the prompt back in the box", |s| {
        s.contains("LISBON") && in_box(s) == "what did the bot do COIMBRA"
    });
    term.keys(&["Enter"]);
    assert!(
        home.api
            .wait_for(Duration::from_secs(90), |r| r.iter().any(|r| r.last_user_text.contains("COIMBRA")))
    );
    let req = home.api.turn_requests().into_iter().find(|r| r.last_user_text.contains("COIMBRA")).unwrap();
    assert!(req.all_text.contains("LISBON") && req.all_text.contains("BRAGA"), "{}", req.all_text);
    term.wait_for("the reply to COIMBRA", |s| s.contains("last=what did the bot do COIMBRA"));

    // No fork: every later reader sees every turn.
    term.exit();
    run_json(&home, &["--key", "telegram:1", "and after the terminal closed"]);
    let last = home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "COIMBRA"] {
        assert!(last.all_text.contains(word), "{word} lost: {}", last.all_text);
    }
    assert!(
        !last.all_text.contains("not sent to the model"),
        "the model never sees a command: {}",
        last.all_text
    );
    let list = home.clawsess_ok(&["list", "--json"]);
    assert!(!list.contains("\"forked\": true"), "a command is no forked turn: {list}");
}
