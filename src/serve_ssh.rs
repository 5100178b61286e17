//! The host's side: `clawsess serve-ssh`, started by a caller's ssh. It says hello, reads
//! one request, checks every id and key in it, and runs the matching subcommand of this
//! same binary with a fixed argv (the prompt on the child's stdin). While it runs, stdin is
//! watched: its end means the caller or the link is gone, and the turn is stopped as by
//! `clawsess stop`, so the session is free for the next turn.

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;

use crate::config::settings::NAMES;
use crate::exit::{self, Unavailable};
use crate::ident::{Key, RequestId};
use crate::remote::{Hello, PROTOCOL, Request, RunRequest, SettingsVerb, check_remote_session};
use crate::store::Store;

/// How long a stopped turn may take to end before its run is killed.
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Longest request line accepted (a prompt plus images in base64).
const MAX_REQUEST: u64 = 64 * 1024 * 1024;

/// Serves one request; the exit code is the subcommand's.
pub fn serve(protocol: u32) -> Result<u8> {
    let hello = serde_json::to_string(&Hello::ours())?;
    crate::outln!("{hello}")?;
    if protocol != PROTOCOL {
        return Err(Unavailable(format!(
            "this is clawsess {} (serve-ssh protocol {PROTOCOL}); the caller speaks protocol \
             {protocol}: install the same clawsess on both",
            env!("CARGO_PKG_VERSION")
        ))
        .into());
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    (&mut stdin).take(MAX_REQUEST).read_until(b'\n', &mut line).context("could not read the request")?;
    if line.is_empty() {
        return Ok(exit::OK); // the caller only wanted the hello, or went away
    }
    let request: Request =
        serde_json::from_slice(&line).context("the request is not one this clawsess reads")?;
    drop(stdin);
    if matches!(request, Request::Check) {
        return Ok(exit::OK);
    }
    if let Request::FindRequest { request_id } = &request {
        let id = RequestId::parse(request_id)?;
        let found = Store::open()?.request(&id)?.is_some();
        crate::outln!("{}", serde_json::json!({ "found": found }))?;
        return Ok(exit::OK);
    }
    if let Request::Tool { name, args } = &request {
        let doc = match crate::mcp::tools::served(name, args) {
            Ok(text) => serde_json::json!({ "text": text }),
            Err(err) => serde_json::json!({ "error": format!("{err:#}") }),
        };
        crate::outln!("{doc}")?;
        return Ok(exit::OK);
    }
    if let Request::Send(send) = &request {
        return crate::mcp::send::serve_remote(send, |child| supervise(child, &request));
    }
    let mut scratch = None;
    let (args, input) = argv(&request, &mut scratch)?;
    let exe = std::env::current_exe().context("could not find this clawsess binary")?;
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .context("could not start clawsess")?;
    if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
        // A thread, so a large prompt never deadlocks against the child's output.
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let code = supervise(child, &request);
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}

/// What `supervise` waits for.
enum Event {
    Exited(Option<i32>),
    /// Our stdin ended: the caller or the link is gone.
    Gone,
    /// A heartbeat (or any byte) from the caller.
    Beat,
}

/// Waits for the child; if our stdin ends first (the link is gone), stops its turn. Both are
/// events on one channel, so the answer leaves the moment the child ends.
fn supervise(mut child: Child, request: &Request) -> Result<u8> {
    let (tx, events) = mpsc::channel();
    let pid = child.id();
    let exited = tx.clone();
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|s| s.code());
        let _ = exited.send(Event::Exited(code));
    });
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {
            if tx.send(Event::Beat).is_err() {
                return;
            }
        }
        let _ = tx.send(Event::Gone);
    });
    let code = |c: Option<i32>| c.and_then(|c| u8::try_from(c).ok()).unwrap_or(exit::FAILURE);
    // A run's caller sends heartbeats: silence this long means the link froze.
    let silence = match request {
        Request::Run(run) => run.alive_s.map(Duration::from_secs),
        _ => None,
    };
    let why = loop {
        let event = match silence {
            Some(limit) => events.recv_timeout(limit),
            None => events.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Exited(c)) => return Ok(code(c)),
            Ok(Event::Beat) => {}
            Ok(Event::Gone) => break "the caller is gone".to_owned(),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break format!(
                    "no word from the caller in {} s: the link is dead",
                    silence.unwrap_or_default().as_secs()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(exit::FAILURE),
        }
    };
    eprintln!("clawsess serve-ssh: {why}; stopping its command");
    let mut grace = Duration::from_millis(10);
    let turn_key = match request {
        Request::Run(run) => Some(run.key.clone()),
        Request::Send(send) => Some(format!("{}{}", crate::mcp::caller::SEND_KEY_PREFIX, send.from)),
        _ => None,
    };
    if let Some(key) = turn_key
        && let Ok(store) = Store::open()
    {
        // As `clawsess stop` does: interrupt the turn (a plain run gets SIGTERM); the run
        // then records the turn and ends by itself.
        let running = crate::live::stop::running_for_key(&store, &key);
        if let Some(turn) = running.into_iter().find(|r| r.holder.pid == pid) {
            let _ = crate::live::stop::stop(&store, &turn, STOP_WAIT);
            grace = STOP_WAIT;
        }
    }
    // Beats still arriving (a link that came back) do not cut the waits short.
    let exited_within = |wait: Duration| {
        let deadline = std::time::Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match events.recv_timeout(left) {
                Ok(Event::Exited(c)) => return Some(c),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                _ => {}
            }
        }
        None
    };
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        if let Some(c) = exited_within(grace) {
            return Ok(code(c));
        }
        grace = STOP_WAIT;
        // SAFETY: kill(2) on our own child, not reaped yet (its Exited event has not come).
        unsafe { libc::kill(pid as i32, signal) };
    }
    Ok(exited_within(STOP_WAIT).map_or(exit::FAILURE, code))
}

/// The argv of the subcommand a request runs (ids and keys checked), and its stdin.
fn argv(
    request: &Request,
    scratch: &mut Option<std::path::PathBuf>,
) -> Result<(Vec<String>, Option<String>)> {
    let s = |v: &str| v.to_owned();
    Ok(match request {
        Request::Check | Request::FindRequest { .. } | Request::Tool { .. } | Request::Send(_) => {
            (vec![], None)
        }
        Request::List { limit } => {
            let mut args = vec![s("list"), s("--json")];
            if let Some(n) = limit {
                args.extend([s("-n"), n.to_string()]);
            }
            (args, None)
        }
        Request::Show { session, lines, topic, json } => {
            check_remote_session(session)?;
            let mut args = vec![s("show"), session.clone()];
            if *topic {
                args.push(s("--topic"));
            } else {
                args.extend([s("-n"), lines.to_string()]);
            }
            if *json {
                args.push(s("--json"));
            }
            (args, None)
        }
        Request::Status { session, key, json } => {
            let mut args = vec![s("status")];
            match (session, key) {
                (Some(session), _) => {
                    check_remote_session(session)?;
                    args.push(session.clone());
                }
                (None, Some(key)) => args.extend([s("--key"), Key::parse(key)?.to_string()]),
                (None, None) => bail!("a status request names a session or a key"),
            }
            if *json {
                args.push(s("--json"));
            }
            (args, None)
        }
        Request::Attach { session, key, json } => {
            check_remote_session(session)?;
            let key = Key::parse(key)?;
            let mut args = vec![s("attach"), session.clone(), s("--key"), key.to_string()];
            if *json {
                args.push(s("--json"));
            }
            (args, None)
        }
        Request::Settings { verb, session, key, args: words, json } => {
            let mut args = vec![s(verb.as_str())];
            match (session, key) {
                (Some(session), None) => {
                    check_remote_session(session)?;
                    if *verb == SettingsVerb::Unset && NAMES.contains(&session.as_str()) {
                        bail!("session {session:?} reads as a setting name here: name it by its id");
                    }
                    args.push(session.clone());
                }
                (None, Some(key)) => args.extend([s("--key"), Key::parse(key)?.to_string()]),
                _ => bail!("a settings request names a session or a key, one of them"),
            }
            check_setting_words(*verb, words)?;
            args.extend(words.iter().cloned());
            if *json {
                args.push(s("--json"));
            }
            (args, None)
        }
        Request::Name { session, name } => {
            check_remote_session(session)?;
            let name = crate::ident::Name::parse(name)?;
            (vec![s("name"), session.clone(), name.to_string()], None)
        }
        Request::Cool { session } => {
            check_remote_session(session)?;
            (vec![s("cool"), session.clone()], None)
        }
        Request::Stop { key, wait_s } => {
            let key = Key::parse(key)?;
            (vec![s("stop"), s("--key"), key.to_string(), s("--wait"), wait_s.to_string()], None)
        }
        Request::Answer { request_id, decision, reason, choices, text } => {
            let id = RequestId::parse(request_id)?;
            let mut args = vec![s("answer"), id.to_string()];
            if let Some(allow) = decision {
                args.push(s(if *allow { "allow" } else { "deny" }));
            }
            // `--x=VALUE`: a value that starts with '-' stays a value (this argv has no shell).
            args.extend(reason.iter().map(|r| format!("--reason={r}")));
            args.extend(choices.iter().map(|c| format!("--choice={c}")));
            args.extend(text.iter().map(|t| format!("--text={t}")));
            (args, None)
        }
        Request::Run(run) => (run_argv(run, scratch)?, Some(run.prompt.clone())),
    })
}

/// The words of a settings request: `set` takes NAME=VALUE (NAME a setting, VALUE data that
/// `set` checks as it does here), `unset` setting names, `get` nothing. None can read as an
/// option: each starts with a setting's name.
fn check_setting_words(verb: SettingsVerb, words: &[String]) -> Result<()> {
    let known = |name: &str| NAMES.contains(&name);
    for word in words {
        if word.contains('\0') {
            bail!("a setting holds a NUL byte");
        }
        let ok = match verb {
            SettingsVerb::Get => false,
            SettingsVerb::Set => word.split_once('=').is_some_and(|(name, _)| known(name.trim())),
            SettingsVerb::Unset => known(word),
        };
        if !ok {
            bail!(
                "{:?} is not a {} word: {}",
                crate::ident::shorten(word, 60),
                verb.as_str(),
                NAMES.join(", ")
            );
        }
    }
    if verb == SettingsVerb::Set && words.is_empty() {
        bail!("nothing to set: give NAME=VALUE ({})", NAMES.join(", "));
    }
    Ok(())
}

fn run_argv(run: &RunRequest, scratch: &mut Option<std::path::PathBuf>) -> Result<Vec<String>> {
    let s = |v: &str| v.to_owned();
    let key = Key::parse(&run.key)?;
    let mut args = vec![s("run"), s("--key"), key.to_string(), s("--wait"), run.wait_s.to_string()];
    if run.new {
        args.push(s("--new"));
    }
    if let Some(session) = &run.session {
        check_remote_session(session)?;
        args.extend([s("--session"), session.clone()]);
    }
    if let Some(cwd) = &run.cwd {
        args.extend([s("--cwd"), cwd.clone()]);
    }
    if run.json {
        args.push(s("--json"));
    }
    if run.stream {
        args.push(s("--stream"));
    }
    if run.ask {
        args.extend([s("--ask"), s("--ask-timeout"), run.ask_timeout_s.to_string()]);
    }
    if let Some(warm) = run.warm_s {
        args.extend([s("--warm"), format!("{warm}s")]);
    }
    if run.allow_slash {
        args.push(s("--allow-slash"));
    }
    if run.steer {
        args.push(s("--steer"));
    }
    if run.interrupt {
        args.push(s("--interrupt"));
    }
    if let Some(idle) = run.idle_reset_s {
        args.extend([s("--idle-reset"), format!("{idle}s")]);
    }
    // `=`: an ARG that starts with '-' stays a value (this argv has no shell).
    args.extend(run.claude_args.iter().map(|a| format!("--claude-arg={a}")));
    if !run.images.is_empty() {
        let store = Store::open()?;
        let dir = store.dir().join("ssh-in").join(uuid::Uuid::new_v4().to_string());
        crate::store::create_private_dir(&dir)?;
        *scratch = Some(dir.clone());
        for (i, (name, data)) in run.images.iter().enumerate() {
            let ext = std::path::Path::new(name).extension().and_then(|e| e.to_str()).unwrap_or("");
            if !ext.chars().all(|c| c.is_ascii_alphanumeric()) || ext.len() > 8 {
                bail!("image {i} has an odd file name extension");
            }
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(data).context("an image's base64")?;
            let path = dir.join(format!("image-{i}.{ext}"));
            std::fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
            args.extend([s("--image"), path.to_string_lossy().into_owned()]);
        }
    }
    // The prompt goes on stdin, never here.
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        verb: SettingsVerb,
        session: Option<&str>,
        key: Option<&str>,
        args: &[&str],
    ) -> Result<Vec<String>> {
        let request = Request::Settings {
            verb,
            session: session.map(str::to_owned),
            key: key.map(str::to_owned),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            json: true,
        };
        argv(&request, &mut None).map(|(args, _)| args)
    }

    #[test]
    fn settings_requests_become_a_fixed_argv_with_values_as_data() {
        let args = settings(SettingsVerb::Set, Some("budget"), None, &["model=$(x) 'y'\nz"]).unwrap();
        assert_eq!(args, ["set", "budget", "model=$(x) 'y'\nz", "--json"]);
        let args = settings(SettingsVerb::Unset, None, Some("tg:1"), &["model", "cwd"]).unwrap();
        assert_eq!(args, ["unset", "--key", "tg:1", "model", "cwd", "--json"]);
        assert_eq!(
            settings(SettingsVerb::Get, Some("0b6f2d4e"), None, &[]).unwrap(),
            ["get", "0b6f2d4e", "--json"]
        );
    }

    #[test]
    fn the_host_refuses_what_could_read_as_an_option_or_another_word() {
        let refused = [
            settings(SettingsVerb::Set, Some("-x"), None, &["model=a"]),
            settings(SettingsVerb::Set, Some("a b"), None, &["model=a"]),
            settings(SettingsVerb::Set, Some("s"), Some("tg:1"), &["model=a"]),
            settings(SettingsVerb::Set, None, None, &["model=a"]),
            settings(SettingsVerb::Set, Some("s"), None, &[]),
            settings(SettingsVerb::Set, Some("s"), None, &["--claude=x"]),
            settings(SettingsVerb::Set, Some("s"), None, &["-k=x"]),
            settings(SettingsVerb::Set, Some("s"), None, &["model"]),
            settings(SettingsVerb::Set, Some("s"), None, &["model=a\0b"]),
            settings(SettingsVerb::Unset, Some("s"), None, &["--json"]),
            settings(SettingsVerb::Unset, Some("model"), None, &[]),
            settings(SettingsVerb::Get, Some("s"), None, &["model"]),
            settings(SettingsVerb::Get, None, Some("not a key;"), &[]),
        ];
        for (i, r) in refused.iter().enumerate() {
            assert!(r.is_err(), "request {i} accepted: {r:?}");
        }
        let name = |session: &str, name: &str| {
            argv(&Request::Name { session: session.into(), name: name.into() }, &mut None).map(|(a, _)| a)
        };
        assert_eq!(name("0b6f2d4e", "budget").unwrap(), ["name", "0b6f2d4e", "budget"]);
        assert!(name("0b6f2d4e", "$(x)").is_err() && name("-s", "b").is_err() && name("s", "-b").is_err());
        let cool =
            |session: &str| argv(&Request::Cool { session: session.into() }, &mut None).map(|(a, _)| a);
        assert_eq!(cool("budget").unwrap(), ["cool", "budget"]);
        assert!(cool("--all").is_err() && cool("a\nb").is_err());
    }
}
