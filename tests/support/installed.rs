//! The world most end-to-end suites share: a throw-away HOME with the real Claude Code and
//! clawsess installed in it (as `./install.sh` would), a project new sessions start in, and
//! `clawsess run` there (`project_*`: `ClaudeHome::run` runs in HOME), to its end or line by
//! line as it goes ([`Running`]). A suite adds
//! what only it needs with an `impl Installed` of its own.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::real_claude::{ClaudeHome, run_with_stdin};
use super::stand_in_api::Recorded;

/// Longest wait for a line of a run in progress (a claude turn takes about a second).
pub const LINE_WAIT: Duration = Duration::from_secs(60);
/// Longest a whole `run` may take.
const RUN_WAIT: Duration = Duration::from_secs(120);

/// A HOME with Claude Code and clawsess installed, and a project new sessions start in.
pub struct Installed {
    pub home: ClaudeHome,
    pub project: PathBuf,
}

impl std::ops::Deref for Installed {
    type Target = ClaudeHome;
    fn deref(&self) -> &ClaudeHome {
        &self.home
    }
}

impl AsRef<ClaudeHome> for Installed {
    fn as_ref(&self) -> &ClaudeHome {
        &self.home
    }
}

impl Installed {
    /// A new HOME, clawsess installed, and the project `work/NAME` in it.
    pub fn new(project: &str) -> Self {
        Self::of(ClaudeHome::new(), project)
    }

    /// [`Self::new`] in `home` (one of another Claude Code version, say).
    pub fn of(home: ClaudeHome, project: &str) -> Self {
        home.install_clawsess();
        let project = home.project(project);
        Self { home, project }
    }

    /// `run --cwd PROJECT ARGS`.
    pub fn project_run_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["run".to_owned(), "--cwd".into(), self.project.to_str().unwrap().into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// `clawsess run --cwd PROJECT ARGS` to the end (nothing on stdin).
    pub fn project_run(&self, args: &[&str]) -> Output {
        self.project_run_env(args, &[])
    }

    /// `clawsess run --cwd PROJECT ARGS` to the end, with extra env.
    pub fn project_run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let all = self.project_run_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = self.clawsess_cmd(&all);
        cmd.envs(env.iter().copied());
        run_with_stdin(&mut cmd, "", RUN_WAIT)
    }

    /// `clawsess run --cwd PROJECT ARGS`, in the background, its stdout read line by line.
    pub fn project_spawn(&self, args: &[&str]) -> Running {
        let all = self.project_run_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let child = self
            .clawsess_cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running::of(child)
    }

    /// `clawsess list --json`: the sessions, asserting success.
    pub fn list(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.clawsess_ok(&["list", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The main-turn requests whose prompt contains `needle`.
    pub fn turns_with(&self, needle: &str) -> Vec<Recorded> {
        self.api.turn_requests().into_iter().filter(|r| r.last_user_text.contains(needle)).collect()
    }

    /// The files under the state dir's `requests/`.
    pub fn request_files(&self) -> Vec<PathBuf> {
        let dir = self.state().join("requests");
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    }
}

/// A `clawsess` in progress whose stdout is read line by line (`run --stream`: one event a
/// line); killed if the test ends before it does.
pub struct Running {
    pub child: Child,
    pub lines: Receiver<(Instant, String)>,
    /// The events read so far.
    pub seen: Vec<Value>,
}

impl Running {
    /// Reads `child`'s stdout (piped) from now on.
    pub fn of(mut child: Child) -> Self {
        let lines = read_lines(child.stdout.take().expect("a piped stdout"));
        Running { child, lines, seen: Vec::new() }
    }

    /// Reads events until one of `kind` arrives; returns it.
    pub fn until(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((_, line)) = self.lines.recv_timeout(left) else {
                panic!("no {kind} event within {LINE_WAIT:?}; seen: {:#?}", self.seen);
            };
            let event: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            self.seen.push(event.clone());
            if event["type"] == kind {
                return event;
            }
        }
    }

    /// Reads to the end; returns the exit status and every event of the run.
    pub fn finish(mut self) -> (i32, Vec<Value>) {
        while let Ok((_, line)) = self.lines.recv_timeout(LINE_WAIT) {
            self.seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")));
        }
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), std::mem::take(&mut self.seen))
    }

    /// Reads to the end; returns the exit status and stdout (`run --json`: one object).
    pub fn finish_text(mut self) -> (i32, String) {
        let mut out = String::new();
        while let Ok((_, line)) = self.lines.recv_timeout(LINE_WAIT) {
            out.push_str(&line);
            out.push('\n');
        }
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), out)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `stdout`, each with when it was read, from a thread.
pub fn read_lines(stdout: ChildStdout) -> Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    rx
}

/// A finished command's stdout and stderr, for an assertion's message.
pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The turns in session `id`'s turn log, under the clawsess state dir `state`, whose prompt
/// contains `text`.
pub fn logged_turns(state: &Path, id: &str, text: &str) -> Vec<Value> {
    let path = state.join("turns").join(format!("{id}.json"));
    let log: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    log["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["prompt"].as_str().unwrap().contains(text))
        .cloned()
        .collect()
}
