//! The latest topic (`show --topic`, `attach`) of transcripts the real Claude Code CLI wrote
//! while the stand-in Messages API had it call tools (Bash, Read, Edit, Write).

mod support;

use std::fs;
use std::time::Duration;

use serde_json::{Value, json};
use support::real_claude::{ClaudeHome, run_with_stdin};
use support::stand_in_api::ToolCall;

fn env() -> ClaudeHome {
    let home = ClaudeHome::new();
    home.install_clawsess();
    home
}

fn json_of(home: &ClaudeHome, args: &[&str]) -> Value {
    serde_json::from_str(&home.clawsess_ok(args)).unwrap()
}

/// `(tool, target, count, failed, denied)` of each action, in order.
fn actions(topic: &Value) -> Vec<(String, Option<String>, u64, u64, u64)> {
    topic["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["tool"].as_str().unwrap().to_owned(),
                a["target"].as_str().map(str::to_owned),
                a["count"].as_u64().unwrap(),
                a["failed"].as_u64().unwrap(),
                a["denied"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn prompts(topic: &Value) -> Vec<String> {
    topic["prompts"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap().to_owned()).collect()
}

fn action(
    tool: &str,
    target: Option<&str>,
    count: u64,
    failed: u64,
    denied: u64,
) -> (String, Option<String>, u64, u64, u64) {
    (tool.to_owned(), target.map(str::to_owned), count, failed, denied)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// `clawsess run --key KEY -A --permission-mode -A acceptEdits -- PROMPT`, as a bot that lets
/// Claude Code edit files would; returns the result object.
fn bot_turn(home: &ClaudeHome, key: &str, prompt: &str) -> Value {
    let args = ["run", "--json", "--key", key, "-A", "--permission-mode", "-A", "acceptEdits", "--", prompt];
    let out = run_with_stdin(&mut home.clawsess_cmd(&args), "", Duration::from_secs(120));
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_coding_turn_shows_its_edits_commands_and_prompts_and_who_spoke_last() {
    let home = env();
    let project = home.project("app");
    let notes = project.join("notes.txt");
    fs::write(&notes, "old line\n").unwrap();
    let first = home.run_p_json(&project, &[], "look around [bash=echo planning]");
    let id = first["session_id"].as_str().unwrap().to_owned();
    home.clawsess_ok(&["attach", &id, "--key", "telegram:1"]);

    // Edit needs a Read of the file first in the same session.
    home.api.script_tools(
        "FIX-NOTES",
        vec![
            ToolCall::new("Read", json!({"file_path": notes})),
            ToolCall::new(
                "Edit",
                json!({"file_path": notes, "old_string": "old line", "new_string": "new line"}),
            ),
            ToolCall::new("Write", json!({"file_path": project.join("docs/new.md"), "content": "hi\n"})),
            ToolCall::bash("false"),
            ToolCall::bash("echo tests pass"),
            ToolCall::bash("false"),
        ],
    );
    let turn = bot_turn(&home, "telegram:1", "FIX-NOTES please fix the notes");
    assert_eq!(turn["session_id"], id.as_str());
    assert_eq!(fs::read_to_string(&notes).unwrap(), "new line\n", "the Edit really ran");
    assert!(project.join("docs/new.md").is_file(), "the Write really ran");
    // What the model saw: the edit went through, and `false` failed.
    let last = home.api.turn_requests().pop().unwrap();
    assert!(last.all_text.contains("has been updated successfully"), "{}", last.all_text);
    assert!(last.all_text.contains("Exit code 1"), "{}", last.all_text);

    let shown = json_of(&home, &["show", "--topic", "--json", &id]);
    assert_eq!(keys(&shown), ["cwd", "name", "session_id", "topic"]);
    let topic = &shown["topic"];
    assert_eq!(keys(topic), ["actions", "actions_omitted", "at", "last_reply", "last_surface", "prompts"]);
    assert_eq!(prompts(topic), ["look around [bash=echo planning]", "FIX-NOTES please fix the notes"]);
    assert_eq!(
        actions(topic),
        [
            action("Bash", Some("echo planning"), 1, 0, 0),
            action("Read", None, 1, 0, 0),
            action("Edit", Some("notes.txt"), 1, 0, 0),
            action("Write", Some("docs/new.md"), 1, 0, 0),
            action("Bash", Some("false"), 2, 2, 0),
            action("Bash", Some("echo tests pass"), 1, 0, 0),
        ]
    );
    assert_eq!(keys(&topic["actions"][0]), ["count", "denied", "failed", "target", "tool"]);
    assert_eq!(topic["last_surface"], "telegram:1");
    assert_eq!(topic["last_reply"], turn["result"]);
    assert_eq!(topic["actions_omitted"], 0);
    for p in topic["prompts"].as_array().unwrap() {
        assert_eq!(keys(p), ["text", "timestamp"]);
    }
    assert!(topic["at"].as_str().unwrap() >= topic["prompts"][1]["timestamp"].as_str().unwrap());

    // `show --json` and `attach --json` carry the same topic; attach keeps its old fields.
    assert_eq!(json_of(&home, &["show", "--json", &id])["topic"], *topic);
    let attached = json_of(&home, &["attach", &id, "--key", "telegram:2", "--json"]);
    assert_eq!(attached["topic"], *topic);
    assert_eq!(attached["last_prompt"], "FIX-NOTES please fix the notes");
    assert_eq!(attached["last_reply"], turn["result"]);

    let text = home.clawsess_ok(&["attach", &id, "--key", "telegram:2"]);
    assert!(text.contains("2 prompts, the first") && text.contains("last turn by telegram:1"), "{text}");
    assert!(
        text.contains("edited notes.txt; wrote docs/new.md; ran `echo planning`, `false` ×2 (failed), `echo tests pass`; Read"),
        "{text}"
    );
    assert!(text.contains("last prompt: FIX-NOTES please fix the notes"), "{text}");

    // A `claude -p` (no key) spoke last now; it names itself so.
    home.run_p_json(&project, &["--resume", &id], "and now from the terminal [bash=echo back]");
    let topic = &json_of(&home, &["show", "--topic", "--json", &id])["topic"];
    assert_eq!(topic["last_surface"], "claude -p");
    assert_eq!(prompts(topic).len(), 3);
    assert_eq!(actions(topic).last().unwrap(), &action("Bash", Some("echo back"), 1, 0, 0));
    let text = home.clawsess_ok(&["show", "--topic", &id]);
    assert!(
        text.contains("last turn by claude -p") && text.contains("3. and now from the terminal"),
        "{text}"
    );
}

#[test]
fn a_write_that_was_not_permitted_is_listed_as_denied() {
    let home = env();
    let project = home.project("app");
    // `claude -p` without a permission mode may not write files.
    let r = home.run_p_json(&project, &[], "write it [write=out.txt] [bash=echo still here]");
    let id = r["session_id"].as_str().unwrap();
    assert!(!project.join("out.txt").exists());
    assert_eq!(r["permission_denials"][0]["tool_name"], "Write");
    let topic = &json_of(&home, &["show", "--topic", "--json", id])["topic"];
    assert_eq!(
        actions(topic),
        [action("Write", Some("out.txt"), 1, 0, 1), action("Bash", Some("echo still here"), 1, 0, 0)]
    );
    let text = home.clawsess_ok(&["show", "--topic", id]);
    assert!(text.contains("wrote out.txt (denied); ran `echo still here`"), "{text}");
}

#[test]
fn human_output_escapes_control_characters_and_json_keeps_them() {
    let home = env();
    let project = home.project("app");
    let evil = "clipboard \u{1b}]52;c;ZXZpbA==\u{7} and \u{1b}[2J clear";
    let r = home.run_p_json(&project, &[], evil);
    let id = r["session_id"].as_str().unwrap();
    let last = home.api.turn_requests().pop().unwrap();
    assert!(last.last_user_text.contains('\u{1b}'), "the model got the text as typed");

    for args in [vec!["show", "--topic", id], vec!["attach", id, "--key", "k"], vec!["show", id]] {
        let text = home.clawsess_ok(&args);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {text:?}");
        assert!(text.contains("\\u{1b}]52;c;ZXZpbA==\\u{7}"), "{args:?}: {text}");
    }
    let topic = &json_of(&home, &["show", "--topic", "--json", id])["topic"];
    assert_eq!(prompts(topic), [evil]);
}

#[test]
fn show_topic_of_a_session_is_found_by_name_and_a_gone_transcript_is_an_error() {
    let home = env();
    let project = home.project("app");
    let r = home.run_p_json(&project, &[], "just talk");
    let id = r["session_id"].as_str().unwrap();
    home.clawsess_ok(&["name", id, "chat"]);
    let text = home.clawsess_ok(&["show", "--topic", "chat"]);
    assert!(text.contains("(chat)") && text.contains("done:        no tool calls"), "{text}");
    let transcript = home.transcript_path(&project, id);
    fs::remove_file(&transcript).unwrap();
    let out = home.clawsess(&["show", "--topic", "chat"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is gone"));
}
