//! The config file and the settings of keys and sessions (set, config).

use super::*;

impl World {
    /// Writes `HOME/.config/clawsess/config.toml` (the default config file).
    fn config(&self, text: &str) -> PathBuf {
        let dir = self.path("home").join(".config").join("clawsess");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.toml"), text).unwrap();
        dir.join("config.toml")
    }
}

#[test]
fn config_explains_a_value_from_env_and_one_from_the_file() {
    let w = World::new();
    let path = w.config("warm = \"10m\"\nturn_wait = 30\n");
    let doc = w.json(&["config", "--json"]);
    assert_eq!(doc["file"], path.to_str().unwrap());
    assert_eq!(
        doc["values"]["warm"],
        serde_json::json!({"from": "file", "path": path, "line": 1, "value": "10m"})
    );
    assert_eq!(doc["values"]["warm_max"]["from"], "default");
    let out = stdout_of(w.cmd(&["config", "--json"]).env("CLAWSESS_WARM", "off"));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["values"]["warm"],
        serde_json::json!({"from": "env", "var": "CLAWSESS_WARM", "value": "off"})
    );
    assert_eq!(doc["values"]["turn_wait"]["line"], 2);
    let human = stdout_of(w.cmd(&["config"]).env("CLAWSESS_WARM", "off"));
    assert!(human.contains("env CLAWSESS_WARM") && human.contains("config.toml:2"), "{human}");
    // CLAWSESS_CONFIG points elsewhere; CLAWSESS_IDLE_RESET replaces the file's policies.
    let other = w.path("other.toml");
    fs::write(&other, "[[reset]]\nkey = \"tg:*\"\nmode = \"idle\"\nidle = \"72h\"\n").unwrap();
    let out = stdout_of(w.cmd(&["config", "--json"]).env("CLAWSESS_CONFIG", &other));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["values"]["warm"]["from"], "default");
    assert_eq!(doc["reset"][0]["mode"], "idle 72h");
    let out = stdout_of(
        w.cmd(&["config", "--json"]).env("CLAWSESS_CONFIG", &other).env("CLAWSESS_IDLE_RESET", "12h"),
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["reset"],
        serde_json::json!([{"from": "env", "var": "CLAWSESS_IDLE_RESET", "key": "*", "mode": "idle 12h"}])
    );
    // A file CLAWSESS_CONFIG names must be there (a missing default file is just defaults).
    w.cmd(&["config"])
        .env("CLAWSESS_CONFIG", w.path("nope.toml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope.toml: no such file"));
}

#[test]
fn a_broken_config_leaves_every_hook_answering_with_a_warning() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.config("turn_wait = 30\ncolour = \"red\"\n");
    let me = std::process::id().to_string();
    for event in ["session-start", "prompt-submit", "stop", "session-end"] {
        let out = w.hook(event, ID_A).env("CLAUDE_PID", &me).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{event}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if event == "prompt-submit" {
            // The only hook that reads the file (turn_wait, behind): it says what is wrong.
            assert!(stderr.contains("config.toml:2") && stderr.contains("defaults"), "{stderr}");
        }
    }
    // A command that needs the file refuses, naming the line.
    w.cmd(&["config"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("config.toml:2: unknown field `colour`"));
    w.run(&["--key", "k", "hi"]).assert().failure().stderr(predicate::str::contains("config.toml:2"));
    w.cmd(&["doctor"]).assert().code(1).stdout(
        predicate::str::contains("FAIL config file: ")
            .and(predicate::str::contains("config.toml:2: unknown field `colour`")),
    );
    // One that does not need it works.
    w.cmd(&["list"]).assert().success();
}

#[test]
fn set_get_unset_check_values_and_keep_them_per_key_or_session() {
    let w = World::new();
    w.person_session(ID_A, "p", "r");
    w.cmd(&["set", "--key", "k", "model=opus", "effort=max", "warm=10m"]).assert().success();
    w.cmd(&["set", "--key", "k", "effort=extreme"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("low, medium"));
    w.cmd(&["set", "--key", "k", "model=--dangerously-skip-permissions"]).assert().failure();
    w.cmd(&["set", "--key", "k", "colour=red"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a setting"));
    w.cmd(&["set", ID_A, "cwd=/"]).assert().failure().stderr(predicate::str::contains("cwd"));
    w.cmd(&["set", "--key", "k", ID_A, "model=x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not both"));
    let got = w.json(&["get", "--key", "k", "--json"]);
    assert_eq!(got["settings"], serde_json::json!({"model": "opus", "effort": "max", "warm": "10m"}));
    w.cmd(&["set", &ID_A[..8], "permission_mode=plan"]).assert().success();
    assert_eq!(w.json(&["get", ID_A, "--json"])["settings"], serde_json::json!({"permission_mode": "plan"}));
    w.cmd(&["unset", "--key", "k", "model", "warm"]).assert().success().stdout("effort = max\n");
    w.cmd(&["unset", ID_A]).assert().success();
    assert_eq!(w.json(&["get", ID_A, "--json"])["settings"], serde_json::json!({}));
    // Runs pass them to claude; -A with the same flag wins.
    w.run(&["--key", "k", "-A", "--effort", "-A", "low", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(args.contains("\"low\"") && !args.contains("\"max\""), "{args}");
    w.run(&["--key", "k", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(args.contains("\"--effort\",\"max\""), "{args}");
    w.cmd(&["set", "--key", "k", "permission_mode=acceptEdits", "model=sonnet"]).assert().success();
    w.run(&["--key", "k", "hi"]).assert().success();
    let args = w.fake_calls().last().unwrap()["argv"].to_string();
    assert!(
        args.contains("\"--model\",\"sonnet\",\"--effort\",\"max\",\"--permission-mode\",\"acceptEdits\""),
        "{args}"
    );
    // A forgotten key's settings go with it.
    w.cmd(&["forget", "--key", "k"]).assert().success().stdout(predicate::str::contains("its settings"));
    assert_eq!(w.json(&["get", "--key", "k", "--json"])["settings"], serde_json::json!({}));
}

/// A daily policy resets at the local time of `TZ`: the same records and config reset the
/// session under UTC (04:00-like time passed since its last activity) and not in Kolkata
/// (UTC+05:30: that wall-clock time is hours before the last activity there).
#[test]
fn a_daily_policy_resets_at_the_local_time_of_tz() {
    let w = World::new();
    let now = jiff::Timestamp::now();
    let at = now.checked_sub(jiff::SignedDuration::from_mins(30)).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
    w.config(&format!(
        "[[reset]]\nkey = \"daily:*\"\nmode = \"daily\"\ndaily_at = \"{:02}:{:02}\"\n",
        at.hour(),
        at.minute()
    ));
    w.run(&["--key", "daily:1", "one"]).assert().success();
    let old = w.current("daily:1");
    // Last active an hour ago: before that time of day in UTC, after it in Kolkata.
    let path = w.state().join("sessions").join(format!("{old}.json"));
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    rec["last_seen"] = serde_json::json!(now.as_millisecond() - 3_600_000);
    fs::write(&path, rec.to_string()).unwrap();
    let out = w.run(&["--key", "daily:1", "--json", "two"]).env("TZ", "Asia/Kolkata").output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w.current("daily:1"), old, "not yet 30 min ago's UTC time of day in Kolkata: {doc}");
    assert!(doc.get("reset").is_none());
    fs::write(&path, rec.to_string()).unwrap();
    let out = w.run(&["--key", "daily:1", "--json", "three"]).env("TZ", "UTC").output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(w.current("daily:1"), old);
    let why = format!("daily {:02}:{:02}", at.hour(), at.minute());
    assert_eq!(doc["reset"], serde_json::json!({"from": old, "why": why}));
}
