//! 1. Many processes at once: every acknowledged change lands, exactly once.

use super::*;

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
