//! The test command (test.sh), with a stand-in cargo.

use super::*;

/// `./test.sh` with a stand-in `cargo`, `node` and `npm` and the shell tools it uses as the
/// whole PATH (so no tmux, no python3); `cargo` prints `first` for the first phase, `oldest`
/// for the oldest-version one, and exits with `first_rc` / 0. Returns the output and the cargo
/// calls (one line of arguments each).
fn test_sh(first: &str, first_rc: i32, oldest: &str) -> (std::process::Output, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::create_dir_all(dir.path().join("src/claude")).unwrap();
    fs::copy(root.join("test.sh"), dir.path().join("test.sh")).unwrap();
    fs::copy(root.join("src/claude/versions.rs"), dir.path().join("src/claude/versions.rs")).unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(dir.path().join("first.out"), first).unwrap();
    fs::write(dir.path().join("oldest.out"), oldest).unwrap();
    let cargo = format!(
        "#!/bin/sh\necho \"$*\" >> '{d}/calls'\nif [ -n \"$CLAWSESS_TEST_CLAUDE_VERSION\" ]; then cat '{d}/oldest.out'; exit 0; fi\ncat '{d}/first.out'\nexit {first_rc}\n",
        d = dir.path().display()
    );
    for (name, text) in [("cargo", cargo.as_str()), ("node", "#!/bin/sh\n"), ("npm", "#!/bin/sh\n")] {
        fs::write(bin.join(name), text).unwrap();
        fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    for tool in ["bash", "sh", "sed", "awk", "mktemp", "tee", "env", "cat", "rm", "dirname"] {
        let path = which::which(tool).unwrap_or_else(|_| panic!("{tool} on PATH"));
        std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
    }
    let out = std::process::Command::new("bash")
        .arg(dir.path().join("test.sh"))
        .arg("--test")
        .arg("cli")
        .env("PATH", &bin)
        .env_remove("CLAWSESS_TEST_PYTHON")
        .output()
        .unwrap();
    let calls =
        fs::read_to_string(dir.path().join("calls")).unwrap_or_default().lines().map(str::to_owned).collect();
    (out, calls)
}

#[test]
fn the_test_command_runs_every_phase_after_a_failure_and_ends_with_the_sum() {
    let first = "     Running unittests src/lib.rs (target/debug/deps/clawsess-1)\n\
                 test result: ok. 10 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                 \x20    Running tests/cli.rs (target/debug/deps/cli-2)\n\
                 test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                 \x20    Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                 test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9s\n\
                 \x20  Doc-tests clawsess\n\
                 test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s\n";
    let oldest = "     Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                  test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9s\n";
    let (out, calls) = test_sh(first, 101, oldest);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("30 passed, 1 failed, 3 skipped"), "{stdout}");
    assert_eq!(calls.len(), 2, "the oldest-version phase ran after the failure: {calls:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tmux is not on PATH: the interactive-terminal tests will fail"), "{stderr}");
    assert!(calls[0].contains("--no-fail-fast") && calls[0].ends_with("--test cli"), "{calls:?}");
    assert!(calls[1].contains("--no-fail-fast") && calls[1].contains("--test e2e_bot"), "{calls:?}");
}

#[test]
fn the_test_command_counts_a_crashed_or_unbuilt_test_binary_as_a_failure() {
    // A binary that started and printed no result (killed, aborted).
    let crashed = "     Running tests/cli.rs (target/debug/deps/cli-2)\n\
                   test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                   \x20    Running tests/e2e.rs (target/debug/deps/e2e-3)\n\
                   running 7 tests\n";
    let (out, _) = test_sh(crashed, 101, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout.lines().last(), Some("5 passed, 1 failed, 0 skipped"), "{stdout}");
    // A build error: no binary ran at all.
    let (out, _) = test_sh("error[E0425]: cannot find value `x` in this scope\n", 101, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("0 passed, 1 failed, 0 skipped"));
    // All green: exit 0.
    let ok = "     Running tests/cli.rs (target/debug/deps/cli-2)\n\
              test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s\n";
    let (out, _) = test_sh(ok, 0, ok);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("10 passed, 0 failed, 0 skipped"));
}
