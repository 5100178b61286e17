//! End to end with the real Claude Code CLI (pinned, installed by tests/support on first
//! use) in a throw-away HOME, against the stand-in Messages API on 127.0.0.1.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::installed::Installed;
use support::real_claude::{ClaudeHome, Facts, read_stderr_until, run_with_stdin};
use support::terminal::OpenTerminal;

impl Installed {
    /// A person's turn in a terminal: `claude -p` in `cwd`, resuming `session` if given.
    fn terminal(&self, cwd: &Path, session: Option<&str>, prompt: &str) -> Value {
        let mut args = vec![];
        if let Some(id) = session {
            args.extend(["--resume", id]);
        }
        self.home.run_p_json(cwd, &args, prompt)
    }

    /// `claude -p --output-format json --resume SESSION` with extra env; its result (or
    /// `null` when it printed none) and its stderr.
    fn claude_p_env(&self, cwd: &Path, session: &str, prompt: &str, env: &[(&str, &str)]) -> (Value, String) {
        let mut cmd = self.home.claude_p(cwd);
        cmd.args(["--output-format", "json", "--resume", session]).envs(env.iter().copied());
        let out = run_with_stdin(&mut cmd, prompt, Duration::from_secs(180));
        let mut result = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if result.is_null() {
            // No result object (claude was stopped by a signal): the exit status tells.
            result = serde_json::json!({"exit_status": out.status.code(), "signal": std::os::unix::process::ExitStatusExt::signal(&out.status)});
        }
        (result, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn run_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "run {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn transcript(&self, id: &str) -> String {
        let rec = self.list().into_iter().find(|s| s["session_id"] == id).expect("recorded");
        fs::read_to_string(rec["transcript"].as_str().unwrap()).unwrap()
    }

    /// Waits until the stand-in has received `n` turn requests.
    fn wait_for_turns(&self, n: usize) {
        assert!(
            self.home
                .api
                .wait_for(Duration::from_secs(60), |r| { r.iter().filter(|r| r.is_main_turn).count() >= n })
        );
    }
}

fn id_of(result: &Value) -> String {
    result["session_id"].as_str().unwrap().to_owned()
}

#[test]
fn claude_p_fires_the_hook_and_the_session_is_listed_with_its_cwd() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let result = e.terminal(&project, None, "hello from the terminal");
    let id = id_of(&result);
    let list = e.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["session_id"], id.as_str());
    assert_eq!(list[0]["cwd"], project.to_str().unwrap());
    assert_eq!(list[0]["started_by"], "bot", "claude -p is not a person's terminal");
    assert_eq!(list[0]["transcript_exists"], true);
    let shown = e.clawsess_ok(&["show", &id, "-n", "2"]);
    assert!(shown.contains("hello from the terminal") && shown.contains("stand-in reply"), "{shown}");
    // The default state dir lives in the throw-away HOME.
    assert!(e.home.state().join("sessions").join(format!("{id}.json")).is_file());
}

#[test]
fn slash_attach_attaches_that_session_and_slash_detach_detaches() {
    let e = Installed::new("project");
    let first = id_of(&e.terminal(&e.home.project("alpha"), None, "plan the trip"));
    // A later session elsewhere: /attach must still pick the session it is typed in.
    let later = id_of(&e.terminal(&e.home.project("beta"), None, "something else"));
    assert_ne!(first, later);

    let out = e.terminal(&e.home.project("alpha"), Some(&first), "/attach --key telegram:42");
    assert_eq!(out["is_error"], false, "{out}");
    assert_eq!(e.current("telegram:42").as_deref(), Some(first.as_str()));
    // What clawsess printed reached the model.
    let last = e.home.api.turn_requests().pop().unwrap();
    assert!(
        last.all_text.contains("Attached telegram:42") && last.all_text.contains("plan the trip"),
        "{}",
        last.all_text
    );
    assert!(
        !last.all_text.contains("clawsess uninstall"),
        "the install marker is no prompt: {}",
        last.all_text
    );

    e.terminal(&e.home.project("alpha"), Some(&first), "/attach");
    let j: Value = serde_json::from_str(&e.clawsess_ok(&["current", "--key", "anyone", "--json"])).unwrap();
    assert_eq!((j["session_id"].as_str(), j["via"].as_str()), (Some(first.as_str()), Some("global")));

    e.terminal(&e.home.project("alpha"), Some(&first), "/detach --key telegram:42");
    let j: Value =
        serde_json::from_str(&e.clawsess_ok(&["current", "--key", "telegram:42", "--json"])).unwrap();
    assert_eq!(j["via"], "global", "telegram:42 now follows the global attachment only");
    e.terminal(&e.home.project("alpha"), Some(&first), "/detach");
    assert_eq!(e.current("telegram:42"), None);
}

#[test]
fn a_bot_run_after_attach_continues_the_terminal_conversation() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "remember the word PAPAYA"));
    e.terminal(&project, Some(&id), "/attach --key telegram:1");
    let before = e.home.api.turn_requests().len();

    let reply = e.run_json(&["--key", "telegram:1", "what was the word?"]);
    assert_eq!(reply["session_id"], id.as_str(), "{reply}\n{}", e.clawsess_ok(&["list", "--json"]));
    assert_eq!(reply["key"], "telegram:1");
    assert!(reply["result"].as_str().unwrap().contains("stand-in reply"));
    let req = &e.home.api.turn_requests()[before];
    assert!(
        req.all_text.contains("remember the word PAPAYA"),
        "the bot's turn carries the terminal's conversation"
    );
    assert_eq!(req.last_user_text.trim(), "what was the word?");
    assert!(req.message_count > 2, "{}", req.message_count);
    assert!(e.transcript(&id).contains("what was the word?"));
    // The run did not start a session of its own.
    assert_eq!(e.list().len(), 1);
}

#[test]
fn after_detach_a_key_gets_its_own_session_and_keeps_it() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let terminal = id_of(&e.terminal(&project, None, "terminal work"));
    e.clawsess_ok(&["attach", &terminal, "--key", "discord:thread:9"]);
    e.run_json(&["--key", "discord:thread:9", "bot on the terminal session"]);
    e.clawsess_ok(&["detach", "--key", "discord:thread:9"]);

    let own = id_of(&e.run_json(&[
        "--key",
        "discord:thread:9",
        "--cwd",
        project.to_str().unwrap(),
        "my own first",
    ]));
    assert_ne!(own, terminal);
    let again = e.run_json(&["--key", "discord:thread:9", "my own second"]);
    assert_eq!(id_of(&again), own);
    let req = e.home.api.turn_requests().pop().unwrap();
    assert!(req.all_text.contains("my own first") && !req.all_text.contains("terminal work"));
    let j: Value =
        serde_json::from_str(&e.clawsess_ok(&["current", "--key", "discord:thread:9", "--json"])).unwrap();
    assert_eq!(j["via"], "own");
    let rec = e.list().into_iter().find(|s| s["session_id"] == own.as_str()).unwrap();
    assert_eq!(rec["started_by"], "run");
    assert_eq!(rec["cwd"], project.to_str().unwrap());
}

#[test]
fn two_keys_run_in_parallel_while_two_runs_on_one_key_take_turns() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let cwd = project.to_str().unwrap();
    for key in ["k:a", "k:b"] {
        e.run_json(&["--key", key, "--cwd", cwd, "hello"]);
    }
    e.home.api.clear();
    let a = e.spawn_run(&["--key", "k:a", "parallel a [hold=both]"]);
    let b = e.spawn_run(&["--key", "k:b", "parallel b [hold=both]"]);
    // Both turns reach the model while both are held: they run at once.
    e.wait_for_turns(2);
    e.home.api.release("both");
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let reqs = e.home.api.turn_requests();
    let (x, y) = (&reqs[0], &reqs[1]);
    assert!(
        x.started_ms < y.finished_ms && y.started_ms < x.finished_ms,
        "different sessions overlap: {x:?} {y:?}"
    );

    e.home.api.clear();
    let first = e.spawn_run(&["--key", "k:a", "serial one [hold=one]"]);
    e.home.api.wait_held("one");
    let mut second = e.spawn_run(&["--key", "k:a", "serial two"]);
    // The second run says it waits for the first before the first is let go.
    let (said, _rest) = read_stderr_until(&mut second, "in progress; waiting");
    assert_eq!(e.home.api.turn_requests().len(), 1, "the second turn waits: {said}");
    e.home.api.release("one");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let reqs = e.home.api.turn_requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].started_ms >= reqs[0].finished_ms, "one session, one turn at a time: {reqs:?}");
    assert!(reqs[1].all_text.contains("serial one"), "the second turn saw the first");
    let t = e.transcript(&e.current("k:a").unwrap());
    assert!(t.find("serial one").unwrap() < t.find("serial two").unwrap());
}

#[test]
fn a_run_waits_for_or_refuses_a_busy_terminal_and_a_terminal_is_refused_during_a_run() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "start"));
    e.clawsess_ok(&["attach", &id, "--key", "telegram:1"]);

    // A terminal turn in progress: run refuses with 75 at --wait 0.
    let mut terminal = e.home.claude_p(&project);
    terminal.args(["--output-format", "json", "--resume", &id]);
    let term = std::thread::spawn(move || {
        run_with_stdin(&mut terminal, "long terminal turn [hold=term]", Duration::from_secs(120))
    });
    e.home.api.wait_held("term");
    let out = e.run(&["--key", "telegram:1", "--wait", "0", "from the bot"]);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a turn of claude -p"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With a wait, it goes once the terminal's turn is over.
    let mut later = e.spawn_run(&["--key", "telegram:1", "--wait", "120", "from the bot, later"]);
    read_stderr_until(&mut later, "waiting up to");
    e.home.api.release("term");
    let out = later.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let term = term.join().unwrap();
    assert!(term.status.success());
    let reqs = e.home.api.turn_requests();
    let (t, b) = (&reqs[1], &reqs[2]);
    assert!(b.started_ms >= t.finished_ms, "the bot's turn came after the terminal's");

    // A run in progress: the terminal's prompt is refused with the reason.
    let run = e.spawn_run(&["--key", "telegram:1", "slow bot turn [hold=bot]"]);
    e.home.api.wait_held("bot");
    let before = e.home.api.turn_requests().len();
    // A claude -p that will not wait is refused at once, as a failure its caller sees, with the
    // reason on its stderr.
    let (refused, stderr) =
        e.claude_p_env(&project, &id, "typed in the terminal meanwhile", &[("CLAWSESS_TURN_WAIT", "0")]);
    assert!(failed_visibly(&refused), "{refused}");
    assert!(stderr.contains("telegram:1") && stderr.contains("busy"), "{stderr}");
    assert_eq!(e.home.api.turn_requests().len(), before, "the refused prompt never reached the model");
    e.home.api.release("bot");
    assert!(run.wait_with_output().unwrap().status.success());
    let user_lines: Vec<Value> = e
        .transcript(&id)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "user")
        .collect();
    assert!(
        !user_lines.iter().any(|l| l.to_string().contains("typed in the terminal meanwhile")),
        "refused, not in the conversation"
    );
}

#[test]
fn a_terminal_left_open_catches_up_on_what_the_bot_said() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "we are planning a trip"));
    e.clawsess_ok(&["attach", &id, "--key", "telegram:1"]);
    let mut term = OpenTerminal::start(&e.home, &project, &id, &[("CLAWSESS_BEHIND", "note")]);
    term.turn("first terminal turn");
    let rec = e.list().into_iter().find(|s| s["session_id"] == id.as_str()).unwrap();
    assert_eq!(rec["live"], true, "a terminal is open on it: {rec}");
    let n = e.home.api.turn_requests().len();
    e.run_json(&["--key", "telegram:1", "book the hotel in LISBON please"]);
    term.turn("what did the bot just do?");
    let reqs = e.home.api.turn_requests();
    assert_eq!(reqs.len(), n + 2);
    let seen = &reqs[n + 1];
    assert!(
        seen.all_text.contains("book the hotel in LISBON please") && seen.all_text.contains("telegram:1"),
        "the terminal's next request carries the bot's turn: {}",
        seen.all_text
    );
    let rec = e.list().into_iter().find(|s| s["session_id"] == id.as_str()).unwrap();
    assert_eq!(rec["forked"], true, "note mode lets a behind process fork the transcript: {rec}");
    // Only once: nothing from the prompt "and now?" on carries it again. (Whether the first
    // note stays in the history sent with later turns depends on the version: 2.0.28 drops it.)
    term.turn("and now?");
    let last = e.home.api.turn_requests().pop().unwrap();
    let messages = last.body["messages"].as_array().unwrap();
    let at = messages.iter().rposition(|m| m.to_string().contains("and now?")).expect("the prompt was sent");
    let since = Value::from(messages[at..].to_vec()).to_string();
    assert!(!since.contains("[clawsess] While this Claude Code was idle"), "{since}");
    assert!(!since.contains("book the hotel in LISBON please"), "{since}");
}

#[test]
fn dash_and_slash_prompts_arrive_as_text() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let cwd = project.to_str().unwrap();
    e.run_json(&["--key", "k", "--cwd", cwd, "--", "--help"]);
    assert_eq!(e.home.api.turn_requests().pop().unwrap().last_user_text.trim(), "--help");
    e.run_json(&["--key", "k", "--", "-rf", "/"]);
    assert_eq!(e.home.api.turn_requests().pop().unwrap().last_user_text.trim(), "-rf /");
    // A chat user typing /attach must not run clawsess attach inside the bot's session.
    let reply = e.run_json(&["--key", "k", "/attach"]);
    assert_eq!(e.home.api.turn_requests().pop().unwrap().last_user_text.trim(), "/attach");
    assert!(reply["result"].as_str().unwrap().contains("stand-in reply"));
    assert_eq!(e.current("someone-else"), None, "no global attachment was made");
}

#[test]
fn an_at_file_reference_in_a_run_prompt_stays_text() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let secret = e.home.home().join("secret.txt");
    fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let prompt = format!("summarize @{} please", secret.display());
    let reply = e.run_json(&["--key", "k", "--cwd", project.to_str().unwrap(), "--", &prompt]);
    assert_eq!(reply["is_error"], false, "{reply}");
    assert!(reply.get("interrupted").is_none(), "run --json prints claude's result as -p does: {reply}");
    let req = e.home.api.turn_requests().pop().unwrap();
    assert!(req.all_text.contains(&prompt), "{}", req.all_text);
    // Before 2.1.248 Claude Code expands it whatever the message says: a limit doctor reports.
    let verbatim = Facts::get().verbatim_prompts();
    assert!(
        !verbatim || !req.all_text.contains("TOP-SECRET-CONTENT"),
        "a chat user's @file must not read the file"
    );
    // The plain form prints the reply.
    let out = e.run(&["--key", "k", "--", &format!("again @{}", secret.display())]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("stand-in reply"));
    assert!(!verbatim || !e.home.api.turn_requests().pop().unwrap().all_text.contains("TOP-SECRET-CONTENT"));
}

#[test]
fn a_killed_run_frees_the_session() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let cwd = project.to_str().unwrap();
    e.run_json(&["--key", "k", "--cwd", cwd, "hello"]);
    for signal in ["-KILL", "-TERM"] {
        let n = e.home.api.turn_requests().len();
        let run = e.spawn_run(&["--key", "k", "a turn held until killed [hold=never]"]);
        e.wait_for_turns(n + 1);
        let pid = run.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
        let started = Instant::now();
        let out = e.run(&["--key", "k", "--wait", "30", "next turn"]);
        assert!(out.status.success(), "after kill {signal}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(30));
        let out = run.wait_with_output().unwrap();
        assert!(!out.status.success());
    }
}

#[test]
fn uninstall_leaves_claude_code_as_it_was() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    e.clawsess_ok(&["uninstall"]);
    let settings: Value =
        serde_json::from_str(&fs::read_to_string(e.home.claude_dir().join("settings.json")).unwrap())
            .unwrap();
    assert!(settings.get("hooks").is_none(), "{settings}");
    e.terminal(&project, None, "no hook now");
    assert!(e.list().is_empty());
}

#[test]
fn the_repo_as_a_plugin_gives_the_same_hooks_and_commands() {
    // No `clawsess install` here: everything comes from the plugin dir (the repo root).
    let home = ClaudeHome::new();
    let project = home.project("alpha");
    let plugin_turn = |args: &[&str], prompt: &str| -> Value {
        let mut cmd = home.claude_p(&project);
        cmd.args(["--plugin-dir", env!("CARGO_MANIFEST_DIR"), "--output-format", "json"])
            .args(args)
            .env("CLAWSESS_BIN", env!("CARGO_BIN_EXE_clawsess"));
        let out = run_with_stdin(&mut cmd, prompt, Duration::from_secs(120));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let clawsess = |args: &[&str]| -> Output {
        let mut cmd = home.command(env!("CARGO_BIN_EXE_clawsess"));
        cmd.args(args);
        run_with_stdin(&mut cmd, "", Duration::from_secs(60))
    };
    let id = id_of(&plugin_turn(&[], "hello through the plugin"));
    let list: Value = serde_json::from_slice(&clawsess(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["session_id"], id.as_str(), "the plugin's SessionStart hook recorded the session");
    assert_eq!(list[0]["cwd"], project.to_str().unwrap());

    let out = plugin_turn(&["--resume", &id], "/clawsess:attach --key telegram:3");
    assert_eq!(out["is_error"], false, "{out}");
    let current = clawsess(&["current", "--key", "telegram:3"]);
    assert_eq!(String::from_utf8_lossy(&current.stdout).trim(), id);

    plugin_turn(&["--resume", &id], "/clawsess:sessions");
    let seen = home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains(&id[..8]) && seen.all_text.contains("telegram:3"), "{}", seen.all_text);

    plugin_turn(&["--resume", &id], "/clawsess:detach --key telegram:3");
    assert!(!clawsess(&["current", "--key", "telegram:3"]).status.success());
}

#[test]
fn import_records_sessions_from_real_transcripts() {
    let e = Installed::new("project");
    let alpha = e.home.project("alpha");
    let beta = e.home.project("beta");
    let a = id_of(&e.terminal(&alpha, None, "first"));
    let b = id_of(&e.terminal(&beta, None, "second"));
    e.terminal(&alpha, Some(&a), "more");
    // As if the hook had never run: forget every record, then import.
    fs::remove_dir_all(e.home.state().join("sessions")).unwrap();
    assert!(e.list().is_empty());
    let out = e.clawsess_ok(&["import"]);
    assert!(out.contains("imported 2 sessions"), "{out}");
    let list = e.list();
    let cwd_of = |id: &str| list.iter().find(|s| s["session_id"] == id).map(|s| s["cwd"].clone());
    assert_eq!(cwd_of(&a), Some(Value::from(alpha.to_str().unwrap())));
    assert_eq!(cwd_of(&b), Some(Value::from(beta.to_str().unwrap())));
    assert!(list.iter().all(|s| s["started_by"] == "import"));
    // An imported session is a session like any other: a bot can continue it.
    let reply = e.run_json(&["--session", &a, "--key", "k", "after the import"]);
    assert_eq!(reply["session_id"], a.as_str());
    assert!(e.home.api.turn_requests().pop().unwrap().all_text.contains("more"));
    assert!(e.clawsess_ok(&["import"]).contains("imported 0 sessions"));
}

#[test]
fn a_prompt_another_hook_refuses_makes_run_fail_on_every_version() {
    // Before 2.1.200 claude -p reports such a prompt as a success with an empty result; from
    // 2.1.200 as a success whose result says "blocked by hook". run fails either way.
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let settings_path = e.home.claude_dir().join("settings.json");
    let mut settings: Value = serde_json::from_str(&fs::read_to_string(&settings_path).unwrap()).unwrap();
    let refuse = serde_json::json!({"hooks": [{"type": "command",
        "command": "grep -q FORBIDDEN && { echo 'no forbidden words here' >&2; exit 2; }; exit 0"}]});
    settings["hooks"]["UserPromptSubmit"].as_array_mut().unwrap().push(refuse);
    e.home.write_settings(&settings);
    let cwd = project.to_str().unwrap();
    let ok = e.run_json(&["--key", "k", "--cwd", cwd, "an allowed prompt"]);
    let session = id_of(&ok);
    let before = e.home.api.turn_requests().len();

    let out = e.run(&["--key", "k", "--json", "a FORBIDDEN prompt"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["is_error"], true, "{j}");
    assert_eq!(e.home.api.turn_requests().len(), before, "the refused prompt never reached the model");
    assert_eq!(e.current("k").as_deref(), Some(session.as_str()), "the key's mapping stays");
    assert!(
        e.run_json(&["--key", "k", "allowed again"])["result"].as_str().unwrap().contains("stand-in reply")
    );
}

/// A `claude -p` result that its caller sees as a failure: an error result, or no result and a
/// non-zero exit (clawsess stops a refused one-turn `claude -p` with SIGTERM: exit 143).
fn failed_visibly(result: &Value) -> bool {
    result["is_error"] == true
        || result["exit_status"].as_i64().is_some_and(|c| c != 0)
        || result["signal"].is_number()
}

/// Every line of a transcript that carries a `uuid`, as (uuid, parentUuid, type, text).
fn transcript_tree(text: &str) -> Vec<(String, Option<String>, String, String)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["uuid"].is_string())
        .map(|v| {
            (
                v["uuid"].as_str().unwrap().to_owned(),
                v["parentUuid"].as_str().map(str::to_owned),
                v["type"].as_str().unwrap_or("").to_owned(),
                v["message"]["content"].to_string(),
            )
        })
        .collect()
}

/// Waits until `n` claude processes (other than run's own) are open on session `id`.
fn wait_for_open_processes(e: &Installed, id: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = e.home.state();
        let read = |dir: &str| -> Option<Value> {
            serde_json::from_str(&fs::read_to_string(state.join(dir).join(format!("{id}.json"))).ok()?).ok()
        };
        // The live pids: the live file's when it overlays the record (docs/STATE.md).
        let rec = read("sessions").unwrap();
        let rec = read("live").filter(|l| l["stamp"] == rec["stamp"]).unwrap_or(rec);
        let live = rec["processes"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| Path::new(&format!("/proc/{}", p)).exists()).count());
        if live >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} processes never opened on {id}: {rec}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_claude_p_at_once_the_second_waits_then_fails_visibly_and_a_third_sees_everything() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "base turn"));
    // A barrier: every claude's start waits for this file (a SessionStart hook beside
    // clawsess's), so that the second's prompt comes after the first's turn is over.
    let gate = e.home.home().join("gate");
    let settings_path = e.home.claude_dir().join("settings.json");
    let mut settings: Value = serde_json::from_str(&fs::read_to_string(&settings_path).unwrap()).unwrap();
    settings["hooks"]["SessionStart"].as_array_mut().unwrap().push(serde_json::json!({"hooks": [{
        "type": "command",
        "command": format!("while [ ! -e '{}' ]; do sleep 0.05; done", gate.display()),
        "timeout": 300
    }]}));
    fs::write(&settings_path, settings.to_string()).unwrap();
    let (p, s) = (project.clone(), id.clone());
    let home = &e.home;
    std::thread::scope(|scope| {
        fs::write(&gate, "").unwrap();
        let first = scope.spawn(|| {
            let mut cmd = home.claude_p(&p);
            cmd.args(["--output-format", "json", "--resume", &s]);
            run_with_stdin(&mut cmd, "first at once [hold=first]", Duration::from_secs(180))
        });
        e.home.api.wait_held("first");
        fs::remove_file(&gate).unwrap();
        let second = scope.spawn(|| e.claude_p_env(&p, &s, "second at once", &[]));
        // The second has loaded the conversation (its SessionStart ran) before the first ends,
        // and sends its prompt only after the first's turn is over.
        wait_for_open_processes(&e, &s, 2);
        e.home.api.release("first");
        let first = first.join().unwrap();
        fs::write(&gate, "").unwrap();
        let first: Value = serde_json::from_slice(&first.stdout).unwrap();
        assert_eq!(first["is_error"], false, "{first}");
        let (second, stderr) = second.join().unwrap();
        assert!(failed_visibly(&second), "the second fails visibly: {second}");
        assert!(stderr.contains("continued this conversation") && stderr.contains(&id), "{stderr}");
    });
    assert!(e.home.api.turn_requests().iter().all(|r| !r.last_user_text.contains("second at once")));
    let third = e.terminal(&project, Some(&id), "third after");
    assert_eq!(third["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(
        seen.all_text.contains("first at once") && seen.all_text.contains("base turn"),
        "{}",
        seen.all_text
    );
    assert!(!seen.all_text.contains("second at once"));
    // Every message the third turn saw is on one chain: no turn forked off.
    let t = e.transcript(&id);
    let tree = transcript_tree(&t);
    let last_user = tree.iter().rev().find(|n| n.2 == "user" && n.3.contains("third after")).unwrap();
    let mut chain = Vec::new();
    let mut at = last_user.1.clone();
    while let Some(u) = at {
        let node = tree.iter().find(|n| n.0 == u).unwrap();
        chain.push(node.3.clone());
        at = node.1.clone();
    }
    let chain = chain.join("\n");
    assert!(chain.contains("first at once") && chain.contains("base turn"), "{chain}");
}

#[test]
fn a_claude_process_left_open_that_is_behind_is_refused_and_loses_nothing() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "we are planning a trip"));
    e.clawsess_ok(&["attach", &id, "--key", "telegram:1"]);
    let mut open = OpenTerminal::start(&e.home, &project, &id, &[]);
    open.turn("first turn of the open process");
    e.run_json(&["--key", "telegram:1", "book the hotel in LISBON please"]);
    let n = e.home.api.turn_requests().len();
    // Refused as a failure the caller sees: a process kept open is ended (on an interrupt it
    // would checkpoint its stale leaf as it exits, and a later resume would lose the bot's turn).
    let refused = open.try_turn("what did the bot just do?");
    assert!(refused.as_ref().is_none_or(|r| r["is_error"] == true), "{refused:?}");
    assert!(open.child.wait().is_ok());
    assert_eq!(e.home.api.turn_requests().len(), n, "the behind prompt never reached the model");
    // Nothing lost: the next turn of any surface sees both the open process's turn and the bot's.
    let next = e.run_json(&["--key", "telegram:1", "and now?"]);
    assert_eq!(next["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(
        seen.all_text.contains("first turn of the open process") && seen.all_text.contains("LISBON"),
        "{}",
        seen.all_text
    );
    assert!(!seen.all_text.contains("what did the bot just do?"));
    let again = e.terminal(&project, Some(&id), "a fresh process");
    assert_eq!(again["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("and now?") && seen.all_text.contains("LISBON"), "{}", seen.all_text);
}

/// A fork clawsess could not prevent (two `claude -p --resume` at once with the hooks off, as
/// with an older Claude Code or one without clawsess): the next `run` continues the branch
/// with the newest turn, tells the model the other branch's turn (once, where Claude Code
/// keeps a hook's context in the transcript; with every turn where it does not), `list` says
/// `forked`, and later processes are told too.
#[test]
fn a_fork_made_without_clawsess_is_continued_on_its_newest_branch_and_the_other_is_told() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let first = e.run_json(&["--key", "telegram:1", "--cwd", project.to_str().unwrap(), "we plan PORTO"]);
    let id = id_of(&first);
    e.home.fork_without_hooks(&project, &id, "the person says BRAGA", "a script says LISBON");

    // The newest turn (BRAGA's reply came last) is on one branch, LISBON on the other.
    let next = e.run_json(&["--key", "telegram:1", "what do we know OBIDOS"]);
    assert_eq!(next["session_id"], id.as_str());
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("OBIDOS"));
    for word in ["PORTO", "BRAGA", "LISBON", "This conversation forked"] {
        assert!(seen.all_text.contains(word), "{word} not seen: {}", seen.all_text);
    }
    let rec = e.list().into_iter().find(|s| s["session_id"] == id.as_str()).unwrap();
    assert_eq!(rec["forked"], true, "{rec}");

    // The next turn still knows, and the model never gets the note twice.
    e.run_json(&["--key", "telegram:1", "and then EVORA"]);
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("OBIDOS") && seen.all_text.contains("LISBON"), "{}", seen.all_text);
    assert_eq!(seen.all_text.matches("This conversation forked").count(), 1, "{}", seen.all_text);
    // So does a plain `claude -p --resume` (its prompt hook tells it where no note was kept).
    let fresh = e.terminal(&project, Some(&id), "a fresh process FARO");
    assert_eq!(fresh["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("EVORA") && seen.all_text.contains("LISBON"), "{}", seen.all_text);
    assert_eq!(seen.all_text.matches("This conversation forked").count(), 1, "{}", seen.all_text);
}

/// A warm turn on a fresh kept claude skips reading the transcript's branches (its last turn
/// did, and nothing wrote since); a fork made between two warm turns makes it stale, and the
/// next turn is checked and corrected before a cold claude resumes, as without a kept claude:
/// the model sees the branch with the newest turn, and the other branch only in the note.
#[test]
fn a_fork_made_between_two_warm_turns_is_continued_on_its_newest_branch_and_told() {
    let e = support::real_claude::Cooling(Installed::new("project"));
    let warm = |prompt: &str| {
        let project = e.project.to_str().unwrap();
        let out = e.run(&["--json", "--key", "telegram:1", "--cwd", project, "--warm", "10m", "--", prompt]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "run {prompt:?}: {stderr}");
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["is_error"], false, "{result}");
        (result, stderr)
    };
    let (first, _) = warm("we plan PORTO");
    let id = id_of(&first);
    // The kept claude takes the second turn: fresh, and its first turn found one branch.
    let (second, stderr) = warm("then SINTRA");
    assert_eq!(second["warm"], true, "{second} {stderr}");
    assert!(!stderr.contains("forked"), "{stderr}");
    e.home.fork_without_hooks(&e.project, &id, "the person says BRAGA", "a script says LISBON");

    let (third, stderr) = warm("what do we know OBIDOS");
    assert_eq!(third["warm"], false, "the stale kept claude is not used: {third}");
    // (A kept claude without hooks is ended for the settings.json the fork was made around,
    // one with hooks for the transcript written.)
    assert!(
        stderr.contains("changed since its warm claude's last turn")
            || stderr.contains("changed since it started"),
        "{stderr}"
    );
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("OBIDOS"), "{}", seen.last_user_text);
    // Which branch the model saw: BRAGA (the newest turn's) in the conversation, LISBON only
    // in the fork note.
    let blocks: Vec<String> = seen.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| match &m["content"] {
            Value::String(text) => vec![text.clone()],
            blocks => blocks
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str().map(str::to_owned))
                .collect(),
        })
        .collect();
    let note: Vec<&String> = blocks.iter().filter(|b| b.contains("This conversation forked")).collect();
    assert_eq!(note.len(), 1, "the fork note, once: {blocks:#?}");
    assert!(note[0].contains("LISBON") && !note[0].contains("BRAGA"), "{}", note[0]);
    let conversation: Vec<&String> =
        blocks.iter().filter(|b| !b.contains("This conversation forked")).collect();
    for word in ["PORTO", "SINTRA", "BRAGA"] {
        assert!(conversation.iter().any(|b| b.contains(word)), "{word} not in the conversation: {blocks:#?}");
    }
    assert!(!conversation.iter().any(|b| b.contains("LISBON")), "LISBON's branch followed: {blocks:#?}");
    let rec = e.list().into_iter().find(|s| s["session_id"] == id.as_str()).unwrap();
    assert_eq!(rec["forked"], true, "{rec}");

    // The keeper started for that turn keeps the session now; the session forked, so each
    // turn on it is checked again, and the model still knows the other branch.
    let (fourth, stderr) = warm("and then EVORA");
    assert_eq!(fourth["warm"], true, "{fourth} {stderr}");
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.all_text.contains("OBIDOS") && seen.all_text.contains("LISBON"), "{}", seen.all_text);
}

/// `CLAWSESS_BEHIND=note`: a process kept open that is behind answers on its old leaf with the
/// bot's turn as a note (the transcript forks). Nothing is lost for any later reader: `run`
/// continues the newest branch and is told the other one, and so does a fresh process.
#[test]
fn in_note_mode_a_behind_process_forks_and_every_later_turn_still_sees_every_turn() {
    let e = Installed::new("project");
    let project = e.home.project("alpha");
    let id = id_of(&e.terminal(&project, None, "we are planning a trip to PORTO"));
    e.clawsess_ok(&["attach", &id, "--key", "telegram:1"]);
    let mut open = OpenTerminal::start(&e.home, &project, &id, &[("CLAWSESS_BEHIND", "note")]);
    open.turn("first turn of the open process BRAGA");
    e.run_json(&["--key", "telegram:1", "book the hotel in LISBON please"]);
    // Behind, let through with the catch-up note: its answer goes onto its old leaf.
    let forked = open.turn("what did the bot just do COIMBRA");
    assert_eq!(forked["is_error"], false, "{forked}");
    let seen = e.home.api.turn_requests().pop().unwrap();
    assert!(seen.last_user_text.contains("COIMBRA") && seen.all_text.contains("LISBON"), "{}", seen.all_text);
    drop(open);

    let next = e.run_json(&["--key", "telegram:1", "and now EVORA"]);
    assert_eq!(next["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "COIMBRA"] {
        assert!(seen.all_text.contains(word), "run lost {word}: {}", seen.all_text);
    }
    let rec = e.list().into_iter().find(|s| s["session_id"] == id.as_str()).unwrap();
    assert_eq!(rec["forked"], true, "{rec}");
    let again = e.terminal(&project, Some(&id), "a fresh process FARO");
    assert_eq!(again["is_error"], false);
    let seen = e.home.api.turn_requests().pop().unwrap();
    for word in ["PORTO", "BRAGA", "LISBON", "COIMBRA", "EVORA"] {
        assert!(seen.all_text.contains(word), "a fresh process lost {word}: {}", seen.all_text);
    }
}
