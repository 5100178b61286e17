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

use clawsess::sys::bell::Bell;
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
    /// Every line it printed on stdout, as printed (kept to explain a failure).
    lines: Vec<String>,
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
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                // A line that is not JSON is kept and fails the turn below, with its words.
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                lines.push(line);
                match event["type"].as_str() {
                    Some("queued") if event["behind"] == "cap" => queued = true,
                    Some("session") => wait = Some(started.elapsed()),
                    Some("result") => result = event,
                    _ => {}
                }
            }
            let wait = wait.unwrap_or_else(|| started.elapsed());
            let _ =
                tx.send(Turn { key, prompt, wait, queued, result, lines, code: None, stderr: String::new() });
        });
    }
    drop(tx);
    let mut outs = Vec::new();
    for (key, child) in children {
        outs.push((key, finish(child)));
    }
    let mut turns: Vec<Turn> = rx.iter().collect();
    // Each run's exit and stderr.
    for (key, out) in outs {
        if let Some(turn) = turns.iter_mut().find(|t| t.key == key) {
            turn.code = out.code;
            turn.stderr = out.stderr;
        }
    }
    turns
}

/// Prints everything known about each turn `failed` names (why, its exit, stderr and stdout,
/// and what the stand-in saw of its prompt, from `seen`), then fails the test: a load run
/// that fails once must say why the first time.
fn explain(turns: &[Turn], failed: &[(String, String)], seen: impl Fn(&str) -> String) {
    if failed.is_empty() {
        return;
    }
    for (key, why) in failed {
        eprintln!("==== {key}: {why}");
        if let Some(turn) = turns.iter().find(|t| &t.key == key) {
            let exit = turn.code.map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string());
            eprintln!("exit: {exit}; waited {:.0} ms; queued at the cap: {}", ms(turn.wait), turn.queued);
            eprintln!("-- stderr:\n{}", turn.stderr);
            eprintln!("-- stdout:\n{}", turn.lines.join("\n"));
            eprintln!("-- the stand-in's view of {:?}:\n{}", turn.prompt, seen(&turn.prompt));
        }
    }
    panic!("{} of {} turns failed (each explained above): {failed:?}", failed.len(), turns.len());
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

/// The keys of `all` that no turn came back for.
fn missing(turns: &[Turn], all: impl Iterator<Item = String>) -> Vec<(String, String)> {
    all.filter(|key| !turns.iter().any(|t| &t.key == key))
        .map(|key| (key, "no turn came back (its stdout reader died)".to_owned()))
        .collect()
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
            let (key, prompt) = (format!("telegram:{n}"), format!("turn of chat {n}."));
            let cmd = env.cmd(&[
                "run", "--claude", &claude, "--key", &key, "--stream", "--wait", "600", "--", &prompt,
            ]);
            (key, prompt, cmd)
        })
        .collect();
    let t = Instant::now();
    let turns = drive(runs);
    let wall = t.elapsed();

    let prompts: Vec<String> = env.stand_in_calls().into_iter().map(|(_, stdin)| stdin).collect();
    let mut failed = missing(&turns, (0..KEYS).map(|n| format!("telegram:{n}")));
    for turn in &turns {
        let asked = prompts.iter().filter(|p| p.contains(&turn.prompt)).count();
        if turn.code != Some(0) || turn.result["result"] != format!("echo: {}", turn.prompt) || asked != 1 {
            failed.push((turn.key.clone(), format!("its claude was given the prompt {asked} time(s)")));
        }
    }
    explain(&turns, &failed, |prompt| {
        let calls: Vec<&String> = prompts.iter().filter(|p| p.contains(prompt)).collect();
        format!("{} stand-in claude(s) read it on stdin: {calls:?}", calls.len())
    });
    // Each prompt reached exactly one claude: none lost, none doubled.
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
            let (key, prompt) = (format!("discord:{n}"), format!("turn of chat {n}."));
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

    let requests = home.api().requests();
    let mut failed = missing(&turns, (0..KEYS).map(|n| format!("discord:{n}")));
    for turn in &turns {
        // The model was asked once, and the run's reply is what it answered.
        let asked: Vec<_> =
            requests.iter().filter(|r| r.is_main_turn && r.last_user_text == turn.prompt).collect();
        let answered = asked.first().is_some_and(|a| turn.result["result"] == a.reply.as_str());
        if turn.code != Some(0) || turn.result["is_error"] != false || asked.len() != 1 || !answered {
            failed.push((turn.key.clone(), format!("the model was asked {} time(s)", asked.len())));
        }
    }
    explain(&turns, &failed, |prompt| {
        let mut view = String::new();
        for r in requests.iter().filter(|r| r.all_text.contains(prompt)) {
            view.push_str(&format!(
                "#{} {} main turn {} at {}..{} ms, client gone {}, stream {}, answered {:?}\n",
                r.seq, r.path, r.is_main_turn, r.started_ms, r.finished_ms, r.client_gone, r.stream, r.reply
            ));
        }
        let others = home.api().other_requests();
        format!("{view}({} requests in all; other paths: {others:?})", requests.len())
    });
    let (peak, started) = peak_claudes(&count);
    assert_eq!(started, KEYS, "one claude per turn");
    assert!(peak <= cap, "{peak} claudes alive at once, over the cap of {cap}");
    assert_all_freed(&home.state());
    report("real Claude Code CLI", &turns, cap, peak, wall);
}

/// Reads `child`'s `run --stream` lines until one of `kind`; the instant it came.
fn until_event(lines: &mut impl Iterator<Item = std::io::Result<String>>, kind: &str) -> Instant {
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap_or(Value::Null);
        if event["type"] == kind {
            return Instant::now();
        }
    }
    panic!("the run ended before a {kind:?} event");
}

#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn a_second_turn_starts_when_the_first_leaves_its_slot() {
    const PAIRS: usize = 20;
    let mut env = Env::new();
    env.vars.push(("CLAWSESS_MAX_CLAUDES".into(), "1".into()));
    env.vars.push(("STANDIN_SLEEP".into(), "0.2".into()));
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap().to_owned();
    let run = |key: &str| {
        let mut cmd =
            env.cmd(&["run", "--claude", &claude, "--key", key, "--stream", "--wait", "600", "--", key]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    };
    let slots = env.state().join("claudes");
    let mut gaps = Vec::new();
    for n in 0..PAIRS {
        // The first holds the only slot; the second waits in line for it (its `queued` event
        // is the barrier); from the first leaving its slot to the second's `session` event
        // (its claude may start).
        let (mut first, mut first_lines) = run(&format!("first:{n}"));
        until_event(&mut first_lines, "session");
        let (mut second, mut second_lines) = run(&format!("second:{n}"));
        until_event(&mut second_lines, "queued");
        // The first's slot file removed: the instant it left the slot (nothing else removes
        // one here; the second's taking one writes, which does not ring).
        let bell = Bell::on(&[&slots]).expect("inotify");
        let left = std::thread::spawn(move || {
            assert_eq!(bell.wait(Duration::from_secs(600)), [true], "the first left its slot");
            Instant::now()
        });
        let started = until_event(&mut second_lines, "session");
        let left = left.join().unwrap();
        gaps.push(started.saturating_duration_since(left).as_secs_f64() * 1000.0);
        for _ in first_lines {}
        assert!(first.wait().unwrap().success());
        for _ in second_lines {}
        assert!(second.wait().unwrap().success());
    }
    gaps.sort_by(f64::total_cmp);
    println!(
        "a second turn after the first: from the first leaving its slot to the second's session event, \
         p50 {:.1} ms, p90 {:.1} ms (min {:.1}, max {:.1}; {PAIRS} pairs, cap 1)",
        percentile(&gaps, 50.0),
        percentile(&gaps, 90.0),
        gaps[0],
        gaps[PAIRS - 1]
    );
}

/// Writes `n` session records straight into `state` (as a hook would, without one process per
/// record), numbered from `from`; every `gone_every`th one's transcript is gone.
fn write_records(state: &Path, from: usize, n: usize, gone_every: usize, transcript: &Path) {
    use clawsess::store::{SessionRecord, Starter};
    let dir = state.join("sessions");
    std::fs::create_dir_all(&dir).unwrap();
    for i in from..from + n {
        let id = clawsess::ident::SessionId::parse(&format!("{i:08x}-0000-4000-8000-000000000000")).unwrap();
        let path = if i % gone_every == 0 { state.join("gone.jsonl") } else { transcript.to_path_buf() };
        let rec = SessionRecord::new(id.clone(), "/p".into(), path, Starter::Run, 1);
        std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec(&rec).unwrap()).unwrap();
    }
}

/// A prune at 100,000 recorded sessions, 10,000 of them with their transcript gone: how long
/// it holds the store lock at most, and how long a writer that wants the lock all along
/// waits at most, in batches of `BATCH` and (side by side) in one hold for every record.
#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn a_prune_at_100_000_sessions_holds_the_lock_briefly() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let transcript = root.path().join("t.jsonl");
    std::fs::write(&transcript, "{}\n").unwrap();
    let store = clawsess::store::Store::at(&state);
    let total = 100_000;
    write_records(&state, 0, total, 10, &transcript);
    for (label, batch) in [("batches of BATCH", clawsess::prune::BATCH), ("one hold", usize::MAX)] {
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let (done, writer) = std::thread::scope(|s| {
            // Another writer, taking the lock again and again for as long as the prune runs.
            let writer = s.spawn(|| {
                let (mut longest, mut times) = (Duration::ZERO, 0);
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let tx = store.lock(Duration::from_secs(60)).unwrap();
                    longest = longest.max(asked.elapsed());
                    times += 1;
                    drop(tx);
                    std::thread::sleep(Duration::from_millis(1));
                }
                (longest, times)
            });
            let done =
                clawsess::prune::prune_in_batches(&store, false, batch, clawsess::prune::PAUSE, |_| {})
                    .unwrap();
            stop.store(true, Ordering::Relaxed);
            (done, writer.join().unwrap())
        });
        assert_eq!(done.sessions, total);
        assert_eq!(done.dropped.len(), total / 10, "every record whose transcript is gone");
        assert_eq!(store.session_ids().unwrap().len(), total - total / 10);
        println!(
            "prune at {total} sessions, {label}: {:.0} ms in all, {} holds of the lock, the longest \
             {:.1} ms; a writer took it {} times meanwhile, waiting {:.1} ms at most",
            ms(started.elapsed()),
            done.holds,
            ms(done.longest_hold),
            writer.1,
            ms(writer.0),
        );
        // Again for the next round: the dropped records come back.
        write_records(&state, 0, total, 10, &transcript);
        let ids = store.session_ids().unwrap().len();
        assert_eq!(ids, total);
    }
}

/// Whether the pause between a prune's holds of the store lock (`prune::PAUSE`) is needed:
/// a writer asks for the lock again and again while a prune of 20,000 records (all to go, 79
/// batches) runs, with the pause and without, twice each, alternating. For each ask: how many
/// batches the prune held the lock for while the writer waited (the holds it finished between
/// the ask and the writer's turn; a writer that asked between two holds counts 0), and how
/// long it waited. flock hands the lock to no one: at its release every waiter is woken and
/// must run to take it, while the prune, running, asks again at once.
#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn a_writer_waiting_during_a_prune_gets_in_between_batches() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let transcript = root.path().join("t.jsonl");
    std::fs::write(&transcript, "{}\n").unwrap();
    let store = clawsess::store::Store::at(&state);
    let total = 20_000;
    let rounds = [("pause", clawsess::prune::PAUSE), ("no pause", Duration::ZERO)];
    for (label, pause) in rounds.iter().chain(&rounds) {
        write_records(&state, 0, total, 1, &transcript);
        let holds = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let (done, asks) = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut asks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let before = holds.load(Ordering::SeqCst);
                    let asked = Instant::now();
                    let tx = store.lock(Duration::from_secs(60)).unwrap();
                    let waited = asked.elapsed();
                    // While the writer holds the lock the prune cannot finish another hold.
                    asks.push((holds.load(Ordering::SeqCst) - before, waited));
                    drop(tx);
                    std::thread::sleep(Duration::from_millis(2));
                }
                asks
            });
            let done =
                clawsess::prune::prune_in_batches(&store, false, clawsess::prune::BATCH, *pause, |n| {
                    holds.store(n + 1, Ordering::SeqCst)
                })
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            (done, writer.join().unwrap())
        });
        assert_eq!(done.dropped.len(), total);
        let mut passed: Vec<usize> = asks.iter().map(|a| a.0).collect();
        passed.sort_unstable();
        let longest = asks.iter().map(|a| a.1).max().unwrap_or_default();
        let within_one = passed.iter().filter(|&&p| p <= 1).count();
        println!(
            "{label}: prune of {total} in {:.0} ms, {} holds, longest {:.1} ms; the writer asked {} \
             times: {within_one} got in after at most one batch, batches passed p50 {} max {}, \
             longest wait {:.1} ms",
            ms(started.elapsed()),
            done.holds,
            ms(done.longest_hold),
            asks.len(),
            passed.get(passed.len() / 2).copied().unwrap_or(0),
            passed.last().copied().unwrap_or(0),
            ms(longest),
        );
    }
}

/// What takes the time in one batch of a prune (256 records dropped under one hold of the
/// store lock): each step `prune` takes for a record (record by record: `still_gone` and `remove_session`), timed over the batch, at 20,000 records.
#[test]
#[ignore = "load test: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn a_prune_batch_broken_down() {
    use clawsess::ident::SessionId;
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let transcript = root.path().join("t.jsonl");
    std::fs::write(&transcript, "{}\n").unwrap();
    let store = clawsess::store::Store::at(&state);
    write_records(&state, 0, 20_000, 1, &transcript);
    let batch = clawsess::prune::BATCH;
    let mut steps = [Duration::ZERO; 6];
    let mut time = |step: usize, t: Instant| steps[step] += t.elapsed();
    let rounds = 4;
    let mut in_all = Duration::ZERO;
    for round in 0..rounds {
        let ids: Vec<SessionId> = (round * batch..(round + 1) * batch)
            .map(|i| SessionId::parse(&format!("{i:08x}-0000-4000-8000-000000000000")).unwrap())
            .collect();
        let t = Instant::now();
        let tx = store.lock(Duration::from_secs(60)).unwrap();
        time(0, t);
        let whole = Instant::now();
        for id in &ids {
            let t = Instant::now();
            let now = tx.session(id).unwrap().unwrap();
            time(1, t);
            let t = Instant::now();
            let same = serde_json::to_vec(&now).unwrap() == serde_json::to_vec(&now.clone()).unwrap();
            time(2, t);
            let t = Instant::now();
            assert!(same && !now.transcript.exists());
            time(3, t);
            let t = Instant::now();
            assert!(tx.remove_session(id).unwrap());
            time(4, t);
            let t = Instant::now();
            tx.clear_busy(id).unwrap();
            time(5, t);
        }
        in_all += whole.elapsed();
        drop(tx);
    }
    let per = |d: Duration| ms(d) / rounds as f64;
    println!(
        "one batch of {batch}, mean of {rounds}: {:.1} ms held; taking the lock {:.2} ms; reading \
         the record again (record + live file) {:.1} ms; comparing it (two serializations) {:.1} ms; \
         the transcript's stat {:.1} ms; remove_session (journal line + 4 unlinks) {:.1} ms; \
         clear_busy {:.1} ms",
        per(in_all),
        per(steps[0]),
        per(steps[1]),
        per(steps[2]),
        per(steps[3]),
        per(steps[4]),
        per(steps[5]),
    );
}
