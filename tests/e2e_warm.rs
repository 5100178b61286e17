//! Warm sessions end to end with the real Claude Code CLI: `run --warm` keeps claude up, the
//! next run hands it the prompt, and anything else that writes to the session in between
//! makes the next turn resume cold. The stand-in Messages API shows what the model saw; the
//! keeper's note (`warm/<id>.json`) shows which claude process answered. Waits are for
//! effects (a process gone, a held request arrived), with generous bounds.

mod support;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::installed::Installed;
use support::real_claude::Cooling;
use support::stand_in_api::Recorded;

/// Longest wait for anything.
const T: Duration = Duration::from_secs(60);

/// The shared world ([`Installed`]); the keepers its runs leave are ended with the test.
struct Warm(Cooling<Installed>);

impl std::ops::Deref for Warm {
    type Target = Installed;
    fn deref(&self) -> &Installed {
        &self.0
    }
}

impl Warm {
    fn new() -> Self {
        Warm(Cooling(Installed::new("warm")))
    }

    /// `clawsess run --json --cwd PROJECT ARGS`: its result object, asserting success.
    fn turn(&self, args: &[&str]) -> (Value, String) {
        self.turn_env(args, &[])
    }

    /// `run --json --key KEY --warm 10m -- PROMPT` (see [`Warm::turn`]).
    fn warm_turn(&self, key: &str, prompt: &str) -> (Value, String) {
        self.turn(&["--key", key, "--warm", "10m", "--", prompt])
    }

    fn turn_env(&self, args: &[&str], env: &[(&str, &str)]) -> (Value, String) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.project_run_env(&all, env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "run {args:?} failed: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        (serde_json::from_slice(&out.stdout).unwrap(), stderr)
    }

    /// `clawsess run ARGS` in the background, its output left to the test.
    fn spawn_child(&self, args: &[&str]) -> Child {
        let all = self.project_run_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.clawsess_cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The keeper's note of `session`, if there is one.
    fn note(&self, session: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.state().join("warm").join(format!("{session}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn claude_of(&self, session: &str) -> u32 {
        let note = self.note(session).unwrap_or_else(|| panic!("session {session} is not warm"));
        note["claude"].as_u64().unwrap() as u32
    }

    /// The one main-turn request of prompt `needle` (a turn without tools makes one).
    fn request(&self, needle: &str) -> Recorded {
        let found = self.turns_with(needle);
        assert_eq!(found.len(), 1, "one request for {needle:?}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + T;
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still alive after {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn session_of(result: &Value) -> String {
    result["session_id"].as_str().unwrap().to_owned()
}

#[test]
fn warm_turns_reuse_one_claude_process_and_carry_the_history() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("chat:1", "first warm prompt");
    assert_eq!(first["warm"], false, "the first turn starts claude: {first}");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    let (second, stderr) = e.warm_turn("chat:1", "second warm prompt");
    assert_eq!(second["warm"], true, "{second} {stderr}");
    assert_eq!(session_of(&second), session);
    assert!(second["result"].as_str().unwrap().contains("second warm prompt"), "{second}");
    let (third, _) = e.warm_turn("chat:1", "third warm prompt");
    assert_eq!(third["warm"], true, "{third}");
    assert_eq!(e.claude_of(&session), claude, "one claude process answered every turn");
    assert_eq!(e.note(&session).unwrap()["turns"], 3);
    // The model saw the history grow: each request carries the turns before it.
    let counts: Vec<usize> =
        ["first warm", "second warm", "third warm"].iter().map(|p| e.request(p).message_count).collect();
    assert!(counts[0] < counts[1] && counts[1] < counts[2], "{counts:?}");
    assert!(e.request("third warm").all_text.contains("first warm prompt"));
    // list shows it warm.
    let list: Value = serde_json::from_str(&e.clawsess_ok(&["list", "--json"])).unwrap();
    let row = list.as_array().unwrap().iter().find(|r| r["session_id"] == session.as_str()).unwrap().clone();
    assert_eq!(row["warm"], true, "{row}");
    // Its turns are run turns of chat:1, its session started by run.
    assert_eq!(row["started_by"], "run", "{row}");
    assert_eq!(row["live"], false, "the kept claude is no terminal: {row}");
    assert_eq!(e.current("chat:1").as_deref(), Some(session.as_str()));
    // The turn log has three turns of chat:1, none of a claude process of its own.
    let log: Value = serde_json::from_str(
        &std::fs::read_to_string(e.state().join("turns").join(format!("{session}.json"))).unwrap(),
    )
    .unwrap();
    let turns = log["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{log}");
    assert!(turns.iter().all(|t| t["key"] == "chat:1" && t["by_pid"].is_null()), "{log}");
}

#[test]
fn a_warm_turn_asks_for_permission_through_its_run() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("ask", "warm up first");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    let target = e.project.join("allowed.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = e.spawn_child(&["--stream", "--ask", "--key", "ask", "--warm", "10m", "--", &prompt]);
    let mut lines = std::io::BufReader::new(run.stdout.take().unwrap());
    let permission = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut lines, &mut line).unwrap() > 0, "no permission event");
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["type"] == "permission" {
            break event;
        }
    };
    assert!(!target.exists(), "nothing ran before the answer");
    let out = e.clawsess(&["answer", permission["request_id"].as_str().unwrap(), "allow"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(0));
    let result: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!((result["type"].as_str(), result["warm"].as_bool()), (Some("result"), Some(true)), "{result}");
    assert_eq!(result["is_error"], false, "{result}");
    assert!(target.exists(), "the allowed tool ran");
    assert_eq!(e.claude_of(&session), claude);
}

#[test]
fn a_terminal_turn_in_between_is_seen_by_the_next_turn_and_nothing_forks() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("chat:1", "bot turn one");
    let session = session_of(&first);
    let kept = e.claude_of(&session);
    // A terminal (`claude -p --resume`) takes a turn while the warm claude is idle.
    let terminal = e.run_p_json(&e.project, &["--resume", &session], "terminal turn two");
    assert_eq!(terminal["is_error"], false, "{terminal}");
    assert!(e.request("terminal turn two").all_text.contains("bot turn one"));
    let (third, stderr) = e.warm_turn("chat:1", "bot turn three");
    assert_eq!(third["warm"], false, "the stale warm claude is not used: {third}");
    assert!(stderr.contains("changed since its warm claude's last turn"), "{stderr}");
    wait_gone(kept);
    let seen = e.request("bot turn three").all_text;
    assert!(seen.contains("terminal turn two") && seen.contains("bot turn one"), "{seen}");
    assert_ne!(e.claude_of(&session), kept);
    // Cooled, and resumed cold by yet another process: every turn is on its branch.
    e.clawsess_ok(&["cool"]);
    e.run_p_json(&e.project, &["--resume", &session], "terminal turn four");
    let seen = e.request("terminal turn four").all_text;
    for turn in ["bot turn one", "terminal turn two", "bot turn three"] {
        assert!(seen.contains(turn), "{turn} missing: {seen}");
    }
}

#[test]
fn a_killed_keeper_or_kept_claude_makes_the_next_turn_cold() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("k", "before the kill");
    let session = session_of(&first);
    let note = e.note(&session).unwrap();
    let keeper = note["keeper"].as_u64().unwrap() as u32;
    let claude = note["claude"].as_u64().unwrap() as u32;
    unsafe { libc::kill(keeper as i32, libc::SIGKILL) };
    wait_gone(keeper);
    wait_gone(claude); // dies with its keeper
    let (second, stderr) = e.warm_turn("k", "after the keeper died");
    assert_eq!(second["warm"], false, "{second}");
    assert!(stderr.contains("resumes it cold"), "{stderr}");
    assert!(e.request("after the keeper died").all_text.contains("before the kill"));
    // Now the kept claude dies; its keeper with it, and the next turn is cold again.
    let claude = e.claude_of(&session);
    unsafe { libc::kill(claude as i32, libc::SIGKILL) };
    wait_gone(claude);
    let (third, _) = e.warm_turn("k", "after claude died");
    assert_eq!(third["warm"], false, "{third}");
    let seen = e.request("after claude died").all_text;
    assert!(seen.contains("before the kill") && seen.contains("after the keeper died"), "{seen}");
    let (fourth, _) = e.warm_turn("k", "warm again");
    assert_eq!(fourth["warm"], true, "{fourth}");
    // doctor reports the keeper; once it is killed, doctor sweeps its socket and note.
    let doctor = String::from_utf8_lossy(&e.clawsess(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains(&format!("warm session: {}", &session[..8])), "{doctor}");
    let keeper = e.note(&session).unwrap()["keeper"].as_u64().unwrap() as u32;
    unsafe { libc::kill(keeper as i32, libc::SIGKILL) };
    wait_gone(keeper);
    let socket = e.state().join("warm").join(format!("{session}.sock"));
    assert!(socket.exists(), "a killed keeper leaves its socket");
    let doctor = String::from_utf8_lossy(&e.clawsess(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains("removed what 1 dead keepers left"), "{doctor}");
    assert!(!socket.exists() && e.note(&session).is_none());
}

#[test]
fn a_full_pool_ends_the_least_recently_used_and_cool_ends_them_now() {
    let e = Warm::new();
    let max = [("CLAWSESS_WARM_MAX", "1")];
    let (a, _) = e.turn_env(&["--key", "a", "--warm", "10m", "--", "pool a"], &max);
    let a = session_of(&a);
    let a_claude = e.claude_of(&a);
    let (b, stderr) = e.turn_env(&["--key", "b", "--warm", "10m", "--", "pool b"], &max);
    let b = session_of(&b);
    assert!(stderr.contains("least recently used"), "{stderr}");
    wait_gone(a_claude);
    assert!(e.note(&a).is_none(), "a's keeper is gone");
    let b_claude = e.claude_of(&b);
    let out = e.clawsess_ok(&["cool", &b]);
    assert!(out.contains("cooled session"), "{out}");
    wait_gone(b_claude);
    assert!(e.note(&b).is_none());
    assert_eq!(e.clawsess_ok(&["cool"]).trim(), "no session is warm");
    // Ended gracefully (not stale): a cold resume continues from every turn.
    e.run_p_json(&e.project, &["--resume", &b], "after cool");
    assert!(e.request("after cool").all_text.contains("pool b"));
}

#[test]
fn a_kept_claude_counts_against_the_cap_and_an_idle_one_makes_room_for_a_cold_turn() {
    let e = Warm::new();
    let cap = [("CLAWSESS_MAX_CLAUDES", "1")];
    let (a, _) = e.turn_env(&["--key", "a", "--warm", "10m", "--", "kept a"], &cap);
    let a = session_of(&a);
    let a_claude = e.claude_of(&a);
    let slots = || std::fs::read_dir(e.state().join("claudes")).map_or(0, |d| d.count());
    assert_eq!(slots(), 1, "the kept claude holds the one slot");
    // A's next turn goes to its kept claude: no second claude, no wait.
    let (again, _) = e.turn_env(&["--key", "a", "--wait", "0", "--", "kept again"], &cap);
    assert_eq!(again["warm"], true, "{again}");
    // A cold turn of another key finds the cap reached: the idle kept claude goes first.
    let (b, stderr) = e.turn_env(&["--key", "b", "--wait", "60", "--", "cold b"], &cap);
    assert!(stderr.contains("ended the warm claude") && stderr.contains("idle"), "{stderr}");
    assert_eq!(b["is_error"], false, "{b}");
    wait_gone(a_claude);
    assert!(e.note(&a).is_none(), "a's keeper is gone");
    assert_eq!(slots(), 0, "every slot is free once the turns are over");
    // Ended gracefully (not stale): A resumes cold with every turn.
    e.turn_env(&["--key", "a", "--", "after the cap"], &cap);
    assert!(e.request("after the cap").all_text.contains("kept again"));
}

#[test]
fn an_idle_warm_claude_ends_after_its_duration() {
    let e = Warm::new();
    let (first, _) = e.turn(&["--key", "idle", "--warm", "2s", "--", "short warmth"]);
    let session = session_of(&first);
    let note = e.note(&session).unwrap();
    wait_gone(note["claude"].as_u64().unwrap() as u32);
    wait_gone(note["keeper"].as_u64().unwrap() as u32);
    assert!(e.note(&session).is_none());
    assert!(!e.state().join("warm").join(format!("{session}.sock")).exists());
}

#[test]
fn two_keys_attached_to_one_warm_session_take_turns() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("a", "from a");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    e.clawsess_ok(&["attach", &session, "--key", "b"]);
    // a's turn is held by the stand-in while b's run arrives: b waits for the session.
    let run_a = e.spawn_child(&["--json", "--key", "a", "--warm", "10m", "--", "a again [hold=A]"]);
    e.api.wait_held("A");
    let run_b = e.spawn_child(&["--json", "--key", "b", "--warm", "10m", "--", "b speaks"]);
    e.api.release("A");
    let out_a = run_a.wait_with_output().unwrap();
    let out_b = run_b.wait_with_output().unwrap();
    assert!(out_a.status.success() && out_b.status.success(), "{out_a:?} {out_b:?}");
    let a: Value = serde_json::from_slice(&out_a.stdout).unwrap();
    let b: Value = serde_json::from_slice(&out_b.stdout).unwrap();
    assert_eq!((a["warm"].as_bool(), b["warm"].as_bool()), (Some(true), Some(true)), "{a} {b}");
    assert_eq!(e.claude_of(&session), claude);
    let seen = e.request("b speaks").all_text;
    assert!(seen.contains("from a") && seen.contains("a again"), "{seen}");
}

#[test]
fn a_run_killed_mid_warm_turn_leaves_the_session_usable() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("k", "turn before");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    let mut run = e.spawn_child(&["--json", "--key", "k", "--warm", "10m", "--", "doomed turn [hold=D]"]);
    e.api.wait_held("D");
    run.kill().unwrap();
    run.wait().unwrap();
    e.api.release("D");
    wait_gone(claude);
    let (after, _) = e.warm_turn("k", "turn after");
    assert_eq!(session_of(&after), session);
    assert!(e.request("turn after").all_text.contains("turn before"));
}

#[test]
fn a_warm_turn_streams_and_stops_like_a_cold_one() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("s", "warm up");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    let run = e.spawn_child(&["--stream", "--key", "s", "--warm", "10m", "--", "long one [hold=S]"]);
    e.api.wait_held("S");
    let out = e.clawsess(&["stop", "--key", "s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "session");
    assert_eq!(lines[0]["warm"], true, "{:?}", lines[0]);
    let result = lines.last().unwrap();
    assert_eq!((result["type"].as_str(), result["interrupted"].as_bool()), (Some("result"), Some(true)));
    // The interrupted warm claude is ended (Claude Code kept open would not take the next
    // prompt while the cut-off request is still answered: the stand-in still holds it); the
    // next turn starts its own and carries the stopped turn.
    wait_gone(claude);
    assert!(e.note(&session).is_none());
    let (next, _) = e.warm_turn("s", "after the stop");
    assert_eq!(next["warm"], false, "{next}");
    assert!(e.request("after the stop").all_text.contains("long one"));
    let (again, _) = e.warm_turn("s", "warm after the stop");
    assert_eq!(again["warm"], true, "{again}");
    e.api.release("S");
}

/// A plain `run --json` on a warm claude stops as a cold one does (`e2e_live`): 130,
/// `"interrupted": true`, and the next turn carries the stopped prompt.
#[test]
fn a_plain_warm_turn_stops_like_a_cold_one() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("p", "warm up");
    let session = session_of(&first);
    let claude = e.claude_of(&session);
    let run = e.spawn_child(&["--json", "--key", "p", "--warm", "10m", "--", "plain long one [hold=P]"]);
    e.api.wait_held("P");
    let out = e.clawsess(&["stop", "--key", "p"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (result["interrupted"].as_bool(), result["warm"].as_bool()),
        (Some(true), Some(true)),
        "{result}"
    );
    assert_eq!(session_of(&result), session);
    wait_gone(claude);
    let (next, _) = e.warm_turn("p", "after the plain stop");
    assert_eq!(session_of(&next), session);
    assert!(e.request("after the plain stop").all_text.contains("plain long one [hold=P]"));
    e.api.release("P");
}

/// A forked session (made with the hooks off) warmed by `run --warm`: the warm claude's prompt
/// hook gets the other branch's turns through the run, once.
#[test]
fn a_warm_claude_on_a_forked_session_is_told_the_other_branch_once() {
    let e = Warm::new();
    let (first, _) = e.turn(&["--key", "chat:1", "--", "we plan PORTO"]);
    let session = session_of(&first);
    e.fork_without_hooks(&e.project, &session, "the person says BRAGA", "a script says LISBON");
    let (warmed, _) = e.warm_turn("chat:1", "first warm OBIDOS");
    assert_eq!(warmed["warm"], false, "this turn starts the warm claude: {warmed}");
    let seen = e.request("first warm OBIDOS");
    for word in ["PORTO", "BRAGA", "LISBON", "This conversation forked"] {
        assert!(seen.all_text.contains(word), "{word} not seen: {}", seen.all_text);
    }
    let (again, stderr) = e.warm_turn("chat:1", "second warm EVORA");
    assert_eq!(again["warm"], true, "{again} {stderr}");
    let seen = e.request("second warm EVORA");
    assert!(seen.all_text.contains("LISBON"), "{}", seen.all_text);
    assert_eq!(seen.all_text.matches("This conversation forked").count(), 1, "{}", seen.all_text);
}

#[test]
fn a_warm_claude_serves_only_a_run_with_its_environment() {
    let w = Warm::new();
    let (first, _) = w.turn_env(
        &["--key", "chat:a", "--warm", "10m", "first on SONNET"],
        &[("ANTHROPIC_MODEL", "claude-sonnet-5-5")],
    );
    let session = first["session_id"].as_str().unwrap().to_owned();
    let kept = w.claude_of(&session);
    assert_eq!(w.request("first on SONNET").model, "claude-sonnet-5-5");
    // Another chat's run on the same session with another model: never the warm claude's.
    let (second, stderr) = w.turn_env(
        &["--key", "chat:b", "--session", &session, "--warm", "10m", "then on HAIKU"],
        &[("ANTHROPIC_MODEL", "claude-haiku-5-5")],
    );
    assert_eq!(w.request("then on HAIKU").model, "claude-haiku-5-5", "{stderr}");
    assert_eq!(second["warm"], false, "a claude started for it: {second}");
    assert!(stderr.contains("another environment"), "{stderr}");
    wait_gone(kept);
    // The same environment again: the warm claude started for the second run serves it.
    let (third, _) = w.turn_env(
        &["--key", "chat:b", "--session", &session, "--warm", "10m", "again on HAIKU"],
        &[("ANTHROPIC_MODEL", "claude-haiku-5-5")],
    );
    assert_eq!(third["warm"], true, "{third}");
    assert_eq!(w.request("again on HAIKU").model, "claude-haiku-5-5");
}

#[test]
fn a_keeper_killed_mid_turn_is_said_as_such() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("k", "before");
    let session = session_of(&first);
    let keeper = e.note(&session).unwrap()["keeper"].as_u64().unwrap() as u32;
    let run = e.spawn_child(&["--json", "--key", "k", "--warm", "10m", "--", "mid-turn [hold=mid]"]);
    e.api.wait_held("mid");
    unsafe { libc::kill(keeper as i32, libc::SIGKILL) };
    wait_gone(keeper);
    e.api.release("mid");
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keeper") && stderr.contains("mid-turn"), "{stderr}");
    assert!(!stderr.contains("printed nothing"), "{stderr}");
    // The turn is logged if and only if its prompt reached the transcript (measured on
    // 2.1.328: a warm claude killed while its request is out had not written it yet).
    let transcript = std::fs::read_to_string(e.transcript_path(&e.project, &session)).unwrap();
    let written = transcript.lines().any(|l| l.contains("\"type\":\"user\"") && l.contains("mid-turn"));
    let log: Value = serde_json::from_str(
        &std::fs::read_to_string(e.state().join("turns").join(format!("{session}.json"))).unwrap(),
    )
    .unwrap();
    let logged =
        log["turns"].as_array().unwrap().iter().any(|t| t["prompt"].as_str().unwrap().contains("mid-turn"));
    assert_eq!(logged, written, "{log}");
}

#[test]
fn a_keeper_suspended_mid_turn_does_not_hold_the_session_forever() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("k", "before");
    let session = session_of(&first);
    let run = e.spawn_child(&["--json", "--key", "k", "--warm", "10m", "--", "mid-turn [hold=mid]"]);
    e.api.wait_held("mid");
    // The keeper whose claude has the turn (its note is written before claude asks the API;
    // the kept one, unless this run found a reason to start another).
    let keeper = e.note(&session).unwrap()["keeper"].as_u64().unwrap() as u32;
    unsafe { libc::kill(keeper as i32, libc::SIGSTOP) };
    e.api.release("mid");
    // A generous bound, not a timing assumption: before, the run never ended.
    let mut run = run;
    let deadline = Instant::now() + T;
    while run.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            unsafe { libc::kill(keeper as i32, libc::SIGKILL) };
            let _ = run.kill();
            panic!("the run still waits on its suspended keeper after {T:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    unsafe { libc::kill(keeper as i32, libc::SIGKILL) };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run went through: {stderr}");
    assert!(stderr.contains("suspended"), "{stderr}");
    wait_gone(keeper);
    let (next, _) = e.turn(&["--key", "k", "--", "the session is free again"]);
    assert_eq!(next["is_error"], false, "{next}");
}

/// The state dir removed under a live, idle keeper (a person cleaning up, `rm -rf` of a HOME's
/// data): nobody can reach that warm claude any more. The keeper ends it (SIGKILL: whether its
/// leaf is stale cannot be told) and exits within seconds, not when its idle time is up; it
/// writes nothing back into the state dir; the next run works.
#[test]
fn a_keeper_whose_state_dir_was_removed_ends_and_the_next_run_works() {
    let e = Warm::new();
    let (first, _) = e.warm_turn("gone", "warm before the removal");
    let session = session_of(&first);
    let note = e.note(&session).unwrap();
    let (keeper, claude) = (note["keeper"].as_u64().unwrap() as u32, e.claude_of(&session));
    std::fs::remove_dir_all(e.state()).unwrap();
    wait_gone(keeper);
    wait_gone(claude);
    assert!(!e.state().join("warm").exists(), "the keeper wrote into a state dir that was removed");
    let (next, stderr) = e.warm_turn("gone", "after the removal");
    assert_eq!(next["warm"], false, "{next} {stderr}");
    assert!(next["result"].as_str().unwrap().contains("after the removal"), "{next}");
}

/// A tmpfs of `size` mounted on `dir` until dropped (root only: else `None`, the test says so
/// and passes nothing).
struct Tiny(PathBuf);

impl Tiny {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tiny(dir.to_owned()))
    }

    /// Fills it up (a file that grows until the disk is full).
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        let _ = std::io::Write::write_all(&mut f, &[0u8; 1]);
        path
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The state dir's disk full during a warm turn (root only: a tiny tmpfs is mounted on it).
/// Nothing is lost: the turn either answers (and its answer reaches the caller) or fails with
/// a clear error before its prompt went anywhere; once there is room again, the next turn sees
/// every answered turn.
#[test]
fn a_full_state_disk_during_a_warm_turn_loses_nothing() {
    let e = Warm::new();
    let Some(tiny) = Tiny::mount(&e.state(), "4m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (first, _) = e.warm_turn("full", "warm before the disk fills");
    let session = session_of(&first);
    let filler = tiny.fill();
    let out = e.project_run_env(&["--json", "--key", "full", "--warm", "10m", "--", "while FULL"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let answered = !e.turns_with("while FULL").is_empty();
    if out.status.success() {
        let result: Value = serde_json::from_str(&stdout).unwrap();
        assert!(result["result"].as_str().unwrap().contains("while FULL"), "{result}");
    } else {
        assert!(!answered, "the model answered a turn that failed: {stdout}\n{stderr}");
        assert!(stderr.contains("No space left") || stderr.contains("disk"), "a clear error: {stderr}");
    }
    std::fs::remove_file(filler).unwrap();
    let (next, stderr) = e.warm_turn("full", "after the disk had room");
    assert_eq!(session_of(&next), session, "{stderr}");
    if answered {
        assert!(
            e.request("after the disk had room").all_text.contains("while FULL"),
            "the full-disk turn is in"
        );
    }

    // The disk fills while the warm claude answers (its prompt already went out).
    let run = e.spawn_child(&["--json", "--key", "full", "--warm", "10m", "--", "MIDTURN [hold=mid]"]);
    e.api.wait_held("mid");
    let filler = tiny.fill();
    e.api.release("mid");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The answer reaches the caller, with what could not be recorded said.
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert!(result["result"].as_str().unwrap().contains("MIDTURN"), "{result}");
    assert!(result["record_error"].as_str().is_some_and(|e| e.contains("No space left")), "{result}");
    // It says that the turn is not lost: it stays noted for the next process on the session.
    assert!(stderr.contains("stays noted"), "{stderr}");
    let log_of = |text: &str| support::installed::logged_turns(&e.state(), &session, text);
    assert!(log_of("MIDTURN").is_empty(), "logged on a full disk?");
    // While the disk is still full, a turn waits for the log to work (a turn logged late would
    // be lost for catch-up), and says why.
    let out = e.project_run_env(&["--json", "--key", "full", "--wait", "0", "--", "still FULL"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(75), "{stdout}");
    assert!(stdout.contains("could not be logged") && stdout.contains("free space"), "{stdout}");
    std::fs::remove_file(filler).unwrap();
    let (last, stderr) = e.warm_turn("full", "and after MIDTURN");
    assert_eq!(session_of(&last), session, "{stderr}");
    let seen = e.request("and after MIDTURN");
    assert!(seen.all_text.contains("MIDTURN [hold=mid]"), "the mid-turn prompt is in: {}", seen.all_text);
    // Once there is room, the next process on the session logs the turn, once, with its reply.
    let found = log_of("MIDTURN [hold=mid]");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]["reply"].as_str().unwrap().contains("last=MIDTURN"), "{found:?}");
    drop(e);
}

/// clawsess's hook commands in settings.json, rewritten to run through a script that logs
/// each call to `calls` (named `clawsess-logged`: still clawsess's hooks to `install` and to a
/// kept claude's check); returns `calls`.
fn log_hook_calls(w: &Warm) -> PathBuf {
    let path = w.claude_dir().join("settings.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let settings: Value = serde_json::from_str(&text).unwrap();
    let command = settings["hooks"]["Stop"][0]["hooks"][0]["command"].as_str().unwrap().to_owned();
    let bin = command.strip_suffix(" hook stop").expect("our Stop hook").to_owned();
    let calls = w.home().join("hook-calls");
    let wrapper = w.bin_dir().join("clawsess-logged");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec {bin} \"$@\"\n", calls.display()))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&path, text.replace(&format!("{bin} hook "), &format!("{} hook ", wrapper.display())))
        .unwrap();
    calls
}

fn hook_calls(calls: &std::path::Path) -> String {
    std::fs::read_to_string(calls).unwrap_or_default()
}

/// clawsess's hooks are the only ones: the kept claude runs without any (Claude Code starts
/// no hook process for a warm turn), and the model sees what it sees from a claude with them.
#[test]
fn a_kept_claude_runs_without_hooks_when_clawsess_has_the_only_ones() {
    let w = Warm::new();
    let calls = log_hook_calls(&w);
    let (first, _) = w.warm_turn("chat:1", "first SPARROW");
    let session = session_of(&first);
    let (second, stderr) = w.warm_turn("chat:1", "second SPARROW");
    assert_eq!(second["warm"], true, "{second} {stderr}");
    assert!(w.note(&session).unwrap()["hookless"].is_array(), "{:?}", w.note(&session));
    assert_eq!(hook_calls(&calls), "", "no hook ran in the kept claude");
    // The same prompt on a claude of its own (another key, cold, with the kept claude's
    // permission tool): its hooks run, through the logging script.
    let cold = w.project_run(&["--stream", "--ask", "--key", "chat:2", "--", "cold SPARROW"]);
    assert!(cold.status.success(), "{}", String::from_utf8_lossy(&cold.stderr));
    let ran = hook_calls(&calls);
    for event in ["hook session-start", "hook prompt-submit", "hook stop"] {
        assert!(ran.contains(event), "{event} not run by the cold claude: {ran}");
    }
    // What the model saw: the same tools and the same system prompt.
    let (warm, cold) = (w.request("second SPARROW").body, w.request("cold SPARROW").body);
    let names = |body: &Value| -> Vec<String> {
        body["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&warm), names(&cold));
    // (Less the billing header, whose tag differs from request to request.)
    let system = |body: &Value| -> Vec<Value> {
        let blocks = body["system"].as_array().unwrap().iter();
        blocks
            .filter(|b| !b["text"].as_str().unwrap().starts_with("x-anthropic-billing-header"))
            .cloned()
            .collect()
    };
    assert_eq!(system(&warm), system(&cold));
}

/// A hook of the person's own keeps every hook in the kept claude; one added while a claude is
/// kept without hooks ends that claude before the next turn, whose new claude runs it.
#[test]
fn a_hook_of_the_persons_own_keeps_the_hooks_and_one_added_later_ends_a_hookless_claude() {
    let w = Warm::new();
    let (first, _) = w.warm_turn("chat:1", "first HERON");
    let session = session_of(&first);
    let hookless = w.claude_of(&session);
    assert!(w.note(&session).unwrap()["hookless"].is_array());
    let hook = serde_json::json!({"hooks": {"UserPromptSubmit": [{"hooks": [
        {"type": "command", "command": "echo PROJECT-HOOK-said"}
    ]}]}});
    let settings = w.project.join(".claude").join("settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, hook.to_string()).unwrap();
    let (second, stderr) = w.warm_turn("chat:1", "second HERON");
    assert_eq!(second["warm"], false, "a new claude: {second}");
    assert!(stderr.contains("changed since it started"), "{stderr}");
    assert!(w.request("second HERON").all_text.contains("PROJECT-HOOK-said"));
    wait_gone(hookless);
    let note = w.note(&session).unwrap();
    assert!(note.get("hookless").is_none(), "{note}");
    let (third, stderr) = w.warm_turn("chat:1", "third HERON");
    assert_eq!(third["warm"], true, "{third} {stderr}");
    assert!(w.request("third HERON").all_text.contains("PROJECT-HOOK-said"));
}

/// A Claude Code version neither tested nor probed good here (a wrapper that says 9.9.9): its
/// kept claude keeps its hooks, and the keeper's log says why. Its version is asked once per
/// binary (`claude-versions.json`), not at every keeper's start.
#[test]
fn an_untested_claude_code_keeps_its_hooks_and_is_asked_its_version_once() {
    let w = Warm::new();
    let asked = w.home().join("version-asked");
    let fake = w.home().join("claude-9.9.9");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo asked >> '{}'; echo '9.9.9 (Claude Code)'; exit 0; fi\nexec '{}' \"$@\"\n",
        asked.display(),
        support::real_claude::claude_bin().display()
    );
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fake = fake.to_str().unwrap();
    let (first, _) = w.turn(&["--claude", fake, "--key", "chat:1", "--warm", "10m", "--", "first WREN"]);
    let session = session_of(&first);
    let note = w.note(&session).unwrap();
    assert!(note.get("hookless").is_none(), "{note}");
    let log = std::fs::read_to_string(w.state().join("warm").join(format!("{session}.log"))).unwrap();
    assert!(log.contains("claude keeps its hooks: Claude Code 9.9.9 is untested"), "{log}");
    w.clawsess_ok(&["cool"]);
    wait_gone(note["keeper"].as_u64().unwrap() as u32);
    let (second, _) = w.turn(&["--claude", fake, "--key", "chat:1", "--warm", "10m", "--", "second WREN"]);
    assert_eq!(second["warm"], false, "a new keeper: {second}");
    assert!(w.note(&session).unwrap().get("hookless").is_none());
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), "asked\n", "asked once for two keepers");
}
