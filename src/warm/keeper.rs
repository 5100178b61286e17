//! The keeper of a warm claude (`clawsess keep`, hidden; `run --warm` starts it): a detached
//! process in its own session and process group, with no file descriptors but its own (its
//! listening socket as fd 3, /dev/null, and a log for claude's stderr). It starts claude
//! (stream-json in and out, as a live turn) at the first turn and keeps it until it has been
//! idle for its duration, is cooled, or is found stale; see the module doc of [`super`].
//!
//! It holds no lock while idle. It ends claude gracefully (input closed, so that claude
//! writes its checkpoint) only with the session's run lock held and the session as claude's
//! last turn left it; else with SIGKILL, which writes nothing on a stale leaf.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Want;
use crate::ident::SessionId;
use crate::store::Store;
use crate::sys::files::Stamp;
use crate::turn::exclusion::RunLock;

/// The fd the keeper finds its listening socket on.
const LISTEN_FD: i32 = 3;
/// How often an idle keeper checks that it is still the session's keeper.
const OWNED_CHECK: Duration = Duration::from_secs(2);
/// How long claude may take to exit once its input is closed (or after SIGTERM).
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// The keeper's log (claude's stderr) is cut to its last [`LOG_KEEP`] bytes once longer than
/// this: a claude kept for days must not fill the disk. Looked at every [`OWNED_CHECK`] while
/// idle and after each turn.
pub const LOG_MAX: u64 = 1 << 20;
/// What of the log a cut keeps.
pub const LOG_KEEP: u64 = 256 << 10;

/// What a keeper keeps: `clawsess keep`'s arguments.
#[derive(Debug, Clone)]
pub struct Args {
    pub session: SessionId,
    pub claude: PathBuf,
    pub cwd: PathBuf,
    pub key: String,
    pub extra: Vec<String>,
    pub idle: Duration,
    pub resume: bool,
    /// The claude slot the run handed over (`turn::cap`), left when the keeper ends.
    pub slot: Option<String>,
    /// claude keeps its hooks whatever [`crate::claude::hookless`] finds: the first turn has a
    /// note for the model, which only the prompt hook hands over.
    pub keep_hooks: bool,
}

/// Starts a keeper for `want` listening on `listener`, holding the claude slot `slot`;
/// returns its pid.
pub(crate) fn spawn(
    store: &Store,
    want: &Want<'_>,
    listener: &UnixListener,
    slot: Option<&str>,
    keep_hooks: bool,
) -> Result<u32> {
    let log_path = store.warm_log(want.turn.session);
    let log = crate::sys::files::open_log(&log_path)
        .with_context(|| format!("could not open {}", log_path.display()))?;
    let mut cmd = Command::new(std::env::current_exe().context("could not find clawsess's own path")?);
    cmd.arg("keep")
        .arg(want.turn.session.as_str())
        .arg("--cwd")
        .arg(want.turn.cwd)
        .arg("--claude")
        .arg(want.turn.claude)
        .arg("--key")
        .arg(want.turn.key)
        .arg("--idle-ms")
        .arg(want.idle.as_millis().to_string());
    if want.turn.resume {
        cmd.arg("--resume");
    }
    if let Some(slot) = slot {
        cmd.arg("--slot").arg(slot);
    }
    if keep_hooks {
        cmd.arg("--keep-hooks");
    }
    for arg in want.turn.extra {
        cmd.arg(format!("--claude-arg={arg}"));
    }
    cmd.env("CLAWSESS_HOME", store.dir())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let fd = listener.as_raw_fd();
    // SAFETY: setsid, dup2, fcntl and close_range are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session and process group: a terminal's Ctrl-C or hang-up, or a bot
            // stopped with its process group, does not reach it.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = if fd == LISTEN_FD {
                libc::fcntl(fd, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(fd, LISTEN_FD) >= 0
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            // Descriptors our caller let us inherit are not the keeper's to hold open.
            #[cfg(target_os = "linux")]
            libc::syscall(libc::SYS_close_range, LISTEN_FD as u32 + 1, u32::MAX, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().context("could not start the keeper")?;
    Ok(child.id())
}

/// Whether Claude Code `claude` is a version tested, or probed good on this machine (what the
/// checkpoint correction asks too, `turn::fork::correction_allowed_in`): only such a claude is started without hooks (`doctor --probe`
/// checks that `disableAllHooks` stops the hooks and nothing else). Its version is remembered
/// per binary (`claude --version` takes seconds on the node-based versions).
fn known_good(store: &Store, claude: &Path) -> Result<(), String> {
    let binary = Stamp::of(claude);
    let version = match store.claude_version(&binary) {
        Some(version) => version,
        None => {
            let version = crate::claude::versions::installed(claude).map_err(|err| format!("{err:#}"))?;
            if binary.len.is_some()
                && let Ok(tx) = store.lock(crate::store::COMMAND_LOCK_WAIT)
            {
                let _ = tx.put_claude_version(&binary, version);
            }
            version
        }
    };
    crate::turn::fork::correction_allowed_in(store, Some(version))
}

/// What the keeper hears: connections, their lines, claude's lines.
enum Ev {
    Conn(UnixStream),
    Line(u64, String),
    Closed(u64),
    Claude(String),
    ClaudeEnded,
}

/// The keeper's state.
struct Keeper {
    store: Store,
    args: Args,
    tx: Sender<Ev>,
    claude: Option<Child>,
    stdin: Option<ChildStdin>,
    conns: HashMap<u64, UnixStream>,
    next_conn: u64,
    /// The connection whose turn claude is answering.
    turn: Option<u64>,
    last_used: Instant,
    /// Cooled during a turn: it ends once the turn is over.
    ending: bool,
    /// It found itself no longer the session's keeper: what is in the state dir is not its.
    disowned: bool,
    /// Itself and the claudes it started, as its claude slot names them.
    procs: Vec<crate::store::Proc>,
}

/// Whether the keeper goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Exit,
}

/// `clawsess keep`: serves turns until idle, cooled, stale or claude is gone.
pub fn main(args: Args) -> Result<u8> {
    let store = Store::open()?;
    // SAFETY: fd 3 is the listening socket `spawn` handed us; nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FD) };
    let (tx, rx) = mpsc::channel();
    let accept = tx.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            if accept.send(Ev::Conn(conn)).is_err() {
                return;
            }
        }
    });
    let mut keeper = Keeper {
        store,
        args,
        tx,
        claude: None,
        stdin: None,
        conns: HashMap::new(),
        next_conn: 0,
        turn: None,
        last_used: Instant::now(),
        ending: false,
        disowned: false,
        procs: vec![crate::store::Proc::me()],
    };
    keeper.serve(&rx);
    // Its claude is gone (waited for or killed): the slot it held is free.
    if let Some(slot) = &keeper.args.slot {
        let _ = crate::turn::cap::leave(&keeper.store, slot, &keeper.procs);
    }
    if keeper.disowned {
        return Ok(crate::exit::OK);
    }
    let _ = keeper.store.remove_warm(&keeper.args.session, Some(std::process::id()));
    let _ = std::fs::remove_file(keeper.store.warm_log(&keeper.args.session));
    Ok(crate::exit::OK)
}

impl Keeper {
    fn serve(&mut self, rx: &Receiver<Ev>) {
        loop {
            let left = self.args.idle.saturating_sub(self.last_used.elapsed());
            let wait = match self.turn {
                Some(_) => Duration::from_secs(3600),
                None => left.min(OWNED_CHECK),
            };
            let flow = match rx.recv_timeout(wait) {
                Ok(ev) => self.on(ev),
                Err(RecvTimeoutError::Timeout) if self.turn.is_none() && !left.is_zero() => {
                    if self.disowned() {
                        // Nobody can reach it (its note and socket are gone with the state
                        // dir, or belong to another keeper): claude goes without a word, as
                        // a stale one does, and nothing is written into a state dir.
                        self.kill_claude();
                        self.disowned = true;
                        return;
                    }
                    self.cap_log();
                    Flow::Go
                }
                Err(RecvTimeoutError::Timeout) if self.turn.is_none() => {
                    self.end();
                    Flow::Exit
                }
                Err(RecvTimeoutError::Timeout) => Flow::Go,
                Err(RecvTimeoutError::Disconnected) => Flow::Exit,
            };
            if flow == Flow::Exit {
                if self.claude.is_some() {
                    self.kill_claude();
                }
                return;
            }
        }
    }

    /// Keeps its log under [`LOG_MAX`] (only while it is the session's keeper: a disowned
    /// keeper touches nothing in the state dir).
    fn cap_log(&self) {
        let _ = crate::sys::files::cap_log(&self.store.warm_log(&self.args.session), LOG_MAX, LOG_KEEP);
    }

    /// Whether this keeper, idle with a claude, is no longer the session's: its note is gone
    /// (the state dir was removed, or someone removed it) or names another keeper, or its
    /// socket is gone. No run can hand it a turn any more.
    fn disowned(&self) -> bool {
        if self.claude.is_none() {
            return false; // before the first turn there is no note yet
        }
        let me = std::process::id();
        let note = match self.store.warm_note(&self.args.session) {
            Ok(note) => note,
            Err(_) => return false, // unreadable for a moment: look again later
        };
        note.is_none_or(|n| n.keeper != me) || !self.store.warm_socket(&self.args.session).exists()
    }

    fn on(&mut self, ev: Ev) -> Flow {
        match ev {
            Ev::Conn(stream) => {
                let id = self.next_conn;
                self.next_conn += 1;
                if let Ok(reader) = stream.try_clone() {
                    read_conn(id, reader, self.tx.clone());
                    self.conns.insert(id, stream);
                }
                Flow::Go
            }
            Ev::Line(id, line) => self.on_line(id, line),
            Ev::Closed(id) => {
                self.conns.remove(&id);
                if self.turn == Some(id) {
                    // The run is gone mid-turn (killed): as the kernel would for its own
                    // child, claude gets SIGTERM. The lock note names claude, so the next
                    // turn waits for it to be gone.
                    self.terminate_claude();
                    return Flow::Exit;
                }
                Flow::Go
            }
            Ev::Claude(line) => {
                let Some(id) = self.turn else { return Flow::Go };
                if let Some(conn) = self.conns.get_mut(&id) {
                    let _ = conn.write_all(line.as_bytes());
                }
                if is_result(&line) {
                    self.turn = None;
                    self.close(id); // the turn is over
                    self.last_used = Instant::now();
                    self.cap_log();
                    if self.ending {
                        self.end();
                        return Flow::Exit;
                    }
                }
                Flow::Go
            }
            Ev::ClaudeEnded => {
                if let Some(mut child) = self.claude.take() {
                    let _ = child.wait();
                }
                Flow::Exit
            }
        }
    }

    fn on_line(&mut self, id: u64, line: String) -> Flow {
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        match value.get("keeper").and_then(Value::as_str) {
            Some("turn") => self.begin_turn(id, value.get("idle_ms").and_then(Value::as_u64)),
            Some("kill") => {
                self.kill_claude();
                Flow::Exit
            }
            Some("cool") if self.turn.is_some_and(|t| t != id) => {
                self.ending = true;
                self.reply(id, &json!({"keeper": "ending"}));
                self.close(id);
                Flow::Go
            }
            Some("cool") => {
                self.end();
                Flow::Exit
            }
            Some("retire") if self.turn.is_none() => {
                // Asked by the run that holds the session's lock (claude is not stale):
                // its input closes, and it exits writing its checkpoint.
                self.stdin = None;
                self.wait_claude();
                Flow::Exit
            }
            Some("terminate") if self.turn == Some(id) => {
                self.terminate_claude();
                Flow::Go
            }
            Some(_) => Flow::Go,
            None if self.turn == Some(id) => {
                if let Some(stdin) = &mut self.stdin
                    && stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()).is_err()
                {
                    self.stdin = None;
                }
                Flow::Go
            }
            None => Flow::Go,
        }
    }

    /// A run's turn begins: claude (started now if need be) is ready for its lines.
    fn begin_turn(&mut self, id: u64, idle_ms: Option<u64>) -> Flow {
        if self.turn.is_some() {
            self.reply(id, &json!({"keeper": "gone", "why": "another turn is in progress"}));
            self.close(id);
            return Flow::Go;
        }
        if let Some(ms) = idle_ms.filter(|&ms| ms > 0) {
            self.args.idle = Duration::from_millis(ms);
        }
        if self.claude.is_none()
            && let Err(err) = self.start_claude()
        {
            self.reply(id, &json!({"keeper": "gone", "why": format!("{err:#}")}));
            return Flow::Exit;
        }
        let child = self.claude.as_mut().expect("claude started");
        // A claude just killed may not be reapable yet (its threads still exit) while
        // /proc already shows it a zombie: both are asked.
        let exited =
            !matches!(child.try_wait(), Ok(None)) || !crate::claude::process::process_alive(child.id(), None);
        if exited || self.stdin.is_none() {
            self.reply(id, &json!({"keeper": "gone", "why": "its claude has exited"}));
            return Flow::Exit;
        }
        let pid = child.id();
        self.reply(id, &json!({"keeper": "ready", "claude": pid}));
        self.turn = Some(id);
        Flow::Go
    }

    fn start_claude(&mut self) -> Result<()> {
        let a = &self.args;
        let mut cmd = crate::claude::child_command(&a.claude, &a.cwd, &a.key);
        cmd.args(["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"])
            .args(["--permission-prompt-tool", "stdio"])
            .arg(if a.resume { "--resume" } else { "--session-id" })
            .arg(a.session.as_str());
        // clawsess's hooks have nothing to do in a claude a run drives: without them (when
        // they are the only hooks) a turn spares Claude Code the start of two processes.
        let hookless = match a.keep_hooks {
            true => Err("its first turn has a note for the model, which the prompt hook hands over".into()),
            false => crate::claude::config_dir(None)
                .map_err(|err| format!("{err:#}"))
                .and_then(|config| crate::claude::hookless::check(&config, &a.cwd, &a.extra))
                .and_then(|stamps| known_good(&self.store, &a.claude).map(|()| stamps)),
        };
        match &hookless {
            Ok(_) => {
                cmd.args(["--settings", crate::claude::hookless::SETTINGS]);
                // What the SessionStart hook would export to its Bash commands.
                cmd.env("CLAWSESS_SESSION_ID", a.session.as_str());
            }
            Err(why) => {
                eprintln!("clawsess keep: claude keeps its hooks: {}", crate::sys::printable(why, false))
            }
        }
        cmd.args(&a.extra);
        // If the keeper dies, claude dies without a word: SIGTERM would make it write a
        // checkpoint, and the keeper can no longer tell whether its leaf is stale.
        // SAFETY: prctl is async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("could not run {}", a.claude.display()))?;
        self.stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            crate::live::each_line(stdout, |line| tx.send(Ev::Claude(line)).is_ok());
            let _ = tx.send(Ev::ClaudeEnded);
        });
        self.procs.push(crate::store::Proc::of(child.id()));
        let note = super::new_note(&self.args, child.id(), hookless.ok());
        self.claude = Some(child);
        self.store.put_warm_note(&note)
    }

    /// Ends claude: gracefully (its input closed) if the session is as its last turn left
    /// it, checked and done with the session's run lock held; else SIGKILL.
    fn end(&mut self) {
        if self.claude.is_none() {
            return;
        }
        let me = std::process::id();
        let lock = RunLock::acquire(&self.store, &self.args.session, "clawsess keeper", Duration::ZERO).ok();
        let note = self.store.warm_note(&self.args.session).ok().flatten().filter(|n| n.keeper == me);
        let fresh = lock.is_some() && note.is_some_and(|n| matches!(super::stale(&self.store, &n), Ok(None)));
        if fresh {
            self.stdin = None;
            self.wait_claude();
        } else {
            self.kill_claude();
        }
        let _ = self.store.remove_warm(&self.args.session, Some(me));
        drop(lock);
    }

    fn kill_claude(&mut self) {
        if let Some(mut child) = self.claude.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate_claude(&mut self) {
        if let Some(child) = &self.claude {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            self.wait_claude();
        }
    }

    /// Waits for claude to exit; SIGKILL after [`EXIT_GRACE`].
    fn wait_claude(&mut self) {
        let Some(mut child) = self.claude.take() else { return };
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Closes a connection (its reader thread holds a clone: both ends are shut).
    fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    fn reply(&mut self, id: u64, message: &Value) {
        if let Some(conn) = self.conns.get_mut(&id) {
            let _ = writeln!(conn, "{message}");
        }
    }
}

/// A connection's lines, from a thread, then its end.
fn read_conn(id: u64, stream: UnixStream, tx: Sender<Ev>) {
    std::thread::spawn(move || {
        crate::live::each_line(stream, |line| tx.send(Ev::Line(id, line)).is_ok());
        let _ = tx.send(Ev::Closed(id));
    });
}

/// Whether claude's line is its turn's result.
fn is_result(line: &str) -> bool {
    line.contains("\"result\"")
        && serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("result"))
}
