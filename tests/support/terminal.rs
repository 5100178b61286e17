//! A person's terminal for end-to-end tests: the real interactive Claude Code in a detached
//! tmux session ([`Terminal`]; waits are on what the screen shows, never on time), or a
//! terminal left open on a session ([`OpenTerminal`]: one `claude -p` process reading turn
//! after turn from stdin).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::real_claude::{ClaudeHome, run_with_stdin};

/// An interactive `claude` in a detached tmux session; killed on drop.
pub struct Terminal {
    pub name: String,
}

impl Terminal {
    pub fn start(home: &ClaudeHome, cwd: &Path, args: &[&str]) -> Terminal {
        Terminal::start_with_env(home, cwd, args, &[])
    }

    /// [`Terminal::start`] with `env` added to the home's environment.
    pub fn start_with_env(home: &ClaudeHome, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Terminal {
        let mut env_cmd = home.command(home.claude());
        env_cmd.envs(env.iter().copied());
        let mut script = String::from("#!/bin/sh\nexec env -i TERM=xterm-256color");
        for (k, v) in env_cmd.get_envs() {
            if let Some(v) = v {
                script.push_str(&format!(
                    " {}='{}'",
                    k.to_string_lossy(),
                    v.to_string_lossy().replace('\'', "'\\''")
                ));
            }
        }
        script.push_str(&format!(" '{}'", home.claude().display()));
        for a in args {
            script.push_str(&format!(" '{a}'"));
        }
        script.push('\n');
        // One tmux session per terminal: a home's first is named after the home, more get a
        // number (a test may open two terminals on one home; tests run in parallel).
        static MORE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2);
        let base = home.root().file_name().unwrap().to_string_lossy().into_owned();
        let (name, path) = if home.home().join("terminal.sh").exists() {
            let n = MORE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (format!("{base}-t{n}"), home.home().join(format!("terminal-{n}.sh")))
        } else {
            (base, home.home().join("terminal.sh"))
        };
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "200", "-y", "50", "-c"])
            .arg(cwd)
            .arg(&path)
            .stdin(Stdio::null())
            .status()
            .expect("tmux is needed for the interactive terminal test (apt-get install tmux)");
        assert!(ok.success(), "tmux new-session failed");
        Terminal { name }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (a generous bound, not a timing assumption) until the screen shows `what`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the terminal never showed {what}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux").args(["send-keys", "-t", &self.name]).args(keys).status().unwrap();
        assert!(ok.success());
    }

    /// Types `text` (literally) and presses Enter once the text is on screen.
    pub fn type_line(&self, text: &str) {
        self.keys(&["-l", text]);
        self.wait_for(&format!("the typed {text:?}"), |s| s.contains(text));
        self.keys(&["Enter"]);
    }

    /// Types `prompt` and waits until the stand-in's reply to it is on screen.
    pub fn turn(&self, prompt: &str) {
        self.type_line(prompt);
        self.wait_for(&format!("the reply to {prompt:?}"), |s| s.contains(&format!("last={prompt}")));
    }

    /// Types `/exit` and waits (a generous bound) until the terminal has gone.
    pub fn exit(&self) {
        self.type_line("/exit");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).stderr(Stdio::null()).status();
    }
}

/// A terminal left open on a session: `claude -p` reading turns from stdin as stream-json
/// ([`ClaudeHome::stream_json`]), one process for every turn, as an interactive terminal is;
/// killed on drop.
pub struct OpenTerminal {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl OpenTerminal {
    /// Resumes `session` in `cwd`, with `env` added to the home's environment.
    pub fn start(home: &ClaudeHome, cwd: &Path, session: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = home.stream_json(cwd, session);
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout }
    }

    /// Sends one prompt and waits for its result.
    pub fn turn(&mut self, prompt: &str) -> Value {
        self.try_turn(prompt).expect("the process ended")
    }

    /// Sends one prompt and waits for its result; `None` when the process ended instead.
    pub fn try_turn(&mut self, prompt: &str) -> Option<Value> {
        let msg = json!({"type":"user","message":{"role":"user","content":prompt}});
        writeln!(self.stdin, "{msg}").ok()?;
        self.stdin.flush().ok()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["type"] == "result"
            {
                return Some(v);
            }
        }
        panic!("no result");
    }
}

impl Drop for OpenTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An interactive `claude --resume ID` in `project`, once it shows the conversation.
pub fn resume_in_terminal(home: &ClaudeHome, project: &Path, id: &str) -> Terminal {
    let term = Terminal::start(home, project, &["--resume", id]);
    term.wait_for("the conversation", |s| s.contains("PORTO"));
    term
}

/// A HOME with clawsess installed and a session a bot started in project `trip` (about PORTO).
pub fn a_bot_session() -> (ClaudeHome, std::path::PathBuf, String) {
    let home = ClaudeHome::new();
    home.install_clawsess();
    let project = home.project("trip");
    let cwd = project.to_str().unwrap();
    let first = run_json(&home, &["--key", "telegram:1", "--cwd", cwd, "we plan a trip to PORTO"]);
    let id = first["session_id"].as_str().unwrap().to_owned();
    (home, project, id)
}

pub fn run_json(home: &ClaudeHome, args: &[&str]) -> Value {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let out = run_with_stdin(&mut home.clawsess_cmd(&all), "", Duration::from_secs(180));
    assert!(out.status.success(), "run {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
