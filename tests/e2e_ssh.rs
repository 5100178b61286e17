//! Sessions on other machines over a real OpenSSH server (tests/support/sshd.rs): the
//! "remote" is this machine with another HOME, its own Claude Code config, clawsess state
//! and stand-in API; the caller reaches it with `CLAWSESS_SSH="ssh -F <config>"`, host key
//! checking on. Assertions are on what each side's stand-in API (the model) received.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::mcp_stdio::{call_tools, tool_text};
use support::real_claude::{ClaudeHome, run_with_stdin};
use support::sshd::{ALIAS, Sshd};

const T: Duration = Duration::from_secs(180);

/// A local home, a remote home, and sshd serving the remote one.
struct Two {
    local: ClaudeHome,
    remote: ClaudeHome,
    sshd: Sshd,
}

impl Two {
    fn new() -> Two {
        let local = ClaudeHome::new();
        local.install_clawsess();
        let remote = ClaudeHome::new();
        remote.install_clawsess();
        let probe = remote.command("true");
        let env: Vec<(String, String)> = probe
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        let sshd = Sshd::start(&env);
        let two = Two { local, remote, sshd };
        two.ok(&["hosts", "add", "box", ALIAS]);
        two
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.local.clawsess_cmd(args);
        cmd.env("CLAWSESS_SSH", self.sshd.ssh_command());
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        run_with_stdin(&mut self.cmd(args), stdin, T)
    }

    /// Starts `clawsess ARGS` with no stdin and its output piped (a `--stream` run to read).
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// `run --json --host box --new --cwd CWD --key KEY -- PROMPT`: a new session of KEY on
    /// the host, in its dir CWD.
    fn new_there(&self, cwd: &str, key: &str, prompt: &str) -> std::process::Output {
        self.run(&["run", "--json", "--host", "box", "--new", "--cwd", cwd, "--key", key, "--", prompt], "")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "");
        assert!(out.status.success(), "clawsess {args:?}: {}\nsshd: {}", text(&out), self.sshd.log());
        String::from_utf8(out.stdout).unwrap()
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn hosts_add_check_list_and_remove() {
    let two = Two::new();
    let list = two.ok(&["hosts", "list"]);
    assert!(list.contains("box") && list.contains(ALIAS), "{list}");
    let check = two.ok(&["hosts", "check", "--json"]);
    let check: Value = serde_json::from_str(&check).unwrap();
    assert_eq!(check[0]["reachable"], true, "{check:#}");
    assert_eq!(check[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(check[0]["protocol"], 2);
    // The control socket lives in the private state dir.
    let ssh_dir = two.local.state().join("ssh");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&ssh_dir).unwrap().permissions().mode() & 0o777, 0o700);

    for bad in ["-oProxyCommand=touch /tmp/x", "a b", "x;y"] {
        let out = two.run(&["hosts", "add", "evil", "--", bad], "");
        assert_eq!(out.status.code(), Some(1), "{bad:?} accepted: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("ssh destination"), "{}", text(&out));
    }
    let sockets = || std::fs::read_dir(&ssh_dir).unwrap().count();
    assert_eq!(sockets(), 1, "the control socket is up");
    two.ok(&["hosts", "remove", "box"]);
    assert_eq!(sockets(), 0, "removing the host ended its control master");
    assert!(!two.ok(&["hosts", "list"]).contains(ALIAS));
}

/// The main-turn requests a home's model got whose prompt holds `text`.
fn asked(home: &ClaudeHome, text: &str) -> Vec<support::stand_in_api::Recorded> {
    home.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(text)).collect()
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}", text(out)))
}

#[test]
fn a_remote_session_is_listed_attached_shown_and_continued_from_a_key() {
    let two = Two::new();
    let here = two.local.project("here");
    two.ok(&[
        "run",
        "--json",
        "--new",
        "--cwd",
        here.to_str().unwrap(),
        "--key",
        "local:1",
        "--",
        "a local turn",
    ]);
    let there = two.remote.project("there");
    let first = two.new_there(there.to_str().unwrap(), "chat:1", "first remote turn");
    assert!(first.status.success(), "{}\nsshd: {}", text(&first), two.sshd.log());
    let first = json_of(&first);
    let id = first["session_id"].as_str().unwrap().to_owned();
    assert_eq!(asked(&two.remote, "first remote turn").len(), 1, "the remote model answered it");
    assert!(asked(&two.local, "first remote turn").is_empty(), "not the local one");

    let all: Value = serde_json::from_str(&two.ok(&["list", "--all", "--json"])).unwrap();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["session_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&format!("box:{id}").as_str()), "{all:#}");
    assert!(all.as_array().unwrap().iter().any(|r| r["host"].is_null()), "the local session too: {all:#}");
    let table = two.ok(&["list", "--host", "box"]);
    assert!(table.contains(&format!("box:{}", &id[..8])), "{table}");

    let attached = two.run(&["attach", &format!("box:{id}"), "--key", "tg:7", "--json"], "");
    assert!(attached.status.success(), "{}", text(&attached));
    assert_eq!(json_of(&attached)["session_id"], id.as_str());
    let next = two.run(&["run", "--json", "--key", "tg:7"], "continue over ssh");
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(json_of(&next)["session_id"], id.as_str(), "the same remote session goes on");
    let seen = &asked(&two.remote, "continue over ssh")[0];
    assert!(seen.all_text.contains("first remote turn"), "the turn continued the conversation");
    assert!(seen.message_count > 1);

    // `status NAME:SESSION` and `status --key K` of a key routed there run on the host.
    let status: Value = serde_json::from_str(&two.ok(&["status", &format!("box:{id}"), "--json"])).unwrap();
    assert_eq!(status["session_id"], id.as_str(), "{status:#}");
    let status: Value = serde_json::from_str(&two.ok(&["status", "--key", "tg:7", "--json"])).unwrap();
    assert_eq!(status["session_id"], id.as_str(), "{status:#}");
    // `current --key K`: asked there, written `NAME:ID`.
    let current: Value = serde_json::from_str(&two.ok(&["current", "--key", "tg:7", "--json"])).unwrap();
    assert_eq!(
        (current["session_id"].as_str(), current["via"].as_str()),
        (Some(format!("box:{id}").as_str()), Some("key"))
    );
    assert!(two.ok(&["status", &format!("box:{}", &id[..8])]).contains(&id[..8]));
    let shown = two.ok(&["show", &format!("box:{}", &id[..8]), "--json"]);
    assert!(shown.contains("continue over ssh"), "{shown}");

    // `run --session NAME:SESSION` names it directly.
    let by_id = two
        .run(&["run", "--json", "--session", &format!("box:{id}"), "--key", "cli:1", "--", "by its id"], "");
    assert!(by_id.status.success(), "{}", text(&by_id));
    assert_eq!(json_of(&by_id)["session_id"], id.as_str());
    assert!(asked(&two.remote, "by its id")[0].all_text.contains("continue over ssh"));
}

/// `clawsess ARGS` run on the "host" itself (its HOME and state), not over ssh.
fn on_host(two: &Two, args: &[&str]) -> String {
    let out = run_with_stdin(&mut two.remote.clawsess_cmd(args), "", T);
    assert!(out.status.success(), "host: clawsess {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Whether a file under `dir` holds `needle`.
fn holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            holds(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

#[test]
fn settings_names_and_cool_of_a_remote_session_are_kept_there() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    let out = two.new_there(cwd, "chat:1", "one");
    assert!(out.status.success(), "{}", text(&out));
    let id = json_of(&out)["session_id"].as_str().unwrap().to_owned();
    let remote = format!("box:{}", &id[..8]);

    // `set NAME:SESSION` is the host's: get gives it back, the host's own state has it, and
    // the next turn there asks for that model.
    let set: Value =
        serde_json::from_str(&two.ok(&["set", &remote, "model=claude-haiku-4-5", "--json"])).unwrap();
    assert_eq!(set["settings"]["model"], "claude-haiku-4-5", "{set:#}");
    let got: Value = serde_json::from_str(&two.ok(&["get", &format!("box:{id}"), "--json"])).unwrap();
    assert_eq!(got["settings"]["model"], "claude-haiku-4-5", "{got:#}");
    let own: Value = serde_json::from_str(&on_host(&two, &["get", &id, "--json"])).unwrap();
    assert_eq!(own["settings"]["model"], "claude-haiku-4-5", "the host's state: {own:#}");
    assert!(two.ok(&["get", &remote]).contains("model = claude-haiku-4-5"));
    let out = two.run(&["run", "--json", "--session", &remote, "--key", "cli:2", "--", "which model"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(asked(&two.remote, "which model")[0].model, "claude-haiku-4-5");

    // Hostile values: refused by the host's checks, or kept as data; nothing runs.
    let canary = two.remote.home().join("pwned");
    let c = canary.display();
    let hostile = format!("model=it's \"x\" $(touch {c}) `touch {c}`\n; touch {c}");
    let out = two.run(&["set", &remote, &hostile], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a model name"), "{}", text(&out));
    // A key whose runs go to the host (chat:1, by `run --host`): its cwd is a dir there,
    // with quotes, `$(...)` and a newline in its name, stored byte-exact.
    let odd = there.join(format!("it's \"odd\" $(touch {c}) `touch {c}`\nline two"));
    std::fs::create_dir_all(&odd).unwrap();
    let odd = std::fs::canonicalize(&odd).unwrap();
    let odd = odd.to_str().unwrap();
    let set: Value =
        serde_json::from_str(&two.ok(&["set", "--key", "chat:1", &format!("cwd={odd}"), "--json"])).unwrap();
    assert_eq!(set["settings"]["cwd"], odd, "{set:#}");
    let own: Value = serde_json::from_str(&on_host(&two, &["get", "--key", "chat:1", "--json"])).unwrap();
    assert_eq!(own["settings"]["cwd"], odd, "the host's state: {own:#}");
    let state = two.local.state();
    assert!(holds(&two.remote.state(), b"line two"), "kept there");
    assert!(!holds(&state, b"line two"), "nothing of it kept in this machine's state");
    assert!(!canary.exists(), "nothing in the values ran");

    // unset there.
    let unset: Value = serde_json::from_str(&two.ok(&["unset", &remote, "model", "--json"])).unwrap();
    assert!(unset["settings"].get("model").is_none(), "{unset:#}");
    let own: Value = serde_json::from_str(&on_host(&two, &["get", &id, "--json"])).unwrap();
    assert!(own["settings"].get("model").is_none(), "{own:#}");

    // `name NAME:SESSION NEWNAME`: the host's name for it.
    two.ok(&["name", &remote, "budget"]);
    let status: Value = serde_json::from_str(&two.ok(&["status", "box:budget", "--json"])).unwrap();
    assert_eq!(status["session_id"], id.as_str(), "{status:#}");
    let own: Value = serde_json::from_str(&on_host(&two, &["status", "budget", "--json"])).unwrap();
    assert_eq!(own["session_id"], id.as_str(), "the host's own name: {own:#}");
    let out = two.run(&["name", &remote, "$(x)"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // `cool NAME:SESSION` there.
    assert!(two.ok(&["cool", "box:budget"]).contains("not warm"));
}

#[test]
fn a_hostile_prompt_arrives_byte_exact_and_runs_nothing() {
    let two = Two::new();
    let there = two.remote.project("there");
    let canary = two.remote.home().join("pwned");
    let c = canary.display();
    let mut prompt = format!(
        "it's \"quoted\" 'twice' $(touch {c}) `touch {c}` ; touch {c} | & > {c}\nsecond line\n\n\\n \\$HOME %C -oProxyCommand=x\n"
    );
    while prompt.len() < 1024 * 1024 {
        prompt.push_str("a line of filler text with $(date) and `id` in it\n");
    }
    prompt.push_str("the end");
    let cwd = there.to_str().unwrap();
    let out = two.run(&["run", "--json", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:x"], &prompt);
    assert!(out.status.success(), "{}", text(&out));
    let seen = asked(&two.remote, "the end");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].last_user_text, prompt, "the prompt reached the model byte-exact");
    assert!(!canary.exists(), "nothing in the prompt ran");
}

#[test]
fn a_host_that_is_gone_is_exit_69_before_any_turn() {
    let mut two = Two::new();
    two.ok(&["hosts", "check", "box"]);
    two.sshd.stop();
    let out = two.run(&["run", "--json", "--host", "box", "--key", "chat:g", "--", "hello?"], "");
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let doc = json_of(&out);
    assert!(doc["error"].as_str().unwrap().contains("could not reach box"), "{doc:#}");
    assert!(two.remote.api.turn_requests().is_empty(), "nothing ran");
    let check = two.run(&["hosts", "check", "box"], "");
    assert_eq!(check.status.code(), Some(69), "{}", text(&check));
}

#[test]
fn clawsess_missing_on_the_host_is_exit_69() {
    let two = Two::new();
    std::fs::remove_file(two.remote.bin_dir().join("clawsess")).unwrap();
    let out = two.run(&["run", "--host", "box", "--key", "chat:m", "--", "hello?"], "");
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("clawsess is not installed on box"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_link_cut_mid_turn_is_exit_74_and_the_remote_session_is_freed() {
    let two = Two::new();
    let there = two.remote.project("there");
    // The ssh client, through a wrapper that notes its pid: the test kills it mid-turn.
    let pids = two.local.home().join("ssh.pids");
    let wrapper = two.local.bin_dir().join("ssh-noting");
    std::fs::write(&wrapper, format!("#!/bin/sh\necho $$ >> {}\nexec ssh \"$@\"\n", pids.display())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ssh = two.sshd.ssh_command().replacen("ssh", wrapper.to_str().unwrap(), 1);
    let cwd = there.to_str().unwrap();
    let args = [
        "run",
        "--stream",
        "--host",
        "box",
        "--new",
        "--cwd",
        cwd,
        "--key",
        "chat:c",
        "--",
        "a long job [hold=CUT]",
    ];
    let run = two
        .cmd(&args)
        .env("CLAWSESS_SSH", &ssh)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    two.remote.api.wait_held("CUT");
    let pid: i32 = std::fs::read_to_string(&pids).unwrap().lines().last().unwrap().trim().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(74), "{}", text(&out));
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_owned();
    let last: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(last["error"].as_str().unwrap().contains("connection to box"), "{last:#}");

    // The remote turn was stopped and its session freed: the next turn goes on with it.
    let next = two.run(&["run", "--json", "--key", "chat:c", "--wait", "60", "--", "after the cut"], "");
    assert!(next.status.success(), "{}\nsshd: {}", text(&next), two.sshd.log());
    let seen = &asked(&two.remote, "after the cut")[0];
    assert!(
        seen.all_text.contains("a long job [hold=CUT]"),
        "the cut turn's prompt stayed in the conversation"
    );
}

/// Reads a child's stdout as JSON lines, on a thread.
fn json_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Value> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")));
        }
    });
    rx
}

fn until(rx: &std::sync::mpsc::Receiver<Value>, kind: &str) -> Value {
    loop {
        let event = rx.recv_timeout(T).unwrap_or_else(|_| panic!("no {kind} event"));
        if event["type"] == kind {
            return event;
        }
    }
}

#[test]
fn stream_ask_answer_and_stop_reach_the_host() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    two.ok(&["run", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:s", "--", "start it"]);

    // --stream --ask: the permission event comes back over ssh, `answer` finds the host.
    let target = there.join("allowed.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = two.spawn(&["run", "--stream", "--ask", "--key", "chat:s", "--", &prompt]);
    let events = json_lines(&mut run);
    let ask = until(&events, "permission");
    assert!(!target.exists(), "nothing ran before the answer");
    let out = two.run(&["answer", ask["request_id"].as_str().unwrap(), "allow"], "");
    assert!(out.status.success(), "{}", text(&out));
    let result = until(&events, "result");
    assert_eq!(result["is_error"], false, "{result:#}");
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert!(target.exists(), "the allowed tool ran there");

    // `stop --key` reaches the host: the turn is interrupted (130), the next one continues.
    let mut run = two.spawn(&["run", "--stream", "--key", "chat:s", "--", "a long one [hold=STOP]"]);
    let events = json_lines(&mut run);
    two.remote.api.wait_held("STOP");
    let out = two.run(&["stop", "--key", "chat:s"], "");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("interrupted"),
        "{}",
        text(&out)
    );
    let result = until(&events, "result");
    assert_eq!(result["interrupted"], true, "{result:#}");
    assert_eq!(run.wait().unwrap().code(), Some(130));
    let next = two.run(&["run", "--key", "chat:s", "--", "after the stop"], "");
    assert!(next.status.success(), "{}", text(&next));
    assert!(asked(&two.remote, "after the stop")[0].all_text.contains("a long one [hold=STOP]"));
}

#[test]
fn a_remote_warm_run_keeps_claude_up_there() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    let args = [
        "run", "--json", "--warm", "10m", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:w", "--",
        "warm one",
    ];
    let first = json_of(&two.run(&args, ""));
    assert_eq!(first["warm"], false, "{first:#}");
    let second = two.run(&["run", "--json", "--warm", "10m", "--key", "chat:w", "--", "warm two"], "");
    let second = json_of(&second);
    assert_eq!(second["warm"], true, "the keeper there outlived the first ssh call: {second:#}");
    assert!(asked(&two.remote, "warm two")[0].all_text.contains("warm one"));
    two.remote.clawsess_ok(&["cool"]);
}

#[test]
fn a_clawsess_of_another_protocol_is_refused_with_both_versions_named() {
    let two = Two::new();
    let fake = two.remote.bin_dir().join("clawsess-future");
    std::fs::write(&fake, "#!/bin/sh\necho '{\"protocol\":3,\"version\":\"9.9.9\"}'\ncat > /dev/null\n")
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    two.ok(&["hosts", "add", "future", ALIAS, "--clawsess", "clawsess-future"]);
    let out = two.run(&["run", "--host", "future", "--key", "chat:f", "--", "hi"], "");
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("9.9.9") && err.contains("protocol 3") && err.contains(env!("CARGO_PKG_VERSION")),
        "{err}"
    );
    // And the serving side refuses a caller of another protocol, naming its own.
    let out = run_with_stdin(&mut two.remote.clawsess_cmd(&["serve-ssh", "--protocol", "3"]), "", T);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol 2"), "{}", text(&out));
}

/// Not a test: the cost of reaching a session over ssh, control socket up, measured with
/// `farm-bench` (docs/SSH.md): `show HOST:ID` from the caller vs the same `show ID` run on
/// the host itself, so the difference is what ssh and `serve-ssh` add to any call (a turn
/// there does the same work as a turn here). Run it with
/// `cargo test --release --test e2e_ssh -- --ignored --nocapture remote_call_overhead`.
#[test]
#[ignore]
fn remote_call_overhead() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    let first = two.new_there(cwd, "b", "hi");
    let id = json_of(&first)["session_id"].as_str().unwrap().to_owned();
    let bin = env!("CARGO_BIN_EXE_clawsess");
    let path = |home: &ClaudeHome| format!("PATH={}", home.path_env());
    let local_home = format!("HOME={}", two.local.home().display());
    let ssh = format!("CLAWSESS_SSH={}", two.sshd.ssh_command());
    let remote_home = format!("HOME={}", two.remote.home().display());
    let remote_id = format!("box:{id}");
    let out = Command::new("farm-bench")
        .args(["-n", "40", "--warmup", "3", "--vs"])
        .arg(format!("env -i {remote_home} {} {bin} show {id} -n 1 --json", path(&two.remote)))
        .args([
            "--",
            "env",
            "-i",
            &local_home,
            &path(&two.local),
            &ssh,
            bin,
            "show",
            &remote_id,
            "-n",
            "1",
            "--json",
        ])
        .output()
        .expect("run farm-bench");
    println!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_image_travels_to_the_host_on_stdin() {
    let two = Two::new();
    let there = two.remote.project("there");
    let hex = "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082";
    let png: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let file = two.local.project("here").join("red.png");
    std::fs::write(&file, &png).unwrap();
    let cwd = there.to_str().unwrap();
    let args = ["run", "--json", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:i"];
    let mut all = args.to_vec();
    all.extend(["--image", file.to_str().unwrap(), "--", "what is in the picture"]);
    let out = two.run(&all, "");
    assert!(out.status.success(), "{}", text(&out));
    let req = &asked(&two.remote, "what is in the picture")[0];
    let blocks = req.body["messages"][0]["content"].as_array().unwrap();
    let image = blocks.iter().find(|b| b["type"] == "image").expect("an image block");
    use base64::Engine as _;
    assert_eq!(image["source"]["data"], base64::engine::general_purpose::STANDARD.encode(&png));
    let scratch = two.remote.state().join("ssh-in");
    assert_eq!(std::fs::read_dir(scratch).map(|d| d.count()).unwrap_or(0), 0, "its copy there is gone");
}

#[test]
fn a_busy_session_there_is_exit_75_as_here() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    let args = [
        "run",
        "--stream",
        "--host",
        "box",
        "--new",
        "--cwd",
        cwd,
        "--key",
        "chat:b",
        "--",
        "busy [hold=BUSY]",
    ];
    let mut first =
        two.cmd(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let events = json_lines(&mut first);
    two.remote.api.wait_held("BUSY");
    let out = two.run(&["run", "--json", "--wait", "0", "--key", "chat:b", "--", "me too"], "");
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert_eq!(json_of(&out)["busy"], true);
    two.remote.api.release("BUSY");
    assert_eq!(until(&events, "result")["is_error"], false);
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

#[test]
fn answer_finds_the_host_of_a_request_this_machine_never_saw() {
    let mut two = Two::new();
    let ssh = two.sshd.ssh_command();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    two.ok(&["run", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:a", "--", "start it"]);
    // Another machine (its own state dir) that knows the host but never saw the stream.
    let other = ClaudeHome::new();
    other.install_clawsess();
    let other_cmd = |args: &[&str]| {
        let mut cmd = other.clawsess_cmd(args);
        cmd.env("CLAWSESS_SSH", &ssh);
        run_with_stdin(&mut cmd, "", T)
    };
    let added = other_cmd(&["hosts", "add", "box", ALIAS]);
    assert!(added.status.success(), "{}", text(&added));

    let target = there.join("allowed-elsewhere.txt");
    let prompt = format!("write it [bash=tee {} < /dev/null]", target.display());
    let mut run = two.spawn(&["run", "--stream", "--ask", "--key", "chat:a", "--", &prompt]);
    let events = json_lines(&mut run);
    let ask = until(&events, "permission");
    let id = ask["request_id"].as_str().unwrap();
    let out = other_cmd(&["answer", id, "allow"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("allowed"), "{}", text(&out));
    let result = until(&events, "result");
    assert_eq!(result["is_error"], false, "{result:#}");
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert!(target.exists(), "the tool allowed from the other machine ran there");

    // An id no host has: said so, naming the hosts asked.
    let unknown = "0b6f2d4e-1c2a-4b3d-9e8f-123456789abc";
    let out = other_cmd(&["answer", unknown, "allow"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nor on box"), "{}", text(&out));

    // A host that cannot be asked is named: exit 69.
    two.sshd.stop();
    let out = other_cmd(&["answer", unknown, "allow"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not ask box"), "{}", text(&out));
}

#[test]
fn a_frozen_link_mid_turn_is_exit_74_and_the_host_frees_the_session() {
    let two = Two::new();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    // Short keep-alives: a probe a second, two missed and the link is dead.
    let cmd = |args: &[&str]| {
        let mut cmd = two.cmd(args);
        cmd.env("CLAWSESS_SSH_ALIVE", "1,2");
        cmd
    };
    let first = run_with_stdin(
        &mut cmd(&["run", "--host", "box", "--new", "--cwd", cwd, "--key", "chat:z", "--", "first"]),
        "",
        T,
    );
    assert!(first.status.success(), "{}", text(&first));
    let run = cmd(&["run", "--stream", "--key", "chat:z", "--", "a long job [hold=FREEZE]"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    two.remote.api.wait_held("FREEZE");
    let frozen = two.sshd.freeze_connections(true);
    assert!(!frozen.is_empty(), "sshd serves the connection");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(74), "{}", text(&out));
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_owned();
    let last: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert!(last["error"].as_str().unwrap().contains("connection to box"), "{last:#}");

    // The old connection is still frozen (its sshd never tells serve-ssh anything): the host
    // noticed the missing heartbeats itself, stopped the turn and freed the session.
    let next = run_with_stdin(
        &mut cmd(&["run", "--json", "--key", "chat:z", "--wait", "60", "--", "after the freeze"]),
        "",
        T,
    );
    assert!(next.status.success(), "{}\nsshd: {}", text(&next), two.sshd.log());
    let seen = &asked(&two.remote, "after the freeze")[0];
    assert!(seen.all_text.contains("a long job [hold=FREEZE]"), "the frozen turn's prompt stayed");
    two.sshd.freeze_connections(false);
}

#[test]
fn a_global_attachment_to_a_remote_session_is_followed_by_every_key_not_attached_itself() {
    let two = Two::new();
    let here = two.local.project("here");
    let local = two.run(
        &["run", "--json", "--new", "--cwd", here.to_str().unwrap(), "--key", "loc:1", "--", "a local turn"],
        "",
    );
    let local_id = json_of(&local)["session_id"].as_str().unwrap().to_owned();
    let there = two.remote.project("there");
    let cwd = there.to_str().unwrap();
    let first = two.new_there(cwd, "chat:1", "first remote turn");
    assert!(first.status.success(), "{}", text(&first));
    let id = json_of(&first)["session_id"].as_str().unwrap().to_owned();
    let named = format!("box:{id}");

    // Globally, by a prefix: the full id there comes back.
    let attached = two.run(&["attach", &format!("box:{}", &id[..8]), "--json"], "");
    assert!(attached.status.success(), "{}", text(&attached));
    let attached = json_of(&attached);
    assert_eq!(
        (attached["session_id"].as_str(), attached["global"].as_bool()),
        (Some(named.as_str()), Some(true))
    );
    assert!(attached["last_prompt"].as_str().unwrap().contains("first remote turn"), "{attached:#}");
    let current: Value = serde_json::from_str(&two.ok(&["current", "--key", "tg:9", "--json"])).unwrap();
    assert_eq!(
        (current["session_id"].as_str(), current["via"].as_str()),
        (Some(named.as_str()), Some("global"))
    );

    // A key with no attachment of its own continues the remote session there.
    let next = two.run(&["run", "--json", "--key", "tg:9"], "through the global attachment");
    assert!(next.status.success(), "{}\nsshd: {}", text(&next), two.sshd.log());
    assert_eq!(json_of(&next)["session_id"], id.as_str());
    let seen = asked(&two.remote, "through the global attachment");
    assert_eq!(seen.len(), 1, "the host's model answered it");
    assert!(seen[0].all_text.contains("first remote turn"), "it continued the conversation");
    assert!(asked(&two.local, "through the global attachment").is_empty());
    // ... and it did not become tg:9's own session, there or here.
    let own = run_with_stdin(&mut two.remote.clawsess_cmd(&["current", "--key", "tg:9"]), "", T);
    assert_eq!(own.status.code(), Some(1), "the host gave tg:9 an own session: {}", text(&own));

    // A key attached here itself stays here (its attachment comes first).
    two.ok(&["attach", &local_id, "--key", "loc:2"]);
    two.run(&["run", "--json", "--key", "loc:2", "--", "attached here"], "");
    assert_eq!(asked(&two.local, "attached here").len(), 1, "the local model answered it");

    // list, list --all and status show it as NAME:ID.
    assert!(two.ok(&["list"]).contains(&format!("global attachment {named}")));
    let all: Value = serde_json::from_str(&two.ok(&["list", "--all", "--json"])).unwrap();
    let row = all.as_array().unwrap().iter().find(|r| r["session_id"] == named.as_str()).unwrap();
    assert_eq!(row["attached_keys"][0], "*", "{row:#}");
    let status: Value = serde_json::from_str(&two.ok(&["status", "--key", "tg:9", "--json"])).unwrap();
    assert_eq!(
        (status["session_id"].as_str(), status["via"].as_str()),
        (Some(named.as_str()), Some("global"))
    );

    // `run --new` makes a session here and holds its key to it (as under a global attachment
    // here), so its next turn does not go back to the host.
    let new = two.run(
        &["run", "--json", "--new", "--cwd", here.to_str().unwrap(), "--key", "tg:n", "--", "new here"],
        "",
    );
    let new_id = json_of(&new)["session_id"].as_str().unwrap().to_owned();
    assert_eq!(asked(&two.local, "new here").len(), 1);
    let current: Value = serde_json::from_str(&two.ok(&["current", "--key", "tg:n", "--json"])).unwrap();
    assert_eq!(
        (current["session_id"].as_str(), current["via"].as_str()),
        (Some(new_id.as_str()), Some("key"))
    );

    // `--claude` names a program here: refused for a run that goes to the host.
    let out = two.run(&["run", "--claude", "/bin/true", "--key", "tg:9", "--", "x"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names a program on this machine"),
        "{}",
        text(&out)
    );
    // `cool` with no SESSION says it is this machine's only.
    assert!(two.ok(&["cool"]).contains("this machine's warm sessions only"));

    // detach removes it: tg:9 then has no session (the remote one never became its own).
    let detached: Value = serde_json::from_str(&two.ok(&["detach", "--json"])).unwrap();
    assert_eq!(detached["detached"], named.as_str());
    let out = two.run(&["current", "--key", "tg:9"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn the_mcp_tools_list_read_and_check_sessions_on_a_host() {
    let mut two = Two::new();
    let here = two.local.project("here");
    let local = two.run(
        &["run", "--json", "--new", "--cwd", here.to_str().unwrap(), "--key", "loc:1", "--", "a local turn"],
        "",
    );
    let local_id = json_of(&local)["session_id"].as_str().unwrap().to_owned();
    let there = two.remote.project("there");
    let first = two.new_there(there.to_str().unwrap(), "chat:1", "the remote [topic]");
    let id = json_of(&first)["session_id"].as_str().unwrap().to_owned();
    let named = format!("box:{id}");

    let results = call_tools(
        two.cmd(&["mcp"]),
        &[
            ("sessions_list", serde_json::json!({"all": true})),
            ("sessions_list", serde_json::json!({})),
            ("sessions_list", serde_json::json!({"host": "box", "key_prefix": "chat:"})),
            ("sessions_history", serde_json::json!({"session": format!("box:{}", &id[..8])})),
            ("session_status", serde_json::json!({"session": "key:chat:1"})),
        ],
    );
    for r in &results {
        assert_eq!(r["isError"], false, "{r:#}");
    }
    let rows = |i: usize| -> Vec<Value> { serde_json::from_str(&tool_text(&results[i], 0)).unwrap() };
    let ids = |i: usize| -> Vec<String> {
        rows(i).iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(0), [named.clone(), local_id.clone()], "both machines, newest first");
    assert_eq!(rows(0)[0]["host"], "box");
    assert_eq!(rows(0)[0]["keys"], serde_json::json!(["chat:1"]));
    assert_eq!(ids(1), [local_id.as_str()], "without `all`: this machine only");
    assert_eq!(ids(2), [named.as_str()]);
    let history: Value = serde_json::from_str(&tool_text(&results[3], 0)).unwrap();
    assert_eq!(history["session_id"], named.as_str());
    assert!(history["turns"][0]["prompt"].as_str().unwrap().contains("the remote [topic]"), "{history:#}");
    let status: Value = serde_json::from_str(&tool_text(&results[4], 0)).unwrap();
    assert_eq!((status["session_id"].as_str(), status["host"].as_str()), (Some(named.as_str()), Some("box")));
    assert_eq!(status["run_turns"], 1, "{status:#}");

    // A host that is down: a clear tool result, not a hang; the rest is still listed.
    two.sshd.stop();
    let results = call_tools(
        two.cmd(&["mcp"]),
        &[
            ("sessions_list", serde_json::json!({"all": true})),
            ("session_status", serde_json::json!({"session": named})),
        ],
    );
    assert_eq!(results[0]["isError"], false, "{:#}", results[0]);
    assert_eq!(tool_text(&results[0], 0).matches(&local_id).count(), 1);
    assert!(tool_text(&results[0], 1).contains("could not reach box"), "{:#}", results[0]);
    assert_eq!(results[1]["isError"], true);
    assert!(tool_text(&results[1], 0).contains("could not reach box"), "{:#}", results[1]);
}

#[test]
fn a_send_to_a_session_on_a_host_runs_there_under_the_callers_rules() {
    let two = Two::new();
    let careful = two.local.project("careful");
    let settings = |dir: &std::path::Path, doc: Value| {
        std::fs::create_dir_all(dir.join(".claude")).unwrap();
        std::fs::write(dir.join(".claude/settings.json"), doc.to_string()).unwrap();
    };
    let a = two.run(
        &[
            "run",
            "--json",
            "--new",
            "--cwd",
            careful.to_str().unwrap(),
            "--key",
            "loc:a",
            "--",
            "hello careful",
        ],
        "",
    );
    let a = json_of(&a)["session_id"].as_str().unwrap().to_owned();
    let lenient = two.remote.project("lenient");
    let b = two.new_there(lenient.to_str().unwrap(), "chat:b", "hello lenient");
    let b = json_of(&b)["session_id"].as_str().unwrap().to_owned();
    // A turn of A whose model may use TOOLS, asked PROMPT.
    let ask_from_a = |tools: &str, prompt: &str| {
        two.run(&["run", "--json", "--session", &a, "-A", "--allowedTools", "-A", tools, "--", prompt], "")
    };
    let send = |message: &str| {
        support::stand_in_api::ToolCall::new(
            "mcp__clawsess__sessions_send",
            serde_json::json!({"session": format!("box:{}", &b[..8]), "message": message}),
        )
    };
    // A's run allows Bash, B's project (on the host) too: carried, A's allow lets B's run it.
    settings(&lenient, serde_json::json!({"permissions": {"allow": ["Bash"]}}));
    two.local.api.script_tools("[ask-box-0]", vec![send("run this [from-a-0] [bash=touch allowed.txt]")]);
    let out = ask_from_a("mcp__clawsess Bash", "ask box [ask-box-0]");
    assert_eq!(json_of(&out)["is_error"], false, "{}", text(&out));
    assert_eq!(asked(&two.remote, "[from-a-0]").len(), 2, "B's prompt, then the Bash call's result");
    assert!(lenient.join("allowed.txt").exists(), "what both allow ran");
    // A's project denies Bash now: the deny is carried and holds there.
    settings(&careful, serde_json::json!({"permissions": {"deny": ["Bash"]}}));
    two.local.api.script_tools("[ask-box]", vec![send("run this [from-careful] [bash=touch pwned.txt]")]);
    let out = ask_from_a("mcp__clawsess Bash", "ask box [ask-box]");
    assert_eq!(json_of(&out)["is_error"], false, "{}", text(&out));
    // B's model, on the host, got the message and called Bash: refused, nothing ran.
    let at_b = asked(&two.remote, "[from-careful]");
    assert_eq!(at_b.len(), 2, "B's prompt, then the Bash call's result");
    assert!(at_b[0].all_text.contains("hello lenient"), "B's conversation went on");
    let results: Vec<String> = at_b[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_result")
        .map(|b| b.to_string())
        .collect();
    let results = results.join("\n");
    assert!(results.contains("\"is_error\":true") && results.contains("Bash"), "{results}");
    assert!(!lenient.join("pwned.txt").exists(), "A's deny rule did not hold on the host");
    // A's model got B's reply as the tool's result.
    let back = asked(&two.local, "[ask-box]").pop().unwrap();
    assert!(back.all_text.contains(&format!("Reply from session box:{b}")), "{}", back.all_text);
    // The turn there is a run of surface session:<A>.
    let status: Value = serde_json::from_str(&two.ok(&["status", &format!("box:{b}"), "--json"])).unwrap();
    assert_eq!(status["last_surface"], format!("session:{a}"));

    // `reply: none`: handed to a deliverer on the host; A's turn ends while B's is held there.
    let none = support::stand_in_api::ToolCall::new(
        "mcp__clawsess__sessions_send",
        serde_json::json!({"session": format!("box:{b}"), "message": "long task [hold=worker]", "reply": "none"}),
    );
    two.local.api.script_tools("[delegate]", vec![none]);
    assert_eq!(json_of(&ask_from_a("mcp__clawsess", "hand it over [delegate]"))["is_error"], false);
    let back = asked(&two.local, "[delegate]").pop().unwrap().all_text;
    assert!(back.contains("it works on it by itself there"), "{back}");
    two.remote.api.wait_held("worker");
    two.remote.api.release("worker");
    support::testenv::wait_until(T, "the delivery is noted on the host", || {
        let status: Value =
            serde_json::from_str(&two.ok(&["status", &format!("box:{b}"), "--json"])).unwrap();
        status["last_detached_send"]["ok"] == true
    });

    // B's project on the host gets a PreToolUse hook (its allow beats claude -p's denial):
    // the host refuses the send, naming it, and runs nothing.
    settings(
        &lenient,
        serde_json::json!({"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": "allow-all.sh"}]}]}}),
    );
    two.local.api.script_tools("[ask-hooked]", vec![send("hooked [from-careful-3]")]);
    assert_eq!(json_of(&ask_from_a("mcp__clawsess", "ask [ask-hooked]"))["is_error"], false);
    let back = asked(&two.local, "[ask-hooked]").pop().unwrap().all_text;
    assert!(
        back.contains("box: refused") && back.contains("PreToolUse hook") && back.contains("allow-all.sh"),
        "{back}"
    );
    assert!(asked(&two.remote, "[from-careful-3]").is_empty(), "nothing reached B");

    // A's settings that cannot be read: refused here, nothing reaches the host.
    std::fs::write(careful.join(".claude/settings.json"), "{ not json").unwrap();
    two.local.api.script_tools("[ask-again]", vec![send("again [from-careful-2]")]);
    let out = ask_from_a("mcp__clawsess", "again [ask-again]");
    assert_eq!(json_of(&out)["is_error"], false, "{}", text(&out));
    let back = asked(&two.local, "[ask-again]").pop().unwrap().all_text;
    assert!(back.contains("not valid JSON"), "{back}");
    assert!(asked(&two.remote, "[from-careful-2]").is_empty(), "nothing reached B");
}
