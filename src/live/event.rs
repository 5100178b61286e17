//! What a live turn tells its caller as it goes: the lines of `run --stream`.

use serde::Serialize;
use serde_json::Value;

use crate::ident::{RequestId, SessionId};
use crate::live::ask::Question;

/// One event of a live turn; `run --stream` prints each as one JSON line. The last line,
/// the result object, is not an event: `run` prints it once the turn is recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// The session the turn goes to, before claude starts; `warm`: a warm claude answers
    /// it (`run --warm`), which had the session loaded already.
    Session {
        session_id: SessionId,
        key: String,
        cwd: std::path::PathBuf,
        resumed: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        warm: bool,
    },
    /// Text of the model's reply, a block at a time as claude completes it.
    Text { text: String },
    /// The model calls a tool (`input` as claude gave it).
    Tool { id: String, tool: String, input: Value },
    /// The tool call needs permission: answer with `clawsess answer REQUEST_ID allow|deny`.
    Permission { request_id: RequestId, tool: String, input: Value, timeout_s: u64 },
    /// Claude asks the person (AskUserQuestion): answer with `clawsess answer REQUEST_ID
    /// --choice LABEL...` and/or `--text TEXT`, or `deny` to decline.
    Question { request_id: RequestId, questions: Vec<Question>, timeout_s: u64 },
    /// Claude wants to leave plan mode and carry out `plan` (ExitPlanMode): `clawsess answer
    /// REQUEST_ID allow` approves it; `deny` or `--text WHAT TO CHANGE` keeps it planning.
    Plan { request_id: RequestId, plan: String, timeout_s: u64 },
    /// The turn waits for the session: `position` 1 is next; `behind`: who answers it now
    /// (a run's key, or `terminal`, ...). Sent again when either changes. Or it waits for a
    /// claude process to be allowed to start (`turn::cap`): then `behind` is `"cap"`,
    /// `position` its place among the turns of every key that wait for one, and `cap` the
    /// most claudes clawsess runs at once (`CLAWSESS_MAX_CLAUDES`).
    Queued {
        position: usize,
        behind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<usize>,
        /// Behind the cap: who holds the slots, a key each (`doctor --probe` for the probe's).
        #[serde(skip_serializing_if = "Option::is_none")]
        held_by: Option<Vec<String>>,
    },
    /// `run --steer`: where the message went. `into`: `"turn"` (into the turn of the run of
    /// key `key` in progress; its events and result follow) or `"queue"` (it runs as a turn
    /// of its own; `why` says why).
    Steer {
        into: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// `run --interrupt`: `stopped` names the key of the run whose turn was stopped; without
    /// it, `why` says why none was (nothing in progress, or a turn clawsess cannot stop).
    /// This message's turn runs next either way, before any other waiting turn.
    Interrupt {
        #[serde(skip_serializing_if = "Option::is_none")]
        stopped: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
}

/// Where events go: a callback, so a Rust bot can take them without parsing JSON.
pub trait Sink {
    fn event(&mut self, event: &Event);

    /// A line of another run's turn, as that run printed it (`run --steer` follows the turn it
    /// steered into). Dropped unless the sink prints lines.
    fn line(&mut self, _line: &serde_json::Value) {}
}

impl<F: FnMut(&Event)> Sink for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// Events as JSON lines on stdout, each flushed at once. A closed stdout is not our error:
/// the turn goes on and is recorded.
pub struct JsonLines;

impl Sink for JsonLines {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            print_line(&line);
        }
    }

    fn line(&mut self, line: &serde_json::Value) {
        print_line(&line.to_string());
    }
}

/// One line on stdout, flushed at once; a closed stdout is not our error.
fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_as_the_spec_names_them() {
        let tool = Event::Tool { id: "toolu_1".into(), tool: "Bash".into(), input: json!({"command": "ls"}) };
        assert_eq!(
            serde_json::to_value(&tool).unwrap(),
            json!({"type": "tool", "id": "toolu_1", "tool": "Bash", "input": {"command": "ls"}})
        );
        let text = serde_json::to_value(Event::Text { text: "hi".into() }).unwrap();
        assert_eq!(text, json!({"type": "text", "text": "hi"}));
    }
}
