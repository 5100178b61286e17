//! Regressions from a hostile pass over v1 (issue 9): each test failed before its fix.
//! Numbers in the names' comments are the issue's items.
//!
//! The world is the reliability suite's (`tests/support/testenv.rs`): the real binary, a temp
//! HOME and state dir, and the stand-in `claude` (tests/fixtures/fake_claude.py); `STANDIN_HOLD` makes that claude
//! wait for the test's release, so nothing here depends on how fast a process starts.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::testenv::*;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

impl Env {
    fn run_key(&self, key: &str, extra: &[&str], prompt: &str) -> Out {
        let claude = self.stand_in();
        let mut args = vec!["run", "--claude", claude.to_str().unwrap(), "--key", key];
        args.extend_from_slice(extra);
        args.extend(["--", prompt]);
        self.run(&args)
    }

    fn spawn_held_run(&self, args: &[&str]) -> std::process::Child {
        let claude = self.stand_in();
        let mut all = vec!["run", "--claude", claude.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = self.cmd(&all);
        cmd.env("STANDIN_HOLD", self.hold_file());
        cmd.spawn().unwrap()
    }

    fn busy_marker(&self, id: &str, pid: u32, since: u64) {
        let dir = self.state().join("busy");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.join(format!("{id}.json")), json!({"v": 1, "pid": pid, "since": since}).to_string())
            .unwrap();
    }

    fn transcript_of(&self, id: &str) -> std::path::PathBuf {
        self.root().join("transcripts").join(format!("{id}.jsonl"))
    }
}

/// A process that lives until the guard drops (a terminal's claude, for busy markers).
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start() -> Self {
        Sleeper(Command::new("sleep").arg("1000").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// 1 ---------------------------------------------------------------------------------------

#[test]
fn turns_routed_through_an_attachment_never_become_a_keys_own_session() {
    let env = Env::new();
    env.start(&sid(1));
    assert!(env.run_key("telegram:A", &[], "a's own").ok());
    assert!(env.run_key("telegram:B", &[], "b's own").ok());
    let (own_a, own_b) = (env.current("telegram:A").unwrap(), env.current("telegram:B").unwrap());
    assert_ne!(own_a, own_b);

    // Through the global attachment both chats talk to the person's session...
    assert!(env.run(&["attach", &sid(1)]).ok());
    assert!(env.run_key("telegram:A", &[], "a via global").ok());
    assert!(env.run_key("telegram:B", &[], "b via global").ok());
    // ...and after detach each is back on its own conversation.
    assert!(env.run(&["detach"]).ok());
    assert_eq!(env.current("telegram:A").unwrap(), own_a);
    assert_eq!(env.current("telegram:B").unwrap(), own_b);

    // `detach --key` while the key's turn runs does not make the attached session its own.
    assert!(env.run(&["attach", &sid(1), "--key", "telegram:A"]).ok());
    let run = env.spawn_held_run(&["--key", "telegram:A", "--", "held"]);
    wait_until(GENEROUS, "the held run's claude to start", || started_count(&env) >= 5);
    assert!(env.run(&["detach", "--key", "telegram:A"]).ok());
    env.release();
    assert!(finish(run).ok());
    assert_eq!(env.current("telegram:A").unwrap(), own_a);

    // `run --new` under a global attachment starts over for good, not for one message.
    assert!(env.run(&["attach", &sid(1)]).ok());
    let out = env.run_key("telegram:B", &["--new"], "fresh start");
    assert!(out.ok(), "{out:?}");
    let fresh = env.current("telegram:B").unwrap();
    assert!(![own_b.as_str(), &sid(1)].contains(&fresh.as_str()), "{fresh}");
    assert!(env.run_key("telegram:B", &[], "and on").ok());
    assert_eq!(env.current("telegram:B").unwrap(), fresh);
    let last = env.stand_in_calls().pop().unwrap();
    assert!(last.0.contains(&fresh), "the next message went to the new session: {last:?}");
}

// 2 ---------------------------------------------------------------------------------------

#[test]
fn a_stale_terminal_marker_stays_stale_after_a_run_writes_the_transcript() {
    let env = Env::new();
    let id = sid(2);
    env.start(&id);
    let terminal = Sleeper::start();
    // An interrupted terminal turn (no Stop) 20 minutes ago; the terminal is still open.
    env.busy_marker(&id, terminal.pid(), now_ms() - 20 * 60_000);
    backdate(&env.transcript_of(&id), 20 * 60);
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    for prompt in ["first after the quiet", "second", "third"] {
        let out = env.run(&["run", "--session", &id, "--claude", claude, "--wait", "0", "--", prompt]);
        assert!(out.ok(), "{prompt}: {out:?}");
        // What claude wrote during the turn: the transcript is fresh again.
        let mut t = fs::OpenOptions::new().append(true).open(env.transcript_of(&id)).unwrap();
        std::io::Write::write_all(&mut t, b"{}\n").unwrap();
    }
}

// 3 ---------------------------------------------------------------------------------------

#[test]
fn a_sigkilled_run_its_parent_has_not_reaped_still_holds_the_session_while_its_claude_lives() {
    let env = Env::new();
    let id = sid(3);
    env.start(&id);
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();
    let mut cmd = env.cmd(&["run", "--session", &id, "--claude", claude, "--", "doomed"]);
    cmd.env("STANDIN_HOLD", env.hold_file()).env("STANDIN_IGNORE_TERM", "1");
    let mut doomed = cmd.spawn().unwrap();
    wait_until(GENEROUS, "the stand-in to start", || started_count(&env) == 1);
    // SIGKILL, and do not reap: the run is a zombie, its claude finishing.
    unsafe { libc::kill(doomed.id() as i32, libc::SIGKILL) };
    wait_until(GENEROUS, "the run to die", || {
        fs::read_to_string(format!("/proc/{}/stat", doomed.id())).is_ok_and(|s| s.contains(") Z "))
    });
    let busy = env.run(&["run", "--session", &id, "--claude", claude, "--wait", "0", "--", "too early"]);
    assert_eq!(busy.code, Some(75), "{busy:?}");
    assert!(busy.stderr.contains("still finishing"), "{busy:?}");
    assert!(!list_row(&env, &id)["busy"].is_null(), "list shows it busy");
    env.release();
    doomed.wait().unwrap();
    let next = env.run(&["run", "--session", &id, "--claude", claude, "--wait", "30", "--", "after"]);
    assert!(next.ok(), "{next:?}");
}

fn list_row(env: &Env, id: &str) -> Value {
    env.list().into_iter().find(|r| r["session_id"] == id).unwrap()
}

// 4 ---------------------------------------------------------------------------------------

#[test]
fn a_prompt_too_large_to_read_is_not_let_through_a_session_a_run_holds() {
    let env = Env::new();
    let id = sid(4);
    env.start(&id);
    let big = "x".repeat(5 * 1024 * 1024);
    let input = |with_id: bool| {
        let mut v = json!({"cwd": env.proj(), "hook_event_name": "UserPromptSubmit", "prompt": big});
        if with_id {
            v = json!({"session_id": id, "cwd": env.proj(), "prompt": big});
        }
        v.to_string().into_bytes()
    };
    let me = std::process::id().to_string();
    let submit = |bytes: &[u8]| {
        let mut cmd = env.cmd(&["hook", "prompt-submit"]);
        cmd.env("CLAUDE_PID", &me).env("CLAWSESS_TURN_WAIT", "0");
        output(cmd, Some(bytes))
    };
    // Nobody holds the session: the prompt goes on.
    let free = submit(&input(true));
    assert_eq!(free.code, Some(0), "{free:?}");
    let mut stop = env.cmd(&["hook", "stop"]);
    stop.env("CLAUDE_PID", &me);
    assert!(output(stop, Some(json!({"session_id": id}).to_string().as_bytes())).ok());

    let run = env.spawn_held_run(&["--session", &id, "--", "a bot turn"]);
    wait_until(GENEROUS, "the run's claude to start", || started_count(&env) == 1);
    let refused = submit(&input(true));
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("clawsess run"), "{refused:?}");
    // Without a session id in reach: refused rather than risk a fork.
    let refused = submit(&input(false));
    assert_eq!(refused.code, Some(2), "{refused:?}");
    env.release();
    assert!(finish(run).ok());
}

// 5 ---------------------------------------------------------------------------------------

#[test]
fn import_leaves_the_store_lock_free_between_short_pieces() {
    let env = Env::new();
    let n = 1500;
    let project = env.claude_dir().join("projects").join("-proj");
    fs::create_dir_all(&project).unwrap();
    for i in 0..n {
        let line = json!({"type": "user", "cwd": env.proj(), "timestamp": "2026-01-01T00:00:00Z"});
        fs::write(project.join(format!("{}.jsonl", sid(1000 + i))), format!("{line}\n")).unwrap();
    }
    let sessions = env.state().join("sessions");
    let count = || fs::read_dir(&sessions).map(|d| d.count()).unwrap_or(0);
    // A barrier, not a race: the test holds the store lock before import starts and takes it
    // back (blocking) after each release. An import that keeps the lock from its first record
    // to its last can only be met again when it is done; one that works in short pieces is met
    // between two of them, and cannot finish while the test holds the lock.
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    fs::DirBuilder::new().mode(0o700).create(env.state()).unwrap();
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(env.state().join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let import = env.spawn(&["import"]);
    let mut free_while_importing = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        lock.unlock().unwrap();
        lock.lock().unwrap();
        let written = count();
        if written > 0 {
            free_while_importing = written < n as usize;
            break;
        }
    }
    lock.unlock().unwrap();
    let out = finish(import);
    assert!(out.ok(), "{out:?}");
    assert!(free_while_importing, "import held the store lock from its first record to its last");
    assert_eq!(count(), n as usize);
}

// 6 ---------------------------------------------------------------------------------------

#[test]
fn a_state_dir_others_can_write_is_refused_and_a_planted_lock_link_is_not_followed() {
    let env = Env::new();
    let id = sid(6);
    let victim = env.root().join("victim.txt");
    fs::write(&victim, "precious").unwrap();
    let run_dir = env.state().join("run");
    fs::create_dir_all(&run_dir).unwrap();
    std::os::unix::fs::symlink(&victim, run_dir.join(format!("{id}.lock"))).unwrap();
    fs::set_permissions(env.state(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o777)).unwrap();
    env.transcript(&id, "t");
    let claude = env.stand_in();
    let claude = claude.to_str().unwrap();

    for args in [vec!["list"], vec!["current"], vec!["run", "--claude", claude, "--session", &id, "--", "hi"]]
    {
        let out = env.run(&args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains("refusing the state dir") && out.stderr.contains("chmod 700"), "{out:?}");
    }
    let doctor = env.run(&["doctor"]);
    assert!(doctor.stdout.contains("FAIL state dir"), "{doctor:?}");
    // The hooks say so in one line and let Claude Code go on.
    let hook = env.run_stdin(&["hook", "session-start"], &env.start_input(&id));
    assert_eq!(hook.code, Some(0), "{hook:?}");
    assert!(hook.stderr.contains("refusing the state dir"), "{hook:?}");

    // Private again, but the planted link is still there: not followed, not truncated.
    fs::set_permissions(env.state(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    env.start(&id);
    let out = env.run(&["run", "--session", &id, "--claude", claude, "--", "hi"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("lock file"), "{out:?}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");

    // A dir owned by someone else is refused too.
    let other = env.root().join("other-state");
    fs::create_dir(&other).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o700)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
        let mut cmd = env.cmd(&["list"]);
        cmd.env("CLAWSESS_HOME", &other);
        let out = output(cmd, None);
        assert!(out.stderr.contains("belongs to uid 65534"), "{out:?}");
    }
}

// 9 ---------------------------------------------------------------------------------------

#[test]
fn terminal_escapes_from_chats_and_dir_names_are_shown_escaped_and_json_keeps_them() {
    let env = Env::new();
    let id = sid(9);
    let evil = "pwned\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;title\u{7}\u{1b}[2J";
    env.transcript(&id, evil);
    let dir = env.root().join(format!("dir{evil}"));
    fs::create_dir_all(&dir).unwrap();
    let input = json!({"session_id": id, "transcript_path": env.transcript_of(&id), "cwd": dir,
                       "source": "startup"});
    assert!(env.run_stdin(&["hook", "session-start"], input.to_string().as_bytes()).ok());
    for args in [vec!["show", &id], vec!["attach", &id], vec!["list"]] {
        let out = env.run(&args);
        assert!(out.ok(), "{args:?}: {out:?}");
        assert!(!out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'), "{args:?}: {out:?}");
        assert!(out.stdout.contains("\\u{1b}]52;c;"), "{args:?} shows it escaped: {out:?}");
    }
    let json = env.run(&["show", &id, "--json"]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v["messages"][0]["text"].as_str().unwrap().contains(evil), "--json is exact");
}

// 10 --------------------------------------------------------------------------------------

#[test]
fn a_closed_stdout_ends_quietly() {
    let env = Env::new();
    let id = sid(10);
    env.start(&id);
    let long: String = (0..2000).map(|i| format!("line {i} {}\n", "y".repeat(100))).collect();
    env.transcript(&id, &long);
    for n in 0..300 {
        env.start(&sid(2000 + n));
    }
    for cmd in [format!("{BIN} list | head -1"), format!("{BIN} show {id} -n 50 | head -c 10")] {
        let out =
            output(env.cmd_shell(&format!("{cmd} >/dev/null; echo \"status=${{PIPESTATUS[0]}}\"")), None);
        assert_eq!(out.stdout.trim(), "status=0", "{cmd}: {out:?}");
        assert!(out.stderr.is_empty(), "{cmd}: {out:?}");
    }
}

impl Env {
    /// `bash -c SCRIPT` with this env's environment.
    fn cmd_shell(&self, script: &str) -> Command {
        let base = self.cmd(&[]);
        let mut bash = Command::new("bash");
        bash.arg("-c").arg(script).env_clear();
        for (k, v) in base.get_envs() {
            if let Some(v) = v {
                bash.env(k, v);
            }
        }
        bash.current_dir(self.proj()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        bash
    }
}

// 11, 13, 14 ------------------------------------------------------------------------------

#[test]
fn numbers_out_of_range_are_clear_errors_and_json_failures_are_one_object() {
    let env = Env::new();
    env.start(&sid(11));
    for args in [
        vec!["run", "--wait", "1e19", "hi"],
        vec!["run", "--wait", "99999999999999999999", "hi"],
        vec!["run", "--idle-reset", "18446744073709552s", "hi"],
        vec!["show", &sid(11), "-n", "100000000000000000"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
        let mut json = args.clone();
        json.insert(1, "--json");
        let out = env.run(&json);
        assert_eq!(out.code, Some(2), "{json:?}: {out:?}");
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{json:?} ({e}): {out:?}"));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // Failures of --json commands: exactly one object, the usual exit code.
    for args in [
        vec!["attach", "nope", "--json"],
        vec!["show", "nope", "--json"],
        vec!["detach", "--key", "bad key", "--json"],
        vec!["current", "--key", "telegram:9", "--json"],
        vec!["run", "--session", "nope", "--json", "hi"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?} ({e}): {out:?}"));
        assert!(v["error"].is_string(), "{args:?}: {v}");
    }
    // An empty CLAWSESS_IDLE_RESET counts as unset; a bad one is named.
    let claude = env.stand_in();
    let mut env = env;
    env.vars.push(("CLAWSESS_IDLE_RESET".into(), String::new()));
    let out = env.run(&["run", "--claude", claude.to_str().unwrap(), "--", "hi"]);
    assert!(out.ok(), "{out:?}");
    env.vars.pop();
    env.vars.push(("CLAWSESS_IDLE_RESET".into(), "soon".into()));
    let out = env.run(&["run", "--claude", claude.to_str().unwrap(), "--", "hi"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("CLAWSESS_IDLE_RESET"), "{out:?}");
}

// 12 --------------------------------------------------------------------------------------

#[test]
fn a_signal_to_run_exits_128_plus_its_number() {
    let env = Env::new();
    let id = sid(12);
    env.start(&id);
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130), (libc::SIGHUP, 129)] {
        let before = started_count(&env);
        let run = env.spawn_held_run(&["--session", &id, "--", "held"]);
        wait_until(GENEROUS, "the run's claude to start", || started_count(&env) > before);
        unsafe { libc::kill(run.id() as i32, sig) };
        let out = finish(run);
        assert_eq!(out.code, Some(code), "signal {sig}: {out:?}");
    }
}

// 15 --------------------------------------------------------------------------------------

#[test]
fn a_terminal_marker_from_the_future_does_not_hold_the_session() {
    let env = Env::new();
    let id = sid(15);
    env.start(&id);
    let terminal = Sleeper::start();
    env.busy_marker(&id, terminal.pid(), now_ms() + 86_400_000);
    backdate(&env.transcript_of(&id), 3600);
    let claude = env.stand_in();
    let out =
        env.run(&["run", "--session", &id, "--claude", claude.to_str().unwrap(), "--wait", "0", "--", "hi"]);
    assert!(out.ok(), "{out:?}");
}

// 16 --------------------------------------------------------------------------------------

#[test]
fn a_fifo_transcript_does_not_block_and_install_keeps_big_numbers_exact() {
    let env = Env::new();
    let id = sid(16);
    env.start(&id);
    let fifo = env.transcript_of(&id);
    fs::remove_file(&fifo).unwrap();
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut attach = env.cmd(&["attach", &id]);
    attach.env("NO_COLOR", "1");
    let child = attach.spawn().unwrap();
    let t = Instant::now();
    let out = finish(child);
    assert!(t.elapsed() < Duration::from_secs(30), "attach blocked on a FIFO");
    assert!(out.ok(), "{out:?}");

    let settings = env.claude_dir().join("settings.json");
    let text = r#"{"big": 123456789012345678901234567890, "exact": 0.1000000000000000055511151231257827}"#;
    fs::write(&settings, text).unwrap();
    assert!(env.run(&["install"]).ok());
    let after = fs::read_to_string(&settings).unwrap();
    assert!(after.contains("123456789012345678901234567890"), "{after}");
    assert!(after.contains("0.1000000000000000055511151231257827"), "{after}");
}

// Issue 20 ---------------------------------------------------------------------------------

#[test]
fn a_warm_max_that_is_no_number_is_a_clear_error_not_the_default() {
    let mut env = Env::new();
    let claude = env.stand_in();
    env.vars.push(("CLAWSESS_WARM_MAX".into(), "abc".into()));
    // A warm turn says why it runs cold; doctor fails on it.
    let out = env.run(&["run", "--claude", claude.to_str().unwrap(), "--warm", "5m", "--", "hi"]);
    assert!(out.stderr.contains("CLAWSESS_WARM_MAX=\"abc\""), "{out:?}");
    let out = env.run(&["doctor"]);
    assert!(out.stdout.contains("CLAWSESS_WARM_MAX=\"abc\""), "{out:?}");
}

/// `stop --key K` withdraws a run of K queued behind K's run in progress (waiting for the
/// key's lock), not only the one answering: else the queued turn ran as soon as the stopped
/// one ended.
#[test]
fn stop_of_a_key_withdraws_its_run_queued_behind_another_run_of_that_key() {
    let env = Env::new();
    let first = env.spawn_held_run(&["--key", "chat:Q", "--", "the long one"]);
    wait_until(GENEROUS, "the held run's claude to start", || started_count(&env) == 1);
    let log = env.root().join("queued.err");
    let mut queued = env.cmd(&[
        "run",
        "--claude",
        env.stand_in().to_str().unwrap(),
        "--key",
        "chat:Q",
        "--wait",
        "120",
        "--",
        "QUEUED behind it",
    ]);
    queued.stderr(fs::File::create(&log).unwrap());
    let mut queued = queued.spawn().unwrap();
    wait_until(GENEROUS, "the second run to queue", || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("waiting up to"))
    });
    let said = env.run(&["stop", "--key", "chat:Q"]);
    assert!(said.ok(), "{said:?}");
    assert!(said.stdout.contains("withdrew a turn of chat:Q queued"), "{said:?}");
    assert!(said.stdout.contains("chat:Q turn on session"), "the answering turn is stopped too: {said:?}");
    assert!(!queued.wait().unwrap().success(), "the withdrawn run failed");
    env.release();
    let _ = finish(first);
    assert!(
        env.stand_in_calls().iter().all(|(_, stdin)| !stdin.contains("QUEUED")),
        "a withdrawn turn reached claude: {:?}",
        env.stand_in_calls()
    );
    let idle = env.run(&["stop", "--key", "chat:Q"]);
    assert!(idle.stdout.contains("nothing is running for chat:Q"), "{idle:?}");
}

/// `stop` says what it did: a run that was killed while its claude still finishes is not
/// "interrupted" (that claude is ended, and stop says so); a session a terminal answers is not
/// one where "nothing is running".
#[test]
fn stop_says_what_it_did_for_a_killed_runs_claude_and_a_terminal_turn() {
    let env = Env::new();
    let id = sid(21);
    env.start(&id);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let mut claude = Sleeper::start();
    let note = json!({
        "key": "telegram:9",
        "pid": dead,
        "since": now_ms(),
        "child": claude.pid(),
        "child_start": clawsess::claude::process::start_time(claude.pid()),
    });
    let run_dir = env.state().join("run");
    fs::create_dir_all(&run_dir).unwrap();
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(run_dir.join(format!("{id}.lock")), note.to_string()).unwrap();
    let said = env.run(&["stop", &id]);
    assert!(said.ok(), "{said:?}");
    assert!(!said.stdout.contains("interrupted"), "{said:?}");
    assert!(said.stdout.contains(&format!("the claude it left (pid {})", claude.pid())), "{said:?}");
    let status = claude.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGTERM), "it was ended");
    fs::write(run_dir.join(format!("{id}.lock")), "").unwrap();

    let terminal = Sleeper::start();
    env.busy_marker(&id, terminal.pid(), now_ms());
    let said = env.run(&["stop", &id]);
    assert!(said.ok(), "{said:?}");
    assert!(!said.stdout.contains("nothing is running"), "{said:?}");
    assert!(
        said.stdout.contains(&format!("a turn of a terminal (claude pid {}) is in progress", terminal.pid())),
        "{said:?}"
    );
}

// Issue 18, item 4: a hook reads only what it needs -----------------------------------------

#[test]
fn hooks_that_need_no_config_never_read_it_and_a_claude_p_prompt_reads_it_only_when_behind() {
    let env = Env::new();
    let id = sid(18);
    env.start(&id);
    // A config file that does not parse: whoever reads it says so on stderr.
    let config = env.root().join("broken.toml");
    fs::write(&config, "turn_wait = [\n").unwrap();
    let me = std::process::id().to_string();
    let hook = |event: &str, entrypoint: &str, input: &Value| {
        let mut cmd = env.cmd(&["hook", event]);
        cmd.env("CLAUDE_PID", &me).env("CLAWSESS_CONFIG", &config).env("CLAUDE_CODE_ENTRYPOINT", entrypoint);
        output(cmd, Some(input.to_string().as_bytes()))
    };
    let start: Value = serde_json::from_slice(&env.start_input(&id)).unwrap();
    let prompt = json!({"session_id": id, "cwd": env.proj(), "prompt": "hello"});
    let plain = json!({"session_id": id});
    // A `claude -p` never waits for a turn, and is not behind: nothing asks the config file.
    for (event, input) in [
        ("session-start", &start),
        ("prompt-submit", &prompt),
        ("stop", &plain),
        ("pre-compact", &plain),
        ("session-end", &plain),
    ] {
        let out = hook(event, "sdk-cli", input);
        assert!(out.ok() && out.stderr.is_empty(), "{event}: {out:?}");
    }
    // A terminal's prompt waits as long as the config says: it reads it and says it is broken.
    let out = hook("prompt-submit", "cli", &prompt);
    assert!(out.ok() && out.stderr.contains("going on with the defaults"), "{out:?}");
    assert!(hook("stop", "cli", &plain).ok());
    // A `claude -p` that is behind asks what to do with it (the config's `behind`).
    env.run_key("bench:bot", &["--session", &id], "a bot turn");
    let out = hook("prompt-submit", "sdk-cli", &prompt);
    assert!(out.stderr.contains("going on with the defaults"), "{out:?}");
}
