//! The HTTP of the chat stand-ins (`stand_in_telegram`, `stand_in_discord`): one request a
//! connection, read whole, and one response that closes it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};

pub struct Request {
    pub method: String,
    /// With its query.
    pub path: String,
    /// Names lowercased, values trimmed.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// Header `name`'s value (lowercase name), "" when it has none.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads one request; `None` when the connection ends before it does, an error for a body
/// over `max_body` bytes.
pub fn read_request(reader: &mut BufReader<TcpStream>, max_body: usize) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    if len > max_body {
        return Err(std::io::Error::other("body too large"));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, headers, body }))
}

/// Writes the response (`status` such as "200 OK") and closes the connection.
pub fn respond(mut writer: TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(body));
    let _ = writer.flush();
    let _ = writer.shutdown(Shutdown::Both);
}
