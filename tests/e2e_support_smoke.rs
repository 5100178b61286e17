//! Smoke test of the end-to-end support: the real Claude Code under test (pinned, or
//! `CLAWSESS_TEST_CLAUDE_VERSION`) against the stand-in API.
mod support;

use std::fs;
use std::time::Instant;

use serde_json::json;

use support::real_claude::{ClaudeHome, claude_bin, claude_code_version};

#[test]
fn the_claude_under_test_reports_its_version() {
    let out = std::process::Command::new(claude_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.starts_with(claude_code_version()), "claude --version printed {v:?}");
}

#[test]
fn claude_p_turn_and_resume_continue_one_conversation() {
    let h = ClaudeHome::new();
    let proj = h.project("demo");

    let t = Instant::now();
    let first = h.run_p_json(&proj, &[], "hello");
    eprintln!("first claude -p turn took {:?}", t.elapsed());
    let id = first["session_id"].as_str().expect("session_id").to_string();
    let result = first["result"].as_str().expect("result");
    assert!(result.contains("stand-in reply"), "result: {result}");
    assert!(result.contains("last=hello"), "result: {result}");
    assert_eq!(first["is_error"], false);
    assert!(h.transcript_path(&proj, &id).is_file(), "no transcript for {id}");

    let turns = h.api.turn_requests();
    assert_eq!(turns.len(), 1, "one main-turn request: {:?}", h.api.requests());
    let n1 = turns[0].message_count;
    assert_eq!(turns[0].last_user_text.trim(), "hello");

    let t = Instant::now();
    let second = h.run_p_json(&proj, &["--resume", &id], "again");
    eprintln!("resumed claude -p turn took {:?}", t.elapsed());
    assert_eq!(second["session_id"].as_str(), Some(id.as_str()), "resume kept the id");
    let result2 = second["result"].as_str().expect("result");
    assert!(result2.contains("last=again"), "result: {result2}");

    let turns = h.api.turn_requests();
    assert_eq!(turns.len(), 2);
    let n2 = turns[1].message_count;
    assert!(n2 > n1, "the resumed turn carried the earlier messages ({n1} -> {n2})");
    // The first exchange reached the model in the resumed turn.
    assert!(turns[1].all_text.contains("hello"));
    assert!(turns[1].all_text.contains(result));
    assert!(turns.iter().all(|r| r.finished_ms >= r.started_ms && r.finished_ms > 0));
}

#[test]
fn a_held_answer_waits_for_its_release() {
    let h = ClaudeHome::new();
    let proj = h.project("demo");
    let mut cmd = h.claude_p(&proj);
    cmd.args(["--output-format", "json"]);
    let turn = std::thread::spawn(move || {
        support::real_claude::run_with_stdin(
            &mut cmd,
            "wait here [hold=gate]",
            std::time::Duration::from_secs(120),
        )
    });
    h.api.wait_held("gate");
    assert!(h.api.turn_requests().iter().all(|r| r.finished_ms == 0), "held until released");
    h.api.release("gate");
    let out = turn.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(h.api.turn_requests()[0].finished_ms > 0);
}

#[test]
fn a_scripted_tool_call_runs_and_its_result_reaches_the_stand_in() {
    let h = ClaudeHome::new();
    let proj = h.project("demo");
    let result = h.run_p_json(&proj, &[], "run it [bash=echo tool-output-42]");
    assert_eq!(result["is_error"], false, "{result}");
    let turns = h.api.turn_requests();
    assert!(turns.len() >= 2, "a tool_use answer, then the answer to its result: {turns:?}");
    let last = turns.last().unwrap();
    assert!(last.all_text.contains("tool-output-42"), "the tool's output went back to the model");
    assert!(result["result"].as_str().unwrap().contains("stand-in reply"));
}

/// A fact of Claude Code that the warm design leans on (docs/CLAUDE_CODE.md, "What a hook
/// costs a kept claude"): a kept claude cannot be spared the command hooks of
/// `~/.claude/settings.json` without changing what the model sees. Leaving out the `user`
/// settings source (and handing the user's settings back with `--settings`) keeps the user's
/// hooks but drops the user's skills from the request; `disableAllHooks` drops the user's own
/// hooks too. If this fails, a kept claude might answer clawsess's hooks over stream-json
/// instead of starting a process for each: look again.
#[test]
fn a_kept_claude_cannot_skip_the_user_settings_hooks_without_changing_what_the_model_sees() {
    let home = ClaudeHome::new();
    let skill = home.claude_dir().join("skills").join("zebra");
    fs::create_dir_all(&skill).unwrap();
    fs::write(skill.join("SKILL.md"), "---\nname: zebra\ndescription: USER-SKILL-zebra\n---\nbody\n")
        .unwrap();
    let user = json!({"hooks": {"UserPromptSubmit": [{"hooks": [{"type": "command", "command": "echo USER-HOOK-said"}]}]}});
    home.write_settings(&user);
    let cwd = home.project("p");
    let seen = |args: &[&str]| {
        home.api().clear();
        home.run_p_json(&cwd, args, "hello");
        let turn = home.api().turn_requests().into_iter().last().expect("a turn request");
        let text = turn.body.to_string();
        (text.contains("USER-SKILL-zebra"), text.contains("USER-HOOK-said"))
    };
    assert_eq!(seen(&[]), (true, true), "all sources: the user's skill and hook");
    let user = user.to_string();
    let without_user = ["--setting-sources", "project,local", "--settings", user.as_str()];
    assert_eq!(seen(&without_user), (false, true), "no user source, its settings by flag: the skill is gone");
    assert_eq!(
        seen(&["--settings", r#"{"disableAllHooks":true}"#]),
        (true, false),
        "disableAllHooks: the user's hook is gone"
    );
}
