//! attach, detach and current: which session a key answers on.

use super::*;

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

#[test]
fn hosts_list_names_the_global_attachment_to_a_session_on_a_host() {
    let w = World::new();
    w.cmd(&["hosts", "add", "box", "me@box.invalid"]).assert().success();
    w.cmd(&["hosts", "add", "other", "other.invalid"]).assert().success();
    let listed = w.json(&["hosts", "list", "--json"]);
    assert_eq!(listed[0]["global_attachment"], Value::Null, "{listed:#}");
    // What `attach box:ID` and `attach box:ID --key K` leave (they ask the host first, over ssh).
    let path = w.state().join("hosts.json");
    let mut hosts: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    hosts["global"] = serde_json::json!({"host": "box", "session": ID_C, "at": 1_796_400_000_000u64});
    hosts["keys"] = serde_json::json!({"telegram:1": "box"});
    fs::write(&path, hosts.to_string()).unwrap();

    let listed = w.json(&["hosts", "list", "--json"]);
    assert_eq!(listed[0]["name"], "box");
    assert_eq!(listed[0]["dest"], "me@box.invalid");
    assert_eq!(listed[0]["keys"], serde_json::json!(["telegram:1"]));
    assert_eq!(
        listed[0]["global_attachment"],
        serde_json::json!({"session_id": ID_C, "at": "2026-12-04T16:00:00Z"}),
        "{listed:#}"
    );
    assert_eq!(listed[1]["name"], "other");
    assert_eq!(listed[1]["keys"], serde_json::json!([]));
    assert_eq!(listed[1]["global_attachment"], Value::Null);
    let out = w.cmd(&["hosts", "list"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("keys: telegram:1  global attachment: box:{ID_C}")), "{text}");
    assert!(!text.lines().find(|l| l.starts_with("other")).unwrap().contains("global"), "{text}");
}
