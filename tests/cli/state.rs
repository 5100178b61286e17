//! The state dir: private, and a write killed halfway or a broken file leaves nothing wrong.

use super::*;

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
