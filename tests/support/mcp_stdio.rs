//! A client of `clawsess mcp` on stdio without Claude Code (so no caller session, and only the
//! tools that need none answer for real): JSON-RPC messages in, one a line; the answers out.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::installed::text;
use super::real_claude::run_with_stdin;

/// Longest a `clawsess mcp` may take to answer everything (a tool may reach another host).
const WAIT: Duration = Duration::from_secs(180);

/// A `tools/call` request of `tool` with `args`.
pub fn tool_call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// Runs `mcp` (a `clawsess mcp` command of a world) with `messages` on stdin, one a line;
/// asserts it exits 0; its answers, in id order.
pub fn answers(mut mcp: Command, messages: &[Value]) -> Vec<Value> {
    let input: String = messages.iter().map(|m| format!("{m}\n")).collect();
    let out = run_with_stdin(&mut mcp, &input, WAIT);
    assert!(out.status.success(), "clawsess mcp: {}", text(&out));
    let mut answers: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    answers.sort_by_key(|a| a["id"].as_u64());
    answers
}

/// [`answers`] to these tool calls (numbered from 0): their results, in call order.
pub fn call_tools(mcp: Command, calls: &[(&str, Value)]) -> Vec<Value> {
    let messages: Vec<Value> =
        calls.iter().enumerate().map(|(i, (tool, args))| tool_call(i as u64, tool, args.clone())).collect();
    answers(mcp, &messages).into_iter().map(|a| a["result"].clone()).collect()
}

/// The text of content block `block` of a tool result ("" where there is none).
pub fn tool_text(result: &Value, block: usize) -> String {
    result["content"][block]["text"].as_str().unwrap_or_default().to_owned()
}
