//! JSON-RPC 2.0 as MCP's stdio transport carries it (one message per line), and the
//! `initialize` handshake.
//!
//! Seen with Claude Code 2.1.328 (its `claude mcp list` health check and every session):
//! it first sends `server/discover` (the stateless revision 2026-07-28), and on "method not
//! found" sends `initialize` with `protocolVersion: "2025-11-25"`, then
//! `notifications/initialized` and `tools/list`.

use serde_json::{Value, json};

/// The revisions this server speaks, newest first: a client asking for one of them gets it,
/// any other gets the newest (and may hang up, as the protocol says).
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn parse_error(why: impl std::fmt::Display) -> Self {
        Self { code: -32700, message: format!("parse error: {why}") }
    }

    pub fn invalid_request(why: impl std::fmt::Display) -> Self {
        Self { code: -32600, message: format!("invalid request: {why}") }
    }

    pub fn method_not_found(method: &str) -> Self {
        Self { code: -32601, message: format!("method not found: {method}") }
    }

    pub fn invalid_params(why: impl std::fmt::Display) -> Self {
        Self { code: -32602, message: format!("invalid params: {why}") }
    }
}

/// One message from the client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// An answer to a request of ours (we send none).
    Response,
}

/// The messages of one line: one message, or a batch (revision 2025-03-26). A message that
/// is no JSON-RPC is an error for the whole line.
pub fn parse(line: &[u8]) -> Result<Vec<Incoming>, RpcError> {
    let value: Value = serde_json::from_slice(line).map_err(RpcError::parse_error)?;
    match value {
        Value::Array(batch) if !batch.is_empty() => batch.into_iter().map(message).collect(),
        Value::Array(_) => Err(RpcError::invalid_request("an empty batch")),
        single => Ok(vec![message(single)?]),
    }
}

fn message(value: Value) -> Result<Incoming, RpcError> {
    let Value::Object(mut fields) = value else {
        return Err(RpcError::invalid_request("not a JSON object"));
    };
    let params = fields.remove("params").unwrap_or(Value::Null);
    let id = fields.remove("id");
    let Some(method) = fields.remove("method") else {
        return if id.is_some() && (fields.contains_key("result") || fields.contains_key("error")) {
            Ok(Incoming::Response)
        } else {
            Err(RpcError::invalid_request("no method"))
        };
    };
    let Value::String(method) = method else {
        return Err(RpcError::invalid_request("method is not a string"));
    };
    match id {
        None => Ok(Incoming::Notification { method, params }),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Incoming::Request { id, method, params }),
        Some(_) => Err(RpcError::invalid_request("id must be a string or a number")),
    }
}

/// The response to request `id`.
pub fn response(id: &Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(err) => json!({"jsonrpc": "2.0", "id": id, "error": {"code": err.code, "message": err.message}}),
    }
}

/// The answer to `initialize`: the client's revision when we speak it, else our newest.
pub fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked.filter(|v| PROTOCOL_VERSIONS.contains(v)).unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": super::SERVER_NAME, "title": "clawsess sessions", "version": env!("CARGO_PKG_VERSION") },
        "instructions": INSTRUCTIONS,
    })
}

const INSTRUCTIONS: &str = "clawsess sessions: other Claude Code conversations on this machine \
(a terminal, Telegram or Discord threads, scripts). sessions_list finds them, sessions_history reads \
what was said in one, session_status tells its model, size and whether it is busy, and \
sessions_send asks one a question (it answers as a turn of its own conversation) or hands it a \
task (reply: none). A session is named by its id, a unique id prefix, its name, or key:KEY for the \
session a surface key (e.g. key:telegram:123) talks to.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_responses_and_batches_are_told_apart() {
        let got = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(got, vec![Incoming::Request { id: json!(1), method: "ping".into(), params: Value::Null }]);
        let got = parse(br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"a","result":{}}]"#)
            .unwrap();
        assert_eq!(
            got,
            vec![
                Incoming::Notification { method: "notifications/initialized".into(), params: Value::Null },
                Incoming::Response
            ]
        );
        assert_eq!(parse(b"{not json").unwrap_err().code, -32700);
        assert_eq!(parse(b"[]").unwrap_err().code, -32600);
        assert_eq!(parse(br#"{"id":{},"method":"x"}"#).unwrap_err().code, -32600);
        assert_eq!(parse(br#"{"id":1}"#).unwrap_err().code, -32600);
    }

    #[test]
    fn the_clients_revision_is_kept_when_spoken_else_the_newest() {
        let v = |asked: &str| initialize(&json!({"protocolVersion": asked}))["protocolVersion"].clone();
        assert_eq!(v("2025-11-25"), "2025-11-25");
        assert_eq!(v("2025-06-18"), "2025-06-18");
        assert_eq!(v("2031-01-01"), PROTOCOL_VERSIONS[0]);
        assert_eq!(initialize(&Value::Null)["serverInfo"]["name"], "clawsess");
    }

    #[test]
    fn errors_keep_the_request_id() {
        let doc = response(&json!("x"), Err(RpcError::method_not_found("nope")));
        assert_eq!(doc["id"], "x");
        assert_eq!(doc["error"]["code"], -32601);
    }
}
