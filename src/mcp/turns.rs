//! A transcript read from its end for the tools: the last turns as text (`sessions_history`)
//! and what the requests cost (`session_status`). Each read stops after a fixed number of
//! bytes, so its cost is the same for a 2 KB and a 1 GiB transcript.
//!
//! Seen on Claude Code 2.1.328: an assistant message is written as one line per content
//! block, every line carrying the message's `id`, `model` and `usage` (`input_tokens`,
//! `cache_creation_input_tokens`, `cache_read_input_tokens`, `output_tokens`); a tool's result
//! comes back as a user line with `tool_result` blocks.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ident::shorten;
use crate::transcript::{Line, RevLines, message_text};

/// Bytes read back at most for the history.
pub const HISTORY_SCAN: u64 = 32 * 1024 * 1024;
/// Bytes read back at most for the usage figures.
pub const USAGE_SCAN: u64 = 16 * 1024 * 1024;
/// Longest prompt and reply text given per turn (characters).
const TEXT_MAX: usize = 4000;
/// Tool calls named per turn at most.
const TOOLS_MAX: usize = 20;

/// The `usage` of one request, as the API reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

impl Usage {
    /// Everything the request sent the model: its context.
    pub fn context(&self) -> u64 {
        self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
    }
}

/// One turn: a prompt, the tools it called, the reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub prompt: Option<String>,
    pub at: Option<String>,
    /// `Bash ×3`, `Edit`, ... in the order first called.
    pub tools: Vec<String>,
    pub reply: Option<String>,
}

/// A line's kind for the readers: whose, and whether a real prompt.
fn parse(line: &[u8]) -> Option<(bool, Line)> {
    let line: Line = serde_json::from_slice(line).ok()?;
    let user = match line.kind.as_deref()? {
        "user" => true,
        "assistant" => false,
        _ => return None,
    };
    (!line.is_sidechain).then_some((user, line))
}

fn blocks(content: Option<&Value>) -> impl Iterator<Item = &Value> {
    content.and_then(Value::as_array).into_iter().flatten()
}

/// A person's (or a surface's) prompt: not a tool result, not Claude Code's own note.
fn prompt_of(line: &Line) -> Option<String> {
    if line.is_meta || line.is_compact_summary {
        return None;
    }
    let text = message_text(line.message.as_ref()?.content.as_ref())?;
    (!text.trim_start().starts_with("[Request interrupted by user")).then_some(text)
}

/// The last `n` turns of the transcript at `path`, oldest first, each text shortened.
pub fn last_turns(path: &Path, n: usize) -> Result<Vec<Turn>> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, HISTORY_SCAN).with_context(read_err)?;
    let mut turns = Vec::new();
    let mut current = Turn::default();
    // Newest first while reading: reply parts and tool calls.
    let mut replies: Vec<String> = Vec::new();
    let mut tools: Vec<String> = Vec::new();
    let mut reply_id: Option<Option<String>> = None;
    while turns.len() < n {
        let Some(raw) = lines.next_line().with_context(read_err)? else { break };
        let Some((user, line)) = parse(&raw) else { continue };
        let message = line.message.as_ref();
        if user {
            if let Some(prompt) = prompt_of(&line) {
                current.prompt = Some(shorten(&prompt, TEXT_MAX));
                current.at.clone_from(&line.timestamp);
                finish(&mut current, &mut replies, &mut tools);
                turns.push(std::mem::take(&mut current));
                reply_id = None;
            } else if !replies.is_empty() {
                reply_id = Some(None); // an earlier assistant message is not the last reply
            }
            continue;
        }
        for block in blocks(message.and_then(|m| m.content.as_ref())) {
            if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                tools.push(block.get("name").and_then(Value::as_str).unwrap_or("?").to_owned());
            }
        }
        // The reply is the last assistant message with text, its streamed blocks joined.
        if let Some(text) = message_text(message.and_then(|m| m.content.as_ref())) {
            let id = message.and_then(|m| m.id.clone());
            match &reply_id {
                None => {
                    replies.push(text);
                    reply_id = Some(id);
                }
                Some(Some(first)) if id.as_ref() == Some(first) => replies.push(text),
                _ => {}
            }
        }
    }
    if turns.len() < n && (current.reply.is_some() || !tools.is_empty() || !replies.is_empty()) {
        // What comes before the first prompt read (the scan limit, or a compacted start).
        finish(&mut current, &mut replies, &mut tools);
        turns.push(current);
    }
    turns.reverse();
    Ok(turns)
}

fn finish(turn: &mut Turn, replies: &mut Vec<String>, tools: &mut Vec<String>) {
    replies.reverse();
    let reply = replies.join("\n");
    turn.reply = (!reply.is_empty()).then(|| shorten(&reply, TEXT_MAX));
    replies.clear();
    tools.reverse();
    let mut counted: Vec<(String, usize)> = Vec::new();
    for tool in tools.drain(..) {
        match counted.iter_mut().find(|(t, _)| *t == tool) {
            Some((_, n)) => *n += 1,
            None => counted.push((tool, 1)),
        }
    }
    let omitted = counted.len().saturating_sub(TOOLS_MAX);
    turn.tools = counted
        .into_iter()
        .take(TOOLS_MAX)
        .map(|(t, n)| if n > 1 { format!("{t} ×{n}") } else { t })
        .collect();
    if omitted > 0 {
        turn.tools.push(format!("{omitted} more tools"));
    }
}

/// What the end of a transcript says of the model's use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Spent {
    /// The model of the last request.
    pub model: Option<String>,
    /// Prompts counted.
    pub turns: u64,
    /// Requests counted (one per assistant message).
    pub requests: u64,
    pub tokens: Usage,
    /// The context the last request sent: input, cache writes and cache reads.
    pub context_used: Option<u64>,
    /// Whether the counts cover the whole transcript (else only its last [`USAGE_SCAN`] bytes).
    pub whole: bool,
    /// When the last prompt was written.
    pub last_prompt_at: Option<String>,
}

/// A line as [`spent`] reads it: only what it needs, so that the big tool results are skipped
/// over rather than built (the read of 16 MiB costs a third of what a full parse does).
#[derive(Deserialize)]
struct UsageLine {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "isMeta", default)]
    is_meta: bool,
    #[serde(rename = "isSidechain", default)]
    is_sidechain: bool,
    #[serde(rename = "isCompactSummary", default)]
    is_compact_summary: bool,
    timestamp: Option<String>,
    message: Option<UsageMessage>,
}

#[derive(Deserialize)]
struct UsageMessage {
    id: Option<String>,
    model: Option<String>,
    usage: Option<Usage>,
    content: Option<Content>,
}

/// A message's content, read without building the blocks' values (not `untagged`: serde
/// buffers an untagged enum's whole input first).
enum Content {
    Text(String),
    Blocks(Vec<Block>),
    Other,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of blocks")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Content, A::Error> {
                let mut blocks = Vec::new();
                while let Some(block) = seq.next_element::<Block>()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Content, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Content::Other)
            }
            fn visit_unit<E>(self) -> std::result::Result<Content, E> {
                Ok(Content::Other)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Content, E> {
                Ok(Content::Other)
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<Content, E> {
                Ok(Content::Other)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<Content, E> {
                Ok(Content::Other)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Content, E> {
                Ok(Content::Other)
            }
        }
        de.deserialize_any(Visit)
    }
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

impl UsageLine {
    /// Whether it is a person's (or a surface's) prompt; see [`prompt_of`].
    fn is_prompt(&self) -> bool {
        if self.is_meta || self.is_compact_summary {
            return false;
        }
        let has_text =
            |t: &str| !t.trim().is_empty() && !t.trim_start().starts_with("[Request interrupted by user");
        match self.message.as_ref().and_then(|m| m.content.as_ref()) {
            Some(Content::Text(t)) => has_text(t),
            Some(Content::Blocks(blocks)) => {
                let texts: Vec<&str> = blocks
                    .iter()
                    .filter(|b| b.kind.as_deref() == Some("text"))
                    .filter_map(|b| b.text.as_deref())
                    .collect();
                has_text(&texts.join("\n"))
            }
            _ => false,
        }
    }
}

/// Sums the usage of the transcript at `path`, read back at most `scan` bytes.
pub fn spent(path: &Path, scan: u64) -> Result<Spent> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, scan).with_context(read_err)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut spent = Spent { whole: len <= scan, ..Spent::default() };
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(raw) = lines.next_line().with_context(read_err)? {
        let Ok(line) = serde_json::from_slice::<UsageLine>(&raw) else { continue };
        if line.is_sidechain {
            continue;
        }
        match line.kind.as_deref() {
            Some("user") => {
                if line.is_prompt() {
                    spent.turns += 1;
                    if spent.last_prompt_at.is_none() {
                        spent.last_prompt_at = line.timestamp;
                    }
                }
                continue;
            }
            Some("assistant") => {}
            _ => continue,
        }
        let Some(message) = &line.message else { continue };
        // Streaming repeats a message's usage on each of its lines: the newest counts once.
        if message.id.as_ref().is_some_and(|id| !seen.insert(id.clone())) {
            continue;
        }
        let Some(usage) = message.usage else { continue };
        if spent.model.is_none() {
            spent.model.clone_from(&message.model);
            spent.context_used = Some(usage.context());
        }
        spent.requests += 1;
        let t = &mut spent.tokens;
        t.input_tokens += usage.input_tokens;
        t.cache_creation_input_tokens += usage.cache_creation_input_tokens;
        t.cache_read_input_tokens += usage.cache_read_input_tokens;
        t.output_tokens += usage.output_tokens;
    }
    Ok(spent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn user(text: &str) -> Value {
        json!({"type":"user","message":{"role":"user","content":text},"timestamp":"2026-12-04T10:00:00Z"})
    }

    fn said(id: &str, text: &str, input: u64, output: u64) -> Value {
        json!({"type":"assistant","message":{"id":id,"model":"claude-x","content":[{"type":"text","text":text}],
            "usage":{"input_tokens":input,"cache_read_input_tokens":100,"output_tokens":output}}})
    }

    fn call(id: &str, tool: &str) -> Value {
        json!({"type":"assistant","message":{"id":id,"model":"claude-x","content":[{"type":"tool_use","id":"t","name":tool,"input":{}}],
            "usage":{"input_tokens":1,"output_tokens":1}}})
    }

    fn result() -> Value {
        json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}})
    }

    fn file(lines: &[Value]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for line in lines {
            writeln!(f, "{line}").unwrap();
        }
        f
    }

    #[test]
    fn the_last_turns_hold_prompt_tools_and_the_whole_last_reply() {
        let f = file(&[
            user("one"),
            said("m1", "first answer", 10, 5),
            user("two"),
            call("m2", "Bash"),
            result(),
            call("m3", "Bash"),
            result(),
            call("m4", "Edit"),
            result(),
            said("m5", "part a", 20, 3),
            said("m5", "part b", 20, 4),
            json!({"type":"system","content":"noise"}),
        ]);
        let turns = last_turns(f.path(), 5).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].prompt.as_deref(), Some("one"));
        assert_eq!(turns[0].reply.as_deref(), Some("first answer"));
        assert_eq!(turns[1].prompt.as_deref(), Some("two"));
        assert_eq!(turns[1].tools, ["Bash ×2", "Edit"]);
        assert_eq!(turns[1].reply.as_deref(), Some("part a\npart b"));
        assert_eq!(last_turns(f.path(), 1).unwrap()[0].prompt.as_deref(), Some("two"));
        assert!(last_turns(f.path(), 0).unwrap().is_empty());
    }

    #[test]
    fn usage_counts_each_message_once_and_the_last_request_gives_the_context() {
        let f = file(&[
            user("one"),
            said("m1", "a", 10, 5),
            result(),
            user("two"),
            said("m2", "b", 20, 3),
            said("m2", "c", 20, 4),
        ]);
        let s = spent(f.path(), USAGE_SCAN).unwrap();
        assert_eq!(s.model.as_deref(), Some("claude-x"));
        assert_eq!((s.turns, s.requests), (2, 2));
        assert_eq!((s.tokens.input_tokens, s.tokens.output_tokens), (30, 9));
        assert_eq!(s.context_used, Some(120));
        assert!(s.whole);
        let tail = spent(f.path(), 10).unwrap();
        assert!(!tail.whole);
    }
}
