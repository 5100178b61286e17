//! Live turns end to end with the real Claude Code CLI: `run --stream` events while the turn
//! runs, `run --ask` with `clawsess answer`, `clawsess stop`, and `run --image`. The stand-in
//! Messages API is the barrier (`[hold=NAME]`, `[hold-reply=NAME]`): no assertion depends on
//! how fast anything is.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::installed::{Installed, text};
use support::stand_in_api::ToolCall;

/// Longest wait for anything (a claude turn takes about a second).
const T: Duration = Duration::from_secs(60);

/// The last event of a `run --stream`: its result object.
fn result_of(events: &[Value]) -> &Value {
    let last = events.last().expect("no events");
    assert_eq!(last["type"], "result", "the last line is the result object: {events:#?}");
    last
}

#[test]
fn stream_events_arrive_while_the_turn_runs_and_end_with_the_result() {
    let e = Installed::new("live");
    let mut run = e.project_spawn(&[
        "--stream",
        "--key",
        "chat:1",
        "--",
        "look around [bash=echo hello] [hold-reply=R]",
    ]);
    let session = run.until("session");
    assert_eq!(session["key"], "chat:1");
    assert_eq!(session["resumed"], false);
    assert_eq!(session["cwd"], e.project.to_str().unwrap());
    let tool = run.until("tool");
    assert_eq!(tool["tool"], "Bash");
    assert_eq!(tool["input"]["command"], "echo hello");
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_"), "{tool}");
    // The tool event is out while the model's answer is still held (it is released only
    // below): the turn is not over.
    assert!(run.seen.iter().all(|ev| ev["type"] != "result" && ev["type"] != "text"), "{:#?}", run.seen);
    let held = e
        .api
        .wait_for(T, |r| r.iter().any(|r| r.last_user_text.contains("look around") && r.message_count > 2));
    assert!(held, "the answer after the tool call reached the stand-in");
    e.api.release("R");
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let reply = events.iter().find(|ev| ev["type"] == "text").expect("a text event");
    assert!(reply["text"].as_str().unwrap().contains("stand-in reply"), "{reply}");
    let result = result_of(&events);
    assert_eq!(result["is_error"], false);
    assert_eq!(result["interrupted"], false);
    assert_eq!(result["key"], "chat:1");
    assert_eq!(result["session_id"], session["session_id"]);
    assert_eq!(result["result"], reply["text"]);
    // The model saw the tool's output.
    assert!(e.api.turn_requests().last().unwrap().all_text.contains("hello"));
    // The turn was recorded: the key continues this session.
    assert_eq!(e.current("chat:1").as_deref(), session["session_id"].as_str());
}

#[test]
fn a_chat_users_at_file_reference_stays_text_and_never_reads_the_file() {
    let e = Installed::new("live");
    let secret = e.home().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let prompt = format!("summarize @{} please", secret.display());
    let out = e.project_run(&["--stream", "--key", "chat:at", "--", &prompt]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let req = e.api.turn_requests().pop().unwrap();
    assert!(req.all_text.contains(&prompt), "the prompt as written: {}", req.all_text);
    // Before 2.1.248 Claude Code expands it whatever the message says: a limit doctor reports.
    if support::real_claude::Facts::get().verbatim_prompts() {
        assert!(!req.all_text.contains("TOP-SECRET-CONTENT"), "the file was read into the request");
    }
}

#[test]
fn a_failure_before_claude_is_still_one_result_line() {
    let e = Installed::new("live");
    let out = e.project_run(&["--stream", "--session", "nosuch", "--", "hi"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((result["type"].as_str(), result["is_error"].as_bool()), (Some("result"), Some(true)));
    assert!(result["error"].as_str().unwrap().contains("nosuch"), "{result}");
}

#[test]
fn ask_allow_from_another_process_runs_the_tool_and_a_second_answer_is_refused() {
    let e = Installed::new("live");
    let target = e.project.join("allowed.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:2", "--", &prompt]);
    let tool = run.until("tool");
    let ask = run.until("permission");
    assert_eq!(ask["tool"], "Bash");
    assert_eq!(ask["input"], tool["input"]);
    assert_eq!(ask["timeout_s"], 300);
    let id = ask["request_id"].as_str().unwrap();
    assert!(!target.exists(), "nothing ran before the answer");
    let out = e.clawsess(&["answer", id, "allow"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("allowed Bash for chat:2"));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    assert!(target.exists(), "the allowed tool ran");
    assert_eq!(result_of(&events)["permission_denials"], Value::Array(vec![]));
    let again = e.clawsess(&["answer", id, "deny"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no permission request"), "{}", text(&again));
    assert!(e.request_files().is_empty(), "the turn's requests are gone: {:?}", e.request_files());
    let bad = e.clawsess(&["answer", "../../etc/passwd", "allow"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
}

#[test]
fn ask_deny_keeps_the_tool_from_running_and_tells_the_model_why() {
    let e = Installed::new("live");
    let target = e.project.join("denied.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:3", "--", &prompt]);
    let ask = run.until("permission");
    let id = ask["request_id"].as_str().unwrap().to_owned();
    let out = e.clawsess(&["answer", &id, "deny", "--reason", "not in this folder"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = e.clawsess(&["answer", &id, "allow"]);
    assert_eq!(second.status.code(), Some(1), "a request is answered once: {}", text(&second));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    assert!(!target.exists(), "a denied tool does not run");
    let denials = &result_of(&events)["permission_denials"];
    assert_eq!(denials.as_array().map(Vec::len), Some(1), "{denials}");
    let last = e.api.turn_requests().pop().unwrap();
    assert!(last.all_text.contains("not in this folder"), "the model got the reason");
}

#[test]
fn an_unanswered_request_is_denied_after_the_timeout() {
    let e = Installed::new("live");
    let target = e.project.join("late.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run =
        e.project_spawn(&["--stream", "--ask", "--ask-timeout", "1", "--key", "chat:4", "--", &prompt]);
    let ask = run.until("permission");
    assert_eq!(ask["timeout_s"], 1);
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    assert!(!target.exists());
    assert!(e.api.turn_requests().pop().unwrap().all_text.contains("nobody answered"), "the model was told");
    let late = e.clawsess(&["answer", ask["request_id"].as_str().unwrap(), "allow"]);
    assert_eq!(late.status.code(), Some(1), "{}", text(&late));
}

#[test]
fn stop_interrupts_a_turn_and_the_next_turn_continues_the_session() {
    let e = Installed::new("live");
    let idle = e.clawsess(&["stop", "--key", "chat:5"]);
    assert!(idle.status.success(), "{}", text(&idle));
    assert!(String::from_utf8_lossy(&idle.stdout).contains("nothing is running for chat:5"));

    let mut run = e.project_spawn(&["--stream", "--key", "chat:5", "--", "a long job [hold=LONG]"]);
    let session = run.until("session");
    e.api.wait_held("LONG");
    let out = e.clawsess(&["stop", "--key", "chat:5"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"), "{}", text(&out));
    let (code, events) = run.finish();
    assert_eq!(code, 130, "{events:#?}");
    let result = result_of(&events);
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["session_id"], session["session_id"]);
    assert!(e.turns_with("a long job")[0].client_gone, "claude hung up on the held request");

    let next = e.project_run(&["--json", "--key", "chat:5", "--", "after the stop"]);
    assert!(next.status.success(), "{}", text(&next));
    let next: Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(next["session_id"], session["session_id"], "the same session goes on");
    let seen = &e.turns_with("after the stop")[0];
    assert!(seen.all_text.contains("a long job [hold=LONG]"), "the stopped turn's prompt is in it");
}

/// A plain `run --json` (no --stream: what a shell script or a bot that does not stream
/// starts) stops as cleanly as a streamed one: 130, `"interrupted": true`, and the next turn
/// carries the stopped prompt. (Before every run went through the stream-json driver, it was
/// SIGTERMed: 143, and the prompt was lost.) The warm case: `e2e_warm`.
#[test]
fn stop_of_a_plain_run_interrupts_it_and_the_next_turn_has_its_prompt() {
    let e = Installed::new("live");
    let run = e.project_spawn(&["--json", "--key", "chat:6", "--", "plain and long [hold=PLAIN]"]);
    e.api.wait_held("PLAIN");
    let out = e.clawsess(&["stop", "--key", "chat:6"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"), "{}", text(&out));
    let (code, stdout) = run.finish_text();
    assert_eq!(code, 130, "{stdout}");
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["interrupted"], true, "{result}");
    assert_eq!(result["key"], "chat:6");
    let session = result["session_id"].clone();

    let next = e.project_run(&["--json", "--key", "chat:6", "--", "after the stop"]);
    assert!(next.status.success(), "{}", text(&next));
    let next: Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(next["session_id"], session, "the same session goes on");
    assert!(next.get("interrupted").is_none(), "a plain result stays as -p prints it: {next}");
    let seen = &e.turns_with("after the stop")[0];
    assert!(seen.all_text.contains("plain and long [hold=PLAIN]"), "the stopped turn's prompt is in it");
}

/// Plain `run --json` now goes through the stream-json driver: its object still has exactly
/// the fields `claude -p --output-format json` prints, plus clawsess's `key`, `busy` and
/// `new_session` (this key's first run starts one). The stream-json result's
/// `model_usage_since_last_result` (2.1.328) is left out.
#[test]
fn a_plain_run_json_has_the_fields_claude_p_json_prints() {
    let e = Installed::new("live");
    let id = uuid::Uuid::new_v4().to_string();
    let direct = e.run_p_json(&e.project, &["--session-id", &id], "straight to claude");
    let out = e.project_run(&["--json", "--key", "fields", "--", "through clawsess"]);
    assert!(out.status.success(), "{}", text(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
    let ours: std::collections::BTreeSet<String> =
        ["key", "busy", "new_session"].into_iter().map(str::to_owned).collect();
    let want: std::collections::BTreeSet<String> = keys(&direct).union(&ours).cloned().collect();
    assert_eq!(keys(&run), want, "run --json: {run}\nclaude -p: {direct}");
    assert_eq!((run["type"].as_str(), run["subtype"].as_str()), (Some("result"), Some("success")));
}

#[test]
fn an_image_reaches_the_model_as_an_image_block() {
    let e = Installed::new("live");
    let png = e.project.join("red.png");
    std::fs::write(&png, tiny_png()).unwrap();
    let out = e.project_run(&["--json", "--image", png.to_str().unwrap(), "--", "what is in the picture"]);
    assert!(out.status.success(), "{}", text(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["is_error"], false);
    let req = &e.turns_with("what is in the picture")[0];
    let blocks = req.body["messages"][0]["content"].as_array().unwrap();
    let image = blocks.iter().find(|b| b["type"] == "image").expect("an image block");
    assert_eq!(image["source"]["media_type"], "image/png");
    use base64::Engine;
    assert_eq!(image["source"]["data"], base64::engine::general_purpose::STANDARD.encode(tiny_png()));
}

#[test]
fn a_non_image_or_oversized_file_is_refused_before_claude_starts() {
    let e = Installed::new("live");
    let fake = e.project.join("notes.png");
    std::fs::write(&fake, "just text").unwrap();
    let big = e.project.join("big.png");
    let mut bytes = tiny_png();
    bytes.resize(5 * 1024 * 1024 + 1, 0);
    std::fs::write(&big, bytes).unwrap();
    for (file, why) in [(&fake, "not a PNG, JPEG, GIF or WebP"), (&big, "5 MB")] {
        let out = e.project_run(&["--stream", "--image", file.to_str().unwrap(), "--", "look"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(result["error"].as_str().unwrap().contains(why), "{result}");
    }
    let missing = e.project_run(&["--image", "/nonexistent/x.png", "--", "look"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(e.api.requests().is_empty(), "claude never started");
}

#[test]
fn a_sigkilled_run_waiting_for_an_answer_leaves_the_session_usable() {
    let e = Installed::new("live");
    // A session with a turn already (a new one killed before claude wrote its transcript
    // would have none to continue).
    let first = e.project_run(&["--stream", "--key", "chat:7", "--", "hello first"]);
    assert!(first.status.success(), "{}", text(&first));
    let target = e.project.join("never.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:7", "--", &prompt]);
    let session = run.until("session");
    let ask = run.until("permission");
    unsafe { libc::kill(run.pid() as i32, libc::SIGKILL) };
    let _ = run.finish();
    let late = e.clawsess(&["answer", ask["request_id"].as_str().unwrap(), "allow"]);
    assert_eq!(late.status.code(), Some(1), "{}", text(&late));
    let next = e.project_run(&[
        "--stream",
        "--key",
        "chat:7",
        "--session",
        session["session_id"].as_str().unwrap(),
        "--wait",
        "30",
        "--",
        "carry on",
    ]);
    assert!(next.status.success(), "{}", text(&next));
    assert!(!target.exists(), "the unanswered tool never ran");
    let seen = &e.turns_with("carry on")[0].all_text;
    assert!(seen.contains("hello first"), "the same session goes on");
    assert!(e.request_files().is_empty(), "{:?}", e.request_files());
}

/// Median time from the stand-in finishing a tool_use answer to the `tool` event being read
/// from `run --stream`'s stdout, over 20 tool calls in one turn. Run with
/// `cargo test --release --test e2e_live -- --ignored --nocapture tool_event_latency`.
#[test]
#[ignore]
fn tool_event_latency() {
    let e = Installed::new("live");
    let calls = (0..20).map(|i| ToolCall::bash(&format!("echo {i}"))).collect();
    e.api.script_tools("[latency]", calls);
    let run = e.project_spawn(&["--stream", "--", "[latency]"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + T;
    while seen.len() < 20 {
        let (at, line) = run.lines.recv_timeout(deadline - Instant::now()).expect("20 tool events");
        let wall = support_now_ms() - at.elapsed().as_millis() as u64;
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["type"] == "tool" {
            seen.push((event["id"].as_str().unwrap().to_owned(), wall));
        }
    }
    let (code, _) = run.finish();
    assert_eq!(code, 0);
    let requests = e.api.requests();
    let mut ms: Vec<u64> = seen
        .iter()
        .map(|(id, read_at)| {
            let seq: usize = id.trim_start_matches("toolu_standin_").parse().unwrap();
            let sent = requests.iter().find(|r| r.seq == seq).unwrap().finished_ms;
            read_at.saturating_sub(sent)
        })
        .collect();
    ms.sort();
    eprintln!(
        "tool call answered by the API -> tool event read: median {} ms, min {} ms, max {} ms (n={})",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}

fn support_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A 1x1 PNG.
fn tiny_png() -> Vec<u8> {
    let hex = "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082";
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}
