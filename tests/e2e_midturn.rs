//! A message that arrives mid-turn, and what Claude asks the person, end to end with the real
//! Claude Code CLI: `run --ask` questions (AskUserQuestion) and plans (ExitPlanMode) answered
//! by `clawsess answer`, and `run --steer` into a turn in progress. The stand-in Messages API
//! is the barrier (`[hold=NAME]`): no assertion depends on how fast anything is.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::installed::{Installed, Running, read_lines, text};
use support::real_claude::{ClaudeHome, Cooling};
use support::stand_in_api::{ToolCall, color_question, last_tool_results};

/// Longest wait for anything (a claude turn takes about a second).
const T: Duration = Duration::from_secs(60);

#[test]
fn a_question_answered_with_a_choice_reaches_the_model() {
    let e = Installed::new("live");
    e.api.script_tools("[ask-color]", vec![color_question(false)]);
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:q", "--", "style it [ask-color]"]);
    let q = run.until("question");
    assert_eq!(q["timeout_s"], 300);
    let first = &q["questions"][0];
    assert_eq!(first["question"], "Which color should the button be?");
    assert_eq!(first["multi"], false);
    assert_eq!(first["options"][1], json!({"label": "Blue", "description": "calm"}));
    let id = q["request_id"].as_str().unwrap().to_owned();
    // A label no question offers, and a plain allow, are refused; the question still waits.
    let wrong = e.clawsess(&["answer", &id, "--choice", "Purple"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("\"Blue\""), "{}", text(&wrong));
    let allow = e.clawsess(&["answer", &id, "allow"]);
    assert_eq!(allow.status.code(), Some(1), "{}", text(&allow));
    let out = e.clawsess(&["answer", &id, "--choice", "blue"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered the question for chat:q"));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let results = last_tool_results(&e.api);
    assert!(results.contains("Which color should the button be?") && results.contains("Blue"), "{results}");
    assert!(!results.contains("declined"), "{results}");
    assert!(e.request_files().is_empty());
}

#[test]
fn a_question_answered_in_own_words_and_a_multi_select_reach_the_model() {
    let e = Installed::new("live");
    e.api.script_tools("[ask-many]", vec![color_question(true)]);
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:m", "--", "style it [ask-many]"]);
    let q = run.until("question");
    assert_eq!(q["questions"][0]["multi"], true);
    let id = q["request_id"].as_str().unwrap().to_owned();
    let out = e.clawsess(&["answer", &id, "--choice", "Red", "--choice", "Green"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let results = last_tool_results(&e.api);
    assert!(results.contains("Red, Green"), "{results}");

    e.api.script_tools("[ask-own]", vec![color_question(false)]);
    let mut run = e.project_spawn(&["--stream", "--ask", "--key", "chat:o", "--", "style it [ask-own]"]);
    let id = run.until("question")["request_id"].as_str().unwrap().to_owned();
    let out = e.clawsess(&["answer", &id, "--text", "a soft teal"]);
    assert!(out.status.success(), "{}", text(&out));
    let (code, _) = run.finish();
    assert_eq!(code, 0);
    assert!(last_tool_results(&e.api).contains("a soft teal"), "{}", last_tool_results(&e.api));
}

#[test]
fn a_plan_approved_from_answer_lets_claude_leave_plan_mode() {
    let e = Installed::new("live");
    let plan = "1. Add the flag\n2. Test it";
    e.api.script_tools("[plan-it]", vec![ToolCall::new("ExitPlanMode", json!({"plan": plan}))]);
    let mut run = e.project_spawn(&[
        "--stream",
        "--ask",
        "--key",
        "chat:p",
        "-A",
        "--permission-mode",
        "-A",
        "plan",
        "--",
        "plan it [plan-it]",
    ]);
    let p = run.until("plan");
    assert!(p["plan"].as_str().unwrap().contains("Add the flag"), "{p}");
    let id = p["request_id"].as_str().unwrap().to_owned();
    let choice = e.clawsess(&["answer", &id, "--choice", "Yes"]);
    assert_eq!(choice.status.code(), Some(1), "a plan takes no choice: {}", text(&choice));
    let out = e.clawsess(&["answer", &id, "allow"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved the plan"));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let results = last_tool_results(&e.api);
    assert!(results.contains("approved"), "{results}");
}

#[test]
fn a_plan_sent_back_with_text_keeps_claude_planning_and_tells_it_why() {
    let e = Installed::new("live");
    e.api.script_tools(
        "[plan-back]",
        vec![ToolCall::new("ExitPlanMode", json!({"plan": "1. Rewrite everything"}))],
    );
    let mut run = e.project_spawn(&[
        "--stream",
        "--ask",
        "--key",
        "chat:pb",
        "-A",
        "--permission-mode",
        "-A",
        "plan",
        "--",
        "plan it [plan-back]",
    ]);
    let id = run.until("plan")["request_id"].as_str().unwrap().to_owned();
    let out = e.clawsess(&["answer", &id, "--text", "smaller steps please"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("keeps planning"));
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let results = last_tool_results(&e.api);
    assert!(results.contains("smaller steps please"), "{results}");
}

#[test]
fn an_unanswered_question_times_out_and_the_model_is_told() {
    let e = Installed::new("live");
    e.api.script_tools("[ask-late]", vec![color_question(false)]);
    let mut run = e.project_spawn(&[
        "--stream",
        "--ask",
        "--ask-timeout",
        "1",
        "--key",
        "chat:t",
        "--",
        "style it [ask-late]",
    ]);
    let q = run.until("question");
    assert_eq!(q["timeout_s"], 1);
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    let results = last_tool_results(&e.api);
    assert!(results.contains("nobody answered the question within 1 s"), "{results}");
    let late = e.clawsess(&["answer", q["request_id"].as_str().unwrap(), "--choice", "Red"]);
    assert_eq!(late.status.code(), Some(1), "{}", text(&late));
}

/// What Claude Code does with a second user message written to its stdin while its turn runs
/// (the fact `run --steer` builds on; docs/MIDTURN.md): claude driven directly, the first
/// prompt held at the stand-in until claude has queued the second message. Returns claude's
/// lines and the transcript.
fn probe_mid_turn(e: &Installed, first: &str, hold: &str) -> (Vec<Value>, String) {
    use std::io::Write;
    let mut claude = e
        .claude_p(&e.project)
        .args(["--input-format", "stream-json", "--output-format", "stream-json", "--verbose"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = claude.stdin.take().unwrap();
    let lines = read_lines(claude.stdout.take().unwrap());
    let user = |text: &str, uuid: &str| {
        let m = json!({"type": "user", "uuid": uuid, "message": {"role": "user", "content": text},
                       "parent_tool_use_id": null, "session_id": ""});
        format!("{m}\n")
    };
    stdin.write_all(user(first, "00000000-0000-4000-8000-00000000000a").as_bytes()).unwrap();
    e.api.wait_held(hold);
    let steer = "00000000-0000-4000-8000-00000000000b";
    stdin.write_all(user("STEER-B also say banana", steer).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut seen: Vec<Value> = Vec::new();
    let (mut started_at, mut done) = (None, false);
    while !(done && started_at.is_some_and(|at| seen[at..].iter().any(|l| l["type"] == "result"))) {
        let (_, line) = lines.recv_timeout(T).expect("claude went quiet");
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["type"] == "command_lifecycle" && v["command_uuid"] == steer {
            match v["state"].as_str() {
                Some("queued") => e.api.release(hold),
                Some("started") => started_at = Some(seen.len()),
                Some("completed") => done = true,
                _ => {}
            }
        }
        seen.push(v);
    }
    drop(stdin);
    let _ = claude.wait();
    let session =
        seen.iter().find(|l| l["subtype"] == "init").unwrap()["session_id"].as_str().unwrap().to_owned();
    let transcript = std::fs::read_to_string(e.transcript_path(&e.project, &session)).unwrap_or_default();
    (seen, transcript)
}

#[test]
fn claude_takes_a_message_sent_mid_turn_at_its_next_step_or_right_after_its_answer() {
    // At a step with a tool call: the model gets it with the tool result, one result.
    let e = Installed::new("live");
    let (lines, transcript) = probe_mid_turn(&e, "job A [bash=echo one] [hold=H1]", "H1");
    let results = lines.iter().filter(|l| l["type"] == "result").count();
    assert_eq!(results, 1, "{lines:#?}");
    let reqs = e.api.turn_requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].all_text.contains("The user sent a new message while you were working:\nSTEER-B"));
    assert!(transcript.contains("absorbed_mid_turn"), "{transcript}");
    // While the model writes its last answer: the next turn, right after the result.
    let e = Installed::new("live");
    let (lines, _) = probe_mid_turn(&e, "job A no tools [hold=H2]", "H2");
    let results = lines.iter().filter(|l| l["type"] == "result").count();
    assert_eq!(results, 2, "{lines:#?}");
    assert_eq!(e.api.turn_requests()[1].last_user_text, "STEER-B also say banana");
    // Either way claude says when it is done with each message (it was given a uuid).
    let done = |l: &&Value| l["type"] == "command_lifecycle" && l["state"] == "completed";
    assert!(lines.iter().filter(done).count() >= 1, "{lines:#?}");
}

#[test]
fn a_steer_reaches_the_model_before_the_cold_turn_in_progress_ends() {
    let e = Installed::new("live");
    let mut first =
        e.project_spawn(&["--stream", "--key", "chat:s", "--", "job A [bash=echo one] [hold=S1]"]);
    first.until("session");
    e.api.wait_held("S1");
    let mut steer =
        e.project_spawn(&["--stream", "--steer", "--key", "chat:s", "--", "STEER-B also say banana"]);
    let into = steer.until("steer");
    assert_eq!(into["into"], "turn", "{into}");
    assert_eq!(into["key"], "chat:s");
    e.api.release("S1");
    let (code, events) = first.finish();
    assert_eq!(code, 0, "{events:#?}");
    let (steer_code, steered) = steer.finish();
    assert_eq!(steer_code, 0, "{steered:#?}");
    let reqs = e.api.turn_requests();
    assert_eq!(reqs.len(), 2, "one turn: the steer went into it");
    assert!(reqs[1].last_user_text.contains("job A"), "still job A's turn");
    assert!(reqs[1].all_text.contains("STEER-B also say banana"), "the model got the steer");
    let (a, b) = (events.last().unwrap(), steered.last().unwrap());
    assert_eq!((a["type"].as_str(), b["type"].as_str()), (Some("result"), Some("result")));
    assert_eq!(a["result"], b["result"], "the steering run's result is the turn's");
    assert_eq!(b["steered_into"], "chat:s");
    assert!(steered.iter().any(|ev| ev["type"] == "text"), "the turn's events followed: {steered:#?}");
}

#[test]
fn a_steer_with_no_turn_in_progress_runs_as_a_turn_of_its_own() {
    let e = Installed::new("live");
    let mut run = e.project_spawn(&["--stream", "--steer", "--key", "chat:n", "--", "hello there"]);
    let steer = run.until("steer");
    assert_eq!(steer["into"], "queue", "{steer}");
    let (code, events) = run.finish();
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(e.api.turn_requests().pop().unwrap().last_user_text, "hello there");
}

#[test]
fn a_steer_while_the_model_writes_its_answer_runs_right_after_it_in_the_same_run() {
    let e = Installed::new("live");
    let first = e.project_spawn(&["--stream", "--key", "chat:l", "--", "job A no tools [hold=S2]"]);
    e.api.wait_held("S2");
    let mut steer =
        e.project_spawn(&["--stream", "--steer", "--key", "chat:l", "--", "STEER-C now say cherry"]);
    assert_eq!(steer.until("steer")["into"], "turn");
    e.api.release("S2");
    let (code, events) = first.finish();
    assert_eq!(code, 0, "{events:#?}");
    let (steer_code, steered) = steer.finish();
    assert_eq!(steer_code, 0, "{steered:#?}");
    let reqs = e.api.turn_requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[1].last_user_text, "STEER-C now say cherry");
    // Both runs end with the answer to the steer: the turn ends when claude is done with it.
    let (a, b) = (events.last().unwrap(), steered.last().unwrap());
    assert!(a["result"].as_str().unwrap().contains("STEER-C"), "{a}");
    assert_eq!(a["result"], b["result"]);
    // The next turn of the key continues the session, after both.
    let out = e.project_spawn(&["--stream", "--key", "chat:l", "--", "and then"]).finish();
    assert_eq!(out.0, 0);
    assert!(e.api.turn_requests().pop().unwrap().all_text.contains("STEER-C now say cherry"));
}

#[test]
fn a_steer_reaches_the_model_in_a_warm_turn() {
    let e = Cooling(Installed::new("live"));
    let (code, _) =
        e.project_spawn(&["--stream", "--warm", "5m", "--key", "chat:w", "--", "warm up"]).finish();
    assert_eq!(code, 0);
    let mut first = e.project_spawn(&[
        "--stream",
        "--warm",
        "5m",
        "--key",
        "chat:w",
        "--",
        "job W [bash=echo two] [hold=W1]",
    ]);
    assert_eq!(first.until("session")["warm"], true);
    e.api.wait_held("W1");
    let mut steer = e.project_spawn(&["--stream", "--steer", "--key", "chat:w", "--", "STEER-W say walnut"]);
    assert_eq!(steer.until("steer")["into"], "turn");
    e.api.release("W1");
    let (code, events) = first.finish();
    assert_eq!(code, 0, "{events:#?}");
    let (steer_code, steered) = steer.finish();
    assert_eq!(steer_code, 0, "{steered:#?}");
    let last = e.api.turn_requests().pop().unwrap();
    assert!(
        last.last_user_text.contains("job W") && last.all_text.contains("STEER-W say walnut"),
        "{last:#?}"
    );
}

#[test]
fn interrupt_stops_the_turn_in_progress_and_runs_before_the_turn_already_waiting() {
    let e = Installed::new("live");
    let first = e.project_spawn(&["--stream", "--key", "chat:i", "--", "a long job [hold=I1]"]);
    e.api.wait_held("I1");
    // A run of the same key already waits for the session...
    let cwd = e.project.to_str().unwrap().to_owned();
    let mut queued = e
        .clawsess_cmd(&["run", "--cwd", &cwd, "--stream", "--key", "chat:i", "--", "the queued job"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (_, _rest) = support::real_claude::read_stderr_until(&mut queued, "waiting");
    let queued = Running::of(queued);
    // ...and the interrupt goes first.
    let mut urgent =
        e.project_spawn(&["--stream", "--interrupt", "--key", "chat:i", "--", "URGENT do this now"]);
    let told = urgent.until("interrupt");
    assert_eq!(told["stopped"], "chat:i", "{told}");
    let (code, events) = first.finish();
    assert_eq!(code, 130, "the interrupted run exits 130: {events:#?}");
    assert_eq!(events.last().unwrap()["interrupted"], true);
    let (code, events) = urgent.finish();
    assert_eq!(code, 0, "{events:#?}");
    let (code, events) = queued.finish();
    assert_eq!(code, 0, "{events:#?}");
    let order: Vec<String> = e
        .api
        .turn_requests()
        .iter()
        .map(|r| r.last_user_text.clone())
        .filter(|t| t.contains("URGENT") || t.contains("queued job"))
        .collect();
    assert_eq!(order, ["URGENT do this now", "the queued job"], "the interrupt ran first");
    e.api.release("I1");
}

#[test]
fn a_steer_at_a_turn_clawsess_cannot_reach_waits_for_it_and_says_so() {
    let e = Installed::new("live");
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:x", "--", "start"]).finish();
    assert_eq!(code, 0);
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    // A turn of another claude (`claude -p`, as an SDK bot's or a terminal's) on the session.
    let mut other = e.claude_p(&e.project);
    other.args(["--output-format", "json", "--resume", &id]);
    let other = std::thread::spawn(move || {
        support::real_claude::run_with_stdin(&mut other, "their turn [hold=X1]", Duration::from_secs(120))
    });
    e.api.wait_held("X1");
    let mut steer = e.project_spawn(&["--stream", "--steer", "--key", "chat:x", "--", "STEER-X after them"]);
    let told = steer.until("steer");
    assert_eq!(told["into"], "queue", "{told}");
    assert!(told["why"].as_str().unwrap().contains("cannot write into"), "{told}");
    e.api.release("X1");
    assert!(other.join().unwrap().status.success());
    let (code, events) = steer.finish();
    assert_eq!(code, 0, "{events:#?}");
    let reqs = e.api.turn_requests();
    let (theirs, ours) = (&reqs[reqs.len() - 2], &reqs[reqs.len() - 1]);
    assert!(theirs.last_user_text.contains("their turn"));
    assert_eq!(ours.last_user_text, "STEER-X after them", "nothing lost: it ran as its own turn");
    assert!(ours.started_ms >= theirs.finished_ms, "after their turn");
}

/// The turns waiting for `session` (its queue tickets).
fn waiting(e: &Installed, session: &str) -> usize {
    let dir = e.state().join("queue").join(session);
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn wait_until_waiting(e: &Installed, session: &str, n: usize) {
    let deadline = Instant::now() + T;
    while waiting(e, session) < n {
        assert!(Instant::now() < deadline, "{n} waiters never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn turns_waiting_across_surfaces_are_served_in_arrival_order() {
    let e = Installed::new("live");
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:f0", "--", "start"]).finish();
    assert_eq!(code, 0);
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    let busy = e.project_spawn(&["--stream", "--key", "chat:f0", "--", "a long job [hold=F1]"]);
    e.api.wait_held("F1");
    let first = e.project_spawn(&["--stream", "--key", "chat:f1", "--session", &id, "--", "WAITER one"]);
    wait_until_waiting(&e, &id, 1);
    // A person's terminal on the session, waiting in its prompt hook.
    let term = support::terminal::Terminal::start(&e.home, &e.project, &["--resume", &id]);
    term.wait_for("the conversation", |s| s.contains("start"));
    term.type_line("WAITER two");
    wait_until_waiting(&e, &id, 2);
    let third = e.project_spawn(&["--stream", "--key", "chat:f3", "--session", &id, "--", "WAITER three"]);
    wait_until_waiting(&e, &id, 3);
    e.api.release("F1");
    assert_eq!(busy.finish().0, 0);
    assert_eq!(first.finish().0, 0);
    let (code, events) = third.finish();
    assert_eq!(code, 0, "{events:#?}");
    let queued: Vec<&Value> = events.iter().filter(|ev| ev["type"] == "queued").collect();
    assert_eq!(queued.first().copied(), Some(&json!({"type": "queued", "position": 3, "behind": "chat:f0"})));
    let order: Vec<String> = e
        .api
        .turn_requests()
        .iter()
        .map(|r| r.last_user_text.clone())
        .filter(|t| t.starts_with("WAITER"))
        .collect();
    assert_eq!(order, ["WAITER one", "WAITER three"]);
    // The terminal had its turn second, between them: loaded before the turns of chat:f0 and
    // chat:f1, it was then behind and told the person so (clawsess never lets it fork the
    // conversation); chat:f3's turn had not come yet.
    let screen = term.wait_for("the terminal's turn", |s| s.contains("continued this conversation"));
    assert!(screen.contains("chat:f1 (1 turn)") && !screen.contains("chat:f3"), "{screen}");
    assert_eq!(waiting(&e, &id), 0, "the queue is empty again");
}

#[test]
fn runs_of_one_key_and_other_surfaces_are_served_in_arrival_order() {
    let e = Installed::new("live");
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:k", "--", "start"]).finish();
    assert_eq!(code, 0);
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    let busy = e.project_spawn(&["--stream", "--key", "chat:k", "--", "a long job [hold=K1]"]);
    e.api.wait_held("K1");
    // A run of the same key waits for the key's lock; it holds its place in the session's
    // queue meanwhile.
    let first = e.project_spawn(&["--stream", "--key", "chat:k", "--", "WAITER one"]);
    wait_until_waiting(&e, &id, 1);
    let second = e.project_spawn(&["--stream", "--key", "chat:other", "--session", &id, "--", "WAITER two"]);
    wait_until_waiting(&e, &id, 2);
    let third = e.project_spawn(&["--stream", "--key", "chat:k", "--", "WAITER three"]);
    wait_until_waiting(&e, &id, 3);
    let fourth = e.project_spawn(&["--stream", "--key", "chat:k", "--", "WAITER four"]);
    wait_until_waiting(&e, &id, 4);
    e.api.release("K1");
    for run in [busy, first, second, third, fourth] {
        let (code, events) = run.finish();
        assert_eq!(code, 0, "{events:#?}");
    }
    let order: Vec<String> = e
        .api
        .turn_requests()
        .iter()
        .map(|r| r.last_user_text.clone())
        .filter(|t| t.starts_with("WAITER"))
        .collect();
    assert_eq!(order, ["WAITER one", "WAITER two", "WAITER three", "WAITER four"]);
    assert_eq!(waiting(&e, &id), 0, "the queue is empty again");
    let key_dir = e.state().join("run");
    let notes = std::fs::read_dir(key_dir)
        .unwrap()
        .flatten()
        .filter(|d| d.path().extension().is_some_and(|x| x == "waiting"))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .count();
    assert_eq!(notes, 0, "no run waits for its key any more");
}

/// Claude Code has no `Interrupt` hook, and Esc fires none (measured on 2.1.332, the newest
/// published: docs/CLAUDE_CODE.md): a terminal's stopped turn is logged at its next prompt,
/// and a terminal that is behind is told of it as of any finished turn.
#[test]
fn a_terminal_turn_stopped_by_esc_is_logged_and_another_terminal_is_told() {
    let e = Installed::of(ClaudeHome::with_version("2.1.332"), "live");
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:e", "--", "start"]).finish();
    assert_eq!(code, 0);
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    // B loaded the conversation before A's turns, and is told the turns it missed.
    let b = support::terminal::Terminal::start_with_env(
        &e.home,
        &e.project,
        &["--resume", &id],
        &[("CLAWSESS_BEHIND", "note")],
    );
    b.wait_for("the conversation", |s| s.contains("start"));
    let a = support::terminal::Terminal::start(&e.home, &e.project, &["--resume", &id]);
    a.wait_for("the conversation", |s| s.contains("start"));
    a.type_line("STOPPED job [hold=E1]");
    e.api.wait_held("E1");
    a.keys(&["Escape"]);
    let stopped = |reqs: &[support::stand_in_api::Recorded]| {
        reqs.iter().any(|r| r.last_user_text.contains("STOPPED job") && r.client_gone)
    };
    assert!(e.api.wait_for(T, stopped), "Esc stopped the turn (its request was cut off)");
    e.api.release("E1");
    // 2.1.332 puts a prompt stopped before any answer back into the input box: cleared.
    a.keys(&["C-u"]);
    a.turn("AFTER stop");
    b.type_line("B asks");
    let asked = |reqs: &[support::stand_in_api::Recorded]| reqs.iter().any(|r| r.last_user_text == "B asks");
    assert!(e.api.wait_for(T, asked), "B's prompt reached the model");
    let reqs = e.api.turn_requests();
    let b_req = reqs.iter().find(|r| r.last_user_text == "B asks").unwrap();
    assert!(b_req.all_text.contains("STOPPED job"), "B is told of the stopped turn: {}", b_req.all_text);
    assert!(b_req.all_text.contains("AFTER stop"), "and of the turn after it: {}", b_req.all_text);
}

/// The turns logged on `id` whose prompt contains `text`.
fn logged_turns(e: &Installed, id: &str, text: &str) -> Vec<Value> {
    support::installed::logged_turns(&e.home.state(), id, text)
}

/// A terminal's turn that ran a tool and waits for the model's answer (held at the stand-in as
/// `[hold-reply=NAME]`), on a session key `chat:x` started; the session's id.
fn a_terminal_turn_held(e: &Installed, name: &str) -> (support::terminal::Terminal, String) {
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:x", "--", "start"]).finish();
    assert_eq!(code, 0, "{events:#?}");
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    let term = support::terminal::Terminal::start(&e.home, &e.project, &["--resume", &id]);
    term.wait_for("the conversation", |s| s.contains("start"));
    term.type_line(&format!("LONG job [bash=echo step] [hold-reply={name}]"));
    let held = |reqs: &[support::stand_in_api::Recorded]| {
        reqs.iter().any(|r| {
            r.last_user_text.contains("LONG job")
                && r.finished_ms == 0
                && r.body.to_string().contains("tool_result")
        })
    };
    assert!(e.api.wait_for(T, held), "the terminal's turn ran its tool and waits for the answer");
    (term, id)
}

/// Esc in a terminal after Claude began to answer writes `[Request interrupted by user]` and
/// fires no hook: a run finds the terminal's marker, reads the stopped turn off the
/// transcript, logs it and goes ahead (it would wait 15 minutes for a quiet transcript
/// before: `--wait 60` would end busy).
fn a_terminal_turn_stopped_by_esc_frees_the_session_for_a_run(version: &str) {
    let e = Installed::of(ClaudeHome::with_version(version), "live");
    let (term, id) = a_terminal_turn_held(&e, "X1");
    term.keys(&["Escape"]);
    let stopped = |reqs: &[support::stand_in_api::Recorded]| {
        reqs.iter().any(|r| r.last_user_text.contains("LONG job") && r.client_gone)
    };
    assert!(e.api.wait_for(T, stopped), "Esc stopped the turn (its request was cut off)");
    e.api.release("X1");
    let out = e.project_run(&["--json", "--wait", "60", "--key", "chat:x", "--", "after the stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(result["result"].as_str().unwrap().contains("last=after the stop"), "{result}");
    let req = e.turns_with("after the stop").pop().expect("the run's turn reached the model");
    assert!(req.all_text.contains("LONG job"), "the run continued the stopped turn: {}", req.all_text);
    let logged = logged_turns(&e, &id, "LONG job");
    assert_eq!(logged.len(), 1, "the stopped turn is logged once: {logged:?}");
    assert_eq!(logged[0]["key"], "terminal", "{logged:?}");
    let reply = logged[0]["reply"].as_str().unwrap();
    assert!(reply.contains("stopped before"), "{reply}");
    drop(term);
}

#[test]
fn a_terminal_turn_stopped_by_esc_frees_the_session_for_a_run_on_2_1_328() {
    a_terminal_turn_stopped_by_esc_frees_the_session_for_a_run("2.1.328");
}

#[test]
fn a_terminal_turn_stopped_by_esc_frees_the_session_for_a_run_on_2_1_332() {
    a_terminal_turn_stopped_by_esc_frees_the_session_for_a_run("2.1.332");
}

/// The same terminal turn not stopped: still busy, a run with `--wait 0` is refused (75) and
/// the turn, once answered, ends as usual.
#[test]
fn a_terminal_turn_still_running_keeps_the_session_busy() {
    let e = Installed::new("live");
    let (term, _id) = a_terminal_turn_held(&e, "X2");
    let out = e.project_run(&["--json", "--wait", "0", "--key", "chat:x", "--", "too early"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(e.turns_with("too early").is_empty(), "a second turn ran beside the terminal's");
    e.api.release("X2");
    term.wait_for("the terminal's reply", |s| s.contains("last=LONG job"));
}

/// A `claude -p --input-format stream-json` turn stopped by its own `interrupt` control request
/// (as an SDK bot's `interrupt()`): the process lives on, waiting for its next message, and
/// fires no hook; its transcript's `[Request interrupted by user]` frees the session for a run.
#[test]
fn a_stream_json_turn_stopped_by_its_interrupt_frees_the_session_for_a_run() {
    use std::io::Write;
    let e = Installed::new("live");
    let (code, events) = e.project_spawn(&["--stream", "--key", "chat:x", "--", "start"]).finish();
    assert_eq!(code, 0, "{events:#?}");
    let id = events.last().unwrap()["session_id"].as_str().unwrap().to_owned();
    let mut claude = e.stream_json(&e.project, &id).spawn().unwrap();
    let mut stdin = claude.stdin.take().unwrap();
    let lines = read_lines(claude.stdout.take().unwrap());
    let user = json!({"type": "user", "message": {"role": "user", "content": "PIPED job [hold=P1]"},
                      "parent_tool_use_id": null, "session_id": ""});
    stdin.write_all(format!("{user}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    e.api.wait_held("P1");
    let interrupt =
        json!({"type": "control_request", "request_id": "stop-1", "request": {"subtype": "interrupt"}});
    stdin.write_all(format!("{interrupt}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    loop {
        let (_, line) = lines.recv_timeout(T).expect("claude went quiet before its turn's result");
        if serde_json::from_str::<Value>(&line).is_ok_and(|v| v["type"] == "result") {
            break;
        }
    }
    e.api.release("P1");
    let out = e.project_run(&["--json", "--wait", "60", "--key", "chat:x", "--", "after the interrupt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        claude.try_wait().unwrap().is_none(),
        "the interrupted claude -p still waits for its next message"
    );
    let req = e.turns_with("after the interrupt").pop().expect("the run's turn reached the model");
    assert!(req.all_text.contains("PIPED job"), "{}", req.all_text);
    let logged = logged_turns(&e, &id, "PIPED job");
    assert_eq!(logged.len(), 1, "the stopped turn is logged once: {logged:?}");
    assert_ne!(logged[0]["key"], "chat:x", "{logged:?}");
    drop(stdin);
    let _ = claude.wait();
}
