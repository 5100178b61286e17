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

#[test]
fn prune_every_off_turns_it_off_and_a_shorter_interval_takes_effect() {
    let w = World::new();
    w.vanished_session(ID_A);
    fs::write(w.stamp(), "").unwrap();
    backdate(&w.stamp(), 60);
    let due = w.due_at();
    // Off by the environment: the run starts nothing although the stamp is due.
    w.run(&["--key", "k", "hello"]).env("CLAWSESS_PRUNE_EVERY", "off").assert().success();
    assert_eq!(w.due_at(), due, "no prune started");
    assert!(w.record(ID_A).exists());
    // Off in the config file: `prune --auto` (a hook's, which does not read the config)
    // prunes nothing and looks again in a day.
    let config = w.path("home/.config/clawsess/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, "prune_every = \"off\"\n").unwrap();
    w.cmd(&["prune", "--auto"]).assert().success();
    assert!(w.record(ID_A).exists());
    assert!(ahead(w.due_at()) > Duration::from_secs(23 * 3600));
    let shown = w.json(&["config", "--json"]);
    assert_eq!(shown["values"]["prune_every"]["value"], "off", "{shown}");
    // Back on, every hour: the next run moves the day-away stamp to an hour away.
    fs::write(&config, "prune_every = \"1h\"\n").unwrap();
    w.run(&["--key", "k", "again"]).assert().success();
    let left = ahead(w.due_at());
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3500), "{left:?}");
    assert!(w.record(ID_A).exists(), "not due yet");
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
