//! Claude Code's stream-json protocol, exactly as far as clawsess uses it: the lines `claude
//! -p --output-format stream-json --verbose` prints, and the lines it reads with
//! `--input-format stream-json`. Seen on Claude Code 2.1.328; unknown fields and line types
//! are ignored, so newer versions parse too.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// One line claude prints.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// `system` lines: `init` (the session starts), `informational` (e.g. a prompt a hook
    /// refused), and others.
    System {
        #[serde(default)]
        subtype: String,
        /// `init`: what this claude can do (`msg_lifecycle_v1`, ...; Claude Code 2.1.x).
        #[serde(default)]
        capabilities: Vec<String>,
    },
    /// Where claude is with a user message that carried a `uuid` (`queued`, `started`,
    /// `completed`, ...): Claude Code 2.1.x with `msg_lifecycle_v1`.
    CommandLifecycle {
        command_uuid: String,
        #[serde(default)]
        state: String,
    },
    /// A message of the model: one line per content block as it completes.
    Assistant {
        message: Message,
        /// Set when a sub-agent (the Task tool) wrote it.
        #[serde(default)]
        parent_tool_use_id: Option<String>,
    },
    /// The turn's end: the object `--output-format json` prints, every field kept.
    Result {
        #[serde(flatten)]
        fields: Map<String, Value>,
    },
    /// Claude asks its caller something (with `--permission-prompt-tool stdio`: may a tool
    /// run?) and waits for a `control_response` with the same `request_id`.
    ControlRequest { request_id: String, request: ControlRequest },
    /// Claude withdraws a control request it sent (the turn was interrupted meanwhile).
    ControlCancelRequest { request_id: String },
    /// Claude's answer to a control request of ours (an interrupt).
    ControlResponse {},
    /// `user` lines (tool results), `stream_event`, `rate_limit_event`, ...
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub content: Vec<Block>,
}

/// A content block of an assistant message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// `thinking`, `server_tool_use`, ...
    #[serde(other)]
    Other,
}

/// What claude asks in a `control_request`.
#[derive(Debug, Deserialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum ControlRequest {
    /// May this tool run with this input?
    CanUseTool {
        tool_name: String,
        #[serde(default)]
        input: Value,
        #[serde(default)]
        tool_use_id: Option<String>,
    },
    /// `hook_callback`, `mcp_message`, ...: never asked of clawsess (it registers none).
    #[serde(other)]
    Other,
}

impl Line {
    /// Parses one line of claude's stdout; `None` for a line that is not a JSON object (some
    /// builds print debug text there).
    pub fn parse(line: &str) -> Option<Line> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

/// The user message that starts a turn: the prompt, with images before it as blocks.
///
/// `verbatim` marks the message as composed by the client (`client_composed`, Claude Code
/// 2.1.248+): the text reaches the model as written, so a chat user's `@/any/file` does not
/// put that file into the request and `/cmd` does not run a command.
pub fn user_message(prompt: &str, images: &[Value], verbatim: bool) -> Value {
    let content = if images.is_empty() {
        Value::String(prompt.to_owned())
    } else {
        let mut blocks = images.to_vec();
        blocks.push(json!({"type": "text", "text": prompt}));
        Value::Array(blocks)
    };
    let mut message = json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
    });
    if verbatim {
        message["client_composed"] = Value::Bool(true);
    }
    message
}

/// A user message sent while a turn runs (`run --steer`): `uuid` makes claude report where
/// it is with it (`command_lifecycle`).
pub fn steer_message(prompt: &str, images: &[Value], verbatim: bool, uuid: &str) -> Value {
    let mut message = user_message(prompt, images, verbatim);
    message["uuid"] = Value::String(uuid.to_owned());
    message
}

/// Our answer to claude's `can_use_tool` request `request_id`.
pub fn permission_response(request_id: &str, allow: bool, input: &Value, reason: &str) -> Value {
    let decision = if allow {
        json!({"behavior": "allow", "updatedInput": input})
    } else {
        json!({"behavior": "deny", "message": reason})
    };
    json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": decision},
    })
}

/// Refuses a control request clawsess does not serve, so claude does not wait for it.
pub fn unsupported_response(request_id: &str) -> Value {
    json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": "not supported by clawsess"},
    })
}

/// Asks claude to end the turn now; it answers with a `result` (`error_during_execution`)
/// after writing what the turn did to the transcript.
pub fn interrupt_request(request_id: &str) -> Value {
    json!({"type": "control_request", "request_id": request_id, "request": {"subtype": "interrupt"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_claude_2_1_328_parse_into_what_clawsess_uses() {
        let tool = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]},"parent_tool_use_id":null,"session_id":"s","uuid":"u"}"#;
        match Line::parse(tool) {
            Some(Line::Assistant { message, parent_tool_use_id: None }) => match &message.content[..] {
                [Block::ToolUse { id, name, input }] => {
                    assert_eq!(
                        (id.as_str(), name.as_str(), &input["command"]),
                        ("toolu_1", "Bash", &json!("ls"))
                    )
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        let ask = r#"{"type":"control_request","request_id":"r1","request":{"subtype":"can_use_tool","tool_name":"Bash","display_name":"Bash","input":{"command":"tee x"},"permission_suggestions":[],"tool_use_id":"toolu_1"}}"#;
        assert!(matches!(
            Line::parse(ask),
            Some(Line::ControlRequest { request: ControlRequest::CanUseTool { .. }, .. })
        ));
        let result = r#"{"type":"result","subtype":"success","is_error":false,"result":"hi","session_id":"s","num_turns":1}"#;
        match Line::parse(result) {
            Some(Line::Result { fields }) => assert_eq!(fields["result"], "hi"),
            other => panic!("{other:?}"),
        }
        let lifecycle = r#"{"type":"command_lifecycle","command_uuid":"c1","state":"completed","uuid":"u","session_id":"s"}"#;
        assert!(matches!(
            Line::parse(lifecycle),
            Some(Line::CommandLifecycle { command_uuid, state }) if command_uuid == "c1" && state == "completed"
        ));
        let init = r#"{"type":"system","subtype":"init","capabilities":["interrupt_receipt_v1","msg_lifecycle_v1"]}"#;
        assert!(matches!(
            Line::parse(init),
            Some(Line::System { capabilities, .. }) if capabilities.contains(&"msg_lifecycle_v1".to_string())
        ));
        for other in [
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result"}]}}"#,
            r#"{"type":"rate_limit_event","x":1}"#,
            r#"{"type":"system","subtype":"init","cwd":"/","tools":[]}"#,
            r#"{"type":"control_response","response":{"subtype":"success","request_id":"i"}}"#,
            r#"{"type":"control_request","request_id":"r2","request":{"subtype":"hook_callback"}}"#,
        ] {
            assert!(Line::parse(other).is_some(), "{other}");
        }
        assert!(Line::parse("[SandboxDebug] hello").is_none());
        let thinking = r#"{"type":"assistant","message":{"content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"ok"}]}}"#;
        assert!(matches!(Line::parse(thinking), Some(Line::Assistant { .. })));
    }

    #[test]
    fn the_user_message_puts_images_before_the_prompt() {
        let image =
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}});
        let m = user_message("what is this", &[image], false);
        assert_eq!(m["message"]["content"][0]["type"], "image");
        assert_eq!(m["message"]["content"][1], json!({"type": "text", "text": "what is this"}));
        assert_eq!(user_message("hi", &[], false)["message"]["content"], "hi");
        assert_eq!(user_message("hi", &[], true)["client_composed"], true);
    }
}
