//! The one test world: a temp dir per test with its own HOME, clawsess state, Claude Code
//! config dir, `bin/` first on PATH and a project, and a cleared environment ([`Env::command`]).
//! The stand-in suites use it as it is ([`Env::new`]), with a stand-in `claude`
//! (tests/fixtures/fake_claude.py) that records its argv and stdin and echoes the prompt; the
//! real-CLI suites build on it ([`Env::under_home`], `real_claude::ClaudeHome`), adding the
//! real CLI's variables on top.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_clawsess");

/// A generous upper bound for waits whose budget is a second or two (no flaky timing).
pub const GENEROUS: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The test world: one temp dir per test.
// ---------------------------------------------------------------------------------------

/// Layout, under [`Env::root`]: `home/` (HOME), `bin/` (first on PATH), `project/` (where
/// commands run), `transcripts/`, `standin/`; clawsess's state at [`Env::state`] and Claude
/// Code's config dir at [`Env::claude_dir`], which [`Env::new`] names by variables and
/// [`Env::under_home`] leaves where a user's are.
pub struct Env {
    pub root: tempfile::TempDir,
    /// The root's canonical path: Claude Code reports real paths (cwd, transcript_path).
    dir: PathBuf,
    state: PathBuf,
    claude_dir: PathBuf,
    /// The variables that place this world's state and config (and the stand-in's records):
    /// every command gets them.
    places: Vec<(&'static str, PathBuf)>,
    /// Extra variables every command of this env gets.
    pub vars: Vec<(String, String)>,
    /// Run every command with umask 0 (privacy tests).
    pub umask_zero: bool,
}

#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

impl Env {
    /// The stand-in suites' world: state in `state/` (`CLAWSESS_HOME`), Claude Code's config
    /// dir `claude/` (`CLAUDE_CONFIG_DIR`), the stand-in's records in `standin/` (`STANDIN_DIR`).
    pub fn new() -> Self {
        let mut env = Self::make("clawsess-rel-");
        env.state = env.root().join("state");
        env.claude_dir = env.root().join("claude");
        fs::create_dir_all(&env.claude_dir).unwrap();
        env.places = vec![
            ("CLAWSESS_HOME", env.state.clone()),
            ("CLAUDE_CONFIG_DIR", env.claude_dir.clone()),
            ("STANDIN_DIR", env.standin_dir()),
        ];
        env
    }

    /// The real CLI's world: state and config where a user's are, under HOME
    /// (`~/.local/share/clawsess`, `~/.claude`), named by no variable, so that a command that
    /// reaches this HOME another way (over ssh) finds them too.
    pub fn under_home(prefix: &str) -> Self {
        let mut env = Self::make(prefix);
        env.state = env.home().join(".local/share/clawsess");
        env.claude_dir = env.home().join(".claude");
        fs::create_dir_all(&env.claude_dir).unwrap();
        env
    }

    fn make(prefix: &str) -> Self {
        let root = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let dir = fs::canonicalize(root.path()).unwrap();
        for sub in ["home", "project", "transcripts", "bin", "standin"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Self {
            root,
            dir,
            state: PathBuf::new(),
            claude_dir: PathBuf::new(),
            places: Vec::new(),
            vars: Vec::new(),
            umask_zero: false,
        }
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// HOME.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// First on PATH: `claude` and `clawsess` (where a suite puts them), and whatever a test adds.
    pub fn bin_dir(&self) -> PathBuf {
        self.root().join("bin")
    }

    /// clawsess's state dir.
    pub fn state(&self) -> PathBuf {
        self.state.clone()
    }

    /// Claude Code's config dir.
    pub fn claude_dir(&self) -> PathBuf {
        self.claude_dir.clone()
    }

    pub fn proj(&self) -> PathBuf {
        self.root().join("project")
    }

    pub fn standin_dir(&self) -> PathBuf {
        self.root().join("standin")
    }

    /// The binary with a clean environment: nothing inherited from a Claude Code around us.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(BIN);
        cmd.args(args);
        cmd
    }

    /// `program` in this world: a cleared environment (this world's HOME, PATH with `bin/`
    /// first, the variables that place its state and config, `NO_COLOR`, then [`Env::vars`]),
    /// in the project dir, stdin empty, output captured.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", self.path_var())
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .current_dir(self.proj())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.places {
            cmd.env(k, v);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        if self.umask_zero {
            // SAFETY: umask is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::umask(0);
                    Ok(())
                });
            }
        }
        cmd
    }

    /// PATH: `bin/`, then the parent's PATH.
    pub fn path_var(&self) -> String {
        let outer = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        format!("{}:{outer}", self.bin_dir().display())
    }

    pub fn run(&self, args: &[&str]) -> Out {
        output(self.cmd(args), None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        output(self.cmd(args), Some(stdin))
    }

    /// A transcript file with one exchange, for session `id`.
    pub fn transcript(&self, id: &str, text: &str) -> PathBuf {
        let path = self.root().join("transcripts").join(format!("{id}.jsonl"));
        let lines = [
            json!({"type":"user","message":{"role":"user","content":format!("question {text}")}}),
            json!({"type":"assistant","message":{"id":"m1","role":"assistant",
                "content":[{"type":"text","text":format!("answer {text}")}]}}),
        ];
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        fs::write(&path, body).unwrap();
        path
    }

    pub fn start_input(&self, id: &str) -> Vec<u8> {
        let transcript = self.root().join("transcripts").join(format!("{id}.jsonl"));
        json!({
            "session_id": id,
            "transcript_path": transcript,
            "cwd": self.proj(),
            "hook_event_name": "SessionStart",
            "source": "startup",
        })
        .to_string()
        .into_bytes()
    }

    /// Records session `id` through the SessionStart hook, with a transcript; asserts it landed.
    pub fn start(&self, id: &str) {
        self.transcript(id, id);
        let out = self.run_stdin(&["hook", "session-start"], &self.start_input(id));
        assert!(out.ok() && out.stderr.is_empty(), "session-start {id}: {out:?}");
    }

    pub fn spawn_start(&self, id: &str) -> Child {
        let mut cmd = self.cmd(&["hook", "session-start"]);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&self.start_input(id)); // a killed hook closes its end
        child
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).spawn().unwrap()
    }

    pub fn list(&self) -> Vec<Value> {
        let out = self.run(&["list", "--json"]);
        assert!(out.ok() && out.stderr.is_empty(), "list: {out:?}");
        match serde_json::from_str(&out.stdout) {
            Ok(Value::Array(rows)) => rows,
            other => panic!("list --json printed {other:?}: {out:?}"),
        }
    }

    pub fn current(&self, key: &str) -> Option<String> {
        let out = self.run(&["current", "--key", key]);
        match out.code {
            Some(0) => Some(out.stdout.trim().to_owned()),
            Some(1) if out.stdout.is_empty() => None,
            _ => panic!("current --key {key}: {out:?}"),
        }
    }

    /// Every file under the state dir, relative path -> bytes.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        walk(&self.state())
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| (p.strip_prefix(self.state()).unwrap().to_owned(), fs::read(&p).unwrap()))
            .collect()
    }

    /// Every `.json` state file parses as JSON of this format.
    pub fn assert_state_parses(&self) {
        for path in walk(&self.state()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !path.is_file() || !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let bytes = fs::read(&path).unwrap();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                panic!("{} does not parse ({err}): {:?}", path.display(), String::from_utf8_lossy(&bytes))
            });
            assert_eq!(value["v"], 1, "{}: {value}", path.display());
        }
    }

    pub fn temp_files(&self) -> Vec<PathBuf> {
        walk(&self.state())
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with('.') && name.ends_with(".tmp")
            })
            .collect()
    }

    /// The JSON file of a key or name under `keys/` or `names/`.
    pub fn hashed_file(&self, dir: &str, text: &str) -> PathBuf {
        self.state().join(dir).join(format!("{}.json", clawsess::ident::file_stem(text)))
    }

    /// Links the stand-in `claude` ([`STAND_IN`]) as `bin/claude` (on this env's PATH);
    /// returns its path.
    pub fn stand_in(&self) -> PathBuf {
        let path = self.bin_dir().join("claude");
        if !path.exists() {
            std::os::unix::fs::symlink(STAND_IN, &path).unwrap();
        }
        path
    }

    /// A `claude` that counts how many of its kind are alive at once, then runs `real` (the
    /// stand-in, or the real CLI): each notes itself in `dir` while it runs (`live.PID`), and
    /// writes how many it saw alive as it started (`seen.PID`). The most any saw is the peak
    /// ([`peak_claudes`]): a count always begins with a start.
    pub fn counting_claude(&self, real: &Path, dir: &Path) -> PathBuf {
        let path = self.bin_dir().join("counted-claude");
        write_counting_claude(&path, real, dir);
        path
    }

    /// The barrier file a stand-in started with `STANDIN_HOLD` waits for.
    pub fn hold_file(&self) -> PathBuf {
        self.root().join("release")
    }

    /// Lets stand-ins waiting on [`Env::hold_file`] answer.
    pub fn release(&self) {
        fs::write(self.hold_file(), b"").unwrap();
    }

    /// What the stand-in saw in each of its runs: (argv, stdin), oldest first.
    pub fn stand_in_calls(&self) -> Vec<(Vec<String>, String)> {
        let mut calls: Vec<(SystemTime, Vec<String>, String)> = Vec::new();
        for entry in fs::read_dir(self.standin_dir()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_prefix("argv.") else {
                continue;
            };
            let argv = fs::read(entry.path()).unwrap();
            let argv = argv
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let stdin = fs::read_to_string(self.standin_dir().join(format!("stdin.{n}"))).unwrap_or_default();
            let at = entry.metadata().unwrap().modified().unwrap();
            calls.push((at, argv, stdin));
        }
        calls.sort_by_key(|c| c.0);
        calls.into_iter().map(|(_, a, s)| (a, s)).collect()
    }
}

/// The one stand-in `claude` of the stand-in suites (tests/cli/ runs it too): records each
/// run in `$STANDIN_DIR`, waits on `$STANDIN_SLEEP`/`$STANDIN_HOLD`, ignores SIGTERM with
/// `$STANDIN_IGNORE_TERM`, and answers `echo: PROMPT`; its doc comment says the rest.
pub const STAND_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_claude.py");

/// Runs `cmd` to completion, feeding `stdin` from a thread (a process that exits early
/// closes its end; that is not an error here).
pub fn output(mut cmd: Command, stdin: Option<&[u8]>) -> Out {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn finish(child: Child) -> Out {
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A session id made from a number, so tests can name many.
pub fn sid(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-{:012x}", u64::from(n) * 7919)
}

/// Every path under `dir` (files and dirs), depth first; an absent dir has none.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// Sets a file's modification time `secs` seconds into the past.
pub fn backdate(path: &Path, secs: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let t = libc::timespec { tv_sec: (now - secs) as libc::time_t, tv_nsec: 0 };
    let times = [t, t];
    // SAFETY: a valid C string and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed with
/// `CLAWSESS_TEST_SEED`.
pub struct Rng(pub u64);

impl Rng {
    pub fn seeded(test: &str) -> Self {
        let seed =
            std::env::var("CLAWSESS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
            });
        eprintln!("{test}: CLAWSESS_TEST_SEED={seed}");
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Loops `list --json` and `current --key KEY` until `stop`, checking that every answer is
/// whole: a JSON array of sessions, or one session id line (or nothing, exit 1). Returns
/// how many reads it made.
pub fn spawn_reader(
    env: Arc<Env>,
    key: &'static str,
    allowed: BTreeSet<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut reads = 0;
        while !stop.load(Ordering::SeqCst) || reads < 2 {
            let out = env.run(&["list", "--json"]);
            assert!(out.ok(), "list during writes: {out:?}");
            assert!(out.stderr.is_empty(), "list during writes: {out:?}");
            let rows: Vec<Value> = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("list --json during writes ({e}): {out:?}"));
            for row in &rows {
                let id = row["session_id"].as_str().expect("session_id");
                clawsess::ident::SessionId::parse(id).unwrap();
            }
            let out = env.run(&["current", "--key", key]);
            match out.code {
                Some(0) => {
                    let id = out.stdout.strip_suffix('\n').expect("one line");
                    assert!(allowed.contains(id), "current --key {key} gave {id}: {out:?}");
                }
                Some(1) => assert!(out.stdout.is_empty(), "{out:?}"),
                _ => panic!("current during writes: {out:?}"),
            }
            reads += 1;
        }
        reads
    })
}

/// Polls `cond` every 10 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes at `path` the counting `claude` of [`Env::counting_claude`].
pub fn write_counting_claude(path: &Path, real: &Path, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let script = format!(
        "#!/bin/sh\ndir='{}'\n: > \"$dir/live.$$\"\nls \"$dir\" | grep -c '^live\\.' > \"$dir/seen.$$\"\n\
         '{}' \"$@\"\nrc=$?\nrm -f \"$dir/live.$$\"\nexit $rc\n",
        dir.display(),
        real.display()
    );
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The most claudes a [`Env::counting_claude`] saw alive at once, and how many started.
pub fn peak_claudes(dir: &Path) -> (usize, usize) {
    let seen: Vec<usize> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seen."))
        .map(|e| fs::read_to_string(e.path()).unwrap().trim().parse().unwrap())
        .collect();
    (seen.iter().copied().max().unwrap_or(0), seen.len())
}

pub fn started_count(env: &Env) -> usize {
    fs::read_dir(env.standin_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("started."))
        .count()
}
