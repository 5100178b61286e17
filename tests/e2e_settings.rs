//! Settings and reset policies (issue 25) with the real Claude Code CLI against the stand-in
//! API: what the model was asked with, and which session a key's turn went to.

mod support;

use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use support::real_claude::{ClaudeHome, Cooling};

fn home() -> ClaudeHome {
    let home = ClaudeHome::new();
    home.install_clawsess();
    home
}

fn run_json(home: &ClaudeHome, args: &[&str]) -> (Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = home.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run {args:?}: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// The model of the last main-turn request the stand-in received.
fn last_model(home: &ClaudeHome) -> (String, Value) {
    let turn = home.api().turn_requests().into_iter().last().expect("a turn request");
    (turn.model, turn.body)
}

fn config_path(home: &ClaudeHome) -> PathBuf {
    let dir = home.home().join(".config").join("clawsess");
    fs::create_dir_all(&dir).unwrap();
    dir.join("config.toml")
}

#[test]
fn a_key_model_setting_reaches_the_api_and_dash_a_overrides_it_for_one_run() {
    let home = home();
    let cwd = home.project("p");
    let cwd = cwd.to_str().unwrap();
    home.clawsess_ok(&[
        "set",
        "--key",
        "chat:1",
        "model=claude-sonnet-4-5",
        "effort=low",
        &format!("cwd={cwd}"),
    ]);
    let (first, _) = run_json(&home, &["--key", "chat:1", "hello"]);
    let (model, _) = last_model(&home);
    assert_eq!(model, "claude-sonnet-4-5", "the key's model setting is what the model is asked with");
    assert_eq!(first["is_error"], false);
    // The key's cwd setting placed its new session.
    let listed: Value = serde_json::from_str(&home.clawsess_ok(&["list", "--json"])).unwrap();
    assert_eq!(listed[0]["cwd"], cwd);

    let (second, _) =
        run_json(&home, &["--key", "chat:1", "-A", "--model", "-A", "claude-haiku-4-5", "again"]);
    assert_eq!(last_model(&home).0, "claude-haiku-4-5", "-A --model wins for this run");
    assert_eq!(second["session_id"], first["session_id"]);

    run_json(&home, &["--key", "chat:1", "third"]);
    assert_eq!(last_model(&home).0, "claude-sonnet-4-5", "and only for that run");

    // A session's setting applies to whoever runs on it; the key's wins where both are set.
    let id = first["session_id"].as_str().unwrap();
    home.clawsess_ok(&["set", id, "model=claude-sonnet-4-5-20250929"]);
    home.clawsess_ok(&["unset", "--key", "chat:1", "model"]);
    run_json(&home, &["--key", "chat:1", "fourth"]);
    assert_eq!(last_model(&home).0, "claude-sonnet-4-5-20250929");
    let got: Value = serde_json::from_str(&home.clawsess_ok(&["get", "--key", "chat:1", "--json"])).unwrap();
    assert_eq!(got["key"], "chat:1");
    assert_eq!(got["settings"], serde_json::json!({"effort": "low", "cwd": cwd}));

    // Effort reaches the request of a model that takes it (the default opus; sonnet 4.5
    // gets no output_config): "medium" unless set.
    run_json(&home, &["--key", "chat:2", "plain"]);
    assert_eq!(last_model(&home).1["output_config"]["effort"], "medium");
    home.clawsess_ok(&["set", "--key", "chat:2", "effort=high"]);
    run_json(&home, &["--key", "chat:2", "with effort"]);
    assert_eq!(last_model(&home).1["output_config"]["effort"], "high", "effort=high reached the request");
}

#[test]
fn an_idle_policy_resets_the_key_own_session_and_says_so_but_never_an_attached_one() {
    let home = home();
    fs::write(
        config_path(&home),
        "[[reset]]\nkey = \"tg:*\"\nmode = \"idle\"\nidle = \"30m\"\n\n[[reset]]\nkey = \"*\"\nmode = \"off\"\n",
    )
    .unwrap();
    home.clawsess_ok(&["set", "--key", "tg:1", "model=claude-sonnet-4-5"]);
    let project = home.project("tg");
    let (first, _) = run_json(&home, &["--key", "tg:1", "--cwd", project.to_str().unwrap(), "one"]);
    let old = first["session_id"].as_str().unwrap().to_owned();
    let (again, _) = run_json(&home, &["--key", "tg:1", "marker-bravo-2"]);
    assert_eq!(again["session_id"], old.as_str(), "not idle yet");
    assert!(again.get("reset").is_none());

    // The session looks idle for an hour (its record's last activity moved back).
    home.idle_for_an_hour(&old);
    let (reset, stderr) = run_json(&home, &["--key", "tg:1", "three"]);
    let new = reset["session_id"].as_str().unwrap().to_owned();
    assert_ne!(new, old, "{stderr}");
    assert_eq!(reset["reset"], serde_json::json!({"from": old, "why": "idle 30m"}));
    assert!(stderr.contains("idle 30m"), "plain words on stderr too: {stderr}");
    let turn = home.api().turn_requests().into_iter().last().unwrap();
    assert!(!turn.all_text.contains("marker-bravo-2"), "the new session starts empty");
    assert_eq!(turn.model, "claude-sonnet-4-5", "the key's settings survive the reset");
    let listed: Value = serde_json::from_str(&home.clawsess_ok(&["list", "--json"])).unwrap();
    let row = listed.as_array().unwrap().iter().find(|r| r["session_id"] == new.as_str()).unwrap().clone();
    assert_eq!(row["cwd"], project.to_str().unwrap(), "the new session goes on in the old one's dir");

    // Plain output: the reply on stdout, the reset on stderr.
    home.idle_for_an_hour(&new);
    let out = home.run(&["--key", "tg:1", "four"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("past its reset policy (idle 30m for tg:*"), "{stderr}");
    // --stream: the result object (the last line) carries it.
    let newer = home.current("tg:1").unwrap();
    assert_ne!(newer, new);
    home.idle_for_an_hour(&newer);
    let out = home.run(&["--stream", "--key", "tg:1", "five"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["reset"], serde_json::json!({"from": newer, "why": "idle 30m"}));

    // An attached session is the attachment's, not the key's: never reset by policy.
    home.clawsess_ok(&["attach", &old, "--key", "tg:2"]);
    home.idle_for_an_hour(&old);
    let (attached, stderr) = run_json(&home, &["--key", "tg:2", "five"]);
    assert_eq!(attached["session_id"], old.as_str(), "{stderr}");
    assert!(attached.get("reset").is_none());
}

#[test]
fn a_broken_config_never_breaks_a_hook_and_run_names_its_line() {
    let home = home();
    fs::write(config_path(&home), "warm = \"10m\"\ncolour = \"red\"\n").unwrap();
    let cwd = home.project("p");
    // A terminal's turn: every hook fires (session-start, prompt-submit, stop) and answers.
    let result = home.run_p_json(&cwd, &[], "hello through broken config");
    assert_eq!(result["is_error"], false, "{result}");
    let id = result["session_id"].as_str().unwrap();
    let listed = home.clawsess_ok(&["list", "--json"]);
    assert!(listed.contains(id), "session-start recorded the session: {listed}");
    // A command that needs the file says which line is wrong.
    let out = home.run(&["--json", "--key", "k", "hi"]);
    assert!(!out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let err = doc["error"].as_str().unwrap();
    assert!(err.contains("config.toml:2") && err.contains("colour"), "{err}");
}

#[test]
fn a_warm_claude_started_with_other_settings_is_ended_not_reused() {
    let home = Cooling(home());
    let note = |id: &str| -> Value {
        let path = home.state().join("warm").join(format!("{id}.json"));
        serde_json::from_str(&fs::read_to_string(path).expect("warm note")).unwrap()
    };
    // warm is a setting too: no --warm on these runs.
    home.clawsess_ok(&["set", "--key", "chat:w", "warm=10m", "model=claude-sonnet-4-5"]);
    let (first, _) = run_json(&home, &["--key", "chat:w", "one"]);
    assert_eq!(first["warm"], false, "the first turn starts claude: {first}");
    let id = first["session_id"].as_str().unwrap().to_owned();
    let claude = note(&id)["claude"].as_u64().unwrap();
    let (second, stderr) = run_json(&home, &["--key", "chat:w", "two"]);
    assert_eq!(second["warm"], true, "same settings: the warm claude takes it ({stderr})");
    assert_eq!(last_model(&home).0, "claude-sonnet-4-5");

    home.clawsess_ok(&["set", "--key", "chat:w", "model=claude-haiku-4-5"]);
    let (third, stderr) = run_json(&home, &["--key", "chat:w", "three"]);
    assert_eq!(third["session_id"], id.as_str());
    assert_eq!(third["warm"], false, "a new claude for the new settings: {stderr}");
    assert!(stderr.contains("was started with another"), "{stderr}");
    assert_ne!(note(&id)["claude"].as_u64().unwrap(), claude);
    assert_eq!(last_model(&home).0, "claude-haiku-4-5");
}
