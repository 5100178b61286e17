//! 7. Privacy.

use super::*;

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
