//! Reliability: the Promises of SPEC.md under many processes, kills at random instants,
//! stuck locks, failing writes, corrupt state and hostile input.
//!
//! Every test runs the real binary with its own temp HOME, CLAWSESS_HOME and
//! CLAUDE_CONFIG_DIR and a cleared environment; `run` talks to a stand-in `claude` (a shell
//! script) that records its argv and stdin and echoes the prompt as its result.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::testenv::*;

// ---------------------------------------------------------------------------------------
// 1. Many processes at once: every acknowledged change lands, exactly once.
// ---------------------------------------------------------------------------------------

#[test]
fn two_hundred_concurrent_session_starts_all_land_exactly_once() {
    let env = Arc::new(Env::new());
    // 40 sessions exist already and are resumed; 160 are new.
    let old: Vec<String> = (0..40).map(sid).collect();
    for id in &old {
        env.start(id);
    }
    let new: Vec<String> = (1000..1160).map(sid).collect();
    for id in &new {
        env.transcript(id, id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(Arc::clone(&env), "default", BTreeSet::new(), Arc::clone(&stop));

    let started = Instant::now();
    let kids: Vec<(String, Child)> =
        old.iter().chain(&new).map(|id| (id.clone(), env.spawn_start(id))).collect();
    let mut acked = BTreeSet::new();
    let mut failed = Vec::new();
    for (id, child) in kids {
        let out = finish(child);
        assert_eq!(out.code, Some(0), "a hook must exit 0: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        if out.stderr.is_empty() {
            acked.insert(id);
        } else {
            assert_eq!(out.stderr_lines().len(), 1, "one line on stderr: {out:?}");
            failed.push(out.stderr);
        }
    }
    eprintln!("200 concurrent session-starts took {:?}; {} gave up", started.elapsed(), failed.len());
    stop.store(true, Ordering::SeqCst);
    let reads = reader.join().unwrap();
    eprintln!("the reader made {reads} whole reads meanwhile");

    // SPEC: concurrent hooks all land. (A hook that did give up would say so on one line.)
    assert!(failed.is_empty(), "{} of 200 hooks gave up: {failed:?}", failed.len());
    env.assert_state_parses();
    let rows = env.list();
    let listed: Vec<&str> = rows.iter().map(|r| r["session_id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a session listed twice: {listed:?}");
    let want: BTreeSet<&str> =
        old.iter().chain(new.iter().filter(|id| acked.contains(*id))).map(String::as_str).collect();
    assert_eq!(unique, want, "listed sessions are exactly the recorded and acknowledged ones");
    for row in &rows {
        assert_eq!(row["cwd"].as_str().unwrap(), env.proj().to_str().unwrap());
        assert_eq!(row["started_by"], "person");
    }
    // `attach` with no session picks one of them (the person's most recent).
    let out = env.run(&["attach", "--key", "after-the-burst"]);
    assert!(out.ok(), "{out:?}");
    let picked = env.run(&["current", "--key", "after-the-burst"]);
    assert!(want.contains(picked.stdout.trim()), "{picked:?}");
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());
}

#[test]
fn hundred_concurrent_attaches_on_distinct_keys_all_land() {
    let env = Arc::new(Env::new());
    let sessions: Vec<String> = (0..5).map(sid).collect();
    for id in &sessions {
        env.start(id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let allowed = BTreeSet::from([sessions[0].clone()]);
    let reader = spawn_reader(Arc::clone(&env), "bot:0", allowed, Arc::clone(&stop));
    let kids: Vec<(String, String, Child)> = (0..100)
        .map(|i| {
            let key = format!("bot:{i}");
            let session = sessions[i % 5].clone();
            let child = env.spawn(&["attach", &session, "--key", &key, "--json"]);
            (key, session, child)
        })
        .collect();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, session, child) in kids {
        let out = finish(child);
        assert!(out.ok(), "attach --key {key}: {out:?}");
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["session_id"], session.as_str());
        want.entry(session).or_default().insert(key);
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();

    env.assert_state_parses();
    for (session, keys) in &want {
        for key in keys {
            assert_eq!(env.current(key).as_deref(), Some(session.as_str()), "{key}");
        }
    }
    for row in env.list() {
        let session = row["session_id"].as_str().unwrap();
        let keys: Vec<String> = serde_json::from_value(row["attached_keys"].clone()).unwrap();
        let unique: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(unique.len(), keys.len(), "a key listed twice: {keys:?}");
        assert_eq!(&unique, &want[session], "{session}");
    }
    assert!(env.temp_files().is_empty());
}

/// The names/ files: name -> session.
fn name_entries(env: &Env) -> BTreeMap<String, String> {
    walk(&env.state().join("names"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
            (v["name"].as_str().unwrap().to_owned(), v["session"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn concurrent_names_detaches_forgets_and_attaches_all_land() {
    let env = Arc::new(Env::new());
    let s: Vec<String> = (0..21).map(sid).collect();
    for id in &s {
        env.start(id);
    }
    for i in 0..60 {
        let out = env.run(&["attach", &s[i % 10], "--key", &format!("k{i}")]);
        assert!(out.ok(), "{out:?}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // k40 is re-attached from s[0] to s[1] while the reader watches it.
    let allowed = BTreeSet::from([s[0].clone(), s[1].clone()]);
    let reader = spawn_reader(Arc::clone(&env), "k40", allowed, Arc::clone(&stop));

    let mut kids: Vec<(String, Child)> = Vec::new();
    let mut add = |what: String, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kids.push((what, env.spawn(&args)));
    };
    for i in 0..20 {
        add(format!("detach k{i}"), vec!["detach".into(), "--key".into(), format!("k{i}")]);
        add(format!("forget k{}", i + 20), vec!["forget".into(), "--key".into(), format!("k{}", i + 20)]);
        add(
            format!("reattach k{}", i + 40),
            vec!["attach".into(), s[(i + 1) % 10].clone(), "--key".into(), format!("k{}", i + 40)],
        );
        add(
            format!("attach n{i}"),
            vec!["attach".into(), s[i % 10].clone(), "--key".into(), format!("n{i}")],
        );
    }
    for i in 0..10 {
        add(format!("name s{i}"), vec!["name".into(), s[i].clone(), format!("name-{i}")]);
        // Ten sessions race for one name.
        add(format!("contest s{}", i + 10), vec!["name".into(), s[i + 10].clone(), "contested".into()]);
        // One session renamed ten times at once.
        add(format!("rename r{i}"), vec!["name".into(), s[20].clone(), format!("r{i}")]);
    }
    let mut contest_winners = Vec::new();
    for (what, child) in kids {
        let out = finish(child);
        if what.starts_with("contest") {
            match out.code {
                Some(0) => contest_winners.push(what),
                Some(1) => assert!(out.stderr.contains("taken"), "{what}: {out:?}"),
                _ => panic!("{what}: {out:?}"),
            }
        } else {
            assert!(out.ok(), "{what}: {out:?}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap();
    env.assert_state_parses();

    for i in 0..20 {
        assert_eq!(env.current(&format!("k{i}")), None, "k{i} was detached");
        assert_eq!(env.current(&format!("k{}", i + 20)), None, "k{} was forgotten", i + 20);
        assert_eq!(env.current(&format!("k{}", i + 40)).as_ref(), Some(&s[(i + 1) % 10]));
        assert_eq!(env.current(&format!("n{i}")).as_ref(), Some(&s[i % 10]));
    }
    let rows = env.list();
    let name_of = |id: &str| -> Option<String> {
        rows.iter().find(|r| r["session_id"] == id).and_then(|r| r["name"].as_str().map(str::to_owned))
    };
    let names = name_entries(&env);
    for i in 0..10 {
        assert_eq!(name_of(&s[i]), Some(format!("name-{i}")));
        assert_eq!(names[&format!("name-{i}")], s[i]);
    }
    assert_eq!(contest_winners.len(), 1, "exactly one wins a name: {contest_winners:?}");
    let winner = &names["contested"];
    for session in &s[10..20] {
        let named = name_of(session);
        if session == winner {
            assert_eq!(named.as_deref(), Some("contested"));
        } else {
            assert_eq!(named, None, "{session} lost the race but is named");
        }
    }
    // The renamed session has exactly one name, and only that name points to it.
    let final_name = name_of(&s[20]).expect("renamed session has a name");
    let pointing: Vec<&String> = names.iter().filter(|(_, v)| **v == s[20]).map(|(k, _)| k).collect();
    assert_eq!(pointing, vec![&final_name], "stale names left: {names:?}");
    assert_eq!(names.len(), 12, "{names:?}");
    assert!(env.temp_files().is_empty());
}

// ---------------------------------------------------------------------------------------
// 2. Crash safety: writers SIGKILLed at random instants.
// ---------------------------------------------------------------------------------------

enum Op {
    Start(String),
    Attach { key: String, session: String },
    Name { session: String, name: String },
}

/// What must hold after kills: acknowledged sessions, attachments and names, as files.
#[derive(Default)]
struct Acked {
    sessions: BTreeSet<String>,
    keys: BTreeMap<String, String>,
    names: BTreeMap<String, String>,
}

fn read_value(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_acked(env: &Env, acked: &Acked) {
    env.assert_state_parses();
    for id in &acked.sessions {
        let rec = read_value(&env.state().join("sessions").join(format!("{id}.json")));
        assert_eq!(rec["id"], id.as_str());
        assert_eq!(rec["cwd"], env.proj().to_str().unwrap());
    }
    for (key, session) in &acked.keys {
        let state = read_value(&env.hashed_file("keys", key));
        assert_eq!(state["key"], key.as_str());
        assert_eq!(state["attached"]["session"], session.as_str(), "{key}");
    }
    for (name, session) in &acked.names {
        let entry = read_value(&env.hashed_file("names", name));
        assert_eq!(entry["session"], session.as_str(), "{name}");
        let rec = read_value(&env.state().join("sessions").join(format!("{session}.json")));
        assert_eq!(rec["name"], name.as_str(), "{session}");
    }
    // Whatever a killed `name` left, a session's recorded name leads back to it.
    for path in walk(&env.state().join("sessions")) {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let rec = read_value(&path);
        if let Some(name) = rec["name"].as_str() {
            let entry = read_value(&env.hashed_file("names", name));
            assert_eq!(entry["session"], rec["id"], "{name}");
        }
    }
}

fn time_it(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

#[test]
fn writers_killed_at_random_instants_leave_parseable_state_and_acknowledged_changes() {
    let env = Env::new();
    let mut rng = Rng::seeded("kill trials");
    let mut acked = Acked::default();
    for i in 0..10u32 {
        let id = sid(i);
        env.start(&id);
        let (key, name) = (format!("base:{i}"), format!("base-{i}"));
        assert!(env.run(&["attach", &id, "--key", &key]).ok());
        assert!(env.run(&["name", &id, &name]).ok());
        acked.sessions.insert(id.clone());
        acked.keys.insert(key, id.clone());
        acked.names.insert(name, id);
    }
    // Kill instants spread over the whole life of a writer, measured here (a debug binary
    // on a slow disk lives far longer than one on a fast one).
    let mut unnamed: Vec<String> = Vec::new();
    let mut life = Duration::ZERO;
    for n in 0..3u32 {
        let id = sid(100 + n);
        life = life.max(time_it(|| env.start(&id)));
        life = life.max(time_it(|| assert!(env.run(&["attach", &id, "--key", &format!("cal:{n}")]).ok())));
        acked.keys.insert(format!("cal:{n}"), id.clone());
        acked.sessions.insert(id.clone());
        unnamed.push(id);
    }
    let window_us = (life.as_micros() as u64 * 3).max(5000);
    eprintln!("a writer lives up to {life:?}; kills land in 0..{window_us} us");

    let (mut killed, mut finished, mut next) = (0, 0, 1000u32);
    for _batch in 0..5 {
        for _round in 0..15 {
            let mut kids: Vec<(Op, Child, Instant, Duration)> = Vec::new();
            for _ in 0..4 {
                next += 1;
                let op = match rng.below(3) {
                    1 => Op::Attach {
                        key: format!("crash:{next}"),
                        session: acked
                            .sessions
                            .iter()
                            .nth(rng.below(acked.sessions.len() as u64) as usize)
                            .unwrap()
                            .clone(),
                    },
                    2 if !unnamed.is_empty() => Op::Name {
                        session: unnamed.swap_remove(rng.below(unnamed.len() as u64) as usize),
                        name: format!("crash-{next}"),
                    },
                    _ => Op::Start(sid(next)),
                };
                let child = match &op {
                    Op::Start(id) => {
                        env.transcript(id, "crash");
                        env.spawn_start(id)
                    }
                    Op::Attach { key, session } => env.spawn(&["attach", session, "--key", key]),
                    Op::Name { session, name } => env.spawn(&["name", session, name]),
                };
                let delay = Duration::from_micros(rng.below(window_us));
                kids.push((op, child, Instant::now(), delay));
            }
            kids.sort_by_key(|k| k.2 + k.3);
            for (_, child, at, delay) in &mut kids {
                std::thread::sleep((*at + *delay).saturating_duration_since(Instant::now()));
                let _ = child.kill(); // a child that already exited is a zombie until waited
            }
            for (op, child, _, _) in kids {
                let out = finish(child);
                if !(out.ok() && out.stderr.is_empty()) {
                    assert_eq!(out.code, None, "a writer failed on its own: {out:?}");
                    killed += 1;
                    continue;
                }
                finished += 1;
                match op {
                    Op::Start(id) => {
                        acked.sessions.insert(id.clone());
                        unnamed.push(id);
                    }
                    Op::Attach { key, session } => {
                        acked.keys.insert(key, session);
                    }
                    Op::Name { session, name } => {
                        acked.names.insert(name, session);
                    }
                }
            }
        }
        assert_acked(&env, &acked);
    }
    let leftovers = env.temp_files();
    eprintln!(
        "{} trials: {killed} killed, {finished} finished; {} temp files left by killed writers",
        killed + finished,
        leftovers.len()
    );
    assert!(killed >= 10 && finished >= 10, "kills did not spread over writers' lives");

    // The acknowledged changes read back through the commands too.
    for (key, session) in acked.keys.iter().take(20) {
        assert_eq!(env.current(key).as_ref(), Some(session));
    }
    let rows = env.list();
    for (name, session) in &acked.names {
        let row = rows.iter().find(|r| r["session_id"] == session.as_str()).unwrap();
        assert_eq!(row["name"], name.as_str());
    }

    // prune sweeps temp files of dead writers, but not ones a live writer may be filling.
    for dir in ["", "sessions", "keys", "names"] {
        let dir = env.state().join(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".x.json.4242.0badf00d.tmp"), b"{\"v\":1,").unwrap();
    }
    let fresh = env.temp_files();
    assert_eq!(fresh.len(), leftovers.len() + 4);
    let out = env.run(&["prune"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(env.temp_files(), fresh, "prune removed a fresh temp file");
    for path in &fresh {
        backdate(path, 120);
    }
    let out = env.run(&["prune"]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains(&format!("{} stale temp files removed", fresh.len())), "{out:?}");
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());
    assert_acked(&env, &acked);
    let doctor = env.run(&["doctor"]);
    assert!(doctor.stdout.contains("ok   state dir"), "{doctor:?}");
}

#[test]
fn a_sigkilled_run_frees_its_session_for_the_next_run() {
    let env = Env::new();
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let id = sid(1);
    env.start(&id);
    let run = |prompt: &str, wait: &str| {
        env.run(&["run", "--session", &id, "--claude", claude, "--wait", wait, "--", prompt])
    };
    let kill_run_once_claude_started = |vars: &[(&str, &str)]| {
        let before = started_count(&env);
        let mut cmd = env.cmd(&["run", "--session", &id, "--claude", claude, "--", "doomed"]);
        cmd.envs(vars.iter().copied());
        let mut child = cmd.spawn().unwrap();
        wait_until(GENEROUS, "the stand-in to start", || started_count(&env) > before);
        child.kill().unwrap();
        // Only wait: its stderr stays open in the orphaned claude, so reading it to the end
        // would wait for that claude too.
        let status = child.wait().unwrap();
        assert_eq!(status.code(), None, "{status:?}");
    };

    // claude stops with its run (SIGTERM from the parent-death signal); the session frees
    // once it (and what it started) is gone.
    kill_run_once_claude_started(&[("STANDIN_SLEEP", "3")]);
    let t = Instant::now();
    let next = run("second", "30");
    assert!(next.ok(), "{next:?}");
    assert_eq!(next.stdout, "echo: second\n");
    assert!(t.elapsed() < Duration::from_secs(30));

    // A claude slow to stop still answers: the session stays locked while it lives...
    kill_run_once_claude_started(&[("STANDIN_SLEEP", "3"), ("STANDIN_IGNORE_TERM", "1")]);
    let busy = run("refused", "0");
    assert_eq!(busy.code, Some(75), "{busy:?}");
    assert!(busy.stderr.contains("busy"), "{busy:?}");
    // ...and is free once it is gone.
    let next = run("third", "30");
    assert!(next.ok(), "{next:?}");
    assert_eq!(next.stdout, "echo: third\n");

    let prompts: Vec<String> = env.stand_in_calls().into_iter().map(|c| c.1).collect();
    assert_eq!(prompts, ["doomed", "second", "doomed", "third"]);
    let row = env.list().into_iter().find(|r| r["session_id"] == id.as_str()).unwrap();
    assert_eq!(row["busy"], Value::Null);
    assert_eq!(row["run_turns"], 2);
    env.assert_state_parses();
}

// ---------------------------------------------------------------------------------------
// 3. Bounded waits.
// ---------------------------------------------------------------------------------------

fn hold_lock(path: &Path) -> fs::File {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap();
    file.try_lock().unwrap();
    file
}

#[test]
fn a_hook_facing_a_stuck_store_lock_gives_up_within_its_budget() {
    let env = Env::new();
    let id = sid(1);
    env.transcript(&id, "x");
    let held = hold_lock(&env.state().join("lock"));
    let t = Instant::now();
    let out = env.run_stdin(&["hook", "session-start"], &env.start_input(&id));
    let took = t.elapsed();
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(out.stderr.contains("state lock"), "{out:?}");
    assert!(took < GENEROUS, "the hook waited {took:?}");
    assert!(!env.state().join("sessions").join(format!("{id}.json")).exists());
    drop(held);
    env.start(&id);
}

#[test]
fn a_hook_whose_stdin_never_closes_gives_up_within_its_budget() {
    let env = Env::new();
    let mut cmd = env.cmd(&["hook", "session-start"]);
    cmd.stdin(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap(); // held open, never written
    let out = finish(child);
    drop(stdin);
    assert!(t.elapsed() < GENEROUS);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
}

#[test]
fn run_wait_gives_up_with_75_after_about_the_wait() {
    let env = Env::new();
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let id = sid(1);
    env.start(&id);
    let run = |wait: &str| {
        let t = Instant::now();
        let out = env.run(&["run", "--session", &id, "--claude", claude, "--wait", wait, "--", "hi"]);
        (out, t.elapsed())
    };

    // Another surface's run holds the session.
    let held = hold_lock(&env.state().join("run").join(format!("{id}.lock")));
    let (out, took) = run("1");
    assert_eq!(out.code, Some(75), "{out:?}");
    assert!(out.stderr.contains("busy"), "{out:?}");
    assert!(took >= Duration::from_millis(950) && took < GENEROUS, "--wait 1 took {took:?}");
    let (out, took) = run("0");
    assert_eq!(out.code, Some(75), "{out:?}");
    assert!(took < GENEROUS);
    drop(held);

    // A terminal turn is in progress (its claude is alive: this test process).
    let mut hook = env.cmd(&["hook", "prompt-submit"]);
    hook.env("CLAUDE_PID", std::process::id().to_string());
    let out = output(hook, Some(&env.start_input(&id)));
    assert!(out.ok() && out.stderr.is_empty(), "{out:?}");
    let (out, took) = run("1");
    assert_eq!(out.code, Some(75), "{out:?}");
    assert!(out.stderr.contains("terminal"), "{out:?}");
    assert!(took >= Duration::from_millis(950) && took < GENEROUS, "--wait 1 took {took:?}");
    assert!(env.stand_in_calls().is_empty(), "claude ran on a busy session");

    let mut hook = env.cmd(&["hook", "stop"]);
    hook.env("CLAUDE_PID", std::process::id().to_string());
    assert!(output(hook, Some(&env.start_input(&id))).ok());
    let (out, _) = run("0");
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout, "echo: hi\n");
}

// ---------------------------------------------------------------------------------------
// 4. Disk trouble: a write that fails keeps the previous state.
// ---------------------------------------------------------------------------------------

/// The command with writes limited to `bytes` per file (EFBIG, as on a full quota).
fn with_fsize_limit(mut cmd: Command, bytes: u64) -> Command {
    // SAFETY: signal and setrlimit are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // Ignored, SIGXFSZ turns into an EFBIG error from write(2).
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[test]
fn a_failing_write_gives_a_clear_error_and_keeps_the_previous_state() {
    let env = Env::new();
    let claude = env.stand_in();
    let (a, b) = (sid(1), sid(2));
    env.start(&a);
    env.start(&b);
    assert!(env.run(&["attach", &a, "--key", "k"]).ok());
    assert!(env.run(&["attach", &a]).ok());
    assert!(env.run(&["name", &a, "alpha"]).ok());
    let before = env.snapshot();

    let limited = |args: &[&str], stdin: Option<&[u8]>| output(with_fsize_limit(env.cmd(args), 16), stdin);
    let key_file = env.hashed_file("keys", "k");
    for (args, file) in [
        (vec!["attach", b.as_str(), "--key", "k"], key_file.clone()),
        (vec!["attach", b.as_str(), "--key", "new"], env.hashed_file("keys", "new")),
        (vec!["attach", b.as_str()], env.state().join("global.json")),
        (vec!["name", a.as_str(), "beta"], env.hashed_file("names", "beta")),
        (vec!["name", b.as_str(), "gamma"], env.hashed_file("names", "gamma")),
    ] {
        let out = limited(&args, None);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("could not write") && out.stderr.contains(file.to_str().unwrap()),
            "{args:?} must name the file it could not write: {out:?}"
        );
        assert!(out.stderr.contains("File too large"), "{args:?}: {out:?}");
        assert_eq!(env.snapshot(), before, "{args:?} changed the state");
    }
    // A hook says so on one line and exits 0.
    let out = limited(&["hook", "session-start"], Some(&env.start_input(&b)));
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(out.stderr.contains("could not write"), "{out:?}");
    assert_eq!(env.snapshot(), before);
    // A run that cannot note its lock's holder stops before claude.
    let out = limited(&["run", "--session", &a, "--claude", claude.to_str().unwrap(), "--", "hi"], None);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(env.stand_in_calls().is_empty());
    let after = env.snapshot();
    let changed: Vec<_> = after.keys().filter(|p| before.get(*p) != after.get(*p)).collect();
    assert!(changed.iter().all(|p| p.starts_with("run")), "a failed run changed {changed:?}");
    assert!(env.temp_files().is_empty(), "{:?}", env.temp_files());

    // Once there is room again, the same writes go through.
    assert!(env.run(&["attach", &b, "--key", "k"]).ok());
    assert_eq!(env.current("k"), Some(b.clone()));
    env.assert_state_parses();
}

// ---------------------------------------------------------------------------------------
// 5. Corrupt or foreign state: named, never overwritten, doctor says how to recover.
// ---------------------------------------------------------------------------------------

/// A full state: S1 named alpha, attached by key k, answered once by `run` (a turn log),
/// with a terminal busy marker of a gone claude; S2 attached globally. The
/// binary and the stand-in claude are on PATH and the hooks installed, so doctor is happy.
struct Full {
    env: Env,
    s1: String,
    s2: String,
    claude: String,
}

fn full_state() -> Full {
    let env = Env::new();
    let claude = env.stand_in().to_str().unwrap().to_owned();
    std::os::unix::fs::symlink(BIN, env.root().join("bin/clawsess")).unwrap();
    assert!(env.run(&["install"]).ok());
    let (s1, s2) = (sid(1), sid(2));
    env.start(&s1);
    env.start(&s2);
    // A terminal open on S1 (this test process stands in for its claude), so that runs log
    // their turns for its catch-up.
    let mut hook = env.cmd(&["hook", "session-start"]);
    hook.env("CLAUDE_PID", std::process::id().to_string());
    assert!(output(hook, Some(&env.start_input(&s1))).ok());
    for args in [
        vec!["attach", s1.as_str(), "--key", "k"],
        vec!["attach", s2.as_str()],
        vec!["name", s1.as_str(), "alpha"],
        vec!["run", "--session", s1.as_str(), "--claude", claude.as_str(), "--", "hello"],
    ] {
        let out = env.run(&args);
        assert!(out.ok(), "{args:?}: {out:?}");
    }
    // A terminal turn whose claude is gone: the marker stays, but does not block.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let mut hook = env.cmd(&["hook", "prompt-submit"]);
    hook.env("CLAUDE_PID", gone_pid.to_string());
    let out = output(hook, Some(&env.start_input(&s1)));
    assert!(out.ok() && out.stderr.is_empty(), "{out:?}");
    Full { env, s1, s2, claude }
}

#[derive(Clone, Copy, Debug)]
enum Junk {
    Garbage,
    Truncated,
    Empty,
    Future,
}

const JUNK: [Junk; 4] = [Junk::Garbage, Junk::Truncated, Junk::Empty, Junk::Future];

fn spoil(path: &Path, junk: Junk) -> Vec<u8> {
    let good = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bad = match junk {
        Junk::Garbage => b"\x00\xff\xfe not json {{{\n".to_vec(),
        Junk::Truncated => good[..good.len() / 2].to_vec(),
        Junk::Empty => Vec::new(),
        Junk::Future => br#"{"v":99}"#.to_vec(),
    };
    fs::write(path, &bad).unwrap();
    bad
}

/// What each command must do facing the broken file.
enum Expect {
    /// Exit 1, the error naming the file.
    Refuse,
    /// Exit 0 with one stderr line naming the file (a hook).
    HookLine,
    /// Exit 0 with at most one stderr line (a hook that does not need the file).
    Hook,
    /// Either goes on without it (exit 0, a stderr line naming it, a JSON document on
    /// stdout) or refuses naming it.
    SkipOrRefuse,
}

fn check_corrupt(
    kind: &str,
    file: impl Fn(&Full) -> PathBuf,
    cases: impl Fn(&Full) -> Vec<(Vec<String>, Option<Vec<u8>>, Vec<(String, String)>, Expect)>,
) {
    for junk in JUNK {
        let full = full_state();
        let env = &full.env;
        let doctor = env.run(&["doctor"]);
        assert!(doctor.ok(), "doctor on a healthy state: {doctor:?}");
        let path = file(&full);
        let bad = spoil(&path, junk);
        let shown = path.to_str().unwrap();
        let what = format!("{kind} {junk:?}");
        for (args, stdin, vars, expect) in cases(&full) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = env.cmd(&args);
            cmd.envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let out = output(cmd, stdin.as_deref());
            let named = out.stderr.contains(shown);
            match expect {
                Expect::Refuse => {
                    assert_eq!(out.code, Some(1), "{what}: {args:?}: {out:?}");
                    assert!(named, "{what}: {args:?} must name {shown}: {out:?}");
                }
                Expect::HookLine => {
                    assert_eq!(out.code, Some(0), "{what}: {args:?}: {out:?}");
                    assert_eq!(out.stderr_lines().len(), 1, "{what}: {args:?}: {out:?}");
                    assert!(named, "{what}: {args:?} must name {shown}: {out:?}");
                }
                Expect::Hook => {
                    assert_eq!(out.code, Some(0), "{what}: {args:?}: {out:?}");
                    assert!(out.stderr_lines().len() <= 1, "{what}: {args:?}: {out:?}");
                }
                Expect::SkipOrRefuse => {
                    assert!(named, "{what}: {args:?} must name {shown}: {out:?}");
                    match out.code {
                        Some(0) => {
                            serde_json::from_str::<Value>(&out.stdout).unwrap();
                        }
                        Some(1) => {}
                        _ => panic!("{what}: {args:?}: {out:?}"),
                    }
                }
            }
            if matches!(junk, Junk::Future)
                && (matches!(expect, Expect::Refuse | Expect::HookLine) || out.code == Some(1))
            {
                assert!(out.stderr.contains("newer clawsess"), "{what}: {args:?}: {out:?}");
            }
            assert_eq!(fs::read(&path).unwrap(), bad, "{what}: {args:?} overwrote {shown}");
        }
        // Any other session's hook still works.
        let out = env.run_stdin(&["hook", "session-start"], &env.start_input(&sid(77)));
        assert!(out.ok() && out.stderr_lines().len() <= 1, "{what}: {out:?}");
        // doctor names the file and says how to recover.
        let doctor = env.run(&["doctor"]);
        assert_eq!(doctor.code, Some(1), "{what}: {doctor:?}");
        assert!(doctor.stdout.contains(shown), "{what}: {doctor:?}");
        assert!(doctor.stdout.contains("mv "), "{what}: {doctor:?}");
        assert_eq!(fs::read(&path).unwrap(), bad, "{what}: doctor overwrote {shown}");
        // Following that advice recovers.
        fs::rename(&path, path.with_extension("json.broken")).unwrap();
        let doctor = env.run(&["doctor"]);
        assert!(doctor.ok(), "{what}: after mv: {doctor:?}");
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn pid_var() -> Vec<(String, String)> {
    vec![("CLAUDE_PID".into(), std::process::id().to_string())]
}

#[test]
fn a_corrupt_session_record_is_named_and_never_overwritten() {
    check_corrupt(
        "sessions/S1",
        |f| f.env.state().join("sessions").join(format!("{}.json", f.s1)),
        |f| {
            let input = Some(f.env.start_input(&f.s1));
            vec![
                (strings(&["attach", &f.s1, "--key", "k2"]), None, vec![], Expect::Refuse),
                (strings(&["name", &f.s1, "beta"]), None, vec![], Expect::Refuse),
                (strings(&["show", &f.s1]), None, vec![], Expect::Refuse),
                (
                    strings(&["run", "--session", &f.s1, "--claude", &f.claude, "--", "x"]),
                    None,
                    vec![],
                    Expect::Refuse,
                ),
                (strings(&["list", "--json"]), None, vec![], Expect::SkipOrRefuse),
                (strings(&["hook", "session-start"]), input.clone(), vec![], Expect::HookLine),
            ]
        },
    );
}

#[test]
fn a_corrupt_key_file_is_named_and_never_overwritten() {
    check_corrupt(
        "keys/k",
        |f| f.env.hashed_file("keys", "k"),
        |f| {
            vec![
                (strings(&["current", "--key", "k"]), None, vec![], Expect::Refuse),
                (strings(&["attach", &f.s2, "--key", "k"]), None, vec![], Expect::Refuse),
                (strings(&["detach", "--key", "k"]), None, vec![], Expect::Refuse),
                (strings(&["forget", "--key", "k"]), None, vec![], Expect::Refuse),
                (
                    strings(&["run", "--key", "k", "--claude", &f.claude, "--", "x"]),
                    None,
                    vec![],
                    Expect::Refuse,
                ),
                (strings(&["list", "--json"]), None, vec![], Expect::SkipOrRefuse),
            ]
        },
    );
}

#[test]
fn a_corrupt_global_attachment_is_named_and_never_overwritten() {
    check_corrupt(
        "global.json",
        |f| f.env.state().join("global.json"),
        |f| {
            vec![
                (strings(&["current", "--key", "other"]), None, vec![], Expect::Refuse),
                (strings(&["attach", &f.s1]), None, vec![], Expect::Refuse),
                (strings(&["detach"]), None, vec![], Expect::Refuse),
                (
                    strings(&["run", "--key", "other", "--claude", &f.claude, "--", "x"]),
                    None,
                    vec![],
                    Expect::Refuse,
                ),
                (strings(&["list", "--json"]), None, vec![], Expect::SkipOrRefuse),
            ]
        },
    );
}

#[test]
fn a_corrupt_name_is_named_and_never_overwritten() {
    check_corrupt(
        "names/alpha",
        |f| f.env.hashed_file("names", "alpha"),
        |f| {
            vec![
                (strings(&["name", &f.s2, "alpha"]), None, vec![], Expect::Refuse),
                (strings(&["attach", "alpha", "--key", "z"]), None, vec![], Expect::Refuse),
                (strings(&["show", "alpha"]), None, vec![], Expect::Refuse),
                // Renaming S1 away from alpha must not delete the broken file either.
                (strings(&["name", &f.s1, "gamma"]), None, vec![], Expect::Refuse),
            ]
        },
    );
}

#[test]
fn a_corrupt_turn_log_is_named_and_never_overwritten() {
    check_corrupt(
        "turns/S1",
        |f| f.env.state().join("turns").join(format!("{}.json", f.s1)),
        |f| {
            let input = Some(f.env.start_input(&f.s1));
            vec![
                // Claude has answered by the time the log is written: the reply is printed,
                // the broken file named on stderr (and in `record_error`).
                (
                    strings(&["run", "--json", "--session", &f.s1, "--claude", &f.claude, "--", "x"]),
                    None,
                    vec![],
                    Expect::SkipOrRefuse,
                ),
                (strings(&["hook", "session-start"]), input.clone(), pid_var(), Expect::HookLine),
                (strings(&["hook", "prompt-submit"]), input.clone(), pid_var(), Expect::HookLine),
                (strings(&["hook", "stop"]), input.clone(), pid_var(), Expect::Hook),
            ]
        },
    );
}

#[test]
fn a_corrupt_busy_marker_is_named_and_never_overwritten() {
    check_corrupt(
        "busy/S1",
        |f| f.env.state().join("busy").join(format!("{}.json", f.s1)),
        |f| {
            let input = Some(f.env.start_input(&f.s1));
            vec![
                (
                    strings(&["run", "--session", &f.s1, "--wait", "0", "--claude", &f.claude, "--", "x"]),
                    None,
                    vec![],
                    Expect::Refuse,
                ),
                (strings(&["hook", "prompt-submit"]), input.clone(), pid_var(), Expect::HookLine),
                (strings(&["hook", "stop"]), input.clone(), pid_var(), Expect::HookLine),
                (strings(&["hook", "session-end"]), input.clone(), pid_var(), Expect::HookLine),
                (strings(&["list", "--json"]), None, vec![], Expect::SkipOrRefuse),
            ]
        },
    );
}

// ---------------------------------------------------------------------------------------
// 6. Hostile input.
// ---------------------------------------------------------------------------------------

/// Every path under the test's root outside the state dir, with its bytes (files) or
/// nothing (dirs).
fn outside_state(env: &Env) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    walk(env.root())
        .into_iter()
        .filter(|p| !p.starts_with(env.state()))
        .map(|p| {
            let bytes = p.is_file().then(|| fs::read(&p).unwrap());
            (p, bytes)
        })
        .collect()
}

#[test]
fn hostile_hook_input_exits_0_with_one_line_and_writes_nothing() {
    let env = Env::new();
    let mut noise = vec![0u8; 10 * 1024 * 1024];
    let mut rng = Rng::seeded("hook noise");
    for chunk in noise.chunks_mut(8) {
        let r = rng.next().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let proj = env.proj();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("junk", b"\x00\x01 hello {{{ not json".to_vec()),
        ("10 MB of noise", noise),
        ("deep nesting", deep.into_bytes()),
        ("an array", b"[1,2,3]".to_vec()),
        ("null", b"null".to_vec()),
        ("a string", br#""session_id""#.to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("a numeric id", br#"{"session_id": 5, "cwd": "/"}"#.to_vec()),
        ("an id list", br#"{"session_id": ["a"], "cwd": "/"}"#.to_vec()),
        ("truncated", br#"{"session_id": "00000001-0000-4000-8000-0000000"#.to_vec()),
        ("a path id", json!({"session_id": "../../x", "cwd": proj}).to_string().into_bytes()),
        ("a flag id", json!({"session_id": "-rf", "cwd": proj}).to_string().into_bytes()),
        (
            "a long flag id",
            json!({"session_id": "--dangerously-skip-permissions", "cwd": proj}).to_string().into_bytes(),
        ),
        ("a non-UUID id", json!({"session_id": "abc", "cwd": proj}).to_string().into_bytes()),
        (
            "a 36-char non-UUID",
            json!({"session_id": "../../../../../../../../../../tmp/xx", "cwd": proj})
                .to_string()
                .into_bytes(),
        ),
        ("no cwd", json!({"session_id": sid(1)}).to_string().into_bytes()),
        ("a relative cwd", json!({"session_id": sid(1), "cwd": "../.."}).to_string().into_bytes()),
    ];
    let before = outside_state(&env);
    for hook in ["session-start", "prompt-submit", "stop", "session-end"] {
        for (what, stdin) in &inputs {
            if what.contains("cwd") && hook != "session-start" {
                continue; // only session-start needs a cwd
            }
            let t = Instant::now();
            let out = env.run_stdin(&["hook", hook], stdin);
            assert!(t.elapsed() < GENEROUS);
            assert_eq!(out.code, Some(0), "{hook} with {what}: {out:?}");
            assert!(out.stdout.is_empty(), "{hook} with {what}: {out:?}");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{hook} with {what}: one line on stderr: {out:?}");
            assert!(lines[0].starts_with(&format!("clawsess hook {hook}: ")), "{out:?}");
            assert!(lines[0].len() < 1000, "{hook} with {what}: a short line: {out:?}");
        }
        // Empty input is Claude Code sending nothing: no error, nothing done.
        for stdin in [&b""[..], b"  \n"] {
            let out = env.run_stdin(&["hook", hook], stdin);
            assert!(out.ok() && out.stdout.is_empty(), "{out:?}");
            assert!(out.stderr_lines().len() <= 1, "{out:?}");
        }
    }
    assert_eq!(outside_state(&env), before, "a hook wrote outside the state dir");
    assert!(walk(&env.state().join("sessions")).is_empty());
    assert!(env.list().is_empty());
}

#[test]
fn keys_and_names_outside_the_documented_set_are_refused_clearly() {
    let env = Env::new();
    let s = sid(1);
    env.start(&s);
    let long = "k".repeat(201);
    let bad_keys =
        ["a b", "a\nb", "../x", "x/../y", "./x", "..", "-rf", "--help", "ü", "a;b", "a\tb", "", &long];
    for key in bad_keys {
        for args in [
            vec!["attach", s.as_str(), "--key", key],
            vec!["current", "--key", key],
            vec!["detach", "--key", key],
            vec!["forget", "--key", key],
            vec!["run", "--key", key, "--claude", "/bin/false", "--", "hi"],
        ] {
            // `--key=VALUE` so that values starting with '-' reach clawsess's own check.
            let flag = format!("--key={key}");
            let mut args: Vec<&str> = args.iter().filter(|a| **a != key && **a != "--key").copied().collect();
            args.insert(1, &flag);
            let out = env.run(&args);
            assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
            assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{args:?}: one clear line: {out:?}");
            assert!(lines[0].starts_with("clawsess: ") && lines[0].contains("key"), "{args:?}: {out:?}");
        }
    }
    let bad_names = ["a/b", "..", ".", "a b", "a\nb", "-x", "ü", "", &long];
    for name in bad_names {
        let out = env.run(&["name", &s, "--", name]);
        assert_eq!(out.code, Some(1), "{name:?}: {out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{name:?}: {out:?}");
        assert!(lines[0].starts_with("clawsess: ") && lines[0].contains("name"), "{name:?}: {out:?}");
    }
    assert!(walk(&env.state().join("keys")).is_empty(), "{:?}", walk(&env.state().join("keys")));
    assert!(walk(&env.state().join("names")).is_empty());
    // The longest allowed key works.
    let longest = "k".repeat(200);
    assert!(env.run(&["attach", &s, "--key", &longest]).ok());
    assert_eq!(env.current(&longest), Some(s.clone()));
}

#[test]
fn prompts_that_look_like_flags_reach_claude_as_text_on_stdin() {
    // As text in the stream-json user message on claude's stdin, never as arguments.
    let env = Env::new();
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let s = sid(1);
    env.start(&s);
    let driver = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"];
    let want_argv = [&driver[..], &["--resume", s.as_str()]].concat();
    let prompts: [&[&str]; 5] = [
        &["--help"],
        &["-rf"],
        &["--resume", "../../etc/passwd"],
        &["-A", "--dangerously-skip-permissions"],
        &["--", "--version"],
    ];
    for words in prompts {
        let mut args = vec!["run", "--session", &s, "--claude", claude, "--"];
        args.extend_from_slice(words);
        let out = env.run(&args);
        assert!(out.ok(), "{args:?}: {out:?}");
        let (argv, stdin) = env.stand_in_calls().pop().unwrap();
        assert_eq!(stdin, words.join(" "), "the prompt arrives on stdin");
        assert_eq!(argv, want_argv, "{words:?}");
    }
    // From clawsess's own stdin too.
    let out = env.run_stdin(&["run", "--session", &s, "--claude", claude], b"--help\n-rf\n");
    assert!(out.ok(), "{out:?}");
    let (argv, stdin) = env.stand_in_calls().pop().unwrap();
    assert_eq!(stdin, "--help\n-rf\n");
    assert_eq!(argv, want_argv);
    // A session argument that is not a recorded session never reaches claude.
    let calls = env.stand_in_calls().len();
    for bad in ["-rf", "../../x", "--help"] {
        let out = env.run(&["run", &format!("--session={bad}"), "--claude", claude, "--", "hi"]);
        assert_eq!(out.code, Some(1), "{bad}: {out:?}");
    }
    assert_eq!(env.stand_in_calls().len(), calls);
}

#[test]
fn a_symlinked_or_unparsable_settings_json_is_handled_without_damage() {
    let env = Env::new();
    let settings = env.claude_dir().join("settings.json");
    let dotfiles = env.root().join("dotfiles");
    fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("claude-settings.json");
    let original = "{\n  \"model\": \"opus\",\n  \"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"notify-send done\"}]}]}\n}\n";
    fs::write(&target, original).unwrap();
    std::os::unix::fs::symlink(&target, &settings).unwrap();

    let out = env.run(&["install"]);
    assert!(out.ok(), "{out:?}");
    assert!(settings.is_symlink(), "install replaced the symlink with a file");
    let installed: Value = serde_json::from_str(&fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(installed["model"], "opus");
    let text = installed.to_string();
    assert!(text.contains("notify-send done") && text.contains("hook session-start"), "{text}");
    let out = env.run(&["uninstall"]);
    assert!(out.ok(), "{out:?}");
    assert!(settings.is_symlink());
    let back: Value = serde_json::from_str(&fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(back, serde_json::from_str::<Value>(original).unwrap());

    // A dangling symlink stays a symlink, whatever install makes of it.
    fs::remove_file(&settings).unwrap();
    let nowhere = env.root().join("nowhere/settings.json");
    std::os::unix::fs::symlink(&nowhere, &settings).unwrap();
    let out = env.run(&["install"]);
    assert!(settings.is_symlink(), "{out:?}");
    if out.ok() {
        serde_json::from_str::<Value>(&fs::read_to_string(&nowhere).unwrap()).unwrap();
    }

    // A settings.json that does not parse is left exactly as it is.
    fs::remove_file(&settings).unwrap();
    let broken = "{ \"model\": \"opus\", // a comment\n";
    fs::write(&settings, broken).unwrap();
    let listing = fs::read_dir(env.claude_dir()).unwrap().count();
    let out = env.run(&["install"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(settings.to_str().unwrap()) && out.stderr.contains("parse"), "{out:?}");
    assert_eq!(fs::read_to_string(&settings).unwrap(), broken);
    assert_eq!(fs::read_dir(env.claude_dir()).unwrap().count(), listing, "no backup, no temp file");
    let out = env.run(&["uninstall"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(fs::read_to_string(&settings).unwrap(), broken);
    // The hooks themselves never read settings.json.
    env.start(&sid(1));
}

// ---------------------------------------------------------------------------------------
// 7. Privacy.
// ---------------------------------------------------------------------------------------

#[test]
fn state_is_private_under_a_permissive_umask_and_transcripts_are_only_read() {
    let mut env = Env::new();
    env.umask_zero = true;
    let env_file = env.root().join("claude-env");
    env.vars.push(("CLAUDE_ENV_FILE".into(), env_file.to_str().unwrap().into()));
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let (s1, s2) = (sid(1), sid(2));
    env.start(&s1);
    env.start(&s2);
    let secret = "SECRET-7f3a9c-transcript-only";
    let transcript = env.transcript(&s1, secret);
    let transcript_before = fs::read(&transcript).unwrap();
    let mtime = fs::metadata(&transcript).unwrap().modified().unwrap();
    let steps: Vec<Vec<&str>> = vec![
        vec!["attach", &s1, "--key", "k"],
        vec!["attach", &s1],
        vec!["name", &s1, "private"],
        vec!["show", &s1],
        vec!["show", &s1, "--json"],
        vec!["list"],
        vec!["current", "--key", "k", "--json"],
        vec!["run", "--session", &s2, "--claude", claude, "--", "other"],
        vec!["run", "--key", "fresh", "--claude", claude, "--", "new"],
    ];
    for args in steps {
        let out = env.run(&args);
        assert!(out.ok(), "{args:?}: {out:?}");
    }
    let out = env.run(&["show", &s1]);
    assert!(out.stdout.contains(secret), "show reads the transcript: {out:?}");
    // A claude process that started after the runs above (so it is not behind them).
    let mut claude_now = Command::new("sleep").arg("30").spawn().unwrap();
    let mut hook = env.cmd(&["hook", "prompt-submit"]);
    hook.env("CLAUDE_PID", claude_now.id().to_string());
    let submitted = output(hook, Some(&env.start_input(&s2)));
    assert!(submitted.ok(), "{submitted:?}");
    assert!(env.state().join("busy").join(format!("{s2}.json")).exists());
    claude_now.kill().unwrap();
    claude_now.wait().unwrap();

    let mut checked = 0;
    for path in std::iter::once(env.state()).chain(walk(&env.state())) {
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            let bytes = fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "{} holds transcript text",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 15, "{checked}");
    let mode = fs::metadata(&env_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "CLAUDE_ENV_FILE");
    assert_eq!(fs::read(&transcript).unwrap(), transcript_before);
    assert_eq!(fs::metadata(&transcript).unwrap().modified().unwrap(), mtime);
    let copies: Vec<PathBuf> = walk(env.root())
        .into_iter()
        .filter(|p| p.is_file() && p != &transcript && !p.starts_with(env.standin_dir()))
        .filter(|p| String::from_utf8_lossy(&fs::read(p).unwrap()).contains(secret))
        .collect();
    assert!(copies.is_empty(), "transcript text copied to {copies:?}");
}
