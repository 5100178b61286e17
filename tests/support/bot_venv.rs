//! The reference bots' Python dependencies (examples/requirements.txt: python-telegram-bot,
//! discord.py, pinned), installed on first use into a venv in the build dir, the way
//! [`super::agent_sdk`] installs the Agent SDK (one [`install_once`] per build dir).
//!
//! The venv is `<target dir>/bot-venv-<hash of requirements.txt>/`, so a changed pin gets a
//! venv of its own. Set `CLAWSESS_TEST_BOT_PYTHON=/path/to/python` to use a Python that
//! already has those packages instead.
//!
//! And a bot of examples/ run with it ([`Bot`]).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::real_claude::{ClaudeHome, install_once, target_dir};

/// Environment variable naming a Python with the bots' packages, to use instead of installing.
pub const OVERRIDE_ENV: &str = "CLAWSESS_TEST_BOT_PYTHON";
/// What a ready venv imports.
const IMPORTS: &str = "import telegram, telegram.ext, discord";

fn requirements_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("requirements.txt")
}

/// FNV-1a of the requirements, as 16 hex digits.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn imports(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", IMPORTS])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The python of a venv with examples/requirements.txt installed (installed on first use).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os(OVERRIDE_ENV).filter(|p| !p.is_empty()) {
                let p = PathBuf::from(p);
                assert!(imports(&p), "{OVERRIDE_ENV}={} cannot `{IMPORTS}`", p.display());
                return p;
            }
            install_pinned()
        })
        .clone()
}

fn install_pinned() -> PathBuf {
    let req = requirements_path();
    let wanted = fs::read(&req).unwrap_or_else(|e| panic!("read {}: {e}", req.display()));
    let name = format!("bot-venv-{}", fingerprint(&wanted));
    let final_dir = target_dir().join(&name);
    let python = final_dir.join("bin").join("python");
    let ready =
        || imports(&python) && fs::read(final_dir.join("requirements.txt")).ok().as_ref() == Some(&wanted);
    install_once(
        &final_dir,
        &name,
        "the bots' Python packages (examples/requirements.txt) in a venv",
        ready,
        |tmp| {
            let out = Command::new("python3").args(["-m", "venv"]).arg(tmp).stdin(Stdio::null()).output();
            let out = match out {
                Ok(o) => o,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "python3 was not found on PATH. The bot tests run the reference bots on their \
                 pinned libraries (examples/requirements.txt), installed into a venv on first use: \
                 install Python 3.10+ with its venv module, or set {OVERRIDE_ENV}=/path/to/python."
                ),
                Err(e) => panic!("running python3 -m venv: {e}"),
            };
            assert!(out.status.success(), "python3 -m venv failed: {}", String::from_utf8_lossy(&out.stderr));
            let out = Command::new(tmp.join("bin").join("python"))
                .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "-r"])
                .arg(&req)
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .env_remove("PIP_USER")
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running pip install -r {}: {e}", req.display()));
            if !out.status.success() {
                panic!(
                    "pip install -r {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                    req.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            fs::write(tmp.join("requirements.txt"), &wanted).expect("write the venv's requirements.txt");
        },
    );
    assert!(imports(&python), "{} cannot `{IMPORTS}` after the install", python.display());
    python
}

/// Runs `script` with the bots' venv python, `sys.argv[1]` being examples/ (where the bots'
/// modules are), and asserts that it printed `ok` and exited 0.
pub fn assert_script_ok(script: &str) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = Command::new(python())
        .args(["-B", "-c", script])
        .arg(examples)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bot of examples/ (telegram_bot.py, discord_bot.py) against a stand-in chat service, its
/// stdout and stderr in `log`; killed (SIGKILL) when dropped.
pub struct Bot {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Bot {
    /// `python examples/SCRIPT` in `home`'s HOME with what every bot is given: clawsess from
    /// `bin/`, its project (`BOT_CWD`) and state file (`BOT_STATE`), a 1 s grace to stop,
    /// unbuffered Python. The caller adds the service's variables.
    pub fn command(home: &ClaudeHome, script: &str, project: &Path, state: &Path) -> Command {
        let mut cmd = home.command(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(script))
            .current_dir(home.home())
            .env("CLAWSESS", home.bin_dir().join("clawsess"))
            .env("BOT_CWD", project)
            .env("BOT_STATE", state)
            .env("BOT_STOP_GRACE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// Starts `cmd` (a [`Bot::command`]) with its output going to `log`.
    pub fn start(mut cmd: Command, log: PathBuf) -> Bot {
        let file = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::from(file.try_clone().unwrap())).stderr(Stdio::from(file));
        Bot { child: Some(cmd.spawn().expect("start the bot")), log }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most `within`) for the bot to end; returns its status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the bot did not stop within {within:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
