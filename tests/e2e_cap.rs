//! The claude cap (`CLAWSESS_MAX_CLAUDES`, `turn::cap`) with the real binary and the stand-in
//! `claude` of `tests/support/testenv.rs` held at a barrier: nothing here depends on timing.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::testenv::*;

/// Starts `run --stream` for `key`; its lines come back on the channel as (key, line).
fn stream_run(env: &Env, claude: &str, key: &str, tx: &mpsc::Sender<(String, Value)>) -> Child {
    stream_run_with(env, claude, key, tx, &[])
}

/// [`stream_run`] with `vars` set for this run alone.
fn stream_run_with(
    env: &Env,
    claude: &str,
    key: &str,
    tx: &mpsc::Sender<(String, Value)>,
    vars: &[(&str, &str)],
) -> Child {
    let prompt = format!("hello from {key}");
    let mut cmd =
        env.cmd(&["run", "--claude", claude, "--key", key, "--stream", "--wait", "120", "--", &prompt]);
    cmd.env("STANDIN_HOLD", env.hold_file());
    cmd.envs(vars.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, key) = (tx.clone(), key.to_owned());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let _ = tx.send((key.clone(), value));
        }
    });
    child
}

#[test]
fn with_a_cap_of_two_four_keys_at_once_run_two_claudes_at_a_time_and_the_others_queue() {
    let mut env = Env::new();
    env.vars.push(("CLAWSESS_MAX_CLAUDES".into(), "2".into()));
    let count_dir = env.root().join("count");
    let claude = env.counting_claude(&env.stand_in(), &count_dir);
    let claude = claude.to_str().unwrap();
    let (tx, rx) = mpsc::channel();
    let keys: Vec<String> = (1..=4).map(|n| format!("chat:{n}")).collect();
    let runs: Vec<Child> = keys.iter().map(|k| stream_run(&env, claude, k, &tx)).collect();
    drop(tx);

    // Two claudes start and wait at the barrier; the other two turns say they are queued.
    let mut queued = BTreeSet::new();
    let mut positions = BTreeSet::new();
    while queued.len() < 2 {
        let (key, line) = rx.recv_timeout(Duration::from_secs(60)).expect("two turns queue at the cap");
        if line["type"] == "queued" {
            assert_eq!(line["behind"], "cap", "{line}");
            assert_eq!(line["cap"], 2, "{line}");
            // Who holds the slots: two of the other keys, a slot each.
            let held: Vec<&str> =
                line["held_by"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
            assert_eq!(held.len(), 2, "{line}");
            assert!(held.iter().all(|k| k.starts_with("chat:") && *k != key), "{line}");
            positions.insert(line["position"].as_u64().unwrap());
            queued.insert(key);
        }
        assert_ne!(line["type"], "result", "no turn ends while the barrier holds: {line}");
    }
    assert!(positions.contains(&1), "first in line: {positions:?}");
    wait_until(GENEROUS, "two claudes at the barrier", || started_count(&env) == 2);
    // Queued turns started no claude: the two at the barrier are all there are.
    let slots = std::fs::read_dir(env.state().join("claudes")).unwrap().count();
    assert_eq!(slots, 2, "two slots taken");
    assert_eq!(started_count(&env), 2);

    env.release();
    let mut results = Vec::new();
    for (key, line) in rx.iter() {
        if line["type"] == "result" {
            results.push((key, line));
        }
    }
    for run in runs {
        let out = finish(run);
        assert!(out.ok(), "{out:?}");
    }
    // Every turn answered, exactly once, by its own claude.
    assert_eq!(results.len(), 4, "{results:?}");
    let answered: BTreeSet<String> = results.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(answered.len(), 4, "{results:?}");
    for (key, line) in &results {
        assert_eq!(line["result"], format!("echo: hello from {key}"), "{line}");
        assert_eq!(line["is_error"], false, "{line}");
    }
    let prompts: Vec<String> = env.stand_in_calls().into_iter().map(|(_, stdin)| stdin).collect();
    assert_eq!(prompts.len(), 4, "one claude per turn: {prompts:?}");
    assert_eq!(prompts.iter().collect::<BTreeSet<_>>().len(), 4, "{prompts:?}");
    let (peak, started) = peak_claudes(&count_dir);
    assert_eq!(started, 4);
    assert!(peak <= 2, "{peak} claudes were alive at once");
    // Every slot and ticket is gone with its turn.
    assert_eq!(std::fs::read_dir(env.state().join("claudes")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(env.state().join("queue/claudes")).unwrap().count(), 0);
}

#[test]
fn a_run_that_waits_past_its_wait_for_the_cap_is_busy_and_says_why() {
    let mut env = Env::new();
    env.vars.push(("CLAWSESS_MAX_CLAUDES".into(), "1".into()));
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let mut cmd = env.cmd(&["run", "--claude", claude, "--key", "chat:1", "--", "held"]);
    cmd.env("STANDIN_HOLD", env.hold_file());
    let held = cmd.spawn().unwrap();
    wait_until(GENEROUS, "the first claude", || started_count(&env) == 1);

    let out = env.run(&["run", "--claude", claude, "--key", "chat:2", "--wait", "0", "--", "late"]);
    assert_eq!(out.code, Some(75), "{out:?}");
    assert!(out.stderr.contains("CLAWSESS_MAX_CLAUDES=1"), "{out:?}");
    assert!(out.stderr.contains("1 claude processes are running (chat:1)"), "who holds it: {out:?}");
    let json =
        env.run(&["run", "--claude", claude, "--key", "chat:2", "--wait", "0", "--json", "--", "late"]);
    assert_eq!(json.code, Some(75), "{json:?}");
    let object: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(object["busy"], true, "{object}");
    assert_eq!(started_count(&env), 1, "the busy runs started no claude");

    env.release();
    assert!(finish(held).ok());
    // A claude slot of a run that was killed is freed with its processes.
    let mut cmd = env.cmd(&["run", "--claude", claude, "--key", "chat:3", "--", "doomed"]);
    cmd.env("STANDIN_HOLD", env.root().join("never"));
    let mut doomed = cmd.spawn().unwrap();
    wait_until(GENEROUS, "the doomed claude", || started_count(&env) == 2);
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    // Its claude gets SIGTERM from the kernel; the next run takes the slot once it is gone.
    let next = env.run(&["run", "--claude", claude, "--key", "chat:2", "--wait", "60", "--", "after"]);
    assert!(next.ok(), "{next:?}");
    assert_eq!(next.stdout, "echo: after\n");
}

/// Whether process `pid` holds an inotify instance (a bell).
fn has_inotify(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.to_string_lossy() == "anon_inode:inotify"))
}

/// Where no bell can be had (inotify off, forced here with `CLAWSESS_BELL_POLL`), a waiter
/// still starts once the slot ahead of it is free: it looks again at its timeouts.
#[test]
fn without_inotify_a_waiter_for_the_cap_still_starts_when_the_slot_is_free() {
    let mut env = Env::new();
    env.vars.push(("CLAWSESS_MAX_CLAUDES".into(), "1".into()));
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let (tx, rx) = mpsc::channel();
    let first = stream_run(&env, claude, "chat:1", &tx);
    wait_until(GENEROUS, "the first claude at the barrier", || started_count(&env) == 1);
    // One waiter polls, one listens: each says `queued` once its bell (if any) is made.
    let polling = stream_run_with(&env, claude, "chat:2", &tx, &[("CLAWSESS_BELL_POLL", "1")]);
    let (mut polling_queued, mut listening) = (false, None);
    while !polling_queued {
        let (key, line) = rx.recv_timeout(Duration::from_secs(60)).expect("the second run queues");
        assert_ne!(line["type"], "result", "no turn ends while the barrier holds: {line}");
        polling_queued |= key == "chat:2" && line["type"] == "queued";
    }
    assert!(!has_inotify(polling.id()), "the polling waiter has no bell");
    let third = stream_run(&env, claude, "chat:3", &tx);
    while listening.is_none() {
        let (key, line) = rx.recv_timeout(Duration::from_secs(60)).expect("the third run queues");
        if key == "chat:3" && line["type"] == "queued" {
            listening = Some(line["position"].as_u64().unwrap());
        }
    }
    assert_eq!(listening, Some(2), "behind the polling waiter");
    assert!(has_inotify(third.id()), "a waiter without the variable listens");
    drop(tx);
    env.release();
    let results: Vec<(String, Value)> = rx.iter().filter(|(_, line)| line["type"] == "result").collect();
    for run in [first, polling, third] {
        let out = finish(run);
        assert!(out.ok(), "{out:?}");
    }
    let mut answered: Vec<String> =
        results.iter().map(|(_, l)| l["result"].as_str().unwrap().to_owned()).collect();
    answered.sort();
    assert_eq!(answered, ["echo: hello from chat:1", "echo: hello from chat:2", "echo: hello from chat:3"]);
}
