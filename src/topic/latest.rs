//! The latest topic of a transcript, read from its end: the prompts back to where the topic
//! started (the previous long pause, or a few prompts), what those turns did (from their
//! `tool_use` blocks), and the last reply. What `attach` and `show --topic` print.
//!
//! Seen on Claude Code 2.1.328: a tool call is an assistant line whose `message.content` has
//! a `tool_use` block (`name`, `id`, `input`); its result comes back as a user line with a
//! `tool_result` block (`tool_use_id`, `is_error`). A call refused for want of permission
//! gets a result line with `toolDenialKind` (and `permissionDecision.decision: "reject"`);
//! it never ran, but it is what the model tried, so it is listed, counted as `denied`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::ident::shorten;
use crate::transcript::{Line, RevLines, message_text, slash_command};

/// Where the topic starts, looking back from the end.
#[derive(Debug, Clone, Copy)]
pub struct TopicLimits {
    /// At most this many prompts.
    pub prompts: usize,
    /// A prompt that came after a pause this long starts the topic.
    pub pause: Duration,
    /// Bytes read back at most, whatever the transcript's size.
    pub scan: u64,
}

impl Default for TopicLimits {
    fn default() -> Self {
        Self { prompts: 5, pause: Duration::from_secs(30 * 60), scan: 32 * 1024 * 1024 }
    }
}

/// Distinct actions listed at most; calls past them are only counted.
pub const MAX_ACTIONS: usize = 50;
/// Longest command shown as a Bash action's target.
const COMMAND_MAX: usize = 80;

/// A prompt of the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prompt {
    pub text: String,
    pub timestamp: Option<String>,
}

/// Calls of one tool on one target during the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// The tool's name as Claude Code gives it: `Bash`, `Edit`, `Write`, `Read`, `mcp__...`.
    pub tool: String,
    /// The file for Write, Edit, MultiEdit and NotebookEdit (relative to the session's cwd
    /// when inside it); the command for Bash (its first line, shortened); else none.
    pub target: Option<String>,
    /// Calls, the failed and denied ones included.
    pub count: u32,
    /// Calls whose result was an error (a command's non-zero exit, an edit that did not apply).
    pub failed: u32,
    /// Calls refused for want of permission: they never ran.
    pub denied: u32,
}

/// The latest topic of a transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatestTopic {
    /// Oldest first; the last one is the last prompt.
    pub prompts: Vec<Prompt>,
    /// In the order they were first called.
    pub actions: Vec<Action>,
    /// Calls to more distinct targets than [`MAX_ACTIONS`], not listed.
    pub actions_omitted: u32,
    /// The text of the last assistant message that had text.
    pub last_reply: Option<String>,
    /// The timestamp of the last user or assistant line: when the conversation last moved.
    pub at: Option<String>,
}

impl LatestTopic {
    /// When the last turn started (its prompt), else when the conversation last moved, in
    /// Unix milliseconds.
    pub fn last_turn_ms(&self) -> Option<u64> {
        let prompt = self.prompts.last().and_then(|p| p.timestamp.as_deref());
        prompt.or(self.at.as_deref()).and_then(millis)
    }
}

/// Unix milliseconds of a transcript timestamp (RFC 3339).
pub fn millis(timestamp: &str) -> Option<u64> {
    let t: jiff::Timestamp = timestamp.parse().ok()?;
    u64::try_from(t.as_millisecond()).ok()
}

/// Reads the latest topic of the transcript at `path`, whose session runs in `cwd`.
pub fn latest_topic(path: &Path, cwd: &Path, limits: TopicLimits) -> Result<LatestTopic> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, limits.scan).with_context(read_err)?;
    let mut reader = Reader::new(cwd, limits);
    while let Some(line) = lines.next_line().with_context(read_err)? {
        if let Ok(line) = serde_json::from_slice::<Line>(&line)
            && !reader.take(line)
        {
            break;
        }
    }
    Ok(reader.finish())
}

impl Line {
    fn denied(&self) -> bool {
        let rejected = || self.decision.as_ref().and_then(|d| d.get("decision")?.as_str()) == Some("reject");
        self.denial.as_ref().is_some_and(|d| !d.is_null()) || rejected()
    }
}

/// How a call's result came back (no entry: it went fine, or has no result yet).
#[derive(Clone, Copy)]
enum Outcome {
    Failed,
    Denied,
}

/// The state of a read from the end, one line at a time.
struct Reader<'a> {
    cwd: &'a Path,
    limits: TopicLimits,
    topic: LatestTopic,
    /// Newest first while reading.
    prompts: Vec<Prompt>,
    /// With the line count (from the end) of the earliest call seen so far.
    actions: Vec<(Action, usize)>,
    outcomes: HashMap<String, Outcome>,
    /// The message id of the last reply while earlier blocks of it may still come.
    reply_id: Option<String>,
    /// The time of the last prompt taken: the next older line tells whether a pause came
    /// before it.
    pause_check: Option<u64>,
    seen: usize,
}

impl<'a> Reader<'a> {
    fn new(cwd: &'a Path, limits: TopicLimits) -> Self {
        Self {
            cwd,
            limits,
            topic: LatestTopic::default(),
            prompts: Vec::new(),
            actions: Vec::new(),
            outcomes: HashMap::new(),
            reply_id: None,
            pause_check: None,
            seen: 0,
        }
    }

    /// Takes the next older line; false when the topic has started.
    fn take(&mut self, line: Line) -> bool {
        let user = match line.kind.as_deref() {
            Some("user") => true,
            Some("assistant") => false,
            _ => return true,
        };
        if line.is_sidechain {
            return true;
        }
        self.seen += 1;
        let when = line.timestamp.as_deref().and_then(millis);
        if let (Some(prompt), Some(when)) = (self.pause_check, when) {
            if prompt.saturating_sub(when) >= self.limits.pause.as_millis() as u64 {
                return false;
            }
            self.pause_check = None;
        }
        if self.topic.at.is_none() {
            self.topic.at.clone_from(&line.timestamp);
        }
        let content = line.message.as_ref().and_then(|m| m.content.as_ref());
        if user {
            self.reply_id = None;
            self.take_results(&line, content);
            if let Some(text) = prompt_text(&line, content) {
                self.prompts.push(Prompt { text, timestamp: line.timestamp.clone() });
                self.pause_check = when;
                return self.prompts.len() < self.limits.prompts;
            }
        } else {
            let id = line.message.as_ref().and_then(|m| m.id.clone());
            self.take_reply(id, content);
            self.take_calls(content);
        }
        true
    }

    fn take_results(&mut self, line: &Line, content: Option<&Value>) {
        let denied = line.denied();
        for block in blocks(content).filter(|b| kind(b) == Some("tool_result")) {
            let Some(id) = block.get("tool_use_id").and_then(Value::as_str) else { continue };
            if denied {
                self.outcomes.insert(id.to_owned(), Outcome::Denied);
            } else if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                self.outcomes.insert(id.to_owned(), Outcome::Failed);
            }
        }
    }

    /// Streaming writes one line per content block: the last reply is the text of the
    /// newest message with text, its earlier blocks joined in front.
    fn take_reply(&mut self, id: Option<String>, content: Option<&Value>) {
        let text = message_text(content);
        if self.topic.last_reply.is_none() {
            if let Some(text) = text {
                self.topic.last_reply = Some(text);
                self.reply_id = id;
            }
            return;
        }
        if self.reply_id.is_some() && id != self.reply_id {
            self.reply_id = None;
        }
        if let (Some(text), Some(_), Some(reply)) = (text, &self.reply_id, self.topic.last_reply.as_mut()) {
            *reply = format!("{text}\n{reply}");
        }
    }

    fn take_calls(&mut self, content: Option<&Value>) {
        for block in blocks(content).filter(|b| kind(b) == Some("tool_use")) {
            let tool = block.get("name").and_then(Value::as_str).unwrap_or("?");
            let target = target(tool, block.get("input"), self.cwd);
            let outcome = block.get("id").and_then(Value::as_str).and_then(|id| self.outcomes.remove(id));
            let index = match self.actions.iter().position(|(a, _)| a.tool == tool && a.target == target) {
                Some(index) => index,
                None if self.actions.len() >= MAX_ACTIONS => {
                    self.topic.actions_omitted += 1;
                    continue;
                }
                None => {
                    let action = Action { tool: tool.to_owned(), target, count: 0, failed: 0, denied: 0 };
                    self.actions.push((action, 0));
                    self.actions.len() - 1
                }
            };
            let (action, first) = &mut self.actions[index];
            *first = self.seen;
            action.count += 1;
            match outcome {
                Some(Outcome::Failed) => action.failed += 1,
                Some(Outcome::Denied) => action.denied += 1,
                None => {}
            }
        }
    }

    fn finish(mut self) -> LatestTopic {
        self.prompts.reverse();
        self.topic.prompts = self.prompts;
        // The earliest first call has the highest count from the end.
        self.actions.sort_by_key(|(_, first)| std::cmp::Reverse(*first));
        self.topic.actions = self.actions.into_iter().map(|(a, _)| a).collect();
        self.topic
    }
}

fn blocks(content: Option<&Value>) -> impl Iterator<Item = &Value> {
    content.and_then(Value::as_array).into_iter().flatten()
}

fn kind(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// The text of a user line that is a person's (or a bot's) prompt: not a tool result, not
/// Claude Code's own note (meta lines, a compaction summary, "[Request interrupted by user]").
fn prompt_text(line: &Line, content: Option<&Value>) -> Option<String> {
    if line.is_meta || line.is_compact_summary {
        return None;
    }
    let text = message_text(content)?;
    let start = text.trim_start();
    if start.starts_with("[Request interrupted by user") || start.starts_with("<local-command-std") {
        return None;
    }
    Some(slash_command(start).unwrap_or(text))
}

/// What a call worked on: see [`Action::target`].
fn target(tool: &str, input: Option<&Value>, cwd: &Path) -> Option<String> {
    let field = |name: &str| input?.get(name)?.as_str();
    match tool {
        "Bash" => {
            let mut lines = field("command")?.trim().lines();
            let first = lines.next().unwrap_or("");
            let more = if lines.next().is_some() { " …" } else { "" };
            Some(shorten(&format!("{first}{more}"), COMMAND_MAX))
        }
        "Write" | "Edit" | "MultiEdit" => field("file_path").map(|p| relative(p, cwd)),
        "NotebookEdit" => field("notebook_path").map(|p| relative(p, cwd)),
        _ => None,
    }
}

/// `path` relative to `cwd` when inside it, else as given.
fn relative(path: &str, cwd: &Path) -> String {
    match Path::new(path).strip_prefix(cwd) {
        Ok(rest) if !rest.as_os_str().is_empty() => rest.display().to_string(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    const CWD: &str = "/home/dev/project";

    fn user(text: &str, at: &str) -> Value {
        json!({"type":"user","message":{"role":"user","content":text},"timestamp":at})
    }

    fn text(id: &str, text: &str, at: &str) -> Value {
        json!({"type":"assistant","message":{"id":id,"content":[{"type":"text","text":text}]},"timestamp":at})
    }

    fn call(id: &str, tool: &str, input: Value, at: &str) -> Value {
        json!({"type":"assistant","message":{"id":format!("m-{id}"),
            "content":[{"type":"tool_use","id":id,"name":tool,"input":input}]},"timestamp":at})
    }

    fn result(id: &str, is_error: bool, at: &str) -> Value {
        json!({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":id,
            "content":"out","is_error":is_error}]},"timestamp":at})
    }

    fn denied(id: &str, at: &str) -> Value {
        let mut line = result(id, true, at);
        line["toolDenialKind"] = json!("user-rejected");
        line["permissionDecision"] = json!({"decision":"reject","source":"config"});
        line
    }

    fn read(lines: &[Value], limits: TopicLimits) -> LatestTopic {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for line in lines {
            writeln!(f, "{line}").unwrap();
        }
        latest_topic(f.path(), Path::new(CWD), limits).unwrap()
    }

    fn at(minute: u32, second: u32) -> String {
        format!("2026-11-21T10:{minute:02}:{second:02}.000Z")
    }

    fn prompts(topic: &LatestTopic) -> Vec<&str> {
        topic.prompts.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn actions_of_the_topic_are_counted_by_tool_and_target_in_the_order_first_called() {
        let lines = [
            user("fix the build", &at(0, 0)),
            call("t1", "Bash", json!({"command":"cargo test"}), &at(0, 1)),
            result("t1", true, &at(0, 2)),
            call("t2", "Edit", json!({"file_path":format!("{CWD}/src/main.rs")}), &at(0, 3)),
            result("t2", false, &at(0, 4)),
            call("t3", "Bash", json!({"command":"cargo test"}), &at(0, 5)),
            result("t3", false, &at(0, 6)),
            call("t4", "Write", json!({"file_path":"/etc/motd"}), &at(0, 7)),
            denied("t4", &at(0, 8)),
            call("t5", "Read", json!({"file_path":format!("{CWD}/a")}), &at(0, 9)),
            call("t6", "Read", json!({"file_path":format!("{CWD}/b")}), &at(0, 10)),
            json!({"type":"attachment","attachment":{"type":"hook_additional_context"}}),
            text("m9", "Done.", &at(0, 11)),
        ];
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(prompts(&topic), ["fix the build"]);
        let got: Vec<_> = topic
            .actions
            .iter()
            .map(|a| (a.tool.as_str(), a.target.as_deref(), a.count, a.failed, a.denied))
            .collect();
        assert_eq!(
            got,
            [
                ("Bash", Some("cargo test"), 2, 1, 0),
                ("Edit", Some("src/main.rs"), 1, 0, 0),
                ("Write", Some("/etc/motd"), 1, 0, 1),
                ("Read", None, 2, 0, 0),
            ]
        );
        assert_eq!(topic.last_reply.as_deref(), Some("Done."));
        assert_eq!(topic.at.as_deref(), Some(at(0, 11).as_str()));
        assert_eq!(topic.last_turn_ms(), millis(&at(0, 0)));
    }

    #[test]
    fn the_topic_starts_after_a_long_pause_or_at_the_prompt_limit() {
        let lines = [
            user("yesterday's question", &at(0, 0)),
            call("t0", "Bash", json!({"command":"make old"}), &at(0, 1)),
            text("m0", "old answer", &at(0, 2)),
            // 40 minutes later:
            user("first of today", &at(40, 0)),
            call("t1", "Bash", json!({"command":"make\nmake install"}), &at(40, 1)),
            text("m1", "one", &at(40, 2)),
            user("second", &at(41, 0)),
            text("m2", "two", &at(41, 1)),
            user("third", &at(42, 0)),
            text("m3", "three", &at(42, 1)),
        ];
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(prompts(&topic), ["first of today", "second", "third"]);
        assert_eq!(topic.actions.len(), 1);
        assert_eq!(topic.actions[0].target.as_deref(), Some("make …"));
        assert_eq!(topic.last_reply.as_deref(), Some("three"));

        let two = TopicLimits { prompts: 2, ..TopicLimits::default() };
        let topic = read(&lines, two);
        assert_eq!(prompts(&topic), ["second", "third"]);
        assert!(topic.actions.is_empty());

        let long_pause = TopicLimits { pause: Duration::from_secs(3600), ..TopicLimits::default() };
        let topic = read(&lines, long_pause);
        assert_eq!(prompts(&topic), ["yesterday's question", "first of today", "second", "third"]);
        assert_eq!(topic.actions.len(), 2);
    }

    #[test]
    fn tool_results_interrupts_meta_and_compaction_are_not_prompts() {
        let mut meta = user("<local-command-caveat>", &at(0, 1));
        meta["isMeta"] = json!(true);
        let mut summary = user("This session is being continued ...", &at(0, 2));
        summary["isCompactSummary"] = json!(true);
        let mut side = user("a sub-agent's prompt", &at(0, 3));
        side["isSidechain"] = json!(true);
        let lines = [
            user("the real prompt", &at(0, 0)),
            meta,
            summary,
            side,
            call("t1", "Bash", json!({"command":"ls"}), &at(0, 4)),
            result("t1", false, &at(0, 5)),
            json!({"type":"user","message":{"content":[{"type":"text","text":"[Request interrupted by user]"}]},
                "timestamp":at(0, 6)}),
            "{\"type\":\"assistant\",\"mess".into(), // a torn last line
        ];
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(prompts(&topic), ["the real prompt"]);
        assert_eq!(topic.actions[0].count, 1);
        assert_eq!(topic.last_reply, None);
    }

    #[test]
    fn a_slash_command_is_shown_as_typed_and_its_output_is_no_prompt() {
        let mut expanded = user("<!-- installed by clawsess -->\nthe command file", &at(0, 2));
        expanded["isMeta"] = json!(true);
        let lines = [
            user(
                "<command-message>attach</command-message>\n<command-name>/attach</command-name>\n\
                 <command-args>--key telegram:1</command-args>",
                &at(0, 1),
            ),
            expanded,
            user(
                "<command-name>/model</command-name>\n<command-message>model</command-message>\n<command-args></command-args>",
                &at(0, 3),
            ),
            user("<local-command-stdout>Set model to opus</local-command-stdout>", &at(0, 4)),
            user(
                "<command-message>clawsess:sessions</command-message>\n<command-name>/clawsess:sessions</command-name>",
                &at(0, 5),
            ),
            user("<command-message>broken", &at(0, 6)),
        ];
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(
            prompts(&topic),
            ["/attach --key telegram:1", "/model", "/clawsess:sessions", "<command-message>broken"]
        );
    }

    #[test]
    fn a_reply_streamed_as_several_lines_comes_back_whole() {
        let lines = [
            user("explain", &at(0, 0)),
            text("m1", "part one", &at(0, 1)),
            text("m1", "part two", &at(0, 2)),
            call("t1", "Bash", json!({"command":"true"}), &at(0, 3)),
            text("m2", "after the call", &at(0, 4)),
            text("m2", "and more", &at(0, 5)),
        ];
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(topic.last_reply.as_deref(), Some("after the call\nand more"));
    }

    #[test]
    fn past_the_scan_limit_the_reader_stops_with_what_it_has() {
        let filler = "x".repeat(200 * 1024);
        let mut lines = vec![user("long ago", &at(0, 0))];
        lines.extend((0..4).map(|i| result(&format!("old{i}"), false, &at(0, 1))));
        lines[1]["message"]["content"][0]["content"] = json!(filler);
        lines.push(user("now", &at(1, 0)));
        lines.push(text("m", "reply", &at(1, 1)));
        let topic = read(&lines, TopicLimits { scan: 64 * 1024, ..TopicLimits::default() });
        assert_eq!(prompts(&topic), ["now"]);
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(prompts(&topic), ["long ago", "now"]);
    }

    #[test]
    fn many_distinct_targets_are_capped_and_counted() {
        let mut lines = vec![user("go", &at(0, 0))];
        for i in 0..MAX_ACTIONS + 7 {
            lines.push(call(&format!("t{i}"), "Bash", json!({"command":format!("echo {i}")}), &at(0, 1)));
        }
        let topic = read(&lines, TopicLimits::default());
        assert_eq!(topic.actions.len(), MAX_ACTIONS);
        assert_eq!(topic.actions_omitted, 7);
        assert_eq!(
            topic.actions.last().unwrap().target.as_deref(),
            Some(format!("echo {}", MAX_ACTIONS + 6).as_str())
        );
    }

    #[test]
    fn an_empty_transcript_has_an_empty_topic() {
        assert_eq!(read(&[], TopicLimits::default()), LatestTopic::default());
    }
}
