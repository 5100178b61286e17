//! 4. Disk trouble: a write that fails keeps the previous state.

use super::*;

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
