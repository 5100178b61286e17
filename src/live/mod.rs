//! Live turns: claude driven through its stream-json protocol, the way the Agent SDK drives
//! it, for every `run` turn (streamed or not, cold or warm), so that a turn can tell its
//! caller what it does as it goes ([`Event`]), put tool calls that need permission to the
//! caller (`run --ask`, [`ask`]), be interrupted (`clawsess stop`, [`stop`]), take pictures
//! ([`image`]), and give up on a claude that never starts ([`START_TIMEOUT`]).
//!
//! `claude -p --input-format stream-json --output-format stream-json --verbose` reads the
//! prompt (and images) as one user message on stdin and prints one JSON line per message;
//! with `--permission-prompt-tool stdio` it asks about each tool call that needs permission
//! with a `control_request` on stdout and waits for our `control_response` on stdin. An
//! interrupt is a `control_request` of ours. Stdin stays open until the turn's `result`.

pub mod ask;
pub mod event;
pub mod image;
pub mod steer;
pub mod stop;
pub mod wire;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

pub use event::{Event, JsonLines, Sink};

use crate::claude::{ForwardSignals, Outcome, child_command};
use crate::ident::RequestId;
use crate::store::{Decision, PermissionAnswer, Store};

/// How often a live turn looks for answers and stop requests while claude is quiet.
pub const TICK: Duration = Duration::from_millis(100);
/// After an interrupt, how long claude may take to end the turn before it gets SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// After SIGTERM (or after the result, once stdin is closed), how long before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Default of `--ask-timeout`.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(300);
/// `run`'s exit status for a turn interrupted by `clawsess stop` (128 + SIGINT).
pub const INTERRUPTED: u8 = 130;
/// How long a claude just started may take to print its first line (`system` `init`, which
/// every version tried prints before it asks the model: 1.2 to 1.5 s here, about 11 s for a
/// 200 MB transcript) before the turn gives up on it; `CLAWSESS_START_TIMEOUT` changes it.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that sets [`START_TIMEOUT`].
pub const START_TIMEOUT_ENV: &str = "CLAWSESS_START_TIMEOUT";

/// `CLAWSESS_START_TIMEOUT` (a duration like `90s` or `2m`; empty counts as unset), else
/// [`START_TIMEOUT`].
pub fn start_timeout_from_env() -> Result<Duration> {
    match std::env::var(START_TIMEOUT_ENV) {
        Ok(text) if !text.trim().is_empty() => crate::sys::parse_duration(&text).context(START_TIMEOUT_ENV),
        _ => Ok(START_TIMEOUT),
    }
}

/// A claude started for a turn printed nothing within the turn's `start_timeout`; it was
/// killed. The message says why, when that can be told.
#[derive(Debug)]
pub struct NotStarted(String);

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotStarted {}

/// One turn of `run` (streamed or not, cold or warm), through the stream-json protocol.
pub struct LiveTurn<'a> {
    pub turn: crate::claude::Turn<'a>,
    pub store: &'a Store,
    /// Send the prompt as written (no `@file` expansion, no slash command): text from chat
    /// users. `run --allow-slash` turns it off.
    pub verbatim: bool,
    /// Image blocks sent before the prompt (see [`image::image_block`]).
    pub images: &'a [Value],
    /// With `--ask`: put tool calls that need permission to the caller, denying them after
    /// this long without an answer. Without: claude denies them itself, as in `-p` mode.
    pub ask: Option<Duration>,
    /// How long claude may take to print anything after it is started (see
    /// [`START_TIMEOUT`]); a claude that has not by then is killed and the turn fails.
    pub start_timeout: Duration,
}

/// A permission request the turn waits on: ours, and claude's id for it.
struct Waiting {
    claude_id: String,
    kind: ask::Kind,
    input: Value,
    timeout_at: Instant,
}

/// Where the turn stands while claude runs.
#[derive(Default)]
struct Progress {
    waiting: HashMap<RequestId, Waiting>,
    asked: Vec<RequestId>,
    stop_asked: Option<Instant>,
    terminated: Option<Instant>,
    result: Option<Map<String, Value>>,
    /// The input of each tool call the model made this turn, by tool_use id: claude may ask
    /// about a call with less (ExitPlanMode's plan is left out of its `can_use_tool`).
    tool_inputs: HashMap<String, Value>,
    /// The plan file the model wrote this turn, in plan mode (see [`ask::plan_file`]).
    plan_file: Option<std::path::PathBuf>,
    /// Messages of `run --steer` taken into this turn (see [`steer`]).
    inbox: steer::Inbox,
    /// claude printed something this turn.
    heard: bool,
    /// A claude started for this turn must have printed something by then.
    start_by: Option<Instant>,
}

impl LiveTurn<'_> {
    /// Runs the turn on a claude started for it: events go to `sink` as they happen,
    /// `started` learns claude's pid as soon as it runs. The outcome's stdout holds the result
    /// object (`"type": "result"`, claude's fields, and `"interrupted"`), as `claude -p
    /// --output-format json` would print it. A SIGTERM, SIGINT or SIGHUP to us stops claude
    /// too, and is an error.
    pub fn run(
        &self,
        prompt: &str,
        started: impl FnOnce(u32) -> Result<()>,
        sink: &mut dyn Sink,
    ) -> Result<Outcome> {
        self.begin(sink, false)?;
        let signals = ForwardSignals::install()?;
        let mut child = self
            .command()
            .spawn()
            .with_context(|| format!("could not run {}", self.turn.claude.display()))?;
        signals.forward_to(child.id());
        started(child.id())?;
        let mut channel = ChildChannel { lines: read_lines(&mut child), stdin: child.stdin.take(), child };
        self.converse(&mut channel, &signals, prompt, sink)
    }

    /// Runs the turn on a claude that `channel` provides (a kept one: `crate::warm::Conn`), as
    /// [`Self::run`] does on one it starts.
    pub fn run_on(&self, channel: &mut dyn Channel, prompt: &str, sink: &mut dyn Sink) -> Result<Outcome> {
        self.begin(sink, !channel.fresh())?;
        let signals = ForwardSignals::install()?;
        signals.forward_to(channel.pid());
        self.converse(channel, &signals, prompt, sink)
    }

    /// The turn on `channel`, whatever claude it is: the prompt, claude's lines until its
    /// result, then how it ended.
    fn converse(
        &self,
        channel: &mut dyn Channel,
        signals: &ForwardSignals,
        prompt: &str,
        sink: &mut dyn Sink,
    ) -> Result<Outcome> {
        // A claude started for this turn must show it runs.
        let start_by = channel.fresh().then(|| Instant::now() + self.start_timeout);
        let mut progress = Progress { start_by, ..Progress::default() };
        channel.input().send(&wire::user_message(prompt, self.images, self.verbatim));
        let ended = self.drive(channel, &mut progress, sink);
        let stopped = signals.caught().is_some() || progress.stop_asked.is_some();
        let seen = Ended {
            ok: ended.is_ok(),
            not_started: matches!(&ended, Err(err) if err.is::<NotStarted>()),
            heard: progress.heard,
            result: progress.result.is_some(),
            stopped,
            terminated: progress.terminated.is_some(),
        };
        let status = channel.finish(&seen);
        self.end(ended, status, signals, progress)
    }

    /// Before claude gets the prompt: stale requests go, the session event is out.
    fn begin(&self, sink: &mut dyn Sink, warm: bool) -> Result<()> {
        ask::sweep(self.store)?;
        // A stop request of an earlier run goes; one for this run (`stop` came while it
        // prepared the turn) is acted on as soon as claude has the prompt.
        if self.store.stop_request(self.turn.session)?.is_some_and(|r| r.pid != std::process::id()) {
            self.store.clear_stop_request(self.turn.session)?;
        }
        sink.event(&Event::Session {
            session_id: self.turn.session.clone(),
            key: self.turn.key.to_owned(),
            cwd: self.turn.cwd.to_path_buf(),
            resumed: self.turn.resume || warm,
            warm,
        });
        Ok(())
    }

    /// After claude's result (or its end): requests cleaned up, the outcome made.
    fn end(
        &self,
        ended: Result<()>,
        status: Result<(Option<i32>, Option<i32>)>,
        signals: &ForwardSignals,
        mut progress: Progress,
    ) -> Result<Outcome> {
        let cleanup = ask::forget(self.store, &progress.asked);
        let _ = self.clear_own_stop_request();
        let stdout = match (&ended, &status) {
            (Ok(()), Ok(_)) => self.result_line(progress.result.take(), progress.stop_asked.is_some()),
            _ => Ok(Vec::new()),
        };
        // The runs that steered into this turn get its result; messages it did not take go
        // back to their senders.
        let told = stdout.as_ref().ok().map(Vec::as_slice);
        let steered = progress.inbox.finish(self.store, self.turn.session, told);
        // How claude ended first: a kept claude that went before it took the prompt says so
        // there (`crate::warm::WarmGone`), and the turn can run on another.
        let (code, signal) = status?;
        ended?;
        cleanup?;
        steered?;
        if let Some(sig) = signals.caught() {
            return Err(crate::exit::Stopped(sig).into());
        }
        Ok(Outcome { code, signal, stdout: stdout? })
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = child_command(self.turn.claude, self.turn.cwd, self.turn.key);
        cmd.args(["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]);
        if self.ask.is_some() {
            cmd.args(["--permission-prompt-tool", "stdio"]);
        }
        cmd.arg(if self.turn.resume { "--resume" } else { "--session-id" })
            .arg(self.turn.session.as_str())
            .args(self.turn.extra);
        cmd
    }

    /// Handles claude's lines until its result (or until its stdout closes), and between
    /// them answers, timeouts and stop requests.
    fn drive(&self, channel: &mut dyn Channel, progress: &mut Progress, sink: &mut dyn Sink) -> Result<()> {
        // The turn is over at claude's result, once claude is done with every message steered
        // into it (one sent as the model wrote its last answer runs right after the result).
        while progress.result.is_none() || (progress.inbox.busy() && progress.stop_asked.is_none()) {
            match channel.next_line(TICK) {
                Ok(line) => {
                    progress.heard = true;
                    if let Some(line) = wire::Line::parse(&line) {
                        let mut inbox = std::mem::take(&mut progress.inbox);
                        let mut tee = Tee { sink: &mut *sink, inbox: &mut inbox };
                        let done = self.on_line(line, channel.input(), progress, &mut tee);
                        progress.inbox = inbox;
                        done?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.check_answers(channel.input(), progress)?;
            self.check_stop(channel.input(), progress)?;
            if progress.result.is_none() || progress.inbox.busy() {
                progress.inbox.take(self.store, self.turn.session, channel.input(), self.verbatim)?;
            }
            if !progress.heard && progress.start_by.is_some_and(|at| Instant::now() >= at) {
                channel.input().kill();
                return Err(self.not_started().into());
            }
        }
        Ok(())
    }

    /// Why the turn gives up on a claude that printed nothing within [`Self::start_timeout`].
    fn not_started(&self) -> NotStarted {
        let secs = self.start_timeout.as_secs();
        let cause = match crate::claude::version_lock_holder(self.turn.claude) {
            Some(pid) => format!(
                "another claude of the same native install is running (pid {pid}): a headless \
                 `claude -p` hangs at start while an interactive one holds the install's version \
                 lock (Claude Code issue #91987); end that claude or update Claude Code, then try again"
            ),
            None => format!(
                "nothing tells why: `{} -p --debug hello` in the session's folder shows where it stops",
                self.turn.claude.display()
            ),
        };
        NotStarted(format!(
            "claude printed nothing within {secs} s of starting, so it was stopped and the turn \
             not recorded; {cause} ({START_TIMEOUT_ENV} sets how long to wait)"
        ))
    }

    fn on_line(
        &self,
        line: wire::Line,
        input: &mut dyn Input,
        progress: &mut Progress,
        sink: &mut Tee<'_>,
    ) -> Result<()> {
        use wire::{Block, ControlRequest, Line};
        match line {
            Line::Assistant { message, parent_tool_use_id } => {
                for block in message.content {
                    match block {
                        // A sub-agent's text is its report to the model, not the reply.
                        Block::Text { text } if parent_tool_use_id.is_none() && !text.is_empty() => {
                            sink.event(&Event::Text { text })
                        }
                        Block::ToolUse { id, name, input } => {
                            progress.tool_inputs.insert(id.clone(), input.clone());
                            if let Some(path) = ask::plan_file(&name, &input) {
                                progress.plan_file = Some(path);
                            }
                            sink.event(&Event::Tool { id, tool: name, input })
                        }
                        _ => {}
                    }
                }
            }
            Line::ControlRequest {
                request_id,
                request: ControlRequest::CanUseTool { tool_name, input: tool_input, tool_use_id },
            } => {
                let Some(timeout) = self.ask else {
                    let why = "clawsess run was not given --ask: a tool call that needs permission is denied";
                    let response = wire::permission_response(&request_id, false, &tool_input, why);
                    input.send(&response);
                    return Ok(());
                };
                let req =
                    ask::ask(self.store, self.turn.session, self.turn.key, &tool_name, &tool_input, timeout)?;
                progress.asked.push(req.id.clone());
                let (id, timeout_s) = (req.id.clone(), timeout.as_secs());
                let kind = ask::Kind::of(&tool_name);
                sink.event(&match kind {
                    ask::Kind::Question => {
                        Event::Question { request_id: id, questions: ask::questions(&tool_input), timeout_s }
                    }
                    ask::Kind::Plan => {
                        let called = tool_use_id.and_then(|t| progress.tool_inputs.get(&t));
                        let plan = ask::plan_text(&tool_input, called, progress.plan_file.as_deref());
                        Event::Plan { request_id: id, plan, timeout_s }
                    }
                    ask::Kind::Permission => Event::Permission {
                        request_id: id,
                        tool: tool_name,
                        input: tool_input.clone(),
                        timeout_s,
                    },
                });
                let timeout_at = Instant::now() + timeout;
                let waiting = Waiting { claude_id: request_id, kind, input: tool_input, timeout_at };
                progress.waiting.insert(req.id, waiting);
            }
            Line::ControlRequest { request_id, .. } => input.send(&wire::unsupported_response(&request_id)),
            Line::ControlCancelRequest { request_id } => {
                progress.waiting.retain(|_, w| w.claude_id != request_id)
            }
            Line::Result { fields } => progress.result = Some(fields),
            Line::System { subtype, capabilities } if subtype == "init" => sink.init(&capabilities),
            Line::CommandLifecycle { command_uuid, state } => sink.lifecycle(&command_uuid, &state),
            Line::System { .. } | Line::ControlResponse {} | Line::Other => {}
        }
        Ok(())
    }

    /// Passes on the answers that came, and denies the requests that timed out.
    fn check_answers(&self, input: &mut dyn Input, progress: &mut Progress) -> Result<()> {
        let now = Instant::now();
        let mut done = Vec::new();
        for (id, waiting) in &progress.waiting {
            let answer = match ask::check(self.store, id)? {
                Some(answer) => answer,
                None if now >= waiting.timeout_at => {
                    let secs = self.ask.unwrap_or_default().as_secs();
                    let (what, so) = match waiting.kind {
                        ask::Kind::Permission => ("the permission request", "denied"),
                        ask::Kind::Question => ("the question", "no answer was given"),
                        ask::Kind::Plan => ("the plan", "not approved, keep planning"),
                    };
                    let why = format!("nobody answered {what} within {secs} s; {so}");
                    ask::time_out(self.store, id, &why)?
                }
                None => continue,
            };
            input.send(&response(waiting, &answer));
            done.push(id.clone());
        }
        for id in done {
            progress.waiting.remove(&id);
        }
        Ok(())
    }

    /// Acts on `clawsess stop`: an interrupt first; SIGTERM if claude has not ended the
    /// turn after [`STOP_GRACE`]; SIGKILL after [`KILL_GRACE`] more.
    fn check_stop(&self, input: &mut dyn Input, progress: &mut Progress) -> Result<()> {
        let Some(asked) = progress.stop_asked else {
            if self.store.stop_request(self.turn.session)?.is_some_and(|r| r.pid == std::process::id()) {
                self.store.clear_stop_request(self.turn.session)?; // tells `stop` we saw it
                input.send(&wire::interrupt_request(&format!("clawsess-stop-{}", uuid::Uuid::new_v4())));
                progress.stop_asked = Some(Instant::now());
            }
            return Ok(());
        };
        match progress.terminated {
            None if asked.elapsed() >= STOP_GRACE => {
                input.terminate();
                progress.terminated = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= KILL_GRACE => input.kill(),
            _ => {}
        }
        Ok(())
    }

    /// A stop request for this run that it never got to act on: marked as not taken (pid 0,
    /// which no run acts on), so that `stop` says the turn ended by itself, not that it
    /// interrupted it. `stop` (or the next run) removes it.
    fn clear_own_stop_request(&self) -> Result<()> {
        if self.store.stop_request(self.turn.session)?.is_some_and(|r| r.pid == std::process::id()) {
            self.store.put_stop_request(self.turn.session, 0)?;
        }
        Ok(())
    }

    /// The result object: `"type": "result"` first, then claude's fields, then whether the
    /// turn was interrupted. One is made up when claude had to be killed after a stop.
    fn result_line(&self, result: Option<Map<String, Value>>, stop_asked: bool) -> Result<Vec<u8>> {
        let Some(fields) = result.or_else(|| stop_asked.then(|| self.killed_result())) else {
            return Ok(Vec::new());
        };
        let interrupted =
            stop_asked && fields.get("subtype").and_then(Value::as_str).is_none_or(|s| s != "success");
        let mut out = Map::new();
        out.insert("type".into(), Value::String("result".into()));
        out.extend(fields);
        if out.get("result").is_none_or(Value::is_null) {
            out.insert("result".into(), Value::String(String::new()));
        }
        out.insert("interrupted".into(), Value::Bool(interrupted));
        Ok(serde_json::to_vec(&out)?)
    }

    fn killed_result(&self) -> Map<String, Value> {
        let value = serde_json::json!({
            "subtype": "error_during_execution",
            "is_error": true,
            "result": "",
            "session_id": self.turn.session,
        });
        value.as_object().cloned().unwrap_or_default()
    }
}

/// Where a turn's events go: the caller's sink, and the runs that steered into the turn.
struct Tee<'s> {
    sink: &'s mut dyn Sink,
    inbox: &'s mut steer::Inbox,
}

impl Tee<'_> {
    fn event(&mut self, event: &Event) {
        self.sink.event(event);
        self.inbox.event(event);
    }

    fn init(&mut self, capabilities: &[String]) {
        self.inbox.init(capabilities);
    }

    fn lifecycle(&mut self, uuid: &str, state: &str) {
        self.inbox.lifecycle(uuid, state);
    }
}

/// The control response for `answer`.
fn response(waiting: &Waiting, answer: &PermissionAnswer) -> Value {
    let allow = answer.decision == Decision::Allow;
    let why = match (&answer.decision, answer.reason.as_deref(), waiting.kind) {
        (_, Some(reason), _) if !reason.trim().is_empty() => reason.to_owned(),
        (Decision::Timeout, _, _) => "nobody answered in time".into(),
        (_, _, ask::Kind::Question) => "the user declined to answer the question".into(),
        (_, _, ask::Kind::Plan) => "the user did not approve the plan: keep planning".into(),
        _ => "the user denied this tool call".into(),
    };
    let input = answer.updated_input.as_ref().unwrap_or(&waiting.input);
    wire::permission_response(&waiting.claude_id, allow, input, &why)
}

/// One claude's side of a turn, whichever claude it is: one started for the turn
/// ([`LiveTurn::run`]) or one kept from an earlier turn (`crate::warm::Conn`). The driver
/// writes to it, reads its lines, and asks it at the end how claude ended: it does not know
/// where its claude came from.
pub trait Channel {
    /// claude's pid: SIGTERM, SIGINT and SIGHUP to us are forwarded to it.
    fn pid(&self) -> u32;
    /// claude was started for this turn: it must print something within the turn's
    /// `start_timeout`.
    fn fresh(&self) -> bool;
    /// Where the turn's lines to claude go.
    fn input(&mut self) -> &mut dyn Input;
    /// claude's next output line, waiting up to `timeout`; `Disconnected` once they end.
    fn next_line(&mut self, timeout: Duration) -> Result<String, RecvTimeoutError>;
    /// After the turn's lines: how claude ended (its exit status, or the signal that killed
    /// it), or why the turn failed.
    fn finish(&mut self, turn: &Ended) -> Result<(Option<i32>, Option<i32>)>;
}

/// What the driver saw of a turn, for [`Channel::finish`].
pub struct Ended {
    /// claude's lines were read to the end (or to its result) without an error.
    pub ok: bool,
    /// claude printed nothing within the start timeout, and was killed.
    pub not_started: bool,
    /// claude printed something.
    pub heard: bool,
    /// claude printed its result.
    pub result: bool,
    /// The turn was stopped: by `clawsess stop`, or by a signal to us.
    pub stopped: bool,
    /// claude was sent SIGTERM already.
    pub terminated: bool,
}

/// Where a live turn's lines to claude go: its stdin, or a keeper's socket (a warm claude).
pub trait Input {
    /// Writes one line. Claude may have exited: that is no error here, the turn ends when
    /// its output does.
    fn send(&mut self, message: &Value);
    /// SIGTERM to claude (it did not end the turn after an interrupt).
    fn terminate(&mut self);
    /// SIGKILL to claude.
    fn kill(&mut self);
}

/// A claude started for the turn: our child, its stdin and its output lines.
struct ChildChannel {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Channel for ChildChannel {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn fresh(&self) -> bool {
        true
    }

    fn input(&mut self) -> &mut dyn Input {
        self
    }

    fn next_line(&mut self, timeout: Duration) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(timeout)
    }

    /// claude ends once its input does: its stdin is closed, and one that lingers is killed.
    fn finish(&mut self, turn: &Ended) -> Result<(Option<i32>, Option<i32>)> {
        self.stdin = None;
        let status = wait_or_kill(&mut self.child, turn.terminated)?;
        Ok((status.code(), status.signal()))
    }
}

impl Input for ChildChannel {
    fn send(&mut self, message: &Value) {
        send_line(&mut self.stdin, message)
    }

    fn terminate(&mut self) {
        signal(&self.child, libc::SIGTERM);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// Writes `message` as one line to `pipe`; a pipe that fails is dropped.
pub(crate) fn send_line<W: Write>(pipe: &mut Option<W>, message: &Value) {
    let Some(writer) = pipe else { return };
    let mut line = message.to_string();
    line.push('\n');
    if writer.write_all(line.as_bytes()).and_then(|()| writer.flush()).is_err() {
        *pipe = None;
    }
}

/// claude's stdout, line by line, from a thread (a line is read whole however long it is).
fn read_lines(child: &mut Child) -> Receiver<String> {
    lines_of(child.stdout.take().expect("piped stdout"))
}

/// The lines of `stdout`, read whole (however long) from a thread, until it ends.
pub(crate) fn lines_of(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || each_line(stdout, |line| tx.send(line).is_ok()));
    rx
}

/// Reads `input` a whole line at a time (however long; each ends in a newline) and hands each
/// to `each` until it returns false or the input ends.
pub(crate) fn each_line(input: impl std::io::Read, mut each: impl FnMut(String) -> bool) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                if !each(line) {
                    return;
                }
            }
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: our own child, not yet reaped (we reap it only in `wait_or_kill`).
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Waits for claude to exit after its input closed; one that lingers gets SIGTERM, then
/// SIGKILL. `terminated`: it was sent SIGTERM already.
fn wait_or_kill(child: &mut Child, terminated: bool) -> Result<std::process::ExitStatus> {
    let mut deadline = Instant::now() + KILL_GRACE;
    let mut termed = terminated;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            if termed {
                child.kill()?;
                return Ok(child.wait()?);
            }
            signal(child, libc::SIGTERM);
            termed = true;
            deadline = Instant::now() + KILL_GRACE;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
