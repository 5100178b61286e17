//! `sessions_send`: a `clawsess run` turn on the target session, from this same binary, with
//! the message on its stdin (never on a command line). So a send takes the target's locks,
//! waits while it is busy and then says so, catches up, never forks and is recorded like every
//! run, under the surface key `session:<caller id>`. A subprocess rather than a library call:
//! `run`'s driver (cold or warm claude, stream-json, fork reconciling) stays in one place.
//!
//! Permissions: the target turn is a `claude -p` with no one to ask, never allowed more than
//! the caller's own turn: [`crate::perms`] computes its `--permission-mode`, `--allowedTools`
//! and `--disallowedTools` from the caller's command line (read from `/proc`, not from the
//! model) and both sessions' settings files, or refuses the send when it cannot.
//!
//! `reply: none` hands the turn to a detached `clawsess mcp --deliver` (its own session, so
//! it outlives the caller's claude), which runs the same turn and leaves a [`SendNote`] that
//! `clawsess status` and `session_status` show.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::caller::{self, CHAIN_ENV, SEND_KEY_PREFIX};
use crate::ident::SessionId;
use crate::perms::{self, Grant};
use crate::remote::SendRequest;
pub use crate::store::SendNote;
use crate::store::{SettingsOf, Store, now_ms};

/// Longest message a send takes.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// How long a send waits for the reply by default (the target being busy included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What the caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Wait,
    None,
}

/// A checked send.
#[derive(Debug)]
pub struct Send {
    pub from: SessionId,
    pub target: SessionId,
    pub message: String,
    /// The sessions before `from` in the chain, oldest first.
    pub chain: Vec<SessionId>,
    /// The permission mode of the target's turn.
    pub mode: String,
    /// The rules of the target's turn: `--allowedTools` and `--disallowedTools`.
    pub allowed: Vec<String>,
    pub disallowed: Vec<String>,
    pub timeout: Duration,
}

impl Send {
    /// Checks a send from the calling session (found from the process tree) to `target`;
    /// nothing is written when it is refused.
    pub fn check(store: &Store, target: SessionId, message: String, timeout: Duration) -> Result<Send> {
        check_message(&message)?;
        let rec = target_checks(store, &target)?;
        let caller = caller::find(store)?;
        let chain = caller::chain(store, &caller.session);
        if let Some(why) = caller::refusal(&caller.session, &chain, &target) {
            bail!("refused: {why}");
        }
        let user_dir = crate::claude::config_dir(None)?;
        loosening_hooks(&target, &rec.cwd, &user_dir)?;
        let grant = grant(store, &caller, &target, &rec.cwd, &user_dir).context(CANNOT_TELL)?;
        Ok(Send {
            from: caller.session,
            target,
            message,
            chain,
            mode: grant.mode,
            allowed: grant.allowed,
            disallowed: grant.disallowed,
            timeout,
        })
    }

    /// Checks, on a host, a send that came over ssh from a session on another machine: the
    /// same checks as [`Send::check`], with the caller's side of the grant as the request
    /// carries it (checked: [`perms::CallerRules::check_carried`]) and the target's side read
    /// here. The caller's rules on paths of its project mean other files here: its allows of
    /// that kind are dropped, its denies kept as written and as absolute paths.
    pub fn on_host(store: &Store, req: &SendRequest) -> Result<Send> {
        check_message(&req.message)?;
        let from = SessionId::parse(&req.from).context("the calling session")?;
        if !(1..=86_400).contains(&req.timeout_s) {
            bail!("a send's timeout is 1 to 86400 s, not {}", req.timeout_s);
        }
        if req.chain.len() > caller::MAX_DEPTH {
            bail!(
                "refused: a chain of {} sends came with this one (at most {})",
                req.chain.len(),
                caller::MAX_DEPTH
            );
        }
        let chain = req
            .chain
            .iter()
            .map(|s| SessionId::parse(s))
            .collect::<Result<Vec<_>>>()
            .context("the chain of sends")?;
        let target = crate::resolve::find_session_or_key(store, &req.session)?;
        let rec = target_checks(store, &target)?;
        if let Some(why) = caller::refusal(&from, &chain, &target) {
            bail!("refused: {why}");
        }
        req.rules.check_carried().context(CANNOT_TELL)?;
        let user_dir = crate::claude::config_dir(None)?;
        loosening_hooks(&target, &rec.cwd, &user_dir)?;
        let own =
            store.settings(&SettingsOf::Session(target.clone()))?.and_then(|r| r.settings.permission_mode);
        let cwd = std::fs::canonicalize(&rec.cwd).unwrap_or_else(|_| rec.cwd.clone());
        let grant =
            perms::combine(&req.rules, &perms::Target { cwd: &cwd, mode: own.as_deref() }, &user_dir, false)
                .context(CANNOT_TELL)?;
        Ok(Send {
            from,
            target,
            message: req.message.clone(),
            chain,
            mode: grant.mode,
            allowed: grant.allowed,
            disallowed: grant.disallowed,
            timeout: Duration::from_secs(req.timeout_s),
        })
    }

    /// The `clawsess run` of the turn, its stdin the message.
    pub fn run_command(&self) -> Result<Command> {
        let exe = std::env::current_exe().context("could not find this binary's path")?;
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--json", "--session", self.target.as_str()])
            .args(["--key", &format!("{SEND_KEY_PREFIX}{}", self.from)])
            .args(["--wait", &self.timeout.as_secs().to_string()])
            .args(["-A", "--permission-mode", "-A", &self.mode]);
        for (flag, rules) in [("--allowedTools", &self.allowed), ("--disallowedTools", &self.disallowed)] {
            for rule in rules {
                cmd.args(["-A", flag, "-A", rule]);
            }
        }
        self.env(&mut cmd);
        Ok(cmd)
    }

    /// The chain for the turn's claude (and its own MCP server), and none of the caller's
    /// claude's identity.
    fn env(&self, cmd: &mut Command) {
        let chain: Vec<&str> = self.chain.iter().chain([&self.from]).map(SessionId::as_str).collect();
        cmd.env(CHAIN_ENV, chain.join(","));
        // Who the caller's claude is (Claude Code's settings, like CLAUDE_CODE_USE_BEDROCK, stay).
        for name in [
            "CLAUDECODE",
            "CLAUDE_PID",
            "CLAUDE_ENV_FILE",
            "CLAUDE_PROJECT_DIR",
            "CLAUDE_CODE_SESSION_ID",
            "CLAUDE_CODE_ENTRYPOINT",
            "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS",
            "CLAUDE_CODE_CHILD_NOTES_DIR",
            "CLAUDE_AGENT_SDK_VERSION",
            "CLAWSESS_RUN_PID",
            "CLAWSESS_RUN_KEY",
            "CLAWSESS_KEY",
            "CLAWSESS_SESSION_ID",
        ] {
            cmd.env_remove(name);
        }
    }

    /// Runs the turn and waits up to the timeout for its reply.
    pub fn wait(&self) -> Result<String> {
        let mut cmd = self.run_command()?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("could not start clawsess run")?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let message = self.message.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(message.as_bytes());
        });
        let out = reader(child.stdout.take().expect("piped stdout"));
        let err = reader(child.stderr.take().expect("piped stderr"));
        // The run waits for a busy target up to the same timeout; a little more for its reply
        // to come back.
        let deadline = Instant::now() + self.timeout + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                // Not stopped: the turn is the target's now; its answer lands in its transcript.
                std::thread::spawn(move || child.wait());
                bail!(
                    "no reply from {} within {} s; its turn goes on, and its answer will be in \
                     sessions_history",
                    self.target,
                    self.timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        outcome(&stdout, &stderr, status.code())
    }

    /// Hands the turn to a detached deliverer and returns at once.
    pub fn detach(&self) -> Result<()> {
        let exe = std::env::current_exe().context("could not find this binary's path")?;
        let mut cmd = Command::new(exe);
        cmd.args(["mcp", "--deliver", self.target.as_str(), "--from", self.from.as_str()]).args([
            "--mode",
            &self.mode,
            "--timeout",
            &self.timeout.as_secs().to_string(),
        ]);
        for rule in &self.allowed {
            cmd.arg(format!("--allow={rule}"));
        }
        for rule in &self.disallowed {
            cmd.arg(format!("--deny={rule}"));
        }
        self.env(&mut cmd);
        // Chain for the deliverer itself: it checks nothing, it runs.
        cmd.env(CHAIN_ENV, self.chain.iter().map(SessionId::as_str).collect::<Vec<_>>().join(","));
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe; its own session outlives the caller's claude.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("could not start the delivery")?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(self.message.as_bytes()).context("could not hand the message over")?;
        drop(stdin);
        // Reaped by whoever inherits it once this server is gone; until then, by a thread.
        std::thread::spawn(move || child.wait());
        Ok(())
    }
}

const CANNOT_TELL: &str = "refused: clawsess cannot tell what the caller may do, so it runs nothing for it";

fn check_message(message: &str) -> Result<()> {
    if message.trim().is_empty() {
        bail!("the message is empty");
    }
    if message.len() > MAX_MESSAGE {
        bail!("the message is {} bytes; at most {MAX_MESSAGE} (4 MiB) go in one send", message.len());
    }
    Ok(())
}

/// The target's record, if it can be continued.
fn target_checks(store: &Store, target: &SessionId) -> Result<crate::store::SessionRecord> {
    let Some(rec) = store.session(target)? else { bail!("no recorded session {target}") };
    if !rec.transcript.is_file() {
        bail!(
            "the transcript of {target} is gone ({}); Claude Code deletes old ones \
             (cleanupPeriodDays), so it cannot be continued",
            rec.transcript.display()
        );
    }
    Ok(rec)
}

/// Refuses a target whose claude loads a hook that could let a call through.
fn loosening_hooks(target: &SessionId, cwd: &std::path::Path, user_dir: &std::path::Path) -> Result<()> {
    let hooks = perms::loosening_hooks(cwd, user_dir).context(CANNOT_TELL)?;
    if let Some(hook) = hooks.first() {
        bail!(
            "refused: {target} runs {hook}; such a hook can let a tool call through that the \
             caller's run would not have allowed, and a send's turn is never looser than the \
             caller, so clawsess sends nothing to a session whose settings have one (remove \
             it there, or ask that session from a terminal)"
        );
    }
    Ok(())
}

/// The caller's side of the grant ([`perms::caller_rules`]) and its claude's cwd.
fn caller_rules(
    store: &Store,
    caller: &caller::Caller,
    user_dir: &std::path::Path,
) -> Result<(perms::CallerRules, PathBuf)> {
    let args = perms::CommandLine::of(caller.claude)?;
    let cwd_link = format!("/proc/{}/cwd", caller.claude);
    let caller_cwd = std::fs::read_link(&cwd_link).with_context(|| format!("could not read {cwd_link}"))?;
    // The mode at the caller's prompt, when its turn is marked (a terminal, `claude -p`, the
    // Agent SDK; a `run`'s claude keeps the mode of its command line).
    let marker = crate::turn::exclusion::busy_marker(store, &caller.session)?;
    let now = marker.filter(|m| m.pid == Some(caller.claude)).and_then(|m| m.permission_mode);
    let rules = perms::caller_rules(
        &perms::Caller { args: &args, cwd: &caller_cwd, mode_now: now.as_deref() },
        user_dir,
    )?;
    Ok((rules, caller_cwd))
}

/// What the target's turn of a send from `caller` may do ([`perms::grant`]).
fn grant(
    store: &Store,
    caller: &caller::Caller,
    target: &SessionId,
    cwd: &std::path::Path,
    user_dir: &std::path::Path,
) -> Result<Grant> {
    let (mine, caller_cwd) = caller_rules(store, caller, user_dir)?;
    let target_cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let own = store.settings(&SettingsOf::Session(target.clone()))?.and_then(|r| r.settings.permission_mode);
    let target = perms::Target { cwd: &target_cwd, mode: own.as_deref() };
    perms::combine(&mine, &target, user_dir, caller_cwd == target_cwd)
}

/// `serve-ssh`'s side of a [`SendRequest`]: checks it ([`Send::on_host`]; a refusal is
/// printed as `{"refused": why}`), then hands a `reply: none` to a detached deliverer here
/// (`{"text": ...}`), or runs the turn with its `run --json` object on our stdout, the run
/// given to `supervise` (which stops it if the link goes).
pub fn serve_remote(
    req: &SendRequest,
    supervise: impl FnOnce(std::process::Child) -> Result<u8>,
) -> Result<u8> {
    let store = Store::open()?;
    let send = match Send::on_host(&store, req) {
        Ok(send) => send,
        Err(err) => {
            crate::outln!("{}", serde_json::json!({ "refused": format!("{err:#}") }))?;
            return Ok(crate::exit::OK);
        }
    };
    if !req.wait {
        send.detach()?;
        crate::outln!("{}", serde_json::json!({ "text": "handed over" }))?;
        return Ok(crate::exit::OK);
    }
    let mut cmd = send.run_command()?;
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().context("could not start clawsess run")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let message = send.message.clone();
    std::thread::spawn(move || {
        let _ = stdin.write_all(message.as_bytes());
    });
    supervise(child)
}

/// `sessions_send` to session `there` on host `name` (`NAME:SESSION`, or a key whose turns
/// go there): the caller is found and its side of the grant read here, and carried in the
/// request; the host checks the rest and runs the turn (see [`Send::on_host`]). The reply,
/// or what the host said.
pub fn to_host(
    store: &Store,
    name: &str,
    there: &str,
    message: &str,
    reply: Reply,
    timeout: Duration,
) -> Result<String> {
    check_message(message)?;
    let caller = caller::find(store)?;
    let chain = caller::chain(store, &caller.session);
    let user_dir = crate::claude::config_dir(None)?;
    let (rules, _) = caller_rules(store, &caller, &user_dir).context(CANNOT_TELL)?;
    // Checked here too, so that what the host would refuse to carry is said before ssh runs.
    rules.check_carried().context(CANNOT_TELL)?;
    let request = crate::remote::Request::Send(SendRequest {
        session: there.to_owned(),
        message: message.to_owned(),
        wait: reply == Reply::Wait,
        timeout_s: timeout.as_secs(),
        from: caller.session.to_string(),
        chain: chain.iter().map(SessionId::to_string).collect(),
        rules,
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let (store2, name2) = (store.clone(), name.to_owned());
    // On its own thread, so a reply that does not come in time leaves the call running: the
    // turn there goes on while this server runs (a lost link stops it there, as for `run`).
    std::thread::spawn(move || {
        let result = (|| {
            let host = crate::remote::client::host(&store2, &name2)?;
            let mut call = crate::remote::client::connect(&store2, &host, true)?;
            call.send(&request)?;
            call.collect()
        })();
        let _ = tx.send(result);
    });
    let Ok(result) = rx.recv_timeout(timeout + Duration::from_secs(30)) else {
        bail!(
            "no reply from {name}:{there} within {} s; its turn there goes on while this session's \
             tools run, and its answer will be in sessions_history",
            timeout.as_secs()
        );
    };
    let (code, out) = result?;
    let doc: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    if let Some(why) = doc.get("refused").and_then(Value::as_str) {
        bail!("{name}: {why}");
    }
    if reply == Reply::None && doc.get("text").is_some() {
        return Ok(format!(
            "Sent to session {name}:{there}; it works on it by itself there (session_status \
             {name}:{there} shows how the delivery went)."
        ));
    }
    let text = outcome(&out, b"", Some(i32::from(code)))?;
    let id = doc.get("session_id").and_then(Value::as_str).unwrap_or(there);
    Ok(format!("Reply from session {name}:{id}:\n\n{text}"))
}

fn reader(mut pipe: impl Read + std::marker::Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The reply in `run --json`'s object, or the error it reports.
fn outcome(stdout: &[u8], stderr: &[u8], code: Option<i32>) -> Result<String> {
    let doc: Option<Value> = serde_json::from_slice(stdout).ok();
    let Some(doc) = doc else {
        let said = String::from_utf8_lossy(stderr);
        let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        bail!("the turn failed (clawsess run exited with {code:?}): {last}");
    };
    let text = |field: &str| doc.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
    if doc.get("busy").and_then(Value::as_bool) == Some(true) {
        bail!("{}", text("error"));
    }
    if doc.get("is_error").and_then(Value::as_bool) == Some(true) {
        let why = [text("error"), text("result")].into_iter().find(|t| !t.is_empty());
        bail!("the target's turn failed: {}", why.unwrap_or_else(|| "no reason given".into()));
    }
    Ok(text("result"))
}

/// `clawsess mcp --deliver`: runs a `reply: none` turn (message on stdin) and notes how it went.
pub fn deliver(target: &str, from: &str, mode: &str, rules: [&[String]; 2], timeout: Duration) -> Result<u8> {
    let store = Store::open()?;
    let target = SessionId::parse(target)?;
    let from = SessionId::parse(from)?;
    let mut message = String::new();
    std::io::stdin().take(MAX_MESSAGE as u64 + 1).read_to_string(&mut message)?;
    let chain = std::env::var(CHAIN_ENV)
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| SessionId::parse(s).ok())
        .collect();
    let mode = perms::strictest(&[mode])?;
    let [allowed, disallowed] = rules.map(<[String]>::to_vec);
    let send = Send {
        from: from.clone(),
        target: target.clone(),
        message,
        chain,
        mode,
        allowed,
        disallowed,
        timeout,
    };
    let mut note = SendNote {
        v: crate::store::FORMAT,
        from,
        pid: std::process::id(),
        started: now_ms(),
        finished: None,
        ok: None,
        error: None,
    };
    note.write(&store, &target)?;
    let result = send.wait();
    note.finished = Some(now_ms());
    note.ok = Some(result.is_ok());
    note.error = result.as_ref().err().map(|e| format!("{e:#}"));
    note.write(&store, &target)?;
    Ok(if result.is_ok() { crate::exit::OK } else { crate::exit::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_object_becomes_the_reply_or_its_error() {
        let ok = br#"{"result":"hello","is_error":false,"busy":false}"#;
        assert_eq!(outcome(ok, b"", Some(0)).unwrap(), "hello");
        let busy = br#"{"error":"session x is busy (terminal)","is_error":true,"busy":true,"result":""}"#;
        assert!(format!("{:#}", outcome(busy, b"", Some(75)).unwrap_err()).contains("busy (terminal)"));
        let failed = br#"{"result":"API Error: 500","is_error":true,"busy":false}"#;
        assert!(format!("{:#}", outcome(failed, b"", Some(1)).unwrap_err()).contains("API Error: 500"));
        let none = outcome(b"", b"clawsess: could not run claude\n", Some(1)).unwrap_err();
        assert!(format!("{none:#}").contains("could not run claude"));
    }
}
