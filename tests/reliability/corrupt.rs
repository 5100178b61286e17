//! 5. Corrupt or foreign state: named, never overwritten, doctor says how to recover.

use super::*;

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
