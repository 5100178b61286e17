//! Where a session's conversation stands: its latest topic, read from the end of its
//! transcript (prompts, actions, last reply), and the surface that wrote the last turn, from
//! clawsess's own records. What `attach` and `show --topic` print.

pub mod latest;

use anyhow::Result;
use serde::Serialize;

use crate::store::{SessionRecord, Store, now_ms};
use crate::sys::{ago, one_line, printable};

pub use latest::{Action, LatestTopic, MAX_ACTIONS, Prompt, TopicLimits, latest_topic, millis};

/// `last_surface` of a turn no clawsess surface recorded: a person's Claude Code, or any
/// `claude` that clawsess did not run.
pub const TERMINAL: &str = "terminal";

/// A session's latest topic and who spoke last.
#[derive(Debug, Clone, Serialize)]
pub struct SessionTopic {
    #[serde(flatten)]
    pub topic: LatestTopic,
    /// The surface key that wrote the last turn, or [`TERMINAL`]; `None` when there is no
    /// turn yet.
    pub last_surface: Option<String>,
}

/// Reads `rec`'s latest topic (from the end of its transcript: the cost does not grow with
/// the transcript's size) and who spoke last.
pub fn session_topic(store: &Store, rec: &SessionRecord) -> Result<SessionTopic> {
    let topic = latest_topic(&rec.transcript, &rec.cwd, TopicLimits::default())?;
    let last_surface = topic.last_turn_ms().map(|started| last_surface(store, rec, started));
    Ok(SessionTopic { topic, last_surface })
}

/// Which surface wrote the turn that started at `started_ms` (Unix ms): the key of the
/// newest turn clawsess recorded (`run`'s, and any turn the catch-up log holds) when that
/// turn was recorded after `started_ms`, else [`TERMINAL`]. A recorded turn is written once
/// its answer is in, so a later turn from elsewhere starts after it.
pub fn last_surface(store: &Store, rec: &SessionRecord, started_ms: u64) -> String {
    let recorded = rec.last_turn_key.as_ref().map(|key| (rec.last_turn_at, key.clone()));
    // A broken log is doctor's to report; here it only cannot say more than the record.
    let logged = store
        .turn_log(&rec.id)
        .ok()
        .flatten()
        .and_then(|log| log.turns.into_iter().max_by_key(|t| t.at).map(|t| (t.at, t.key)));
    match recorded.into_iter().chain(logged).max() {
        Some((at, key)) if at >= started_ms => key,
        _ => TERMINAL.to_owned(),
    }
}

/// Most actions named on the human line; the rest are counted.
const ACTIONS_SHOWN: usize = 12;

impl SessionTopic {
    /// Human lines (`  label: text`), control characters escaped: the topic and who spoke
    /// last, what was done, then the last prompt (or, with `all_prompts`, every prompt of the
    /// topic) and the last reply, each on one line.
    pub fn human(&self, all_prompts: bool) -> String {
        let t = &self.topic;
        let mut out = String::new();
        let mut line = |label: &str, text: &str| {
            out.push_str(&format!("  {label:<12} {}\n", printable(text, false)));
        };
        let Some(surface) = &self.last_surface else {
            line("topic:", "nothing said yet");
            return out;
        };
        // Relative times: finding the local time zone's name costs jiff ~1 ms (a scan of the
        // zoneinfo tree when /etc/localtime is a copy), as much as the whole read.
        let ago = |ts: Option<&str>| ts.and_then(millis).map(|ms| ago(ms, now_ms()));
        let count = t.prompts.len();
        let s = if count == 1 { "" } else { "s" };
        let first = ago(t.prompts.first().and_then(|p| p.timestamp.as_deref()));
        let since = first.map(|a| format!(", the first {a}")).unwrap_or_default();
        let when = ago(t.at.as_deref()).map(|a| format!(", {a}")).unwrap_or_default();
        line("topic:", &format!("{count} prompt{s}{since}; last turn by {surface}{when}"));
        line("done:", &actions_text(&t.actions, t.actions_omitted));
        if all_prompts && count > 1 {
            for (i, p) in t.prompts.iter().enumerate() {
                line(if i == 0 { "prompts:" } else { "" }, &format!("{}. {}", i + 1, one_line(&p.text, 100)));
            }
        } else {
            line("last prompt:", &t.prompts.last().map_or("-".to_owned(), |p| one_line(&p.text, 100)));
        }
        line("last reply:", &t.last_reply.as_deref().map_or("-".to_owned(), |r| one_line(r, 100)));
        out
    }
}

/// "edited src/a.rs ×2; wrote out.txt (denied); ran `cargo test` ×2 (1 failed); Read ×3".
fn actions_text(actions: &[Action], omitted: u32) -> String {
    if actions.is_empty() && omitted == 0 {
        return "no tool calls".into();
    }
    let mut parts = Vec::new();
    let mut shown = 0;
    for (group, verb) in ["edited ", "wrote ", "ran ", ""].into_iter().enumerate() {
        let items: Vec<String> = actions
            .iter()
            .filter(|a| group_of(&a.tool) == group)
            .take(ACTIONS_SHOWN - shown)
            .map(action_text)
            .collect();
        shown += items.len();
        if !items.is_empty() {
            parts.push(format!("{verb}{}", items.join(", ")));
        }
    }
    let more = actions.len() - shown + omitted as usize;
    if more > 0 {
        parts.push(format!("{more} more"));
    }
    parts.join("; ")
}

/// Edits, writes, commands, the rest: the groups of the actions line.
fn group_of(tool: &str) -> usize {
    match tool {
        "Edit" | "MultiEdit" | "NotebookEdit" => 0,
        "Write" => 1,
        "Bash" => 2,
        _ => 3,
    }
}

fn action_text(a: &Action) -> String {
    let what = match (&a.target, a.tool.as_str()) {
        (Some(cmd), "Bash") => format!("`{cmd}`"),
        (Some(target), _) => target.clone(),
        (None, tool) => tool.to_owned(),
    };
    let times = if a.count > 1 { format!(" ×{}", a.count) } else { String::new() };
    let mut notes = Vec::new();
    for (n, word) in [(a.failed, "failed"), (a.denied, "denied")] {
        match n {
            0 => {}
            n if n == a.count => notes.push(word.to_owned()),
            n => notes.push(format!("{n} {word}")),
        }
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
    format!("{what}{times}{notes}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::SessionId;
    use crate::store::{COMMAND_LOCK_WAIT, FORMAT, Starter, SurfaceTurn, TurnLog};

    #[test]
    fn the_last_surface_is_a_recorded_turn_that_ended_after_the_last_prompt_began() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let id = SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap();
        let t = dir.path().join("t.jsonl");
        let mut rec = SessionRecord::new(id.clone(), dir.path().into(), t, Starter::Person, 0);
        assert_eq!(last_surface(&store, &rec, 1_000), TERMINAL);
        rec.last_turn_key = Some("telegram:1".into());
        rec.last_turn_at = 2_000;
        assert_eq!(last_surface(&store, &rec, 1_000), "telegram:1", "its own prompt, recorded after");
        assert_eq!(last_surface(&store, &rec, 3_000), TERMINAL, "a prompt after it came from elsewhere");
        let tx = store.lock(COMMAND_LOCK_WAIT).unwrap();
        // A turn of another surface in the catch-up log, written as the store keeps it.
        let turn = SurfaceTurn {
            seq: 1,
            key: "discord:9".into(),
            by_pid: None,
            at: crate::sys::now_ms(),
            prompt: "p".into(),
            reply: "r".into(),
            token: None,
        };
        tx.put_turn_log(&id, &TurnLog { v: FORMAT, next_seq: 2, turns: vec![turn], ..TurnLog::default() })
            .unwrap();
        drop(tx);
        assert_eq!(last_surface(&store, &rec, 3_000), "discord:9", "the catch-up log's newer turn");
    }

    fn action(tool: &str, target: Option<&str>, count: u32, failed: u32, denied: u32) -> Action {
        Action { tool: tool.into(), target: target.map(Into::into), count, failed, denied }
    }

    #[test]
    fn actions_read_as_one_line_grouped_by_kind() {
        let actions = [
            action("Bash", Some("cargo test"), 2, 1, 0),
            action("Edit", Some("src/main.rs"), 2, 0, 0),
            action("Write", Some("out.txt"), 1, 0, 1),
            action("Read", None, 3, 0, 0),
            action("Edit", Some("README.md"), 1, 0, 0),
        ];
        assert_eq!(
            actions_text(&actions, 0),
            "edited src/main.rs ×2, README.md; wrote out.txt (denied); ran `cargo test` ×2 (1 failed); Read ×3"
        );
        assert_eq!(actions_text(&[], 0), "no tool calls");
        let many: Vec<Action> =
            (0..20).map(|i| action("Bash", Some(&format!("echo {i}")), 1, 0, 0)).collect();
        let text = actions_text(&many, 3);
        assert!(
            text.contains("`echo 11`") && !text.contains("`echo 12`") && text.ends_with("; 11 more"),
            "{text}"
        );
    }

    #[test]
    fn human_lines_escape_control_characters() {
        let topic = SessionTopic {
            topic: LatestTopic {
                prompts: vec![Prompt { text: "hi\x1b]52;c;eA==\x07".into(), timestamp: None }],
                actions: vec![action("Bash", Some("printf '\x1b[2J'"), 1, 0, 0)],
                last_reply: Some("ok\x1b[31m".into()),
                ..LatestTopic::default()
            },
            last_surface: Some(TERMINAL.into()),
        };
        let text = topic.human(false);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(text.contains("\\u{1b}]52;c;eA==\\u{7}") && text.contains("last turn by terminal"), "{text}");
    }
}
