//! The hooks: what each Claude Code hook event records, and a terminal's process found and kept apart.

use super::*;

#[test]
fn session_start_records_the_session_and_prints_nothing() {
    let w = World::new();
    w.person_session(ID_A, "hello", "hi");
    let list = w.json(&["list", "--json"]);
    assert_eq!(list[0]["session_id"], ID_A);
    assert_eq!(list[0]["cwd"], w.project().to_str().unwrap());
    assert_eq!(list[0]["started_by"], "person");
    assert_eq!(list[0]["transcript_exists"], true);
}

#[test]
fn session_start_exports_the_id_to_claude_env_file() {
    let w = World::new();
    let env_file = w.path("env");
    w.hook("session-start", ID_A).env("CLAUDE_ENV_FILE", &env_file).assert().success().stdout("");
    assert_eq!(fs::read_to_string(env_file).unwrap(), format!("export CLAWSESS_SESSION_ID={ID_A}\n"));
}

#[test]
fn hooks_given_bad_input_exit_zero_with_one_line_and_record_nothing() {
    let w = World::new();
    let inputs = [
        "not json".to_owned(),
        "[1,2]".to_owned(),
        r#"{"session_id": 5}"#.to_owned(),
        r#"{"session_id": "../../x", "cwd": "/"}"#.to_owned(),
        r#"{"session_id": "-rf", "cwd": "/"}"#.to_owned(),
        format!(r#"{{"session_id": "{ID_A}", "cwd": "relative/dir"}}"#),
        format!(r#"{{"session_id": "{ID_A}"}}"#),
    ];
    for input in inputs {
        for event in ["session-start", "prompt-submit", "stop", "session-end"] {
            let out = w.cmd(&["hook", event]).write_stdin(input.clone()).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if event == "session-start" || !input.contains(ID_A) {
                assert_eq!(err.lines().count(), 1, "{event} {input}: {err}");
                assert!(err.starts_with(&format!("clawsess hook {event}: ")), "{err}");
            }
            assert_eq!(out.status.code(), Some(0), "{event} {input}");
            assert!(out.stdout.is_empty());
        }
    }
    w.cmd(&["hook", "session-start"]).write_stdin("").assert().success().stdout("").stderr("");
    assert_eq!(w.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn a_second_session_start_keeps_first_seen_and_updates_source() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let first = w.json(&["list", "--json"])[0]["first_seen"].clone();
    let input = w.hook_input(ID_A).replace("\"startup\"", "\"resume\"");
    w.cmd(&["hook", "session-start"]).write_stdin(input).assert().success();
    let list = w.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["first_seen"], first);
    assert_eq!(list[0]["source"], "resume");
}

#[test]
fn clawsess_commands_in_a_terminal_behind_run_in_the_prompt_hook_and_leave_it_behind() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mut terminal = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = terminal.id().to_string();
    w.hook("session-start", ID_A).env("CLAUDE_PID", &pid).assert().success();
    w.cmd(&["attach", ID_A]).assert().success();
    past_start_up(terminal.id());
    w.run(&["--session", ID_A, "--key", "telegram:8", "what the bot said"]).assert().success();
    let prompt = |text: &str| {
        let mut input: Value = serde_json::from_str(&w.hook_input(ID_A)).unwrap();
        input["hook_event_name"] = "UserPromptSubmit".into();
        input["prompt"] = text.into();
        let mut cmd = w.cmd(&["hook", "prompt-submit"]);
        cmd.env("CLAUDE_PID", &pid).write_stdin(input.to_string());
        cmd
    };
    // Shown to the person, not sent: a block with the command's output.
    prompt("/sessions").assert().code(2).stdout(predicate::str::contains("\"decision\":\"block\"")).stderr(
        predicate::str::contains("clawsess /sessions (done here; not sent to the model)")
            .and(predicate::str::contains("KEYS"))
            .and(predicate::str::contains(format!("(this conversation: {})", &ID_A[..8]))),
    );
    prompt("/clawsess:detach")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("Detached the global attachment (was {})", &ID_A[..8])));
    w.cmd(&["detach"]).assert().success().stdout(predicate::str::contains("no global attachment"));
    // A command is no catch-up: the next prompt is still refused as behind.
    prompt("hello")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Ctrl+S").and(predicate::str::contains(format!("/resume {ID_A}"))));
    // `claude -p /detach` is left to its command file (its caller reads the model's answer).
    prompt("/detach")
        .env("CLAUDE_CODE_ENTRYPOINT", "sdk-cli")
        .assert()
        .stderr(predicate::str::contains("Detached").not());
    // Someone else's /detach in the project is theirs.
    let own = w.project().join(".claude").join("commands");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("sessions.md"), "my own sessions command").unwrap();
    prompt("/sessions").assert().code(2).stderr(predicate::str::contains("continued this conversation"));
    terminal.kill().unwrap();
    terminal.wait().unwrap();
}

#[test]
fn with_two_terminals_open_the_one_left_still_catches_up() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mut first = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let mut second = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    for t in [&first, &second] {
        w.hook("session-start", ID_A).env("CLAUDE_PID", t.id().to_string()).assert().success();
    }
    // The terminal that started last is closed first.
    second.kill().unwrap();
    second.wait().unwrap();
    // The bot's turn comes after the terminal has loaded the transcript (however fast this
    // machine starts a process, the stand-in run could otherwise end within the terminal's
    // start-up window, where a turn counts as seen).
    past_start_up(first.id());
    w.run(&["--session", ID_A, "--key", "telegram:8", "what the bot said"]).assert().success();
    let pid = first.id().to_string();
    // Behind: refused with the way to reload, until it reloads (`/resume` fires SessionStart).
    w.hook("prompt-submit", ID_A)
        .env("CLAUDE_PID", &pid)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("\"decision\":\"block\""))
        .stderr(
            predicate::str::contains("telegram:8 (1 turn)")
                .and(predicate::str::contains(format!("/resume {ID_A}"))),
        );
    w.hook("session-start", ID_A).env("CLAUDE_PID", &pid).assert().success();
    w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &pid).assert().success().stdout("");
    w.hook("stop", ID_A).env("CLAUDE_PID", &pid).assert().success();
    // In note mode the missed turn comes as a note instead.
    w.run(&["--session", ID_A, "--key", "telegram:8", "what the bot said next"]).assert().success();
    let out = stdout_of(w.hook("prompt-submit", ID_A).env("CLAUDE_PID", &pid).env("CLAWSESS_BEHIND", "note"));
    assert!(out.contains("what the bot said next") && out.contains("telegram:8"), "{out}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// Returns once the claude process `pid` is past its start-up window
/// (`catchup::first_load_ms`, which the hooks take as its first load of the transcript, plus
/// twice the 10 ms to which a process's start and the boot time are known): a turn logged
/// from now on is one it missed.
fn past_start_up(pid: u32) {
    let loaded = clawsess::turn::catchup::first_load_ms(pid).expect("the process's start") + 20;
    while clawsess::store::now_ms() <= loaded {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `clawsess hook session-start` for ID_A the way Claude Code does, from a process
/// named `claude` through `sh -c`, with `claude_pid` as `$CLAUDE_PID` if given; returns that
/// fake claude (alive until killed) once the hook is done.
fn hook_from_a_fake_claude(w: &World, claude_pid: Option<u32>) -> std::process::Child {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let bin = w.path("fake-bin");
    fs::create_dir_all(&bin).unwrap();
    let claude = bin.join("claude");
    fs::write(
        &claude,
        "#!/bin/sh\n/bin/sh -c '\"$CLAWSESS\" hook session-start < \"$INPUT\"'\necho started\nread _\n",
    )
    .unwrap();
    fs::set_permissions(&claude, fs::Permissions::from_mode(0o755)).unwrap();
    let input = w.path("hook-input.json");
    fs::write(&input, w.hook_input(ID_A)).unwrap();
    let mut cmd = w.env.command(&claude);
    if let Some(pid) = claude_pid {
        cmd.env("CLAUDE_PID", pid.to_string());
    }
    cmd.env("CLAWSESS", env!("CARGO_BIN_EXE_clawsess"))
        .env("INPUT", &input)
        .current_dir(w.project())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A script just written can fail to exec ("text file busy") while another test thread
    // forks with its write handle open for a moment: try again.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    }
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");
    child
}

/// The session's live pids: its live file's when that overlays the record (the same `stamp`),
/// else the record's (docs/STATE.md, "A session's record and its live file").
fn terminal_pids(w: &World) -> Vec<u64> {
    let read = |dir: &str| -> Option<Value> {
        serde_json::from_str(&fs::read_to_string(w.state().join(dir).join(format!("{ID_A}.json"))).ok()?).ok()
    };
    let rec = read("sessions").unwrap();
    let live = read("live").filter(|l| l["stamp"] == rec["stamp"]);
    let from = live.as_ref().unwrap_or(&rec);
    from["processes"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

#[test]
fn without_claude_pid_a_hook_finds_its_claude_two_processes_up() {
    // Claude Code before 2.1.213 sets no CLAUDE_PID: the hook's grandparent, a claude, is it.
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mut claude = hook_from_a_fake_claude(&w, None);
    assert_eq!(terminal_pids(&w), vec![u64::from(claude.id())]);
    assert_eq!(w.json(&["list", "--json"])[0]["live"], true, "its terminal is open");
    claude.kill().unwrap();
    claude.wait().unwrap();
    assert_eq!(w.json(&["list", "--json"])[0]["live"], false);
}

#[test]
fn a_claude_pid_inherited_from_an_outer_claude_loses_to_the_hooks_own_claude() {
    // An older claude started from a newer one's Bash tool inherits the outer CLAUDE_PID.
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mut outer = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let mut claude = hook_from_a_fake_claude(&w, Some(outer.id()));
    assert_eq!(terminal_pids(&w), vec![u64::from(claude.id())]);
    for child in [&mut claude, &mut outer] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
