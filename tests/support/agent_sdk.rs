//! The real Python Agent SDK (PyPI `claude-agent-sdk`), pinned, for end-to-end tests:
//! installed on first use into a venv in the build dir, like the Claude Code CLI of
//! [`super::real_claude`].
//!
//! It is installed from the source distribution (`pip install --no-binary claude-agent-sdk`):
//! the wheels bundle a Claude Code CLI of their own (about 160 MB); the source distribution
//! has none, so the SDK can only run the CLI it is given (`cli_path`, the pinned one), never
//! another one.
//!
//! Set `CLAWSESS_TEST_PYTHON=/path/to/python` to use a Python that already has
//! `claude_agent_sdk` (it should be version [`AGENT_SDK_VERSION`]) instead.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::real_claude::{install_once, target_dir};

/// The `claude-agent-sdk` version the tests pin: the one whose bundled CLI is
/// [`super::real_claude::CLAUDE_CODE_VERSION`] (its `_cli_version.py` says 2.1.328).
pub const AGENT_SDK_VERSION: &str = "0.2.185";
const PACKAGE: &str = "claude-agent-sdk";
/// Environment variable naming a Python with the SDK to use instead of installing one.
pub const OVERRIDE_ENV: &str = "CLAWSESS_TEST_PYTHON";

/// Where the pinned SDK's venv lives: `<target dir>/agent-sdk-VERSION/`.
pub fn install_dir() -> PathBuf {
    target_dir().join(format!("agent-sdk-{AGENT_SDK_VERSION}"))
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The `claude_agent_sdk.__version__` that `python` imports, if it imports it.
fn sdk_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import claude_agent_sdk; print(claude_agent_sdk.__version__)"])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The venv's python, with `claude-agent-sdk==AGENT_SDK_VERSION`, installed on first use.
/// Parallel test binaries share one install (a file lock); the venv is made in a temporary
/// dir and renamed into place, so a killed install is never taken for a finished one.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os(OVERRIDE_ENV).filter(|p| !p.is_empty()) {
                let p = PathBuf::from(p);
                assert!(
                    sdk_version(&p).is_some(),
                    "{OVERRIDE_ENV}={} cannot import claude_agent_sdk",
                    p.display()
                );
                return p;
            }
            install_pinned()
        })
        .clone()
}

fn install_pinned() -> PathBuf {
    let final_dir = install_dir();
    let python = python_in(&final_dir);
    let spec = format!("{PACKAGE}=={AGENT_SDK_VERSION}");
    let ready = || sdk_version(&python).as_deref() == Some(AGENT_SDK_VERSION);
    let name = format!("agent-sdk-{AGENT_SDK_VERSION}");
    // A venv's python finds its packages relative to itself (pyvenv.cfg beside bin/), so the
    // venv works after the rename; only pip's own script shebangs name the temp dir.
    install_once(&final_dir, &name, &format!("{spec} with pip in a venv"), ready, |tmp| {
        let out = Command::new("python3").args(["-m", "venv"]).arg(tmp).stdin(Stdio::null()).output();
        let out = match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "python3 was not found on PATH. The Agent SDK tests run the real Python SDK \
                 ({spec}) and install it into a venv on first use: install Python 3.10+ with its \
                 venv module, or set {OVERRIDE_ENV}=/path/to/python (with {spec} installed)."
            ),
            Err(e) => panic!("running python3 -m venv: {e}"),
        };
        assert!(
            out.status.success(),
            "python3 -m venv {} failed ({}): {}{}",
            tmp.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // The source distribution: no bundled CLI (see the module doc). Its build backend
        // (hatchling) comes from PyPI too, in pip's isolated build env.
        let out = Command::new(python_in(tmp))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--no-binary",
                PACKAGE,
            ])
            .arg(&spec)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("PIP_USER")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running pip install {spec}: {e}"));
        if !out.status.success() {
            panic!(
                "pip install {spec} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let got = sdk_version(&python_in(tmp));
        assert_eq!(
            got.as_deref(),
            Some(AGENT_SDK_VERSION),
            "after pip install {spec}, the venv imports {got:?}"
        );
    });
    assert_eq!(
        sdk_version(&python).as_deref(),
        Some(AGENT_SDK_VERSION),
        "{} does not import the SDK after the rename",
        python.display()
    );
    python
}
