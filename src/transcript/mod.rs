//! Reading a Claude Code transcript from its end, so that the cost does not grow with its
//! size: `show` and the latest topic (`attach`, `show --topic`) read a few blocks at most.

pub mod branches;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::claude::versions::Version;

const BLOCK: usize = 64 * 1024;
/// Lines longer than this (pasted images, huge tool output) are skipped, not buffered.
pub const MAX_LINE: usize = 8 * 1024 * 1024;
/// How far back a search for messages goes before it gives up.
pub const MAX_SCAN: u64 = 256 * 1024 * 1024;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A message of the conversation with its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip)]
    id: Option<String>,
}

/// The lines of a file, last first, read in blocks from the end.
pub struct RevLines {
    file: File,
    /// File offset of `block[0]`.
    pos: u64,
    block: Vec<u8>,
    /// `block[..end]` is still unread.
    end: usize,
    /// Pieces of a line that spans blocks, the last piece first.
    frags: Vec<Vec<u8>>,
    frag_len: usize,
    skipping: bool,
    scanned: u64,
    limit: u64,
    done: bool,
}

/// Opens a transcript for reading, refusing anything but a regular file: opening a FIFO
/// would block until someone writes to it, and a device could be read forever.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

impl RevLines {
    pub fn open(path: &Path, limit: u64) -> io::Result<Self> {
        let file = open_regular(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            pos: len,
            block: Vec::new(),
            end: 0,
            frags: Vec::new(),
            frag_len: 0,
            skipping: false,
            scanned: 0,
            limit,
            done: false,
        })
    }

    fn take_line(&mut self, start: usize) -> Option<Vec<u8>> {
        let mut line = self.block[start..self.end].to_vec();
        for frag in self.frags.drain(..).rev() {
            line.extend_from_slice(&frag);
        }
        self.frag_len = 0;
        let skipped = std::mem::take(&mut self.skipping);
        (!skipped).then_some(line)
    }

    /// The previous line, without its newline; `None` at the start of the file or past the
    /// scan limit.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        while !self.done {
            if let Some(nl) = self.block[..self.end].iter().rposition(|&b| b == b'\n') {
                let line = self.take_line(nl + 1);
                self.end = nl;
                match line {
                    Some(line) => return Ok(Some(line)),
                    None => continue,
                }
            }
            if self.pos == 0 || self.scanned >= self.limit {
                self.done = true;
                if self.pos == 0 && (self.end > 0 || !self.frags.is_empty()) {
                    return Ok(self.take_line(0));
                }
                return Ok(None);
            }
            if self.end > 0 {
                self.frag_len += self.end;
                if self.frag_len > MAX_LINE {
                    self.skipping = true;
                    self.frags.clear();
                } else if !self.skipping {
                    self.frags.push(self.block[..self.end].to_vec());
                }
            }
            let size = BLOCK.min(self.pos as usize);
            self.pos -= size as u64;
            self.block.resize(size, 0);
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.read_exact(&mut self.block)?;
            self.end = size;
            self.scanned += size as u64;
        }
        Ok(None)
    }
}

/// A transcript line, as clawsess reads one (the fields it uses of Claude Code's; the rest
/// are skipped, not built). The one wire type of a line: `show`, the topic and the MCP
/// tools' turns read it.
#[derive(Deserialize)]
pub(crate) struct Line {
    /// `user`, `assistant`, `system`, `summary`, `last-prompt`, ...
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    /// Text Claude Code adds (an expanded command file, a caveat): not the person's.
    #[serde(rename = "isMeta", default)]
    pub(crate) is_meta: bool,
    /// A sub-agent's line.
    #[serde(rename = "isSidechain", default)]
    pub(crate) is_sidechain: bool,
    /// The summary a compaction wrote, as a user line.
    #[serde(rename = "isCompactSummary", default)]
    pub(crate) is_compact_summary: bool,
    pub(crate) timestamp: Option<String>,
    pub(crate) message: Option<WireMessage>,
    /// On a tool result line: the call was refused for want of permission.
    #[serde(rename = "toolDenialKind")]
    pub(crate) denial: Option<serde_json::Value>,
    /// On a tool result line: `{"decision": "reject"}` when the call was refused.
    #[serde(rename = "permissionDecision")]
    pub(crate) decision: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(crate) struct WireMessage {
    pub(crate) id: Option<String>,
    pub(crate) content: Option<serde_json::Value>,
}

/// The message a transcript line holds, if it is a user or assistant line with text.
pub fn parse_line(line: &[u8]) -> Option<Message> {
    let line: Line = serde_json::from_slice(line).ok()?;
    let role = match line.kind.as_deref()? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => return None,
    };
    if line.is_meta || line.is_sidechain {
        return None;
    }
    let message = line.message?;
    let id = message.id.clone();
    let mut text = message_text(message.content.as_ref())?;
    if role == Role::User
        && let Some(typed) = slash_command(text.trim_start())
    {
        text = typed;
    }
    Some(Message { role, text, timestamp: line.timestamp, id })
}

/// A slash command as the person typed it (`/attach --key telegram:1`), from the line Claude
/// Code writes for one: `<command-message>attach</command-message>` `<command-name>/attach
/// </command-name>` `<command-args>--key telegram:1</command-args>`, in either order (the
/// expanded command file follows as a meta line).
pub(crate) fn slash_command(text: &str) -> Option<String> {
    if !(text.starts_with("<command-message>") || text.starts_with("<command-name>")) {
        return None;
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text.find(&open)? + open.len();
        let len = text[from..].find(&format!("</{name}>"))?;
        Some(text[from..from + len].trim())
    };
    let name = tag("command-name")?;
    let name = if name.starts_with('/') { name.to_owned() } else { format!("/{name}") };
    Some(match tag("command-args").filter(|a| !a.is_empty()) {
        Some(args) => format!("{name} {args}"),
        None => name,
    })
}

/// A message's text: the string, or its `text` blocks joined; `None` when there is none.
pub(crate) fn message_text(content: Option<&serde_json::Value>) -> Option<String> {
    use serde_json::Value;
    let text = match content? {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// Calls `visit` with the messages of a transcript, last first, until it returns false.
/// Streaming writes one assistant line per content block; consecutive lines of one
/// assistant message come back joined as one message.
fn visit_backwards(path: &Path, mut visit: impl FnMut(Message) -> bool) -> Result<()> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, MAX_SCAN).with_context(read_err)?;
    let mut pending: Option<Message> = None;
    while let Some(line) = lines.next_line().with_context(read_err)? {
        let Some(msg) = parse_line(&line) else {
            continue;
        };
        if let Some(later) = pending.as_mut()
            && later.role == Role::Assistant
            && msg.id.is_some()
            && later.id == msg.id
        {
            later.text = format!("{}\n{}", msg.text, later.text);
            later.timestamp = msg.timestamp;
            continue;
        }
        if let Some(done) = pending.replace(msg)
            && !visit(done)
        {
            return Ok(());
        }
    }
    if let Some(done) = pending {
        visit(done);
    }
    Ok(())
}

/// The last `n` messages with text, oldest first.
pub fn last_messages(path: &Path, n: usize) -> Result<Vec<Message>> {
    let mut out = Vec::with_capacity(n.min(1024));
    if n > 0 {
        visit_backwards(path, |msg| {
            out.push(msg);
            out.len() < n
        })?;
    }
    out.reverse();
    Ok(out)
}

/// The last user prompt and the last assistant reply of a transcript.
#[derive(Debug, Default, Serialize)]
pub struct Topic {
    pub prompt: Option<Message>,
    pub reply: Option<Message>,
}

/// Reads back from the end until it has the last prompt and the reply that followed it.
pub fn last_topic(path: &Path) -> Result<Topic> {
    let mut topic = Topic::default();
    visit_backwards(path, |msg| {
        match msg.role {
            Role::User => topic.prompt = Some(msg),
            Role::Assistant if topic.reply.is_none() => topic.reply = Some(msg),
            Role::Assistant => {}
        }
        topic.prompt.is_none()
    })?;
    Ok(topic)
}

/// The Claude Code version that wrote the end of a transcript: the `version` field of its
/// last line that has one (Claude Code puts it on every message line). Reads at most 256 KiB
/// from the end, and usually one or two lines.
pub fn transcript_version(path: &Path) -> Option<Version> {
    #[derive(serde::Deserialize)]
    struct Line {
        version: Option<String>,
    }
    let mut lines = RevLines::open(path, 256 * 1024).ok()?;
    while let Ok(Some(line)) = lines.next_line() {
        if let Some(v) = serde_json::from_slice::<Line>(&line).ok().and_then(|l| l.version) {
            return Version::parse(&v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_slash_command_reads_as_typed() {
        let line = serde_json::json!({"type": "user", "message": {"role": "user", "content":
            "<command-message>attach</command-message>\n<command-name>/attach</command-name>\n<command-args>--key telegram:1</command-args>"}});
        assert_eq!(parse_line(line.to_string().as_bytes()).unwrap().text, "/attach --key telegram:1");
        let reply = serde_json::json!({"type": "assistant", "message": {"content": "<command-name>/x</command-name>"}});
        assert_eq!(parse_line(reply.to_string().as_bytes()).unwrap().text, "<command-name>/x</command-name>");
    }

    fn rev_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let mut r = RevLines::open(f.path(), u64::MAX).unwrap();
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out.reverse();
        out
    }

    #[test]
    fn reverse_lines_match_forward_split_across_block_edges() {
        let mut text = Vec::new();
        for i in 0..5000 {
            text.extend_from_slice(format!("line {i} é{}\n", "x".repeat(i % 97)).as_bytes());
        }
        text.extend_from_slice(b"no newline at end");
        let want: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        assert_eq!(rev_lines(&text), want);
    }

    #[test]
    fn a_line_longer_than_a_block_comes_back_whole() {
        let long = "y".repeat(3 * BLOCK + 17);
        let text = format!("a\n{long}\nb\n");
        let got = rev_lines(text.as_bytes());
        assert_eq!(got, vec![b"a".to_vec(), long.into_bytes(), b"b".to_vec(), Vec::new()]);
    }

    #[test]
    fn empty_file_has_no_lines() {
        assert!(rev_lines(b"").is_empty());
    }

    fn user(text: &str) -> String {
        serde_json::json!({"type":"user","message":{"role":"user","content":text},"timestamp":"t"})
            .to_string()
    }

    fn assistant(id: &str, text: &str) -> String {
        serde_json::json!({"type":"assistant","message":{"id":id,"role":"assistant",
            "content":[{"type":"text","text":text}]}})
        .to_string()
    }

    #[test]
    fn last_messages_skips_noise_and_joins_streamed_blocks() {
        let lines = [
            user("first"),
            assistant("m1", "one"),
            r#"{"type":"system","content":"x"}"#.to_string(),
            user("second"),
            serde_json::json!({"type":"user","isMeta":true,"message":{"content":"meta"}}).to_string(),
            serde_json::json!({"type":"user","message":{"content":[{"type":"tool_result","content":"r"}]}})
                .to_string(),
            assistant("m2", "two-a"),
            assistant("m2", "two-b"),
            "{\"type\":\"assistant\",\"mess".to_string(), // torn last line
        ];
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(lines.join("\n").as_bytes()).unwrap();
        let got = last_messages(f.path(), 3).unwrap();
        let texts: Vec<_> = got.iter().map(|m| (m.role, m.text.as_str())).collect();
        assert_eq!(
            texts,
            vec![(Role::Assistant, "one"), (Role::User, "second"), (Role::Assistant, "two-a\ntwo-b")]
        );
        let topic = last_topic(f.path()).unwrap();
        assert_eq!(topic.prompt.unwrap().text, "second");
        assert_eq!(topic.reply.unwrap().text, "two-a\ntwo-b");
    }

    #[test]
    fn the_transcript_version_is_its_last_line_that_names_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let lines = [
            r#"{"type":"user","uuid":"a","version":"2.1.100"}"#,
            r#"{"type":"assistant","uuid":"b","version":"2.1.332"}"#,
            r#"{"type":"last-prompt","leafUuid":"b"}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert_eq!(transcript_version(&path), Some(crate::claude::versions::Version(2, 1, 332)));
        let none = dir.path().join("none.jsonl");
        std::fs::write(&none, "{\"type\":\"last-prompt\",\"leafUuid\":\"b\"}\n").unwrap();
        assert_eq!(transcript_version(&none), None);
        assert_eq!(transcript_version(&dir.path().join("missing.jsonl")), None);
    }
}
