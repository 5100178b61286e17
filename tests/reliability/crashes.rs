//! 2. Crash safety: writers SIGKILLed at random instants.

use super::*;

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
