//! Every command and its error paths, through the binary (assert_cmd). `run` talks to a
//! stand-in claude (tests/fixtures/fake_claude.py); the real CLI is in tests/e2e.rs.
//! One module a subject; what they share (the [`World`], the ids) is here. The world is the
//! reliability and regression suites' (`tests/support/testenv.rs`).

mod attach;
mod config;
mod help;
mod hooks;
mod install;
mod prune;
mod run;
mod sessions;
mod state;
mod test_sh;

#[path = "../support/testenv.rs"]
mod testenv;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const ID_A: &str = "aaaa1111-1c2a-4b3d-9e8f-123456789abc";
const ID_B: &str = "aaaa2222-1c2a-4b3d-9e8f-123456789abc";
const ID_C: &str = "cccc3333-1c2a-4b3d-9e8f-123456789abc";

/// A throw-away world: the stand-in suites' one ([`testenv::Env`]: HOME, state dir, Claude
/// Code config dir, project dir, a cleared environment), with the stand-in claude logging
/// to `fake.log`.
struct World {
    env: testenv::Env,
}

impl World {
    fn new() -> Self {
        let mut env = testenv::Env::new();
        let log = env.root().join("fake.log");
        env.vars.push(("FAKE_CLAUDE_LOG".into(), log.to_str().unwrap().into()));
        Self { env }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.root().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.env.state()
    }

    fn project(&self) -> PathBuf {
        self.env.proj().canonicalize().unwrap()
    }

    /// `clawsess ARGS` in this world, with nothing inherited that could change its answer.
    fn cmd(&self, args: &[&str]) -> Command {
        Command::from_std(self.env.cmd(args))
    }

    fn transcript(&self, id: &str) -> PathBuf {
        let enc: String = self
            .project()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.path("claude").join("projects").join(enc).join(format!("{id}.jsonl"))
    }

    /// A person's session: a transcript with one exchange, announced by the hook.
    fn person_session(&self, id: &str, prompt: &str, reply: &str) {
        let t = self.transcript(id);
        fs::create_dir_all(t.parent().unwrap()).unwrap();
        let lines = [
            serde_json::json!({"type":"user","message":{"role":"user","content":prompt},"timestamp":"2026-11-21T10:00:00Z"}),
            serde_json::json!({"type":"assistant","message":{"id":"m1","role":"assistant","content":[{"type":"text","text":reply}]}}),
        ];
        fs::write(&t, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        self.hook("session-start", id).assert().success().stdout("");
    }

    fn hook_input(&self, id: &str) -> String {
        serde_json::json!({
            "session_id": id, "transcript_path": self.transcript(id), "cwd": self.project(),
            "hook_event_name": "SessionStart", "source": "startup"
        })
        .to_string()
    }

    fn hook(&self, event: &str, id: &str) -> Command {
        let mut cmd = self.cmd(&["hook", event]);
        cmd.write_stdin(self.hook_input(id));
        cmd
    }

    fn fake_claude(&self) -> String {
        testenv::STAND_IN.to_owned()
    }

    fn run(&self, args: &[&str]) -> Command {
        let claude = self.fake_claude();
        let mut all = vec!["run", "--claude", claude.as_str()];
        all.extend_from_slice(args);
        self.cmd(&all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn current(&self, key: &str) -> String {
        let out = self.cmd(&["current", "--key", key]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn fake_calls(&self) -> Vec<Value> {
        fs::read_to_string(self.path("fake.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
