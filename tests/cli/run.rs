//! run with a stand-in claude: routing, the session's turn, exit status and what is recorded.

use super::*;

#[test]
fn run_starts_a_session_for_a_new_key_and_resumes_it_next_time() {
    let w = World::new();
    let first =
        w.json(&["run", "--claude", &w.fake_claude(), "--key", "telegram:7", "--json", "hello", "there"]);
    let id = first["session_id"].as_str().unwrap().to_owned();
    assert_eq!(first["key"], "telegram:7");
    assert_eq!(first["is_error"], false);
    assert!(first["result"].as_str().unwrap().contains("hello there"));
    assert_eq!(first["num_turns"], 1, "claude's own fields are kept");
    let out = stdout_of(&mut w.run(&["--key", "telegram:7", "again"]));
    assert!(out.contains("echo: again"), "{out}");
    let calls = w.fake_calls();
    assert_eq!(calls[1]["lines_before"], 2, "the second turn continues the first's transcript");
    // Every turn goes through the stream-json driver (so that `stop` can interrupt it).
    let driver = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"];
    assert_eq!(calls[0]["argv"], serde_json::json!([&driver[..], &["--session-id", &id]].concat()));
    assert_eq!(calls[1]["argv"], serde_json::json!([&driver[..], &["--resume", &id]].concat()));
    assert_eq!(calls[0]["stdin"], "hello there");
    assert_eq!(calls[0]["cwd"], w.project().to_str().unwrap());
    assert_eq!(calls[0]["env"]["CLAWSESS_RUN_KEY"], "telegram:7");
    assert_eq!(w.current("telegram:7"), id);
    let list = w.json(&["list", "--json"]);
    assert_eq!(list[0]["started_by"], "run");
    assert_eq!(list[0]["run_turns"], 2);
    assert_eq!(list[0]["own_session_of"], serde_json::json!(["telegram:7"]));
    let log: Value = serde_json::from_str(
        &fs::read_to_string(w.state().join("turns").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(log["turns"][1]["key"], "telegram:7", "every turn is logged for processes opened later");
}

#[test]
fn run_says_when_it_starts_a_new_session_and_when_it_does_not() {
    let w = World::new();
    // A mistyped key with nothing attached: a new conversation, said on stderr and in --json.
    let out = w.run(&["--key", "telgram:1", "--json", "hi"]).output().unwrap();
    assert!(out.status.success());
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = first["session_id"].as_str().unwrap();
    assert_eq!(first["new_session"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let project = w.project();
    assert!(
        stderr.contains(&format!("clawsess: new session {id} for key telgram:1 in {}", project.display())),
        "{stderr}"
    );
    // Its next turn resumes: nothing said.
    let out = w.run(&["--key", "telgram:1", "--json", "again"]).output().unwrap();
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((second["session_id"].as_str(), &second["new_session"]), (Some(id), &Value::Bool(false)));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("new session"));
    // Asked for with --new: in --json, not on stderr.
    let out = w.run(&["--key", "telgram:1", "--new", "--json", "over"]).output().unwrap();
    let third: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(third["new_session"], true);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("new session"));
}

#[test]
fn a_run_usage_error_in_json_names_the_key_given() {
    let w = World::new();
    for args in [["--key", "telegram:1"], ["-k", "telegram:1"]] {
        let mut all = vec!["run"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--stream", "--json", "hi"]);
        let out = w.cmd(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["key"], "telegram:1", "{args:?}: {doc}");
        assert!(doc["error"].as_str().unwrap().contains("--stream"));
    }
    let doc: Value =
        serde_json::from_slice(&w.cmd(&["run", "--bogus", "--json", "hi"]).output().unwrap().stdout).unwrap();
    assert_eq!(doc["key"], "default", "no --key given: the default key's");
}

#[test]
fn run_reads_the_prompt_from_stdin_and_dash_words_stay_text() {
    let w = World::new();
    w.run(&["--key", "k"]).write_stdin("from stdin\nline 2").assert().success();
    w.run(&["--key", "k", "--", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("echo: --help"));
    w.run(&["--key", "k", "--", "-rf", "/"]).assert().success();
    let calls = w.fake_calls();
    assert_eq!(calls[0]["stdin"], "from stdin\nline 2");
    assert_eq!(calls[1]["stdin"], "--help");
    assert_eq!(calls[2]["stdin"], "-rf /");
    for call in &calls {
        let argv: Vec<&str> = call["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(!argv.contains(&"--help") && !argv.contains(&"-rf"), "{argv:?}");
    }
    w.run(&["--key", "k"])
        .write_stdin("  \n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("prompt is empty"));
}

#[test]
fn run_passes_claude_args_one_by_one() {
    let w = World::new();
    w.run(&["-A", "--model", "-A", "opus", "--key", "k", "hi"]).assert().success();
    let argv = w.fake_calls()[0]["argv"].clone();
    assert_eq!(argv.as_array().unwrap()[8..], [serde_json::json!("--model"), serde_json::json!("opus")]);
}

/// An executable script at `path` that never prints (its pid to `$PIDFILE` if that is set).
/// As `claude -p` (how `run` starts it) it hangs whatever its stdin does, as Claude Code does
/// in issue #91987; otherwise (an "interactive" claude) it waits for its stdin to close.
fn silent_claude(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let script = "#!/bin/sh\n[ -n \"$PIDFILE\" ] && echo $$ > \"$PIDFILE\"\n\
                  [ \"$1\" = -p ] && exec tail -f /dev/null\ncat > /dev/null\n";
    fs::write(path, script).unwrap();
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A claude that never starts (Claude Code issue #91987) does not hang `run`: after
/// CLAWSESS_START_TIMEOUT it is killed, the run fails saying so, and the session is free with
/// nothing recorded.
#[test]
fn run_gives_up_on_a_claude_that_prints_nothing_and_frees_the_session() {
    let w = World::new();
    let claude = w.path("tools/claude");
    silent_claude(&claude);
    let pidfile = w.path("claude.pid");
    let out = w
        .cmd(&["run", "--claude", claude.to_str().unwrap(), "--key", "k", "--json", "hello"])
        .env("CLAWSESS_START_TIMEOUT", "1s")
        .env("PIDFILE", &pidfile)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = j["error"].as_str().unwrap_or_default();
    assert!(
        j["is_error"] == true
            && error.contains("printed nothing within 1 s")
            && error.contains("CLAWSESS_START_TIMEOUT"),
        "{j}"
    );
    let pid: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the silent claude was killed and reaped");
    w.cmd(&["current", "--key", "k"]).assert().code(1);
    // Nothing holds the session or the key: the next run goes at once.
    w.run(&["--key", "k", "--wait", "0", "next"])
        .assert()
        .success()
        .stdout(predicate::str::contains("echo: next"));
    let list = w.json(&["list", "--json"]);
    assert_eq!(list[0]["run_turns"], 1, "only the turn that ran is recorded: {list}");
    // The same for a claude a warm keeper starts (`run --warm`).
    let out = w
        .cmd(&["run", "--claude", claude.to_str().unwrap(), "--key", "w", "--warm", "1m", "hello"])
        .env("CLAWSESS_START_TIMEOUT", "1s")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    w.cmd(&["cool"]).assert().success();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("printed nothing within 1 s"));
    w.cmd(&["current", "--key", "w"]).assert().code(1);
}

/// When the claude that does not start is a native install's version (`.../claude/versions/X`)
/// and another process runs that same version (an interactive claude holding its lock), the
/// error names that process and the Claude Code issue.
#[test]
fn run_names_the_claude_holding_a_native_installs_version_lock() {
    let w = World::new();
    let native = w.path("home/.local/share/claude/versions/2.1.999");
    silent_claude(&native);
    let mut holder = std::process::Command::new(&native).stdin(std::process::Stdio::piped()).spawn().unwrap();
    // `spawn` returns once the holder is exec'd: its command line names the script already.
    let out = w
        .cmd(&["run", "--claude", native.to_str().unwrap(), "--key", "k", "hello"])
        .env("CLAWSESS_START_TIMEOUT", "1s")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    drop(holder.stdin.take());
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("(pid {})", holder.id())) && stderr.contains("#91987"), "{stderr}");
}

#[test]
fn run_without_claude_names_all_three_ways_to_find_it() {
    let w = World::new();
    w.cmd(&["run", "--key", "k", "hi"]).env("PATH", w.path("home")).assert().code(1).stderr(
        predicate::str::contains("--claude")
            .and(predicate::str::contains("CLAWSESS_CLAUDE"))
            .and(predicate::str::contains("PATH")),
    );
    w.cmd(&["run", "--key", "k", "hi"]).env("CLAWSESS_CLAUDE", w.fake_claude()).assert().success();
}

#[test]
fn run_exits_with_claudes_status_and_keeps_the_mapping_on_failure() {
    let w = World::new();
    w.run(&["--key", "k", "first"]).assert().success();
    let id = w.current("k");
    w.run(&["--key", "k", "--new", "[exit=4]"]).assert().code(4);
    assert_eq!(w.current("k"), id, "a failed --new leaves the key where it was");
    let j = w.run(&["--key", "k", "--json", "[error]"]).output().unwrap();
    assert_eq!(j.status.code(), Some(1));
    assert_eq!(serde_json::from_slice::<Value>(&j.stdout).unwrap()["is_error"], true);
    w.run(&["--key", "k", "[garbage]"]).assert().code(1).stderr(predicate::str::contains("without a result"));
    let out = w.run(&["--key", "k", "--json", "--cwd", "/nonexistent", "--new", "x"]).output().unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), j["busy"].as_bool()), (Some(1), Some(false)));
    assert_eq!(w.current("k"), id);
}

#[test]
fn run_follows_a_session_id_that_claude_minted() {
    let w = World::new();
    w.run(&["--key", "k", "first"]).assert().success();
    let old = w.current("k");
    let j = w.json(&["run", "--claude", &w.fake_claude(), "--key", "k", "--json", "[mint]"]);
    let new = j["session_id"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(w.current("k"), new);
}

#[test]
fn run_with_an_attached_key_continues_that_session_and_keeps_its_own() {
    let w = World::new();
    w.run(&["--key", "telegram:1", "mine"]).assert().success();
    let own = w.current("telegram:1");
    w.person_session(ID_A, "terminal prompt", "terminal reply");
    w.cmd(&["attach", ID_A, "--key", "telegram:1"]).assert().success();
    let out = stdout_of(&mut w.run(&["--key", "telegram:1", "from the bot"]));
    assert!(out.contains("echo: from the bot"), "{out}");
    let last = w.fake_calls().pop().unwrap();
    assert_eq!(last["lines_before"], 2, "continues the terminal's transcript: {last}");
    assert!(fs::read_to_string(w.transcript(ID_A)).unwrap().contains("from the bot"));
    w.cmd(&["detach", "--key", "telegram:1"]).assert().success();
    assert_eq!(w.current("telegram:1"), own);
}

#[test]
fn run_new_starts_over_in_the_given_cwd() {
    let w = World::new();
    w.run(&["--key", "k", "one"]).assert().success();
    let first = w.current("k");
    let other = w.path("other");
    fs::create_dir_all(&other).unwrap();
    w.run(&["--key", "k", "--new", "--cwd", other.to_str().unwrap(), "two"]).assert().success();
    assert_ne!(w.current("k"), first);
    assert_eq!(w.fake_calls()[1]["cwd"], other.canonicalize().unwrap().to_str().unwrap());
    w.run(&["--key", "k", "--new", "--cwd", "/nonexistent/dir", "x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--cwd"));
}

#[test]
fn run_replaces_a_session_whose_transcript_is_gone() {
    let w = World::new();
    w.run(&["--key", "k", "one"]).assert().success();
    let old = w.current("k");
    let t = w.json(&["list", "--json"])[0]["transcript"].as_str().unwrap().to_owned();
    fs::remove_file(t).unwrap();
    let out = w.run(&["--key", "k", "--json", "two"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("starting a new session"));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["replaced_session"], old.as_str());
    assert_ne!(j["session_id"], old.as_str());
    w.run(&["--session", &old, "x"]).assert().code(1).stderr(predicate::str::contains("gone"));
}

#[test]
fn run_in_a_session_whose_cwd_is_gone_says_so() {
    let w = World::new();
    let dir = w.path("doomed");
    fs::create_dir_all(&dir).unwrap();
    w.run(&["--key", "k", "--cwd", dir.to_str().unwrap(), "one"]).assert().success();
    fs::remove_dir_all(&dir).unwrap();
    w.run(&["--key", "k", "two"]).assert().code(1).stderr(predicate::str::contains("working dir"));
}

#[test]
fn run_idle_reset_starts_a_fresh_own_session() {
    let w = World::new();
    w.run(&["--key", "k", "one"]).assert().success();
    let old = w.current("k");
    // Make the session look idle for two days.
    let path = w.state().join("sessions").join(format!("{old}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    rec["last_seen"] = serde_json::json!(now_ms - 2 * 86_400_000);
    fs::write(&path, rec.to_string()).unwrap();
    w.run(&["--key", "k", "--idle-reset", "3d", "two"]).assert().success();
    assert_eq!(w.current("k"), old, "not idle for 3 days yet");
    fs::write(&path, rec.to_string()).unwrap();
    w.run(&["--key", "k", "--idle-reset", "1d", "three"])
        .assert()
        .success()
        .stderr(predicate::str::contains("idle"));
    assert_ne!(w.current("k"), old);
    w.run(&["--key", "k", "--idle-reset", "soon", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("duration"));
}

#[test]
fn run_refuses_with_75_while_a_terminal_turn_is_busy() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["attach", ID_A, "--key", "k"]).assert().success();
    let me = std::process::id().to_string();
    w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &me).assert().success();
    w.run(&["--key", "k", "--wait", "0", "hi"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("terminal"));
    let out = w.run(&["--key", "k", "--wait", "0", "--json", "hi"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    let j: Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON document, failures included");
    assert_eq!(
        (j["busy"].as_bool(), j["is_error"].as_bool(), j["key"].as_str()),
        (Some(true), Some(true), Some("k"))
    );
    assert!(j["error"].as_str().unwrap().contains("terminal"), "{j}");
    let started = std::time::Instant::now();
    w.run(&["--key", "k", "--wait", "1", "hi"]).assert().code(75);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    w.hook("stop", ID_A).env("CLAUDE_PID", &me).assert().success();
    w.run(&["--key", "k", "--wait", "0", "hi"]).assert().success();
}

#[test]
fn a_dead_terminal_does_not_keep_the_session_busy() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id().to_string();
    child.wait().unwrap();
    w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &dead).assert().success();
    w.run(&["--session", ID_A, "--wait", "0", "hi"]).assert().success();
}

#[test]
fn a_terminal_prompt_is_refused_while_a_run_answers_and_gets_the_turn_as_catch_up_after() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let me = std::process::id().to_string();
    w.hook("session-start", ID_A).env("CLAUDE_PID", &me).assert().success();
    w.cmd(&["attach", ID_A, "--key", "telegram:5"]).assert().success();
    let release = w.path("release");
    let prompt = format!("what did we decide? [hold={}]", release.display());
    let mut run = w.env.cmd(&["run", "--claude", &w.fake_claude(), "--key", "telegram:5", &prompt]);
    run.current_dir(w.project());
    let child = run.spawn().unwrap();
    // Wait until the run holds the session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !w.json(&["list", "--json"])[0]["busy"].is_string() {
        assert!(std::time::Instant::now() < deadline, "run never took the session");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    w.hook("prompt-submit", ID_A)
        .env("CLAUDE_PID", &me)
        .env("CLAWSESS_TURN_WAIT", "0")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("\"decision\":\"block\""))
        .stderr(predicate::str::contains("telegram:5").and(predicate::str::contains("again")));
    fs::write(&release, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let catch_up =
        stdout_of(w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &me).env("CLAWSESS_BEHIND", "note"));
    let j: Value = serde_json::from_str(&catch_up).unwrap();
    let text = j["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert_eq!(j["hookSpecificOutput"]["hookEventName"], "UserPromptSubmit");
    assert!(
        text.contains("telegram:5")
            && text.contains("what did we decide?")
            && text.contains("echo: what did we decide?"),
        "{text}"
    );
    w.hook("stop", ID_A).env("CLAUDE_PID", &me).assert().success();
    // Seen once: no catch-up on the next prompt.
    w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &me).assert().success().stdout("");
}

#[test]
fn two_runs_on_one_key_take_turns() {
    let w = World::new();
    w.run(&["--key", "k", "start"]).assert().success();
    let spawn = |text: &str| {
        w.env
            .cmd(&["run", "--claude", &w.fake_claude(), "--key", "k", text])
            .current_dir(w.project())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let a = spawn("a [sleep=0.5]");
    let b = spawn("b [sleep=0.5]");
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    let calls = w.fake_calls();
    let (x, y) = (&calls[1], &calls[2]);
    assert!(y["start"].as_f64().unwrap() >= x["end"].as_f64().unwrap(), "runs overlapped: {x} {y}");
}

#[test]
fn a_background_process_left_by_claude_does_not_hold_the_session() {
    let w = World::new();
    w.run(&["--key", "k", "start a server [bg]"]).assert().success();
    w.run(&["--key", "k", "--wait", "0", "next"]).assert().success();
    w.run(&["--key", "k2", "--session", &w.current("k"), "--wait", "0", "other key"]).assert().success();
}

#[test]
fn a_reply_is_printed_even_when_recording_the_turn_fails() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    // A terminal is open on it (this test process stands in for its claude): runs log turns.
    w.hook("session-start", ID_A).env("CLAUDE_PID", std::process::id().to_string()).assert().success();
    w.cmd(&["attach", ID_A, "--key", "k"]).assert().success();
    w.run(&["--key", "k", "one"]).assert().success();
    let id = w.current("k");
    let turns = w.state().join("turns").join(format!("{id}.json"));
    fs::create_dir_all(turns.parent().unwrap()).unwrap();
    fs::write(&turns, "{broken").unwrap();
    let out = w.run(&["--key", "k", "--json", "two"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["result"].as_str().unwrap().contains("echo: two"));
    assert!(j["record_error"].as_str().unwrap().contains(turns.to_str().unwrap()), "{j}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("recording the turn failed"));
    assert_eq!(fs::read_to_string(&turns).unwrap(), "{broken");
}

#[test]
fn answer_reads_text_from_stdin_for_a_dash_and_refuses_an_empty_one() {
    let w = World::new();
    let id = "6f1c0000-0000-4000-8000-000000000001";
    w.cmd(&["answer", id, "--text", "-"])
        .write_stdin(" \n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the answer on stdin is empty"));
    // Read, then the request is looked up: none is waiting (the words never were on argv).
    w.cmd(&["answer", id, "--text", "-"])
        .write_stdin("a soft teal\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("no permission request or question {id} is waiting")));
    w.cmd(&["answer", id, "deny", "--reason", "-"])
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the answer on stdin is empty"));
}
