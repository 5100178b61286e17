//! The cross-session tools (`clawsess mcp`) as the real Claude Code CLI uses them: the
//! stand-in API makes a session's model call `mcp__clawsess__*`, and the assertions are on
//! what each session's model was then sent.

mod support;

use std::fs;
use std::time::Duration;

use serde_json::{Value, json};
use support::mcp_stdio::{self, tool_call};
use support::real_claude::{ClaudeHome, run_with_stdin};
use support::stand_in_api::{Recorded, ToolCall};
use support::terminal::Terminal;

const T: Duration = Duration::from_secs(180);

fn env() -> ClaudeHome {
    let home = ClaudeHome::new();
    home.install_clawsess();
    home
}

/// A new session in project `name` started by `clawsess run --key KEY`; its id.
fn session(home: &ClaudeHome, name: &str, key: &str) -> String {
    let cwd = home.project(name);
    let cwd = cwd.to_str().unwrap();
    let out = home.clawsess_ok(&[
        "run",
        "--json",
        "--new",
        "--cwd",
        cwd,
        "--key",
        key,
        "--",
        &format!("hello {name}"),
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    doc["session_id"].as_str().unwrap().to_owned()
}

/// A `run` turn on `id` whose model may call the clawsess tools (the caller's run allows
/// them, as a bot would in its settings); the result object.
fn turn(home: &ClaudeHome, id: &str, prompt: &str) -> Value {
    let args =
        ["run", "--json", "--session", id, "-A", "--allowedTools", "-A", "mcp__clawsess", "--", prompt];
    let out = run_with_stdin(&mut home.clawsess_cmd(&args), "", T);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "run: {doc:#} {}", String::from_utf8_lossy(&out.stderr));
    doc
}

fn send(session: &str, message: &str) -> ToolCall {
    ToolCall::new("mcp__clawsess__sessions_send", json!({"session": session, "message": message}))
}

/// The main-turn requests whose prompt holds `text`.
fn asked(home: &ClaudeHome, text: &str) -> Vec<Recorded> {
    home.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(text)).collect()
}

/// The last request of the turn whose prompt holds `marker`: it holds the tool's result.
fn after_tool(home: &ClaudeHome, marker: &str) -> Recorded {
    let mut requests = asked(home, marker);
    assert!(requests.len() >= 2, "no request after the tool call of {marker}");
    requests.pop().unwrap()
}

/// Every user and assistant line has its own parent: the transcript never forked.
fn assert_linear(home: &ClaudeHome, id: &str) {
    let rec: Value = serde_json::from_str(&home.clawsess_ok(&["list", "--json"])).unwrap();
    let row = rec.as_array().unwrap().iter().find(|r| r["session_id"] == id).expect("listed");
    assert_eq!(row["forked"], false);
    let text = fs::read_to_string(row["transcript"].as_str().unwrap()).unwrap();
    let mut parents = std::collections::HashSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if !matches!(v["type"].as_str(), Some("user" | "assistant")) || v["isSidechain"] == true {
            continue;
        }
        if let Some(parent) = v["parentUuid"].as_str() {
            assert!(parents.insert(parent.to_owned()), "{id} forked at {parent}:\n{text}");
        }
    }
}

#[test]
fn a_session_asks_another_and_gets_its_reply_as_the_tool_result() {
    let home = env();
    let a = session(&home, "planner", "test:a");
    let b = session(&home, "research", "test:b");
    // B's own settings would accept edits; a send's turn still may not write (A's run did not
    // allow it).
    let research = home.project("research");
    fs::create_dir_all(research.join(".claude")).unwrap();
    fs::write(research.join(".claude/settings.json"), r#"{"permissions":{"defaultMode":"acceptEdits"}}"#)
        .unwrap();
    home.api.script_tools(
        "[ask-b]",
        vec![send(&b[..8], "what did the research find? [from-a] [write=leak.txt]")],
    );
    let done = turn(&home, &a, "ask the research session [ask-b]");
    assert_eq!(done["is_error"], false);
    // `install` registered the server: the model is offered the four tools (deferred, by name).
    let offered = asked(&home, "[ask-b]").remove(0);
    for tool in ["sessions_list", "sessions_history", "sessions_send", "session_status"] {
        assert!(
            offered.all_text.lines().any(|l| l == format!("mcp__clawsess__{tool}")),
            "{tool} not offered"
        );
    }

    // B's model got the message as a prompt of its own conversation (its third message).
    let at_b = asked(&home, "what did the research find? [from-a]");
    assert_eq!(at_b.len(), 2, "one turn on B: its prompt, then the Write's result");
    assert!(at_b[0].message_count >= 3, "B's turn continued B's conversation: {}", at_b[0].message_count);
    let b_reply = &at_b[1].reply;
    assert!(b_reply.starts_with("stand-in reply"), "{b_reply}");
    // A's model got B's reply as the tool's result.
    let back = after_tool(&home, "[ask-b]");
    assert!(back.all_text.contains(&format!("Reply from session {b}")), "{}", back.all_text);
    assert!(back.all_text.contains(b_reply.as_str()), "{}", back.all_text);
    assert!(!research.join("leak.txt").exists(), "the Write needing permission was denied");
    let after_write = asked(&home, "[from-a]").pop().unwrap();
    let tail = &after_write.all_text[after_write.all_text.len().saturating_sub(800)..];
    assert!(after_write.all_text.contains("requested permissions to write to"), "{tail}");
    // B's turn is a run turn of surface session:<A>.
    let status: Value = serde_json::from_str(&home.clawsess_ok(&["status", "--json", &b])).unwrap();
    assert_eq!(status["last_surface"], format!("session:{a}"));
    assert_eq!(status["run_turns"], 2);
    assert_linear(&home, &a);
    assert_linear(&home, &b);
}

#[test]
fn sending_to_itself_or_back_up_the_chain_is_refused_at_once() {
    let home = env();
    let a = session(&home, "one", "test:a");
    let b = session(&home, "two", "test:b");
    home.api.script_tools("[self]", vec![send(&a, "talk to myself")]);
    turn(&home, &a, "send to yourself [self]");
    let back = after_tool(&home, "[self]");
    assert!(back.all_text.contains("cannot send to itself"), "{}", back.all_text);
    assert!(asked(&home, "talk to myself").is_empty(), "no turn ran");

    // A -> B, and B's model tries B -> A: refused, B answers, A gets B's answer.
    home.api.script_tools("[loop]", vec![send(&a, "back to you [back]")]);
    home.api.script_tools("[ask-b-loop]", vec![send(&b, "please [loop]")]);
    turn(&home, &a, "start the loop [ask-b-loop]");
    let b_back = after_tool(&home, "please [loop]");
    assert!(b_back.all_text.contains("earlier in this chain of sends"), "{}", b_back.all_text);
    assert!(asked(&home, "back to you [back]").is_empty(), "A was not asked");
    let a_back = after_tool(&home, "[ask-b-loop]");
    assert!(a_back.all_text.contains(&format!("Reply from session {b}")), "{}", a_back.all_text);
    assert_linear(&home, &a);
    assert_linear(&home, &b);
}

#[test]
fn reply_none_returns_at_once_and_the_target_answers_on_its_own() {
    let home = env();
    let a = session(&home, "boss", "test:a");
    let b = session(&home, "worker", "test:b");
    let call = ToolCall::new(
        "mcp__clawsess__sessions_send",
        json!({"session": b, "message": "long task [hold=worker]", "reply": "none"}),
    );
    home.api.script_tools("[delegate]", vec![call]);
    // A's whole turn ends while B's is held by the stand-in: the send did not wait.
    let done = turn(&home, &a, "hand it over [delegate]");
    assert_eq!(done["is_error"], false);
    let back = after_tool(&home, "[delegate]");
    assert!(back.all_text.contains("it works on it by itself"), "{}", back.all_text);
    home.api.wait_held("worker");
    let status: Value = serde_json::from_str(&home.clawsess_ok(&["status", "--json", &b])).unwrap();
    assert_eq!(status["busy"], format!("session:{a}"));
    assert_eq!(status["last_detached_send"]["ok"], Value::Null, "running");
    home.api.release("worker");
    let mut status = Value::Null;
    support::testenv::wait_until(T, "the delivery is noted", || {
        status = serde_json::from_str(&home.clawsess_ok(&["status", "--json", &b])).unwrap();
        status["last_detached_send"]["ok"] == true
    });
    assert_eq!(status["last_surface"], format!("session:{a}"));
    assert_eq!(status["busy"], Value::Null);
    let text = home.clawsess_ok(&["status", "--key", "test:b"]);
    assert!(text.contains(&format!("session:       {b}")), "{text}");
    assert!(text.contains(&format!("last send:     from {a}")) && text.contains(": answered"), "{text}");
    assert!(text.contains(&format!("last surface:  session:{a}")), "{text}");
    assert_linear(&home, &b);
}

#[test]
fn the_model_lists_reads_and_checks_other_sessions() {
    let home = env();
    let a = session(&home, "desk", "test:a");
    let b = session(&home, "lab", "telegram:42");
    home.api.script_tools(
        "[survey]",
        vec![
            ToolCall::new("mcp__clawsess__sessions_list", json!({"key_prefix": "telegram:"})),
            ToolCall::new(
                "mcp__clawsess__sessions_history",
                json!({"session": "key:telegram:42", "last_n": 3}),
            ),
            ToolCall::new("mcp__clawsess__session_status", json!({"session": b})),
            ToolCall::new("mcp__clawsess__session_status", json!({})),
            ToolCall::new("mcp__clawsess__sessions_history", json!({"session": "ffff"})),
        ],
    );
    turn(&home, &a, "look around [survey]");
    let requests = asked(&home, "[survey]");
    // The first tool result (list) went to the second request, and so on.
    let results: Vec<&Recorded> = requests.iter().skip(1).collect();
    assert!(results.len() >= 5, "{} requests", results.len());
    let text = |i: usize| results[i].all_text.clone();
    let listed = text(0);
    assert!(listed.contains(&b) && listed.contains("telegram:42"), "{listed}");
    assert!(!listed.contains(&format!("\"session_id\": \"{a}\"")), "filtered by key: {listed}");
    let history = text(1);
    assert!(history.contains("hello lab") && history.contains("stand-in reply"), "{history}");
    let status_b = text(2);
    assert!(status_b.contains("\"context_used\"") && status_b.contains("\"model\""), "{status_b}");
    let own = text(3);
    assert!(own.contains(&format!("\"session_id\": \"{a}\"")), "its own status: {own}");
    assert!(own.contains("\"busy\": \"default\""), "{own}");
    // Its own status is about the next run of the key answering it, with the settings in force.
    assert!(own.contains("\"key\": \"default\"") && own.contains("\"settings\": {"), "{own}");
    assert!(status_b.contains("\"key\": null") && status_b.contains("\"next_reset\": null"), "{status_b}");
    assert!(text(4).contains("no session id starts with \"ffff\""), "{}", text(4));
}

/// Records session `id` (in project `name`) through the session-start hook, with a transcript.
fn recorded(home: &ClaudeHome, id: &str, name: &str) -> std::path::PathBuf {
    let cwd = home.project(name);
    let transcript = home.transcript_path(&cwd, id);
    fs::create_dir_all(transcript.parent().unwrap()).unwrap();
    let line = json!({"type": "user", "message": {"role": "user", "content": "hi"}, "timestamp": "2026-12-04T10:00:00Z"});
    fs::write(&transcript, format!("{line}\n")).unwrap();
    let input = json!({"session_id": id, "transcript_path": transcript, "cwd": cwd, "source": "startup"});
    let out = run_with_stdin(&mut home.clawsess_cmd(&["hook", "session-start"]), &input.to_string(), T);
    assert!(out.status.success());
    transcript
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.push((path.clone(), fs::read(&path).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

#[test]
fn bad_input_is_a_clear_tool_error_and_writes_nothing() {
    let home = env();
    recorded(&home, "aaaa1111-0000-4000-8000-000000000000", "one");
    recorded(&home, "aaaa2222-0000-4000-8000-000000000000", "two");
    let gone = recorded(&home, "bbbb3333-0000-4000-8000-000000000000", "three");
    fs::remove_file(&gone).unwrap();
    let state = home.state();
    let before = snapshot(&state);
    assert!(before.len() >= 3, "the records are there: {before:?}");
    let big = "x".repeat(4 * 1024 * 1024 + 1);
    let answers = mcp_stdio::answers(
        home.clawsess_cmd(&["mcp"]),
        &[
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
            tool_call(1, "sessions_send", json!({"session": "aaaa", "message": "hi"})),
            tool_call(2, "sessions_send", json!({"session": "cccc", "message": "hi"})),
            tool_call(3, "sessions_send", json!({"session": "aaaa1111", "message": big})),
            tool_call(4, "sessions_send", json!({"session": "bbbb", "message": "hi"})),
            tool_call(5, "sessions_history", json!({"session": "bbbb"})),
            tool_call(6, "sessions_send", json!({"session": "aaaa1111"})),
            tool_call(7, "sessions_send", json!({"session": "aaaa1111", "message": "hi", "reply": "later"})),
            tool_call(8, "sessions_send", json!({"session": "aaaa1111", "message": "hi"})),
            tool_call(9, "no_such_tool", json!({})),
            json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}),
        ],
    );
    assert_eq!(answers[0]["result"]["protocolVersion"], "2025-11-25");
    let error = |i: usize| {
        assert_eq!(answers[i]["result"]["isError"], true, "{:#}", answers[i]);
        answers[i]["result"]["content"][0]["text"].as_str().unwrap().to_owned()
    };
    assert!(error(1).contains("matches 2 sessions"), "{}", error(1));
    assert!(error(2).contains("no session id starts with"), "{}", error(2));
    assert!(error(3).contains("at most 4194304 (4 MiB)"), "{}", error(3));
    assert!(error(4).contains("is gone"), "{}", error(4));
    assert!(error(5).contains("is gone"), "{}", error(5));
    assert!(error(6).contains("`message` is required"), "{}", error(6));
    assert!(error(7).contains("`wait` or `none`"), "{}", error(7));
    // Not started by Claude Code: no caller to send for.
    assert!(error(8).contains("cannot tell which session is calling"), "{}", error(8));
    assert_eq!(answers[9]["error"]["code"], -32602);
    assert_eq!(answers[10]["result"], json!({}));
    assert_eq!(snapshot(&state), before, "nothing was written");
}

#[test]
fn a_send_to_a_session_busy_in_a_terminal_waits_for_its_turn_then_goes_through() {
    let home = env();
    let a = session(&home, "caller", "test:a");
    let b = session(&home, "desk", "test:b");
    let term = Terminal::start(&home, &home.project("desk"), &["--resume", &b]);
    term.wait_for("the conversation", |s| s.contains("hello desk"));
    term.type_line("the person works [hold=person]");
    home.api.wait_held("person");

    home.api.script_tools("[ask-busy]", vec![send(&b, "are you free now? [busy-q]")]);
    let args =
        ["--json", "--session", &a, "-A", "--allowedTools", "-A", "mcp__clawsess", "--", "ask [ask-busy]"];
    let run = home.spawn_run(&args);
    // The model has called the tool (its request was answered with the tool_use) ...
    assert!(
        home.api
            .wait_for(T, |r| r.iter().any(|r| r.last_user_text.contains("[ask-busy]") && r.finished_ms > 0))
    );
    // ... and B is still the person's: nothing reached B's model.
    assert!(asked(&home, "[busy-q]").is_empty(), "the send did not wait for the terminal's turn");
    home.api.release("person");
    let out = support::testenv::finish(run);
    assert!(out.ok(), "{:?}", out);

    let person = asked(&home, "[hold=person]").pop().unwrap();
    let question = asked(&home, "[busy-q]").remove(0);
    assert!(question.started_ms >= person.finished_ms, "B's send turn came after the person's turn");
    assert!(question.all_text.contains("the person works"), "and continued after it");
    let back = after_tool(&home, "[ask-busy]");
    assert!(back.all_text.contains(&format!("Reply from session {b}")), "{}", back.all_text);
    assert_linear(&home, &b);
}

#[test]
fn a_warm_claude_is_found_as_the_caller_through_its_keeper() {
    let home = env();
    let a = session(&home, "warm-caller", "test:a");
    let b = session(&home, "warm-target", "test:b");
    home.api.script_tools("[warm-ask]", vec![send(&b, "from a warm claude [warm-q]")]);
    let warm = ["-A", "--allowedTools", "-A", "mcp__clawsess", "--warm", "5m", "--json", "--session", &a];
    // The first turn starts the kept claude; the second is answered by it.
    for prompt in ["warm up", "ask [warm-ask]"] {
        let mut args = vec!["run"];
        args.extend(warm);
        args.extend(["--", prompt]);
        let out = run_with_stdin(&mut home.clawsess_cmd(&args), "", T);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        if prompt.contains("[warm-ask]") {
            assert_eq!(doc["warm"], true, "a kept claude took the turn: {doc:#}");
        }
    }
    assert_eq!(asked(&home, "[warm-q]").len(), 1, "B was asked");
    let back = after_tool(&home, "[warm-ask]");
    assert!(back.all_text.contains(&format!("Reply from session {b}")), "{}", back.all_text);
    home.clawsess_ok(&["cool"]);
}

#[test]
fn a_fourth_send_in_one_chain_is_refused() {
    let home = env();
    let ids: Vec<String> = (0..5).map(|i| session(&home, &format!("s{i}"), &format!("test:{i}"))).collect();
    // s0 -> s1 -> s2 -> s3, and s3's model tries s4.
    for hop in 0..4 {
        let next = format!("hop [c{}]", hop + 1);
        home.api.script_tools(&format!("[c{hop}]"), vec![send(&ids[hop + 1], &next)]);
    }
    turn(&home, &ids[0], "start [c0]");
    for hop in 1..4 {
        assert_eq!(asked(&home, &format!("[c{hop}]")).len(), 2, "s{hop} was asked and answered");
    }
    assert!(asked(&home, "[c4]").is_empty(), "s4 was never asked");
    let refused = after_tool(&home, "[c3]");
    assert!(refused.all_text.contains("send number 4 in one chain"), "{}", refused.all_text);
    let first = after_tool(&home, "[c0]");
    assert!(first.all_text.contains(&format!("Reply from session {}", ids[1])), "{}", first.all_text);
}

#[test]
fn a_send_to_a_session_still_busy_at_its_timeout_is_a_clear_error_and_runs_nothing() {
    let home = env();
    let a = session(&home, "asker", "test:a");
    let b = session(&home, "busy", "test:b");
    // B is answering a bot's run, held by the stand-in.
    let bot =
        home.spawn_run(&["--json", "--key", "telegram:9", "--session", &b, "--", "long job [hold=bot]"]);
    home.api.wait_held("bot");
    let call = ToolCall::new(
        "mcp__clawsess__sessions_send",
        json!({"session": b, "message": "quick question [never]", "timeout_s": 1}),
    );
    home.api.script_tools("[impatient]", vec![call]);
    turn(&home, &a, "ask [impatient]");
    let back = after_tool(&home, "[impatient]");
    assert!(back.all_text.contains(&format!("session {b} is busy")), "{}", back.all_text);
    assert!(asked(&home, "[never]").is_empty(), "nothing reached B's model");
    home.api.release("bot");
    assert!(support::testenv::finish(bot).ok());
}

#[test]
fn a_plain_claude_p_is_found_as_the_caller_through_its_turn_marker() {
    let home = env();
    let a = session(&home, "plain", "test:a");
    let b = session(&home, "other", "test:b");
    home.api.script_tools("[p-ask]", vec![send(&b, "from claude -p [p-q]")]);
    let project = home.project("plain");
    let done = home.run_p_json(&project, &["--resume", &a, "--allowedTools", "mcp__clawsess"], "ask [p-ask]");
    assert_eq!(done["is_error"], false, "{done:#}");
    let question = asked(&home, "[p-q]").remove(0);
    assert!(question.all_text.contains("hello other"), "B's own conversation went on");
    let back = after_tool(&home, "[p-ask]");
    assert!(back.all_text.contains(&format!("Reply from session {b}")), "{}", back.all_text);
    let status: Value = serde_json::from_str(&home.clawsess_ok(&["status", "--json", &b])).unwrap();
    assert_eq!(status["last_surface"], format!("session:{a}"), "the send was A's");
}

/// Claude Code 2.1.328 defers MCP tools: they are not in the request's `tools` but named in a
/// system message, their schemas loaded through ToolSearch.
#[test]
fn the_plugin_ships_the_server_under_its_own_name() {
    let home = ClaudeHome::new();
    let project = home.project("plug");
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut cmd = home.claude_p(&project);
    cmd.args(["--plugin-dir", repo, "--output-format", "json"])
        .env("CLAWSESS_BIN", env!("CARGO_BIN_EXE_clawsess"));
    let out = run_with_stdin(&mut cmd, "which tools", T);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let request = asked(&home, "which tools").pop().unwrap();
    for tool in ["sessions_list", "sessions_history", "sessions_send", "session_status"] {
        let name = format!("mcp__plugin_clawsess_clawsess__{tool}");
        assert!(request.all_text.lines().any(|l| l == name), "{name} not offered: {}", request.all_text);
    }
}

/// `status` says which settings a key's next run gets and from where (the key, its session,
/// the env, the config file, the default), the key's reset policy and when it resets next;
/// an attached session never resets, a session asked for by id shows only its own settings.
#[test]
fn status_shows_the_settings_in_force_their_origins_and_the_next_reset() {
    let home = env();
    let config = home.home().join("clawsess.toml");
    fs::write(&config, "warm = \"5m\"\n\n[[reset]]\nkey = \"tg:*\"\nmode = \"idle\"\nidle = \"30m\"\n")
        .unwrap();
    let a = session(&home, "chat", "tg:1");
    home.clawsess_ok(&["set", "--key", "tg:1", "model=claude-sonnet-4-5"]);
    home.clawsess_ok(&["set", &a, "model=claude-haiku-4-5", "effort=low"]);
    let status = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let mut cmd = home.clawsess_cmd(&[&["status", "--json"], args].concat());
        cmd.env("CLAWSESS_CONFIG", &config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_with_stdin(&mut cmd, "", T);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let doc = status(&["--key", "tg:1"], &[]);
    assert_eq!((&doc["key"], &doc["via"]), (&json!("tg:1"), &json!("own")));
    let s = &doc["settings"];
    assert_eq!(s["model"], json!({"value": "claude-sonnet-4-5", "from": "key", "key": "tg:1"}), "{doc:#}");
    assert_eq!(s["effort"], json!({"value": "low", "from": "session", "session": a}));
    assert_eq!(
        (&s["warm"]["value"], &s["warm"]["from"], &s["warm"]["line"]),
        (&json!("5m"), &json!("file"), &json!(1))
    );
    assert_eq!(
        (&doc["reset"]["mode"], &doc["reset"]["key"], &doc["reset"]["line"]),
        (&json!("idle 30m"), &json!("tg:*"), &json!(3))
    );
    // Next reset: 30 minutes after the session's last activity (the record's, or its live
    // file's when a run turn noted it there: docs/STATE.md "live/").
    let last_seen = |dir: &str| -> Option<i64> {
        let text = fs::read_to_string(home.state().join(dir).join(format!("{a}.json"))).ok()?;
        serde_json::from_str::<Value>(&text).unwrap()["last_seen"].as_i64()
    };
    let seen = last_seen("sessions").unwrap().max(last_seen("live").unwrap_or(0));
    let next: jiff::Timestamp = doc["next_reset"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.as_millisecond(), seen + 30 * 60_000);
    // The env wins over the file.
    let doc = status(&["--key", "tg:1"], &[("CLAWSESS_WARM", "0")]);
    assert_eq!(doc["settings"]["warm"], json!({"value": "off", "from": "env", "var": "CLAWSESS_WARM"}));
    // `key:K` is the same as --key K; the session by id: its own settings, no key, no reset.
    assert_eq!(status(&["key:tg:1"], &[])["settings"], status(&["--key", "tg:1"], &[])["settings"]);
    let by_id = status(&[&a], &[]);
    assert_eq!(
        (&by_id["key"], &by_id["reset"], &by_id["next_reset"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(by_id["settings"]["model"]["value"], "claude-haiku-4-5");
    // Attached to another key: that key's policy is shown, but its session never resets.
    home.clawsess_ok(&["attach", &a, "--key", "tg:2"]);
    let attached = status(&["--key", "tg:2"], &[]);
    assert_eq!(attached["reset"]["mode"], "idle 30m");
    assert_eq!((&attached["next_reset"], &attached["via"]), (&Value::Null, &json!("key")));
    assert_eq!(attached["settings"]["model"]["from"], "session");
    // Human output says the same, with the origins.
    let mut cmd = home.clawsess_cmd(&["status", "--key", "tg:1"]);
    cmd.env("CLAWSESS_CONFIG", &config);
    let text = String::from_utf8(run_with_stdin(&mut cmd, "", T).stdout).unwrap();
    assert!(text.contains("model = claude-sonnet-4-5  (set --key tg:1)"), "{text}");
    assert!(text.contains("warm = 5m  (") && text.contains("clawsess.toml:1)"), "{text}");
    assert!(text.contains("idle 30m (key tg:*, ") && text.contains("next reset:"), "{text}");
    // A broken config file: the status still answers, and says why settings are unknown.
    fs::write(&config, "colour = 1\n").unwrap();
    let broken = status(&["--key", "tg:1"], &[]);
    assert_eq!(broken["settings"], Value::Null);
    assert!(broken["config_error"].as_str().unwrap().contains("unknown field `colour`"), "{broken:#}");
}

/// Writes `.claude/settings.json` of project `dir`.
fn project_settings(dir: &std::path::Path, settings: Value) {
    fs::create_dir_all(dir.join(".claude")).unwrap();
    fs::write(dir.join(".claude/settings.json"), settings.to_string()).unwrap();
}

/// The text of the tool results in the last request of B's turn whose prompt holds `marker`.
fn results_at(home: &ClaudeHome, marker: &str) -> String {
    let last = asked(home, marker).pop().unwrap_or_else(|| panic!("no request holds {marker}"));
    let messages = last.body["messages"].as_array().unwrap();
    let results: Vec<String> = messages
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result")
        .map(|b| b.to_string())
        .collect();
    results.join("\n")
}

#[test]
fn a_callers_deny_rule_holds_in_the_targets_turn_whatever_the_target_allows() {
    let home = env();
    let a = session(&home, "careful", "test:a");
    let b = session(&home, "lenient", "test:b");
    let careful = home.project("careful");
    let lenient = home.project("lenient");
    // A's run allows Bash but A's project denies it; B's project allows it. So B's allow is
    // one A has too: only A's deny rule stands in the way.
    project_settings(&careful, json!({"permissions": {"deny": ["Bash"]}}));
    project_settings(&lenient, json!({"permissions": {"allow": ["Bash"]}}));
    home.api.script_tools("[ask-lenient]", vec![send(&b, "run this [from-careful] [bash=touch pwned.txt]")]);
    let args = [
        "run",
        "--json",
        "--session",
        &a,
        "-A",
        "--allowedTools",
        "-A",
        "mcp__clawsess Bash",
        "--",
        "ask the lenient session [ask-lenient]",
    ];
    let out = run_with_stdin(&mut home.clawsess_cmd(&args), "", T);
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["is_error"], false, "{done:#}");
    // B's model did call Bash, and got a refusal back; the command never ran.
    let at_b = asked(&home, "[from-careful]");
    assert_eq!(at_b.len(), 2, "B's prompt, then the Bash call's result");
    let results = results_at(&home, "[from-careful]");
    assert!(results.contains("\"is_error\":true") && results.contains("Bash"), "{results}");
    assert!(!lenient.join("pwned.txt").exists(), "the Bash call A's rules deny ran in B");
    // A's model got B's answer: the send itself went through.
    assert!(after_tool(&home, "[ask-lenient]").all_text.contains(&format!("Reply from session {b}")));

    // A's settings that cannot be read: the send is refused (never run looser), and says why.
    fs::write(careful.join(".claude/settings.json"), "{ not json").unwrap();
    home.api.script_tools("[ask-again]", vec![send(&b, "again [from-careful-2] [bash=touch pwned.txt]")]);
    turn(&home, &a, "ask it again [ask-again]");
    let back = after_tool(&home, "[ask-again]").all_text;
    assert!(back.contains("settings.json") && back.contains("not valid JSON"), "{back}");
    assert!(asked(&home, "[from-careful-2]").is_empty(), "nothing reached B");
    assert!(!lenient.join("pwned.txt").exists());
}

#[test]
fn a_target_uses_what_the_caller_allows_but_not_what_only_its_own_settings_allow() {
    let home = env();
    let a = session(&home, "lead", "test:a");
    let b = session(&home, "helper", "test:b");
    let lead = home.project("lead");
    let helper = home.project("helper");
    // Both allow touch; only B's own settings allow mkdir.
    project_settings(&lead, json!({"permissions": {"allow": ["Bash(touch:*)"]}}));
    project_settings(&helper, json!({"permissions": {"allow": ["Bash(touch:*)", "Bash(mkdir:*)"]}}));
    home.api.script_tools(
        "[ask-helper]",
        vec![send(&b, "do it [from-lead] [bash=touch shared.txt] [bash=mkdir own-dir]")],
    );
    let done = turn(&home, &a, "ask the helper [ask-helper]");
    assert_eq!(done["is_error"], false, "{done:#}");
    assert_eq!(asked(&home, "[from-lead]").len(), 3, "B's prompt, then each call's result");
    assert!(helper.join("shared.txt").exists(), "what A's settings allow runs in B");
    assert!(!helper.join("own-dir").exists(), "what only B's settings allow does not");
    let results = results_at(&home, "[from-lead]");
    assert!(results.contains("mkdir own-dir has been denied"), "{results}");
    // B's own turns are untouched: its settings still allow mkdir there.
    home.api.script_tools("[own-turn]", vec![ToolCall::bash("mkdir own-dir")]);
    home.clawsess_ok(&["run", "--json", "--session", &b, "--", "make it [own-turn]"]);
    assert!(helper.join("own-dir").is_dir());
}

/// A target project's PreToolUse hook that answers `allow` would run in a send's turn what
/// the caller's run would have been denied (measured: such an allow beats `claude -p`'s
/// default denial): the send is refused, naming the hook and its file, and nothing runs.
#[test]
fn a_send_to_a_session_whose_settings_have_a_pretooluse_hook_is_refused() {
    let home = env();
    let a = session(&home, "asker", "test:a");
    let b = session(&home, "hooked", "test:b");
    let hooked = home.project("hooked");
    let allow = r#"cat >/dev/null; echo '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow"}}'"#;
    project_settings(
        &hooked,
        json!({"hooks": {"PreToolUse": [{"matcher": "", "hooks": [{"type": "command", "command": allow}]}]}}),
    );
    // What the hook does in B's own `claude -p` turn: the touch that no rule allows runs.
    home.clawsess_ok(&["run", "--json", "--session", &b, "--", "own turn [bash=touch own.txt]"]);
    assert!(hooked.join("own.txt").exists(), "the hook's allow ran a call nothing else allowed");

    home.api.script_tools("[ask-hooked]", vec![send(&b, "do it [from-asker] [bash=touch pwned.txt]")]);
    turn(&home, &a, "ask the hooked session [ask-hooked]");
    let back = after_tool(&home, "[ask-hooked]").all_text;
    assert!(back.contains("PreToolUse hook") && back.contains(".claude/settings.json"), "{back}");
    assert!(asked(&home, "[from-asker]").is_empty(), "nothing reached B");
    assert!(!hooked.join("pwned.txt").exists());

    // Without the hook the send goes through, and the touch is denied as A's run would be.
    project_settings(&hooked, json!({}));
    home.api.script_tools("[ask-plain]", vec![send(&b, "do it [from-asker-2] [bash=touch pwned.txt]")]);
    turn(&home, &a, "ask again [ask-plain]");
    assert_eq!(asked(&home, "[from-asker-2]").len(), 2);
    assert!(!hooked.join("pwned.txt").exists());
}

/// The ids of a JSON array of sessions (`list --json`'s or `sessions_list`'s), in order.
fn ids_of(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn sessions_list_gives_what_list_json_gives_in_its_order_whoever_wrote_the_records() {
    let home = env();
    let a = session(&home, "desk", "test:a");
    let b = session(&home, "lab", "telegram:42");
    let c = "cccc3333-0000-4000-8000-000000000000";
    recorded(&home, c, "three");
    // The sessions index is written by this `list`.
    home.clawsess_ok(&["list", "--json"]);
    let index = home.state().join("sessions.index");
    assert!(fs::read_to_string(&index).unwrap().contains(c), "indexed");
    // A second turn on `a`: its last activity moves in its live file, not its record.
    home.clawsess_ok(&["run", "--json", "--session", &a, "--", "again"]);
    let sessions = home.state().join("sessions");
    // Behind clawsess's back, as a clawsess of before the index writes (no journal line):
    // one record removed, one added whose file is dated long ago but whose session is the
    // most recently active, with a live claude process (this test's) and a bot's key.
    fs::remove_file(sessions.join(format!("{c}.json"))).unwrap();
    let d = "dddd4444-0000-4000-8000-000000000000";
    let mut rec: Value =
        serde_json::from_slice(&fs::read(sessions.join(format!("{b}.json"))).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    rec["id"] = json!(d);
    rec["last_seen"] = json!(now);
    rec["processes"] = json!([std::process::id()]);
    rec["key"] = json!("telegram:7");
    rec.as_object_mut().unwrap().remove("stamp");
    let path = sessions.join(format!("{d}.json"));
    fs::write(&path, serde_json::to_vec_pretty(&rec).unwrap()).unwrap();
    let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();

    let listed: Vec<Value> = serde_json::from_str(&home.clawsess_ok(&["list", "--json"])).unwrap();
    assert_eq!(ids_of(&listed), [d, a.as_str(), b.as_str()], "{listed:#?}");
    let keys = |row: &Value| -> Vec<String> {
        let mut keys: Vec<String> = ["attached_keys", "own_session_of"]
            .iter()
            .flat_map(|field| row[field].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()))
            .collect();
        keys.extend(row["key"].as_str().map(str::to_owned));
        keys
    };
    let active = |row: &Value| !row["busy"].is_null() || row["live"] == true || row["warm"] == true;
    let expected = |prefix: Option<&str>, active_only: bool, last_n: usize| -> Vec<String> {
        let rows = listed.iter().filter(|row| {
            prefix.is_none_or(|p| keys(row).iter().any(|k| k.starts_with(p))) && (!active_only || active(row))
        });
        ids_of(&rows.take(last_n).cloned().collect::<Vec<_>>())
    };
    let asks: [(Option<&str>, bool, usize); 6] = [
        (None, false, 200),
        (None, false, 1),
        (None, false, 2),
        (Some("telegram:"), false, 20),
        (Some("test:"), false, 20),
        (None, true, 20),
    ];
    let calls: Vec<(&str, Value)> = asks
        .iter()
        .map(|&(prefix, active_only, last_n)| {
            ("sessions_list", json!({"key_prefix": prefix, "active_only": active_only, "last_n": last_n}))
        })
        .collect();
    let results = mcp_stdio::call_tools(home.clawsess_cmd(&["mcp"]), &calls);
    for ((prefix, active_only, last_n), result) in asks.iter().zip(&results) {
        assert_eq!(result["isError"], false, "{result:#}");
        let rows: Vec<Value> = serde_json::from_str(&mcp_stdio::tool_text(result, 0)).unwrap();
        let ask = format!("key_prefix {prefix:?}, active_only {active_only}, last_n {last_n}");
        assert_eq!(ids_of(&rows), expected(*prefix, *active_only, *last_n), "{ask}: {rows:#?}");
        for row in &rows {
            let theirs = listed.iter().find(|l| l["session_id"] == row["session_id"]).unwrap();
            assert_eq!(row["last_active"], theirs["last_active"], "{ask}");
            assert_eq!(row["live"], theirs["live"], "{ask}");
        }
    }
    // The filters had something to tell apart.
    assert_eq!(expected(None, true, 20), [d]);
    assert_eq!(expected(Some("telegram:"), false, 20), [d, b.as_str()]);
    assert_eq!(expected(Some("test:"), false, 20), [a.as_str()]);
}
