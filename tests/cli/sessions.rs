//! list, show, name and forget: the recorded sessions.

use super::*;

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

#[test]
fn list_through_the_sessions_index_after_mixed_writes_is_list_from_the_records() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.person_session(ID_C, "p", "r");
    assert_eq!(w.json(&["list", "--json"]).as_array().unwrap().len(), 3);
    let index = w.state().join("sessions.index");
    assert!(index.exists(), "list wrote the index");
    // Writes after it: a rename, a key's run, a resumed session, a pruned one, a new one.
    w.cmd(&["name", ID_A, "trip"]).assert().success();
    w.run(&["--key", "k", "hello"]).assert().success();
    w.person_session(ID_B, "p2", "r2");
    fs::remove_file(w.transcript(ID_C)).unwrap();
    w.cmd(&["prune"]).assert().success();
    let through_index = w.cmd(&["list", "--json"]).output().unwrap();
    assert!(through_index.status.success());
    let listed: Value = serde_json::from_slice(&through_index.stdout).unwrap();
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{listed}");
    assert!(ids.contains(&ID_A) && ids.contains(&ID_B) && !ids.contains(&ID_C), "{listed}");
    fs::remove_file(&index).unwrap();
    let from_records = w.cmd(&["list", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&through_index.stdout), String::from_utf8_lossy(&from_records.stdout));
    assert!(index.exists(), "rebuilt");
}
