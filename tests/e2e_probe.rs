//! `clawsess doctor --probe` with the real Claude Code under test (pinned, or
//! `CLAWSESS_TEST_CLAUDE_VERSION`): it passes, and a claude that breaks a behaviour clawsess
//! relies on fails it, naming that behaviour. `tests/versions.sh` runs this suite on each version.
mod support;

use std::path::Path;
use std::time::Instant;

use serde_json::Value;
use support::real_claude::{ClaudeHome, claude_bin, claude_code_version};

use clawsess::claude::versions::{self, Version};
use clawsess::store::Store;

/// `clawsess doctor --probe --json` in `h`, with `claude` as the Claude Code; its document,
/// exit code and wall time.
fn probe(h: &ClaudeHome, claude: &Path) -> (Value, Option<i32>, f64) {
    let mut cmd = h.clawsess_cmd(&["doctor", "--probe", "--json"]);
    let tmp = h.home().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    cmd.env("CLAWSESS_CLAUDE", claude).env("TMPDIR", &tmp);
    let started = Instant::now();
    let out = cmd.output().expect("run clawsess doctor --probe");
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --probe --json printed no JSON document ({e}):\n{stdout}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (doc, out.status.code(), secs)
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {doc:#}"))
}

fn version() -> Version {
    Version::parse(claude_code_version()).expect("a version")
}

#[test]
fn the_probe_passes_on_the_claude_code_under_test_and_is_recorded() {
    let h = ClaudeHome::new();
    let (doc, code, secs) = probe(&h, &claude_bin());
    eprintln!("doctor --probe on {} took {secs:.1} s:\n{doc:#}", claude_code_version());
    assert_eq!(doc["ok"], true, "{doc:#}");
    assert_eq!(code, Some(0));
    assert_eq!(doc["version"], claude_code_version());
    assert_eq!(doc["recorded"], true);
    let mut names = vec![
        "claude -p answers",
        "hooks fire in -p",
        "hook input fields",
        "hook env and process",
        "clawsess hooks record the session",
        "additionalContext reaches the model",
        "transcript",
        "checkpoints",
        "a refusal (exit 2) is a refused result",
        "stream-json input (client_composed)",
        "--resume keeps the session",
        "SIGTERM at the prompt hook writes nothing",
        "hooks off for a kept claude",
    ];
    if version() >= versions::CHECKPOINTS_SEEN {
        names.extend(["a resume follows the newest checkpoint", "the checkpoint correction is followed"]);
    }
    let got: Vec<&str> =
        doc["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for name in &names {
        assert!(got.contains(name), "no check {name:?}: {got:?}");
        assert_eq!(check(&doc, name)["ok"], true, "{doc:#}");
    }
    // Recorded per (binary, version), through the store.
    let store = Store::at(h.state());
    let record = store.probe_record(version()).unwrap().expect("a probe record");
    assert!(record.good() && record.runs.len() == 1, "{record:?}");
    assert_eq!(record.runs[0].claude, claude_bin());
    // Nothing of the probe's throw-away world is left in the temp dir.
    let left: Vec<_> = std::fs::read_dir(h.home().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A claude that writes no `last-prompt` checkpoints (a wrapper that deletes them after each
/// run), on a version that writes them: the probe fails and names the checkpoints.
#[test]
fn a_claude_that_writes_no_checkpoints_fails_the_probe_naming_it() {
    if version() < versions::CHECKPOINTS_SEEN {
        eprintln!("{} writes no checkpoints itself: nothing to break", claude_code_version());
        return;
    }
    let h = ClaudeHome::new();
    let fake = h.home().join("claude-without-checkpoints");
    let script = format!(
        "#!/bin/sh\n'{}' \"$@\"\nstatus=$?\nfind \"$HOME/.claude/projects\" -name '*.jsonl' -exec sed -i '/\"type\":\"last-prompt\"/d' {{}} + 2>/dev/null\nexit $status\n",
        claude_bin().display()
    );
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (doc, code, _) = probe(&h, &fake);
    assert_eq!(doc["ok"], false, "{doc:#}");
    assert_eq!(code, Some(1));
    let broken = check(&doc, "checkpoints");
    assert_eq!(broken["ok"], false, "{doc:#}");
    assert!(broken["detail"].as_str().unwrap().contains("no `last-prompt` checkpoint"), "{broken:#}");
    // The rest of what it does is still as relied on.
    for name in
        ["claude -p answers", "hooks fire in -p", "hook input fields", "clawsess hooks record the session"]
    {
        assert_eq!(check(&doc, name)["ok"], true, "{name}: {doc:#}");
    }
    let store = Store::at(h.state());
    let record = store.probe_record(version()).unwrap().expect("a probe record");
    let run = record.runs.iter().find(|r| r.claude == fake).unwrap_or_else(|| panic!("{record:?}"));
    assert!(!run.ok && run.failed.contains(&"checkpoints".to_owned()), "{record:?}");
}

/// A claude that ignores `--settings` (a wrapper that drops it): `disableAllHooks` stops no
/// hook, and the probe says so, so no kept claude of that version runs without hooks.
#[test]
fn a_claude_whose_hooks_cannot_be_turned_off_fails_the_probe_naming_it() {
    let h = ClaudeHome::new();
    let fake = h.home().join("claude-ignoring-settings");
    let script = format!(
        "#!/bin/bash
args=(); skip=0
for a in \"$@\"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  if [ \"$a\" = --settings ]; then skip=1; continue; fi
  args+=(\"$a\")
done
exec '{}' \"${{args[@]}}\"
",
        claude_bin().display()
    );
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (doc, code, _) = probe(&h, &fake);
    assert_eq!(code, Some(1), "{doc:#}");
    let broken = check(&doc, "hooks off for a kept claude");
    assert_eq!(broken["ok"], false, "{doc:#}");
    assert!(broken["detail"].as_str().unwrap().contains("hooks ran all the same"), "{broken:#}");
    for name in ["claude -p answers", "hooks fire in -p", "clawsess hooks record the session"] {
        assert_eq!(check(&doc, name)["ok"], true, "{name}: {doc:#}");
    }
}

/// A claude whose prompt hooks never run: the probe names the hooks.
#[test]
fn a_claude_that_runs_no_hooks_fails_the_probe_naming_them() {
    let h = ClaudeHome::new();
    let fake = h.home().join("claude-without-hooks");
    // `--settings` with no hooks replaces nothing; an empty HOME/.claude/settings.json does.
    let script = format!(
        "#!/bin/sh\n[ -f \"$HOME/.claude/settings.json\" ] && echo '{{}}' > \"$HOME/.claude/settings.json\"\nexec '{}' \"$@\"\n",
        claude_bin().display()
    );
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (doc, code, _) = probe(&h, &fake);
    assert_eq!(code, Some(1), "{doc:#}");
    for name in
        ["hooks fire in -p", "clawsess hooks record the session", "additionalContext reaches the model"]
    {
        assert_eq!(check(&doc, name)["ok"], false, "{name}: {doc:#}");
    }
    assert!(check(&doc, "hooks fire in -p")["detail"].as_str().unwrap().contains("SessionStart"), "{doc:#}");
}

#[test]
fn the_probes_claudes_count_against_the_cap_it_waits_for_them_and_fails_clearly_below_three() {
    let h = ClaudeHome::new();
    // Below the three claudes it runs at once: a clear error, before any claude starts.
    let mut cmd = h.clawsess_cmd(&["doctor", "--probe", "--json"]);
    cmd.env("CLAWSESS_MAX_CLAUDES", "2");
    let out = cmd.output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], false, "{doc:#}");
    assert!(doc["error"].as_str().unwrap().contains("CLAWSESS_MAX_CLAUDES=2"), "{doc:#}");
    assert!(doc.get("checks").is_none(), "no probe ran: {doc:#}");

    // The cap reached by a claude clawsess started: the probe waits in line, says so, and
    // runs once that claude is gone (killed, its slot left on file).
    let store = Store::at(h.home().join(".local/share/clawsess"));
    let mut other = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    let slot = clawsess::store::ClaudeSlot {
        v: clawsess::store::FORMAT,
        id: "other".into(),
        key: "telegram:1".into(),
        procs: vec![clawsess::store::Proc::of(other.id())],
        keeper_of: None,
        since: clawsess::store::now_ms(),
    };
    store.lock(clawsess::store::COMMAND_LOCK_WAIT).unwrap().put_claude_slot(&slot).unwrap();
    let tmp = h.home().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = h.clawsess_cmd(&["doctor", "--probe", "--json"]);
    cmd.env("CLAWSESS_MAX_CLAUDES", "3").env("TMPDIR", &tmp);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut probe = cmd.spawn().unwrap();
    let (said, rest) = support::real_claude::read_stderr_until(&mut probe, "the probe waits for 3");
    assert!(said.contains("CLAWSESS_MAX_CLAUDES=3"), "{said}");
    other.kill().unwrap();
    other.wait().unwrap();
    let out = probe.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], true, "{doc:#}\n{}", rest.join().unwrap());
    assert!(store.claude_slots().unwrap().is_empty(), "the probe's slots are left");
}
