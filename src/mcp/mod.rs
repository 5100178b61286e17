//! `clawsess mcp`: the cross-session tools as an MCP server on stdio, so that the model in
//! any session can list, read, ask and send to the others (SPEC v3 "Cross-session tools").
//!
//! - [`rpc`]: JSON-RPC 2.0 and the MCP handshake, as Claude Code speaks them.
//! - [`tools`]: the four tools: their schemas, and `sessions_list` / `sessions_history`.
//! - [`status`]: what `session_status` and `clawsess status` say of a session.
//! - [`caller`]: which session is calling (from the process tree), and the chain of sends
//!   that led here.
//! - [`send`]: `sessions_send`, a `clawsess run` turn on the target.
//! - [`crate::perms`]: what that turn may do: never more than the caller's own turn.
//! - [`register`]: `install` / `uninstall` / `doctor` and Claude Code's list of MCP servers.
//!
//! Hand-written rather than on the `rmcp` crate: the protocol clawsess needs is four methods
//! of line-delimited JSON-RPC, while rmcp is async (tokio, futures, schemars, its macros) in
//! a small synchronous CLI. Nothing here runs unless the `mcp` subcommand is asked for, so
//! the hooks' start-up is not touched.

pub mod caller;
pub mod register;
pub mod rpc;
pub mod send;
pub mod status;
pub mod tools;
pub mod turns;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use rpc::{Incoming, RpcError};

/// The server name Claude Code registers the tools under: `mcp__clawsess__sessions_list`.
pub const SERVER_NAME: &str = "clawsess";
/// Longest JSON-RPC line read (a `sessions_send` message may be 4 MiB, escaped).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// How long, once stdin has ended, answers still under way are waited for.
const DRAIN: Duration = Duration::from_secs(30);

/// Shared by the reader and the threads answering `tools/call`.
struct Server {
    out: Mutex<Box<dyn Write + Send>>,
    /// Answers a `tools/call` (`tools::call`; a stand-in in tests).
    call: ToolCall,
    /// Requests the client cancelled (`notifications/cancelled`): their answer is not sent.
    cancelled: Mutex<HashSet<String>>,
    /// Tool calls under way, so that the answers to calls read before stdin ended still go out.
    running: (Mutex<usize>, Condvar),
}

impl Server {
    /// Writes one message as one line; the lock keeps concurrent answers whole.
    fn write(&self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A client that went away is no error of ours: the reader sees the EOF and ends.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }

    fn answer(&self, id: &Value, result: std::result::Result<Value, RpcError>) {
        let key = id.to_string();
        if self.cancelled.lock().unwrap_or_else(|e| e.into_inner()).remove(&key) {
            return; // the client cancelled it and waits for no answer
        }
        self.write(&rpc::response(id, result));
    }
}

type ToolCall = fn(&Value) -> std::result::Result<Value, RpcError>;

/// Serves MCP on stdin/stdout until stdin ends. Every `tools/call` runs on its own thread,
/// so a `sessions_send` waiting for a reply never holds up a `ping` or another tool.
pub fn serve() -> Result<()> {
    serve_on(std::io::stdin().lock(), Box::new(std::io::stdout()), tools::call)
}

fn serve_on(mut stdin: impl BufRead, out: Box<dyn Write + Send>, call: ToolCall) -> Result<()> {
    let server = Arc::new(Server {
        out: Mutex::new(out),
        call,
        cancelled: Mutex::default(),
        running: (Mutex::new(0), Condvar::new()),
    });
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::Read::take(&mut stdin, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            server.write(&rpc::response(&Value::Null, Err(RpcError::invalid_request("message too long"))));
            skip_rest_of_line(&mut stdin)?;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match rpc::parse(&line) {
            Ok(messages) => messages.into_iter().for_each(|m| handle(&server, m)),
            Err(err) => server.write(&rpc::response(&Value::Null, Err(err))),
        }
    }
    // The client is gone or done: a send still under way goes on in its target regardless.
    let (count, done) = &server.running;
    let deadline = Instant::now() + DRAIN;
    let mut running = count.lock().unwrap_or_else(|e| e.into_inner());
    while *running > 0 && Instant::now() < deadline {
        running = done.wait_timeout(running, deadline - Instant::now()).unwrap_or_else(|e| e.into_inner()).0;
    }
    Ok(())
}

fn skip_rest_of_line(stdin: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = stdin.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            stdin.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        stdin.consume(n);
    }
}

fn handle(server: &Arc<Server>, message: Incoming) {
    match message {
        Incoming::Request { id, method, params } => match method.as_str() {
            "tools/call" => {
                let server = Arc::clone(server);
                *server.running.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                std::thread::spawn(move || {
                    let result = (server.call)(&params);
                    server.answer(&id, result);
                    let (count, done) = &server.running;
                    *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                    done.notify_all();
                });
            }
            _ => server.answer(&id, request(&method, &params)),
        },
        Incoming::Notification { method, params } => {
            if method == "notifications/cancelled"
                && let Some(id) = params.get("requestId")
            {
                // A tool call already under way goes on (a send's turn is the target's now);
                // only its answer is dropped, as the protocol asks.
                server.cancelled.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string());
            }
            // notifications/initialized and anything else: nothing to do.
        }
        Incoming::Response => {} // we send no requests
    }
}

/// Every request but `tools/call`.
fn request(method: &str, params: &Value) -> std::result::Result<Value, RpcError> {
    match method {
        "initialize" => Ok(rpc::initialize(params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools::list() })),
        // Claude Code 2.1.328 first probes `server/discover` (the stateless revision
        // 2026-07-28); "method not found" makes it fall back to `initialize`.
        _ => Err(RpcError::method_not_found(method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    static WRITTEN: Mutex<Option<Out>> = Mutex::new(None);

    /// A tool that answers only once the answer to request 2 is out (10 s at most).
    fn slow(_: &Value) -> std::result::Result<Value, RpcError> {
        let out = WRITTEN.lock().unwrap().clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&out.0.lock().unwrap()).contains(r#""id":2"#)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(json!({"content": [], "isError": false}))
    }

    #[test]
    fn a_slow_tool_call_holds_up_no_other_request_and_a_cancelled_one_gets_no_answer() {
        let out = Out::default();
        *WRITTEN.lock().unwrap() = Some(out.clone());
        let input = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow"}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "slow"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        ]
        .map(|m| format!("{m}\n"))
        .concat();
        serve_on(std::io::Cursor::new(input), Box::new(out.clone()), slow).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let ids: Vec<Value> =
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone()).collect();
        assert_eq!(
            ids,
            [json!(2), json!(1)],
            "the ping first, the slow call after it, the cancelled one never"
        );
    }
}
