//! Test data: session ids, hook input and realistic Claude Code transcripts.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Deterministic, random-looking v4 UUIDs.
pub fn session_ids(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5eed_c1a5);
    (0..n).map(|_| rng.uuid()).collect()
}

/// The shortest prefix (at least `min` chars) naming `ids[0]` alone.
pub fn unique_prefix(ids: &[String], min: usize) -> String {
    (min..36)
        .map(|len| ids[0][..len].to_owned())
        .find(|p| ids.iter().filter(|id| id.starts_with(p.as_str())).count() == 1)
        .unwrap()
}

pub fn hook_json(id: &str, transcript: &Path, cwd: &Path, source: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "session_id": id,
        "transcript_path": transcript,
        "cwd": cwd,
        "hook_event_name": "SessionStart",
        "source": source,
    }))
    .unwrap()
}

/// Claude Code's project folder name for `cwd`.
pub fn encode_cwd(cwd: &Path) -> String {
    cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast and good enough for test data.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    /// About `len` bytes of prose-like text, with the quotes, newlines and code that make
    /// JSON escaping work.
    fn text(&mut self, len: usize) -> String {
        const WORDS: &[&str] = &[
            "the",
            "session",
            "hook",
            "cargo",
            "build",
            "test",
            "fn",
            "let",
            "file",
            "error",
            "Result<()>",
            "\"quoted\"",
            "path",
            "src/store/mod.rs",
            "`clawsess run`",
            "ok,",
            "which",
            "because",
            "lock",
            "record",
            "é",
            "→",
            "returns",
            "value",
            "and",
            "a",
        ];
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            out.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
            out.push(if self.below(12) == 0 { '\n' } else { ' ' });
        }
        out
    }
}

/// Lines of a Claude Code transcript: a turn is a prompt, a reply, a few tool calls with
/// their results, and a closing reply. `scale` 1 makes ~0.3-1 KB lines, 4 makes 1-4 KB.
struct TranscriptGen {
    rng: Rng,
    session: String,
    parent: String,
    seq: u64,
    scale: usize,
}

impl TranscriptGen {
    fn new(session: &str, scale: usize) -> Self {
        Self {
            rng: Rng(0xabcd_ef01 ^ scale as u64),
            session: session.to_owned(),
            parent: String::new(),
            seq: 0,
            scale,
        }
    }

    fn envelope(&mut self, kind: &str, message: serde_json::Value) -> serde_json::Value {
        let uuid = self.rng.uuid();
        self.seq += 1;
        let secs = 1_767_000_000 + self.seq;
        let line = serde_json::json!({
            "parentUuid": if self.parent.is_empty() { serde_json::Value::Null } else { self.parent.clone().into() },
            "isSidechain": false,
            "userType": "external",
            "cwd": "/home/dev/project",
            "sessionId": self.session,
            "version": "2.1.30",
            "gitBranch": "main",
            "type": kind,
            "message": message,
            "uuid": uuid,
            "timestamp": format!("2026-01-{:02}T{:02}:{:02}:{:02}.000Z", 1 + secs / 86400 % 28, secs / 3600 % 24, secs / 60 % 60, secs % 60),
        });
        self.parent = uuid;
        line
    }

    fn user(&mut self) -> serde_json::Value {
        let n = 100 * self.scale + self.rng.below(150 * self.scale as u64) as usize;
        let text = self.rng.text(n);
        self.envelope("user", serde_json::json!({"role": "user", "content": text}))
    }

    fn assistant(&mut self, content: serde_json::Value) -> serde_json::Value {
        let id = format!("msg_01{:022x}", self.rng.next() as u128 * 31);
        let mut line = self.envelope(
            "assistant",
            serde_json::json!({
                "id": id, "type": "message", "role": "assistant", "model": "claude-opus-4-5",
                "content": content, "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 4, "cache_creation_input_tokens": 1834,
                    "cache_read_input_tokens": 41_233, "output_tokens": 312,
                    "service_tier": "standard"}
            }),
        );
        line["requestId"] = format!("req_011C{:020x}", self.rng.next()).into();
        line
    }

    fn reply(&mut self) -> serde_json::Value {
        let n = 150 * self.scale + self.rng.below(500 * self.scale as u64) as usize;
        let text = self.rng.text(n);
        self.assistant(serde_json::json!([{"type": "text", "text": text}]))
    }

    fn tool_call(&mut self) -> [serde_json::Value; 2] {
        let tool = format!("toolu_01{:020x}", self.rng.next());
        let command = self.rng.text(40 * self.scale);
        let call = self.assistant(serde_json::json!([{
            "type": "tool_use", "id": tool, "name": "Bash",
            "input": {"command": command, "description": "Run the tests"}
        }]));
        let n = 100 * self.scale + self.rng.below(300 * self.scale as u64) as usize;
        let output = self.rng.text(n);
        let mut result = self.envelope(
            "user",
            serde_json::json!({"role": "user", "content": [{
                "tool_use_id": tool, "type": "tool_result", "content": output, "is_error": false
            }]}),
        );
        result["toolUseResult"] = serde_json::json!({
            "stdout": output, "stderr": "", "interrupted": false, "isImage": false
        });
        [call, result]
    }

    /// One whole turn.
    fn turn(&mut self) -> Vec<serde_json::Value> {
        let mut lines = vec![self.user(), self.reply()];
        for _ in 0..self.rng.below(4) {
            lines.extend(self.tool_call());
        }
        lines.push(self.reply());
        lines
    }
}

/// A transcript of whole turns, at least `size` bytes.
pub fn transcript_bytes(size: usize, turns_min: usize, session: &str) -> Vec<u8> {
    let mut lines_of = TranscriptGen::new(session, 1);
    let mut out = Vec::new();
    let mut turns = 0;
    while out.len() < size || turns < turns_min {
        for line in lines_of.turn() {
            serde_json::to_writer(&mut out, &line).unwrap();
            out.push(b'\n');
        }
        turns += 1;
    }
    out
}

/// Writes a transcript of whole turns of at least `size` bytes, streaming (this process's
/// peak RSS stays small).
pub fn write_transcript(path: &Path, size: u64, scale: usize, session: &str) {
    let mut lines_of = TranscriptGen::new(session, scale);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut written = 0u64;
    let mut buf = Vec::with_capacity(8192);
    while written < size {
        for line in lines_of.turn() {
            buf.clear();
            serde_json::to_writer(&mut buf, &line).unwrap();
            buf.push(b'\n');
            out.write_all(&buf).unwrap();
            written += buf.len() as u64;
        }
    }
    out.flush().unwrap();
}
