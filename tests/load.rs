//! Load: many chats sending at once through the claude cap (`CLAWSESS_MAX_CLAUDES`). Not
//! timed unit tests: every test here is `#[ignore]`d and prints what it measured. Run them,
//! one at a time, with:
//!
//! ```text
//! cargo test --release --test load -- --ignored --nocapture --test-threads 1
//! ```
//!
//! (docs/BENCHMARKS.md has the numbers.) Each checks that every turn was answered exactly
//! once by a claude of its own, that no more claudes than the cap were alive at any instant
//! (a counting wrapper around claude, `write_counting_claude`), and that every slot and
//! ticket is gone afterwards; then it prints the queue wait's p50 and p99: from the run's
//! start to its `session` event, which `run --stream` prints once its claude may start.
//! `LOAD_CAP` sets the cap (default: 8 with the stand-in claude, 4 with the real CLI).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::real_claude::ClaudeHome;
use support::testenv::*;

/// One turn as its caller saw it.
struct Turn {
    key: String,
    prompt: String,
    /// From the run's start to its `session` event (its claude may start).
    wait: Duration,
    /// It heard a `queued` event for the cap.
    queued: bool,
    result: Value,
    code: Option<i32>,
    stderr: String,
}

/// Starts every `(key, prompt, command)` at once (`run --stream`) and follows each to its end.
fn drive(runs: Vec<(String, String, Command)>) -> Vec<Turn> {
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for (key, prompt, mut cmd) in runs {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        children.push((key.clone(), child));
        std::thread::spawn(move || {
            let mut wait = None;
            let mut queued = false;
            let mut result = Value::Null;
            for line in BufReader::new(stdout).lines() {
                let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
                match line["type"].as_str() {
                    Some("queued") if line["behind"] == "cap" => queued = true,
                    Some("session") => wait = Some(started.elapsed()),
                    Some("result") => result = line,
                    _ => {}
                }
            }
            let _ = tx.send((key, prompt, wait.unwrap_or_else(|| started.elapsed()), queued, result));
        });
    }
    drop(tx);
    let mut outs = Vec::new();
    for (key, child) in children {
        outs.push((key, finish(child)));
    }
    let mut turns: Vec<Turn> = rx
        .iter()
        .map(|(key, prompt, wait, queued, result)| Turn {
            key,
            prompt,
            wait,
            queued,
            result,
            code: None,
            stderr: String::new(),
        })
        .collect();
    // Each run's exit and stderr.
    for (key, out) in outs {
        if let Some(turn) = turns.iter_mut().find(|t| t.key == key) {
            turn.code = out.code;
            turn.stderr = out.stderr;
        }
    }
    turns
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at percentile `p` (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(name: &str, turns: &[Turn], cap: usize, peak: usize, wall: Duration) {
    let mut waits: Vec<f64> = turns.iter().map(|t| ms(t.wait)).collect();
    waits.sort_by(f64::total_cmp);
    let queued = turns.iter().filter(|t| t.queued).count();
    println!(
        "{name}: {} turns, cap {cap}, peak {peak} claudes alive, {queued} queued at the cap; \
         queue wait p50 {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0}); all answered in {:.1} s",
        turns.len(),
        percentile(&waits, 50.0),
        percentile(&waits, 99.0),
        waits[0],
        waits[waits.len() - 1],
        wall.as_secs_f64()
    );
}

fn cap_from_env(default: usize) -> usize {
    std::env::var("LOAD_CAP").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

fn assert_all_freed(state: &Path) {
    for dir in ["claudes", "queue/claudes"] {
        let left = std::fs::read_dir(state.join(dir)).map_or(0, |d| d.count());
        assert_eq!(left, 0, "{dir} is empty after the load");
    }
}

#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn fifty_keys_at_once_with_a_stand_in_claude() {
    const KEYS: usize = 50;
    let cap = cap_from_env(8);
    let mut env = Env::new();
    env.vars.push(("CLAWSESS_MAX_CLAUDES".into(), cap.to_string()));
    // A turn's work: 200 ms with its claude up.
    env.vars.push(("STANDIN_SLEEP".into(), "0.2".into()));
    let count = env.root().join("count");
    let claude = env.counting_claude(&env.stand_in(), &count);
    let claude = claude.to_str().unwrap().to_owned();
    let runs = (0..KEYS)
        .map(|n| {
            let (key, prompt) = (format!("telegram:{n}"), format!("turn of chat {n}"));
            let cmd = env.cmd(&[
                "run", "--claude", &claude, "--key", &key, "--stream", "--wait", "600", "--", &prompt,
            ]);
            (key, prompt, cmd)
        })
        .collect();
    let t = Instant::now();
    let turns = drive(runs);
    let wall = t.elapsed();

    assert_eq!(turns.len(), KEYS);
    for turn in &turns {
        assert_eq!(turn.code, Some(0), "{}: {}", turn.key, turn.stderr);
        assert_eq!(turn.result["result"], format!("echo: {}", turn.prompt), "{}", turn.result);
    }
    // Each prompt reached exactly one claude: none lost, none doubled.
    let prompts: Vec<String> = env.stand_in_calls().into_iter().map(|(_, stdin)| stdin).collect();
    assert_eq!(prompts.len(), KEYS, "one claude per turn");
    let distinct: BTreeSet<&String> = prompts.iter().collect();
    assert_eq!(distinct.len(), KEYS, "no prompt twice");
    let (peak, started) = peak_claudes(&count);
    assert_eq!(started, KEYS);
    assert!(peak <= cap, "{peak} claudes alive at once, over the cap of {cap}");
    assert_all_freed(&env.state());
    report("stand-in claude", &turns, cap, peak, wall);
}

#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn twenty_keys_at_once_with_the_real_cli_against_the_stand_in_api() {
    const KEYS: usize = 20;
    let cap = cap_from_env(4);
    let home = ClaudeHome::new();
    home.install_clawsess();
    let project = home.project("load");
    let count = home.home().join("count");
    let claude = home.home().join("counted-claude");
    write_counting_claude(&claude, home.claude(), &count);
    let claude = claude.to_str().unwrap().to_owned();
    let runs = (0..KEYS)
        .map(|n| {
            let (key, prompt) = (format!("discord:{n}"), format!("turn of chat {n}"));
            let args =
                ["run", "--claude", &claude, "--cwd", project.to_str().unwrap(), "--key", &key, "--stream"];
            let mut cmd = home.clawsess_cmd(&args);
            cmd.args(["--wait", "600", "--", &prompt]).env("CLAWSESS_MAX_CLAUDES", cap.to_string());
            (key, prompt, cmd)
        })
        .collect();
    let t = Instant::now();
    let turns = drive(runs);
    let wall = t.elapsed();

    assert_eq!(turns.len(), KEYS);
    let requests = home.api().turn_requests();
    for turn in &turns {
        assert_eq!(turn.code, Some(0), "{}: {}", turn.key, turn.stderr);
        assert_eq!(turn.result["is_error"], false, "{}", turn.result);
        // The model was asked once, and the run's reply is what it answered.
        let asked: Vec<_> = requests.iter().filter(|r| r.last_user_text == turn.prompt).collect();
        assert_eq!(asked.len(), 1, "{}: asked {} times", turn.prompt, asked.len());
        assert_eq!(turn.result["result"], asked[0].reply, "{}", turn.result);
    }
    let (peak, started) = peak_claudes(&count);
    assert_eq!(started, KEYS, "one claude per turn");
    assert!(peak <= cap, "{peak} claudes alive at once, over the cap of {cap}");
    assert_all_freed(&home.state());
    report("real Claude Code CLI", &turns, cap, peak, wall);
}
