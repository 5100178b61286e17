//! 6. Hostile input.

use super::*;

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
