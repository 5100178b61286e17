//! install, uninstall, doctor, import and prune: Claude Code's settings and the checks.

use super::*;

fn settings(w: &World) -> Value {
    serde_json::from_str(&fs::read_to_string(w.path("claude/settings.json")).unwrap()).unwrap()
}

#[test]
fn install_merges_hooks_keeps_the_rest_and_uninstall_removes_exactly_them() {
    let w = World::new();
    let original = r#"{"model":"opus","hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"atuin hook claude-code"}]}]},"permissions":{"allow":["Bash(ls)"]}}"#;
    fs::write(w.path("claude/settings.json"), original).unwrap();
    w.cmd(&["install"]).assert().success().stdout(predicate::str::contains("backup"));
    let s = settings(&w);
    assert_eq!(s["model"], "opus");
    assert_eq!(s["permissions"]["allow"][0], "Bash(ls)");
    assert_eq!(s["hooks"]["SessionStart"][0]["hooks"][0]["command"], "atuin hook claude-code");
    let ours = s["hooks"]["SessionStart"][1]["hooks"][0]["command"].as_str().unwrap();
    assert!(ours.ends_with("clawsess hook session-start") && ours.starts_with('/'), "{ours}");
    for event in ["UserPromptSubmit", "Stop", "SessionEnd"] {
        assert_eq!(s["hooks"][event].as_array().unwrap().len(), 1, "{event}");
    }
    let attach = fs::read_to_string(w.path("claude/commands/attach.md")).unwrap();
    assert!(attach.contains("attach $ARGUMENTS") && attach.starts_with("---\n"), "{attach}");
    // Idempotent: same settings, no new backup.
    w.cmd(&["install"]).assert().success().stdout(predicate::str::contains("backup").not());
    assert_eq!(settings(&w), s);
    let backups = fs::read_dir(w.path("claude"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("backup"))
        .count();
    assert_eq!(backups, 1);
    w.cmd(&["uninstall"]).assert().success();
    assert_eq!(settings(&w), serde_json::from_str::<Value>(original).unwrap());
    assert!(!w.path("claude/commands/attach.md").exists());
}

#[test]
fn install_refuses_a_settings_file_that_does_not_parse_and_leaves_it_alone() {
    let w = World::new();
    fs::write(w.path("claude/settings.json"), "{ \"model\": ").unwrap();
    w.cmd(&["install"]).assert().code(1).stderr(
        predicate::str::contains("settings.json").and(predicate::str::contains("nothing was changed")),
    );
    assert_eq!(fs::read_to_string(w.path("claude/settings.json")).unwrap(), "{ \"model\": ");
}

#[test]
fn install_writes_through_a_settings_symlink() {
    let w = World::new();
    let real = w.path("dotfiles-settings.json");
    fs::write(&real, "{\"theme\":\"dark\"}").unwrap();
    std::os::unix::fs::symlink(&real, w.path("claude/settings.json")).unwrap();
    w.cmd(&["install"]).assert().success();
    assert!(w.path("claude/settings.json").is_symlink());
    let s: Value = serde_json::from_str(&fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(s["theme"], "dark");
    assert!(s["hooks"]["Stop"].is_array());
}

#[test]
fn install_leaves_a_users_own_attach_command_alone() {
    let w = World::new();
    fs::create_dir_all(w.path("claude/commands")).unwrap();
    fs::write(w.path("claude/commands/attach.md"), "mine").unwrap();
    w.cmd(&["install"]).assert().success().stderr(predicate::str::contains("left"));
    w.cmd(&["uninstall"]).assert().success();
    assert_eq!(fs::read_to_string(w.path("claude/commands/attach.md")).unwrap(), "mine");
}

#[test]
fn doctor_fails_before_install_and_passes_after() {
    let w = World::new();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), bin.join("clawsess")).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), bin.join("claude")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    w.cmd(&["doctor"])
        .env("PATH", &path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL hooks installed"));
    w.cmd(&["install"]).assert().success();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["doctor"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("ok   binary on PATH").and(predicate::str::contains("ok   state dir")),
    );
}

#[test]
fn doctor_json_is_one_document_of_the_checks() {
    let w = World::new();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), bin.join("clawsess")).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), bin.join("claude")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = w.cmd(&["doctor", "--json"]).env("PATH", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let checks = doc["checks"].as_array().unwrap();
    let hooks = checks.iter().find(|c| c["name"] == "hooks installed").unwrap();
    assert_eq!(hooks["level"], "fail");
    assert!(hooks["detail"].as_str().unwrap().ends_with("run `clawsess install`"), "{hooks}");
    assert!(checks.iter().any(|c| c["name"] == "binary on PATH" && c["level"] == "ok"), "{doc}");

    w.cmd(&["install"]).assert().success();
    let out = w.cmd(&["doctor", "--json"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
}

/// `./install.sh --claude-dir DIR`: `doctor` checks DIR, where `install` wrote, not
/// ~/.claude. (A stand-in `cargo` first on PATH "installs" the binary under test, so the
/// script runs as written without a release build.)
#[test]
fn install_sh_with_a_claude_dir_runs_doctor_on_that_dir() {
    let w = World::new();
    let tools = w.path("tools");
    fs::create_dir_all(&tools).unwrap();
    let cargo = tools.join("cargo");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = install ] || exit 9\nmkdir -p \"$CARGO_INSTALL_ROOT/bin\"\ncp {} \"$CARGO_INSTALL_ROOT/bin/clawsess\"\n",
        env!("CARGO_BIN_EXE_clawsess")
    );
    fs::write(&cargo, script).unwrap();
    fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), tools.join("claude")).unwrap();
    let root = w.path("cargo-root");
    let path = format!("{}:{}/bin:/usr/bin:/bin", tools.display(), root.display());
    let elsewhere = w.path("elsewhere");
    for args in [
        vec!["--claude-dir".to_owned(), elsewhere.display().to_string()],
        vec![format!("--claude-dir={}", elsewhere.display())],
    ] {
        let mut cmd = w.env.command(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"));
        cmd.args(&args).env_remove("CLAUDE_CONFIG_DIR").env("CARGO_INSTALL_ROOT", &root).env("PATH", &path);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(elsewhere.join("settings.json").is_file(), "install wrote into DIR");
        assert!(stdout.contains("ok   hooks installed"), "{args:?}: {stdout}");
        assert!(!stdout.contains("FAIL hooks"), "{args:?}: {stdout}");
    }
    assert!(!w.path("home/.claude/settings.json").exists(), "~/.claude was left alone");
}

#[test]
fn with_the_plugin_enabled_doctor_says_so_and_install_installs_nothing() {
    let w = World::new();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), bin.join("clawsess")).unwrap();
    std::os::unix::fs::symlink(w.fake_claude(), bin.join("claude")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    // What `claude plugin install clawsess@clawsess` writes (Claude Code 2.1.328).
    let plugin = r#"{"enabledPlugins":{"clawsess@clawsess":true},"extraKnownMarketplaces":{}}"#;
    fs::write(w.path("claude/settings.json"), plugin).unwrap();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["doctor"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("ok   hooks installed: by the plugin clawsess@clawsess")
            .and(predicate::str::contains("ok   slash commands: /clawsess:attach"))
            .and(predicate::str::contains("clawsess install").not()),
    );
    w.cmd(&["install"]).env("PATH", &path).assert().success().stdout(
        predicate::str::contains("nothing was installed").and(predicate::str::contains("fire twice")),
    );
    assert_eq!(fs::read_to_string(w.path("claude/settings.json")).unwrap(), plugin);
    assert!(!w.path("claude/commands").exists());
    // Both (installed before the plugin): doctor fails and says which to remove.
    let mut both: Value = serde_json::from_str(plugin).unwrap();
    both["hooks"] =
        serde_json::json!({"Stop": [{"hooks": [{"type": "command", "command": "/x/clawsess hook stop"}]}]});
    fs::write(w.path("claude/settings.json"), both.to_string()).unwrap();
    w.cmd(&["doctor"]).env("PATH", &path).assert().code(1).stdout(
        predicate::str::contains("FAIL hooks installed: twice")
            .and(predicate::str::contains("clawsess uninstall")),
    );
    // A plugin that is installed but disabled does not count.
    fs::write(w.path("claude/settings.json"), r#"{"enabledPlugins":{"clawsess@clawsess":false}}"#).unwrap();
    w.cmd(&["doctor"])
        .env("PATH", &path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("run `clawsess install`"));
}

#[test]
fn install_without_claude_on_path_says_so() {
    let w = World::new();
    w.cmd(&["install"])
        .env("PATH", "/nonexistent")
        .assert()
        .success()
        .stdout(predicate::str::contains("Installed."))
        .stderr(predicate::str::contains("note:").and(predicate::str::contains("once it is installed")));
}

#[test]
fn run_without_hooks_warns_that_terminals_are_not_kept_apart() {
    let w = World::new();
    let warned = |w: &World| {
        let out = w.run(&["--key", "k", "hi"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).contains("warning: clawsess's hooks are not in Claude Code")
    };
    assert!(warned(&w), "no hooks, no terminal ever seen");
    w.cmd(&["install"]).assert().success();
    assert!(!warned(&w), "installed");
    // Not installed, but a terminal ran the hooks (a `claude --plugin-dir` one).
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    assert!(!warned(&w), "hooks seen");
}

#[test]
fn import_records_sessions_the_hook_never_saw_once() {
    let w = World::new();
    let t = w.transcript(ID_C);
    fs::create_dir_all(t.parent().unwrap()).unwrap();
    let line = serde_json::json!({"type":"user","cwd": w.project(),"sessionId":ID_C,"timestamp":"2026-01-02T03:04:05Z","message":{"role":"user","content":"old"}});
    fs::write(&t, format!("{{\"type\":\"summary\"}}\n{line}\n")).unwrap();
    fs::write(t.with_file_name("not-a-session.jsonl"), "{}").unwrap();
    w.cmd(&["import"]).assert().success().stdout(predicate::str::contains("imported 1 sessions"));
    w.cmd(&["import"]).assert().success().stdout(predicate::str::contains("imported 0 sessions"));
    let list = w.json(&["list", "--json"]);
    assert_eq!(list[0]["session_id"], ID_C);
    assert_eq!(list[0]["cwd"], w.project().to_str().unwrap());
    assert_eq!(list[0]["first_seen"], "2026-01-02T03:04:05Z");
}

#[test]
fn prune_drops_records_of_gone_transcripts_and_what_points_at_them() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.person_session(ID_B, "p", "r");
    w.cmd(&["name", ID_A, "old-one"]).assert().success();
    w.cmd(&["attach", ID_A, "--key", "k"]).assert().success();
    fs::remove_file(w.transcript(ID_A)).unwrap();
    w.cmd(&["prune", "--dry-run"]).assert().success().stdout(predicate::str::contains("would drop aaaa1111"));
    assert_eq!(w.json(&["list", "--json"]).as_array().unwrap().len(), 2);
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains("1 of 2 sessions dropped"));
    let list = w.json(&["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    w.cmd(&["current", "--key", "k"]).assert().code(1);
    w.cmd(&["show", "old-one"]).assert().code(1);
}

#[test]
fn prune_removes_the_claude_slots_and_queue_tickets_of_processes_that_are_gone() {
    let w = World::new();
    let write = |rel: &str, value: Value| {
        let path = w.state().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, value.to_string()).unwrap();
    };
    let gone = u32::MAX;
    let stem = clawsess::ident::file_stem;
    write(
        &format!("claudes/{}.json", stem("s1")),
        serde_json::json!({"v":1,"id":"s1","key":"k","procs":[{"pid":gone}],"since":1}),
    );
    write(
        &format!("queue/claudes/{}.json", stem("t1")),
        serde_json::json!({"v":1,"id":"t1","pid":gone,"surface":"k","at":1}),
    );
    write(
        &format!("queue/{ID_A}/{}.json", stem("t2")),
        serde_json::json!({"v":1,"id":"t2","pid":gone,"surface":"terminal","at":1}),
    );
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains(
        "removed 3 leftovers of processes that are gone (2 queue tickets, 1 claude slot)",
    ));
    assert_eq!(fs::read_dir(w.state().join("claudes")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(w.state().join("queue/claudes")).unwrap().count(), 0);
    // Nothing left: prune says nothing of leftovers.
    w.cmd(&["prune"]).assert().success().stdout(predicate::str::contains("leftovers").not());
}

#[test]
fn doctor_warns_about_named_sessions_that_claude_code_will_soon_delete() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["name", ID_A, "keeper"]).assert().success();
    w.cmd(&["doctor"]).assert().stdout(predicate::str::contains("ok   retention"));
    let path = w.state().join("sessions").join(format!("{ID_A}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    rec["last_seen"] = serde_json::json!(now_ms - 29 * 86_400_000);
    fs::write(&path, rec.to_string()).unwrap();
    w.cmd(&["doctor"])
        .assert()
        .stdout(predicate::str::contains("warn retention").and(predicate::str::contains("keeper")))
        .stdout(predicate::str::contains("cleanupPeriodDays"));
    fs::write(w.path("claude/settings.json"), r#"{"cleanupPeriodDays": 90}"#).unwrap();
    w.cmd(&["doctor"]).assert().stdout(predicate::str::contains("ok   retention"));
}

#[test]
fn install_writes_through_a_dangling_settings_symlink() {
    let w = World::new();
    let real = w.path("dotfiles/settings.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, w.path("claude/settings.json")).unwrap();
    w.cmd(&["install"]).assert().success();
    assert!(w.path("claude/settings.json").is_symlink());
    let s: Value = serde_json::from_str(&fs::read_to_string(&real).unwrap()).unwrap();
    assert!(s["hooks"]["SessionStart"].is_array());
}

/// A `claude` that only says it is `version`, for doctor and install.
fn claude_saying(w: &World, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.path(&format!("claude-{version}"));
    fs::write(&path, format!("#!/bin/sh\necho '{version} (Claude Code)'\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn doctor_prints_the_claude_code_version_and_whether_it_is_supported() {
    let w = World::new();
    w.cmd(&["install"]).assert().success();
    let pinned = claude_saying(&w, "2.1.328");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &pinned).assert().stdout(
        predicate::str::contains(format!(
            "ok   claude version: 2.1.328 (tested: {})",
            clawsess::claude::versions::tested_range()
        ))
        .and(predicate::str::contains("checkpoint correction").not()),
    );
    let older = claude_saying(&w, "2.1.100");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &older).assert().stdout(
        predicate::str::contains("ok   claude version: 2.1.100").and(predicate::str::contains(
            "warn claude version: with 2.1.100, a prompt clawsess refuses shows no reason",
        )),
    );
    let below = claude_saying(&w, "2.0.28");
    w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &below).assert().stdout(
        predicate::str::contains("warn claude version: 2.0.28 is below the fully supported range")
            .and(predicate::str::contains("/clawsess:attach")),
    );
    let old = claude_saying(&w, "1.0.128");
    w.cmd(&["doctor"])
        .env("CLAWSESS_CLAUDE", &old)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL claude version: Claude Code 1.0.128 is older than 2.0.28"));
}

#[test]
fn doctor_says_the_checkpoint_correction_is_off_for_an_untested_version_until_a_probe_passes() {
    use clawsess::claude::versions::{NEWEST_TESTED, Version};
    use clawsess::store::{ProbeRun, Store};
    let w = World::new();
    w.cmd(&["install"]).assert().success();
    let newer = Version(NEWEST_TESTED.0, NEWEST_TESTED.1, NEWEST_TESTED.2 + 7);
    let claude = claude_saying(&w, &newer.to_string());
    let doctor = || w.cmd(&["doctor"]).env("CLAWSESS_CLAUDE", &claude).assert();
    doctor().stdout(
        predicate::str::contains(format!("ok   claude version: {newer} (newer than the tested range")).and(
            predicate::str::contains(format!(
                "warn checkpoint correction: off: Claude Code {newer} is untested (tested: {}); run \
                 `clawsess doctor --probe`",
                clawsess::claude::versions::tested_range()
            )),
        ),
    );
    let store = Store::at(w.state());
    let run = |ok| ProbeRun { claude: claude.clone(), at: 1, ok, failed: vec![] };
    store.lock(std::time::Duration::from_secs(5)).unwrap().put_probe_run(newer, run(false)).unwrap();
    doctor().stdout(predicate::str::contains(format!(
        "warn checkpoint correction: off: Claude Code {newer} failed `clawsess doctor --probe`"
    )));
    store.lock(std::time::Duration::from_secs(5)).unwrap().put_probe_run(newer, run(true)).unwrap();
    doctor().stdout(predicate::str::contains(format!(
        "ok   checkpoint correction: on: Claude Code {newer} passed `clawsess doctor --probe` on this machine"
    )));
    assert_eq!(store.probe_record(newer).unwrap().unwrap().runs.len(), 1, "one entry per binary");
}

#[test]
fn install_refuses_a_claude_code_too_old_and_writes_nothing() {
    let w = World::new();
    let old = claude_saying(&w, "2.0.27");
    w.cmd(&["install"]).env("CLAWSESS_CLAUDE", &old).assert().code(1).stdout("").stderr(
        predicate::str::contains("2.0.27 is older than 2.0.28").and(predicate::str::contains("upgrade")),
    );
    assert!(!w.path("claude/settings.json").exists() && !w.path("claude/commands").exists());
    let ok = claude_saying(&w, "2.0.28");
    w.cmd(&["install"]).env("CLAWSESS_CLAUDE", &ok).assert().success();
    assert!(w.path("claude/settings.json").is_file());
}
