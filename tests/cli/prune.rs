//! `prune` by itself: `run` starts `prune --auto` when the stamp `prune-due` says so (its
//! mtime is when; the tests move it instead of waiting), one at a time, and not when off.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::testenv::{backdate, wait_until};
use super::*;

impl World {
    fn stamp(&self) -> PathBuf {
        self.state().join("prune-due")
    }

    fn due_at(&self) -> SystemTime {
        fs::metadata(self.stamp()).unwrap().modified().unwrap()
    }

    fn record(&self, id: &str) -> PathBuf {
        self.state().join("sessions").join(format!("{id}.json"))
    }

    /// A recorded session whose transcript Claude Code deleted: what `prune` drops.
    fn vanished_session(&self, id: &str) {
        self.person_session(id, "p", "r");
        fs::remove_file(self.transcript(id)).unwrap();
        assert!(self.record(id).exists());
    }
}

fn ahead(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

#[test]
fn run_prunes_by_itself_once_due_and_not_before() {
    let w = World::new();
    w.vanished_session(ID_A);
    // The first run of a state dir: the stamp says a day from now.
    w.run(&["--key", "k", "hello"]).assert().success();
    assert!(ahead(w.due_at()) > Duration::from_secs(23 * 3600), "due in a day");
    assert!(w.record(ID_A).exists(), "not pruned at the first run");
    // Not due (an hour ahead): a run leaves everything as it is.
    backdate(&w.stamp(), -3600);
    let not_due = w.due_at();
    w.run(&["--key", "k", "again"]).assert().success();
    assert_eq!(w.due_at(), not_due, "no prune started (starting one moves the stamp)");
    assert!(w.record(ID_A).exists());
    // Due: the run starts a prune in the background; it drops the record and moves the
    // stamp a day ahead once done.
    backdate(&w.stamp(), 60);
    w.run(&["--key", "k", "third"]).assert().success().stdout(predicate::str::contains("third"));
    wait_until(Duration::from_secs(30), "the automatic prune", || {
        !w.record(ID_A).exists() && ahead(w.due_at()) > Duration::from_secs(23 * 3600)
    });
    let log = fs::read_to_string(w.state().join("prune.log")).unwrap();
    assert!(log.contains("dropped aaaa1111: transcript gone"), "{log}");
    assert!(log.contains("1 of 2 sessions dropped"), "{log}");
    assert_eq!(w.current("k").len(), 36, "the key's own session is kept: its transcript is there");
}

#[test]
fn one_automatic_prune_at_a_time() {
    let w = World::new();
    w.vanished_session(ID_A);
    fs::write(w.stamp(), "").unwrap();
    backdate(&w.stamp(), 60);
    let due = w.due_at();
    // Another automatic prune holds the stamp's lock: this one does nothing.
    let held = fs::File::open(w.stamp()).unwrap();
    held.try_lock().unwrap();
    w.cmd(&["prune", "--auto"]).assert().success().stdout("").stderr("");
    assert!(w.record(ID_A).exists());
    assert_eq!(w.due_at(), due);
    assert!(!w.state().join("prune.log").exists());
    drop(held);
    // Let go: it prunes, quietly (what it did is in prune.log).
    w.cmd(&["prune", "--auto"]).assert().success().stdout("").stderr("");
    assert!(!w.record(ID_A).exists());
    assert!(ahead(w.due_at()) > Duration::from_secs(23 * 3600));
    // Done and moved on: a second one that started meanwhile finds it not due.
    w.vanished_session(ID_B);
    w.cmd(&["prune", "--auto"]).assert().success();
    assert!(w.record(ID_B).exists(), "not due: the last prune just ran");
}

/// The stamp says off: far ahead (hooks, which go by the stamp alone, start nothing).
fn says_off(at: SystemTime) -> bool {
    ahead(at) > Duration::from_secs(10 * 365 * 86400)
}

#[test]
fn prune_every_off_turns_it_off_and_a_shorter_interval_takes_effect() {
    let w = World::new();
    w.vanished_session(ID_A);
    w.person_session(ID_B, "p", "r");
    fs::write(w.stamp(), "").unwrap();
    backdate(&w.stamp(), 60);
    // Off by the environment: the run starts nothing although the stamp is due, and says off
    // in the stamp.
    w.run(&["--key", "k", "hello"]).env("CLAWSESS_PRUNE_EVERY", "off").assert().success();
    assert!(says_off(w.due_at()), "{:?}", ahead(w.due_at()));
    let off = w.due_at();
    // So a session end (a hook, which does not read the config) starts none either: one
    // would move the stamp to its lease, and drop the record.
    w.hook("session-end", ID_B).assert().success().stdout("").stderr("");
    assert_eq!(w.due_at(), off);
    // Off in the config file: `prune --auto` (one started before it was turned off) prunes
    // nothing and says off in the stamp.
    let config = w.path("home/.config/clawsess/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, "prune_every = \"off\"\n").unwrap();
    backdate(&w.stamp(), 60);
    w.cmd(&["prune", "--auto"]).assert().success();
    assert!(w.record(ID_A).exists());
    assert!(says_off(w.due_at()));
    w.run(&["--key", "k", "off"]).assert().success();
    w.hook("session-end", ID_B).assert().success();
    assert!(says_off(w.due_at()));
    assert!(w.record(ID_A).exists());
    let shown = w.json(&["config", "--json"]);
    assert_eq!(shown["values"]["prune_every"]["value"], "off", "{shown}");
    // Back on, every hour: the next run moves the stamp to an hour away.
    fs::write(&config, "prune_every = \"1h\"\n").unwrap();
    w.run(&["--key", "k", "again"]).assert().success();
    let left = ahead(w.due_at());
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3500), "{left:?}");
    assert!(w.record(ID_A).exists(), "not due yet");
}

impl World {
    /// `doctor`'s line on automatic pruning, and `doctor --json`'s `auto_prune`.
    fn doctor_prune(&self) -> (String, serde_json::Value) {
        let out = self.cmd(&["doctor"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let line =
            text.lines().find(|l| l.contains(" automatic prune: ")).unwrap_or_else(|| panic!("{text}"));
        let out = self.cmd(&["doctor", "--json"]).output().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (line.to_owned(), doc["auto_prune"].clone())
    }
}

#[test]
fn doctor_shows_the_last_automatic_prune_and_when_the_next_is_due() {
    let w = World::new();
    w.vanished_session(ID_A);
    let (line, json) = w.doctor_prune();
    assert_eq!(line, "ok   automatic prune: never ran; next due a day after the first run or session end");
    assert_eq!(json, serde_json::json!({"last_ran": null, "did": [], "failed": null, "next_due": null}));
    fs::write(w.stamp(), "").unwrap();
    backdate(&w.stamp(), 60);
    w.cmd(&["prune", "--auto"]).assert().success();
    assert!(!w.record(ID_A).exists());
    let (line, json) = w.doctor_prune();
    let last = json["last_ran"].as_str().unwrap().to_owned();
    let next = json["next_due"].as_str().unwrap().to_owned();
    assert!(last.ends_with('Z') && next.ends_with('Z') && next > last, "{json}");
    assert_eq!(json["failed"], serde_json::Value::Null);
    let did: Vec<&str> = json["did"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(did.contains(&"dropped aaaa1111: transcript gone"), "{json}");
    assert!(did.iter().any(|l| l.starts_with("1 of 1 sessions dropped")), "{json}");
    // The human line gives the summary, not a line per dropped session.
    assert!(
        line.starts_with(&format!("ok   automatic prune: last ran {last}: 1 of 1 sessions dropped;")),
        "{line}"
    );
    assert!(line.ends_with(&format!("; next due {next}")) && !line.contains("aaaa1111"), "{line}");
    // Off: said so, in both.
    let (line, json) = {
        let config = w.path("home/.config/clawsess/config.toml");
        fs::create_dir_all(config.parent().unwrap()).unwrap();
        fs::write(&config, "prune_every = \"off\"\n").unwrap();
        w.doctor_prune()
    };
    assert!(line.ends_with("; off (prune_every)"), "{line}");
    assert_eq!(json["next_due"], "off");
    assert_eq!(json["last_ran"], last.as_str());
}

#[test]
fn the_session_end_hook_prunes_by_itself_once_due() {
    let w = World::new();
    w.vanished_session(ID_A);
    w.person_session(ID_B, "p", "r");
    // The first session end of a state dir: the stamp says a day from now (a hook goes by the
    // default, not the config file).
    w.hook("session-end", ID_B).assert().success().stdout("").stderr("");
    assert!(ahead(w.due_at()) > Duration::from_secs(23 * 3600));
    assert!(w.record(ID_A).exists());
    backdate(&w.stamp(), 60);
    w.hook("session-end", ID_B).assert().success().stdout("").stderr("");
    wait_until(Duration::from_secs(30), "the automatic prune", || {
        !w.record(ID_A).exists() && ahead(w.due_at()) > Duration::from_secs(23 * 3600)
    });
    assert!(w.record(ID_B).exists(), "its transcript is there");
}

/// A warm claude that writes much on stderr: its keeper cuts the log (`warm/<id>.log`) to its
/// last 256 KiB after the turn, while claude lives on.
#[test]
fn a_kept_claudes_log_is_cut_while_it_lives() {
    let w = World::new();
    let claude = w.path("tools/claude");
    fs::create_dir_all(claude.parent().unwrap()).unwrap();
    let script = format!(
        "#!/bin/sh\nyes 'a line claude wrote on stderr' | head -c 2000000 >&2\n{} \"$@\"\ncat > /dev/null\n",
        testenv::STAND_IN
    );
    fs::write(&claude, script).unwrap();
    fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.cmd(&["run", "--claude", claude.to_str().unwrap(), "--key", "w", "--warm", "10m", "hello"])
        .assert()
        .success()
        .stdout(predicate::str::contains("hello"));
    let id = w.current("w");
    let log = w.state().join("warm").join(format!("{id}.log"));
    wait_until(Duration::from_secs(30), "the keeper to cut its log", || {
        fs::metadata(&log).is_ok_and(|m| m.len() <= 256 * 1024 + 200)
    });
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("[clawsess: cut "), "{}", &text[..100]);
    assert!(text.lines().nth(1).is_some_and(|l| l == "a line claude wrote on stderr"));
    assert!(w.state().join("warm").join(format!("{id}.json")).exists(), "the keeper lives on");
    w.cmd(&["cool"]).assert().success();
}
