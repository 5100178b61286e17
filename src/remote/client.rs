//! The calling side: ssh to a host, read its hello, send one request, pass its output on.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Hello, PROTOCOL, Request, check_dest, check_host_name, check_remote_command};
use crate::exit::{LinkLost, Unavailable};
use crate::store::{HostEntry, Store};

/// The host called `name`, checked again (the file may have been edited by hand).
pub fn host(store: &Store, name: &str) -> Result<HostEntry> {
    check_host_name(name)?;
    let hosts = store.hosts()?;
    let Some(host) = hosts.host(name) else {
        let known: Vec<&str> = hosts.hosts.iter().map(|h| h.name.as_str()).collect();
        anyhow::bail!(
            "no host called {name}; known: {}; add one with `clawsess hosts add {name} [user@]HOST`",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        );
    };
    check_dest(&host.dest)?;
    if let Some(cmd) = &host.clawsess {
        check_remote_command(cmd)?;
    }
    Ok(host.clone())
}

/// The ssh command line for `host`: the user's ssh (`CLAWSESS_SSH` or `ssh`), never
/// prompting, their host key checking untouched, multiplexed through a socket in the
/// private `ssh/` dir of the state dir, running the fixed `clawsess serve-ssh --protocol N`.
pub fn ssh_command(store: &Store, host: &HostEntry) -> Result<Command> {
    let words = match std::env::var("CLAWSESS_SSH").ok().filter(|v| !v.trim().is_empty()) {
        Some(text) => super::split_words(&text)?,
        None => vec!["ssh".to_owned()],
    };
    let (program, args) = words.split_first().context("CLAWSESS_SSH is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
    if let Some((interval, count)) = keep_alive()? {
        cmd.args(["-o", &format!("ServerAliveInterval={interval}")]);
        cmd.args(["-o", &format!("ServerAliveCountMax={count}")]);
    }
    let dir = store.ssh_dir()?;
    let dir = dir.to_str().context("the state dir's path is not UTF-8")?;
    // A unix socket path holds 107 bytes, and ssh adds a 17-byte suffix while it binds: the
    // socket is named by a short hash of the destination (only clawsess's calls use it). A
    // state dir path too long even for that goes without multiplexing (every call then pays
    // for the ssh handshake).
    let name = &crate::ident::file_stem(&host.dest)[..16];
    if dir.len() + 1 + name.len() + 17 < 107 && !dir.contains(['"', '\n']) {
        let path = dir.replace('%', "%%");
        cmd.args(["-o", "ControlMaster=auto", "-o", &format!("ControlPath=\"{path}/{name}\"")]);
        cmd.args(["-o", "ControlPersist=60"]);
    }
    // `-T`: no terminal; `--`: the destination (checked: never '-') ends the options.
    cmd.args(["-T", "--", &dest_arg(host)]);
    cmd.arg(host.clawsess.as_deref().unwrap_or("clawsess"));
    cmd.args(["serve-ssh", "--protocol", &PROTOCOL.to_string()]);
    Ok(cmd)
}

/// ssh's keep-alives: `CLAWSESS_SSH_ALIVE` = `INTERVAL[,COUNT]` (seconds, probes) or `off`
/// (your ssh config's own settings); default 15 s and 3 probes, so a dead link ends a call
/// in about 45 s.
pub fn keep_alive() -> Result<Option<(u32, u32)>> {
    let text = std::env::var("CLAWSESS_SSH_ALIVE").unwrap_or_default();
    parse_keep_alive(text.trim())
}

fn parse_keep_alive(text: &str) -> Result<Option<(u32, u32)>> {
    if text.is_empty() {
        return Ok(Some((15, 3)));
    }
    if text == "off" {
        return Ok(None);
    }
    let (interval, count) = text.split_once(',').unwrap_or((text, "3"));
    match (interval.trim().parse::<u32>(), count.trim().parse::<u32>()) {
        (Ok(i @ 1..), Ok(c @ 1..)) => Ok(Some((i, c))),
        _ => anyhow::bail!(
            "CLAWSESS_SSH_ALIVE={:?}: give INTERVAL[,COUNT] (seconds between ssh's keep-alive \
             probes, probes missed before the link counts as dead), e.g. 15,3, or off",
            crate::ident::shorten(text, 40)
        ),
    }
}

/// DEST as ssh takes it: `host:port` only in URI form.
fn dest_arg(host: &HostEntry) -> String {
    if host.dest.contains(':') && !host.dest.starts_with('[') {
        format!("ssh://{}", host.dest)
    } else {
        host.dest.clone()
    }
}

/// Ends the control master kept for `host`, if one runs (`hosts remove`); quietly.
pub fn close_master(store: &Store, host: &HostEntry) {
    let Ok(cmd) = ssh_command(store, host) else { return };
    let Some(control) =
        cmd.get_args().position(|a| a.to_str().is_some_and(|a| a.starts_with("ControlPath=")))
    else {
        return;
    };
    let args: Vec<std::ffi::OsString> = cmd.get_args().take(control + 1).map(|a| a.to_owned()).collect();
    let mut exit = Command::new(cmd.get_program());
    exit.args(args).args(["-O", "exit", "--", &dest_arg(host)]);
    let _ = exit.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A request in flight on one host.
pub struct Call {
    host: HostEntry,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    pub hello: Hello,
}

/// Connects to `host` and reads its hello. ssh failing, clawsess missing there, or a
/// clawsess speaking another protocol: [`Unavailable`] (exit 69), before anything ran.
/// `stderr`: where ssh's (and the remote's) stderr goes.
/// With `pass_stderr`, it is copied to ours as it comes (through a pipe of ours, never our
/// own stderr: a control master would hold that open after a killed client, and whoever
/// reads our stderr to its end would wait for the host); else it is kept for the error.
pub fn connect(store: &Store, host: &HostEntry, pass_stderr: bool) -> Result<Call> {
    let mut cmd = ssh_command(store, host)?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Unavailable(format!(
            "could not start ssh ({e}); install OpenSSH's client, or set CLAWSESS_SSH to your ssh command"
        ))
    })?;
    if pass_stderr && let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&buf[..n]).and_then(|()| err.flush());
            }
        });
    }
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let hello = read_hello(&mut stdout);
    let Some(hello) = hello else {
        drop(stdin);
        let status = child.wait()?;
        let said = child.stderr.take().map(|mut e| {
            let mut text = String::new();
            let _ = e.read_to_string(&mut text);
            text
        });
        return Err(not_served(host, status.code(), said.as_deref()).into());
    };
    let call = Call { host: host.clone(), child, stdin, stdout: Some(stdout), hello };
    if call.hello.protocol != PROTOCOL {
        return Err(Unavailable(format!(
            "{} runs clawsess {} (serve-ssh protocol {}), this is clawsess {} (protocol {PROTOCOL}): \
             install the same clawsess on both",
            host.name,
            crate::sys::printable(&call.hello.version, false),
            call.hello.protocol,
            env!("CARGO_PKG_VERSION"),
        ))
        .into());
    }
    Ok(call)
}

/// The hello line, skipping what a remote shell's startup files may print first.
fn read_hello(stdout: &mut impl BufRead) -> Option<Hello> {
    for _ in 0..100 {
        let mut line = String::new();
        if stdout.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Ok(hello) = serde_json::from_str::<Hello>(line.trim()) {
            return Some(hello);
        }
    }
    None
}

/// Why a host gave no hello, from ssh's exit status.
fn not_served(host: &HostEntry, code: Option<i32>, said: Option<&str>) -> Unavailable {
    let said = said
        .map(|s| s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {}", crate::sys::printable(&s, false)))
        .unwrap_or_default();
    let (name, dest) = (&host.name, &host.dest);
    Unavailable(match code {
        Some(255) | None => format!(
            "could not reach {name} ({dest}) over ssh{said}; check it with `ssh {dest}` \
             (clawsess runs ssh with BatchMode=yes: keys or an agent, no password prompts)"
        ),
        Some(127) => format!(
            "clawsess is not installed on {name} (not on the PATH of a non-interactive ssh \
             command){said}; install it there, or `clawsess hosts add {name} {dest} --clawsess PATH`"
        ),
        Some(code) => format!(
            "clawsess on {name} does not serve ssh (exit {code}){said}: it may be older than \
             protocol {PROTOCOL}; install the same clawsess version there"
        ),
    })
}

impl Call {
    /// Sends the request (one JSON line). stdin stays open: closing it is how the host
    /// learns the caller is gone.
    pub fn send(&mut self, request: &Request) -> Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().context("the request was sent already")?;
        if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
            return Err(self.lost("while sending the request").into());
        }
        Ok(())
    }

    /// Copies the host's stdout to ours line by line as it comes (so `--stream` streams),
    /// calling `seen` with each line; the exit code of the command there.
    ///
    /// ssh exiting ends the call even while its stdout stays open: a control master holds
    /// the pipe a killed ssh client handed it until the host's side closes, which a lost
    /// link may never do.
    pub fn pass_through(mut self, mut seen: impl FnMut(&[u8])) -> Result<u8> {
        let mut reader = self.stdout.take().context("the output was read already")?;
        // Heartbeats: a newline on the host's stdin every keep-alive interval, so `serve-ssh`
        // learns a frozen link is gone (a run's `alive_s`) even when sshd there never does.
        // The thread owns stdin and closes it when `beats` is dropped (when this call ends).
        let (beats, stop) = mpsc::channel::<()>();
        if let (Some((interval, _)), Some(mut stdin)) = (keep_alive().ok().flatten(), self.stdin.take()) {
            std::thread::spawn(move || {
                let every = Duration::from_secs(u64::from(interval));
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                    if stdin.write_all(b"\n").and_then(|()| stdin.flush()).is_err() {
                        break;
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if tx.send(line).is_err() => break,
                    Ok(_) => {}
                }
            }
        });
        let mut exited: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    seen(&line);
                    let mut out = std::io::stdout().lock();
                    out.write_all(&line).and_then(|()| out.flush()).map_err(crate::exit::stdout_error)?;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if exited.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
                        exited = Some(Instant::now());
                    }
                    // What was in flight when ssh ended has arrived by now.
                    if exited.is_some_and(|at| at.elapsed() > Duration::from_millis(500)) {
                        break;
                    }
                }
            }
        }
        drop(beats);
        self.finish()
    }

    /// Everything the host prints, and its exit code.
    pub fn collect(mut self) -> Result<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(stdout) = self.stdout.as_mut() {
            let _ = stdout.read_to_end(&mut out);
        }
        Ok((self.finish()?, out))
    }

    fn finish(mut self) -> Result<u8> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        match status.code() {
            Some(255) | None => Err(self.lost("mid-command").into()),
            Some(code) => Ok(u8::try_from(code).unwrap_or(crate::exit::FAILURE)),
        }
    }

    fn lost(&self, when: &str) -> LinkLost {
        LinkLost(format!(
            "the connection to {} ({}) was lost {when}; its turn there is stopped and its session \
             freed; the next run continues it",
            self.host.name, self.host.dest
        ))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // A call given up (an error, a refused hello): let ssh and the host go.
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_keep_alive;

    #[test]
    fn keep_alives_default_and_override() {
        assert_eq!(parse_keep_alive("").unwrap(), Some((15, 3)));
        assert_eq!(parse_keep_alive("off").unwrap(), None);
        assert_eq!(parse_keep_alive("2").unwrap(), Some((2, 3)));
        assert_eq!(parse_keep_alive("1, 2").unwrap(), Some((1, 2)));
        for bad in ["0", "x", "1,0", "-1", "1,2,3"] {
            assert!(parse_keep_alive(bad).is_err(), "{bad:?} accepted");
        }
    }
}
