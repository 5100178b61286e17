//! Every command and its error paths, through the binary (assert_cmd). `run` talks to a
//! stand-in claude (tests/fixtures/fake_claude.py); the real CLI is in tests/e2e.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const ID_A: &str = "aaaa1111-1c2a-4b3d-9e8f-123456789abc";
const ID_B: &str = "aaaa2222-1c2a-4b3d-9e8f-123456789abc";
const ID_C: &str = "cccc3333-1c2a-4b3d-9e8f-123456789abc";

/// A throw-away world: HOME, state dir, Claude Code config dir and a project dir.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let world = Self { dir: tempfile::tempdir().unwrap() };
        for d in ["home", "claude", "project"] {
            fs::create_dir_all(world.path(d)).unwrap();
        }
        world
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn project(&self) -> PathBuf {
        self.path("project").canonicalize().unwrap()
    }

    /// `clawsess ARGS` in this world, with nothing inherited that could change its answer.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("clawsess").unwrap();
        for (k, _) in std::env::vars() {
            if k.starts_with("CLAUDE")
                || k.starts_with("CLAWSESS")
                || k.starts_with("XDG_")
                || k == "NO_COLOR"
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.path("home"))
            .env("CLAWSESS_HOME", self.state())
            .env("CLAUDE_CONFIG_DIR", self.path("claude"))
            .env("FAKE_CLAUDE_LOG", self.path("fake.log"))
            .current_dir(self.project())
            .args(args);
        cmd
    }

    fn transcript(&self, id: &str) -> PathBuf {
        let enc: String = self
            .project()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.path("claude").join("projects").join(enc).join(format!("{id}.jsonl"))
    }

    /// A person's session: a transcript with one exchange, announced by the hook.
    fn person_session(&self, id: &str, prompt: &str, reply: &str) {
        let t = self.transcript(id);
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        let lines = [
            serde_json::json!({"type":"user","message":{"role":"user","content":prompt},"timestamp":"2026-11-21T10:00:00Z"}),
            serde_json::json!({"type":"assistant","message":{"id":"m1","role":"assistant","content":[{"type":"text","text":reply}]}}),
        ];
        fs::write(&t, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        self.hook("session-start", id).assert().success().stdout("");
    }

    fn hook_input(&self, id: &str) -> String {
        serde_json::json!({
            "session_id": id, "transcript_path": self.transcript(id), "cwd": self.project(),
            "hook_event_name": "SessionStart", "source": "startup"
        })
        .to_string()
    }

    fn hook(&self, event: &str, id: &str) -> Command {
        let mut cmd = self.cmd(&["hook", event]);
        cmd.write_stdin(self.hook_input(id));
        cmd
    }

    fn fake_claude(&self) -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_claude.py").to_owned()
    }

    fn run(&self, args: &[&str]) -> Command {
        let claude = self.fake_claude();
        let mut all = vec!["run", "--claude", claude.as_str()];
        all.extend_from_slice(args);
        self.cmd(&all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn current(&self, key: &str) -> String {
        let out = self.cmd(&["current", "--key", key]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn fake_calls(&self) -> Vec<Value> {
        fs::read_to_string(self.path("fake.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------- hooks

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

// ---------------------------------------------------------------- attach / detach / current

#[test]
fn attach_without_session_uses_this_claude_code_session() {
    let w = World::new();
    w.person_session(ID_A, "a", "a");
    w.person_session(ID_B, "b", "b");
    w.cmd(&["attach", "--key", "telegram:1"]).env("CLAUDE_CODE_SESSION_ID", ID_A).assert().success();
    assert_eq!(w.current("telegram:1"), ID_A);
    w.cmd(&["attach", "--key", "telegram:2"]).env("CLAWSESS_SESSION_ID", ID_A).assert().success();
    assert_eq!(w.current("telegram:2"), ID_A);
}

#[test]
fn attach_without_anything_picks_the_latest_person_session_with_a_transcript() {
    let w = World::new();
    w.person_session(ID_A, "a", "a");
    w.person_session(ID_B, "b", "b");
    // A later start whose transcript never appears (a throw-away id) is not picked.
    w.hook("session-start", ID_C).assert().success();
    w.cmd(&["attach"]).assert().success().stdout(predicate::str::contains(ID_B));
    assert_eq!(w.current("anyone"), ID_B);
}

#[test]
fn attach_prints_the_cwd_and_the_last_topic() {
    let w = World::new();
    w.person_session(ID_A, "plan the budget for next year", "Here is a plan with three parts.");
    w.cmd(&["attach", ID_A, "--key", "telegram:1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("telegram:1"))
        .stdout(predicate::str::contains(w.project().to_str().unwrap()))
        .stdout(predicate::str::contains("plan the budget for next year"))
        .stdout(predicate::str::contains("Here is a plan with three parts."));
    let j = w.json(&["attach", ID_A, "--key", "telegram:1", "--json"]);
    assert_eq!(j["last_prompt"], "plan the budget for next year");
    assert_eq!(j["global"], false);
}

#[test]
fn attach_by_prefix_resolves_a_unique_session_and_lists_ambiguous_ones() {
    let w = World::new();
    for id in [ID_A, ID_B, ID_C] {
        w.person_session(id, "p", "r");
    }
    w.cmd(&["attach", "cccc", "--key", "k"]).assert().success();
    assert_eq!(w.current("k"), ID_C);
    w.cmd(&["attach", "aaaa", "--key", "k"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(ID_A).and(predicate::str::contains(ID_B)));
    w.cmd(&["attach", "aaa", "--key", "k"]).assert().code(1).stderr(predicate::str::contains("at least 4"));
    w.cmd(&["attach", "ffff", "--key", "k"]).assert().code(1).stderr(
        predicate::str::contains("no session id starts with")
            .and(predicate::str::contains("clawsess import")),
    );
    assert_eq!(w.current("k"), ID_C);
}

#[test]
fn attach_prefix_of_a_session_from_before_the_install_says_to_import_it() {
    let w = World::new();
    // A transcript the hooks never saw.
    let old = "dddd4444-1c2a-4b3d-9e8f-123456789abc";
    let t = w.transcript(old);
    fs::create_dir_all(t.parent().unwrap()).unwrap();
    fs::write(&t, "{}\n").unwrap();
    w.cmd(&["attach", "dddd4", "--key", "k"]).assert().code(1).stderr(
        predicate::str::contains(format!("Claude Code has session {old} from before clawsess was installed"))
            .and(predicate::str::contains("`clawsess import` records it")),
    );
}

#[test]
fn attach_with_no_session_at_all_says_what_to_do() {
    let w = World::new();
    w.cmd(&["attach"]).assert().code(1).stderr(predicate::str::contains("clawsess install"));
}

#[test]
fn bad_keys_are_refused_with_a_clear_error() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let long = "k".repeat(201);
    for key in ["a b", "a\nb", "../x", "x/../y", "", long.as_str(), "é"] {
        w.cmd(&["attach", ID_A, "--key", key]).assert().code(1).stderr(predicate::str::contains("key"));
        w.cmd(&["current", "--key", key]).assert().code(1).stdout("");
    }
    assert!(!w.state().join("keys").exists());
}

#[test]
fn resolution_prefers_the_key_then_global_then_own() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.cmd(&["attach", ID_A]).assert().success();
    let j = w.json(&["current", "--key", "telegram:1", "--json"]);
    assert_eq!((j["session_id"].as_str(), j["via"].as_str()), (Some(ID_A), Some("global")));
    w.cmd(&["attach", ID_B, "--key", "telegram:1"]).assert().success();
    let j = w.json(&["current", "--key", "telegram:1", "--json"]);
    assert_eq!((j["session_id"].as_str(), j["via"].as_str()), (Some(ID_B), Some("key")));
    assert_eq!(w.current("telegram:2"), ID_A);
    w.cmd(&["detach", "--key", "telegram:1"]).assert().success();
    assert_eq!(w.current("telegram:1"), ID_A);
    w.cmd(&["detach"]).assert().success();
    w.cmd(&["current", "--key", "telegram:1"]).assert().code(1).stdout("");
}

#[test]
fn current_without_any_session_exits_1_with_empty_stdout_or_one_json_failure() {
    let w = World::new();
    w.cmd(&["current"]).assert().code(1).stdout("");
    let out = w.cmd(&["current", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((j["session_id"].clone(), j["key"].as_str()), (Value::Null, Some("default")));
    assert!(j["error"].as_str().unwrap().contains("no session"), "{j}");
}

#[test]
fn detaching_what_is_not_attached_says_so_and_succeeds() {
    let w = World::new();
    w.cmd(&["detach", "--key", "telegram:1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("was not attached"));
    w.cmd(&["detach"]).assert().success().stdout(predicate::str::contains("no global attachment"));
}

#[test]
fn detach_returns_a_key_to_its_own_session() {
    let w = World::new();
    w.run(&["--key", "telegram:1", "hello"]).assert().success();
    let own = w.current("telegram:1");
    w.person_session(ID_A, "p", "r");
    w.cmd(&["attach", ID_A, "--key", "telegram:1"]).assert().success();
    assert_eq!(w.current("telegram:1"), ID_A);
    w.cmd(&["detach", "--key", "telegram:1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("own session {}", &own[..8])));
    let j = w.json(&["current", "--key", "telegram:1", "--json"]);
    assert_eq!((j["session_id"].as_str(), j["via"].as_str()), (Some(own.as_str()), Some("own")));
}

// ---------------------------------------------------------------- list / show / name / forget

#[test]
fn list_shows_most_recent_first_with_attached_keys() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    std::thread::sleep(std::time::Duration::from_millis(5));
    w.person_session(ID_B, "p", "r");
    w.cmd(&["attach", ID_A, "--key", "telegram:1"]).assert().success();
    let list = w.json(&["list", "--json"]);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ID_B, ID_A]);
    assert_eq!(list[1]["attached_keys"], serde_json::json!(["telegram:1"]));
    assert_eq!(w.json(&["list", "--json", "--limit", "1"]).as_array().unwrap().len(), 1);
    let table = stdout_of(&mut w.cmd(&["list"]));
    assert!(table.starts_with("ID "), "{table}");
    assert!(!table.contains('\x1b'), "piped output has no colour: {table:?}");
    assert!(table.contains("telegram:1") && table.contains("aaaa1111"), "{table}");
}

#[test]
fn list_marks_sessions_whose_transcript_is_gone() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    fs::remove_file(w.transcript(ID_A)).unwrap();
    assert_eq!(w.json(&["list", "--json"])[0]["transcript_exists"], false);
    assert!(stdout_of(&mut w.cmd(&["list"])).contains("gone"));
}

#[test]
fn show_prints_the_last_messages() {
    let w = World::new();
    w.person_session(ID_A, "first prompt", "first reply");
    let out = stdout_of(&mut w.cmd(&["show", "aaaa1", "-n", "1"]));
    assert!(out.contains("first reply") && !out.contains("first prompt"), "{out}");
    let j = w.json(&["show", ID_A, "--json"]);
    assert_eq!(j["messages"][0]["role"], "user");
    assert_eq!(j["messages"][1]["text"], "first reply");
    w.cmd(&["show", "nope"]).assert().code(1).stderr(predicate::str::contains("no session is named"));
    fs::remove_file(w.transcript(ID_A)).unwrap();
    w.cmd(&["show", ID_A]).assert().code(1).stderr(predicate::str::contains("gone"));
}

#[test]
fn names_resolve_anywhere_and_stay_unique() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.cmd(&["name", ID_A, "budget"]).assert().success();
    w.cmd(&["attach", "budget", "--key", "k"]).assert().success();
    assert_eq!(w.current("k"), ID_A);
    w.cmd(&["name", ID_B, "budget"]).assert().code(1).stderr(predicate::str::contains("taken"));
    w.cmd(&["name", "budget", "budget-2027"]).assert().success();
    w.cmd(&["show", "budget"]).assert().code(1);
    w.cmd(&["name", ID_B, "budget"]).assert().success();
    assert_eq!(
        w.json(&["list", "--json"]).as_array().unwrap().iter().filter(|s| !s["name"].is_null()).count(),
        2
    );
    w.cmd(&["name", ID_A, "a/b"]).assert().code(1).stderr(predicate::str::contains("'/'"));
}

#[test]
fn forget_drops_the_keys_own_session_and_attachment() {
    let w = World::new();
    w.run(&["--key", "discord:thread:9", "hi"]).assert().success();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["attach", ID_A, "--key", "discord:thread:9"]).assert().success();
    w.cmd(&["forget", "--key", "discord:thread:9"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Forgot"));
    w.cmd(&["current", "--key", "discord:thread:9"]).assert().code(1);
    w.cmd(&["forget", "--key", "discord:thread:9"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing"));
}

// ---------------------------------------------------------------- run

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
    assert!(out.contains("fake reply to: again (lines before: 2)"), "{out}");
    let calls = w.fake_calls();
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
        .stdout(predicate::str::contains("fake reply to: --help"));
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
        .stdout(predicate::str::contains("fake reply to: next"));
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
    assert!(out.contains("lines before: 2"), "continues the terminal's transcript: {out}");
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
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_clawsess"));
    let release = w.path("release");
    let prompt = format!("what did we decide? [hold={}]", release.display());
    run.args(["run", "--claude", &w.fake_claude(), "--key", "telegram:5", &prompt])
        .env("CLAWSESS_HOME", w.state())
        .env("CLAUDE_CONFIG_DIR", w.path("claude"))
        .env("HOME", w.path("home"))
        .current_dir(w.project())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
        text.contains("telegram:5") && text.contains("what did we decide?") && text.contains("fake reply to"),
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
        std::process::Command::new(env!("CARGO_BIN_EXE_clawsess"))
            .args(["run", "--claude", &w.fake_claude(), "--key", "k", text])
            .env("CLAWSESS_HOME", w.state())
            .env("CLAUDE_CONFIG_DIR", w.path("claude"))
            .env("FAKE_CLAUDE_LOG", w.path("fake.log"))
            .env("HOME", w.path("home"))
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

// ---------------------------------------------------------------- install / doctor / import / prune

fn settings(w: &World) -> Value {
    serde_json::from_str(&fs::read_to_string(w.path("claude/settings.json")).unwrap()).unwrap()
}

#[test]
fn install_merges_hooks_keeps_the_rest_and_uninstall_removes_exactly_them() {
    let w = World::new();
    let original = r#"{"model":"opus","hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"atuin hook claude-code"}]}]},"permissions":{"allow":["Bash(ls)"]}}"#;
    fs::write(w.path("claude/settings.json"), original).unwrap();
    w.cmd(&["install"]).assert().success().stdout(predicate::str::contains("backup"));
    let s = settings(&w);
    assert_eq!(s["model"], "opus");
    assert_eq!(s["permissions"]["allow"][0], "Bash(ls)");
    assert_eq!(s["hooks"]["SessionStart"][0]["hooks"][0]["command"], "atuin hook claude-code");
    let ours = s["hooks"]["SessionStart"][1]["hooks"][0]["command"].as_str().unwrap();
    assert!(ours.ends_with("clawsess hook session-start") && ours.starts_with('/'), "{ours}");
    for event in ["UserPromptSubmit", "Stop", "SessionEnd"] {
        assert_eq!(s["hooks"][event].as_array().unwrap().len(), 1, "{event}");
    }
    let attach = fs::read_to_string(w.path("claude/commands/attach.md")).unwrap();
    assert!(attach.contains("attach $ARGUMENTS") && attach.starts_with("---\n"), "{attach}");
    // Idempotent: same settings, no new backup.
    w.cmd(&["install"]).assert().success().stdout(predicate::str::contains("backup").not());
    assert_eq!(settings(&w), s);
    let backups = fs::read_dir(w.path("claude"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("backup"))
        .count();
    assert_eq!(backups, 1);
    w.cmd(&["uninstall"]).assert().success();
    assert_eq!(settings(&w), serde_json::from_str::<Value>(original).unwrap());
    assert!(!w.path("claude/commands/attach.md").exists());
}

#[test]
fn install_refuses_a_settings_file_that_does_not_parse_and_leaves_it_alone() {
    let w = World::new();
    fs::write(w.path("claude/settings.json"), "{ \"model\": ").unwrap();
    w.cmd(&["install"]).assert().code(1).stderr(
        predicate::str::contains("settings.json").and(predicate::str::contains("nothing was changed")),
    );
    assert_eq!(fs::read_to_string(w.path("claude/settings.json")).unwrap(), "{ \"model\": ");
}

#[test]
fn install_writes_through_a_settings_symlink() {
    let w = World::new();
    let real = w.path("dotfiles-settings.json");
    fs::write(&real, "{\"theme\":\"dark\"}").unwrap();
    std::os::unix::fs::symlink(&real, w.path("claude/settings.json")).unwrap();
    w.cmd(&["install"]).assert().success();
    assert!(w.path("claude/settings.json").is_symlink());
    let s: Value = serde_json::from_str(&fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(s["theme"], "dark");
    assert!(s["hooks"]["Stop"].is_array());
}

#[test]
fn install_leaves_a_users_own_attach_command_alone() {
    let w = World::new();
    fs::create_dir_all(w.path("claude/commands")).unwrap();
    fs::write(w.path("claude/commands/attach.md"), "mine").unwrap();
    w.cmd(&["install"]).assert().success().stderr(predicate::str::contains("left"));
    w.cmd(&["uninstall"]).assert().success();
    assert_eq!(fs::read_to_string(w.path("claude/commands/attach.md")).unwrap(), "mine");
}

#[test]
fn doctor_fails_before_install_and_passes_after() {
    let w = World::new();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), bin.join("clawsess")).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), bin.join("claude")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    w.cmd(&["doctor"])
        .env("PATH", &path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL hooks installed"));
    w.cmd(&["install"]).assert().success();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["doctor"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("ok   binary on PATH").and(predicate::str::contains("ok   state dir")),
    );
}

/// `./install.sh --claude-dir DIR`: `doctor` checks DIR, where `install` wrote, not
/// ~/.claude. (A stand-in `cargo` first on PATH "installs" the binary under test, so the
/// script runs as written without a release build.)
#[test]
fn install_sh_with_a_claude_dir_runs_doctor_on_that_dir() {
    let w = World::new();
    let tools = w.path("tools");
    fs::create_dir_all(&tools).unwrap();
    let cargo = tools.join("cargo");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = install ] || exit 9\nmkdir -p \"$CARGO_INSTALL_ROOT/bin\"\ncp {} \"$CARGO_INSTALL_ROOT/bin/clawsess\"\n",
        env!("CARGO_BIN_EXE_clawsess")
    );
    fs::write(&cargo, script).unwrap();
    fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), tools.join("claude")).unwrap();
    let root = w.path("cargo-root");
    let path = format!("{}:{}/bin:/usr/bin:/bin", tools.display(), root.display());
    let elsewhere = w.path("elsewhere");
    for args in [
        vec!["--claude-dir".to_owned(), elsewhere.display().to_string()],
        vec![format!("--claude-dir={}", elsewhere.display())],
    ] {
        let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"));
        cmd.args(&args)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("HOME", w.path("home"))
            .env("CLAWSESS_HOME", w.state())
            .env("CARGO_INSTALL_ROOT", &root)
            .env("PATH", &path);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(elsewhere.join("settings.json").is_file(), "install wrote into DIR");
        assert!(stdout.contains("ok   hooks installed"), "{args:?}: {stdout}");
        assert!(!stdout.contains("FAIL hooks"), "{args:?}: {stdout}");
    }
    assert!(!w.path("home/.claude/settings.json").exists(), "~/.claude was left alone");
}

#[test]
fn with_the_plugin_enabled_doctor_says_so_and_install_installs_nothing() {
    let w = World::new();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), bin.join("clawsess")).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), bin.join("claude")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    // What `claude plugin install clawsess@clawsess` writes (Claude Code 2.1.328).
    let plugin = r#"{"enabledPlugins":{"clawsess@clawsess":true},"extraKnownMarketplaces":{}}"#;
    fs::write(w.path("claude/settings.json"), plugin).unwrap();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["doctor"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("ok   hooks installed: by the plugin clawsess@clawsess")
            .and(predicate::str::contains("ok   slash commands: /clawsess:attach"))
            .and(predicate::str::contains("clawsess install").not()),
    );
    w.cmd(&["install"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("nothing was installed").and(predicate::str::contains("fire twice")),
    );
    assert_eq!(fs::read_to_string(w.path("claude/settings.json")).unwrap(), plugin);
    assert!(!w.path("claude/commands").exists());
    // Both (installed before the plugin): doctor fails and says which to remove.
    let mut both: Value = serde_json::from_str(plugin).unwrap();
    both["hooks"] =
        serde_json::json!({"Stop": [{"hooks": [{"type": "command", "command": "/x/clawsess hook stop"}]}]});
    fs::write(w.path("claude/settings.json"), both.to_string()).unwrap();
    w.cmd(&["doctor"]).env("PATH", &path).assert().code(1).stdout(
        predicate::str::contains("FAIL hooks installed: twice")
            .and(predicate::str::contains("clawsess uninstall")),
    );
    // A plugin that is installed but disabled does not count.
    fs::write(w.path("claude/settings.json"), r#"{"enabledPlugins":{"clawsess@clawsess":false}}"#).unwrap();
    w.cmd(&["doctor"])
        .env("PATH", &path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("run `clawsess install`"));
}

#[test]
fn install_without_claude_on_path_says_so() {
    let w = World::new();
    w.cmd(&["install"])
        .env("PATH", "/nonexistent")
        .assert()
        .success()
        .stdout(predicate::str::contains("Installed."))
        .stderr(predicate::str::contains("note:").and(predicate::str::contains("once it is installed")));
}

#[test]
fn run_without_hooks_warns_that_terminals_are_not_kept_apart() {
    let w = World::new();
    let warned = |w: &World| {
        let out = w.run(&["--key", "k", "hi"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).contains("warning: clawsess's hooks are not in Claude Code")
    };
    assert!(warned(&w), "no hooks, no terminal ever seen");
    w.cmd(&["install"]).assert().success();
    assert!(!warned(&w), "installed");
    // Not installed, but a terminal ran the hooks (a `claude --plugin-dir` one).
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    assert!(!warned(&w), "hooks seen");
}

#[test]
fn import_records_sessions_the_hook_never_saw_once() {
    let w = World::new();
    let t = w.transcript(ID_C);
    fs::create_dir_all(t.parent().unwrap()).unwrap();
    let line = serde_json::json!({"type":"user","cwd": w.project(),"sessionId":ID_C,"timestamp":"2026-01-02T03:04:05Z","message":{"role":"user","content":"old"}});
    fs::write(&t, format!("{{\"type\":\"summary\"}}\n{line}\n")).unwrap();
    fs::write(t.with_file_name("not-a-session.jsonl"), "{}").unwrap();
    w.cmd(&["import"]).assert().success().stdout(predicate::str::contains("imported 1 sessions"));
    w.cmd(&["import"]).assert().success().stdout(predicate::str::contains("imported 0 sessions"));
    let list = w.json(&["list", "--json"]);
    assert_eq!(list[0]["session_id"], ID_C);
    assert_eq!(list[0]["cwd"], w.project().to_str().unwrap());
    assert_eq!(list[0]["first_seen"], "2026-01-02T03:04:05Z");
}

#[test]
fn prune_drops_records_of_gone_transcripts_and_what_points_at_them() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.cmd(&["name", ID_A, "old-one"]).assert().success();
    w.cmd(&["attach", ID_A, "--key", "k"]).assert().success();
    fs::remove_file(w.transcript(ID_A)).unwrap();
    w.cmd(&["prune", "--dry-run"]).assert().success().stdout(predicate::str::contains("would drop aaaa1111"));
    assert_eq!(w.json(&["list", "--json"]).as_array().unwrap().len(), 2);
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains("1 of 2 sessions dropped"));
    let list = w.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    w.cmd(&["current", "--key", "k"]).assert().code(1);
    w.cmd(&["show", "old-one"]).assert().code(1);
}

#[test]
fn prune_removes_the_claude_slots_and_queue_tickets_of_processes_that_are_gone() {
    let w = World::new();
    let write = |rel: &str, value: Value| {
        let path = w.state().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, value.to_string()).unwrap();
    };
    let gone = u32::MAX;
    let stem = clawsess::ident::file_stem;
    write(
        &format!("claudes/{}.json", stem("s1")),
        serde_json::json!({"v":1,"id":"s1","key":"k","procs":[{"pid":gone}],"since":1}),
    );
    write(
        &format!("queue/claudes/{}.json", stem("t1")),
        serde_json::json!({"v":1,"id":"t1","pid":gone,"surface":"k","at":1}),
    );
    write(
        &format!("queue/{ID_A}/{}.json", stem("t2")),
        serde_json::json!({"v":1,"id":"t2","pid":gone,"surface":"terminal","at":1}),
    );
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains(
        "removed 3 leftovers of processes that are gone (2 queue tickets, 1 claude slot)",
    ));
    assert_eq!(fs::read_dir(w.state().join("claudes")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(w.state().join("queue/claudes")).unwrap().count(), 0);
    // Nothing left: prune says nothing of leftovers.
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains("leftovers").not());
}

// ---------------------------------------------------------------- the rest

#[test]
fn completions_man_and_version_print() {
    let w = World::new();
    for shell in ["bash", "zsh", "fish"] {
        w.cmd(&["completions", shell]).assert().success().stdout(predicate::str::contains("attach"));
    }
    w.cmd(&["man"]).assert().success().stdout(predicate::str::contains(".TH clawsess"));
    w.cmd(&["--version"]).assert().success().stdout(predicate::str::starts_with("clawsess 0."));
}

#[test]
fn man_writes_a_page_for_every_page_a_page_names() {
    let w = World::new();
    let dir = w.path("man1");
    w.cmd(&["man", "--dir", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("man pages in"));
    let pages: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for page in ["clawsess.1", "clawsess-attach.1", "clawsess-run.1", "clawsess-hook-stop.1"] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("keep")), "hidden commands have no page: {pages:?}");
    // Every clawsess-NAME(1) a page names is there.
    for page in &pages {
        let text = fs::read_to_string(dir.join(page)).unwrap().replace("\\-", "-");
        for (at, _) in text.match_indices("(1)") {
            let start =
                text[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map_or(0, |i| i + 1);
            let named = &text[start..at];
            if named.starts_with("clawsess") {
                assert!(pages.contains(&format!("{named}.1")), "{page} names {named}(1), which has no page");
            }
        }
    }
    // One page on stdout; an unknown command is said.
    w.cmd(&["man", "attach"]).assert().success().stdout(predicate::str::contains(".TH clawsess-attach 1"));
    w.cmd(&["man", "hook", "stop"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH clawsess-hook-stop 1"));
    w.cmd(&["man", "keep"]).assert().code(1).stderr(predicate::str::contains("no command \"keep\""));
}

#[test]
fn state_is_private_even_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&w.state()), 0o700);
    assert_eq!(mode(&w.state().join("sessions")), 0o700);
    assert_eq!(mode(&w.state().join("sessions").join(format!("{ID_A}.json"))), 0o600);
}

#[test]
fn doctor_warns_about_named_sessions_that_claude_code_will_soon_delete() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["name", ID_A, "keeper"]).assert().success();
    w.cmd(&["doctor"]).assert().stdout(predicate::str::contains("ok   retention"));
    let path = w.state().join("sessions").join(format!("{ID_A}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    rec["last_seen"] = serde_json::json!(now_ms - 29 * 86_400_000);
    fs::write(&path, rec.to_string()).unwrap();
    w.cmd(&["doctor"])
        .assert()
        .stdout(predicate::str::contains("warn retention").and(predicate::str::contains("keeper")))
        .stdout(predicate::str::contains("cleanupPeriodDays"));
    fs::write(w.path("claude/settings.json"), r#"{"cleanupPeriodDays": 90}"#).unwrap();
    w.cmd(&["doctor"]).assert().stdout(predicate::str::contains("ok   retention"));
}

#[test]
fn a_background_process_left_by_claude_does_not_hold_the_session() {
    let w = World::new();
    w.run(&["--key", "k", "start a server [bg]"]).assert().success();
    w.run(&["--key", "k", "--wait", "0", "next"]).assert().success();
    w.run(&["--key", "k2", "--session", &w.current("k"), "--wait", "0", "other key"]).assert().success();
}

#[test]
fn a_rename_killed_halfway_leaves_no_phantom_owner_of_the_name() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.cmd(&["name", ID_A, "trip"]).assert().success();
    // As if `name` died between writing names/trip and the record that carries it.
    let path = w.state().join("sessions").join(format!("{ID_A}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    rec.as_object_mut().unwrap().remove("name");
    fs::write(&path, rec.to_string()).unwrap();
    w.cmd(&["show", "trip"]).assert().code(1);
    w.cmd(&["name", ID_B, "trip"]).assert().success();
    assert_eq!(w.json(&["show", "trip", "--json"])["session_id"], ID_B);
}

#[test]
fn list_goes_on_past_a_broken_key_file_and_names_it() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["attach", ID_A, "--key", "k"]).assert().success();
    let key_file = fs::read_dir(w.state().join("keys")).unwrap().next().unwrap().unwrap().path();
    fs::write(&key_file, "{broken").unwrap();
    let out = w.cmd(&["list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["session_id"], ID_A);
    assert!(String::from_utf8_lossy(&out.stderr).contains(key_file.to_str().unwrap()));
    assert_eq!(fs::read_to_string(&key_file).unwrap(), "{broken", "never overwritten");
}

#[test]
fn install_writes_through_a_dangling_settings_symlink() {
    let w = World::new();
    let real = w.path("dotfiles/settings.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, w.path("claude/settings.json")).unwrap();
    w.cmd(&["install"]).assert().success();
    assert!(w.path("claude/settings.json").is_symlink());
    let s: Value = serde_json::from_str(&fs::read_to_string(&real).unwrap()).unwrap();
    assert!(s["hooks"]["SessionStart"].is_array());
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
    assert!(j["result"].as_str().unwrap().contains("fake reply to: two"));
    assert!(j["record_error"].as_str().unwrap().contains(turns.to_str().unwrap()), "{j}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("recording the turn failed"));
    assert_eq!(fs::read_to_string(&turns).unwrap(), "{broken");
}

#[test]
fn doctor_reports_temp_files_a_killed_writer_left_and_prune_sweeps_them() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    let stale = w.state().join("sessions").join(format!(".{ID_A}.json.123.abcd.tmp"));
    let fresh = w.state().join("sessions").join(format!(".{ID_A}.json.456.ef01.tmp"));
    for path in [&stale, &fresh] {
        fs::write(path, "{half").unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    w.cmd(&["doctor"]).assert().stdout(predicate::str::contains("warn stale temp files: 1 left"));
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains("1 stale temp files removed"));
    assert!(!stale.exists() && fresh.exists(), "only the stale one goes: a live writer may own the other");
    assert_eq!(w.json(&["list", "--json"]).as_array().unwrap().len(), 1);
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
    let mut cmd = std::process::Command::new(&claude);
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAUDE") || k.starts_with("CLAWSESS") || k.starts_with("XDG_") {
            cmd.env_remove(k);
        }
    }
    if let Some(pid) = claude_pid {
        cmd.env("CLAUDE_PID", pid.to_string());
    }
    cmd.env("CLAWSESS", env!("CARGO_BIN_EXE_clawsess"))
        .env("INPUT", &input)
        .env("HOME", w.path("home"))
        .env("CLAWSESS_HOME", w.state())
        .env("CLAUDE_CONFIG_DIR", w.path("claude"))
        .current_dir(w.project())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
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

fn terminal_pids(w: &World) -> Vec<u64> {
    let rec: Value = serde_json::from_str(
        &fs::read_to_string(w.state().join("sessions").join(format!("{ID_A}.json"))).unwrap(),
    )
    .unwrap();
    rec["processes"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
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

/// A `claude` that only says it is `version`, for doctor and install.
fn claude_saying(w: &World, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.path(&format!("claude-{version}"));
    fs::write(&path, format!("#!/bin/sh\necho '{version} (Claude Code)'\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn doctor_prints_the_claude_code_version_and_whether_it_is_supported() {
    let w = World::new();
    w.cmd(&["install"]).assert().success();
    let pinned = claude_saying(&w, "2.1.328");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &pinned).assert().stdout(
        predicate::str::contains(format!(
            "ok   claude version: 2.1.328 (tested: {})",
            clawsess::claude::versions::tested_range()
        ))
        .and(predicate::str::contains("checkpoint correction").not()),
    );
    let older = claude_saying(&w, "2.1.100");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &older).assert().stdout(
        predicate::str::contains("ok   claude version: 2.1.100").and(predicate::str::contains(
            "warn claude version: with 2.1.100, a prompt clawsess refuses shows no reason",
        )),
    );
    let below = claude_saying(&w, "2.0.28");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &below).assert().stdout(
        predicate::str::contains("warn claude version: 2.0.28 is below the fully supported range")
            .and(predicate::str::contains("/clawsess:attach")),
    );
    let old = claude_saying(&w, "1.0.128");
    w.cmd(&["doctor"])
        .env("CLAWSESS_CLAUDE", &old)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL claude version: Claude Code 1.0.128 is older than 2.0.28"));
}

#[test]
fn doctor_says_the_checkpoint_correction_is_off_for_an_untested_version_until_a_probe_passes() {
    use clawsess::claude::versions::{NEWEST_TESTED, Version};
    use clawsess::store::{ProbeRun, Store};
    let w = World::new();
    w.cmd(&["install"]).assert().success();
    let newer = Version(NEWEST_TESTED.0, NEWEST_TESTED.1, NEWEST_TESTED.2 + 7);
    let claude = claude_saying(&w, &newer.to_string());
    let doctor = || w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &claude).assert();
    doctor().stdout(
        predicate::str::contains(format!("ok   claude version: {newer} (newer than the tested range")).and(
            predicate::str::contains(format!(
                "warn checkpoint correction: off: Claude Code {newer} is untested (tested: {}); run \
                 `clawsess doctor --probe`",
                clawsess::claude::versions::tested_range()
            )),
        ),
    );
    let store = Store::at(w.state());
    let run = |ok| ProbeRun { claude: claude.clone(), at: 1, ok, failed: vec![] };
    store.lock(std::time::Duration::from_secs(5)).unwrap().put_probe_run(newer, run(false)).unwrap();
    doctor().stdout(predicate::str::contains(format!(
        "warn checkpoint correction: off: Claude Code {newer} failed `clawsess doctor --probe`"
    )));
    store.lock(std::time::Duration::from_secs(5)).unwrap().put_probe_run(newer, run(true)).unwrap();
    doctor().stdout(predicate::str::contains(format!(
        "ok   checkpoint correction: on: Claude Code {newer} passed `clawsess doctor --probe` on this machine"
    )));
    assert_eq!(store.probe_record(newer).unwrap().unwrap().runs.len(), 1, "one entry per binary");
}

#[test]
fn doctor_json_needs_probe() {
    let w = World::new();
    w.cmd(&["doctor", "--json"]).assert().code(2).stderr(predicate::str::contains("--probe"));
}

#[test]
fn install_refuses_a_claude_code_too_old_and_writes_nothing() {
    let w = World::new();
    let old = claude_saying(&w, "2.0.27");
    w.cmd(&["install"]).env("CLAWSESS_CLAUDE", &old).assert().code(1).stdout("").stderr(
        predicate::str::contains("2.0.27 is older than 2.0.28").and(predicate::str::contains("upgrade")),
    );
    assert!(!w.path("claude/settings.json").exists() && !w.path("claude/commands").exists());
    let ok = claude_saying(&w, "2.0.28");
    w.cmd(&["install"]).env("CLAWSESS_CLAUDE", &ok).assert().success();
    assert!(w.path("claude/settings.json").is_file());
}

#[test]
fn list_says_when_a_forked_sessions_checkpoint_is_not_corrected() {
    use clawsess::claude::versions::{NEWEST_TESTED, PINNED, Version};
    use clawsess::ident::SessionId;
    use clawsess::store::{SessionRecord, Starter, Store};
    let w = World::new();
    let newer = Version(NEWEST_TESTED.0, NEWEST_TESTED.1, NEWEST_TESTED.2 + 7);
    let store = Store::at(w.state());
    let put = |id: &str, version: Version| {
        let transcript = w.path(&format!("{id}.jsonl"));
        let line = serde_json::json!({"type": "user", "uuid": "u", "message": {"role": "user", "content": "hi"},
                                      "version": version.to_string()});
        fs::write(&transcript, format!("{line}\n")).unwrap();
        let mut rec =
            SessionRecord::new(SessionId::parse(id).unwrap(), w.path(""), transcript, Starter::Person, 1);
        rec.forked = true;
        store.lock(std::time::Duration::from_secs(5)).unwrap().put_session(&rec).unwrap();
    };
    put("0b6f2d4e-1c2a-4b3d-9e8f-123456789abc", newer);
    put("1c7f2d4e-1c2a-4b3d-9e8f-123456789abc", PINNED);
    let footnote = format!(
        "forked(uncorrected): a resume of 0b6f2d4e may follow an older branch; checkpoint correction off: \
         Claude Code {newer} is untested"
    );
    w.cmd(&["list"]).assert().success().stdout(
        predicate::str::is_match(r"(?m)^0b6f2d4e .* forked\(uncorrected\)$")
            .unwrap()
            .and(predicate::str::is_match(r"(?m)^1c7f2d4e .* forked$").unwrap())
            .and(predicate::str::contains(footnote)),
    );
    let rows = w.json(&["list", "--json"]);
    let row = |id: &str| rows.as_array().unwrap().iter().find(|r| r["session_id"] == id).unwrap().clone();
    assert!(
        row("0b6f2d4e-1c2a-4b3d-9e8f-123456789abc")["checkpoint_correction_off"]
            .as_str()
            .unwrap()
            .contains("clawsess doctor --probe")
    );
    assert_eq!(row("1c7f2d4e-1c2a-4b3d-9e8f-123456789abc")["checkpoint_correction_off"], Value::Null);
}

#[test]
fn list_marks_a_session_whose_last_detached_send_failed() {
    use clawsess::ident::SessionId;
    use clawsess::store::{SessionRecord, Starter, Store};
    let w = World::new();
    let store = Store::at(w.state());
    let (failed, fine) = ("2a6f2d4e-1c2a-4b3d-9e8f-123456789abc", "3b7f2d4e-1c2a-4b3d-9e8f-123456789abc");
    for id in [failed, fine] {
        let rec = SessionRecord::new(
            SessionId::parse(id).unwrap(),
            w.path(""),
            w.path("t.jsonl"),
            Starter::Person,
            1,
        );
        store.lock(std::time::Duration::from_secs(5)).unwrap().put_session(&rec).unwrap();
    }
    // What `clawsess mcp --deliver` leaves for a `reply: none` send (src/mcp/send.rs SendNote).
    let note = |ok: bool, error: Option<&str>| serde_json::json!({"v": 1, "from": fine, "pid": 1, "started": 1, "finished": 2, "ok": ok, "error": error});
    fs::create_dir_all(w.state().join("sends")).unwrap();
    let write = |id: &str, v: Value| {
        fs::write(w.state().join("sends").join(format!("{id}.json")), v.to_string()).unwrap()
    };
    write(failed, note(false, Some("the target's turn failed: \u{1b}[31mno credit")));
    write(fine, note(true, None));
    w.cmd(&["list"]).assert().success().stdout(
        predicate::str::is_match(r"(?m)^2a6f2d4e .*[ ,]send-failed$")
            .unwrap()
            .and(predicate::str::is_match(r"(?m)^3b7f2d4e .* gone$").unwrap())
            .and(predicate::str::contains("send-failed: the last message another session sent 2a6f2d4e on its own failed: the target's turn failed:"))
            .and(predicate::str::contains("\u{1b}").not()),
    );
    let rows = w.json(&["list", "--json"]);
    let row = |id: &str| rows.as_array().unwrap().iter().find(|r| r["session_id"] == id).unwrap().clone();
    assert!(row(failed)["detached_send_failed"].as_str().unwrap().contains("no credit"));
    assert_eq!(row(fine)["detached_send_failed"], Value::Null);
}

// ---------------------------------------------------------------- config and settings

impl World {
    /// Writes `HOME/.config/clawsess/config.toml` (the default config file).
    fn config(&self, text: &str) -> PathBuf {
        let dir = self.path("home").join(".config").join("clawsess");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.toml"), text).unwrap();
        dir.join("config.toml")
    }
}

#[test]
fn config_explains_a_value_from_env_and_one_from_the_file() {
    let w = World::new();
    let path = w.config("warm = \"10m\"\nturn_wait = 30\n");
    let doc = w.json(&["config", "--json"]);
    assert_eq!(doc["file"], path.to_str().unwrap());
    assert_eq!(
        doc["values"]["warm"],
        serde_json::json!({"from": "file", "path": path, "line": 1, "value": "10m"})
    );
    assert_eq!(doc["values"]["warm_max"]["from"], "default");
    let out = stdout_of(w.cmd(&["config", "--json"]).env("CLAWSESS_WARM", "off"));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["values"]["warm"],
        serde_json::json!({"from": "env", "var": "CLAWSESS_WARM", "value": "off"})
    );
    assert_eq!(doc["values"]["turn_wait"]["line"], 2);
    let human = stdout_of(w.cmd(&["config"]).env("CLAWSESS_WARM", "off"));
    assert!(human.contains("env CLAWSESS_WARM") && human.contains("config.toml:2"), "{human}");
    // CLAWSESS_CONFIG points elsewhere; CLAWSESS_IDLE_RESET replaces the file's policies.
    let other = w.path("other.toml");
    fs::write(&other, "[[reset]]\nkey = \"tg:*\"\nmode = \"idle\"\nidle = \"72h\"\n").unwrap();
    let out = stdout_of(w.cmd(&["config", "--json"]).env("CLAWSESS_CONFIG", &other));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["values"]["warm"]["from"], "default");
    assert_eq!(doc["reset"][0]["mode"], "idle 72h");
    let out = stdout_of(
        w.cmd(&["config", "--json"]).env("CLAWSESS_CONFIG", &other).env("CLAWSESS_IDLE_RESET", "12h"),
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["reset"],
        serde_json::json!([{"from": "env", "var": "CLAWSESS_IDLE_RESET", "key": "*", "mode": "idle 12h"}])
    );
    // A file CLAWSESS_CONFIG names must be there (a missing default file is just defaults).
    w.cmd(&["config"])
        .env("CLAWSESS_CONFIG", w.path("nope.toml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope.toml: no such file"));
}

#[test]
fn a_broken_config_leaves_every_hook_answering_with_a_warning() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.config("turn_wait = 30\ncolour = \"red\"\n");
    let me = std::process::id().to_string();
    for event in ["session-start", "prompt-submit", "stop", "session-end"] {
        let out = w.hook(event, ID_A).env("CLAUDE_PID", &me).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{event}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if event == "prompt-submit" {
            // The only hook that reads the file (turn_wait, behind): it says what is wrong.
            assert!(stderr.contains("config.toml:2") && stderr.contains("defaults"), "{stderr}");
        }
    }
    // A command that needs the file refuses, naming the line.
    w.cmd(&["config"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("config.toml:2: unknown field `colour`"));
    w.run(&["--key", "k", "hi"]).assert().failure().stderr(predicate::str::contains("config.toml:2"));
    w.cmd(&["doctor"]).assert().code(1).stdout(
        predicate::str::contains("FAIL config file: ")
            .and(predicate::str::contains("config.toml:2: unknown field `colour`")),
    );
    // One that does not need it works.
    w.cmd(&["list"]).assert().success();
}

#[test]
fn set_get_unset_check_values_and_keep_them_per_key_or_session() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["set", "--key", "k", "model=opus", "effort=max", "warm=10m"]).assert().success();
    w.cmd(&["set", "--key", "k", "effort=extreme"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("low, medium"));
    w.cmd(&["set", "--key", "k", "model=--dangerously-skip-permissions"]).assert().failure();
    w.cmd(&["set", "--key", "k", "colour=red"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a setting"));
    w.cmd(&["set", ID_A, "cwd=/"]).assert().failure().stderr(predicate::str::contains("cwd"));
    w.cmd(&["set", "--key", "k", ID_A, "model=x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not both"));
    let got = w.json(&["get", "--key", "k", "--json"]);
    assert_eq!(got["settings"], serde_json::json!({"model": "opus", "effort": "max", "warm": "10m"}));
    w.cmd(&["set", &ID_A[..8], "permission_mode=plan"]).assert().success();
    assert_eq!(w.json(&["get", ID_A, "--json"])["settings"], serde_json::json!({"permission_mode": "plan"}));
    w.cmd(&["unset", "--key", "k", "model", "warm"]).assert().success().stdout("effort = max\n");
    w.cmd(&["unset", ID_A]).assert().success();
    assert_eq!(w.json(&["get", ID_A, "--json"])["settings"], serde_json::json!({}));
    // Runs pass them to claude; -A with the same flag wins.
    w.run(&["--key", "k", "-A", "--effort", "-A", "low", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(args.contains("\"low\"") && !args.contains("\"max\""), "{args}");
    w.run(&["--key", "k", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(args.contains("\"--effort\",\"max\""), "{args}");
    w.cmd(&["set", "--key", "k", "permission_mode=acceptEdits", "model=sonnet"]).assert().success();
    w.run(&["--key", "k", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(
        args.contains("\"--model\",\"sonnet\",\"--effort\",\"max\",\"--permission-mode\",\"acceptEdits\""),
        "{args}"
    );
    // A forgotten key's settings go with it.
    w.cmd(&["forget", "--key", "k"]).assert().success().stdout(predicate::str::contains("its settings"));
    assert_eq!(w.json(&["get", "--key", "k", "--json"])["settings"], serde_json::json!({}));
}

/// A daily policy resets at the local time of `TZ`: the same records and config reset the
/// session under UTC (04:00-like time passed since its last activity) and not in Kolkata
/// (UTC+05:30: that wall-clock time is hours before the last activity there).
#[test]
fn a_daily_policy_resets_at_the_local_time_of_tz() {
    let w = World::new();
    let now = jiff::Timestamp::now();
    let at = now.checked_sub(jiff::SignedDuration::from_mins(30)).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
    w.config(&format!(
        "[[reset]]\nkey = \"daily:*\"\nmode = \"daily\"\ndaily_at = \"{:02}:{:02}\"\n",
        at.hour(),
        at.minute()
    ));
    w.run(&["--key", "daily:1", "one"]).assert().success();
    let old = w.current("daily:1");
    // Last active an hour ago: before that time of day in UTC, after it in Kolkata.
    let path = w.state().join("sessions").join(format!("{old}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    rec["last_seen"] = serde_json::json!(now.as_millisecond() - 3_600_000);
    fs::write(&path, rec.to_string()).unwrap();
    let out = w.run(&["--key", "daily:1", "--json", "two"]).env("TZ", "Asia/Kolkata").output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w.current("daily:1"), old, "not yet 30 min ago's UTC time of day in Kolkata: {doc}");
    assert!(doc.get("reset").is_none());
    fs::write(&path, rec.to_string()).unwrap();
    let out = w.run(&["--key", "daily:1", "--json", "three"]).env("TZ", "UTC").output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(w.current("daily:1"), old);
    let why = format!("daily {:02}:{:02}", at.hour(), at.minute());
    assert_eq!(doc["reset"], serde_json::json!({"from": old, "why": why}));
}

// ---------------------------------------------------------------- the test command

/// `./test.sh` with a stand-in `cargo`, `node` and `npm` and the shell tools it uses as the
/// whole PATH (so no tmux, no python3); `cargo` prints `first` for the first phase, `oldest`
/// for the oldest-version one, and exits with `first_rc` / 0. Returns the output and the cargo
/// calls (one line of arguments each).
fn test_sh(first: &str, first_rc: i32, oldest: &str) -> (std::process::Output, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::create_dir_all(dir.path().join("src/claude")).unwrap();
    fs::copy(root.join("test.sh"), dir.path().join("test.sh")).unwrap();
    fs::copy(root.join("src/claude/versions.rs"), dir.path().join("src/claude/versions.rs")).unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(dir.path().join("first.out"), first).unwrap();
    fs::write(dir.path().join("oldest.out"), oldest).unwrap();
    let cargo = format!(
        "#!/bin/sh\necho \"$*\" >> '{d}/calls'\nif [ -n \"$CLAWSESS_TEST_CLAUDE_VERSION\" ]; then cat '{d}/oldest.out'; exit 0; fi\ncat '{d}/first.out'\nexit {first_rc}\n",
        d = dir.path().display()
    );
    for (name, text) in [("cargo", cargo.as_str()), ("node", "#!/bin/sh\n"), ("npm", "#!/bin/sh\n")] {
        fs::write(bin.join(name), text).unwrap();
        fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    for tool in ["bash", "sh", "sed", "awk", "mktemp", "tee", "env", "cat", "rm", "dirname"] {
        let path = which::which(tool).unwrap_or_else(|_| panic!("{tool} on PATH"));
        std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
    }
    let out = std::process::Command::new("bash")
        .arg(dir.path().join("test.sh"))
        .arg("--test")
        .arg("cli")
        .env("PATH", &bin)
        .env_remove("CLAWSESS_TEST_PYTHON")
        .output()
        .unwrap();
    let calls =
        fs::read_to_string(dir.path().join("calls")).unwrap_or_default().lines().map(str::to_owned).collect();
    (out, calls)
}

#[test]
fn the_test_command_runs_every_phase_after_a_failure_and_ends_with_the_sum() {
    let first = "     Running unittests src/lib.rs (target/debug/deps/clawsess-1)\n\
                 test result: ok. 10 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                 \x20    Running tests/cli.rs (target/debug/deps/cli-2)\n\
                 test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                 \x20    Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                 test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9s\n\
                 \x20  Doc-tests clawsess\n\
                 test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s\n";
    let oldest = "     Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                  test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9s\n";
    let (out, calls) = test_sh(first, 101, oldest);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("30 passed, 1 failed, 3 skipped"), "{stdout}");
    assert_eq!(calls.len(), 2, "the oldest-version phase ran after the failure: {calls:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tmux is not on PATH: the interactive-terminal tests will fail"), "{stderr}");
    assert!(calls[0].contains("--no-fail-fast") && calls[0].ends_with("--test cli"), "{calls:?}");
    assert!(calls[1].contains("--no-fail-fast") && calls[1].contains("--test e2e_bot"), "{calls:?}");
}

#[test]
fn the_test_command_counts_a_crashed_or_unbuilt_test_binary_as_a_failure() {
    // A binary that started and printed no result (killed, aborted).
    let crashed = "     Running tests/cli.rs (target/debug/deps/cli-2)\n\
                   test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                   \x20    Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                   running 7 tests\n";
    let (out, _) = test_sh(crashed, 101, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout.lines().last(), Some("5 passed, 1 failed, 0 skipped"), "{stdout}");
    // A build error: no binary ran at all.
    let (out, _) = test_sh("error[E0425]: cannot find value `x` in this scope\n", 101, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("0 passed, 1 failed, 0 skipped"));
    // All green: exit 0.
    let ok = "     Running tests/cli.rs (target/debug/deps/cli-2)\n\
              test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n";
    let (out, _) = test_sh(ok, 0, ok);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("10 passed, 0 failed, 0 skipped"));
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
