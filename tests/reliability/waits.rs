//! 3. Bounded waits.

use super::*;

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
