//! Claude Code's side: its config dir, where it keeps transcripts, finding `claude`, and
//! reading the result of `claude -p --output-format json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// Claude Code's config dir: `explicit`, else `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub fn config_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = directories::BaseDirs::new().context("could not find the home directory")?;
    Ok(home.home_dir().join(".claude"))
}

/// A project's folder name under `projects/`: every non-alphanumeric character becomes `-`.
pub fn encode_cwd(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Where Claude Code keeps the transcript of session `id` started in `cwd`.
pub fn transcript_path(config_dir: &Path, cwd: &Path, id: &str) -> PathBuf {
    config_dir.join("projects").join(encode_cwd(cwd)).join(format!("{id}.jsonl"))
}

/// The `claude` to run: `explicit`, else `$CLAWSESS_CLAUDE`, else `claude` on PATH.
pub fn find_claude(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return which::which(path)
            .with_context(|| format!("--claude {} is not an executable", path.display()));
    }
    if let Some(path) = std::env::var_os("CLAWSESS_CLAUDE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return which::which(&path)
            .with_context(|| format!("CLAWSESS_CLAUDE={} is not an executable", path.display()));
    }
    which::which("claude").map_err(|_| {
        anyhow::anyhow!(
            "could not find claude: pass --claude PATH, set CLAWSESS_CLAUDE, or put claude on PATH \
             (npm install -g @anthropic-ai/claude-code)"
        )
    })
}

/// What `claude -p --output-format json` printed.
#[derive(Debug, Clone)]
pub struct ClaudeResult {
    /// Every field claude printed.
    pub fields: Map<String, Value>,
}

impl ClaudeResult {
    /// Parses claude's stdout: one JSON object (the last JSON line, should it print more).
    pub fn parse(stdout: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(stdout);
        let found = text
            .lines()
            .rev()
            .filter(|l| l.trim_start().starts_with('{'))
            .find_map(|l| serde_json::from_str::<Map<String, Value>>(l).ok())
            .or_else(|| serde_json::from_str::<Map<String, Value>>(text.trim()).ok());
        match found {
            Some(fields) => Ok(Self { fields }),
            None if text.trim().is_empty() => bail!("claude printed nothing"),
            None => bail!("claude did not print a JSON result: {}", crate::sys::one_line(&text, 300)),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.fields.get("session_id").and_then(Value::as_str)
    }

    /// The reply text.
    pub fn result(&self) -> &str {
        self.fields.get("result").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the turn failed: claude says so, or a hook refused the prompt (claude then
    /// reports success with the refusal as the result and never asks the model).
    pub fn is_error(&self) -> bool {
        self.fields.get("is_error").and_then(Value::as_bool).unwrap_or(false)
            || self.fields.get("subtype").and_then(Value::as_str).is_some_and(|s| s != "success")
            || self.result().starts_with("UserPromptSubmit operation blocked by hook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_encoding_replaces_every_non_alphanumeric() {
        assert_eq!(encode_cwd(Path::new("/home/me/my_proj.v2")), "-home-me-my-proj-v2");
    }

    #[test]
    fn result_parsing_takes_the_json_line() {
        let out = b"warning: something\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"s\",\"result\":\"hi\"}\n";
        let r = ClaudeResult::parse(out).unwrap();
        assert_eq!((r.session_id(), r.result(), r.is_error()), (Some("s"), "hi", false));
        let r = ClaudeResult::parse(br#"{"subtype":"error_max_turns","is_error":false}"#).unwrap();
        assert!(r.is_error());
        let blocked = br#"{"subtype":"success","is_error":false,"num_turns":0,"result":"UserPromptSubmit operation blocked by hook:\n[x]: no"}"#;
        assert!(ClaudeResult::parse(blocked).unwrap().is_error());
        assert!(ClaudeResult::parse(b"").is_err());
        assert!(ClaudeResult::parse(b"Error: boom").unwrap_err().to_string().contains("boom"));
    }
}
