//! Registering `clawsess mcp` with Claude Code, for `install`, `uninstall` and `doctor`.
//!
//! Measured on 2.1.328: user-scope MCP servers live under `mcpServers` in `~/.claude.json`
//! (`$CLAUDE_CONFIG_DIR/.claude.json` when that is set), a file Claude Code itself rewrites
//! all the time. So clawsess only reads it; the writes go through Claude Code's own
//! `claude mcp add-json --scope user` and `claude mcp remove --scope user` (add-json refuses a
//! name that exists, hence remove first), which keep the rest of the file as Claude Code wants.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::SERVER_NAME;

/// How long one `claude mcp` command may take.
const CLAUDE_WAIT: Duration = Duration::from_secs(60);

/// Where Claude Code keeps user-scope MCP servers for config dir `config`.
pub fn claude_json(config: &Path) -> Result<PathBuf> {
    let home = directories::BaseDirs::new().context("could not find the home directory")?;
    let default = home.home_dir().join(".claude");
    Ok(if config == default { home.home_dir().join(".claude.json") } else { config.join(".claude.json") })
}

/// The server entry clawsess wants for binary `exe`.
pub fn wanted(exe: &Path) -> Value {
    json!({"type": "stdio", "command": exe.to_string_lossy(), "args": ["mcp"]})
}

/// The `clawsess` entry of the user's MCP servers, if any.
pub fn registered(config: &Path) -> Result<Option<Value>> {
    let path = claude_json(config)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", path.display())),
    };
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} does not parse", path.display()))?;
    Ok(doc.get("mcpServers").and_then(|s| s.get(SERVER_NAME)).cloned())
}

/// Whether an entry runs some clawsess binary's `mcp` (an old path counts: it is ours).
pub fn is_ours(entry: &Value) -> bool {
    let command = entry.get("command").and_then(Value::as_str).unwrap_or("");
    let args = entry.get("args").and_then(Value::as_array);
    Path::new(command).file_name().is_some_and(|n| n.to_string_lossy().contains("clawsess"))
        && args.is_some_and(|a| a.len() == 1 && a[0] == "mcp")
}

/// Whether `entry` is exactly what [`wanted`] gives for `exe`.
pub fn is_current(entry: &Value, exe: &Path) -> bool {
    let want = wanted(exe);
    ["command", "args"].iter().all(|f| entry.get(*f) == want.get(*f))
}

/// Registers the server for `exe` with the `claude` at `claude`; says what it did.
pub fn register(claude: &Path, config: &Path, exe: &Path) -> Result<String> {
    let path = claude_json(config)?;
    match registered(config)? {
        Some(entry) if is_current(&entry, exe) => return Ok(format!("already in {}", path.display())),
        Some(entry) if !is_ours(&entry) => bail!(
            "{} already has an MCP server named {SERVER_NAME} that is not clawsess's; left alone",
            path.display()
        ),
        Some(_) => run_claude(claude, config, &["mcp", "remove", "--scope", "user", SERVER_NAME])?,
        None => {}
    }
    let json = wanted(exe).to_string();
    run_claude(claude, config, &["mcp", "add-json", "--scope", "user", SERVER_NAME, &json])?;
    match registered(config)? {
        Some(entry) if is_current(&entry, exe) => Ok(format!("registered in {}", path.display())),
        _ => bail!("`claude mcp add-json` did not register it in {}", path.display()),
    }
}

/// Removes the server if it is clawsess's; says what it did (`None`: nothing was there).
pub fn unregister(claude: Option<&Path>, config: &Path) -> Result<Option<String>> {
    let path = claude_json(config)?;
    match registered(config)? {
        None => Ok(None),
        Some(entry) if !is_ours(&entry) => Ok(Some(format!(
            "left the MCP server {SERVER_NAME} in {} alone: it is not clawsess's",
            path.display()
        ))),
        Some(_) => {
            let Some(claude) = claude else {
                bail!(
                    "claude is not found, so the MCP server stays in {}; remove it with \
                     `claude mcp remove --scope user {SERVER_NAME}`",
                    path.display()
                )
            };
            run_claude(claude, config, &["mcp", "remove", "--scope", "user", SERVER_NAME])?;
            Ok(Some(format!("removed from {}", path.display())))
        }
    }
}

/// Runs `claude ARGS` for config dir `config`, its output kept for the error.
fn run_claude(claude: &Path, config: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(claude);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // `~/.claude` is the default, whose file is `~/.claude.json`; naming it as
    // CLAUDE_CONFIG_DIR would move the file to `~/.claude/.claude.json`.
    if claude_json(config)?.parent() == Some(config) {
        cmd.env("CLAUDE_CONFIG_DIR", config);
    } else {
        cmd.env_remove("CLAUDE_CONFIG_DIR");
    }
    let mut child = cmd.spawn().with_context(|| format!("could not run {}", claude.display()))?;
    let deadline = Instant::now() + CLAUDE_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`claude {}` did not finish within {} s", args[..2].join(" "), CLAUDE_WAIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let out = child.wait_with_output()?;
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        bail!("`claude {}` failed ({status}): {}", args[..2].join(" "), crate::sys::one_line(&said, 200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clawsess_mcp_entry_is_ours() {
        assert!(is_ours(&wanted(Path::new("/old/bin/clawsess"))));
        assert!(is_current(&wanted(Path::new("/a/clawsess")), Path::new("/a/clawsess")));
        assert!(!is_current(&wanted(Path::new("/a/clawsess")), Path::new("/b/clawsess")));
        assert!(!is_ours(&json!({"command": "npx", "args": ["some-server"]})));
        assert!(!is_ours(&json!({"command": "/bin/clawsess", "args": ["other"]})));
    }
}
