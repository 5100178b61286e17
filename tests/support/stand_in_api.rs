//! The stand-in Messages API: the library's (`clawsess::probe::stand_in`), the one `doctor
//! --probe` serves, so the tests and the probe drive Claude Code against the same server; and
//! what several suites script on it or read from it.

#![allow(dead_code)]

pub use clawsess::probe::stand_in::*;

/// A question with three options (Red, Blue, Green), as the model would ask it
/// (AskUserQuestion); `multi`: several may be picked.
pub fn color_question(multi: bool) -> ToolCall {
    ToolCall::new(
        "AskUserQuestion",
        serde_json::json!({"questions": [{
            "question": "Which color should the button be?",
            "header": "Color",
            "options": [
                {"label": "Red", "description": "warm and loud"},
                {"label": "Blue", "description": "calm"},
                {"label": "Green", "description": "go"}
            ],
            "multiSelect": multi
        }]}),
    )
}

/// The tool results the model got in the last main-turn request `api` received: each
/// tool_result block's content as JSON, one a line.
pub fn last_tool_results(api: &StandInApi) -> String {
    let req = api.turn_requests().pop().expect("a turn request");
    let mut out = Vec::new();
    for m in req.body["messages"].as_array().unwrap() {
        for b in m["content"].as_array().into_iter().flatten().filter(|b| b["type"] == "tool_result") {
            out.push(b["content"].to_string());
        }
    }
    out.join("\n")
}
