//! The real Claude Code CLI, pinned, for end-to-end tests: installed with npm on first use
//! into the build dir, and run in a throw-away HOME against the stand-in API.
//!
//! `CLAWSESS_TEST_CLAUDE_VERSION=X` tests version X instead of [`CLAUDE_CODE_VERSION`]
//! (installed the same way, into `target/claude-code-X/`); `CLAWSESS_TEST_CLAUDE=PATH` uses
//! an existing binary. Whatever differs between versions is asked of [`Facts`], in one place.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::stand_in_api::StandInApi;
use super::testenv::Env;

/// The Claude Code version the end-to-end tests pin.
pub const CLAUDE_CODE_VERSION: &str = "2.1.328";
const PACKAGE: &str = "@anthropic-ai/claude-code";
/// Environment variable naming an existing `claude` binary to use instead of installing one.
pub const OVERRIDE_ENV: &str = "CLAWSESS_TEST_CLAUDE";
/// Environment variable naming the Claude Code version to install and test instead of the
/// pinned one.
pub const VERSION_ENV: &str = "CLAWSESS_TEST_CLAUDE_VERSION";
/// The API key the stand-in is called with (any value works; this one is "approved" in the
/// throw-away `~/.claude.json` so an interactive run does not ask about it).
pub const TEST_API_KEY: &str = "sk-ant-api03-clawsess-stand-in-key-000000000000";

/// The Claude Code version under test: the one `CLAWSESS_TEST_CLAUDE` reports, else
/// `CLAWSESS_TEST_CLAUDE_VERSION`, else [`CLAUDE_CODE_VERSION`].
pub fn claude_code_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        if let Some(p) = std::env::var_os(OVERRIDE_ENV).filter(|p| !p.is_empty()) {
            let out = Command::new(&p).arg("--version").stdin(Stdio::null()).output();
            let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            return text.split_whitespace().next().unwrap_or(CLAUDE_CODE_VERSION).to_owned();
        }
        match std::env::var(VERSION_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let v = v.trim().to_owned();
                assert!(
                    v.split('.').count() == 3
                        && v.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
                    "{VERSION_ENV}={v:?} is not a version like 2.1.328"
                );
                v
            }
            _ => CLAUDE_CODE_VERSION.to_owned(),
        }
    })
}

/// What the Claude Code under test does, where versions differ (measured with each; see
/// docs/CLAUDE_CODE.md).
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub version: (u32, u32, u32),
}

impl Facts {
    pub fn get() -> Facts {
        let mut parts = claude_code_version().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        Facts { version: (next(), next(), next()) }
    }

    /// `claude -p` gives a prompt a hook refused the result "UserPromptSubmit operation
    /// blocked by hook: REASON" (from 2.1.200; before, an empty result).
    pub fn refusal_has_text(&self) -> bool {
        self.version >= (2, 1, 200)
    }

    /// A stream-json user message marked `client_composed` reaches the model as written (no
    /// `@file` expansion, no slash command): from 2.1.248.
    pub fn verbatim_prompts(&self) -> bool {
        self.version >= (2, 1, 248)
    }
}

/// The build's target dir: the parent of `CARGO_TARGET_TMPDIR` (set for integration tests),
/// else `CARGO_MANIFEST_DIR/target`.
pub fn target_dir() -> PathBuf {
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(t) => {
            let t = PathBuf::from(t);
            t.parent().map(Path::to_path_buf).unwrap_or(t)
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// Where the Claude Code under test is installed: `<target dir>/claude-code-VERSION/`.
pub fn install_dir() -> PathBuf {
    install_dir_of(claude_code_version())
}

/// Where Claude Code `version` is installed: `<target dir>/claude-code-VERSION/`.
pub fn install_dir_of(version: &str) -> PathBuf {
    target_dir().join(format!("claude-code-{version}"))
}

/// The `claude` of Claude Code `version`, installed on first use as [`claude_bin`]'s is: for
/// a test about one version whatever version the suite runs with.
pub fn claude_bin_of(version: &str) -> PathBuf {
    install_version(version)
}

/// What to run in an install: the package's `bin.claude`, which is the native
/// `bin/claude.exe` from 2.1.113 and `cli.js` (run by node through its `#!`) before.
fn exe_in(root: &Path) -> PathBuf {
    let pkg = root.join("node_modules").join(PACKAGE);
    let bin = fs::read_to_string(pkg.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["bin"]["claude"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "bin/claude.exe".to_owned());
    pkg.join(bin)
}

/// `BIN --version` prints `VERSION (Claude Code)`.
fn reports_version(bin: &Path, version: &str) -> bool {
    let out = Command::new(bin).arg("--version").env_remove("NODE_OPTIONS").stdin(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).split_whitespace().next() == Some(version)
        }
        _ => false,
    }
}

/// The `claude` under test (`.../node_modules/@anthropic-ai/claude-code/bin/claude.exe`, or
/// `cli.js` before 2.1.113), installed on first use. Parallel test binaries share one
/// install (a file lock); an install is done in a temporary dir and renamed into place, so a
/// killed install is never taken for a finished one.
pub fn claude_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os(OVERRIDE_ENV).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "{OVERRIDE_ENV}={} is not a file", p.display());
            return p;
        }
        install_version(claude_code_version())
    })
    .clone()
}

fn install_version(version: &str) -> PathBuf {
    let final_dir = install_dir_of(version);
    let exe = exe_in(&final_dir);
    let spec = format!("{PACKAGE}@{version}");
    let ready = || exe.is_file() && reports_version(&exe, version);
    install_once(&final_dir, &format!("claude-code-{version}"), &format!("{spec} with npm"), ready, |tmp| {
        fs::create_dir_all(tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
        fs::write(tmp.join("package.json"), "{\"name\":\"clawsess-e2e-claude\",\"private\":true}\n")
            .expect("write package.json");
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--no-package-lock",
                "--engine-strict=false",
                "--include=optional",
                "--loglevel=warn",
            ])
            .arg(&spec)
            .current_dir(tmp)
            .stdin(Stdio::null())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "npm was not found on PATH. The end-to-end tests run the real Claude Code \
                 ({spec}) and install it with npm on first use: install Node.js and npm, or set \
                 {OVERRIDE_ENV}=/path/to/claude (version {version})."
            ),
            Err(e) => panic!("running npm install {spec}: {e}"),
        };
        if !out.status.success() {
            panic!(
                "npm install {spec} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let tmp_exe = exe_in(tmp);
        set_executable(&tmp_exe);
        if !reports_version(&tmp_exe, version) {
            // The package's postinstall (node install.cjs) copies the platform package's native
            // binary over the bin/claude.exe placeholder; npm may not have run it (npm 11 wants
            // install scripts allowed, or --ignore-scripts is configured). Do what it does.
            let pkg_dir = tmp.join("node_modules").join(PACKAGE);
            let _ =
                Command::new("node").arg("install.cjs").current_dir(&pkg_dir).stdin(Stdio::null()).output();
            if !reports_version(&tmp_exe, version)
                && let Some(native) = find_native_binary(tmp, version)
            {
                let _ = fs::remove_file(&tmp_exe);
                fs::copy(&native, &tmp_exe)
                    .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", native.display(), tmp_exe.display()));
                set_executable(&tmp_exe);
            }
        }
        if !reports_version(&tmp_exe, version) {
            let v = Command::new(&tmp_exe).arg("--version").output();
            panic!(
                "after npm install {spec}, {} does not report version {version}: {:?}",
                tmp_exe.display(),
                v.map(
                    |o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
                )
            );
        }
    });
    let exe = exe_in(&final_dir);
    assert!(reports_version(&exe, version), "{} does not run", exe.display());
    exe
}

/// Installs into `final_dir` once for every test binary of a build dir. `ready` says whether
/// what is there works; if not, under a file lock (`NAME.lock` beside it) and after looking
/// again (another binary may have installed it meanwhile), `install` fills a fresh temp dir
/// (`NAME.partial-PID`; leftovers of killed installs are removed first), which is then
/// renamed into place: a killed install is never taken for a finished one.
pub fn install_once(
    final_dir: &Path,
    name: &str,
    what: &str,
    ready: impl Fn() -> bool,
    install: impl FnOnce(&Path),
) {
    // Fast path: installed by an earlier run (only a finished install is ever renamed here).
    if ready() {
        return;
    }
    let parent = final_dir.parent().expect("install dir has a parent").to_path_buf();
    fs::create_dir_all(&parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    let lock_path = parent.join(format!("{name}.lock"));
    let lock =
        File::create(&lock_path).unwrap_or_else(|e| panic!("create lock file {}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    if ready() {
        return;
    }
    if final_dir.exists() {
        // Present but not working (damaged by hand, or its runtime was upgraded): afresh.
        let _ = fs::remove_dir_all(final_dir);
    }
    // Leftovers of killed installs (we hold the lock: nobody else is installing).
    let partial_prefix = format!("{name}.partial-");
    if let Ok(rd) = fs::read_dir(&parent) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&partial_prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let tmp = parent.join(format!("{partial_prefix}{}", std::process::id()));
    eprintln!("installing {what} into {} (once per build dir) ...", final_dir.display());
    let started = Instant::now();
    install(&tmp);
    fs::rename(&tmp, final_dir)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), final_dir.display()));
    eprintln!("installed {what} in {:.1}s", started.elapsed().as_secs_f64());
    drop(lock);
}

/// The native binary of the platform package (`@anthropic-ai/claude-code-<platform>/claude`)
/// that runs `--version`.
fn find_native_binary(root: &Path, version: &str) -> Option<PathBuf> {
    let scope = root.join("node_modules").join("@anthropic-ai");
    for e in fs::read_dir(&scope).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("claude-code-") {
            continue;
        }
        for bin in ["claude", "claude.exe"] {
            let p = e.path().join(bin);
            if p.is_file() && reports_version(&p, version) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(unix)]
fn set_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o755));
}
#[cfg(not(unix))]
fn set_executable(_p: &Path) {}

/// `~/.claude/projects/<encoded cwd>`: every char of the cwd that is not ASCII alphanumeric
/// becomes `-`.
pub fn encode_cwd(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// The real CLI's world: the one test world ([`Env::under_home`]: a throw-away HOME, `bin/`
/// first on PATH, a cleared environment) with the stand-in API and the pinned Claude Code;
/// everything Claude Code and clawsess keep (`~/.claude.json`, `~/.claude/`,
/// `~/.local/share/clawsess`) stays inside it.
///
/// On top of the world's layout: `HOME/.claude.json` (onboarding done, the test key approved,
/// every project made with [`ClaudeHome::project`] trusted), `bin/claude` (a symlink to the
/// pinned binary), `HOME/work/NAME/` (projects); on top of its environment, the real CLI's
/// variables ([`ClaudeHome::command`]).
pub struct ClaudeHome {
    pub api: StandInApi,
    env: Env,
    claude: PathBuf,
    /// The Claude Code version of `claude`.
    version: String,
}

impl ClaudeHome {
    pub fn new() -> ClaudeHome {
        Self::with_claude(claude_bin(), claude_code_version())
    }

    /// A home whose `claude` is Claude Code `version` (installed on first use), whatever
    /// version the suite runs with.
    pub fn with_version(version: &str) -> ClaudeHome {
        Self::with_claude(claude_bin_of(version), version)
    }

    fn with_claude(claude: PathBuf, version: &str) -> ClaudeHome {
        let mut env = Env::under_home("clawsess-e2e-");
        fs::create_dir_all(env.home().join("work")).expect("create ~/work");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&claude, env.bin_dir().join("claude")).expect("symlink bin/claude");
        let api = StandInApi::start().expect("start the stand-in API");
        // The real CLI's variables, on top of the world's: the stand-in API and its key,
        // Claude Code's quiet switches, a shell for its Bash tool.
        let vars = [
            ("SHELL", "/bin/bash"),
            ("ANTHROPIC_BASE_URL", &api.base_url()),
            ("ANTHROPIC_API_KEY", TEST_API_KEY),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
        ];
        env.vars.extend(vars.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let h = ClaudeHome { api, env, claude, version: version.to_owned() };
        h.write_claude_json(|_| {});
        h.record_probe();
        h
    }

    /// A version outside the tested range gets clawsess's checkpoint correction only once
    /// `clawsess doctor --probe` passed with it on the machine (see docs/PROBE.md): the suites
    /// run on such a version as a user who ran the probe would. The probe runs once per test
    /// binary; its result goes into this home's state dir, through the store.
    fn record_probe(&self) {
        use clawsess::claude::versions::Version;
        static PROBED: OnceLock<clawsess::store::ProbeRun> = OnceLock::new();
        let Some(version) = Version::parse(&self.version).filter(|v| !v.tested()) else {
            return;
        };
        let probe = || {
            let report = clawsess::probe::probe(&self.claude, Path::new(env!("CARGO_BIN_EXE_clawsess")))
                .unwrap_or_else(|e| panic!("doctor --probe with {}: {e:#}", self.claude.display()));
            eprintln!("Claude Code {version} is outside the tested range; its probe: {report:#?}");
            clawsess::store::ProbeRun {
                claude: self.claude.clone(),
                at: 0,
                ok: report.ok,
                failed: report.failed(),
            }
        };
        // Once per test binary for the suite's version; a home of another version probes it.
        let run = match self.version == claude_code_version() {
            true => PROBED.get_or_init(probe).clone(),
            false => probe(),
        };
        let store = clawsess::store::Store::at(self.state());
        let guard = store.lock(Duration::from_secs(10)).expect("lock the store");
        guard.put_probe_run(version, run).expect("record the probe");
    }

    /// The world this home is.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The world's root: HOME, `bin/` and the rest are below it.
    pub fn root(&self) -> &Path {
        self.env.root()
    }

    /// The throw-away HOME.
    pub fn home(&self) -> PathBuf {
        self.env.home()
    }

    /// `HOME/.claude`.
    pub fn claude_dir(&self) -> PathBuf {
        self.env.claude_dir()
    }

    /// clawsess's state dir, `HOME/.local/share/clawsess`.
    pub fn state(&self) -> PathBuf {
        self.env.state()
    }

    /// `bin/`: first on PATH, holds `claude`; a test can put more programs there.
    pub fn bin_dir(&self) -> PathBuf {
        self.env.bin_dir()
    }

    /// The pinned claude binary this home runs.
    pub fn claude(&self) -> &Path {
        &self.claude
    }

    /// The stand-in API of this home.
    pub fn api(&self) -> &StandInApi {
        &self.api
    }

    /// Creates (if needed) and returns the project dir `HOME/work/NAME`, marked trusted in
    /// `~/.claude.json` (needed by interactive runs; `-p` runs do not ask).
    pub fn project(&self, name: &str) -> PathBuf {
        let p = self.home().join("work").join(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        let key = p.to_string_lossy().into_owned();
        self.write_claude_json(|v| {
            v["projects"][&key] = json!({
                "hasTrustDialogAccepted": true,
                "hasCompletedProjectOnboarding": true,
                "allowedTools": []
            });
        });
        p
    }

    /// The transcript Claude Code keeps for session `id` started in `cwd`.
    pub fn transcript_path(&self, cwd: &Path, id: &str) -> PathBuf {
        self.claude_dir().join("projects").join(encode_cwd(cwd)).join(format!("{id}.jsonl"))
    }

    /// Reads `~/.claude.json`, lets `f` change it, writes it back.
    pub fn write_claude_json(&self, f: impl FnOnce(&mut Value)) {
        let path = self.home().join(".claude.json");
        let mut v: Value = fs::read_to_string(&path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| json!({}));
        if !v.is_object() {
            v = json!({});
        }
        let key_tail: String = {
            let chars: Vec<char> = TEST_API_KEY.chars().collect();
            chars[chars.len().saturating_sub(20)..].iter().collect()
        };
        // What a first interactive start would otherwise ask about (onboarding, the API key).
        v["hasCompletedOnboarding"] = json!(true);
        v["lastOnboardingVersion"] = json!(self.version);
        v["numStartups"] = json!(v["numStartups"].as_u64().unwrap_or(1).max(1));
        if v["theme"].is_null() {
            v["theme"] = json!("dark");
        }
        v["customApiKeyResponses"] = json!({"approved": [key_tail], "rejected": []});
        if !v["projects"].is_object() {
            v["projects"] = json!({});
        }
        f(&mut v);
        let text = serde_json::to_string_pretty(&v).unwrap();
        let tmp = self.home().join(".claude.json.tmp");
        fs::write(&tmp, text).expect("write ~/.claude.json");
        fs::rename(&tmp, &path).expect("rename ~/.claude.json");
    }

    /// Writes `~/.claude/settings.json`.
    pub fn write_settings(&self, settings: &Value) {
        fs::write(self.claude_dir().join("settings.json"), serde_json::to_string_pretty(settings).unwrap())
            .expect("write settings.json");
    }

    /// PATH for the child: `bin/`, then the parent's PATH.
    pub fn path_env(&self) -> String {
        self.env.path_var()
    }

    /// `program` in this home: the world's command ([`Env::command`]: a cleared environment,
    /// HOME, PATH, the real CLI's variables; stdin empty, output captured).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.env.command(program)
    }

    /// `claude -p` with this home's environment, run in `cwd`. Add `--output-format json`,
    /// `--resume ID`, ... and give the prompt on stdin (see [`run_with_stdin`]).
    ///
    /// No permission flag is needed: hooks from `~/.claude/settings.json` fire, and a custom
    /// command's `` !`cmd` `` line runs when its `allowed-tools` frontmatter pre-approves it.
    pub fn claude_p(&self, cwd: &Path) -> Command {
        let mut cmd = self.command(&self.claude);
        cmd.current_dir(cwd).arg("-p");
        cmd
    }

    /// `claude -p --input-format stream-json --output-format stream-json --verbose --resume
    /// SESSION` in `cwd`: a process that takes prompt after prompt on stdin (as an interactive
    /// terminal does, or an Agent SDK client); stdin and stdout piped, stderr dropped.
    pub fn stream_json(&self, cwd: &Path, session: &str) -> Command {
        let mut cmd = self.claude_p(cwd);
        cmd.args(["--input-format", "stream-json", "--output-format", "stream-json", "--verbose"])
            .args(["--resume", session])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    /// Runs `claude -p ARGS` in `cwd` with `prompt` on stdin (2 minutes at most).
    pub fn run_p(&self, cwd: &Path, args: &[&str], prompt: &str) -> Output {
        let mut cmd = self.claude_p(cwd);
        cmd.args(args);
        run_with_stdin(&mut cmd, prompt, Duration::from_secs(120))
    }

    /// Runs `claude -p --output-format json ARGS` with `prompt` on stdin and returns the
    /// parsed result object; panics with claude's output if it fails or prints no JSON.
    pub fn run_p_json(&self, cwd: &Path, args: &[&str], prompt: &str) -> Value {
        let mut all = vec!["--output-format", "json"];
        all.extend_from_slice(args);
        let out = self.run_p(cwd, &all, prompt);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "claude -p {all:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("claude -p {all:?} printed no JSON ({e}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        })
    }
}

/// clawsess in a [`ClaudeHome`]: the binary under test, run with that home's environment.
impl ClaudeHome {
    /// Puts the clawsess under test on PATH (`bin/`) and runs `clawsess install`, as
    /// `./install.sh` would.
    pub fn install_clawsess(&self) {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clawsess"), self.bin_dir().join("clawsess"))
            .expect("symlink bin/clawsess");
        self.clawsess_ok(&["install"]);
    }

    /// `clawsess ARGS` with this home's environment, run in HOME.
    pub fn clawsess_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.cmd(args);
        cmd.current_dir(self.home());
        cmd
    }

    /// Runs `clawsess ARGS` (empty stdin, 2 minutes at most).
    pub fn clawsess(&self, args: &[&str]) -> Output {
        run_with_stdin(&mut self.clawsess_cmd(args), "", Duration::from_secs(120))
    }

    /// Runs `clawsess ARGS`, asserts success, returns stdout.
    pub fn clawsess_ok(&self, args: &[&str]) -> String {
        let out = self.clawsess(args);
        assert!(out.status.success(), "clawsess {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// `clawsess run ARGS` in the background (claude from PATH: the CLI under test).
    pub fn spawn_run(&self, args: &[&str]) -> Child {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        self.clawsess_cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clawsess run")
    }

    /// `clawsess run ARGS` to the end (2 minutes at most).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        run_with_stdin(&mut self.clawsess_cmd(&all), "", Duration::from_secs(120))
    }

    /// Forks session `id` as a Claude Code without clawsess would: with the hooks off, two
    /// `claude -p --resume` answer from the same message, `first` (held by the stand-in until
    /// `second` has been answered, so its reply is the newest turn) and `second`.
    pub fn fork_without_hooks(&self, cwd: &Path, id: &str, first: &str, second: &str) {
        let settings = self.claude_dir().join("settings.json");
        let saved = fs::read(&settings).expect("clawsess installed its hooks");
        fs::write(&settings, "{}").unwrap();
        std::thread::scope(|scope| {
            let held = scope.spawn(|| {
                let mut cmd = self.claude_p(cwd);
                cmd.args(["--output-format", "json", "--resume", id]);
                run_with_stdin(&mut cmd, &format!("{first} [hold=fork]"), Duration::from_secs(180))
            });
            self.api.wait_held("fork");
            let out = self.run_p(cwd, &["--output-format", "json", "--resume", id], second);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            self.api.release("fork");
            let out = held.join().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        });
        fs::write(&settings, saved).unwrap();
    }

    /// Moves session `id`'s last activity an hour back, as if it had been idle that long (its
    /// record in the store; its live file, which may hold a newer `last_seen`, goes too: see
    /// docs/STATE.md).
    pub fn idle_for_an_hour(&self, id: &str) {
        let path = self.state().join("sessions").join(format!("{id}.json"));
        let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        rec["last_seen"] = (rec["last_seen"].as_u64().unwrap() - 3_600_000).into();
        fs::write(&path, rec.to_string()).unwrap();
        let _ = fs::remove_file(self.state().join("live").join(format!("{id}.json")));
    }

    /// `clawsess current --key KEY`, if it resolves.
    pub fn current(&self, key: &str) -> Option<String> {
        let out = self.clawsess(&["current", "--key", key]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Default for ClaudeHome {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<ClaudeHome> for ClaudeHome {
    fn as_ref(&self) -> &ClaudeHome {
        self
    }
}

/// A world whose kept claudes end with the test. Keepers (`run --warm`) outlive the runs
/// that start them: dropping this runs `clawsess cool`, then kills any keeper whose note is
/// still in the state dir (a `cool` that failed), before the world itself goes.
pub struct Cooling<W: AsRef<ClaudeHome>>(pub W);

impl<W: AsRef<ClaudeHome>> std::ops::Deref for Cooling<W> {
    type Target = W;
    fn deref(&self) -> &W {
        &self.0
    }
}

impl<W: AsRef<ClaudeHome>> Drop for Cooling<W> {
    fn drop(&mut self) {
        let home = self.0.as_ref();
        let _ = home.clawsess(&["cool"]);
        for entry in fs::read_dir(home.state().join("warm")).into_iter().flatten().flatten() {
            let note: Option<Value> =
                fs::read_to_string(entry.path()).ok().and_then(|t| serde_json::from_str(&t).ok());
            if let Some(pid) = note.and_then(|n| n["keeper"].as_u64()) {
                // SAFETY: kill takes a pid and a signal.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Spawns `cmd` with piped stdio, writes `stdin` and closes it, and waits at most `timeout`
/// (then kills the child and panics with what it printed so far).
pub fn run_with_stdin(cmd: &mut Command, stdin: &str, timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut child_stdin = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = child_stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default() }
}

/// Reads `child`'s stderr until a line contains `text` (a barrier on what the process says,
/// not on time); returns what it read. The rest of stderr is collected in the background
/// and handed back through the returned handle (dropped, it still drains).
pub fn read_stderr_until(child: &mut Child, text: &str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stderr ended before {text:?}: {seen}");
        seen.push_str(&line);
        if line.contains(text) {
            let rest = std::thread::spawn(move || {
                let mut rest = String::new();
                let _ = reader.read_to_string(&mut rest);
                rest
            });
            return (seen, rest);
        }
    }
}
